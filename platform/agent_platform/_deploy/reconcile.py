"""What `apply` must do: the desired specs against the deployed records. Pure (no Ray).

Every spec kind is recorded (a Tool or a Model has no actors, but changing it changes the units
that use it): a unit is replaced when its own spec *or anything it depends on* changed — its
effective hash covers its dependencies transitively. Applying the same specs twice is a no-op."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_platform._compile.compiler import spec_hash
from agent_platform._compile.plan import AnyUnit, Plan, SpecRef
from agent_platform._validate.references import SpecSet

ActionKind = Literal["create", "update", "unchanged", "delete", "orphan"]


@dataclass
class DesiredSpec:
    ref: str
    kind: str
    name: str
    spec_hash: str
    effective_hash: str
    snapshot: dict[str, Any]
    source: str
    unit: AnyUnit | None = None
    depends_on: list[str] = field(default_factory=list)
    # The environment variables its replicas read (keys), and the fingerprints of their values in
    # the applying process (see credentials.py).
    credential_vars: list[str] = field(default_factory=list)
    credentials: dict[str, str] = field(default_factory=dict)


@dataclass
class Action:
    kind: ActionKind
    ref: str
    desired: DesiredSpec | None = None
    record: Mapping[str, Any] | None = None
    changed_dependencies: list[str] = field(default_factory=list)
    diff: Any = None  # deploy.diff.SpecDiff for updates
    changed_credentials: list[str] = field(default_factory=list)

    @property
    def has_actors(self) -> bool:
        if self.desired is not None:
            return self.desired.unit is not None
        return bool(self.record and self.record.get("actors"))


def desired_state(
    specs: SpecSet, plan: Plan, environ: Mapping[str, str] | None = None
) -> dict[str, DesiredSpec]:
    """What the specs ask for. `environ` (the applying process's environment) gives the values of
    the credentials each unit reads; without it, credentials are not compared."""
    from agent_platform._deploy.credentials import credential_vars, fingerprints
    from agent_platform._deploy.diff import snapshot_of

    own: dict[str, str] = {}
    behaviour: dict[str, str] = {}
    desired: dict[str, DesiredSpec] = {}
    for typed in specs.specs:
        ref = str(SpecRef(typed.kind, typed.name))
        own[ref] = spec_hash(typed)
        behaviour[ref] = _behaviour_hash(snapshot_of(typed))
        server = plan.mcp_servers.get(typed.name) if typed.kind == "McpServer" else None
        if server is not None:
            # What mcp.lock.yaml pins is part of what the server does: tools accepted with
            # `plan --update-mcp-lock` replace the replicas that call them (they compiled the old pins).
            pins = json.dumps(
                {name: tool.to_json() for name, tool in sorted(server.pinned.items())}, sort_keys=True
            )
            own[ref] = hashlib.sha256(f"{own[ref]}\0{pins}".encode()).hexdigest()[:16]
            behaviour[ref] = hashlib.sha256(f"{behaviour[ref]}\0{pins}".encode()).hexdigest()[:16]
        desired[ref] = DesiredSpec(
            ref=ref,
            kind=typed.kind,
            name=typed.name,
            spec_hash=own[ref],
            effective_hash="",
            snapshot=snapshot_of(typed),
            source=typed.document.file,
            unit=plan.units.get(SpecRef(typed.kind, typed.name)),
        )
    graph = {str(k): sorted(str(d) for d in v) for k, v in plan.graph.items()}
    for ref, spec in desired.items():
        closure = _closure(ref, graph)
        spec.depends_on = sorted(closure - {ref})
        sha = hashlib.sha256()
        for dep in sorted(closure):
            # A unit's own hash covers all of it; a dependency counts by what it does, not by
            # where it runs (a delegate scaled up does not replace its supervisor).
            sha.update(f"{dep}={own.get(dep, '?') if dep == ref else behaviour.get(dep, '?')};".encode())
        spec.effective_hash = sha.hexdigest()[:16]
        if spec.unit is not None:
            spec.credential_vars = credential_vars(
                desired[d].snapshot for d in sorted(closure) if d in desired
            )
            spec.credentials = fingerprints(spec.credential_vars, environ or {})
    return desired


def _behaviour_hash(snapshot: Mapping[str, Any]) -> str:
    spec = {k: v for k, v in (snapshot.get("spec") or {}).items() if k != "runtime"}
    payload = json.dumps({**snapshot, "spec": spec}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _closure(ref: str, graph: Mapping[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = [ref]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(graph.get(current, []))
    return seen


def reconcile(
    desired: Mapping[str, DesiredSpec], current: Mapping[str, Mapping[str, Any]], *, prune: bool
) -> list[Action]:
    from agent_platform._deploy.diff import diff_specs

    actions: list[Action] = []
    for ref in sorted(desired):
        want = desired[ref]
        record = current.get(ref)
        if record is None:
            actions.append(Action("create", ref, want))
            continue
        from agent_platform._deploy.credentials import changed

        same_spec = record.get("spec_hash") == want.spec_hash
        same_effect = record.get("effective_hash") == want.effective_hash
        healthy = record.get("status") == "ready"
        rotated = changed(record.get("credentials"), want.credentials) if want.unit is not None else []
        if same_spec and same_effect and healthy and not rotated:
            actions.append(Action("unchanged", ref, want, record))
            continue
        changed_deps = [
            dep
            for dep in want.depends_on
            if dep in current and dep in desired and current[dep].get("spec_hash") != desired[dep].spec_hash
        ]
        diff = None if same_spec else diff_specs(record.get("snapshot") or {}, want.snapshot)
        actions.append(Action("update", ref, want, record, changed_deps, diff, rotated))
    for ref in sorted(set(current) - set(desired)):
        actions.append(Action("delete" if prune else "orphan", ref, None, current[ref]))
    return actions


def replacing(actions: list[Action], refs: Collection[str]) -> list[Action]:
    """`actions` with the specs in `refs`, and every unit that depends on one of them, updated
    even where their specs did not change: what they run changed outside the specs (the code of
    a plugin a Tool names, saved under `platform dev`). Each such update names the refs."""
    wanted = set(refs)
    replaced: list[Action] = []
    for action in actions:
        desired = action.desired
        if action.kind != "unchanged" or desired is None:
            replaced.append(action)
            continue
        because = sorted(wanted & {action.ref, *desired.depends_on})
        if because:
            action = Action("update", action.ref, desired, action.record, changed_dependencies=because)
        replaced.append(action)
    return replaced
