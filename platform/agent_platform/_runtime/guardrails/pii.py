"""PII detection and redaction with typed markers (`[EMAIL]`, `[CREDIT_CARD]`, …).

Candidates are found by regex and then *checked* where the format allows it, to keep false
positives down: card numbers must pass the Luhn checksum (13-19 digits), IBANs the ISO 7064
mod-97 check (15-34 characters), SSNs exclude the never-issued areas (000, 666, 9xx) and zero
groups, IP addresses must parse. Phone numbers have no checksum: a candidate needs a phone shape
(international `+…`, or grouped national digits) and 7-15 digits. US SSNs are only recognised in
the dashed form `123-45-6789` (nine bare digits are too often something else).

Where candidates overlap, checked entities win over phone numbers (a card number is not also a
phone), and a phone candidate must not be part of a longer run of digit groups. Verdicts report counts per entity type, never the values."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent_platform._runtime.guardrails.base import GuardContext, Guardrail, Stage, Verdict
from agent_platform._spec.kinds import PiiRedactionGuardrail

MARKERS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit_card": "[CREDIT_CARD]",
    "iban": "[IBAN]",
    "ssn": "[SSN]",
    "ip_address": "[IP_ADDRESS]",
}


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a digit string (card numbers)."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616 IBAN check: 15-34 alphanumerics, country letters, check digits, mod 97 == 1."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    if not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])"
)
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}"
    r"|\d{3}[ .-]\d{3}[ .-]\d{4}"
    r"|0\d{1,4}[ .-]\d{3,4}[ .-]?\d{3,4})(?![\w-])(?![ .]\d)"
)


_DIGIT = re.compile(r"\d")


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _card_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _CARD.finditer(text):
        digits = _digits(match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            spans.append(match.span())
    return spans


def _iban_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _IBAN.finditer(text):
        candidate = match.group(0)
        # The pattern may run on into a following group ("… 0130 00 AB12"): try the whole
        # candidate, then shorter ones ending at a group boundary (never mid-group).
        ends = [len(candidate)] + [i for i in range(len(candidate) - 1, 0, -1) if candidate[i] == " "]
        for end in ends:
            if len(candidate[:end].replace(" ", "")) < 15:
                break
            if iban_valid(candidate[:end]):
                spans.append((match.start(), match.start() + end))
                break
    return spans


def _ip_spans(text: str) -> list[tuple[int, int]]:
    spans = [m.span() for m in _IPV4.finditer(text)]
    for match in _IPV6.finditer(text):
        candidate = match.group(0)
        if candidate.count(":") < 2 or not any(c.isalnum() for c in candidate):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        spans.append(match.span())
    return spans


def _phone_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _PHONE.finditer(text) if 7 <= len(_digits(m.group(0))) <= 15]


def _regex_spans(pattern: re.Pattern[str]) -> Callable[[str], list[tuple[int, int]]]:
    return lambda text: [m.span() for m in pattern.finditer(text)]


# Priority order: earlier entities win overlaps.
_FINDERS: tuple[tuple[str, Callable[[str], list[tuple[int, int]]]], ...] = (
    ("email", _regex_spans(_EMAIL)),
    ("iban", _iban_spans),
    ("credit_card", _card_spans),
    ("ssn", _regex_spans(_SSN)),
    ("ip_address", _ip_spans),
    ("phone", _phone_spans),
)


@dataclass(frozen=True, slots=True)
class PiiMatch:
    entity: str
    start: int
    end: int


def find_pii(text: str, entities: Sequence[str]) -> list[PiiMatch]:
    """Non-overlapping PII spans of the requested entity types, sorted by position."""
    wanted = set(entities)
    taken: list[tuple[int, int]] = []
    found: list[PiiMatch] = []
    has_digit = _DIGIT.search(text) is not None
    for entity, finder in _FINDERS:
        if entity not in wanted:
            continue
        if entity == "email":
            if "@" not in text:
                continue
        elif not has_digit:  # every other entity contains digits
            continue
        for start, end in finder(text):
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            found.append(PiiMatch(entity, start, end))
    found.sort(key=lambda m: m.start)
    return found


def redact_pii(text: str, matches: Sequence[PiiMatch]) -> str:
    parts: list[str] = []
    cursor = 0
    for match in matches:
        parts.append(text[cursor : match.start])
        parts.append(MARKERS[match.entity])
        cursor = match.end
    parts.append(text[cursor:])
    return "".join(parts)


class PiiRedactor(Guardrail):
    type = "pii_redaction"

    __slots__ = ("entities",)

    def __init__(
        self,
        name: str,
        entities: Sequence[str] = ("email", "phone", "credit_card", "iban", "ssn"),
        *,
        stages: tuple[Stage, ...] = ("tool_output", "output"),
        action: str = "redact",
    ) -> None:
        super().__init__(name, stages, action)
        unknown = set(entities) - set(MARKERS)
        if unknown:
            raise ValueError(f"unknown PII entities: {', '.join(sorted(unknown))}")
        self.entities = tuple(entities)

    @classmethod
    def from_spec(cls, name: str, spec: PiiRedactionGuardrail) -> PiiRedactor:
        return cls(name, spec.entities, stages=tuple(spec.applies_to), action=spec.action)

    def check(self, context: GuardContext) -> Verdict:
        content = context.content
        if not content:
            return self._allow
        matches = find_pii(content, self.entities)
        if not matches:
            return self._allow
        counts: dict[str, int] = {}
        for match in matches:
            counts[match.entity] = counts.get(match.entity, 0) + 1
        summary = ", ".join(f"{n} {entity}" for entity, n in sorted(counts.items()))
        return self.violation(
            f"personal data found: {summary}", redacted=redact_pii(content, matches), **counts
        )
