"""The run operations of the HTTP API, against the deployment from inside an ingress replica:
runs go to the units' replicas through the `Router` (as hand-offs do), records come from the run
store, cancellation and resumption go through the deployment's control plane, as the CLI's do.

A run started here is driven by this replica's `Router` whether the request waits or not: the
run itself lives on a replica of its unit, which finishes it and records the result even if
this replica goes away; a run nobody finishes is taken up by the control plane's sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from agent_platform._deploy.host import RunRequest
from agent_platform._deploy.router import CONTROL_PLANE, HandoffFailed, Router
from agent_platform._runstore import RunRecord, RunStatus, RunStore, open_run_store
from agent_platform._runtime.services import new_run_id
from agent_platform._serve.errors import ApiError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1


class RunService:
    def __init__(self, namespace: str, store_url: str, concurrency: int) -> None:
        self.namespace = namespace
        self.store_url = store_url
        self.concurrency = concurrency
        self.router = Router(namespace, store_url)
        self._store: RunStore | None = None
        self._control: Any = None
        self._in_flight: dict[str, int] = {}
        self._driving: dict[str, asyncio.Task[Any]] = {}

    @property
    def store(self) -> RunStore:
        if self._store is None:
            self._store = open_run_store(self.store_url)
        return self._store

    def control(self) -> Any:
        if self._control is None:
            import ray

            try:
                self._control = ray.get_actor(CONTROL_PLANE, namespace=self.namespace)
            except ValueError:
                raise ApiError(
                    503, "unavailable", f"nothing is deployed in namespace {self.namespace!r}"
                ) from None
        return self._control

    def in_flight(self, unit: str) -> int:
        return self._in_flight.get(unit, 0)

    # --- runs ---------------------------------------------------------------------------------

    async def start(
        self, unit: str, inputs: dict[str, Any], *, tenant: str | None, wait: float | None
    ) -> tuple[RunRecord, bool]:
        """Start a run of `unit` (inputs already checked). With `wait`, hold until it settles or
        `wait` seconds pass. Returns the run as stored and whether it settled."""
        if self.in_flight(unit) >= self.concurrency:
            raise ApiError(
                429,
                "too_many_runs",
                f"{unit} already has {self.concurrency} run(s) in flight through this endpoint replica; "
                f"retry after {RETRY_AFTER_S}s",
                {"unit": unit, "limit": self.concurrency},
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        request = RunRequest(new_run_id(), unit, inputs, tenant=tenant)
        fresh = RunRecord(run_id=request.run_id, unit=unit, inputs=inputs, tenant=tenant)
        record = None
        if wait is None:
            # A detached run is recorded before it is handed on: its id may be read back at
            # once, and if this replica dies the control plane's sweep finds it and takes it up.
            # A waiting one is recorded by the replica that runs it (SQLite serialises writers
            # across processes: one writer fewer per run is what 100 clients notice).
            record = await self.store.create_run(fresh)
        self._in_flight[unit] = self.in_flight(unit) + 1
        task = asyncio.get_running_loop().create_task(self._drive(request))
        self._driving[request.run_id] = task
        task.add_done_callback(lambda _: self._finished(request))
        if record is not None:
            return record, False
        # shield: a client that hangs up does not cancel the run.
        done, _ = await asyncio.wait({asyncio.shield(task)}, timeout=wait)
        stored = await self.store.get_run(request.run_id) or await self.store.create_run(fresh)
        return stored, bool(done) and stored.status.settled

    def _finished(self, request: RunRequest) -> None:
        self._in_flight[request.unit] -= 1
        self._driving.pop(request.run_id, None)

    async def _drive(self, request: RunRequest) -> None:
        try:
            await self.router.call(request)
        except HandoffFailed as exc:
            await self.router.record_failure(request, str(exc))
        except Exception as exc:  # the run's record stays unfinished: the control plane resumes it
            log.warning("run %s: %s: %s", request.run_id, type(exc).__name__, exc)

    async def get(self, run_id: str) -> RunRecord:
        record = await self.store.get_run(run_id)
        if record is None:
            raise ApiError(404, "run_not_found", f"there is no run {run_id!r}")
        return record

    async def list(
        self, *, status: RunStatus | None, unit: str | None, limit: int, top_level: bool
    ) -> list[RunRecord]:
        return list(await self.store.list_runs(status=status, unit=unit, limit=limit, top_level=top_level))

    async def cancel(self, run_id: str, *, wait: float) -> RunRecord:
        from agent_platform._deploy.client import DeployError, Deployment
        from agent_platform._runstore import RunNotFound

        control = self.control()
        records: Mapping[str, Any] = await control.list_records.remote()
        deployment = Deployment(self.namespace, "", control)
        try:
            return await deployment.cancel_in(self.store, records, run_id, wait=wait)
        except RunNotFound:
            raise ApiError(404, "run_not_found", f"there is no run {run_id!r}") from None
        except DeployError as exc:
            raise ApiError(409, "run_ended", str(exc)) from None
        except TimeoutError:
            raise ApiError(
                504, "cancel_timeout", f"run {run_id} was asked to cancel but had not ended after {wait:g}s"
            ) from None

    async def wait(self, run_id: str, timeout: float) -> RunRecord:
        with contextlib.suppress(TimeoutError):
            return await self.store.wait(run_id, timeout=timeout)
        return await self.get(run_id)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
