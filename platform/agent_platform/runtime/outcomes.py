"""How a run ended. Every stop condition is a distinct, typed outcome, so callers (and the
supervisor's on_error policy) never parse messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent_platform.runtime.models.base import Usage


class Outcome(StrEnum):
    COMPLETED = "completed"
    MAX_ITERATIONS = "max_iterations"
    TIMEOUT = "timeout"
    TOKEN_BUDGET = "token_budget"
    COST_BUDGET = "cost_budget"
    TOOL_CALL_BUDGET = "tool_call_budget"
    GUARDRAIL_HALT = "guardrail_halt"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ok(self) -> bool:
        return self is Outcome.COMPLETED


@dataclass
class RunResult:
    run_id: str
    unit: str  # "Kind/name"
    outcome: Outcome
    output: Any = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    iterations: int = 0
    tool_calls: int = 0
    duration_s: float = 0.0
    trace_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "unit": self.unit,
            "outcome": self.outcome.value,
            "output": self.output,
            "error": self.error,
            "usage": {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens},
            "cost_usd": round(self.cost_usd, 6),
            "iterations": self.iterations,
            "tool_calls": self.tool_calls,
            "duration_s": round(self.duration_s, 4),
            "trace_id": self.trace_id,
            **({"details": self.details} if self.details else {}),
        }
