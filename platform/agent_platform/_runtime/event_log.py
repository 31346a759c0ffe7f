"""Writes the run events of one runtime's runs to the run store, behind the runs.

`RunEventLog.emit` is what a run calls (through `RunState.events`): it appends the event to a
bounded in-memory buffer and returns. A writer task commits what is buffered, in order, as one
batch (`RunStore.append_events`), then rests `PACE` times as long as that took (at most
`MAX_REST_S`; a `flush` cuts the rest short) while the next batch gathers: followers lag a run
by at most about that, and under load the events of many steps and runs share a transaction
instead of each step paying for one. Following a run never fails it: a full buffer drops the new event, a store that
refuses a batch has it logged and tried again with backoff (kept while the buffer has room),
and each is counted (`dropped`, `failures`). `flush` waits (boundedly) until what was emitted
so far is stored: a run's end waits for it before it is recorded, so a follower that sees the
run settled finds every event before it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any

from agent_platform._runstore.base import JsonText
from agent_platform._runstore.events import NewEvent
from agent_platform._runtime.events import BaseRunEvent

log = logging.getLogger(__name__)

BUFFER_CAPACITY = 20_000  # events held while the store is slow or down, then new ones are dropped
BATCH = 2_000  # events per transaction
PACE = 4.0  # after a batch that took t, rest PACE * t: writing takes at most a fifth of the time
MAX_REST_S = 0.1  # ...and never longer: how far a follower may lag behind a run
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0
FLUSH_PATIENCE_S = 5.0  # how long a run's end waits for its events to be stored
_KIND = {"kind"}  # stored in its own column


class RunEventLog:
    """The event sink of the runs of one runtime (see the module docstring)."""

    def __init__(self, store: Any, *, capacity: int = BUFFER_CAPACITY, batch: int = BATCH) -> None:
        self.store = store
        self.capacity = capacity
        self.batch = batch
        self._pending: deque[NewEvent | tuple[str, BaseRunEvent, datetime]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._emitted = 0  # events accepted into the buffer, ever
        self._settled = 0  # of those, stored or given up on
        self._progress = asyncio.Event()
        self._hurry = asyncio.Event()  # a flush waits: write now, do not rest
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self._failing = False  # the last write failed: the writer is backing off

    def emit(self, run_id: str, event: BaseRunEvent) -> None:
        if len(self._pending) >= self.capacity:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("run events: buffer full, %d event(s) dropped so far", self.dropped)
            return
        # Encoded by the writer: the run only pays for the append.
        self._pending.append((run_id, event, datetime.now(UTC)))
        self._emitted += 1
        if self._task is None or self._task.done():
            # (Re)started on the running loop; its events belong to that loop.
            self._wake = asyncio.Event()
            self._progress = asyncio.Event()
            self._hurry = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        self._wake.set()

    async def flush(self, patience_s: float = FLUSH_PATIENCE_S) -> bool:
        """Wait until every event emitted before this call is stored (or given up on), at most
        `patience_s`; False when it was not. While the store refuses events, nobody waits: a
        run's end is not held up by what only followers miss."""
        target = self._emitted
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience_s
        if self._settled < target:
            self._hurry.set()
        while self._settled < target:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._failing or self._task is None or self._task.done():
                return False
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def aclose(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _take(self) -> list[NewEvent]:
        taken: list[NewEvent] = []
        while self._pending and len(taken) < self.batch:
            item = self._pending.popleft()
            if isinstance(item, tuple):
                run_id, event, at = item
                body = event.__pydantic_serializer__.to_json(event, exclude=_KIND).decode()
                item = NewEvent(run_id, event.kind, JsonText(body), at)
            taken.append(item)
        return taken

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay = RETRY_FIRST_S
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                started = loop.time()
                batch = self._take()
                try:
                    await self.store.append_events(batch)
                except (TypeError, ValueError) as exc:  # a body with no JSON form: a bug, not the store's
                    self.dropped += len(batch)
                    self._advance(len(batch))
                    log.error("run events: %d event(s) dropped: %s", len(batch), exc)
                    continue
                except Exception as exc:  # never the run's failure: logged, counted, tried again
                    self.failures += 1
                    self._failing = True
                    self._progress.set()  # a flush waiting for this batch stops waiting
                    room = self.capacity - len(self._pending)
                    kept = batch[:room] if room > 0 else []
                    self._pending.extendleft(reversed(kept))
                    lost = len(batch) - len(kept)
                    if lost:
                        self.dropped += lost
                        self._advance(lost)
                    log.warning(
                        "run events: %d event(s) not stored (%s: %s); trying again",
                        len(batch),
                        type(exc).__name__,
                        exc,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                    continue
                delay = RETRY_FIRST_S
                self._failing = False
                self.written += len(batch)
                self._advance(len(batch))
                await self._rest(min((loop.time() - started) * PACE, MAX_REST_S))

    async def _rest(self, seconds: float) -> None:
        """Let events gather for the next batch, unless a flush is waiting."""
        if self._hurry.is_set():
            self._hurry.clear()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), seconds)
        self._hurry.clear()

    def _advance(self, count: int) -> None:
        self._settled += count
        self._progress.set()
