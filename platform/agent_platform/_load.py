"""Load layer: YAML files -> plain documents that remember where every node came from.

PyYAML's own loaders are unsafe for a CI gate in several measured ways (duplicate keys silently
overwrite, alias bombs load as shared references and explode when walked, the pure-Python composer
hits RecursionError near 1,000 levels and the C composer segfaults on 50,000). So we never use a
composer: we consume the parser's *event stream* (iterative in both the C and Python parsers) and
build the data ourselves with an explicit stack, which lets us

* bound file size, nesting depth and alias expansion before anything can blow up;
* reject duplicate keys, merge keys, and non-standard tags (no Python object construction, ever);
* resolve plain scalars with the YAML 1.2 core schema, so `NO`, `off` and `yes` stay strings
  (YAML 1.1 would turn a country code into `False`);
* record the source position of every key and value for located error messages.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import yaml.reader

from agent_platform._diagnostics import Diagnostic, Diagnostics, Severity, SourceLocation

try:  # libyaml is ~10x faster; its *parser* is iterative, so it is safe to use for events.
    from yaml.cyaml import CParser as _Parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Parser  # type: ignore[assignment]

SPEC_SUFFIXES = (".yaml", ".yml")
# YAML files a directory of specs holds that are not specs: `platform plan`'s MCP lock.
NOT_SPEC_FILES = frozenset({"mcp.lock.yaml"})

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """Hard bounds applied before and during parsing. Defaults are generous for real specs."""

    max_file_bytes: int = 1 << 20  # 1 MiB
    max_depth: int = 64
    max_nodes_per_document: int = 100_000  # counted *after* alias expansion
    # Characters of keys and scalar values per document, also counted after alias expansion: a
    # few nodes can carry a lot of text (one 200 kB string aliased 20,000 times is 4 GB of data for
    # every check after loading).
    max_text_per_document: int = 4 << 20
    # Characters of strings holding template tags ({{ }}, {% %}, {# #}) per file, aliases counted
    # each time: every template is parsed and walked, and Jinja's parser is the slowest reader of
    # a spec, so this is what bounds the time one file can take.
    max_template_text_per_file: int = 256 << 10
    max_documents_per_file: int = 1_000


DEFAULT_LIMITS = LoadLimits()


def _line_starts(text: str) -> list[int]:
    starts = [0]
    index = text.find("\n")
    while index >= 0:
        starts.append(index + 1)
        index = text.find("\n", index + 1)
    starts.append(len(text))
    return starts


def walk_existing(data: Any, path: Sequence[str | int]) -> tuple[Any, PathKey]:
    """Follow the parts of `path` that exist in `data` (skipping the rest, such as union tags
    in pydantic error locations) -> (the node reached, the parts that were followed)."""
    node = data
    resolved: list[str | int] = []
    for part in path:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
            resolved.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            resolved.append(part)
    return node, tuple(resolved)


@dataclass(slots=True)
class Document:
    """One YAML document: plain data plus a position for every key and value in it."""

    file: str
    index: int
    data: Any
    start: SourceLocation
    # (line, column), 1-based; SourceLocation objects are made only for what gets reported.
    value_positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    # Raw source spans ((line, column) 0-based, start and end) of string scalars that may hold
    # templates, and the file's text, so a problem inside a template is located exactly whatever
    # the scalar's style (block, folded, multi-line plain, quoted with escapes).
    spans: dict[PathKey, tuple[int, int, int, int]] = field(default_factory=dict)
    source: str = ""
    _line_starts: list[int] | None = field(default=None, repr=False, compare=False)

    def line_starts(self) -> list[int]:
        """Offsets where each line of `source` starts (computed once: a file with many located
        template problems must not rescan itself for each)."""
        if self._line_starts is None:
            self._line_starts = _line_starts(self.source)
        return self._line_starts

    def text_location(
        self,
        path: Sequence[str | int],
        line_in_value: int = 1,
        column_in_line: int = 0,
        needle: str | None = None,
    ) -> SourceLocation:
        """Where text inside the string at `path` comes from: `needle` (or, without one, the text of
        line `line_in_value` of the value) is found in the scalar's raw source span."""
        key = tuple(path)
        span = self.spans.get(key)
        value, _ = walk_existing(self.data, key)
        if span is None or not isinstance(value, str):
            return self.locate(path)
        lines = value.split("\n")
        before = sum(len(line) + 1 for line in lines[: max(line_in_value - 1, 0)])
        if needle:
            target, earlier = needle, value.count(needle, 0, before + column_in_line)
        else:
            target = lines[line_in_value - 1].strip() if 0 < line_in_value <= len(lines) else ""
            earlier = value.count(target, 0, before) if target else 0
        if target:
            starts = self.line_starts()
            begin = starts[span[0]] + span[1]
            raw = self.source[begin : starts[span[2]] + span[3]]
            found = -1
            for _ in range(earlier + 1):
                found = raw.find(target, found + 1)
                if found < 0:
                    break
            if found >= 0:
                absolute = begin + found
                line = bisect.bisect_right(starts, absolute) - 1
                return SourceLocation(self.file, line + 1, absolute - starts[line] + 1)
        return self.locate(path)

    @property
    def kind(self) -> str | None:
        kind = self.data.get("kind") if isinstance(self.data, dict) else None
        return kind if isinstance(kind, str) else None

    @property
    def name(self) -> str | None:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else None

    def locate(self, path: Sequence[str | int], *, prefer_key: bool = False) -> SourceLocation:
        """Best position for `path`: the node itself, else its deepest existing ancestor.

        Paths from pydantic may contain entries that are not in the data (union tags,
        discriminators), so unknown entries are skipped rather than ending the walk.
        """
        _, key = walk_existing(self.data, path)
        if prefer_key and key in self.key_positions:
            return SourceLocation(self.file, *self.key_positions[key])
        if key in self.value_positions:
            return SourceLocation(self.file, *self.value_positions[key])
        if key in self.key_positions:
            return SourceLocation(self.file, *self.key_positions[key])
        return self.start

    def key_location(self, path: Sequence[str | int]) -> SourceLocation:
        return self.locate(path, prefer_key=True)


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    files: list[str] = field(default_factory=list)


