"""The guardrail contract: a guardrail looks at one `GuardContext` at one stage and returns a
`Verdict`. Checks are pure and fast (no I/O), except user-supplied python hooks.

Stages (where the agent loop or pipeline calls `GuardrailSet.check`):

* `input`: the run's input, as text (`content`) and value (`data`), before the first model call.
* `action`: each action the model chose, before it runs: `tool_name` + `tool_args`
  (`content` is the arguments as JSON text, for text guardrails such as PII or regex), with
  `action_kind` telling a tool call from a delegation or the final answer. `usage` carries the run's
  usage so far for the budget guardrail.
* `tool_output`: a tool's result text (`content`), before it is wrapped in the injection boundary
  and shown to the model.
* `output`: the final answer (`data`, and `content` its JSON text) before it is returned.

Decisions, in increasing severity: allow < warn < redact < block < halt. `redact` carries the new
content; `block` stops this item (a tool call is not made, a tool output is replaced by an error the
model sees, an input or final answer is rejected); `halt` stops the run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from agent_platform._runtime.guardrails.budget import RunUsage

Stage = Literal["input", "tool_output", "action", "output"]
STAGES: tuple[Stage, ...] = ("input", "tool_output", "action", "output")
ActionKind = Literal["tool", "delegate", "final_answer"]


class Decision(IntEnum):
    """Ordered by severity, so `max()` of decisions is the strongest."""

    ALLOW = 0
    WARN = 1
    REDACT = 2
    BLOCK = 3
    HALT = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Decision:
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(
                f"unknown guardrail decision {value!r} (allow, warn, redact, block, halt)"
            ) from None


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Verdict:
    """One guardrail's decision about one item. `content` is the redacted content (redact only);
    `details` is structured data for traces and events (never the sensitive values themselves)."""

    decision: Decision
    guardrail: str
    type: str
    reason: str = ""
    content: str | None = None
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW

    @property
    def stops(self) -> bool:
        """True for block and halt: nothing after this verdict applies."""
        return self.decision >= Decision.BLOCK

    def to_event(self) -> dict[str, Any]:
        """Attributes for a trace event (`guardrail.*`)."""
        event: dict[str, Any] = {
            "guardrail.name": self.guardrail,
            "guardrail.type": self.type,
            "guardrail.decision": self.decision.label,
        }
        if self.reason:
            event["guardrail.reason"] = self.reason
        for key, value in self.details.items():
            if isinstance(value, str | int | float | bool):
                event[f"guardrail.{key}"] = value
            elif isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
                event[f"guardrail.{key}"] = list(value)
            else:
                event[f"guardrail.{key}"] = str(value)
        return event

    @classmethod
    def allow(cls, guardrail: str, type: str) -> Verdict:
        return cls(Decision.ALLOW, guardrail, type)

    @classmethod
    def warn(cls, guardrail: str, type: str, reason: str, **details: Any) -> Verdict:
        return cls(Decision.WARN, guardrail, type, reason, None, details or _EMPTY)

    @classmethod
    def redact(cls, guardrail: str, type: str, content: str, reason: str, **details: Any) -> Verdict:
        return cls(Decision.REDACT, guardrail, type, reason, content, details or _EMPTY)

    @classmethod
    def block(cls, guardrail: str, type: str, reason: str, **details: Any) -> Verdict:
        return cls(Decision.BLOCK, guardrail, type, reason, None, details or _EMPTY)

    @classmethod
    def halt(cls, guardrail: str, type: str, reason: str, **details: Any) -> Verdict:
        return cls(Decision.HALT, guardrail, type, reason, None, details or _EMPTY)


@dataclass(slots=True)
class GuardContext:
    """What a guardrail sees. Build one per checked item; fields a stage does not use stay None."""

    stage: Stage
    content: str | None = None
    data: Any = None
    tool_name: str | None = None
    tool_args: Mapping[str, Any] | None = None
    tool_use_id: str | None = None
    action_kind: ActionKind = "tool"
    usage: RunUsage | None = None
    agent: str | None = None
    run_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def for_action(
        cls,
        tool_name: str,
        tool_args: Mapping[str, Any],
        *,
        action_kind: ActionKind = "tool",
        tool_use_id: str | None = None,
        usage: RunUsage | None = None,
        agent: str | None = None,
        run_id: str | None = None,
    ) -> GuardContext:
        """An action context; `content` is the arguments as JSON text (non-JSON values as str)."""
        try:
            content = json.dumps(tool_args, ensure_ascii=False, sort_keys=True, default=str)
        except (TypeError, ValueError):  # keys of mixed types, circular values
            content = repr(tool_args)
        return cls(
            "action",
            content,
            None,
            tool_name,
            tool_args,
            tool_use_id,
            action_kind,
            usage,
            agent,
            run_id,
        )

    def value(self) -> Any:
        """The structured value: `data` when given, else `content` parsed as JSON, else the text."""
        if self.data is not None:
            return self.data
        if self.content is None:
            return None
        try:
            return json.loads(self.content)
        except ValueError:
            return self.content


class GuardrailConfigError(ValueError):
    """A guardrail cannot be built from its spec (bad regex, unloadable hook, ...)."""


class Guardrail:
    """Base class. Subclasses set `type`, implement `check` (sync, pure), and may override
    `acheck` (async; only the python hook does). Stateful guardrails (loop detection) override
    `fresh`, `snapshot` and `restore` so each run has its own state and state can be checkpointed."""

    type: ClassVar[str] = "guardrail"
    is_async: ClassVar[bool] = False

    __slots__ = ("_allow", "action", "name", "stages")

    def __init__(self, name: str, stages: tuple[Stage, ...], action: str) -> None:
        self.name = name
        self.stages = stages
        self.action = Decision.parse(action)
        self._allow = Verdict.allow(name, self.type)

    def applies_to(self, stage: Stage) -> bool:
        return stage in self.stages

    def check(self, context: GuardContext) -> Verdict:
        raise NotImplementedError

    async def acheck(self, context: GuardContext) -> Verdict:
        return self.check(context)

    def violation(self, reason: str, *, redacted: str | None = None, **details: Any) -> Verdict:
        """The verdict for a detected problem under this guardrail's configured action. A `redact`
        action without redacted content (nothing to redact) blocks instead."""
        action = self.action
        if action is Decision.REDACT and redacted is None:
            action = Decision.BLOCK
        return Verdict(
            action,
            self.name,
            self.type,
            reason,
            redacted if action is Decision.REDACT else None,
            details or _EMPTY,
        )

    def fresh(self) -> Guardrail:
        """A guardrail for a new run: the same object unless it keeps per-run state."""
        return self

    def snapshot(self) -> Any:
        """Per-run state as JSON-able data (None when stateless)."""
        return None

    def restore(self, state: Any) -> None:
        """Load state produced by `snapshot`."""

    async def aclose(self) -> None:
        """Release resources held across runs (a classifier's connections); most hold none."""

    def __repr__(self) -> str:
        stages = ",".join(self.stages)
        return f"<{type(self).__name__} {self.name!r} stages={stages} action={self.action.label}>"
