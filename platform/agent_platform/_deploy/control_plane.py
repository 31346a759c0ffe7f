"""The control plane: a named, detached actor on the head node that holds the deployment.

It keeps one record per applied spec (hash, snapshot for diffs, generation, replica actor names,
status) and persists them to a JSON file on the head node after every change, so a restarted
control plane (it is created with unlimited restarts) comes back with the deployment intact.

It also owns what must outlive the command that asked for it:
- retiring replaced actors: each old replica drains (its runs in flight finish) before it is
  killed, so a changed spec never fails a run already running;
- detached runs (`platform run --detach`): the control plane makes the call and retries it on
  other replicas; on restart it resubmits top-level runs the run store still shows as
  unfinished (they resume from their checkpoints)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from agent_platform._deploy.apply_lock import Lease
from agent_platform._deploy.host import RunRequest
from agent_platform._deploy.router import CONTROL_PLANE, Router
from agent_platform._state_files import create_private_file, make_private_dirs

log = logging.getLogger(__name__)

RECOVERY_INTERVAL_S = 15.0
# A run not started or resumed for this long, that no live replica holds, is taken up again (the
# grace keeps the sweep off runs being handed to a replica right now).
STALE_AFTER_S = 30.0
FAILURE_PATIENCE_S = 300.0


class ControlPlane:
    def __init__(self, namespace: str, state_file: str, run_store_url: str, state_dir: str) -> None:
        self.namespace = namespace
        self.state_dir = state_dir
        self.state_file = Path(state_file)
        self.run_store_url = run_store_url
        self.records: dict[str, dict[str, Any]] = self._load()
        self.router = Router(namespace, run_store_url)
        self._background: set[asyncio.Task[Any]] = set()
        self._recovered = False
        self._apply_lease = Lease()  # in memory: a restarted control plane has no apply running
        self._driving: set[str] = set()  # detached and recovered runs this actor is driving
        self._draining: set[str] = set()  # replaced replicas finishing their runs in flight
        self._sweeper: asyncio.Task[None] | None = None

    # --- the deployment -----------------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("control plane state %s unreadable (%s): starting empty", self.state_file, exc)
            return {}
        return {str(k): dict(v) for k, v in data.get("records", {}).items()}

    def _save(self) -> None:
        make_private_dirs(self.state_file.parent)
        tmp = self.state_file.with_suffix(f".tmp{os.getpid()}")
        create_private_file(tmp)
        tmp.write_text(json.dumps({"records": self.records}, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.state_file)  # atomic: a crash leaves the old or the new state

    async def ping(self) -> dict[str, Any]:
        """Every command's first call."""
        import ray

        self._kick_recovery()
        return {"node_id": ray.get_runtime_context().get_node_id(), "records": len(self.records)}

    def _kick_recovery(self) -> None:
        """The first call after a (re)start resubmits the top-level runs the run store shows
        unfinished (a restart lost the calls driving them). Any call does, not only `ping`: a
        command's ping may have reached the instance that a restart then replaced, and routers
        ask for routes all the time."""
        if not self._recovered:
            self._spawn(self._recover_logged())

    async def _recover_logged(self) -> None:
        try:
            resumed = await self.recover()
        except Exception as exc:  # the store is down: the next ping tries again
            self._recovered = False
            log.error("could not resume unfinished runs: %s", exc)
            return
        if resumed:
            log.warning("resubmitted %d unfinished run(s): %s", len(resumed), ", ".join(resumed[:10]))

    def settings(self) -> dict[str, Any]:
        """Deployment-wide settings fixed by the first apply (every command then uses these)."""
        return {
            "namespace": self.namespace,
            "run_store_url": self.run_store_url,
            "state_dir": self.state_dir,
            "trace_file": str(Path(self.state_dir) / "traces.jsonl"),
        }

    async def list_records(self) -> dict[str, dict[str, Any]]:
        self._kick_recovery()
        return self.records

    def put(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.records[record["ref"]] = record
        self._save()

    def remove(self, refs: list[str]) -> None:
        for ref in refs:
            self.records.pop(ref, None)
        self._save()

    async def routes(self, unit: str) -> list[str]:
        self._kick_recovery()
        record = self.records.get(unit)
        if record is None or record.get("status") != "ready":
            return []
        return list(record.get("actors", []))

    # --- one apply at a time (see apply_lock.py) --------------------------------------------------

    def acquire_apply_lock(self, holder: dict[str, Any], lease_s: float) -> dict[str, Any] | None:
        return self._apply_lease.acquire(holder, lease_s)

    def renew_apply_lock(self, token: str, lease_s: float) -> bool:
        return self._apply_lease.renew(token, lease_s)

    def release_apply_lock(self, token: str) -> None:
        self._apply_lease.release(token)

    # --- retiring replaced actors -----------------------------------------------------------------

    async def retire(self, actor_names: list[str], grace_s: float) -> None:
        """Drain, then kill, replaced replicas (in the background: apply does not wait)."""
        self._spawn(self._retire(actor_names, grace_s))

    async def _retire(self, actor_names: list[str], grace_s: float) -> None:
        import ray

        # Until it is killed, a draining replica still holds its runs: the recovery sweep must
        # not resume them elsewhere (they finish here, on the version they started on).
        self._draining.update(actor_names)
        for name in actor_names:
            try:
                handle = ray.get_actor(name, namespace=self.namespace)
            except ValueError:
                self._draining.discard(name)
                continue
            with contextlib.suppress(Exception):
                left: int = await asyncio.wait_for(handle.drain.remote(grace_s), timeout=grace_s + 10)
                if left:
                    log.warning(
                        "%s still had %d call(s) in flight after %gs; killing it", name, left, grace_s
                    )
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)
            self._draining.discard(name)

    # --- detached runs --------------------------------------------------------------------------

    async def submit(self, request: RunRequest) -> str:
        self._spawn(self._drive(request))
        return request.run_id

    async def _drive(self, request: RunRequest) -> None:
        self._driving.add(request.run_id)
        try:
            await self.router.call(request)
        except Exception as exc:
            from agent_platform._faults import PlatformFault

            if isinstance(exc, PlatformFault):  # the store is down: the run is resumed, not failed
                log.warning(
                    "run %s is waiting for the run store (%s); recovery resumes it", request.run_id, exc
                )
                return
            log.error("detached run %s failed to dispatch: %s", request.run_id, exc)
            await self._record_failure(request, f"{type(exc).__name__}: {exc}")
        finally:
            self._driving.discard(request.run_id)

    async def _record_failure(self, request: RunRequest, error: str) -> None:
        """The run ends failed in the store, through an outage of the store; never dropped: if the
        store stays down, the error is logged and recovery takes the run up again later."""
        from agent_platform._faults import through_outage
        from agent_platform._runstore import open_run_store
        from agent_platform._runtime.durable import fail_run

        store = open_run_store(self.run_store_url)
        try:
            deadline = asyncio.get_running_loop().time() + FAILURE_PATIENCE_S
            await through_outage(
                lambda: fail_run(store, request, error, owner=CONTROL_PLANE),
                f"run {request.run_id}: recording its failure",
                deadline=deadline,
            )
        except Exception as exc:
            log.error(
                "run %s: its failure could not be recorded (%s); recovery will see it again",
                request.run_id,
                exc,
            )
        finally:
            await store.close()

    async def recover(self) -> list[str]:
        """Resubmit top-level runs left unfinished (a restart of this actor, of the cluster)."""
        if self._recovered:
            return []
        self._recovered = True
        resumed = await self._resubmit(stale_after=None)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return resumed

    async def _sweep(self) -> None:
        """Every RECOVERY_INTERVAL_S: resubmit the unfinished top-level runs nobody is running
        (their replica died, a call driving them failed, the store was down when they ended),
        so no run waits for a person to restart something."""
        while True:
            await asyncio.sleep(RECOVERY_INTERVAL_S)
            try:
                resumed = await self._resubmit(stale_after=STALE_AFTER_S)
            except Exception as exc:  # the store is down: the next sweep tries again
                log.warning("recovery sweep: %s", exc)
                continue
            if resumed:
                log.warning("resumed %d run(s) nobody was running: %s", len(resumed), ", ".join(resumed[:10]))

    async def _resubmit(self, *, stale_after: float | None) -> list[str]:
        from agent_platform._runstore import RunStatus, open_run_store
        from agent_platform._runstore.base import utcnow

        store = open_run_store(self.run_store_url)
        try:
            pending = [  # sub-runs are resumed by their parents' replicas, not from here
                r
                for status in (RunStatus.PENDING, RunStatus.RUNNING)
                for r in await store.list_runs(status=status, limit=10_000, top_level=True)
            ]
        finally:
            await store.close()
        now = utcnow()
        candidates = [
            r
            for r in pending
            if r.unit in self.records
            and r.run_id not in self._driving
            and (stale_after is None or (now - r.updated_at).total_seconds() > stale_after)
        ]
        if stale_after is not None:
            held = await self._held(candidates)
            candidates = [r for r in candidates if r.run_id not in held]
        for record in candidates:
            self._spawn(
                self._drive(RunRequest(record.run_id, record.unit, record.inputs, tenant=record.tenant))
            )
        return [r.run_id for r in candidates]

    async def _held(self, records: list[Any]) -> set[str]:
        """Which of these runs a live replica of their unit is running now (a replaced one that
        is draining included)."""
        import ray

        held: set[str] = set()
        by_unit: dict[str, list[str]] = {}
        for record in records:
            by_unit.setdefault(record.unit, []).append(record.run_id)
        for unit, run_ids in by_unit.items():
            for name in [*self.records.get(unit, {}).get("actors", []), *sorted(self._draining)]:
                try:
                    handle = ray.get_actor(name, namespace=self.namespace)
                    held.update(await asyncio.wait_for(handle.holding.remote(run_ids), timeout=10))
                except Exception:  # a replica that is gone holds nothing
                    continue
        return held

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
