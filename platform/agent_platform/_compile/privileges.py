"""The effective privileges of a unit: every tool with side effects or network egress it can
reach, directly or through its delegates and pipeline steps, and every RemoteAgent it can send a
task to (listed as `RemoteAgent/<name>`: a call with side effects and egress to its hosts, see
`ToolPolicy.of_remote_agent`), and what happens to a call of it once untrusted content is in the
run's context. `plan` prints them, so a reviewer sees that an
agent without `send-email` can still reach it through a delegate, and under which policy.

Along a delegation path the policies combine the way the runtime combines them: a sub-run is
bound by its caller's policy as well as its own (`ContextPolicy.tighten`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent_platform._compile.plan import AgentLoopUnit, AnyUnit, PipelineUnit, Plan, SpecRef, ToolBinding
from agent_platform._spec.kinds import UntrustedContextSpec
from agent_platform._spec.policy import ContextPolicy, SideEffectRule, ToolPolicy


class WhenTainted(StrEnum):
    """What a call of a side-effecting tool needs, before and after untrusted input."""

    ALWAYS_APPROVAL = "approval on every call"
    APPROVAL_AFTER_UNTRUSTED = "no approval until untrusted content is in context, then approval"
    DENIED_AFTER_UNTRUSTED = "no approval until untrusted content is in context, then refused"
    APPROVAL_THEN_DENIED = "approval on every call, refused once untrusted content is in context"
    NEVER_ASKED = "no approval, even with untrusted content in context"


@dataclass(frozen=True, slots=True)
class Reach:
    """One tool (or `RemoteAgent/<name>`) a unit can reach and the path to it (empty: its own)."""

    tool: str
    via: tuple[str, ...]
    side_effects: WhenTainted | None  # None: no side effects
    endpoints: tuple[str | None, ...]  # network endpoints (http tools)
    # What a request to its endpoints needs once untrusted content is in context (None: no network).
    egress_when_tainted: str | None

    def path(self) -> str:
        return " -> ".join((*self.via, self.tool))

    def to_json(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "via": list(self.via),
            "side_effects": self.side_effects.value if self.side_effects is not None else None,
            "endpoints": [e if e is not None else "(chosen at call time)" for e in self.endpoints],
            "egress_when_tainted": self.egress_when_tainted,
        }


def when_tainted(tool: ToolPolicy, policy: ContextPolicy) -> WhenTainted:
    rule = policy.side_effects
    if tool.requires_approval:
        return (
            WhenTainted.APPROVAL_THEN_DENIED if rule is SideEffectRule.DENY else WhenTainted.ALWAYS_APPROVAL
        )
    if rule is SideEffectRule.DENY:
        return WhenTainted.DENIED_AFTER_UNTRUSTED
    if rule is SideEffectRule.REQUIRE_APPROVAL:
        return WhenTainted.APPROVAL_AFTER_UNTRUSTED
    return WhenTainted.NEVER_ASKED


def egress_when_tainted(tool: ToolPolicy, policy: ContextPolicy) -> str | None:
    """What a request to the tool's endpoints needs once untrusted content is in context."""
    if not tool.egress:
        return None
    if policy.refused_egress(tool.endpoints) is None:
        return "allowed (listed in untrusted_context.egress)"
    return {
        SideEffectRule.REQUIRE_APPROVAL: "approval (host not listed in untrusted_context.egress)",
        SideEffectRule.DENY: "refused (host not listed in untrusted_context.egress)",
        SideEffectRule.ALLOW: "allowed (side_effects: allow)",
    }[policy.side_effects]


def own_tools(unit: AnyUnit) -> list[ToolBinding]:
    """The tools a unit calls itself (an agent's tools, a pipeline's tool steps)."""
    if isinstance(unit, AgentLoopUnit):
        return list(unit.tools)
    if isinstance(unit, PipelineUnit):
        return [s.tool for s in unit.steps if s.tool is not None]
    return []


def context_policy_of(unit: AgentLoopUnit | PipelineUnit) -> ContextPolicy:
    """The unit's own untrusted-context policy; the default one for a unit built without it."""
    if unit.untrusted_context is not None:
        return unit.untrusted_context
    return ContextPolicy.resolve(str(unit.ref), UntrustedContextSpec())


def _sub_units(unit: AnyUnit) -> list[SpecRef]:
    if isinstance(unit, AgentLoopUnit):  # a RemoteAgent is reached, not walked (see `reached`)
        return [SpecRef("Agent", d) for d in unit.delegates if d not in unit.remote_delegates]
    if isinstance(unit, PipelineUnit):
        return [
            SpecRef("Agent" if s.target_kind == "agent" else "Pipeline", s.target)
            for s in unit.steps
            if s.target_kind in ("agent", "pipeline")
        ]
    return []


def effective_privileges(plan: Plan, unit: AnyUnit) -> list[Reach]:
    """Every side-effecting or network tool `unit` can reach, nearest first (a tool reachable on
    several paths is listed once per path: each path may carry a different policy)."""
    found: list[Reach] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()

    def visit(current: AnyUnit, via: tuple[str, ...], inherited: ContextPolicy | None) -> None:
        if not isinstance(current, AgentLoopUnit | PipelineUnit):
            return
        own = context_policy_of(current)
        policy = inherited.tighten(own) if inherited is not None else own
        reached = [(t.name, t.policy) for t in own_tools(current)]
        if isinstance(current, AgentLoopUnit):
            reached += [(r.label, r.policy) for r in current.remote_delegates.values()]
        for name, tool in reached:
            if not (tool.side_effects or tool.egress) or (name, via) in seen:
                continue
            seen.add((name, via))
            found.append(
                Reach(
                    name,
                    via,
                    when_tainted(tool, policy) if tool.side_effects else None,
                    tool.endpoints,
                    egress_when_tainted(tool, policy),
                )
            )
        for ref in _sub_units(current):
            sub = plan.units.get(ref)
            if sub is None or str(ref) in via or ref == current.ref:  # cycles are invalid anyway
                continue
            visit(sub, (*via, str(ref)), policy)

    visit(unit, (), None)
    return found
