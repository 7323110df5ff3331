"""Expectations manifests: known, explained failures, kept as data in cases/expectations/*.yaml.

An entry is a documented *divergence* (behaviour the framework states or its maintainers call
intended) or a *bug* (with the upstream issue where one exists), and names the failure kind it
expects. Its `checks` block expands to exact check ids (a product of case, api, options, device
and dtype lists); matching is by exact id, never by substring. Applied to a record:
  - a failure of the expected kind becomes `xfail`, carrying the reason and link;
  - a failure of another kind stays a failure, flagged as a new kind of failure;
  - a pass is reported as a stale entry.
An entry naming a check klconf does not plan is a problem, reported with file and line. A case the
loaded corpus does not hold is not: manifests travel with a corpus, and a run on another corpus (a
file of it, or one's own) uses the entries about the cases it has. Only where the manifests belong
to the corpus being checked (`strict_cases`: they sit in its folder) is an unknown case a problem.

A porting check verifies one equivalent on the whole corpus, so a porting entry may list the cases
it explains (`case`); its check then stays a failure, flagged as new, when the equivalent differs on
a case no entry lists, and several such entries may explain one check together.
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from .case_validation import schema_message
from .cases import DEFAULT_CASES_DIR, Case, Problem, _dotted, read_document
from .dtypes import DTYPES
from .frameworks import DEVICES, Api
from .kinds import check_id
from .results import Record

SCHEMA_PATH = Path(__file__).with_name("schema") / "expectations.schema.json"
DEFAULT_DIR = DEFAULT_CASES_DIR / "expectations"


@dataclass(frozen=True)
class Expectation:
    id: str
    status: str
    kind: tuple[str, ...]
    reason: str
    link: str
    file: str
    line: int | None
    cases: tuple[str, ...] = ()  # porting only: the cases the difference is known on (empty: any)
    versions: tuple[tuple[str, str], ...] = ()  # (package, PEP 440 specifier): the releases the entry holds for

    def holds_for(self, installed: dict | None) -> bool:
        """Whether a record made with these releases is the entry's business (an entry with no versions: all)."""
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version

        for package, specifier in self.versions:
            version = (installed or {}).get(package)
            try:
                if version is None or Version(str(version)) not in SpecifierSet(specifier):
                    return False
            except InvalidVersion:
                return False
        return True

    def describe(self) -> str:
        link = f" ({self.link})" if self.link else ""
        return f"{'known bug' if self.status == 'bug' else 'documented divergence'} [{self.id}]: {self.reason}{link}"


@dataclass
class Manifest:
    by_check: dict[str, list[Expectation]]  # several entries only for porting checks, each with its cases
    problems: list[Problem]

    def entries(self) -> list[Expectation]:
        return list({id(e): e for claimed in self.by_check.values() for e in claimed}.values())

    def apply(self, record: Record) -> Record:
        claimed = [e for e in self.by_check.get(record.check_id, ()) if e.holds_for(record.framework_version)]
        if not claimed:
            return record
        # porting entries that list cases explain the cases they list; any other entry stands alone
        differing = {d["case"] for d in record.extra.get("differs_on", [])} if claimed[0].cases else set()
        explaining = [e for e in claimed if differing & set(e.cases)]
        if not explaining and record.verdict in ("timeout", "crash"):
            # a process that ended (or a call that hung) leaves no per-case detail: the entries that
            # expect that outcome explain it, and the others do not count against it
            explaining = [e for e in claimed if record.verdict in e.kind or record.kind in e.kind]
        explaining = explaining or claimed
        unexplained = sorted(differing - {c for e in claimed for c in e.cases})
        label = "+".join(e.id for e in explaining)
        kinds = tuple(dict.fromkeys(k for e in explaining for k in e.kind))
        record.extra["expectation"] = {
            "id": label,
            "status": "/".join(dict.fromkeys(e.status for e in explaining)),
            "kind": "/".join(kinds),
            "link": explaining[0].link,
        }
        if record.verdict in ("fail", "error", "timeout", "crash"):
            if not all(record.kind in e.kind or record.verdict in e.kind for e in explaining):
                record.extra["expectation"]["outcome"] = "changed_kind"
                record.message = (
                    f"known failure {label} expected kind {'/'.join(kinds)!r} but failed as "
                    f"{record.kind or record.verdict!r} (new): {record.message}"
                )
            elif unexplained:
                record.extra["expectation"]["outcome"] = "new_cases"
                record.message = (
                    f"known differences {label} do not list {', '.join(unexplained)} (new): {record.message}"
                )
            else:
                record.extra["expectation"]["outcome"] = "matched"
                record.extra["failed_as"] = record.verdict
                record.verdict, record.reason = "xfail", " ".join(e.describe() for e in explaining)
                idle = [e.id for e in claimed if e not in explaining]
                if idle:
                    record.extra["expectation"]["stale"] = idle  # entries whose cases no longer differ
        elif record.verdict == "pass":
            record.extra["expectation"]["outcome"] = "stale"
            record.message = f"expectation {label} is stale: this check now passes"
        return record


