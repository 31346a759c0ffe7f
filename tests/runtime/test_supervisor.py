"""Supervisor semantics: routing, priority under bounded concurrency, on_error, task checks."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from agent_platform._compile.plan import ActorPlan, ExecutionMode, RoutePlan, SpecRef, SupervisorUnit
from agent_platform._diagnostics import SourceLocation
from agent_platform._runtime.outcomes import Outcome, RunResult
from agent_platform._runtime.supervisor import SupervisorExecutor, Task, TaskError
from agent_platform._spec.common import Placement, Resources

REVIEW = SpecRef("Agent", "code-reviewer")
TESTS = SpecRef("Agent", "test-writer")


def unit(
    concurrency: int = 2, on_error: str = "collect", boost: int = 0, timeout: float | None = None
) -> SupervisorUnit:
    actor = ActorPlan("supervisor-s", 1, Resources(), Placement(), "any", 10, 0)
    return SupervisorUnit(
        ref=SpecRef("Supervisor", "s"),
        mode=ExecutionMode.SUPERVISOR,
        reason="test",
        actor=actor,
        source=SourceLocation("s.yaml", 1, 1),
        routes=[RoutePlan("code_review", REVIEW, boost, None), RoutePlan("test_generation", TESTS, 0, None)],
        concurrency=concurrency,
        on_error=on_error,
        task_timeout=timeout,
    )


class Recorder:
    """A dispatch that records what ran, concurrently, and how it ended."""

    def __init__(
        self, fail: set[str] | None = None, delay: float = 0.01, hang: set[str] | None = None
    ) -> None:
        self.fail = fail or set()
        self.hang = hang or set()
        self.delay = delay
        self.running = 0
        self.max_running = 0
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def __call__(self, target: SpecRef, payload: Mapping[str, Any], task: Task) -> RunResult:
        self.started.append(task.task_id)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(3600 if task.task_id in self.hang else self.delay)
        except asyncio.CancelledError:
            self.cancelled.append(task.task_id)
            raise
        finally:
            self.running -= 1
        if task.task_id in self.fail:
            return RunResult("r", str(target), Outcome.FAILED, error="boom")
        return RunResult(
            "r", str(target), Outcome.COMPLETED, output={"echo": dict(payload), "by": str(target)}
        )


async def test_higher_priority_starts_first_with_bounded_concurrency() -> None:
    dispatch = Recorder()
    tasks = [Task(f"t{i}", "test_generation", {"i": i}, priority=p) for i, p in enumerate([1, 5, 3, 5, 0, 9])]
    result = await SupervisorExecutor(unit(concurrency=2), dispatch).run(tasks)
    # 9 first, then the two 5s in submission order, then 3, 1, 0
    assert result.start_order == ["t5", "t1", "t3", "t2", "t0", "t4"]
    assert dispatch.max_running == 2
    assert result.outcome is Outcome.COMPLETED
    assert list(result.results) == [t.task_id for t in tasks]  # keyed by task_id, submission order
    assert result.results["t2"].output == {"echo": {"i": 2}, "by": "Agent/test-writer"}


async def test_routes_by_type_and_priority_boost() -> None:
    dispatch = Recorder()
    tasks = [Task("a", "test_generation", priority=1), Task("b", "code_review", priority=0)]
    result = await SupervisorExecutor(unit(concurrency=1, boost=5), dispatch).run(tasks)
    assert result.start_order == ["b", "a"]
    assert result.results["b"].target == "Agent/code-reviewer"


async def test_unknown_task_type_fails_before_anything_runs() -> None:
    dispatch = Recorder()
    tasks = [Task("a", "code_review"), Task("b", "code_reveiw")]
    with pytest.raises(TaskError, match=r"unknown task_type 'code_reveiw'.*did you mean 'code_review'"):
        await SupervisorExecutor(unit(), dispatch).run(tasks)
    assert dispatch.started == []


async def test_duplicate_task_ids_are_rejected() -> None:
    with pytest.raises(TaskError, match="duplicate task_id 'a'"):
        await SupervisorExecutor(unit(), Recorder()).run([Task("a", "code_review"), Task("a", "code_review")])


async def test_collect_returns_per_task_errors() -> None:
    dispatch = Recorder(fail={"b"})
    tasks = [Task(x, "code_review") for x in "abcd"]
    result = await SupervisorExecutor(unit(on_error="collect"), dispatch).run(tasks)
    assert result.outcome is Outcome.FAILED
    assert result.results["b"].outcome is Outcome.FAILED and result.results["b"].error == "boom"
    assert [result.results[x].outcome for x in "acd"] == [Outcome.COMPLETED] * 3


async def test_fail_fast_cancels_the_rest() -> None:
    dispatch = Recorder(fail={"a"}, hang={"b"})
    tasks = [Task(x, "code_review", priority=10 - i) for i, x in enumerate("abcde")]
    result = await SupervisorExecutor(unit(concurrency=2, on_error="fail_fast"), dispatch).run(tasks)
    assert result.outcome is Outcome.FAILED
    assert result.results["a"].outcome is Outcome.FAILED
    assert result.results["b"].outcome is Outcome.CANCELLED and dispatch.cancelled == ["b"]
    assert "fail_fast" in (result.results["b"].error or "")
    assert all(result.results[x].start_order is None for x in "cde")  # never started
    assert all(result.results[x].outcome is Outcome.CANCELLED for x in "cde")


async def test_task_timeout_is_a_typed_outcome() -> None:
    result = await SupervisorExecutor(unit(timeout=0.05), Recorder(hang={"a"})).run(
        [Task("a", "code_review")]
    )
    assert result.results["a"].outcome is Outcome.TIMEOUT


async def test_dispatch_exception_is_the_tasks_failure() -> None:
    async def broken(target: SpecRef, payload: Mapping[str, Any], task: Task) -> RunResult:
        raise RuntimeError("worker died")

    result = await SupervisorExecutor(unit(), broken).run([Task("a", "code_review")])
    assert result.results["a"].outcome is Outcome.FAILED
    assert result.results["a"].error == "RuntimeError: worker died"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"task_type": "x"}, "task_id must be a non-empty string"),
        ({"task_id": "a", "task_type": "x", "priority": "high"}, "priority must be an integer"),
        ({"task_id": "a", "task_type": "x", "payload": []}, "payload must be an object"),
        ({"task_id": "a", "task_type": "x", "extra": 1}, "unknown field"),
    ],
)
def test_task_json_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        Task.from_json(data, 0)


async def test_with_enough_concurrency_every_task_is_in_flight_at_once() -> None:
    """A fan-out of 1,000 tasks with concurrency 1,000 dispatches all of them before any returns
    (the hand-offs then go out together, in one batch per replica)."""
    everyone = asyncio.Event()
    arrived = 0

    async def dispatch(target: SpecRef, payload: Mapping[str, Any], task: Task) -> RunResult:
        nonlocal arrived
        arrived += 1
        if arrived == 1000:
            everyone.set()
        await everyone.wait()  # would wait forever if a worker waited for another task to finish
        return RunResult("r", str(target), Outcome.COMPLETED)

    tasks = [Task(f"t{i}", "test_generation") for i in range(1000)]
    big = unit(concurrency=1000)
    big.max_queue = 1000
    result = await asyncio.wait_for(SupervisorExecutor(big, dispatch).run(tasks), timeout=60)
    assert result.outcome is Outcome.COMPLETED and arrived == 1000
