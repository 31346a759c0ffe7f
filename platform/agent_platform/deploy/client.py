"""The driver side of a deployment: apply, get, delete, run, runs, result (used by the CLI).

Ray's own exceptions never reach the user: every failure here becomes a `DeployError` whose
message names the spec and what went wrong."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_platform.compile.plan import Plan, SupervisorUnit
from agent_platform.deploy.bundle import SpecBundle
from agent_platform.deploy.cluster import ClusterError, connect
from agent_platform.deploy.control_plane import ControlPlane
from agent_platform.deploy.credentials import runtime_env
from agent_platform.deploy.host import (
    CANCELLED_BY_USER,
    CONTROL_PLANE,
    HostConfig,
    Router,
    RunRequest,
    UnitHost,
    actor_name,
)
from agent_platform.deploy.placement import (
    NodeInfo,
    actor_options,
    capacity_shortfall,
    pick_pack_node,
    resource_demand,
    unplaceable_reason,
)
from agent_platform.deploy.reconcile import Action, desired_state, reconcile
from agent_platform.runstore.base import RunRecord, RunStoreError
from agent_platform.runtime.outcomes import RunResult
from agent_platform.runtime.services import new_run_id
from agent_platform.state_files import default_state_dir
from agent_platform.validate.references import SpecSet

READY_TIMEOUT_S = 90.0
DRAIN_GRACE_S = 120.0


class DeployError(RuntimeError):
    """A deployment problem, reported to the user as is (no traceback)."""


@dataclass
class ApplyReport:
    actions: list[Action]
    placements: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.kind] = counts.get(action.kind, 0) + 1
        return counts


class Deployment:
    """A connection to the control plane of one namespace on one cluster."""

    def __init__(self, namespace: str, address: str, control: Any) -> None:
        self.namespace = namespace
        self.address = address
        self.control = control

    # --- connecting ---------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        address: str | None,
        namespace: str,
        *,
        start: bool,
        run_store_url: str | None = None,
        create: bool = True,
        state_dir: Path | None = None,
    ) -> Deployment:
        try:
            resolved = connect(address, namespace, start=start)
        except ClusterError as exc:
            raise DeployError(str(exc)) from None
        import ray  # after connect(): it sets Ray's auth mode, read when Ray is imported

        control: Any = None
        with contextlib.suppress(ValueError):
            control = ray.get_actor(CONTROL_PLANE, namespace=namespace)
        if control is None:
            if not create:
                raise DeployError(f"nothing is deployed in namespace {namespace!r} at {resolved}")
            state = (state_dir or default_state_dir()).resolve()
            control = (
                ray.remote(ControlPlane)
                .options(
                    name=CONTROL_PLANE,
                    namespace=namespace,
                    lifetime="detached",
                    get_if_exists=True,
                    max_restarts=-1,
                    max_task_retries=-1,
                    num_cpus=0,
                    max_concurrency=1000,
                    # On the head node: it outlives worker nodes, and its state file lives there.
                    resources={"node:__internal_head__": 0.001},
                )
                .remote(
                    namespace,
                    str(state / "control-plane" / f"{namespace}.json"),
                    run_store_url or _default_store_url(state),
                    str(state),
                )
            )
        deployment = cls(namespace, resolved, control)
        deployment._call(control.ping.remote(), "reach the control plane", timeout=60)
        return deployment

    def _call(self, ref: Any, what: str, *, timeout: float = 30.0) -> Any:
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        try:
            return ray.get(ref, timeout=timeout)
        except GetTimeoutError:
            raise DeployError(f"timed out after {timeout:g}s trying to {what}") from None
        except RayError as exc:
            raise DeployError(f"could not {what}: {_first_line(exc)}") from None

    def settings(self) -> dict[str, Any]:
        return dict(self._call(self.control.settings.remote(), "read the deployment settings"))

    def records(self) -> dict[str, dict[str, Any]]:
        return dict(self._call(self.control.list_records.remote(), "read the deployment"))

    # --- apply ----------------------------------------------------------------------------------

    def apply(
        self,
        specs: SpecSet,
        plan: Plan,
        bundle: SpecBundle | None,
        *,
        dry_run: bool = False,
        prune: bool = False,
        approve_all: bool = False,
        trace_file: str | None = None,
    ) -> ApplyReport:
        desired = desired_state(specs, plan, os.environ)
        current = self._with_liveness(self.records())
        actions = reconcile(desired, current, prune=prune)
        report = ApplyReport(actions, dry_run=dry_run)
        if dry_run:
            return report
        assert bundle is not None, "a real apply needs the bundle"
        to_deploy = [a for a in actions if a.kind in ("create", "update") and a.has_actors]
        self._check_placement(to_deploy)
        settings = self.settings()
        config = HostConfig(
            namespace=self.namespace,
            state_dir=settings["state_dir"],
            run_store_url=settings["run_store_url"],
            trace_file=trace_file or settings.get("trace_file"),
            approve_all=approve_all,
            cwd=str(Path.cwd()),
        )
        # Replicas of all units start in parallel (each is a new worker process); `colocate`
        # units follow in a second wave, once the supervisors whose node they share are placed.
        waves = [
            [a for a in to_deploy if _strategy(a) != "colocate"],
            [a for a in to_deploy if _strategy(a) == "colocate"],
        ]
        new_records: list[dict[str, Any]] = []
        retired: list[str] = []
        created: list[Any] = []
        try:
            for wave in waves:
                started = [
                    (action, *self._create_replicas(action, bundle, config, plan, current, new_records))
                    for action in wave
                ]
                for _action, _generation, handles in started:
                    created.extend(handles)
                for action, generation, handles in started:
                    placement = self._await_ready(action, handles)
                    record = _record(
                        action,
                        generation=generation,
                        actors=[p["actor"] for p in placement],
                        placement=placement,
                    )
                    new_records.append(record)
                    report.placements[action.ref] = placement
        except DeployError:
            import ray

            for handle in created:
                with contextlib.suppress(Exception):
                    ray.kill(handle, no_restart=True)
            raise
        for action in actions:
            if action.kind in ("create", "update") and not action.has_actors and action.desired:
                new_records.append(_record(action, generation=0, actors=[], placement=[]))
            if action.kind == "update" and action.record:
                retired.extend(action.record.get("actors", []))
        self._call(self.control.put.remote(new_records), "record the deployment")
        deleted = [a for a in actions if a.kind == "delete"]
        if deleted:
            self._call(self.control.remove.remote([a.ref for a in deleted]), "remove deleted specs")
            for action in deleted:
                retired.extend((action.record or {}).get("actors", []))
        if retired:
            self._call(self.control.retire.remote(retired, DRAIN_GRACE_S), "retire replaced actors")
        return report

    def _with_liveness(self, records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Records whose replicas are gone (a node lost for good, a restarted cluster) are marked
        `missing`, so apply recreates them instead of calling them unchanged."""
        import ray

        for record in records.values():
            for name in record.get("actors", []):
                try:
                    ray.get_actor(name, namespace=self.namespace)
                except ValueError:
                    record["status"] = "missing"
                    break
        return records

    def _nodes(self) -> list[NodeInfo]:
        import ray

        return [NodeInfo.from_ray(n) for n in ray.nodes()]  # type: ignore[no-untyped-call]

    def _check_placement(self, actions: Sequence[Action]) -> None:
        import ray

        nodes = self._nodes()
        problems = []
        demands: dict[str, dict[str, float]] = {}
        for action in actions:
            assert action.desired is not None and action.desired.unit is not None
            actor = action.desired.unit.actor
            reason = unplaceable_reason(action.ref, actor, nodes)
            if reason:
                problems.append(reason)
            demands[action.ref] = {k: v * actor.replicas for k, v in resource_demand(actor).items()}
        if not problems:
            free = dict(ray.available_resources())  # type: ignore[no-untyped-call]
            pool = [NodeInfo("cluster", "", True, free, free)]
            # Pins claim a token amount of a resource the node carries whole: not a capacity limit.
            capacity = {
                ref: {k: v for k, v in claim.items() if k in ("CPU", "GPU", "memory")}
                for ref, claim in demands.items()
            }
            shortfall = capacity_shortfall(capacity, pool)
            if shortfall:
                problems.append(shortfall)
        if problems:
            raise DeployError("cannot place:\n  " + "\n  ".join(problems))

    def _create_replicas(
        self,
        action: Action,
        bundle: SpecBundle,
        config: HostConfig,
        plan: Plan,
        current: Mapping[str, Mapping[str, Any]],
        deployed_now: Sequence[Mapping[str, Any]],
    ) -> tuple[int, list[Any]]:
        import ray

        assert action.desired is not None and action.desired.unit is not None
        actor = action.desired.unit.actor
        generation = int((action.record or {}).get("generation", 0)) + 1
        affinity = None
        if actor.placement.strategy == "pack":
            affinity = pick_pack_node(actor, self._nodes())
        elif actor.placement.strategy == "colocate":
            affinity = self._caller_node(plan, action.ref, current, deployed_now)
        handles = []
        for replica in range(actor.replicas):
            name = actor_name(action.ref, generation, replica)
            options = actor_options(actor, name=name, namespace=self.namespace, affinity_node=affinity)
            credentials = runtime_env(action.desired.credential_vars, os.environ)
            if credentials is not None:
                options["runtime_env"] = credentials
            try:
                handle = (
                    ray.remote(UnitHost)
                    .options(**options)
                    .remote(bundle, action.ref, replica, generation, config)
                )
            except (ValueError, TypeError) as exc:
                raise DeployError(f"{action.ref}: Ray refused the actor options: {exc}") from None
            handles.append(handle)
        return generation, handles

    def _await_ready(self, action: Action, handles: Sequence[Any]) -> list[dict[str, Any]]:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        assert action.desired is not None and action.desired.unit is not None
        actor = action.desired.unit.actor
        pending = [h.where.remote() for h in handles]
        try:
            placement: list[dict[str, Any]] = ray.get(pending, timeout=READY_TIMEOUT_S)
            for handle in handles:  # fire and forget: the first run should not load the model
                handle.warm_up.remote()
        except GetTimeoutError:
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
            raise DeployError(
                f"{action.ref}: {len(pending) - len(ready)} of {len(pending)} replica(s) were not placed "
                f"within {READY_TIMEOUT_S:g}s (needs {_demand_text(resource_demand(actor))} each; "
                f"placement {actor.placement_reason})"
            ) from None
        except RayActorError as exc:
            raise DeployError(f"{action.ref}: a replica failed to start: {_first_line(exc)}") from None
        return placement

    def _caller_node(
        self,
        plan: Plan,
        ref: str,
        current: Mapping[str, Mapping[str, Any]],
        deployed_now: Sequence[Mapping[str, Any]],
    ) -> str | None:
        """The node of the unit that hands work to `ref` (a supervisor routing to it first, else an
        agent delegating to it or a pipeline calling it): `colocate` follows that caller."""
        records = {**current, **{r["ref"]: r for r in deployed_now}}
        callers = sorted(
            (u for u in plan.units.values() if ref in {str(d) for d in plan.graph.get(u.ref, [])}),
            key=lambda u: (not isinstance(u, SupervisorUnit), str(u.ref)),
        )
        for unit in callers:
            placement = (records.get(str(unit.ref)) or {}).get("placement") or []
            if placement:
                return str(placement[0]["node_id"])
        return None

    # --- get / delete -----------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Every record with the live health of its replicas."""
        import ray

        rows = []
        for ref, record in sorted(self.records().items()):
            replicas = []
            for name in record.get("actors", []):
                try:
                    where: Any = ray.get(
                        ray.get_actor(name, namespace=self.namespace).where.remote(), timeout=5
                    )
                    replicas.append({**where, "health": "ok"})
                except ValueError:  # no actor by that name: not a failure to reach one
                    replicas.append({"actor": name, "health": "gone (`platform apply` recreates it)"})
                except Exception as exc:
                    replicas.append({"actor": name, "health": f"unreachable ({type(exc).__name__})"})
            rows.append(
                {**{k: v for k, v in record.items() if k != "snapshot"}, "replicas": replicas, "ref": ref}
            )
        return rows

    def delete(self, refs: Sequence[str], *, force: bool = False) -> DeleteReport:
        """Delete what is deployed of `refs` and report the rest as not found. A spec that a
        deployed spec outside `refs` still uses (a Model, a Tool, a delegate) is refused, naming
        its users, unless `force`: its users would fail at their next run."""
        records = self.records()
        present = [r for r in refs if r in records]
        report = DeleteReport(not_found=[r for r in refs if r not in records])
        leaving = set(present)
        for ref in present:
            users = sorted(
                other
                for other, record in records.items()
                if other not in leaving and ref in record.get("depends_on", [])
            )
            if users and not force:
                report.in_use[ref] = users
            else:
                report.deleted.append(ref)
        if report.deleted:
            actors = [a for r in report.deleted for a in records[r].get("actors", [])]
            self._call(self.control.remove.remote(report.deleted), "remove specs")
            if actors:
                self._call(self.control.retire.remote(actors, DRAIN_GRACE_S), "retire actors")
        return report

    def resolve(self, name: str) -> str:
        records = self.records()
        if "/" in name:
            if name not in records:
                raise DeployError(f"{name} is not deployed")
            return name
        matches = [r for r in records if r.split("/", 1)[1] == name and records[r].get("actors")]
        if not matches:
            known = ", ".join(sorted(r for r in records if records[r].get("actors"))) or "nothing"
            raise DeployError(f"no deployed agent, pipeline or supervisor named {name!r} (deployed: {known})")
        if len(matches) > 1:
            raise DeployError(
                f"{name!r} is ambiguous ({' and '.join(sorted(matches))}); name it as Kind/name"
            )
        return matches[0]

    # --- runs ------------------------------------------------------------------------------------

    def input_problem(self, unit: str, inputs: Mapping[str, Any]) -> str | None:
        """What a replica of `unit` would refuse in `inputs` before running (None: they are fine)."""

        actors = self.records().get(unit, {}).get("actors") or []
        if not actors:
            raise DeployError(f"{unit} has no replicas")
        handle = self.actor(actors[0], unit)
        problem: str | None = self._call(handle.check_inputs.remote(unit, dict(inputs)), "check the inputs")
        return problem

    def actor(self, name: str, unit: str) -> Any:
        """The replica `name` of `unit`, or a DeployError saying it is gone and what to run."""
        import ray

        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            raise DeployError(
                f"replica {name} of {unit} is gone (its node was lost, it failed more often than "
                "it may restart, or an apply is replacing it): run `platform apply SPECS` to "
                f"recreate it, or `platform get {unit}` to see the others"
            ) from None

    def run(
        self, unit: str, inputs: Mapping[str, Any], *, run_id: str | None = None, tenant: str | None = None
    ) -> RunResult:
        request = RunRequest(run_id or new_run_id(), unit, dict(inputs), tenant=tenant)
        router = Router(self.namespace, self.settings()["run_store_url"])
        try:
            return asyncio.run(router.call(request))
        except Exception as exc:
            raise DeployError(f"run {request.run_id} of {unit} failed: {_first_line(exc)}") from None

    def submit(
        self, unit: str, inputs: Mapping[str, Any], *, run_id: str | None = None, tenant: str | None = None
    ) -> str:
        from agent_platform.runstore import RunRecord, open_run_store

        request = RunRequest(run_id or new_run_id(), unit, dict(inputs), tenant=tenant)

        async def record() -> None:
            store = open_run_store(self.settings()["run_store_url"])
            try:
                await store.create_run(
                    RunRecord(run_id=request.run_id, unit=unit, inputs=dict(inputs), tenant=tenant)
                )
            finally:
                await store.close()

        asyncio.run(record())
        return str(self._call(self.control.submit.remote(request), "submit the run"))

    def cancel(self, run_id: str, *, wait: float = 30.0) -> RunRecord:
        """Cancel a run and its unfinished hand-offs. A run in flight is cancelled on the replica
        running it; one that no replica holds (pending, or left by a lost replica) is finished
        `cancelled` in the run store, so nothing resumes it. Returns the finished record."""
        from agent_platform.runstore import RunNotFound, RunStatus, open_run_store

        store = open_run_store(self.settings()["run_store_url"])
        records = self.records()

        async def go() -> RunRecord:
            try:
                record = await store.get_run(run_id)
                if record is None:
                    raise RunNotFound(run_id)
                if record.finished:
                    raise DeployError(f"run {run_id} already ended: {record.status.value}")
                targets = [record, *await _unfinished_descendants(store, run_id)]
                for target in reversed(targets):  # hand-offs first: a parent waits for them
                    if not await self._cancel_in_flight(target, records):
                        latest = await store.get_run(target.run_id)
                        if latest is not None and not latest.finished:
                            with contextlib.suppress(RunStoreError):
                                await store.finish(
                                    target.run_id,
                                    latest.attempt,
                                    RunStatus.CANCELLED,
                                    error=CANCELLED_BY_USER,
                                )
                return await store.wait(run_id, timeout=wait)
            finally:
                await store.close()

        try:
            return asyncio.run(go())
        except TimeoutError:
            raise DeployError(f"run {run_id} was asked to cancel but had not ended after {wait:g}s") from None

    async def _cancel_in_flight(self, record: RunRecord, records: Mapping[str, Any]) -> bool:
        import ray

        for name in (records.get(record.unit) or {}).get("actors", []):
            try:
                handle = ray.get_actor(name, namespace=self.namespace)
                if await asyncio.wait_for(handle.cancel.remote(record.run_id), timeout=10):
                    return True
            except (ValueError, TimeoutError, ray.exceptions.RayError):
                continue
        return False

    def flush_traces(self, actors: Sequence[str]) -> None:
        import ray

        for name in set(actors):
            with contextlib.suppress(Exception):
                ray.get(ray.get_actor(name, namespace=self.namespace).flush.remote(), timeout=10)