def load(
    directory: Path | str | None,
    cases: list[Case],
    apis: list[Api],
    distribution_cases: list | None = None,
    strict_cases: bool = False,
) -> Manifest:
    """Read every manifest under `directory` and expand it against the planned checks.
    `distribution_cases`: the loaded distribution corpus (default: the bundled one)."""
    directory = Path(directory) if directory else DEFAULT_DIR
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else ([directory] if directory.is_file() else [])
    by_check: dict[str, list[Expectation]] = {}
    problems: list[Problem] = []
    corpus = _Corpus({c.id: c for c in cases}, distribution_cases, strict_cases)
    api_by_name = {a.name: a for a in apis}
    for path in files:
        name, data, lines, problem = read_document(path)
        if problem:
            problems.append(problem)
            continue
        assert lines is not None, f"{name}: a document read without a problem has its line map"
        schema_problems = [
            Problem(name, lines.line_of(tuple(e.absolute_path)), _dotted(e.absolute_path), schema_message(e))
            for e in _validator().iter_errors(data)
        ]
        if schema_problems:
            problems += schema_problems
            continue
        for index, raw in enumerate(data["expectations"]):
            line = lines.line_of(("expectations", index))
            kinds = (raw["kind"],) if isinstance(raw["kind"], str) else tuple(raw["kind"])
            listed_cases = raw["checks"].get("case", []) if raw["checks"].get("check") == "porting" else []
            versions, version_problems = _versions(raw.get("versions", {}))
            problems += [Problem(name, line, f"expectations[{index}].versions", m) for m in version_problems]
            entry = Expectation(
                raw["id"],
                raw["status"],
                kinds,
                raw["reason"],
                raw.get("link", ""),
                name,
                line,
                tuple([listed_cases] if isinstance(listed_cases, str) else listed_cases),
                versions,
            )
            ids, entry_problems = _expand(raw["checks"], corpus, api_by_name)
            problems += [Problem(name, line, f"expectations[{index}].checks", m) for m in entry_problems]
            for cid in ids:
                others = by_check.setdefault(cid, [])
                if others and not (entry.cases and others[0].cases) and not (entry.versions and others[0].versions):
                    other = others[0]
                    problems.append(
                        Problem(
                            name,
                            line,
                            f"expectations[{index}]",
                            f"check {cid} is already claimed by {other.id} ({other.file}:{other.line})",
                        )
                    )
                else:
                    others.append(entry)
    return Manifest(by_check, problems)


def _versions(listed: dict) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """An entry's `versions` as (package, specifier) pairs, and what is wrong with them."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    pairs, problems = [], []
    for package, specifier in listed.items():
        try:
            SpecifierSet(specifier)
        except InvalidSpecifier:
            problems.append(f"{package}: {specifier!r} is not a PEP 440 version specifier")
            continue
        pairs.append((package, specifier))
    return tuple(pairs), problems


def owns(directory: Path | str | None, root: Path | str | None) -> bool:
    """Whether the manifests in `directory` belong to the corpus at `root` (they sit in its folder)."""
    manifests = (Path(directory) if directory else DEFAULT_DIR).resolve()
    corpus = (Path(root) if root else DEFAULT_CASES_DIR).resolve()
    return corpus.is_dir() and manifests.parent == corpus


@dataclass
class _Corpus:
    """The loaded cases an entry's names are looked up in, and whether a name it lacks is a problem."""

    cases: dict[str, Case]
    distribution_cases: list | None
    strict: bool

    def known(self, names: list[str], pool: dict, what: str = "case") -> tuple[list[str], list[str]]:
        """(the names the pool has, problems): an unknown name is a problem only when strict."""
        unknown = [n for n in names if n not in pool]
        return [n for n in names if n in pool], [f"unknown {what} {n!r}" for n in unknown] if self.strict else []

    @functools.cached_property
    def distributions(self) -> dict:
        if self.distribution_cases is not None:
            return {c.id: c for c in self.distribution_cases}
        return _distribution_corpus()


