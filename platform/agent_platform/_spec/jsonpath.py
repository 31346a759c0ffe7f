"""The JSON paths a Test's expectations point with: `$` (the whole value), then members and list
indices, e.g. `$.findings[0].line`, `$['review-search'].output` or `$.items[-1]`.

Deliberately the small, unambiguous subset of JSONPath that names exactly one value: no wildcards,
filters, slices or recursive descent (an expectation compares one value with one expected value;
a check over many items is a `schema` check on their list).

    path    := '$' segment*
    segment := '.' name | '[' index ']' | '[' quoted ']'
    name    := [A-Za-z_] [A-Za-z0-9_-]*
    index   := '-'? digit+              (negative: from the end)
    quoted  := "'" char* "'" | '"' char* '"'   (backslash escapes the quote and itself)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Segment = str | int  # a member name, or a list index

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"-?[0-9]+")


class JsonPathError(ValueError):
    """A malformed path; `column` is the 1-based position of the problem in the path text."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"invalid JSON path: {message} (at character {column})")
        self.column = column


@dataclass(frozen=True, slots=True)
class JsonPath:
    segments: tuple[Segment, ...]

    def __str__(self) -> str:
        return format_path(self.segments)


def parse_path(text: str) -> JsonPath:
    """`text` as a JsonPath; raises JsonPathError naming what is wrong and where."""
    if not text.startswith("$"):
        raise JsonPathError("a path starts with '$' (the whole value), e.g. $.summary", 1)
    segments: list[Segment] = []
    at = 1
    while at < len(text):
        char = text[at]
        if char == ".":
            found = _NAME.match(text, at + 1)
            if found is None:
                raise JsonPathError(
                    "expected a member name after '.' (letters, digits, '_' and '-', not starting "
                    "with a digit; use ['...'] for any other name)",
                    at + 2,
                )
            segments.append(found.group())
            at = found.end()
        elif char == "[":
            segment, at = _bracket(text, at)
            segments.append(segment)
        else:
            raise JsonPathError(f"unexpected {char!r}: expected '.name' or '[...]'", at + 1)
    return JsonPath(tuple(segments))


def _bracket(text: str, start: int) -> tuple[Segment, int]:
    """The segment of the `[...]` at `start` and the position after it."""
    at = start + 1
    if at < len(text) and text[at] in "'\"":
        quote = text[at]
        chars: list[str] = []
        at += 1
        while at < len(text) and text[at] != quote:
            if text[at] == "\\":
                if at + 1 >= len(text) or text[at + 1] not in (quote, "\\"):
                    raise JsonPathError(f"'\\' escapes only {quote} and '\\' in a quoted name", at + 1)
                at += 1
            chars.append(text[at])
            at += 1
        if at >= len(text):
            raise JsonPathError(f"unclosed quoted name (no closing {quote})", start + 2)
        at += 1
        segment: Segment = "".join(chars)
    else:
        found = _INDEX.match(text, at)
        if found is None:
            raise JsonPathError(
                "expected a list index or a quoted name in '[...]' (wildcards, slices and filters "
                "are not supported: check a list with a `schema`)",
                at + 1,
            )
        segment = int(found.group())
        at = found.end()
    if at >= len(text) or text[at] != "]":
        raise JsonPathError("expected ']'", at + 1)
    return segment, at + 1


def format_path(segments: Sequence[Segment]) -> str:
    """The canonical text of a path (what `parse_path` reads back to the same segments)."""
    parts = ["$"]
    for segment in segments:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _NAME.fullmatch(segment):
            parts.append(f".{segment}")
        else:
            escaped = segment.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"['{escaped}']")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Resolved:
    """Where a path led in a value: `found` with the `value`, or where it stopped and why."""

    found: bool
    value: Any = None
    missing: str = ""  # why the path stops, e.g. "$.findings has 2 items, no [5]"


def resolve(value: Any, path: JsonPath) -> Resolved:
    node = value
    for depth, segment in enumerate(path.segments):
        here = format_path(path.segments[:depth])
        if isinstance(segment, int):
            if not isinstance(node, list):
                return Resolved(False, missing=f"{here} is {_kind(node)}, not a list")
            if not -len(node) <= segment < len(node):
                return Resolved(False, missing=f"{here} has {len(node)} items, no [{segment}]")
            node = node[segment]
        else:
            if not isinstance(node, dict):
                return Resolved(False, missing=f"{here} is {_kind(node)}, not an object")
            if segment not in node:
                keys = ", ".join(sorted(map(str, node))) or "none"
                return Resolved(False, missing=f"{here} has no member {segment!r} (members: {keys})")
            node = node[segment]
    return Resolved(True, node)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
