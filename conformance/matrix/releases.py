"""The release matrix as data: which releases of which framework family klconf is run against.

A family is one line of releases whose behaviour is compared release to release: the framework
klconf runs (`klconf run --framework`), how a version becomes installer pins, the releases the
matrix runs by default (`versions`, oldest first) and every release known to the index in that
range (`history`, for `klconf bisect`). Pins are exact so that an environment is reproducible and
keyed by them; packages that are not pinned are whatever the installer resolves next to the pins,
and the versions a run actually saw are in its results file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Local wheel folders of this project's machines: torch 2.13.0+cpu and 2.14.1 are on disk there.
LOCAL_WHEELS = ("/opt/wheels", "/opt/pypi-more/files")


@dataclass(frozen=True)
class Release:
    family: str
    version: str
    framework: str  # the klconf framework run against it
    requirements: tuple[str, ...]
    checks: tuple[str, ...]  # the default kinds of check for this family
    note: str = ""
    focus: str = ""  # a pytest -k expression: the APIs this family's releases change (empty: all of the framework)

    @property
    def label(self) -> str:
        return f"{self.family}-{self.version}"


@dataclass(frozen=True)
class Family:
    name: str
    framework: str
    pins: Callable[[str], tuple[str, ...]]
    versions: tuple[str, ...]
    history: tuple[str, ...] = ()
    checks: tuple[str, ...] = ("value", "property", "convention")
    notes: dict[str, str] = field(default_factory=dict)
    focus: str = ""

    def release(self, version: str) -> Release:
        return Release(
            self.name, version, self.framework, self.pins(version), self.checks, self.notes.get(version, ""), self.focus
        )

    def releases(self, versions: tuple[str, ...] | list[str] | None = None) -> list[Release]:
        return [self.release(v) for v in (versions or self.versions)]

    def between(self, first: str, last: str, every: bool = True) -> list[Release]:
        """The releases from `first` to `last` inclusive, in release order (from `history` when `every`)."""
        known = set(self.history or ()) | set(self.versions)
        ordered = sorted(known, key=version_key) if every else list(self.versions)
        for bound in (first, last):
            if bound not in ordered:
                raise KeyError(f"{self.name} {bound} is not a known release (known: {', '.join(ordered)})")
        lo, hi = sorted((ordered.index(first), ordered.index(last)))
        return self.releases(ordered[lo : hi + 1])


def version_key(version: str) -> tuple:
    """Release order of simple versions such as 0.4.25, 0.9.0.1 or 2.13.0+cpu (local part ignored)."""
    public = version.split("+", 1)[0]
    return tuple(int(p) if p.isdigit() else -1 for p in public.split("."))


def _torch(version: str) -> tuple[str, ...]:
    # 2.13.0 is taken as the CPU build on disk; the PyPI wheel of the same number is a CUDA build
    return (f"torch=={version}+cpu",) if version == "2.13.0" else (f"torch=={version}",)


def _jax(version: str) -> tuple[str, ...]:
    jaxlib = "0.9.0" if version == "0.9.0.1" else version  # 0.9.0.1 was a jax-only fix release
    pins = (f"jax=={version}", f"jaxlib=={jaxlib}", "optax")
    # jaxlib before 0.4.26 was built against NumPy 1 and fails to import under NumPy 2
    return pins + ("numpy<2",) if version_key(version) < (0, 4, 26) else pins


JAX_HISTORY = (
    "0.4.25",
    "0.4.26",
    "0.4.27",
    "0.4.28",
    "0.4.29",
    "0.4.30",
    "0.4.31",
    "0.4.33",
    "0.4.34",
    "0.4.35",
    "0.4.36",
    "0.4.37",
    "0.4.38",
    "0.5.0",
    "0.5.1",
    "0.5.2",
    "0.5.3",
    "0.6.0",
    "0.6.1",
    "0.6.2",
    "0.7.0",
    "0.7.1",
    "0.7.2",
    "0.8.0",
    "0.8.1",
    "0.8.2",
    "0.8.3",
    "0.9.0",
    "0.9.0.1",
    "0.9.1",
    "0.9.2",
    "0.10.0",
    "0.10.1",
    "0.10.2",
)

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        # Every release whose KL-relevant functions changed (AST of xlogy, xlog1py, rel_entr, kl_div, entr in
        # jax/_src/scipy/special.py; softmax, log_softmax in jax/_src/nn/functions.py; logsumexp in
        # jax/_src/ops/special.py; jnp.sum), compared wheel to wheel, plus the first release and 0.10.1.
        Family(
            "jax",
            "jax",
            _jax,
            versions=(
                "0.4.25",
                "0.4.27",
                "0.4.29",
                "0.4.30",
                "0.4.31",
                "0.4.34",
                "0.4.36",
                "0.5.0",
                "0.5.3",
                "0.6.0",
                "0.7.0",
                "0.7.1",
                "0.7.2",
                "0.8.0",
                "0.8.1",
                "0.10.1",
                "0.10.2",
            ),
            history=JAX_HISTORY,
        ),
        # optax alone: JAX held at one release that every optax of the range accepts, so a change is optax's
        Family(
            "optax",
            "jax",
            lambda v: (f"optax=={v}", "jax==0.6.2", "jaxlib==0.6.2"),
            versions=("0.2.2", "0.2.3", "0.2.4", "0.2.5", "0.2.6", "0.2.7", "0.2.8"),
            focus="optax",
        ),
        Family(
            "scipy",
            "scipy",
            lambda v: (f"scipy=={v}",),
            versions=("1.13.1", "1.14.1", "1.15.3", "1.16.3", "1.17.1"),
            history=(
                "1.13.0",
                "1.13.1",
                "1.14.0",
                "1.14.1",
                "1.15.0",
                "1.15.1",
                "1.15.2",
                "1.15.3",
                "1.16.0",
                "1.16.1",
                "1.16.2",
                "1.16.3",
                "1.17.0",
                "1.17.1",
            ),
        ),
        # TensorFlow with the tf-keras of the same minor release; Keras 3 is what the installer resolves next to
        # it (the newest each accepts, 3.15 for all three), so a change here is TensorFlow's
        Family(
            "tensorflow",
            "tensorflow",
            lambda v: (f"tensorflow=={v}", f"tf-keras~={v.rsplit('.', 1)[0]}.0"),
            versions=("2.19.1", "2.20.0", "2.21.0"),
        ),
        # Keras 3 alone, on TensorFlow 2.20: TensorFlow 2.21 requires keras>=3.12, 2.20 accepts 3.10 to 3.15
        Family(
            "keras",
            "tensorflow",
            lambda v: (f"keras=={v}", "tensorflow==2.20.0", "tf-keras==2.20.1"),
            versions=("3.10.0", "3.11.3", "3.12.4", "3.13.2", "3.14.1", "3.15.1"),
            history=(
                "3.10.0",
                "3.11.0",
                "3.11.1",
                "3.11.2",
                "3.11.3",
                "3.12.0",
                "3.12.1",
                "3.12.2",
                "3.12.3",
                "3.12.4",
                "3.13.0",
                "3.13.1",
                "3.13.2",
                "3.14.0",
                "3.14.1",
                "3.15.0",
                "3.15.1",
            ),
            focus="keras and not tf_keras",
        ),  # tf_keras is Keras 2, not the package these releases change
        # TFP is exercised by the distribution-level checks only
        Family(
            "tfp",
            "tensorflow",
            lambda v: (f"tensorflow-probability[tf]=={v}",),
            versions=("0.24.0", "0.25.0"),
            checks=("distribution",),
        ),
        Family(
            "torch",
            "torch",
            _torch,
            versions=("2.13.0", "2.14.1", "2.15.0"),
            notes={
                "2.13.0": "CPU build from this machine's wheel folder",
                "2.14.1": "CUDA build from this machine's wheel folder (about 5.5 GB installed)",
                "2.15.0": "CUDA build from the package index (several GB to download)",
            },
        ),
    )
}

# The order a whole matrix is run in: cheapest first, the multi-GB torch builds last.
RUN_ORDER = ("jax", "optax", "scipy", "tensorflow", "keras", "tfp", "torch")


def select(names: list[str] | None) -> list[Release]:
    """Releases named as FAMILY (all its default versions) or FAMILY-VERSION / FAMILY==VERSION."""
    if not names:
        return [r for family in RUN_ORDER for r in FAMILIES[family].releases()]
    chosen: list[Release] = []
    for name in names:
        family, _, version = name.replace("==", "-").partition("-")
        if family not in FAMILIES:
            raise KeyError(f"unknown release family {family!r} (known: {', '.join(FAMILIES)})")
        releases = FAMILIES[family].releases([version] if version else None)
        chosen += [r for r in releases if r not in chosen]
    return chosen
