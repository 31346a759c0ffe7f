"""Least privilege: an agent may only call the tools it was given. The `tool_allowlist`
guardrail blocks (or warns about, or halts on) a tool call outside the list at the `action` stage;
the tool executor enforces the agent's tool list again at execution time, so a guardrail
misconfiguration cannot widen what an agent can do.

Only tool calls are checked (`action_kind == "tool"`): delegations are governed by the agent's
`delegates` list and the final answer is always allowed."""

from __future__ import annotations

from collections.abc import Iterable

from agent_platform._runtime.guardrails.base import GuardContext, Guardrail, Stage, Verdict
from agent_platform._spec.kinds import ToolAllowlistGuardrail


class ToolAllowlist(Guardrail):
    type = "tool_allowlist"

    __slots__ = ("tools",)

    def __init__(
        self,
        name: str,
        tools: Iterable[str],
        *,
        stages: tuple[Stage, ...] = ("action",),
        action: str = "block",
    ) -> None:
        super().__init__(name, stages, action)
        self.tools = frozenset(tools)

    @classmethod
    def from_spec(cls, name: str, spec: ToolAllowlistGuardrail) -> ToolAllowlist:
        return cls(name, spec.tools, stages=tuple(spec.applies_to), action=spec.action)

    def check(self, context: GuardContext) -> Verdict:
        tool = context.tool_name
        if tool is None or context.action_kind != "tool" or tool in self.tools:
            return self._allow
        allowed = ", ".join(sorted(self.tools)) or "none"
        return self.violation(f"tool {tool!r} is not allowed for this agent (allowed: {allowed})", tool=tool)