class _LoadError(Exception):
    def __init__(self, code: str, message: str, location: SourceLocation) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.location = location


# --- YAML 1.2 core schema resolution --------------------------------------------------------

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT_DEC = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

_STD_TAG = "tag:yaml.org,2002:"
_ALLOWED_SCALAR_TAGS = {f"{_STD_TAG}{t}" for t in ("str", "int", "float", "bool", "null")}


_KEYWORD_SCALARS: dict[str, Any] = {
    **dict.fromkeys(("~", "null", "Null", "NULL", ""), None),
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
}
_NUMBER_START = frozenset("0123456789+-.")


# Python refuses to convert integers of more than 4,300 decimal digits to and from text (CPython's
# guard against quadratic conversions); a spec has no use for numbers anywhere near that size.
MAX_INTEGER_DIGITS = 4_300
_MAX_INTEGER = 10**MAX_INTEGER_DIGITS


class IntegerTooLarge(ValueError):
    """A plain scalar that is an integer of more than MAX_INTEGER_DIGITS digits."""

    def __init__(self, digits: int) -> None:
        super().__init__(
            f"integer of about {digits:,} digits is too large (at most {MAX_INTEGER_DIGITS:,} digits); "
            "quote it if it is meant as text"
        )


def _bounded_integer(text: str, base: int) -> int:
    if base == 10 and len(text.lstrip("+-")) > MAX_INTEGER_DIGITS:
        raise IntegerTooLarge(len(text.lstrip("+-")))
    number = int(text, base)
    if abs(number) >= _MAX_INTEGER:
        raise IntegerTooLarge(int(number.bit_length() * 0.30103) + 1)
    return number


