"""A Test's expectations against what its run did: every expectation that does not hold becomes a
`Failure` naming where it is written (its path in the Test document), what it expected and what
happened. Pure: an `Observation` is plain data, so this is tested without running anything."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from agent_platform._spec.jsonpath import resolve
from agent_platform._spec.kinds import (
    CostBounds,
    CountBounds,
    ExpectedGuardrailEvent,
    ExpectedToolCall,
    GuardrailExpectations,
    TestSpec,
    ToolExpectations,
    UsageExpectations,
    ValueCheck,
)

Path_ = tuple[str | int, ...]
_SHOWN_CHARS = 160  # of a value quoted in a message


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the run (or one of its sub-runs) made to the tool executor."""

    tool: str
    arguments: Any
    unit: str  # "Kind/name" of the run that made it
    status: str  # ok | error | needs_approval

    def describe(self) -> str:
        status = "" if self.status == "ok" else f" ({self.status})"
        return f"{self.tool} {shorten(self.arguments)} by {self.unit}{status}"


@dataclass(frozen=True, slots=True)
class GuardrailEvent:
    """A guardrail that triggered: what it did, and at which stage."""

    guardrail: str
    verdict: str
    stage: str | None = None

    def describe(self) -> str:
        return f"{self.guardrail} {self.verdict}" + (f" at {self.stage}" if self.stage else "")


