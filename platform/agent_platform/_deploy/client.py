"""The driver side of a deployment: apply, get, delete, run, runs, result (used by the CLI).

Ray's own exceptions never reach the user: every failure here becomes a `DeployError` whose
message names the spec and what went wrong."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_platform._compile.plan import Plan, SupervisorUnit
from agent_platform._deploy import applied
from agent_platform._deploy.apply_lock import ApplyInProgress, Holder, LeaseKeeper, local_lock
from agent_platform._deploy.bundle import BundleError, SpecBundle
from agent_platform._deploy.cluster import ClusterError, connect, read_head, running_head, start_head
from agent_platform._deploy.control_plane import ControlPlane
from agent_platform._deploy.credentials import runtime_env
from agent_platform._deploy.host import CANCELLED_BY_USER, HostConfig, RunRequest, UnitHost, actor_name
from agent_platform._deploy.placement import (
    NodeInfo,
    actor_options,
    capacity_shortfall,
    pick_pack_node,
    resource_demand,
    unplaceable_reason,
)
from agent_platform._deploy.reconcile import Action, desired_state, reconcile, replacing
from agent_platform._deploy.router import CONTROL_PLANE, Router
from agent_platform._runstore.base import RunRecord, RunStoreError
from agent_platform._runtime.outcomes import RunResult
from agent_platform._runtime.services import new_run_id
from agent_platform._state_files import default_state_dir
from agent_platform._validate.references import SpecSet

READY_TIMEOUT_S = 90.0
DRAIN_GRACE_S = 120.0
# How long a command that finds the embedded head down waits for another command that is
# already starting it again (and restoring the deployment) before giving up.
HEAD_LOCK_WAIT_S = 300.0


class DeployError(RuntimeError):
    """A deployment problem, reported to the user as is (no traceback)."""


# Restoring a deployment after its head died: this layer recreates the units' replicas and the
# control plane; what sits above them (the HTTP endpoints, in serve/) is restored by its own
# layer, which this one must not import. Such a layer registers a hook here: it is called with
# the namespace, the state directory, what was applied there (oldest first) and where to tell
# the user what it did, once the namespace's units are back.
RestoreHook = Callable[[str, Path, Sequence[applied.AppliedBundle], Callable[[str], None]], None]
_restore_hooks: dict[str, RestoreHook] = {}


def on_restore(name: str, hook: RestoreHook) -> None:
    """Register (or replace, by `name`) a hook run after each namespace is restored."""
    _restore_hooks[name] = hook


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
        self.embedded = False  # the platform's own head: what is applied is kept for a restart

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
        lock_wait: float = HEAD_LOCK_WAIT_S,
        note: Callable[[str], None] | None = None,
    ) -> Deployment:
        """Connect to the deployment of `namespace`. On the embedded head, a head that died is
        started again and what was applied to it restored first (see `_bring_up_embedded`);
        `note` is told what happened, for the user."""
        state = (state_dir or default_state_dir()).resolve()
        embedded = _embedded(address)
        note = note or _stderr_note
        try:
            if embedded:
                cls._bring_up_embedded(namespace, state, start=start, wait=lock_wait, note=note)
            resolved = connect(address, namespace, start=start)
            head = running_head(state) if embedded else None
            resolved = head.address if head is not None else resolved  # as the user knows it
        except (ClusterError, ApplyInProgress) as exc:
            raise DeployError(str(exc)) from None
        import ray  # after connect(): it sets Ray's auth mode, read when Ray is imported

        control: Any = None
        with contextlib.suppress(ValueError):
            control = ray.get_actor(CONTROL_PLANE, namespace=namespace)
        if control is None:
            if not create:
                raise DeployError(f"nothing is deployed in namespace {namespace!r} at {resolved}")
            control = _create_control_plane(namespace, state, run_store_url)
        deployment = cls(namespace, resolved, control)
        deployment.embedded = embedded
        deployment._call(control.ping.remote(), "reach the control plane", timeout=60)
        return deployment

    @classmethod
    def _bring_up_embedded(
        cls,
        namespace: str,
        state: Path,
        *,
        start: bool,
        wait: float,
        note: Callable[[str], None] | None,
    ) -> None:
        """Start the embedded head (`start`), or start again one that died, and restore what was
        applied to it: its replicas are created and its records written before its control plane
        starts, so the control plane's recovery resubmits unfinished runs to replicas that
        exist. Under the state directory's apply lock: two commands that find the head down
        start one head and restore each deployment once."""
        if running_head(state) is not None:
            connect(None, namespace, start=False)
            if _needs_restore(namespace, state):
                with local_lock(
                    state, purpose="restore of the deployment", wait=wait, on_wait=_waiting(note)
                ):
                    if _needs_restore(namespace, state):
                        cls._restore_namespaces([namespace], state, note)
            return
        recorded = read_head(state)
        if recorded is None and not start:
            return  # connect() says that nothing is deployed
        purpose = "start of the local Ray head" if recorded is None else "restart of the local Ray head"
        with local_lock(state, purpose=purpose, wait=wait, on_wait=_waiting(note)):
            if running_head(state) is None:
                try:
                    head = start_head(state)
                except ClusterError as exc:
                    if recorded is None:
                        raise
                    raise ClusterError(
                        f"the local Ray head at {recorded.address} was down and could not be started "
                        f"again: {exc}. `platform down` forgets it (the run store is kept), then "
                        "`platform apply SPECS` starts afresh"
                    ) from None
                if recorded is not None and note is not None:
                    note(
                        f"the local Ray head at {recorded.address} was down; started it again at {head.address}"
                    )
            connect(None, namespace, start=False)
            cls._restore_namespaces(
                [ns for ns in applied.namespaces(state) if _needs_restore(ns, state)], state, note
            )

    @classmethod
    def _restore_namespaces(
        cls, namespaces: Sequence[str], state: Path, note: Callable[[str], None] | None
    ) -> None:
        for ns in namespaces:
            try:
                done = cls._restore(ns, state)
            except DeployError as exc:
                raise DeployError(
                    f"the local Ray head was down and was started again, but restoring namespace {ns!r} "
                    f"failed: {exc}; run `platform apply SPECS` to deploy it again"
                ) from None
            if note is not None and (done.restored or done.lost):
                text = f"namespace {ns!r}: re-applied {len(done.restored)} spec(s) with replicas"
                if done.lost:
                    text += (
                        f"; could not restore {', '.join(done.lost)} ({done.why}): "
                        "run `platform apply SPECS` for them"
                    )
                note(text)
            for line in done.missing_credentials:
                if note is not None:
                    note(line)
            told = note or _stderr_note
            for name, hook in list(_restore_hooks.items()):
                try:
                    hook(ns, state, applied.load(state, ns), told)
                except Exception as exc:  # the units are back; say what is not, and what to run
                    told(
                        f"namespace {ns!r}: restoring its {name} failed ({_first_line(exc)}): "
                        "run `platform apply SPECS` to deploy them again"
                    )

    @classmethod
    def _restore(cls, namespace: str, state: Path) -> RestoreReport:
        """Recreate the replicas of every record of `namespace` from the bundle that last applied
        it (see applied.py), then start its control plane on the updated records."""
        report = RestoreReport()
        state_file = applied.control_state_file(state, namespace)
        records = applied.read_records(state_file)
        wanted = {ref for ref, r in records.items() if r.get("actors")}
        deployment = cls(namespace, "", None)
        settings = applied.load_settings(state, namespace)
        for entry in applied.load(state, namespace):
            refs = [r for r in entry.refs if r in wanted]
            if not refs:
                continue
            try:
                specs, plan = compile_bundle(entry.bundle)
            except (BundleError, OSError) as exc:
                report.lost.extend(refs)
                report.why = str(exc)
                wanted -= set(refs)
                continue
            current = {ref: {**record, "status": "missing"} for ref, record in records.items()}
            desired = desired_state(specs, plan, os.environ)
            actions = [
                a
                for a in reconcile(desired, current, prune=False)
                if a.ref in refs and a.kind in ("create", "update") and a.has_actors
            ]
            config = HostConfig(
                namespace=namespace,
                state_dir=settings["state_dir"],
                run_store_url=settings["run_store_url"],
                trace_file=entry.trace_file or settings["trace_file"],
                approve_all=entry.approve_all,
                cwd=entry.cwd,
            )
            new_records, _ = deployment._deploy(actions, entry.bundle, config, plan, current)
            for record in new_records:
                records[record["ref"]] = record
                report.restored.append(record["ref"])
            for action in actions:
                assert action.desired is not None
                unset = [v for v in action.desired.credential_vars if not os.environ.get(v)]
                if unset:
                    report.missing_credentials.append(
                        f"{action.ref} reads {', '.join(unset)}, which this command's environment does "
                        "not set: run `platform apply SPECS` from a shell that has it"
                    )
            wanted -= set(refs)
        for ref in sorted(wanted):  # applied by a platform that kept no bundle
            report.lost.append(ref)
            report.why = report.why or "its specs were not kept"
            records[ref] = {**records[ref], "status": "missing"}
        applied.write_records(state_file, records)
        _create_control_plane(namespace, state, settings["run_store_url"])
        return report

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
        lock_wait: float = 0.0,
        note: Callable[[str], None] | None = None,
        replace: Sequence[str] = (),
    ) -> ApplyReport:
        """Reconcile the deployment with `specs`, holding the control plane's apply lease (one
        apply at a time per namespace, from any machine) from reading the records to writing
        them. A second apply waits up to `lock_wait` seconds, then gets `DeployError`. The specs
        in `replace`, and the units that depend on them, are updated even when unchanged
        (`platform dev`: a plugin's code changed)."""
        if dry_run:
            desired = desired_state(specs, plan, os.environ)
            actions = reconcile(desired, self._with_liveness(self.records()), prune=prune)
            return ApplyReport(actions, dry_run=True)
        assert bundle is not None, "a real apply needs the bundle"
        keeper = LeaseKeeper(self._lease_call, wait=lock_wait, on_wait=_waiting(note))
        try:
            with keeper:
                report = self._apply(
                    specs,
                    plan,
                    bundle,
                    prune=prune,
                    approve_all=approve_all,
                    trace_file=trace_file,
                    replace=replace,
                )
        except ApplyInProgress as exc:
            raise DeployError(str(exc)) from None
        if keeper.lost and note is not None:
            note(
                "the apply lock ran out while this apply ran (a stall longer than the lease): check `platform get`"
            )
        return report

    def _lease_call(self, method: str, *args: Any) -> Any:
        try:
            remote = getattr(self.control, method)
        except AttributeError:
            # A control plane started by an earlier platform has no lease: the apply goes ahead
            # as it did then (on the embedded head, the state directory's lock still holds).
            return None if method == "acquire_apply_lock" else True
        return self._call(remote.remote(*args), "hold the apply lock", timeout=30)

    def _apply(
        self,
        specs: SpecSet,
        plan: Plan,
        bundle: SpecBundle,
        *,
        prune: bool,
        approve_all: bool,
        trace_file: str | None,
        replace: Sequence[str] = (),
    ) -> ApplyReport:
        desired = desired_state(specs, plan, os.environ)
        current = self._with_liveness(self.records())
        actions = replacing(reconcile(desired, current, prune=prune), replace)
        report = ApplyReport(actions)
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
        new_records, report.placements = self._deploy(to_deploy, bundle, config, plan, current)
        retired: list[str] = []
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
        if self.embedded:
            # Kept for a restart of the head (applied.py): the refs whose records this apply wrote.
            applied.record_apply(
                Path(settings["state_dir"]),
                self.namespace,
                bundle,
                [a.ref for a in actions if a.kind in ("create", "update", "unchanged") and a.desired],
                approve_all=approve_all,
                trace_file=trace_file,
                cwd=config.cwd,
                deleted=[a.ref for a in deleted],
                settings=settings,
            )
        return report

    def _deploy(
        self,
        to_deploy: Sequence[Action],
        bundle: SpecBundle,
        config: HostConfig,
        plan: Plan,
        current: Mapping[str, Mapping[str, Any]],
    ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """Start the replicas of `to_deploy` and wait until each answers; their new records and
        placements. On a failure, the replicas started so far are killed."""
        # Replicas of all units start in parallel (each is a new worker process); `colocate`
        # units follow in a second wave, once the supervisors whose node they share are placed.
        waves = [
            [a for a in to_deploy if _strategy(a) != "colocate"],
            [a for a in to_deploy if _strategy(a) == "colocate"],
        ]
        new_records: list[dict[str, Any]] = []
        placements: dict[str, list[dict[str, Any]]] = {}
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
                    placements[action.ref] = placement
        except DeployError:
            import ray

            for handle in created:
                with contextlib.suppress(Exception):
                    ray.kill(handle, no_restart=True)
            raise
        return new_records, placements

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
        """Every record with the live health of its replicas. A record whose replicas are gone
        gets a `problem`: what happened to them and what to run."""
        import ray

        rows = []
        records = sorted(self.records().items())
        gone: list[str] = []
        for ref, record in records:
            replicas = []
            for name in record.get("actors", []):
                try:
                    where: Any = ray.get(
                        ray.get_actor(name, namespace=self.namespace).where.remote(), timeout=5
                    )
                    replicas.append({**where, "health": "ok"})
                except ValueError:  # no actor by that name: not a failure to reach one
                    replicas.append({"actor": name, "health": "gone"})
                    gone.append(name)
                except Exception as exc:
                    replicas.append({"actor": name, "health": _unreachable(exc)})
            rows.append(
                {**{k: v for k, v in record.items() if k != "snapshot"}, "replicas": replicas, "ref": ref}
            )
        if gone:
            deaths = self._deaths(gone)
            for row in rows:
                _explain_gone(row, deaths)
        return rows

    def _deaths(self, names: Sequence[str]) -> dict[str, ReplicaDeath]:
        """How the replicas `names` of this namespace died, from the cluster's actor table (which
        keeps dead actors; a lookup by name no longer finds them). Best effort: a cluster that
        does not say leaves them unexplained."""
        try:
            from ray._private import state  # no public API reads dead actors without the dashboard

            table = state.actors(actor_state_name="DEAD")
        except Exception:
            return {}
        wanted = set(names)
        deaths: dict[str, ReplicaDeath] = {}
        for info in table.values():
            name = info.get("Name") or ""
            if name not in wanted or not _in_namespace(info, self.namespace):
                continue
            death = ReplicaDeath(
                restarts=int(info.get("NumRestarts") or 0),
                killed=_killed_on_purpose(info),
                ended=float(info.get("EndTime") or 0),
            )
            if name not in deaths or death.ended > deaths[name].ended:  # the latest of that name
                deaths[name] = death
        return deaths

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
            if self.embedded:
                applied.forget(Path(self.settings()["state_dir"]), self.namespace, report.deleted)
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
        from agent_platform._runstore import RunRecord, open_run_store

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
        from agent_platform._runstore import open_run_store

        store = open_run_store(self.settings()["run_store_url"])
        records = self.records()

        async def go() -> RunRecord:
            try:
                return await self.cancel_in(store, records, run_id, wait=wait)
            finally:
                await store.close()

        try:
            return asyncio.run(go())
        except TimeoutError:
            raise DeployError(f"run {run_id} was asked to cancel but had not ended after {wait:g}s") from None

    async def cancel_in(
        self, store: Any, records: Mapping[str, Any], run_id: str, *, wait: float
    ) -> RunRecord:
        """`cancel` on an event loop that is already running (the HTTP API's), with the run store
        and the deployment's records at hand. Raises RunNotFound, DeployError (the run already
        ended) and TimeoutError."""
        from agent_platform._runstore import RunNotFound, RunStatus

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
        result: RunRecord = await store.wait(run_id, timeout=wait)
        return result

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


@dataclass(frozen=True)
class ReplicaDeath:
    """What the cluster remembers of a replica that died for good."""

    restarts: int  # how often Ray restarted it before giving up
    killed: bool  # killed on purpose (an apply retiring it, `ray.kill`), not crashed
    ended: float  # when, in the cluster's milliseconds: the latest actor of a name is the one


def _in_namespace(info: Mapping[str, Any], namespace: str) -> bool:
    """Actor names repeat across namespaces; the death record names the namespace (when the
    cluster does not say, the name alone decides)."""
    cause = info.get("DeathCause")
    context = getattr(cause, "actor_died_error_context", None)
    recorded = getattr(context, "ray_namespace", "") if context is not None else ""
    return not recorded or recorded == namespace


def _killed_on_purpose(info: Mapping[str, Any]) -> bool:
    cause = info.get("DeathCause")
    context = getattr(cause, "actor_died_error_context", None)
    if context is None:
        return False
    reason = type(context).Reason.Name(context.reason)  # the protobuf enum's name
    return reason in ("RAY_KILL", "OUT_OF_SCOPE", "REF_DELETED")


def _explain_gone(row: dict[str, Any], deaths: Mapping[str, ReplicaDeath]) -> None:
    """Each gone replica's health says how it died, and the record a `problem` naming what to
    run: an apply recreates replicas that are gone (their record is `missing`)."""
    gone = [r for r in row.get("replicas", []) if r.get("health") == "gone"]
    if not gone:
        return
    restarts: list[int] = []
    for replica in gone:
        death = deaths.get(str(replica["actor"]))
        if death is None:
            replica["health"] = "gone (its node was lost, or the cluster restarted)"
        elif death.killed:
            replica["health"] = "gone (killed)"
        else:
            restarts.append(death.restarts)
            replica["health"] = f"gone (died for good after {_times(death.restarts, 'restart')})"
    which = (
        "all replicas"
        if len(gone) == len(row["replicas"])
        else f"{len(gone)} of {len(row['replicas'])} replicas"
    )
    why = f"restarted {_times(max(restarts), 'time')}, then died for good" if restarts else "not running"
    row["problem"] = f"{which} of {row['ref']} are gone ({why}): run `platform apply SPECS` to recreate them"


def _unreachable(exc: BaseException) -> str:
    """A replica that exists but did not answer `where`, in words (not Ray's exception text)."""
    from ray.exceptions import GetTimeoutError, RayActorError

    if isinstance(exc, GetTimeoutError):
        return "unreachable (no answer within 5s: busy, or its node is slow)"
    if isinstance(exc, RayActorError):
        return "unreachable (restarting, or dying: `platform get` again shows which)"
    return f"unreachable ({type(exc).__name__})"


def _times(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class DeleteReport:
    deleted: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    in_use: dict[str, list[str]] = field(default_factory=dict)  # ref -> the deployed specs using it


async def _unfinished_descendants(store: Any, run_id: str) -> list[RunRecord]:
    """The run's hand-offs (and theirs) that have not ended, parents before children."""
    from agent_platform._runstore import RunStatus

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


@dataclass
class RestoreReport:
    restored: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    why: str = ""
    missing_credentials: list[str] = field(default_factory=list)


def _stderr_note(text: str) -> None:
    print(f"platform: {text}", file=sys.stderr, flush=True)


def _embedded(address: str | None) -> bool:
    """Whether this command uses the platform's own head (not a cluster given by address, nor a
    connection this process already has: tests and benchmarks)."""
    if address or os.environ.get("RAY_ADDRESS"):
        return False
    loaded = sys.modules.get("ray")
    return not (loaded is not None and loaded.is_initialized())


def _needs_restore(namespace: str, state: Path) -> bool:
    """A namespace with replicas on record whose control plane is not running: the head it was
    applied to died (this checks the live head, so Ray must be connected, or the head just
    started)."""
    records = applied.read_records(applied.control_state_file(state, namespace))
    if not any(r.get("actors") for r in records.values()):
        return False
    loaded = sys.modules.get("ray")
    if loaded is None or not loaded.is_initialized():
        return True  # not connected yet: the caller connects, then asks again
    try:
        loaded.get_actor(CONTROL_PLANE, namespace=namespace)
    except ValueError:
        return True
    return False


def _waiting(note: Callable[[str], None] | None) -> Callable[[Holder | None], None] | None:
    if note is None:
        return None

    def told(holder: Holder | None) -> None:
        who = f" ({holder.describe()})" if holder is not None else ""
        what = holder.purpose if holder is not None else "apply"
        note(f"waiting for another {what}{who} to finish")

    return told


def _create_control_plane(namespace: str, state: Path, run_store_url: str | None) -> Any:
    import ray

    return (
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
            str(applied.control_state_file(state, namespace)),
            run_store_url or _default_store_url(state),
            str(state),
        )
    )


def compile_bundle(bundle: SpecBundle) -> tuple[SpecSet, Plan]:
    """As `SpecBundle.compile`, with the validated specs too (reconcile and the endpoints'
    restore need them). Raises BundleError."""
    from agent_platform._compile import build_output_models, compile_specs
    from agent_platform._diagnostics import Diagnostics
    from agent_platform._load import load_text
    from agent_platform._validate import ValidationOptions, validate_documents

    diagnostics = Diagnostics()
    documents = []
    for path, text in bundle.files:
        loaded = load_text(text, path)
        documents.extend(loaded.documents)
        diagnostics.extend(loaded.diagnostics)
    options = ValidationOptions(plugin_paths=[Path(p) for p in bundle.plugin_paths])
    report = validate_documents(documents, diagnostics, options)
    if report.ok:
        plan = compile_specs(report.specs)
        build_output_models(plan, report.diagnostics)
        if not report.diagnostics.has_errors:
            return report.specs, plan
    errors = "; ".join(str(d) for d in report.diagnostics.sorted()[:3])
    raise BundleError(f"the specs it was applied from no longer validate: {errors}")


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
    from agent_platform._runstore import default_run_store_url

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
