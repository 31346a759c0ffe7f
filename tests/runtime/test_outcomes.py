"""RunResult survives its JSON form (the run store and hand-offs between hosts rely on it)."""

from __future__ import annotations

from agent_platform._runtime.models.base import Usage
from agent_platform._runtime.outcomes import Outcome, RunResult


def test_a_result_round_trips_through_json() -> None:
    result = RunResult(
        "run-1/worker-2",
        "Agent/worker",
        Outcome.TOKEN_BUDGET,
        output={"answer": "partial"},
        error="token budget exhausted",
        usage=Usage(120, 7),
        cost_usd=0.0125,
        iterations=3,
        tool_calls=2,
        duration_s=1.5,
        trace_id="ab" * 16,
        details={"trajectory": [{"iteration": 1, "action": "tool"}]},
    )
    assert RunResult.from_json(result.to_json()) == result


def test_a_minimal_stored_result_reads_with_defaults() -> None:
    back = RunResult.from_json({"run_id": "r", "unit": "Agent/a", "outcome": "completed"})
    assert back == RunResult("r", "Agent/a", Outcome.COMPLETED)