def resolve_plain_scalar(value: str) -> Any:
    """Resolve an unquoted scalar by the YAML 1.2 core schema (not YAML 1.1). An integer too large
    to convert raises IntegerTooLarge."""
    if value in _KEYWORD_SCALARS:
        return _KEYWORD_SCALARS[value]
    if value[0] not in _NUMBER_START:
        return value  # most scalars: words, names, sentences
    if _INT_DEC.match(value):
        return _bounded_integer(value, 10)
    if _INT_OCT.match(value):
        return _bounded_integer(value[2:], 8)
    if _INT_HEX.match(value):
        return _bounded_integer(value[2:], 16)
    if _FLOAT.match(value):
        return float(value)
    if _INF.match(value):
        return -math.inf if value.startswith("-") else math.inf
    if _NAN.match(value):
        return math.nan
    return value


def _tagged_scalar(value: str, tag: str, loc: SourceLocation) -> Any:
    kind = tag.removeprefix(_STD_TAG)
    try:
        if kind == "str":
            return value
        if kind == "null":
            if not _NULL.match(value):
                raise ValueError
            return None
        try:
            resolved = resolve_plain_scalar(value)
        except IntegerTooLarge as exc:
            raise _LoadError("yaml-number", str(exc), loc) from None
        if kind == "bool" and isinstance(resolved, bool):
            return resolved
        if kind == "int" and isinstance(resolved, int) and not isinstance(resolved, bool):
            return resolved
        if kind == "float" and isinstance(resolved, int | float) and not isinstance(resolved, bool):
            try:
                return float(resolved)
            except OverflowError:  # an integer beyond the float range is infinite as a float
                return math.inf if resolved > 0 else -math.inf
    except ValueError:
        pass
    raise _LoadError("yaml-tag", f"value {value!r} is not a valid !!{kind}", loc)


# --- the event-driven builder ---------------------------------------------------------------


def _loc(file: str, mark: Any) -> SourceLocation:
    if mark is None:
        return SourceLocation(file, 1, 1)
    return SourceLocation(file, int(mark.line) + 1, int(mark.column) + 1)


class _Frame:
    __slots__ = (
        "anchor",
        "container",
        "height",
        "is_map",
        "nodes_at_start",
        "path",
        "pending_key",
        "template_text_at_start",
        "text_at_start",
    )

    def __init__(
        self,
        container: dict[str, Any] | list[Any],
        path: PathKey,
        anchor: str | None,
        nodes: int,
        text: int,
        template_text: int,
    ) -> None:
        self.container = container
        self.is_map = isinstance(container, dict)
        self.path = path
        self.anchor = anchor
        self.nodes_at_start = nodes
        self.text_at_start = text
        self.template_text_at_start = template_text
        self.pending_key: str | None = None
        self.height = 0  # levels of nesting below this collection (aliases included)


@dataclass(slots=True)
class _Anchor:
    value: Any
    nodes: int
    complete: bool
    height: int = 0  # nesting levels the anchored value brings wherever it is aliased
    text: int = 0  # characters of keys and scalars the anchored value brings wherever it is aliased
    template_text: int = 0  # characters of those scalars that hold template tags


Position = tuple[int, int]


@dataclass(slots=True)
class _FileTotals:
    """What all documents of one file add up to, for the per-file limits."""

    template_text: int = 0


def _holds_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


# What may follow an anchor or alias name in the source: whitespace, or the end of a flow item.
_NAME_ENDS = frozenset(" \t\r\n,]}")
_WRITTEN_NAME = re.compile(r"[^\s,\[\]{}]+")  # a name as YAML 1.2 reads it