@dataclass
class Observation:
    """What a test's run did: its result (as `RunResult.to_json()` has it), its tool calls and its
    guardrail events, in the order they happened."""

    result: dict[str, Any]
    tool_calls: list[ToolCall] = field(default_factory=list)
    guardrail_events: list[GuardrailEvent] = field(default_factory=list)

    @property
    def usage(self) -> dict[str, float]:
        usage = self.result.get("usage") or {}
        tokens_in, tokens_out = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        return {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
            "cost_usd": float(self.result.get("cost_usd", 0.0)),
            "tool_calls": int(self.result.get("tool_calls", 0)),
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """An expectation that does not hold: `path` is where it is written in the Test document."""

    path: Path_
    expectation: str  # what is checked, e.g. "output $.verdict"
    expected: str
    actual: str

    @property
    def message(self) -> str:
        return f"{self.expectation}: expected {self.expected}, got {self.actual}"


def evaluate(test: TestSpec, observed: Observation) -> list[Failure]:
    """Every expectation of `test` that `observed` does not meet, in the order they are written."""
    expect = test.expect
    base: Path_ = ("spec", "expect")
    failures: list[Failure] = []
    outcome = observed.result.get("outcome")
    if outcome != expect.outcome:
        error = observed.result.get("error")
        failures.append(
            Failure(
                (*base, "outcome"),
                "outcome",
                repr(expect.outcome),
                repr(outcome) + (f" ({error})" if error else ""),
            )
        )
    output = observed.result.get("output")
    for index, check in enumerate(expect.output):
        found = check_value(check, output)
        if found is not None:
            failures.append(Failure((*base, "output", index, check.operator), f"output {check.path}", *found))
    if expect.tools is not None:
        failures += _tools(expect.tools, observed.tool_calls, (*base, "tools"))
    if expect.guardrails is not None:
        failures += _guardrails(expect.guardrails, observed.guardrail_events, (*base, "guardrails"))
    if expect.iterations is not None:
        failures += _bounds(
            expect.iterations, int(observed.result.get("iterations", 0)), (*base, "iterations"), "iterations"
        )
    if expect.usage is not None:
        failures += _usage(expect.usage, observed.usage, (*base, "usage"))
    return failures


# --- values -----------------------------------------------------------------------------------


def describe_check(check: ValueCheck) -> str:
    if check.operator == "equals":
        return f"{shorten(check.equals)}"
    if check.operator == "matches":
        return f"a string matching {check.matches!r}"
    return "a value that satisfies the schema"


def check_value(check: ValueCheck, document: Any) -> tuple[str, str] | None:
    """(expected, actual) when the value at the check's path fails it, else None."""
    found = resolve(document, check.json_path)
    expected = describe_check(check)
    if not found.found:
        return expected, f"nothing: {found.missing}"
    value = found.value
    if check.operator == "equals":
        return None if json_equal(value, check.equals) else (expected, shorten(value))
    if check.operator == "matches":
        assert check.matches is not None
        if not isinstance(value, str):
            return expected, f"{_kind(value)} {shorten(value)}"
        return None if re.search(check.matches, value) else (expected, shorten(value))
    assert check.json_schema is not None
    errors = [
        f"{'/'.join(map(str, error.instance_path)) or '(the value)'}: {error.message}"
        for error in jsonschema_rs.validator_for(check.json_schema).iter_errors(value)
    ]
    if not errors:
        return None
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return expected, f"{shorten(value)}, which does not: {errors[0]}{more}"


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: 1 == 1.0, but true != 1 and "1" != 1; key order does not matter."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


def shorten(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a string"


# --- tools ------------------------------------------------------------------------------------


def _matches_call(expected: ExpectedToolCall, call: ToolCall) -> bool:
    if call.tool != expected.tool:
        return False
    if expected.by is not None:
        kind, _, name = expected.by.rpartition("/")
        call_kind, _, call_name = call.unit.partition("/")
        if call_name != name or (kind and call_kind != kind):
            return False
    return all(check_value(check, call.arguments) is None for check in expected.arguments)


def describe_call(expected: ExpectedToolCall) -> str:
    text = f"a call of {expected.tool}"
    if expected.by is not None:
        text += f" by {expected.by}"
    if expected.arguments:
        text += " with " + ", ".join(f"{c.path} {_as_clause(c)}" for c in expected.arguments)
    return text


def _as_clause(check: ValueCheck) -> str:
    if check.operator == "equals":
        return f"= {shorten(check.equals)}"
    if check.operator == "matches":
        return f"matching {check.matches!r}"
    return "satisfying its schema"


def _calls(calls: Sequence[ToolCall]) -> str:
    if not calls:
        return "no tool calls"
    return "; ".join(f"{n}. {call.describe()}" for n, call in enumerate(calls, 1))


def _tools(expect: ToolExpectations, calls: list[ToolCall], base: Path_) -> list[Failure]:
    failures: list[Failure] = []
    made = f"the calls made: {_calls(calls)}"
    if expect.in_order:
        failures += _in_order(expect, calls, base, made)
    else:
        failures += _any_order(expect, calls, base, made)
    for index, tool in enumerate(expect.not_called):
        of_tool = [call for call in calls if call.tool == tool]
        if of_tool:
            times = "once" if len(of_tool) == 1 else f"{len(of_tool)} times"
            failures.append(
                Failure(
                    (*base, "not_called", index),
                    "tools not called",
                    f"no call of {tool}",
                    f"{times}, first {of_tool[0].describe()}",
                )
            )
    return failures


def _in_order(expect: ToolExpectations, calls: list[ToolCall], base: Path_, made: str) -> list[Failure]:
    if expect.only:
        for index, (expected, call) in enumerate(zip(expect.called, calls, strict=False)):
            if not _matches_call(expected, call):
                return [
                    Failure((*base, "called", index), f"tool call {index + 1}", describe_call(expected), made)
                ]
        if len(calls) < len(expect.called):
            index = len(calls)
            return [
                Failure(
                    (*base, "called", index),
                    f"tool call {index + 1}",
                    describe_call(expect.called[index]),
                    f"no more calls: {made}",
                )
            ]
        if len(calls) > len(expect.called):
            wanted = len(expect.called)
            return [
                Failure(
                    (*base, "only"),
                    "tools called",
                    f"exactly {wanted} call{'s' if wanted != 1 else ''}, in the order of `called`",
                    f"{len(calls)}: {made}",
                )
            ]
        return []
    position = 0
    for index, expected in enumerate(expect.called):
        found = next((i for i in range(position, len(calls)) if _matches_call(expected, calls[i])), None)
        if found is None:
            after = f" after call {position} ({calls[position - 1].tool})" if position else ""
            return [
                Failure(
                    (*base, "called", index),
                    f"tool call {index + 1} of `called`",
                    describe_call(expected) + after,
                    made,
                )
            ]
        position = found + 1
    return []


def _any_order(expect: ToolExpectations, calls: list[ToolCall], base: Path_, made: str) -> list[Failure]:
    assignment = _match(expect.called, calls, _matches_call)
    failures = [
        Failure(
            (*base, "called", index),
            f"tool call {index + 1} of `called`",
            describe_call(expected)
            + (
                " (each expected call matched by a different call)"
                if any(_matches_call(expected, c) for c in calls)
                else ""
            ),
            made,
        )
        for index, expected in enumerate(expect.called)
        if index not in assignment
    ]
    if expect.only and not failures and len(calls) != len(expect.called):
        used = set(assignment.values())
        others = [call for i, call in enumerate(calls) if i not in used]
        failures.append(
            Failure(
                (*base, "only"),
                "tools called",
                "no calls besides those in `called`",
                f"also {_calls(others)}",
            )
        )
    return failures


def _match(
    expected: Sequence[ExpectedToolCall],
    calls: Sequence[ToolCall],
    fits: Callable[[ExpectedToolCall, ToolCall], bool],
) -> dict[int, int]:
    """A maximum matching of expected calls to distinct calls (augmenting paths): expected index ->
    call index. Greedy would fail when a general expectation takes the only call a specific one fits."""
    edges = [[c for c, call in enumerate(calls) if fits(e, call)] for e in expected]
    owner: dict[int, int] = {}  # call index -> expected index

    def augment(e: int, seen: set[int]) -> bool:
        for c in edges[e]:
            if c in seen:
                continue
            seen.add(c)
            if c not in owner or augment(owner[c], seen):
                owner[c] = e
                return True
        return False

    for e in range(len(expected)):
        augment(e, set())
    return {e: c for c, e in owner.items()}


# --- guardrails, counts, usage --------------------------------------------------------------------


def _fits(expected: ExpectedGuardrailEvent, event: GuardrailEvent) -> bool:
    return (
        event.guardrail == expected.guardrail
        and (expected.verdict is None or event.verdict == expected.verdict)
        and (expected.stage is None or event.stage == expected.stage)
    )


def _guardrails(expect: GuardrailExpectations, events: list[GuardrailEvent], base: Path_) -> list[Failure]:
    failures: list[Failure] = []
    happened = "; ".join(event.describe() for event in events) or "no guardrail triggered"
    for index, expected in enumerate(expect.triggered):
        if not any(_fits(expected, event) for event in events):
            wanted = expected.guardrail + (f" to {expected.verdict}" if expected.verdict else " to trigger")
            wanted += f" at {expected.stage}" if expected.stage else ""
            failures.append(Failure((*base, "triggered", index), "guardrail triggered", wanted, happened))
    for index, name in enumerate(expect.not_triggered):
        hits = [event for event in events if event.guardrail == name]
        if hits:
            failures.append(
                Failure(
                    (*base, "not_triggered", index),
                    "guardrail not triggered",
                    f"{name} never to trigger",
                    "; ".join(event.describe() for event in hits),
                )
            )
    return failures


def _bounds(bounds: CountBounds | CostBounds, actual: float, path: Path_, what: str) -> list[Failure]:
    shown = f"{actual:g}" if isinstance(actual, float) else str(actual)
    if bounds.equals is not None and actual != bounds.equals:
        return [Failure((*path, "equals"), what, f"exactly {bounds.equals:g}", shown)]
    if bounds.min is not None and actual < bounds.min:
        return [Failure((*path, "min"), what, f"at least {bounds.min:g}", shown)]
    if bounds.max is not None and actual > bounds.max:
        return [Failure((*path, "max"), what, f"at most {bounds.max:g}", shown)]
    return []


def _usage(expect: UsageExpectations, used: dict[str, float], base: Path_) -> list[Failure]:
    failures: list[Failure] = []
    for name in ("input_tokens", "output_tokens", "total_tokens", "cost_usd", "tool_calls"):
        bounds = getattr(expect, name)
        if bounds is not None:
            failures += _bounds(bounds, used[name], (*base, name), f"usage {name}")
    return failures