@dataclass
class DeleteReport:
    deleted: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    in_use: dict[str, list[str]] = field(default_factory=dict)  # ref -> the deployed specs using it


async def _unfinished_descendants(store: Any, run_id: str) -> list[RunRecord]:
    """The run's hand-offs (and theirs) that have not ended, parents before children."""
    from agent_platform.runstore import RunStatus

    unfinished = [
        r
        for status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING_APPROVAL)
        for r in await store.list_runs(status=status, limit=10_000)
    ]
    children: dict[str, list[RunRecord]] = {}
    for r in unfinished:
        if r.parent_run_id:
            children.setdefault(r.parent_run_id, []).append(r)
    found: list[RunRecord] = []
    frontier = [run_id]
    while frontier:
        parent = frontier.pop(0)
        for child in children.get(parent, []):
            found.append(child)
            frontier.append(child.run_id)
    return found


def _record(
    action: Action, *, generation: int, actors: list[str], placement: list[dict[str, Any]]
) -> dict[str, Any]:
    desired = action.desired
    assert desired is not None
    return {
        "ref": action.ref,
        "kind": desired.kind,
        "name": desired.name,
        "spec_hash": desired.spec_hash,
        "effective_hash": desired.effective_hash,
        "snapshot": desired.snapshot,
        "source": desired.source,
        "depends_on": list(desired.depends_on),
        "credentials": dict(desired.credentials),
        "generation": generation,
        "actors": actors,
        "placement": placement,
        "replicas": len(actors),
        "status": "ready",
        "updated_at": time.time(),
    }


def _strategy(action: Action) -> str:
    unit = action.desired.unit if action.desired is not None else None
    return unit.actor.placement.strategy if unit is not None else "any"


def _default_store_url(state: Path) -> str:
    from agent_platform.runstore import default_run_store_url

    return str(default_run_store_url(state))


def _demand_text(demand: Mapping[str, float]) -> str:
    return ", ".join(
        f"{k} {v / 2**20:.0f}Mi" if k == "memory" else f"{k} {v:g}" for k, v in sorted(demand.items())
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # Ray wraps a remote exception with its traceback; the last line names the real error.
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line.strip()
    return lines[0] if lines else type(exc).__name__