class _DocumentBuilder:
    """Builds one document from parser events with an explicit stack (no recursion)."""

    def __init__(
        self,
        file: str,
        index: int,
        start: SourceLocation,
        limits: LoadLimits,
        text: str,
        totals: _FileTotals,
    ) -> None:
        self.file = file
        self.totals = totals
        self.text = text
        self.spans: dict[PathKey, tuple[int, int, int, int]] = {}
        self.limits = limits
        self.index = index
        self.start = start
        self.data: Any = None
        self.values: dict[PathKey, Position] = {}
        self.keys: dict[PathKey, Position] = {}
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.nodes = 0
        self.text_size = 0  # characters of keys and scalars so far, aliases expanded

    def document(self) -> Document:
        file = self.file
        return Document(
            file=file,
            index=self.index,
            data=self.data,
            start=self.start,
            value_positions=self.values,
            key_positions=self.keys,
            spans=self.spans,
            source=self.text if self.spans else "",
        )

    def _error(self, code: str, message: str, pos: Position) -> _LoadError:
        return _LoadError(code, message, SourceLocation(self.file, pos[0], pos[1]))

    def _attach(self, value: Any, pos: Position) -> PathKey:
        """Attach a complete value to its parent; returns its path."""
        stack = self.stack
        if not stack:
            self.data = value
            self.values[()] = pos
            return ()
        frame = stack[-1]
        if not frame.is_map:
            container_list: list[Any] = frame.container  # type: ignore[assignment]
            path = (*frame.path, len(container_list))
            container_list.append(value)
            self.values[path] = pos
            return path
        key = frame.pending_key
        if key is None:  # pragma: no cover - keys are handled by _add_key
            raise self._error("yaml-key", "mapping keys must be plain strings", pos)
        path = (*frame.path, key)
        frame.container[key] = value  # type: ignore[call-overload]
        self.values[path] = pos
        frame.pending_key = None
        return path

    def _add_key(self, frame: _Frame, key: str, pos: Position, *, plain: bool) -> None:
        if key == "<<" and plain:
            raise self._error(
                "yaml-merge-key", "merge keys ('<<') are not supported in specs; write the fields out", pos
            )
        path = (*frame.path, key)
        if key in frame.container:
            first = self.keys.get(path)
            where = f" (first defined at line {first[0]})" if first else ""
            raise self._error("yaml-duplicate-key", f"duplicate key {key!r}{where}", pos)
        frame.pending_key = key
        self.keys[path] = pos

    def _count(self, n: int, pos: Position) -> None:
        self.nodes += n
        if self.nodes > self.limits.max_nodes_per_document:
            raise self._error(
                "yaml-too-large",
                f"document expands to more than {self.limits.max_nodes_per_document:,} nodes "
                "(aliases are counted each time they are used); split it or remove aliases",
                pos,
            )

    def _count_text(self, size: int, pos: Position) -> None:
        self.text_size += size
        if self.text_size > self.limits.max_text_per_document:
            raise self._error(
                "yaml-too-large",
                f"document expands to more than {self.limits.max_text_per_document:,} characters of "
                "text (aliases are counted each time they are used); split it or remove aliases",
                pos,
            )

    def _count_template_text(self, size: int, pos: Position) -> None:
        totals = self.totals
        totals.template_text += size
        if totals.template_text > self.limits.max_template_text_per_file:
            raise self._error(
                "yaml-too-large",
                f"the templates in this file add up to more than "
                f"{self.limits.max_template_text_per_file:,} characters (aliases counted each time "
                "they are used); split the file",
                pos,
            )

    def _check_name_end(self, mark: Any, sigil: str, name: str, pos: Position) -> None:
        """libyaml ends an anchor or alias name at the first character other than a letter, digit,
        '-' or '_', where YAML 1.2 allows any but spaces and flow indicators: `&a:b value` would
        load as the anchor 'a' on the string ':b value'. Refuse what it misreads rather than load
        something other than what the file says."""
        text = self.text
        start = text.find(sigil + name, mark.index)
        if start < 0:
            return
        after = start + 1 + len(name)
        if after < len(text) and text[after] not in _NAME_ENDS:
            what = "anchor" if sigil == "&" else "alias"
            written = _WRITTEN_NAME.match(text, start + 1)
            full = written.group() if written else name
            raise self._error(
                "yaml-anchor",
                f"{what} '{sigil}{full}': YAML allows {text[after]!r} in {what} names, but the parser "
                f"ends the name before it and would read the rest as the value; use only letters, "
                f"digits, '-' and '_' in {what} names",
                pos,
            )

    def feed(self, event: Any) -> None:
        mark = event.start_mark
        pos = (mark.line + 1, mark.column + 1)
        cls = type(event)
        stack = self.stack
        frame = stack[-1] if stack else None
        expecting_key = frame is not None and frame.is_map and frame.pending_key is None
        if cls is yaml.ScalarEvent:
            self._count(1, pos)
            self._count_text(len(event.value), pos)
            if event.anchor is not None:
                self._check_name_end(mark, "&", event.anchor, pos)
            if expecting_key:
                # Keys keep their literal text (`no:` is the key "no"); values resolve by YAML 1.2.
                self._add_key(frame, event.value, pos, plain=not event.style)  # type: ignore[arg-type]
                if event.anchor is not None:
                    self.anchors[event.anchor] = _Anchor(event.value, 1, True, text=len(event.value))
                return
            value = self._scalar(event, pos)
            path = self._attach(value, pos)
            template_text = 0
            if isinstance(value, str) and "{" in value:
                end = event.end_mark
                self.spans[path] = (mark.line, mark.column, end.line, end.column)
                if _holds_template(value):
                    template_text = len(value)
                    self._count_template_text(template_text, pos)
            if event.anchor is not None:
                self.anchors[event.anchor] = _Anchor(
                    value, 1, True, text=len(event.value), template_text=template_text
                )
        elif cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
            if expecting_key:
                raise self._error("yaml-key", "mapping keys must be plain strings, not collections", pos)
            self._check_collection_tag(event, pos)
            self._count(1, pos)
            if len(stack) >= self.limits.max_depth:
                raise self._too_deep(pos)
            container: dict[str, Any] | list[Any] = {} if cls is yaml.MappingStartEvent else []
            path = self._attach(container, pos)
            if event.anchor is not None:
                self._check_name_end(mark, "&", event.anchor, pos)
                self.anchors[event.anchor] = _Anchor(container, 0, False)
            stack.append(
                _Frame(container, path, event.anchor, self.nodes, self.text_size, self.totals.template_text)
            )
        elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
            done = stack.pop()
            height = done.height + 1
            if stack:
                stack[-1].height = max(stack[-1].height, height)
            if done.anchor is not None:
                self.anchors[done.anchor] = _Anchor(
                    done.container,
                    self.nodes - done.nodes_at_start + 1,
                    True,
                    height,
                    self.text_size - done.text_at_start,
                    self.totals.template_text - done.template_text_at_start,
                )
        elif cls is yaml.AliasEvent:
            self._check_name_end(mark, "*", event.anchor or "", pos)
            anchor = self.anchors.get(event.anchor or "")
            if anchor is None:
                raise self._error("yaml-alias", f"alias '*{event.anchor}' refers to no anchor", pos)
            if not anchor.complete:
                raise self._error("yaml-alias", f"alias '*{event.anchor}' refers to itself", pos)
            self._count_text(anchor.text, pos)
            if anchor.template_text:
                self._count_template_text(anchor.template_text, pos)
            if expecting_key:
                if not isinstance(anchor.value, str):
                    raise self._error("yaml-key", "mapping keys must be plain strings", pos)
                self._add_key(frame, anchor.value, pos, plain=False)  # type: ignore[arg-type]
                return
            # An alias inserts the whole anchored value here: its depth counts where it lands.
            if len(stack) + anchor.height > self.limits.max_depth:
                raise self._too_deep(pos)
            if frame is not None:
                frame.height = max(frame.height, anchor.height)
            self._count(anchor.nodes, pos)
            self._attach(anchor.value, pos)

    def _too_deep(self, pos: Position) -> _LoadError:
        return self._error(
            "yaml-too-deep",
            f"nesting deeper than {self.limits.max_depth} levels is not allowed in specs",
            pos,
        )

    def _check_collection_tag(self, event: Any, pos: Position) -> None:
        tag = event.tag
        if tag is None or tag == "!":
            return
        expected = "map" if type(event) is yaml.MappingStartEvent else "seq"
        if tag == f"{_STD_TAG}{expected}":
            return
        raise self._error("yaml-tag", f"tag '{_shown_tag(tag)}' is not allowed in specs", pos)

    def _scalar(self, event: Any, pos: Position) -> Any:
        tag = event.tag
        if tag is not None and tag != "!":
            if tag not in _ALLOWED_SCALAR_TAGS:
                raise self._error("yaml-tag", f"tag '{_shown_tag(tag)}' is not allowed in specs", pos)
            return _tagged_scalar(event.value, tag, SourceLocation(self.file, *pos))
        if tag == "!" or event.style:
            return event.value  # quoted or block scalars are always strings
        try:
            return resolve_plain_scalar(event.value)
        except IntegerTooLarge as exc:
            raise self._error("yaml-number", str(exc), pos) from None


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- decoding and the public API ------------------------------------------------------------