def _expand(spec: dict, corpus: _Corpus, apis: dict[str, Api]) -> tuple[list[str], list[str]]:
    listed = {k: ([v] if isinstance(v, str) else list(v)) for k, v in spec.items() if k not in ("options", "check")}
    kind = spec.get("check", "value")
    if kind == "distribution":
        return _expand_distribution(listed, corpus)
    if kind == "convention":
        return _expand_convention(spec, listed, apis)
    cases = corpus.cases
    if kind == "porting":
        return _expand_porting(spec, listed, corpus, apis)
    missing = [k for k in ("case", "dtype") if k not in listed]
    if missing:
        return [], [f"{kind} checks need {' and '.join(missing)}"]
    qualifiers = {
        "value": [""],
        "gradient": [f"d/d{w}" for w in listed.get("wrt", [])],
        "property": list(listed.get("property", [])),
    }[kind]
    if not qualifiers:
        return [], [f"{kind} checks need a {'wrt' if kind == 'gradient' else 'property'} list"]
    ids, problems = [], []
    for name in listed["api"]:
        if name not in apis:
            problems.append(f"unknown api {name!r}")
    listed["case"], unknown = corpus.known(listed["case"], cases)
    problems += unknown
    for value in listed["dtype"] + listed.get("device", []):
        if value not in DTYPES + DEVICES:
            problems.append(f"unknown dtype or device {value!r}")
    if problems:
        return [], problems
    for api_name in listed["api"]:
        api = apis[api_name]
        devices = listed.get("device", list(api.devices))  # default: every device the API runs on
        if kind == "gradient" and not set(listed["wrt"]) <= set(api.differentiable):
            problems.append(
                f"{api_name} is not differentiated with respect to "
                f"{sorted(set(listed['wrt']) - set(api.differentiable))}"
            )
            continue
        option_sets = [api.options[0]] if kind == "property" else _option_combos(spec.get("options", {}), api, problems)
        for options in option_sets:
            for case_id, device, dtype in itertools.product(listed["case"], devices, listed["dtype"]):
                case = cases[case_id]
                if device not in api.devices or (case.dtypes is not None and dtype not in case.dtypes):
                    problems.append(f"{case_id} x {api_name} on {device} in {dtype} is not a planned check")
                    continue
                label = api.option_label(options)
                ids += [check_id(case_id, api_name, label, device, dtype, q) for q in qualifiers]
    return ids, problems


def _expand_convention(spec: dict, listed: dict, apis: dict[str, Api]) -> tuple[list[str], list[str]]:
    """Convention checks: one per API x options x device, probed in the API's structural dtype."""
    from .inference import structural_dtype
    from .inference.records import CASE_ID

    problems = [f"unknown api {name!r}" for name in listed["api"] if name not in apis]
    ids = []
    for name in listed["api"]:
        if name not in apis:
            continue
        api = apis[name]
        for options in _option_combos(spec.get("options", {}), api, problems):
            for device in listed.get("device", list(api.devices)):
                ids.append(check_id(CASE_ID, name, api.option_label(options), device, structural_dtype(api)))
    return ids, problems


def _expand_porting(spec: dict, listed: dict, corpus: _Corpus, apis: dict[str, Api]) -> tuple[list[str], list[str]]:
    """Porting checks: one per source API x options x target framework x device (`case` lists the
    corpus cases an entry explains, not checks)."""
    from .frameworks import FRAMEWORKS
    from .porting.records import DTYPE_LABEL, case_id

    problems = [f"unknown api {name!r}" for name in listed["api"] if name not in apis]
    problems += [f"unknown target framework {t!r}" for t in listed.get("target", []) if t not in FRAMEWORKS]
    problems += corpus.known(listed.get("case", []), corpus.cases)[1]
    if "target" not in listed:
        problems.append("porting checks need a target list")
    if problems:
        return [], problems
    ids = []
    for name in listed["api"]:
        api = apis[name]
        for options in _option_combos(spec.get("options", {}), api, problems):
            for target, device in itertools.product(listed["target"], listed.get("device", list(api.devices))):
                ids.append(check_id(case_id(target), name, api.option_label(options), device, DTYPE_LABEL))
    return ids, problems


def _expand_distribution(listed: dict, loaded: _Corpus) -> tuple[list[str], list[str]]:
    """Distribution checks: `case` names distribution cases, `api` names distribution-level KL functions."""
    from .distributions import libraries

    corpus = loaded.distributions
    names = {lib.name for lib in libraries.all_libraries()}
    case_ids, problems = loaded.known(listed["case"], corpus, "distribution case")
    problems += [f"unknown distribution-level api {a!r}" for a in listed["api"] if a not in names]
    if problems:
        return [], problems
    ids = []
    for case_id, api, device, dtype in itertools.product(
        case_ids, listed["api"], listed.get("device", list(DEVICES)), listed["dtype"]
    ):
        if dtype not in corpus[case_id].dtypes:
            problems.append(f"{case_id} does not run in {dtype}")
        else:
            ids.append(check_id(case_id, api, None, device, dtype))
    return ids, problems


@functools.lru_cache(maxsize=1)
def _distribution_corpus() -> dict:
    from .distributions import cases as distribution_cases

    return {c.id: c for c in distribution_cases.load_corpus()[0]}


def _option_combos(spec: dict | list, api: Api, problems: list[str]) -> list[dict]:
    """The Api's own option dicts that the spec selects (every listed value must exist)."""
    if isinstance(spec, list):
        wanted = spec
    else:
        wanted = [dict(zip(spec.keys(), values)) for values in (itertools.product(*spec.values()) if spec else [()])]
    chosen = []
    for want in wanted:
        matches = [o for o in api.options if all(k in o and o[k] == v for k, v in want.items())]
        if not matches:
            problems.append(f"{api.name} has no option combination {want}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
