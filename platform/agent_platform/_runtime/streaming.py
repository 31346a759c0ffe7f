"""`Runtime.stream`: one run's events as they happen, in process, then its result.

The run's `RunState.events` is a sink that puts each event on a queue the caller reads; sub-runs
(hand-offs, supervisor tasks) share their parent's sink, so their events come through the same
stream, each with the id of the run that made it. Nothing is dropped: the queue holds what the
caller has not read yet, which is at most one run tree's events. The run is a task of its own, so
it goes on while the caller handles an event; leaving the `async with` block before the run ends
cancels it, and its result is then `cancelled`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from agent_platform._runtime.events import BaseRunEvent
from agent_platform._runtime.outcomes import Outcome, RunResult
from agent_platform._runtime.services import RunState


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a streamed run: which run made it (the top-level run, or a sub-run whose id
    extends it with `/…`) and what happened (`event.kind`, e.g. `tool_call.started`, and the
    fields of that kind; see docs/python-api.md)."""

    run_id: str
    event: BaseRunEvent

    @property
    def kind(self) -> str:
        return self.event.kind


class _QueueSink:
    __slots__ = ("queue",)

    def __init__(self) -> None:
        self.queue: asyncio.Queue[RunEvent | None] = asyncio.Queue()

    def emit(self, run_id: str, event: BaseRunEvent) -> None:
        self.queue.put_nowait(RunEvent(run_id, event))


class RunStream:
    """What `Runtime.stream` returns: an async context manager and an async iterator of
    `RunEvent`s; `result` is the `RunResult` once the events are exhausted.

        async with runtime.stream("researcher", {"topic": "tides"}) as run:
            async for item in run:
                print(item.kind)
        print(run.result.outcome)
    """

    def __init__(self, state: RunState, start: Callable[[RunState], Coroutine[Any, Any, RunResult]]) -> None:
        self._sink = _QueueSink()
        state.events = self._sink
        self._state = state
        self._start = start
        self._task: asyncio.Task[RunResult] | None = None
        self._result: RunResult | None = None
        self._exhausted = False

    @property
    def run_id(self) -> str:
        return self._state.run_id

    @property
    def result(self) -> RunResult:
        """The run's result; an error to ask before the stream has ended."""
        if self._result is None:
            raise RuntimeError("the run has not ended yet: read the stream to its end first")
        return self._result

    def _ensure_started(self) -> asyncio.Task[RunResult]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._start(self._state))
            self._task.add_done_callback(lambda _task: self._sink.queue.put_nowait(None))
        return self._task

    async def __aenter__(self) -> RunStream:
        self._ensure_started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
        # `wait`, not `await task`: the run's cancellation must not be taken for this caller's own
        # (which, if it comes now, propagates as it should).
        await asyncio.wait([task])
        self._settle(task)

    def _settle(self, task: asyncio.Task[RunResult]) -> None:
        if self._result is not None:
            return
        if not task.cancelled():
            self._result = task.result()  # a bug in the run (not a failed run) raises here
            return
        state = self._state  # a cancelled run ends without a result of its own
        self._result = RunResult(
            state.run_id,
            state.unit,
            Outcome.CANCELLED,
            error="the stream was closed before the run ended",
            usage=state.usage,
            cost_usd=state.cost_usd,
            iterations=state.iterations,
            tool_calls=state.tool_calls,
        )

    def __aiter__(self) -> AsyncIterator[RunEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[RunEvent]:
        task = self._ensure_started()
        if self._exhausted:
            return
        queue = self._sink.queue
        while True:
            item = await queue.get()
            if item is None:  # the run ended; everything it emitted was queued before this
                break
            yield item
        self._exhausted = True
        self._settle(task)