def _decode(data: bytes, file: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _LoadError(
            "encoding", "file is UTF-16 encoded; specs must be UTF-8", SourceLocation(file, 1, 1)
        )
    if b"\x00" in data:
        offset = data.index(b"\x00")
        line = data.count(b"\n", 0, offset) + 1
        raise _LoadError(
            "encoding",
            "file looks binary (contains a NUL byte); specs must be UTF-8 text",
            SourceLocation(file, line, offset - (data.rfind(b"\n", 0, offset) + 1) + 1),
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _LoadError(
            "encoding",
            f"invalid UTF-8 byte 0x{data[exc.start]:02x}; specs must be UTF-8 text",
            SourceLocation(file, line, col),
        ) from None
    return text.removeprefix("\ufeff")


def _tab_problem(text: str, exc: yaml.MarkedYAMLError) -> tuple[int, int, str] | None:
    """When the parser stopped at a tab: (its 1-based line and column, what is wrong with it). A
    tab in a line's indentation is invalid YAML. Valid YAML that libyaml refuses is named for what
    it is: a tab separating a block indicator from what follows, a tab on a line holding only
    whitespace or a comment, and a block scalar whose text starts with a tab after its indentation
    (libyaml works the indentation out from that line and takes the tab for part of it)."""
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return None
    lines = text.splitlines()
    if not 0 <= mark.line < len(lines):
        return None
    line = lines[mark.line]
    start = end = min(mark.column, len(line))
    while start > 0 and line[start - 1] in " \t":
        start -= 1
    while end < len(line) and line[end] in " \t":
        end += 1
    tab = line.find("\t", start, end)
    if tab < 0:
        return None
    before = line[:tab].rstrip(" \t")
    after = line[tab:].lstrip(" \t")
    where = mark.line + 1, tab + 1
    if not before and (not after or after.startswith("#")):
        holding = "a comment" if after else "whitespace"
        return (
            *where,
            f"tab character on a line holding only {holding}: YAML allows it there, but the parser "
            "takes it for indentation; remove the tab or use spaces",
        )
    if (
        not before
        and tab > 0
        and (exc.context or "").endswith("block scalar")
        and not _has_indentation_indicator(lines, exc.context_mark)
    ):
        return (
            *where,
            "tab character at the start of a block scalar's text, after its indentation: YAML reads "
            "it as text, but the parser takes it for indentation; give the indentation after the "
            "indicator (the number of spaces the text is indented past its parent's indentation: '|2' "
            "under a top-level key) or begin the text with a line that does not start with a tab",
        )
    if not before:
        return (*where, "tab character in indentation; YAML requires spaces")
    return (
        *where,
        f"tab character after {before[-1]!r}: YAML allows a tab to separate it from what follows, "
        "but the parser does not accept one here; use a space",
    )


def _name_problem(text: str, exc: yaml.MarkedYAMLError) -> tuple[int, int, str] | None:
    """When libyaml stopped inside an anchor or alias name at a character YAML 1.2 allows there
    (any but spaces and flow indicators: `&é`, `&a.b`, `&0%`): (line, column of the name, what is
    wrong). libyaml reads names of letters, digits, '-' and '_' only."""
    problem = exc.problem_mark
    if problem is None or not 0 < problem.index < len(text):
        return None
    start = problem.index
    while start > 0 and text[start - 1] not in _BEFORE_A_NAME:
        start -= 1
    written = _WRITTEN_NAME.match(text, start + 1) if text[start] in "&*" else None
    if written is None or not written.start() <= problem.index < written.end():
        return None
    refused = next((c for c in written.group() if not _LIBYAML_NAME_CHARACTER.match(c)), None)
    if refused is None:
        return None
    what = "anchor" if text[start] == "&" else "alias"
    line = text.count("\n", 0, start)
    column = start - (text.rfind("\n", 0, start) + 1)
    return (
        line + 1,
        column + 1,
        f"{what} '{text[start]}{written.group()}': YAML allows {refused!r} in {what} names, but the "
        f"parser does not; use only letters, digits, '-' and '_' in {what} names",
    )


_LIBYAML_NAME_CHARACTER = re.compile(r"[0-9A-Za-z_-]")
_BEFORE_A_NAME = _NAME_ENDS | frozenset("[{")  # what an anchor or alias may follow


def _has_indentation_indicator(lines: list[str], mark: Any) -> bool:
    """Whether the block scalar header at `mark` (its `|` or `>`) gives the indentation."""
    if mark is None or not 0 <= mark.line < len(lines):
        return True  # unknown: the plain message claims less
    header = lines[mark.line][mark.column + 1 : mark.column + 3]
    return any(character.isdigit() for character in header)


def _yaml_error_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or str(exc)
    parts = [p for p in (exc.context, problem) if p]
    message = "; ".join(parts)
    opened = exc.context_mark
    unclosed = "flow" in (exc.context or "") or "quoted scalar" in (exc.context or "")
    if (
        unclosed
        and opened is not None
        and exc.problem_mark is not None
        and opened.line != exc.problem_mark.line
    ):
        message += f" (it started at line {opened.line + 1}, column {opened.column + 1})"
    return f"invalid YAML: {message}"


def _shown_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_STD_TAG) if tag.startswith(_STD_TAG) else tag


def load_text(text_or_bytes: str | bytes, file: str, limits: LoadLimits = DEFAULT_LIMITS) -> LoadResult:
    """Parse one file's content into located documents; never raises on bad input."""
    result = LoadResult(files=[file])
    diags = result.diagnostics
    text = ""
    try:
        if isinstance(text_or_bytes, bytes):
            if len(text_or_bytes) > limits.max_file_bytes:
                raise _LoadError(
                    "file-too-large",
                    f"file is {len(text_or_bytes):,} bytes; the limit for a spec file is "
                    f"{limits.max_file_bytes:,} bytes",
                    SourceLocation(file, 1, 1),
                )
            text = _decode(text_or_bytes, file)
        else:
            text = text_or_bytes
            if len(text) > limits.max_file_bytes:
                raise _LoadError(
                    "file-too-large",
                    f"file is {len(text):,} characters; the limit for a spec file is "
                    f"{limits.max_file_bytes:,} bytes",
                    SourceLocation(file, 1, 1),
                )
        result.documents.extend(_parse_documents(text, file, limits))
    except _LoadError as exc:
        diags.add(Diagnostic(Severity.ERROR, exc.code, exc.message, exc.location))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        tab = _tab_problem(text, exc)
        name = _name_problem(text, exc)
        if tab is not None:
            diags.error("yaml-tab", tab[2], SourceLocation(file, tab[0], tab[1]))
        elif name is not None:
            diags.error("yaml-anchor", name[2], SourceLocation(file, name[0], name[1]))
        else:
            diags.add(Diagnostic(Severity.ERROR, "yaml-syntax", _yaml_error_message(exc), _loc(file, mark)))
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        position = int(exc.position)
        line = text.count("\n", 0, position)
        column = position - (text.rfind("\n", 0, position) + 1)
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        diags.error(
            "yaml-character",
            f"character U+{code:04X} is not allowed in YAML; write it as an escape in a double-quoted "
            f"string (e.g. \\x{code:02x})"
            if code < 0x100
            else f"character U+{code:04X} is not allowed in YAML",
            SourceLocation(file, line + 1, column + 1),
        )
    except UnicodeEncodeError as exc:  # only from str input: an unpaired surrogate
        line = text.count("\n", 0, exc.start)
        column = exc.start - (text.rfind("\n", 0, exc.start) + 1)
        diags.error(
            "encoding",
            "text contains an unpaired surrogate; specs must be valid Unicode",
            SourceLocation(file, line + 1, column + 1),
        )
    except yaml.YAMLError as exc:  # anything else the parser reports without a position
        diags.add(
            Diagnostic(Severity.ERROR, "yaml-syntax", f"invalid YAML: {exc}", SourceLocation(file, 1, 1))
        )
    if not result.documents and not diags.has_errors:
        diags.error("empty-file", "file contains no spec documents", SourceLocation(file, 1, 1))
    return result


def _parse_documents(text: str, file: str, limits: LoadLimits) -> Iterator[Document]:
    parser = _Parser(text)
    builder: _DocumentBuilder | None = None
    totals = _FileTotals()
    count = 0
    try:
        while True:
            event = parser.get_event()
            if event is None:
                return
            if isinstance(event, yaml.DocumentStartEvent):
                count += 1
                if count > limits.max_documents_per_file:
                    raise _LoadError(
                        "yaml-too-large",
                        f"more than {limits.max_documents_per_file} documents in one file",
                        _loc(file, event.start_mark),
                    )
                builder = _DocumentBuilder(
                    file, count - 1, _loc(file, event.start_mark), limits, text, totals
                )
            elif isinstance(event, yaml.DocumentEndEvent):
                if builder is not None and builder.data is not None:
                    yield builder.document()
                builder = None
            elif isinstance(event, yaml.StreamStartEvent | yaml.StreamEndEvent):
                continue
            elif builder is not None:
                builder.feed(event)
    finally:
        dispose = getattr(parser, "dispose", None)
        if dispose is not None:
            dispose()


@dataclass(frozen=True, slots=True)
class SpecFiles:
    """What a list of paths holds: the spec files to load, and the paths that hold none."""

    files: list[Path]  # in a stable order, each file once however often it was named
    missing: list[Path]  # paths that are neither a file nor a directory: most often, not there
    without_specs: list[Path]  # directories holding no *.yaml or *.yml file


def find_spec_files(paths: Iterable[str | os.PathLike[str]]) -> SpecFiles:
    """Expand files and directories (recursively, *.yaml / *.yml). A file named explicitly is
    taken whatever its suffix."""
    found: list[Path] = []
    missing: list[Path] = []
    without_specs: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in SPEC_SUFFIXES and p.name not in NOT_SPEC_FILES and p.is_file()
            )
            if not candidates:
                without_specs.append(path)
        elif path.is_file():
            candidates = [path]
        else:
            missing.append(path)
            continue
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return SpecFiles(found, missing, without_specs)


