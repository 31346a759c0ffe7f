"""PII redaction: typed markers, checksums that reject look-alike numbers."""

from __future__ import annotations

import pytest

from agent_platform._runtime.guardrails import GuardContext, PiiRedactor, find_pii
from agent_platform._runtime.guardrails.base import Decision
from agent_platform._runtime.guardrails.pii import iban_valid, luhn_valid
from agent_platform._spec.kinds import PiiRedactionGuardrail

ALL = ("email", "phone", "credit_card", "iban", "ssn", "ip_address")


def redact(text: str, entities: tuple[str, ...] = ALL) -> str:
    verdict = PiiRedactor("pii", entities).check(GuardContext("tool_output", text))
    return text if verdict.content is None else verdict.content


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to jane.doe+news@example.co.uk today", "Write to [EMAIL] today"),
        ("Card 4111 1111 1111 1111 expires 12/29", "Card [CREDIT_CARD] expires 12/29"),
        ("Card 5500-0000-0000-0004.", "Card [CREDIT_CARD]."),
        ("Pay to DE89 3704 0044 0532 0130 00 now", "Pay to [IBAN] now"),
        ("IBAN GB82WEST12345698765432.", "IBAN [IBAN]."),
        ("SSN 123-45-6789 on file", "SSN [SSN] on file"),
        ("Call +1 415 555 2671 or (020) 7946 0958", "Call [PHONE] or [PHONE]"),
        ("Call 415-555-2671.", "Call [PHONE]."),
        ("Server at 192.168.10.4, v6 2001:db8::8a2e:370:7334", "Server at [IP_ADDRESS], v6 [IP_ADDRESS]"),
    ],
)
def test_redacts_with_typed_markers(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Card 4111 1111 1111 1112 fails Luhn",  # one digit off
        "Order number 1234567890123 shipped",  # 13 digits, not Luhn-valid
        "Account DE89 3704 0044 0532 0130 01",  # IBAN with a wrong check
        "GB00WEST12345698765432 is not an IBAN",
        "SSN-like 000-12-3456 and 666-12-3456 and 123-00-4567 are never issued",
        "Version 1.2.3 released on 2024-05-01, build 20240501",
        "Octets 300.1.2.3 are not an address",
        "Pi is 3.14159265358979 and e is 2.71828",
    ],
)
def test_checksums_and_shapes_reject_lookalikes(text: str) -> None:
    assert redact(text) == text


def test_luhn_and_mod97() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert luhn_valid("378282246310005")  # Amex
    assert iban_valid("DE89370400440532013000") and iban_valid("fr14 2004 1010 0505 0001 3m02 606")
    assert not iban_valid("DE89370400440532013001") and not iban_valid("DE89")


def test_entities_are_selectable_and_card_is_not_a_phone() -> None:
    text = "mail a@b.io, card 4111111111111111, ip 10.0.0.1"
    assert redact(text, ("email",)) == "mail [EMAIL], card 4111111111111111, ip 10.0.0.1"
    matches = find_pii(text, ALL)
    assert [m.entity for m in matches] == ["email", "credit_card", "ip_address"]


def test_verdict_reports_counts_not_values() -> None:
    verdict = PiiRedactor("pii", ALL).check(GuardContext("output", "a@b.io and c@d.io"))
    assert verdict.decision is Decision.REDACT
    assert verdict.details["email"] == 2
    assert "a@b.io" not in verdict.reason and "a@b.io" not in str(verdict.to_event())


def test_block_and_warn_actions_from_spec() -> None:
    spec = PiiRedactionGuardrail.model_validate(
        {"type": "pii_redaction", "applies_to": ["output"], "action": "block", "entities": ["ssn"]}
    )
    guard = PiiRedactor.from_spec("pii", spec)
    assert guard.check(GuardContext("output", "ssn 123-45-6789")).decision is Decision.BLOCK
    assert guard.check(GuardContext("output", "mail a@b.io")).allowed
    warn = PiiRedactor("pii", ("email",), action="warn").check(GuardContext("output", "a@b.io"))
    assert warn.decision is Decision.WARN and warn.content is None
