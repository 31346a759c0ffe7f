"""The supervisor: route tasks by type to agents or pipelines, through a real priority queue feeding
`concurrency` workers.

The source article sorted by priority and then started everything at once with `gather`, so
priority meant nothing. Here every task is queued before any worker starts, and the N workers
always take the highest-priority task left (FIFO among equals): with bounded concurrency, higher
priority really starts first. Sub-agents are stateless: each task is a fresh run of its target."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_platform._compile.plan import RoutePlan, SpecRef, SupervisorUnit
from agent_platform._diagnostics import did_you_mean
from agent_platform._runtime.outcomes import Outcome, RunResult


@dataclass(frozen=True, slots=True)
class Task:
    task_id: str
    task_type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    priority: int | None = None  # default: the supervisor's default_priority

    @classmethod
    def from_json(cls, data: Mapping[str, Any], index: int) -> Task:
        if not isinstance(data, Mapping):
            raise TaskError(f"task {index}: expected an object with task_id, task_type, payload, priority")
        unknown = set(data) - {"task_id", "task_type", "payload", "priority"}
        if unknown:
            raise TaskError(f"task {index}: unknown field(s) {', '.join(sorted(unknown))}")
        task_id, task_type = data.get("task_id"), data.get("task_type")
        if not isinstance(task_id, str) or not task_id:
            raise TaskError(f"task {index}: task_id must be a non-empty string")
        if not isinstance(task_type, str):
            raise TaskError(f"task {task_id!r}: task_type must be a string")
        payload = data.get("payload", {})
        if not isinstance(payload, Mapping):
            raise TaskError(f"task {task_id!r}: payload must be an object")
        priority = data.get("priority")
        if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
            raise TaskError(f"task {task_id!r}: priority must be an integer")
        return cls(task_id, task_type, payload, priority)


class TaskError(ValueError):
    """The task list itself is wrong: nothing has run."""


@dataclass
class TaskResult:
    task_id: str
    task_type: str
    target: str  # "Kind/name"
    outcome: Outcome
    output: Any = None
    error: str | None = None
    start_order: int | None = None  # 0 for the first task a worker picked up; None if never started
    run: RunResult | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "task_type": self.task_type,
            "target": self.target,
            "outcome": self.outcome.value,
            "output": self.output,
            "error": self.error,
            "start_order": self.start_order,
        }


@dataclass
class SupervisorResult:
    results: dict[str, TaskResult]  # by task_id, in submission order
    outcome: Outcome

    @property
    def start_order(self) -> list[str]:
        started = [r for r in self.results.values() if r.start_order is not None]
        return [r.task_id for r in sorted(started, key=lambda r: r.start_order or 0)]


def check_tasks(unit: SupervisorUnit, tasks: Sequence[Task]) -> None:
    """Reject the whole batch before anything runs: unknown types, duplicate ids, overflow."""
    routes = {r.task_type for r in unit.routes}
    problems: list[str] = []
    seen: set[str] = set()
    for task in tasks:
        if task.task_id in seen:
            problems.append(f"duplicate task_id {task.task_id!r}")
        seen.add(task.task_id)
        if task.task_type not in routes:
            problems.append(
                f"task {task.task_id!r}: unknown task_type {task.task_type!r} "
                f"(routes: {', '.join(sorted(routes))}){did_you_mean(task.task_type, routes)}"
            )
    if len(tasks) > unit.max_queue:
        problems.append(f"{len(tasks)} tasks exceed max_queue {unit.max_queue}")
    if problems:
        raise TaskError(f"Supervisor/{unit.name}: " + "; ".join(problems))


Dispatch = Callable[[SpecRef, Mapping[str, Any], Task], Awaitable[RunResult]]


class SupervisorExecutor:
    """Runs one batch of tasks. `dispatch(target, payload, task)` runs a sub-agent or pipeline and
    returns its RunResult; it is the only way the supervisor reaches its workers, so the same
    executor serves in-process runs and Ray actors."""

    def __init__(self, unit: SupervisorUnit, dispatch: Dispatch) -> None:
        self.unit = unit
        self.dispatch = dispatch
        self.routes: dict[str, RoutePlan] = {r.task_type: r for r in unit.routes}

    def check(self, tasks: Sequence[Task]) -> None:
        check_tasks(self.unit, tasks)

    def priority_of(self, task: Task) -> int:
        base = self.unit.default_priority if task.priority is None else task.priority
        return base + self.routes[task.task_type].priority_boost

    async def run(self, tasks: Sequence[Task]) -> SupervisorResult:
        self.check(tasks)
        results: dict[str, TaskResult] = {
            t.task_id: TaskResult(
                t.task_id, t.task_type, str(self.routes[t.task_type].target), Outcome.CANCELLED
            )
            for t in tasks
        }
        queue: asyncio.PriorityQueue[tuple[int, int, Task]] = asyncio.PriorityQueue()
        for sequence, task in enumerate(tasks):
            queue.put_nowait((-self.priority_of(task), sequence, task))  # highest first, FIFO among equals
        started = itertools.count()
        failed = asyncio.Event()

        async def worker() -> None:
            while not queue.empty():
                if failed.is_set() and self.unit.on_error == "fail_fast":
                    return
                _, _, task = queue.get_nowait()
                result = results[task.task_id]
                result.start_order = next(started)
                route = self.routes[task.task_type]
                timeout = route.timeout if route.timeout is not None else self.unit.task_timeout
                try:
                    async with asyncio.timeout(timeout):
                        run = await self.dispatch(route.target, task.payload, task)
                except TimeoutError:
                    result.outcome, result.error = Outcome.TIMEOUT, f"task exceeded {timeout:g}s"
                except Exception as exc:  # a sub-agent's failure is this task's result, not ours
                    result.outcome, result.error = Outcome.FAILED, f"{type(exc).__name__}: {exc}"
                else:
                    result.run = run
                    result.outcome, result.output, result.error = run.outcome, run.output, run.error
                if not result.outcome.ok:
                    failed.set()
                    if self.unit.on_error == "fail_fast":
                        return

        workers = [asyncio.create_task(worker()) for _ in range(min(self.unit.concurrency, len(tasks)))]
        if self.unit.on_error == "fail_fast":

            async def cancel_on_failure() -> None:
                await failed.wait()
                for w in workers:
                    w.cancel()  # cancels in-flight sub-runs; their tasks are reported CANCELLED

            watcher = asyncio.create_task(cancel_on_failure())
            await asyncio.gather(*workers, return_exceptions=True)
            watcher.cancel()
            for r in results.values():
                if r.outcome is Outcome.CANCELLED and r.start_order is not None:
                    r.error = "cancelled: another task failed (on_error: fail_fast)"
        else:
            await asyncio.gather(*workers)
        overall = Outcome.COMPLETED if all(r.outcome.ok for r in results.values()) else Outcome.FAILED
        return SupervisorResult(results, overall)
