"""Hand-offs between units: the `Router` finds the replicas of a unit (from the control plane)
and sends a run to one of them, balancing calls, retrying a replica that died and refreshing its
view of the replicas when they change. It is used wherever a run crosses actors: a unit's
hand-offs (`host.py`), the control plane's resumptions, the HTTP API and the CLI's deployed runs.
A hand-off that no replica could take ends as `HandoffFailed`."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from agent_platform._runtime.durable import (
    SUPERSEDED,
    RunRequest,
)
from agent_platform._runtime.outcomes import Outcome, RunResult

log = logging.getLogger(__name__)

CONTROL_PLANE = "platform-control-plane"
ROUTE_TTL_S = 2.0
HANDOFF_ATTEMPTS = 8


class HandoffFailed(RuntimeError):
    pass


class Unanswered(RuntimeError):
    """A replica's stream of results ended without a run's (Ray re-ran the call on the restarted
    replica, whose stream may be cut differently): the run is asked for again, which returns its
    stored result or resumes it."""


class Router:
    """Finds the replicas of a unit (from the control plane) and balances calls across them.

    Replica choice: fewest calls in flight from this process, ties broken at random. A replica
    that died (after Ray's own restarts and task retries gave up) is dropped from the cached
    routes and the call goes to another one. A run whose replica answers that it was superseded
    (another replica took the run over) is waited for in the run store: the caller gets the
    run's real result, not the loser's.

    Routes are refreshed by one request at a time per unit: a supervisor starting 1,000 tasks
    when the cache has just expired would otherwise send 1,000 identical requests to the control
    plane (each also resolving its actor by name, a blocking GCS call on the event loop)."""

    def __init__(self, namespace: str, store_url: str | None = None) -> None:
        self.namespace = namespace
        self.store_url = store_url
        self._routes: dict[str, tuple[float, list[str]]] = {}
        self._refreshing: dict[str, asyncio.Future[list[str]]] = {}
        self._in_flight: dict[str, int] = {}
        self._handles: dict[str, Any] = {}
        self._control: Any = None
        self._batches: dict[str, list[tuple[RunRequest, asyncio.Future[RunResult]]]] = {}
        self._streams: set[asyncio.Task[None]] = set()
        self.route_requests = 0

    async def _replicas(self, unit: str, *, refresh: bool = False) -> list[str]:
        cached = self._routes.get(unit)
        if cached is not None and not refresh and time.monotonic() - cached[0] < ROUTE_TTL_S:
            return cached[1]
        pending = self._refreshing.get(unit)
        if pending is None:
            pending = self._refreshing[unit] = asyncio.ensure_future(self._fetch_routes(unit))
            pending.add_done_callback(lambda _: self._refreshing.pop(unit, None))
        # Shielded: a caller cancelled while waiting (a task timeout) must not cancel the others'.
        return await asyncio.shield(pending)

    async def _fetch_routes(self, unit: str) -> list[str]:
        import ray

        self.route_requests += 1
        if self._control is None:
            self._control = ray.get_actor(CONTROL_PLANE, namespace=self.namespace)
        try:
            names: list[str] = await self._control.routes.remote(unit)
        except Exception:
            self._control = None  # a control plane deleted and created again: resolve it anew
            raise
        self._routes[unit] = (time.monotonic(), names)
        return names

    def _handle(self, name: str) -> Any:
        import ray

        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = ray.get_actor(name, namespace=self.namespace)
        return handle

    async def call(self, request: RunRequest) -> RunResult:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        last_error = ""
        for attempt in range(HANDOFF_ATTEMPTS):
            names = await self._replicas(request.unit, refresh=attempt > 0)
            if not names:
                raise HandoffFailed(f"{request.unit} is not deployed (apply its spec first)")
            name = min(names, key=lambda n: (self._in_flight.get(n, 0), random.random()))
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
            try:
                result = await self._send(name, request)
                if result.outcome is Outcome.CANCELLED and (result.error or "").startswith(SUPERSEDED):
                    return await self._result_of(request, result)
                return result
            except (ActorDiedError, ActorUnavailableError, RayActorError, ValueError, Unanswered) as exc:
                # ValueError: the named actor is gone (replaced by a newer generation, or dead
                # for good); Ray's lookup message is not for users.
                last_error = (
                    f"replica {name} is gone: `platform get` says why, `platform apply SPECS` recreates it"
                    if isinstance(exc, ValueError)
                    else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                )
                if not isinstance(exc, Unanswered):
                    self._handles.pop(name, None)
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
            finally:
                self._in_flight[name] -= 1
        raise HandoffFailed(
            f"{request.unit}: no replica could take run {request.run_id} after {HANDOFF_ATTEMPTS} attempts "
            f"({last_error})"
        )

    def _send(self, name: str, request: RunRequest) -> asyncio.Future[RunResult]:
        """The request's result from replica `name`, sent with the other requests for that replica
        made in the same turn of the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RunResult] = loop.create_future()
        batch = self._batches.get(name)
        if batch is None:
            batch = self._batches[name] = []
            loop.call_soon(self._flush, name)
        batch.append((request, future))
        return future

    def _flush(self, name: str) -> None:
        batch = self._batches.pop(name)
        task = asyncio.get_running_loop().create_task(self._stream(name, batch))
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)

    async def _stream(self, name: str, batch: list[tuple[RunRequest, asyncio.Future[RunResult]]]) -> None:
        """One Ray call for the batch (Ray's own cost per call, CPU in both processes, would
        otherwise exceed the runs'); the replica streams results back as runs
        finish. A failed call fails every request not answered yet: each caller retries its own.
        A request whose caller stopped waiting (a task timeout) is skipped."""
        try:
            handle = self._handle(name)
            if len(batch) == 1:  # a plain call costs less than a stream of one
                request, future = batch[0]
                result = await handle.run.remote(request)
                if not future.done():
                    future.set_result(result)
                return
            stream = handle.run_batch.options(num_returns="streaming").remote([r for r, _ in batch])
            async for ref in stream:
                for index, result in await ref:
                    future = batch[index][1]
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        except Exception as exc:
            failure: BaseException = exc
        else:
            failure = Unanswered(f"replica {name} ended a batch of runs without all their results")
        for _, future in batch:
            if not future.done():
                future.set_exception(failure)

    async def record_failure(self, request: RunRequest, error: str) -> None:
        """No replica could take the hand-off: its record ends failed, so that it does not stay
        `running` forever with nobody to finish it (its caller is told by the result)."""
        if self.store_url is None:
            return
        from agent_platform._runstore import open_run_store
        from agent_platform._runtime.durable import fail_run

        store = open_run_store(self.store_url)
        try:
            await fail_run(store, request, error, owner="router")
        except Exception as exc:  # the store is down too: the caller's resume asks again
            log.warning("hand-off %s: its failure could not be recorded: %s", request.run_id, exc)
        finally:
            await store.close()

    async def _result_of(self, request: RunRequest, superseded: RunResult) -> RunResult:
        if self.store_url is None:
            return superseded
        from agent_platform._runstore import open_run_store

        store = open_run_store(self.store_url)
        try:
            record = await store.wait(request.run_id, timeout=None)
        finally:
            await store.close()
        if record.result is None:
            return RunResult(request.run_id, request.unit, Outcome.FAILED, error=record.error)
        return RunResult.from_json(record.result)
