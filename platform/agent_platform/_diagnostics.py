"""Located diagnostics: every problem a user can cause is reported as
`file:line:col: Kind/name: message`, never as a traceback."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    HINT = "hint"


@dataclass(frozen=True, slots=True, order=True)
class SourceLocation:
    """A 1-based position in a source file."""

    file: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# A diagnostic prints as one line (`file:line:col: Kind/name: message`): a control character that
# came from the specs (a kind, a name, a quoted value) must not start another line, which could
# pass for a diagnostic of its own.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(text: str) -> str:
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text) if _CONTROL.search(text) else text


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    code: str
    message: str
    location: SourceLocation | None = None
    kind: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", _one_line(self.message))
        if self.kind is not None:
            object.__setattr__(self, "kind", _one_line(self.kind))
        if self.name is not None:
            object.__setattr__(self, "name", _one_line(self.name))

    @property
    def subject(self) -> str | None:
        if self.kind and self.name:
            return f"{self.kind}/{self.name}"
        return self.kind or None

    def format(self, with_severity: bool = False) -> str:
        parts: list[str] = []
        if self.location is not None:
            parts.append(str(self.location))
        if with_severity:
            parts.append(self.severity.value)
        if self.subject:
            parts.append(self.subject)
        parts.append(self.message)
        return ": ".join(parts)

    def __str__(self) -> str:
        return self.format()

    def sort_key(self) -> tuple[str, int, int, str]:
        loc = self.location or SourceLocation("")
        return (loc.file, loc.line, loc.column, self.message)


@dataclass
class Diagnostics:
    """An accumulating collection: validation reports every problem at once."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        self.items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.items.extend(diagnostics)

    def error(
        self,
        code: str,
        message: str,
        location: SourceLocation | None = None,
        kind: str | None = None,
        name: str | None = None,
    ) -> None:
        self.items.append(Diagnostic(Severity.ERROR, code, message, location, kind, name))

    def warning(
        self,
        code: str,
        message: str,
        location: SourceLocation | None = None,
        kind: str | None = None,
        name: str | None = None,
    ) -> None:
        self.items.append(Diagnostic(Severity.WARNING, code, message, location, kind, name))

    def hint(
        self,
        code: str,
        message: str,
        location: SourceLocation | None = None,
        kind: str | None = None,
        name: str | None = None,
    ) -> None:
        self.items.append(Diagnostic(Severity.HINT, code, message, location, kind, name))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=Diagnostic.sort_key)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


# Candidates compared per suggestion at most: a schema may declare thousands of properties, and
# each comparison is a full sequence match, for every misspelt name reported.
MAX_SUGGESTION_CANDIDATES = 500


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close. Of many candidates only those
    closest in length are compared (a close match is close in length too)."""
    pool = list(candidates)
    if len(pool) > MAX_SUGGESTION_CANDIDATES:
        pool = sorted(pool, key=lambda candidate: abs(len(candidate) - len(word)))[:MAX_SUGGESTION_CANDIDATES]
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
