"""Budget guard: stop a run that has used up its tokens, money or tool calls.

`RunUsage` is the running total the agent loop keeps (model usage after each call, one tool call
per executed tool). The guard runs at the `action` stage, before an action executes:

* tokens and cost trip when the total *reached* the limit (`used >= max`): no room is left for
  the next model call;
* tool calls trip when the proposed call would exceed the limit (`tool_calls >= max_tool_calls`,
  counting calls already made).

The final answer is never stopped by this guard: its tokens are already spent."""

from __future__ import annotations

from dataclasses import dataclass

from agent_platform._runtime.guardrails.base import GuardContext, Guardrail, Stage, Verdict
from agent_platform._runtime.models.base import Usage
from agent_platform._spec.kinds import BudgetGuardrail


@dataclass(slots=True)
class RunUsage:
    """What a run has consumed so far."""

    tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0

    def add_model_call(self, usage: Usage, cost_usd: float = 0.0) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.tokens += usage.total_tokens
        self.cost_usd += cost_usd
        self.model_calls += 1

    def add_tool_call(self, count: int = 1) -> None:
        self.tool_calls += count


class BudgetGuard(Guardrail):
    type = "budget"

    __slots__ = ("max_cost_usd", "max_tool_calls", "max_total_tokens")

    def __init__(
        self,
        name: str,
        *,
        max_total_tokens: int | None = None,
        max_cost_usd: float | None = None,
        max_tool_calls: int | None = None,
        stages: tuple[Stage, ...] = ("action",),
        action: str = "halt",
    ) -> None:
        super().__init__(name, stages, action)
        if max_total_tokens is None and max_cost_usd is None and max_tool_calls is None:
            raise ValueError("a budget needs max_total_tokens, max_cost_usd or max_tool_calls")
        self.max_total_tokens = max_total_tokens
        self.max_cost_usd = max_cost_usd
        self.max_tool_calls = max_tool_calls

    @classmethod
    def from_spec(cls, name: str, spec: BudgetGuardrail) -> BudgetGuard:
        return cls(
            name,
            max_total_tokens=spec.max_total_tokens,
            max_cost_usd=spec.max_cost_usd,
            max_tool_calls=spec.max_tool_calls,
            stages=tuple(spec.applies_to),
            action=spec.action,
        )

    def check(self, context: GuardContext) -> Verdict:
        usage = context.usage
        if usage is None or context.action_kind == "final_answer":
            return self._allow
        if self.max_total_tokens is not None and usage.tokens >= self.max_total_tokens:
            return self.violation(
                f"token budget exhausted: {usage.tokens} of {self.max_total_tokens} tokens used",
                budget="tokens",
                used=usage.tokens,
                limit=self.max_total_tokens,
            )
        if self.max_cost_usd is not None and usage.cost_usd >= self.max_cost_usd:
            return self.violation(
                f"cost budget exhausted: ${usage.cost_usd:.4f} of ${self.max_cost_usd:.4f} used",
                budget="cost_usd",
                used=usage.cost_usd,
                limit=self.max_cost_usd,
            )
        if (
            self.max_tool_calls is not None
            and context.action_kind == "tool"
            and usage.tool_calls >= self.max_tool_calls
        ):
            return self.violation(
                f"tool call budget exhausted: {usage.tool_calls} of {self.max_tool_calls} calls made",
                budget="tool_calls",
                used=usage.tool_calls,
                limit=self.max_tool_calls,
            )
        return self._allow
