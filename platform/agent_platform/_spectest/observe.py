"""The in-process runtime, watched: a `RecordingRuntime` is the ordinary `Runtime` (same executors,
tools, guardrails, memory) that also records what a test asserts on and a run result does not
carry (each tool call with its arguments and who made it, each guardrail decision), and that can
answer every model call with one Model (a Test's `model:`)."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from agent_platform._compile.plan import Plan, ResolvedModel
from agent_platform._runtime.approval import ApprovalRequired
from agent_platform._runtime.engine import Runtime
from agent_platform._runtime.messages import Message
from agent_platform._runtime.models.base import ModelProvider, ModelResult
from agent_platform._runtime.services import RunState, ToolOutcome
from agent_platform._runtime.tracing import Tracing
from agent_platform._spectest.expect import GuardrailEvent, ToolCall


class RecordingTracing(Tracing):
    """Tracing turned off, except that guardrail decisions are kept: every guardrail hit of every
    path (agent stages, pipeline steps, recalled memory) is reported through `guardrail_event`."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        super().__init__(None)
        self.events: list[GuardrailEvent] = []

    def guardrail_event(
        self,
        name: str,
        type: str,
        verdict: str,
        reason: str = "",
        *,
        stage: str | None = None,
        span: Any = None,
    ) -> None:
        self.events.append(GuardrailEvent(name, verdict, stage))
        super().guardrail_event(name, type, verdict, reason, stage=stage, span=span)


class RecordingRuntime(Runtime):
    """One test's runtime: its runs, and their sub-runs, record into it."""

    def __init__(self, plan: Plan, *, model: ResolvedModel | None = None, **options: Any) -> None:
        self.recording = RecordingTracing()
        super().__init__(plan, tracing=self.recording, **options)
        self.tool_calls: list[ToolCall] = []
        self._model = model

    @property
    def guardrail_events(self) -> list[GuardrailEvent]:
        return self.recording.events

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, run: RunState, allowed: frozenset[str] | None = None
    ) -> ToolOutcome:
        # Recorded when made (calls keep the order they were made in, also when they overlap) and
        # completed with how it went; the arguments are copied before a tool can change them.
        index = len(self.tool_calls)
        self.tool_calls.append(ToolCall(name, copy.deepcopy(arguments), run.unit, "running"))
        status = "error"
        try:
            outcome = await super().call_tool(name, arguments, run=run, allowed=allowed)
            status = "error" if outcome.is_error else "ok"
            return outcome
        except ApprovalRequired:
            status = "needs_approval"
            raise
        finally:
            call = self.tool_calls[index]
            self.tool_calls[index] = ToolCall(call.tool, call.arguments, call.unit, status)

    # The test's model, when it names one, answers every model call: agents' decisions and llm
    # steps (through `complete`) and components that call a provider directly (compaction).

    def provider(self, model: ResolvedModel, *, run: RunState | None = None) -> ModelProvider:
        return super().provider(self._model or model, run=run)

    async def complete(
        self,
        model: ResolvedModel,
        *,
        system: str,
        messages: list[Message],
        response_model: type[BaseModel],
        key: str,
        run: RunState,
    ) -> ModelResult[BaseModel]:
        return await super().complete(
            self._model or model,
            system=system,
            messages=messages,
            response_model=response_model,
            key=key,
            run=run,
        )