def file_exists(path: Path) -> bool:
    """Whether `path` is a file. A path the OS cannot look up at all (a name over its length
    limit, a NUL character) is not one: `Path.is_file` raises for those."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def discover(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], Diagnostics]:
    """`find_spec_files`, with a missing path as an error and an empty directory as a warning."""
    spec_files = find_spec_files(paths)
    diags = Diagnostics()
    for path in spec_files.missing:
        diags.error("file-not-found", "no such file or directory", SourceLocation(str(path), 1, 1))
    for path in spec_files.without_specs:
        diags.warning("no-specs", "directory contains no *.yaml or *.yml files", SourceLocation(str(path)))
    return spec_files.files, diags


def load_paths(paths: Iterable[str | os.PathLike[str]], limits: LoadLimits = DEFAULT_LIMITS) -> LoadResult:
    files, diags = discover(paths)
    result = LoadResult(diagnostics=diags)
    for path in files:
        name = str(path)
        try:
            size = path.stat().st_size
            if size > limits.max_file_bytes:
                result.diagnostics.error(
                    "file-too-large",
                    f"file is {size:,} bytes; the limit for a spec file is {limits.max_file_bytes:,} bytes",
                    SourceLocation(name, 1, 1),
                )
                result.files.append(name)
                continue
            data = path.read_bytes()
        except OSError as exc:
            result.diagnostics.error(
                "file-unreadable", f"cannot read file: {exc.strerror}", SourceLocation(name)
            )
            continue
        one = load_text(data, name, limits)
        result.files.append(name)
        result.documents.extend(one.documents)
        result.diagnostics.extend(one.diagnostics)
    return result
