"""How a run ended. Every stop condition is a distinct, typed outcome, so callers (and the
supervisor's on_error policy) never parse messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent_platform._runtime.models.base import Usage


class Outcome(StrEnum):
    COMPLETED = "completed"
    MAX_ITERATIONS = "max_iterations"
    TIMEOUT = "timeout"
    TOKEN_BUDGET = "token_budget"
    COST_BUDGET = "cost_budget"
    TOOL_CALL_BUDGET = "tool_call_budget"
    GUARDRAIL_HALT = "guardrail_halt"
    # A tool call needs a person's approval and nobody could be asked: the call was not made
    # (`details["approval"]` names it).
    NEEDS_APPROVAL = "needs_approval"
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
    # The untrusted sources that reached the run's context (`TaintState.sources`): a caller that
    # reads this result reads content they may have shaped.
    taint: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunResult:
        """The inverse of `to_json` (a result stored in the run store, sent between hosts)."""
        usage = data.get("usage") or {}
        return cls(
            run_id=str(data["run_id"]),
            unit=str(data["unit"]),
            outcome=Outcome(data["outcome"]),
            output=data.get("output"),
            error=data.get("error"),
            usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
            cost_usd=float(data.get("cost_usd", 0.0)),
            iterations=int(data.get("iterations", 0)),
            tool_calls=int(data.get("tool_calls", 0)),
            duration_s=float(data.get("duration_s", 0.0)),
            trace_id=data.get("trace_id"),
            details=dict(data.get("details") or {}),
            taint=tuple(map(str, data.get("taint") or ())),
        )

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
            **({"taint": list(self.taint)} if self.taint else {}),
        }
