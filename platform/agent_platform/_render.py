"""Turn diagnostics and plans into what people and CI systems read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agent_platform._compile.plan import (
    ActorPlan,
    AgentLoopUnit,
    AnyUnit,
    PipelineUnit,
    Plan,
    SupervisorUnit,
)
from agent_platform._compile.privileges import context_policy_of, effective_privileges
from agent_platform._diagnostics import Diagnostic, Severity
from agent_platform._spec.policy import ContextPolicy, SideEffectRule


def diagnostic_line(d: Diagnostic) -> str:
    """`file:line:col: Kind/name: message`; non-errors say what they are before the message."""
    if d.severity is Severity.ERROR:
        return d.format()
    parts = [str(d.location)] if d.location else []
    if d.subject:
        parts.append(d.subject)
    parts.append(f"{d.severity.value}: {d.message}")
    return ": ".join(parts)


def _github_escape(text: str, *, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def github_annotation(d: Diagnostic) -> str:
    """A GitHub Actions workflow command, shown inline on the pull request."""
    level = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.HINT: "notice"}[d.severity]
    props = []
    if d.location is not None:
        props.append(f"file={_github_escape(d.location.file, property_value=True)}")
        props.append(f"line={d.location.line}")
        props.append(f"col={d.location.column}")
    if d.subject:
        props.append(f"title={_github_escape(d.subject, property_value=True)}")
    message = _github_escape(d.message)
    return f"::{level} {','.join(props)}::{message}" if props else f"::{level}::{message}"


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    return {
        "severity": d.severity.value,
        "code": d.code,
        "message": d.message,
        "file": d.location.file if d.location else None,
        "line": d.location.line if d.location else None,
        "column": d.location.column if d.location else None,
        "kind": d.kind,
        "name": d.name,
    }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def summary(diagnostics: Sequence[Diagnostic], spec_count: int, file_count: int) -> str:
    """The last line of a validation: the errors and how many files they are in, or the specs
    found valid. `file_count` is the number of files checked; the files with errors are those the
    errors point into: "3 errors in 1 of 2 files", "2 errors in 1 file"."""
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    warnings = sum(1 for d in diagnostics if d.severity is Severity.WARNING)
    hints = sum(1 for d in diagnostics if d.severity is Severity.HINT)
    notes = []
    if warnings:
        notes.append(_count(warnings, "warning"))
    if hints:
        notes.append(_count(hints, "hint"))
    checked = f"{_count(file_count, 'file')} checked" if file_count else "no spec files checked"
    if not errors and not file_count:
        head = checked
    elif not errors:
        head = f"{_count(spec_count, 'spec')} in {_count(file_count, 'file')} valid"
    else:
        with_errors = len({d.location.file for d in errors if d.location is not None})
        head = _count(len(errors), "error")
        if file_count and with_errors == file_count:
            head += f" in {_count(file_count, 'file')}"
        elif 0 < with_errors < file_count:
            head += f" in {with_errors} of {_count(file_count, 'file')}"
        else:  # errors at no file, or at paths that were not checked (one that does not exist)
            if with_errors:
                head += f" in {_count(with_errors, 'file')}"
            notes.insert(0, checked)
    return f"{head} ({', '.join(notes)})" if notes else head


# --- plan -------------------------------------------------------------------------------------


def _resources(actor: ActorPlan) -> str:
    r = actor.resources
    parts = [f"cpu={r.num_cpus:g}"]
    if r.num_gpus:
        parts.append(f"gpu={r.num_gpus:g}")
    if r.memory:
        parts.append(f"memory={r.memory / 2**20:.0f}Mi")
    parts.extend(f"{k}={v:g}" for k, v in sorted(r.custom.items()))
    return " ".join(parts)


def _policy_text(policy: ContextPolicy) -> str:
    rule = {
        SideEffectRule.REQUIRE_APPROVAL: "side effects and requests to unlisted hosts need approval",
        SideEffectRule.DENY: "side effects and requests to unlisted hosts are refused",
        SideEffectRule.ALLOW: "side effects and any request allowed (each tool's own approval only)",
    }[policy.side_effects]
    return f"{rule}; hosts listed: {policy.describe_egress()}"


def _privilege_lines(plan: Plan, unit: AgentLoopUnit | PipelineUnit) -> list[str]:
    """What the unit can do to the world, including through its delegates and steps."""
    lines = [f"  untrusted: once untrusted content is in context: {_policy_text(context_policy_of(unit))}"]
    reach = effective_privileges(plan, unit)
    if not reach:
        lines.append("  privileges: no tool with side effects or network egress, also through delegates")
        return lines
    for index, item in enumerate(reach):
        parts = []
        if item.side_effects is not None:
            parts.append(f"side effects: {item.side_effects.value}")
        if item.endpoints:
            hosts = ", ".join(e or "(chosen at call time)" for e in item.endpoints)
            parts.append(f"reaches {hosts}; once untrusted content is in context: {item.egress_when_tainted}")
        label = "  privileges:" if index == 0 else "             "
        lines.append(f"{label} {item.path()}: {'; '.join(parts)}")
    return lines


def unit_json(unit: AnyUnit, plan: Plan | None = None) -> dict[str, Any]:
    actor = unit.actor
    data: dict[str, Any] = {
        "kind": unit.ref.kind,
        "name": unit.name,
        "mode": unit.mode.value,
        "reason": unit.reason,
        "source": str(unit.source),
        "spec_hash": unit.spec_hash,
        "actor": {
            "name": actor.name,
            "replicas": actor.replicas,
            "resources": actor.resources.model_dump(mode="json"),
            "placement": actor.placement.model_dump(mode="json"),
            "placement_reason": actor.placement_reason,
            "max_concurrency": actor.max_concurrency,
            "max_restarts": actor.max_restarts,
        },
        "depends_on": [str(d) for d in unit.depends_on],
    }
    if isinstance(unit, AgentLoopUnit):
        data["model"] = unit.model.describe() if unit.model else None
        data["tools"] = [t.name for t in unit.tools]
        data["delegates"] = unit.delegates
        data["isolated_tools"] = [t.name for t in unit.tools if t.isolated]
    elif isinstance(unit, PipelineUnit):
        data["steps"] = [
            {"name": s.name, "kind": s.target_kind, "target": s.target, "map": s.map is not None}
            for s in unit.steps
        ]
    if isinstance(unit, AgentLoopUnit | PipelineUnit):
        data["untrusted_context"] = context_policy_of(unit).to_json()
        if plan is not None:
            data["privileges"] = [r.to_json() for r in effective_privileges(plan, unit)]
    elif isinstance(unit, SupervisorUnit):
        data["routes"] = {r.task_type: str(r.target) for r in unit.routes}
        data["concurrency"] = unit.concurrency
    return data


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "units": [unit_json(u, plan) for u in plan.deploy_order()],
        "models": {name: m.describe() for name, m in sorted(plan.models.items())},
        "graph": {
            str(k): [str(d) for d in v] for k, v in sorted(plan.graph.items(), key=lambda kv: str(kv[0]))
        },
    }


def plan_text(plan: Plan) -> str:
    """A readable plan: units in deploy order, why each runs the way it does, its actors."""
    lines: list[str] = []
    order = plan.deploy_order()
    lines.append(f"Plan: {len(order)} unit{'s' if len(order) != 1 else ''} (dependencies first)")
    for unit in order:
        actor = unit.actor
        lines.append("")
        lines.append(f"{unit.ref}  [{unit.mode.value}]  {unit.source}")
        lines.append(f"  why:       {unit.reason}")
        lines.append(
            f"  actors:    {actor.name} x{actor.replicas}  ({_resources(actor)}; "
            f"max_concurrency={actor.max_concurrency}, max_restarts={actor.max_restarts})"
        )
        lines.append(f"  placement: {actor.placement_reason}")
        if isinstance(unit, AgentLoopUnit):
            if unit.model is not None:
                lines.append(f"  model:     {unit.model.describe()}")
            if unit.tools:
                tools = [f"{t.name} (Ray task)" if t.isolated else t.name for t in unit.tools]
                lines.append(f"  tools:     {', '.join(tools)}")
            if unit.delegates:
                lines.append(f"  delegates: {', '.join(unit.delegates)}")
            if unit.memory is not None:
                lines.append(f"  memory:    {unit.memory[0]}")
            if unit.guardrails:
                lines.append(f"  guardrails: {', '.join(g.name for g in unit.guardrails)}")
            lines.extend(_privilege_lines(plan, unit))
        elif isinstance(unit, PipelineUnit):
            for index, step in enumerate(unit.steps, 1):
                fan = f"  map over {step.map.over} (concurrency {step.map.concurrency})" if step.map else ""
                lines.append(f"  step {index}:    {step.name}: {step.target_kind} {step.target}{fan}")
            lines.extend(_privilege_lines(plan, unit))
        elif isinstance(unit, SupervisorUnit):
            for route in unit.routes:
                lines.append(f"  route:     {route.task_type} -> {route.target}")
        if unit.depends_on:
            lines.append(f"  depends on: {', '.join(str(d) for d in unit.depends_on)}")
    scripted = sorted({m.ref for m in plan.models.values() if m.is_scripted})
    inline = sorted(
        str(u.ref)
        for u in plan.units.values()
        if isinstance(u, AgentLoopUnit) and u.model and u.model.ref == "<inline>" and u.model.is_scripted
    )
    if scripted or inline:
        named = [f"model{'s' if len(scripted) != 1 else ''} {', '.join(scripted)}"] if scripted else []
        named += [f"the inline model of {', '.join(inline)}"] if inline else []
        verb = "use" if len(scripted) + len(inline) > 1 else "uses"
        lines.append("")
        lines.append(
            f"note: {' and '.join(named)} {verb} the scripted provider: deterministic replay for tests, "
            "demos and offline runs"
        )
    return "\n".join(lines)


def diagnostics_json(diagnostics: Sequence[Diagnostic], spec_count: int, files: Sequence[str]) -> str:
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    return json.dumps(
        {
            "valid": errors == 0,
            "files": list(files),
            "specs": spec_count,
            "errors": errors,
            "diagnostics": [diagnostic_json(d) for d in diagnostics],
        },
        indent=2,
    )
