"""Every YAML file klconf reads (tensor cases, distribution cases, expectations) goes through here.

A case file is input from anyone, so reading one must cost bounded time and memory whatever it
holds. The limits are enforced while the document is *composed*, event by event, before any
Python object is constructed and before anything walks the tree:

* the file's size in bytes (checked on the open file, so a FIFO or /dev/zero is cut short too);
* encoding: UTF-8 only, without a byte-order mark, NUL bytes or tab characters;
* nesting depth;
* the number of nodes *after alias expansion*: an alias counts as the whole subtree it names, so
  a "billion laughs" document is refused at the first alias that takes it over the limit, having
  built only a few dozen nodes (the anchors' subtrees are shared, never copied);
* the length of one scalar, and of a number literal;
* tags: only the core ones (str, int, float, bool, null, seq, map) are accepted; `!!python/...`,
  `!!binary`, custom `!tags` are refused, never constructed;
* mapping keys must be unique strings (a duplicate is an error naming its line and key);
* one document per file.

Each refusal is one `YamlError` carrying the line and the field (dotted path) where it was
found. Parsing uses libyaml's event parser when PyYAML has it (the composition is always this
module's), PyYAML's pure parser otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, MappingEndEvent, ScalarEvent, SequenceEndEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1 << 20  # the largest bundled file is 42 kB; large inputs belong in a generator
    max_depth: int = 32  # a case needs about 10 levels (file, list, case, side, 4-d tensor)
    max_nodes: int = 25_000  # after alias expansion; the largest bundled file holds 2,231 (~12 us each to compose)
    max_scalar: int = 65_536  # characters in one scalar
    max_number: int = 64  # characters in one int or float literal (a float64 needs 24)


LIMITS = Limits()
_CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge"))
_BOMS = {b"\xef\xbb\xbf": "UTF-8", b"\xff\xfe": "UTF-16 LE", b"\xfe\xff": "UTF-16 BE"}


class YamlError(Exception):
    """One reason a file cannot be read: line (1-based, None when unknown), field (dotted path) and message."""

    def __init__(self, line: int | None, field: str, message: str):
        self.line, self.field, self.message = line, field, message
        super().__init__(f"line {line}: {field}: {message}" if field else f"line {line}: {message}")


# --------------------------------------------------------------------------- bytes to text


def read_bytes(path: Path, limits: Limits = LIMITS) -> bytes:
    """The file's bytes, refused if too large (a file is never read past the limit)."""
    try:
        size = path.stat().st_size
        if path.is_file() and size > limits.max_bytes:
            raise YamlError(None, "", f"file of {size:,} bytes exceeds the limit of {limits.max_bytes:,} bytes")
        with open(path, "rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise YamlError(None, "", f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise YamlError(None, "", f"more than {limits.max_bytes:,} bytes: exceeds the size limit")
    return data


def read_text(path: Path, limits: Limits = LIMITS) -> str:
    """The file as text, refused if too large or not clean UTF-8."""
    return decode(read_bytes(path, limits))


def decode(data: bytes) -> str:
    for bom, name in _BOMS.items():
        if data.startswith(bom):
            raise YamlError(1, "", f"starts with a {name} byte-order mark: save the file as UTF-8 without one")
    nul = data.find(b"\0")
    if nul >= 0:
        raise YamlError(data.count(b"\n", 0, nul) + 1, "", f"NUL byte at offset {nul}: not a text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise YamlError(line, "", f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}") from None
    tab = text.find("\t")
    if tab >= 0:
        line = text.count("\n", 0, tab) + 1
        column = tab - (text.rfind("\n", 0, tab) + 1) + 1
        raise YamlError(line, "", f"tab character at column {column}: YAML files here are indented with spaces")
    return text


# --------------------------------------------------------------------------- the guarded composer


class _GuardedComposer(Composer):
    """PyYAML's Composer with every limit checked as nodes are made (the stock one checks none)."""

    def _init_guard(self, limits: Limits) -> None:
        Composer.__init__(self)
        self.limits = limits
        self._expanded = 0  # nodes so far, each alias counted as the subtree it stands for
        self._weight: dict[int, tuple[int, int]] = {}  # id(anchored node) -> (expanded size, height)
        self._path: list = []
        self._deepest = 0  # the deepest level reached inside the node being composed

    def _refuse(self, mark, message: str):
        raise YamlError(mark.line + 1 if mark else None, dotted(self._path), message)

    def _count(self, weight: int, mark) -> None:
        self._expanded += weight
        if self._expanded > self.limits.max_nodes:
            self._refuse(
                mark, f"more than {self.limits.max_nodes:,} elements (aliases expanded): exceeds the element limit"
            )

    def compose_node(self, parent, index):
        depth = len(self._path) + 1
        if self.check_event(AliasEvent):
            event = self.get_event()
            if event.anchor not in self.anchors:
                self._refuse(event.start_mark, f"alias *{event.anchor} names no anchor defined before it")
            node = self.anchors[event.anchor]
            if id(node) not in self._weight:
                self._refuse(
                    event.start_mark, f"alias *{event.anchor} refers to a node that contains it (a recursive structure)"
                )
            size, height = self._weight[id(node)]
            if depth + height - 1 > self.limits.max_depth:
                self._refuse(
                    event.start_mark,
                    f"alias *{event.anchor} nests deeper than {self.limits.max_depth} levels: exceeds the depth limit",
                )
            self._count(size, event.start_mark)
            self._deepest = max(self._deepest, depth + height - 1)
            return node
        event = self.peek_event()
        if depth > self.limits.max_depth:
            self._refuse(
                event.start_mark, f"nested deeper than {self.limits.max_depth} levels: exceeds the depth limit"
            )
        if event.anchor is not None and event.anchor in self.anchors:
            self._refuse(event.start_mark, f"anchor &{event.anchor} is defined twice")
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in ALLOWED_TAGS:
            self._refuse(
                event.start_mark,
                f"unsafe or unknown YAML tag rejected: {tag!r} (only plain data: no !!python, !!binary or custom tags)",
            )
        before, outer_deepest = self._expanded, self._deepest
        self._deepest = depth
        self._count(1, event.start_mark)
        self.descend_resolver(parent, index)
        if self.check_event(ScalarEvent):
            node = self.compose_scalar_node(event.anchor)
        elif self.check_event(SequenceStartEvent):
            node = self.compose_sequence_node(event.anchor)
        else:
            node = self.compose_mapping_node(event.anchor)
        self.ascend_resolver()
        if event.anchor is not None:
            self._weight[id(node)] = (self._expanded - before, self._deepest - depth + 1)
        self._deepest = max(outer_deepest, self._deepest)
        return node

    def compose_scalar_node(self, anchor):
        event = self.peek_event()
        if len(event.value) > self.limits.max_scalar:
            self._refuse(
                event.start_mark,
                f"a scalar of {len(event.value):,} characters exceeds the limit of {self.limits.max_scalar:,}",
            )
        node = super().compose_scalar_node(anchor)
        if node.tag in (_CORE + "int", _CORE + "float") and len(node.value) > self.limits.max_number:
            self._refuse(
                node.start_mark,
                f"a number written with {len(node.value)} characters "
                f"(more than {self.limits.max_number}): not a plausible value",
            )
        if node.tag == _CORE + "timestamp":
            node.tag = _CORE + "str"  # a date-like id or description stays text; nothing here is a date
        return node

    def compose_sequence_node(self, anchor):
        start = self.get_event()
        node = SequenceNode(
            self.resolve(SequenceNode, None, start.implicit), [], start.start_mark, None, flow_style=start.flow_style
        )
        if anchor is not None:
            self.anchors[anchor] = node
        index = 0
        while not self.check_event(SequenceEndEvent):
            self._path.append(index)
            node.value.append(self.compose_node(node, index))
            self._path.pop()
            index += 1
        node.end_mark = self.get_event().end_mark
        return node

    def compose_mapping_node(self, anchor):
        start = self.get_event()
        node = MappingNode(
            self.resolve(MappingNode, None, start.implicit), [], start.start_mark, None, flow_style=start.flow_style
        )
        if anchor is not None:
            self.anchors[anchor] = node
        seen: dict[str, int] = {}
        while not self.check_event(MappingEndEvent):
            key = self.compose_node(node, None)
            if not isinstance(key, ScalarNode) or key.tag not in (_CORE + "str", _CORE + "merge"):
                what = "a collection" if not isinstance(key, ScalarNode) else repr(key.value)
                self._refuse(key.start_mark, f"mapping keys must be plain names, found {what}")
            if key.value in seen:
                self._path.append(key.value)
                self._refuse(key.start_mark, f"duplicate key {key.value!r} (first on line {seen[key.value]})")
            seen[key.value] = key.start_mark.line + 1
            self._path.append(key.value)
            value = self.compose_node(node, key)
            self._path.pop()
            node.value.append((key, value))
        node.end_mark = self.get_event().end_mark
        return node


class _PureLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    _GuardedComposer,
    yaml.constructor.SafeConstructor,
    yaml.resolver.Resolver,
):
    def __init__(self, text: str, limits: Limits):
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._init_guard(limits)


