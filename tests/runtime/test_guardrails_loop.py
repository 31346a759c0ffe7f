"""Loop detection keys on tool + canonical arguments and catches repeats and short cycles."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import pytest

from agent_platform._runtime.guardrails import GuardContext, LoopDetector, canonical_json
from agent_platform._runtime.guardrails.base import Decision
from agent_platform._runtime.guardrails.loop import action_key
from agent_platform._spec.kinds import LoopDetectionGuardrail


def act(
    detector: LoopDetector, tool: str, thought: str = "", **args: Any
) -> Decision:  # `thought` is what the model says; it must not matter
    del thought
    return detector.check(GuardContext.for_action(tool, args)).decision


def test_three_different_queries_do_not_trip() -> None:
    detector = LoopDetector("loop", threshold=3)
    for query in ("ray actors", "ray placement groups", "ray autoscaler"):
        assert act(detector, "web_search", thought="search", query=query) is Decision.ALLOW


def test_identical_arguments_under_different_labels_trip() -> None:
    detector = LoopDetector("loop", threshold=3)
    assert act(detector, "web_search", thought="look up ray", query="ray") is Decision.ALLOW
    assert act(detector, "web_search", thought="double-check", query="ray") is Decision.ALLOW
    verdict = detector.check(GuardContext.for_action("web_search", {"query": "ray"}))
    assert verdict.decision is Decision.HALT
    assert verdict.details["pattern"] == "repeat"
    assert verdict.details["steps"] == ("web_search",)
    assert "web_search" in verdict.reason


def test_argument_order_and_number_spelling_do_not_matter() -> None:
    detector = LoopDetector("loop", threshold=3, action="block")
    act(detector, "fetch", url="u", opts={"a": 1, "b": [1, 2]})
    act(detector, "fetch", opts={"b": [1.0, 2], "a": 1.0}, url="u")
    assert act(detector, "fetch", opts={"b": (1, 2), "a": 1}, url="u") is Decision.BLOCK


def test_same_arguments_different_tool_are_different_actions() -> None:
    detector = LoopDetector("loop", threshold=2)
    assert act(detector, "search_web", q="x") is Decision.ALLOW
    assert act(detector, "search_docs", q="x") is Decision.ALLOW


def test_abab_cycle_trips_and_is_reported_as_cycle() -> None:
    detector = LoopDetector("loop", threshold=3, max_cycle_length=3)
    decisions = []
    for _ in range(3):
        decisions.append(act(detector, "search", q="ray"))
        decisions.append(act(detector, "open", url="https://ray.io"))
    assert Decision.HALT in decisions
    tripped_at = decisions.index(Decision.HALT)
    assert tripped_at <= 5  # at the latest when the cycle has repeated `threshold` times
    assert all(d is Decision.ALLOW for d in decisions[:tripped_at])
    detector2 = LoopDetector("loop", threshold=3)
    for _ in range(2):
        act(detector2, "search", q="ray")
        act(detector2, "open", url="https://ray.io")
    verdict = detector2.check(GuardContext.for_action("search", {"q": "ray"}))
    assert verdict.decision is Decision.HALT
    assert verdict.details["pattern"] == "cycle"
    assert verdict.details["steps"] == ("search", "open")


def test_abc_cycle_of_three() -> None:
    detector = LoopDetector("loop", threshold=2, max_cycle_length=3)
    for tool in ("a", "b", "c"):
        assert act(detector, tool, x=1) is Decision.ALLOW
    verdict = detector.check(GuardContext.for_action("a", {"x": 1}))
    assert verdict.decision is Decision.HALT
    assert verdict.details["pattern"] == "cycle"
    assert verdict.details["steps"] == ("a", "b", "c")


def test_cycle_longer_than_max_is_a_recurrence() -> None:
    detector = LoopDetector("loop", threshold=2, max_cycle_length=2, window=12)
    for tool in ("a", "b", "c"):
        act(detector, tool)
    verdict = detector.check(GuardContext.for_action("a", {}))
    assert verdict.decision is Decision.HALT
    assert verdict.details["pattern"] == "recurrence"


def test_progressing_cycle_does_not_trip() -> None:
    """search/open alternating over *different* pages is progress, not a loop."""
    detector = LoopDetector("loop", threshold=3)
    for page in range(10):
        assert act(detector, "search", q="ray", page=page) is Decision.ALLOW
        assert act(detector, "open", url=f"https://ray.io/{page}") is Decision.ALLOW


def test_window_is_respected() -> None:
    detector = LoopDetector("loop", window=4, threshold=2)
    assert act(detector, "status", job="1") is Decision.ALLOW
    for i in range(4):  # pushes the first call out of the window
        assert act(detector, "other", i=i) is Decision.ALLOW
    assert act(detector, "status", job="1") is Decision.ALLOW
    assert act(detector, "status", job="1") is Decision.HALT


@pytest.mark.parametrize("threshold", [2, 3, 5])
def test_threshold_is_configurable(threshold: int) -> None:
    detector = LoopDetector("loop", threshold=threshold, window=20)
    decisions = [act(detector, "poll", id=7) for _ in range(threshold)]
    assert decisions[:-1] == [Decision.ALLOW] * (threshold - 1)
    assert decisions[-1] is Decision.HALT


def test_warn_action_and_final_answer_ignored() -> None:
    detector = LoopDetector("loop", threshold=2, action="warn")
    act(detector, "t", a=1)
    assert act(detector, "t", a=1) is Decision.WARN
    final = GuardContext.for_action("final_answer", {"answer": 1}, action_kind="final_answer")
    assert detector.check(final).decision is Decision.ALLOW
    assert detector.check(final).decision is Decision.ALLOW


def test_delegate_and_tool_of_same_name_differ() -> None:
    detector = LoopDetector("loop", threshold=2)
    detector.check(GuardContext.for_action("helper", {"q": 1}))
    verdict = detector.check(GuardContext.for_action("helper", {"q": 1}, action_kind="delegate"))
    assert verdict.decision is Decision.ALLOW


def test_from_spec_fresh_and_snapshot() -> None:
    spec = LoopDetectionGuardrail.model_validate(
        {"type": "loop_detection", "window": 5, "threshold": 2, "max_cycle_length": 2}
    )
    detector = LoopDetector.from_spec("guard", spec)
    assert (detector.window, detector.threshold, detector.max_cycle_length) == (5, 2, 2)
    assert detector.action is Decision.HALT and detector.stages == ("action",)
    act(detector, "t", a=1)
    state = detector.snapshot()
    fresh = detector.fresh()
    assert fresh.snapshot() == []  # a new run starts clean
    assert act(fresh, "t", a=1) is Decision.ALLOW
    restored = detector.fresh()
    restored.restore(state)  # a resumed run remembers
    assert act(restored, "t", a=1) is Decision.HALT


class Colour(enum.Enum):
    RED = "red"


def test_canonical_json_handles_any_jsonable_and_more() -> None:
    assert canonical_json({"b": 1, "a": [1.0, 2]}) == canonical_json({"a": [1, 2.0], "b": 1.0})
    assert canonical_json({"when": dt.date(2024, 1, 2), "c": Colour.RED, "s": {3, 1}, "b": b"\x00"})
    assert canonical_json(float("nan")) == canonical_json(float("nan"))
    assert canonical_json({1: "x"}) == canonical_json({"1": "x"})
    assert action_key("t", {"a": 1}) == action_key("t", {"a": 1.0})
    assert action_key("t", {"a": 1}) != action_key("t", {"a": "1"})