try:
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _FAST_LOADER: type[_PureLoader | _CLoader] = _PureLoader
else:

    class _CLoader(_GuardedComposer, CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """libyaml's parser for the events; the composition (and every limit) is _GuardedComposer's."""

        def __init__(self, text: str, limits: Limits):
            CParser.__init__(self, text)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._init_guard(limits)

    _FAST_LOADER = _CLoader


def compose(text: str, limits: Limits = LIMITS, pure: bool = False) -> Node | None:
    """The document's node tree, limits enforced. `pure`: PyYAML's own parser, whose marks' `index`
    counts characters of `text` (what an editor of the text needs)."""
    loader = (_PureLoader if pure else _FAST_LOADER)(text, limits)
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _from_yaml_error(exc, loader) from None
    except yaml.YAMLError as exc:
        raise YamlError(None, dotted(loader._path), f"YAML error: {exc}") from None
    finally:
        loader.dispose()


def _from_yaml_error(exc: yaml.MarkedYAMLError, loader) -> YamlError:
    mark = exc.problem_mark or exc.context_mark
    what = (exc.problem or str(exc)).strip()
    if exc.context and "single document" in exc.context:
        what = "more than one document in the stream (a file holds one document; remove the '---' after it)"
    elif "maximum nesting depth" in what:  # libyaml's own guard, met while it scans ahead of the composer
        return YamlError(
            mark.line + 1 if mark else None,
            dotted(loader._path),
            f"nested deeper than {loader.limits.max_depth} levels: exceeds the depth limit",
        )
    return YamlError(mark.line + 1 if mark else None, dotted(loader._path), f"YAML error: {what}")


# --------------------------------------------------------------------------- documents with line numbers


class Lines:
    """Maps a path in the parsed document, e.g. ('cases', 0, 'p', 'probs'), to its source line."""

    def __init__(self):
        self._lines: dict[tuple, int] = {}

    def add(self, path: tuple, node: Node) -> None:
        self._lines[path] = node.start_mark.line + 1

    def line_of(self, path: tuple) -> int | None:
        path = tuple(path)
        while path not in self._lines and path:
            path = path[:-1]
        return self._lines.get(path)


def parse(text: str, limits: Limits = LIMITS) -> tuple[Any, Lines]:
    """(data, lines) of one document: plain dicts, lists, str, int, float, bool and None."""
    node = compose(text, limits)
    lines = Lines()
    if node is None:
        return None, lines
    _index_lines(node, (), lines)
    constructor = yaml.constructor.SafeConstructor()
    try:
        return constructor.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = (exc.problem or str(exc)).strip()
        raise YamlError(mark.line + 1 if mark else None, "", f"YAML error: {what}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise YamlError(None, "", f"YAML value cannot be read: {exc}") from None


def _index_lines(node: Node, path: tuple, lines: Lines) -> None:
    """Record each path's line; a path reached through an alias is recorded at the alias's target."""
    lines.add(path, node)
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            _index_lines(value_node, path + (key_node.value,), lines)
            lines.add(path + (key_node.value,), key_node)
    elif isinstance(node, SequenceNode):
        for i, child in enumerate(node.value):
            _index_lines(child, path + (i,), lines)


@functools.lru_cache(maxsize=32)
def _parse_cached(data: bytes, limits: Limits) -> tuple[Any, Lines] | YamlError:
    try:
        return parse(decode(data), limits)
    except YamlError as exc:  # a refusal is remembered too: a hostile file costs its limit once
        return exc


def load_path(path: Path, limits: Limits = LIMITS) -> tuple[Any, Lines]:
    """Read and parse one file. Several loaders look at each file of a corpus, so a parse is
    remembered by the file's content (not its name or time stamp, which a rewrite may leave equal)."""
    result = _parse_cached(read_bytes(Path(path), limits), limits)
    if isinstance(result, YamlError):
        raise YamlError(result.line, result.field, result.message)
    return result


def dotted(path: Iterable) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
