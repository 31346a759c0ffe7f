"""Tracing for the runtime: OpenTelemetry spans with GenAI semantic-convention attributes.

Two layers:

* `configure_tracing()` builds a `TracerProvider` (not the global one unless asked) with the
  exporters the operator wants: the console, a JSONL file, OTLP/HTTP (switched on by the standard
  `OTEL_EXPORTER_OTLP_*` variables, so any collector, Datadog, Grafana or Honeycomb receives the
  spans) and an in-memory exporter for `platform run --trace` and tests. `OTEL_SDK_DISABLED`,
  `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` are honoured through the SDK itself.
* `Tracing`, the small facade the runtime calls: one context manager per kind of work (run,
  iteration, model call, tool call, compaction, pipeline step, supervisor task) and helpers for
  results and events (guardrail decisions, loop detection).

Work that did not succeed is an error span: status ERROR with a description and `error.type` (the
OpenTelemetry semantic conventions' attribute), whether it raised (the exception's class; a
cancellation is `CancelledError`, marked `agent_platform.cancelled`), ended a run with an outcome
other than `completed` (the outcome: `failed`, `timeout`, `max_iterations`, …) or was a tool call
that failed (the `ToolError` class).

Parentage is OpenTelemetry's: the current span lives in a `contextvars` context, which asyncio
copies into every task, so spans started under `asyncio.gather` get the right parent and two
concurrent runs never cross. Nothing here keeps a "current span" on an object. Token counts are the
provider's reported usage, never an estimate from characters.

By default no prompt, response, tool argument or secret goes into a span. Content capture
(`capture_content=True`, or `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`) records them
under the GenAI conventions' names, redacted and size-capped (see `content_capture`).

With tracing off, `Tracing.disabled()` returns a facade whose context managers are one shared
object doing nothing, so the runtime can call the facade unconditionally. With tracing on, spans
are made by `fast_spans` (a fraction of an SDK span's cost) whenever that cannot change what the
exporters receive; every other case goes through the SDK tracer. The JSONL exporter writes each
span's line with one bytes formatting (`_SpanLines`), the same text `span_to_dict` would give."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import traceback
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import Token
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from pydantic_core import to_json

from agent_platform.redaction import redact_secrets
from agent_platform.runtime.fast_spans import FastSpan, FastSpans

if TYPE_CHECKING:
    from agent_platform.runtime.content_capture import ContentCapture
    from agent_platform.runtime.models.base import ModelResult, Usage

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "JsonlSpanExporter",
    "MemorySpanExporter",
    "Tracing",
    "TracingHandle",
    "capture_content_from_env",
    "configure_tracing",
    "extract_context",
    "inject_context",
    "record_model_result",
    "span_to_dict",
]

log = logging.getLogger(__name__)

INSTRUMENTATION_NAME: Final = "agent_platform.runtime"

# --- attribute names ---------------------------------------------------------------------------
# GenAI semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/).
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # the older name; still read by many backends
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"  # opt-in content
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"  # opt-in content
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"  # opt-in content
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"  # opt-in content
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"  # opt-in content
ERROR_TYPE: Final = "error.type"

# This platform's own attributes.
AP_UNIT_KIND: Final = "agent_platform.unit.kind"
AP_UNIT_NAME: Final = "agent_platform.unit.name"
AP_RUN_ID: Final = "agent_platform.run.id"
AP_RUN_OUTCOME: Final = "agent_platform.run.outcome"
AP_ITERATION: Final = "agent_platform.iteration"
AP_MODEL_KEY: Final = "agent_platform.model.key"
AP_MODEL_SCRIPTED: Final = "agent_platform.model.scripted"
AP_MODEL_ATTEMPTS: Final = "agent_platform.model.attempts"
AP_COST_USD: Final = "agent_platform.cost_usd"
AP_TOOL_ATTEMPTS: Final = "agent_platform.tool.attempts"
AP_TOOL_CACHED: Final = "agent_platform.tool.cached"
AP_TOOL_IDEMPOTENT_REPLAY: Final = "agent_platform.tool.idempotent_replay"
AP_TOOL_SIDE_EFFECTS: Final = "agent_platform.tool.side_effects"
AP_COMPACTION_TOKENS_BEFORE: Final = "agent_platform.compaction.tokens_before"
AP_COMPACTION_TOKENS_AFTER: Final = "agent_platform.compaction.tokens_after"
AP_COMPACTION_MESSAGES_BEFORE: Final = "agent_platform.compaction.messages_before"
AP_COMPACTION_MESSAGES_AFTER: Final = "agent_platform.compaction.messages_after"
AP_COMPACTION_MODEL: Final = "agent_platform.compaction.model"
AP_MEMORY_NAME: Final = "agent_platform.memory.name"
AP_MEMORY_OPERATION: Final = "agent_platform.memory.operation"
AP_MEMORY_CANDIDATES: Final = "agent_platform.memory.candidates"
AP_MEMORY_SHOWN: Final = "agent_platform.memory.items"
AP_MEMORY_FENCED: Final = "agent_platform.memory.fenced"
AP_MEMORY_DUPLICATES: Final = "agent_platform.memory.duplicates"
AP_MEMORY_TOKENS: Final = "agent_platform.memory.tokens"
AP_MEMORY_BUDGET: Final = "agent_platform.memory.token_budget"
AP_PIPELINE_NAME: Final = "agent_platform.pipeline.name"
AP_STEP_NAME: Final = "agent_platform.step.name"
AP_STEP_INDEX: Final = "agent_platform.step.index"
AP_STEP_KIND: Final = "agent_platform.step.kind"
AP_SUPERVISOR_NAME: Final = "agent_platform.supervisor.name"
AP_TASK_ID: Final = "agent_platform.task.id"
AP_TASK_TYPE: Final = "agent_platform.task.type"
AP_TASK_PRIORITY: Final = "agent_platform.task.priority"
AP_CANCELLED: Final = "agent_platform.cancelled"

# Events.
EVENT_GUARDRAIL: Final = "guardrail.decision"
EVENT_LOOP_DETECTED: Final = "loop_detected"
EVENT_CONTENT: Final = "gen_ai.client.inference.operation.details"  # opt-in content capture
AP_GUARDRAIL_NAME: Final = "agent_platform.guardrail.name"
AP_GUARDRAIL_TYPE: Final = "agent_platform.guardrail.type"
AP_GUARDRAIL_VERDICT: Final = "agent_platform.guardrail.verdict"
AP_GUARDRAIL_REASON: Final = "agent_platform.guardrail.reason"
AP_GUARDRAIL_STAGE: Final = "agent_platform.guardrail.stage"
AP_LOOP_TOOL: Final = "agent_platform.loop.tool"
AP_LOOP_PATTERN: Final = "agent_platform.loop.pattern"
AP_LOOP_REPEATS: Final = "agent_platform.loop.repeats"
AP_LOOP_ACTION: Final = "agent_platform.loop.action"

_PASSING_VERDICTS: Final = frozenset({"pass", "allow", "ok"})
_REASON_MAX_CHARS: Final = 200
_DESCRIPTION_MAX_CHARS: Final = 200

Attributes = Mapping[str, AttributeValue]


def _short(text: str, limit: int) -> str:
    """The first line of `text`, at most `limit` characters; an ellipsis marks anything cut."""
    line, newline, _ = text.partition("\n")
    if len(line) > limit:
        return line[: limit - 1] + "…"
    return line + " …" if newline else line


def _describe(exc: BaseException) -> str:
    message = str(exc)
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def _mark_error(span: Span, error_type: str, description: str) -> None:
    """Status ERROR with `description` (secrets masked, cut to a short line) and `error.type`.
    Error text can quote a connection string or a server's answer; this runs on error paths only,
    so the shared redaction's cost is paid by failures, never by a step that went well."""
    _set_plain(span, {ERROR_TYPE: error_type})
    span.set_status(Status(StatusCode.ERROR, _short(redact_secrets(description), _DESCRIPTION_MAX_CHARS)))


def _record_error(span: Span, exc: BaseException) -> None:
    error_type = type(exc).__qualname__
    if isinstance(exc, asyncio.CancelledError):
        # The work did not finish (a timeout above it, a fail_fast sibling): an error like any other,
        # marked so a reader can tell it was stopped rather than broken. No exception event: the
        # stack shows only where the span was waiting.
        _set_plain(span, {AP_CANCELLED: True})
        _mark_error(span, error_type, _describe(exc))
        return
    description = redact_secrets(_describe(exc))
    # The exception event carries the stack trace and a bounded message: an error's text can echo
    # model output, so it is cut like every other free text here, and redacted (the trace's last
    # line repeats the message).
    stacktrace = redact_secrets("".join(traceback.format_exception(exc)))
    span.record_exception(
        exc,
        attributes={
            "exception.message": _short(description, _DESCRIPTION_MAX_CHARS),
            "exception.stacktrace": stacktrace,
        },
        escaped=True,
    )
    _mark_error(span, error_type, description)


# --- the span scopes ---------------------------------------------------------------------------


class _SpanScope:
    """`with` block around one span: starts it as a child of the current context (or of an
    explicit parent context), makes it current for the block, records an escaping exception, ends
    it. The same steps as `tracer.start_as_current_span` (contextvars-based attach/detach), without
    its generator-based context manager, which costs several µs per span. One use per instance.

    With `fast` (see `fast_spans`), the span is a `FastSpan` when that cannot change what the
    exporters receive; `trusted` says `attributes` is a fresh dict of plain values built by this
    module (kept as it is instead of cleaned)."""

    __slots__ = (
        "_attributes",
        "_fast",
        "_kind",
        "_name",
        "_parent",
        "_span",
        "_token",
        "_tracer",
        "_trusted",
    )
    _span: Span
    _token: Token[Context]

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        kind: SpanKind,
        attributes: Attributes,
        parent: Context | None,
        fast: FastSpans | None = None,
        trusted: bool = False,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._parent = parent
        self._fast = fast
        self._trusted = trusted
        # _span and _token are set by __enter__ (__exit__ runs only after it).

    def __enter__(self) -> Span:
        fast = self._fast
        if fast is not None:
            started = fast.start_current(
                self._name, self._kind, self._attributes, self._parent, trusted=self._trusted
            )
            if started is not None:
                self._span, self._token = started
                return self._span
        span = self._tracer.start_span(
            self._name,
            context=self._parent,
            kind=self._kind,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span, self._parent))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        try:
            if exc is not None:
                _record_error(span, exc)
        finally:
            token = self._token
            if type(span) is FastSpan:  # its token is from OpenTelemetry's context variable
                try:
                    token.var.reset(token)
                except Exception:  # logged, not raised, as otel_context.detach does
                    log.exception("Failed to detach context")
            else:
                otel_context.detach(token)
            span.end()


class _NullScope:
    """The shared do-nothing scope of a disabled facade: entering yields the invalid span, on which
    every setter is a no-op."""

    __slots__ = ()

    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


_NULL_SCOPE: Final = _NullScope()

SpanScope = AbstractContextManager[Span, None]


# --- helpers usable with any span ----------------------------------------------------------------


def _set_plain(span: Span, attributes: dict[str, AttributeValue]) -> None:
    """Attributes this module built from plain values: a `FastSpan` keeps them as they are (no
    cleaning needed; it ignores them once ended), any other span gets them through its API."""
    if type(span) is FastSpan:
        span.set_trusted(attributes)
    else:
        span.set_attributes(attributes)


def record_model_result(span: Span, result: ModelResult[Any]) -> None:
    """Put a finished model call's real usage on its span: the provider's input and output token
    counts, the cost from the Model spec's pricing, the response id and the attempts made."""
    if type(span) is not FastSpan and not span.is_recording():
        return
    usage = result.usage
    attributes: dict[str, AttributeValue] = {
        GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
        GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
        AP_COST_USD: result.cost_usd,
        GEN_AI_RESPONSE_MODEL: result.model,
        AP_MODEL_ATTEMPTS: result.attempts,
    }
    if result.response_id is not None:
        attributes[GEN_AI_RESPONSE_ID] = result.response_id
    _set_plain(span, attributes)


# --- the facade ----------------------------------------------------------------------------------


class Tracing:
    """What the runtime calls. Every `*_span` method returns a context manager that yields the
    span (the invalid, non-recording span when tracing is off); every `record_*` helper is a cheap
    no-op on a non-recording span. Hosting code may pass `parent=` (a context from
    `extract_context`) to continue a trace that crossed a process or actor boundary."""

    __slots__ = (
        "_content",
        "_fast",
        "_tracer",
        "capture_content",
        "enabled",
        "record_guardrail_passes",
    )

    def __init__(
        self,
        tracer: trace.Tracer | None,
        *,
        capture_content: bool = False,
        content_max_chars: int | None = None,
        record_guardrail_passes: bool = False,
    ) -> None:
        if tracer is not None and isinstance(tracer, trace.NoOpTracer):
            tracer = None
        self._tracer = tracer
        # Cheap child spans when they cannot change what the exporters receive (see fast_spans).
        self._fast = FastSpans.for_tracer(tracer)
        self.enabled = tracer is not None
        # The runtime checks this flag before doing anything for content capture, so a run without
        # it does no capture work at all.
        self.capture_content = capture_content and self.enabled
        self._content: ContentCapture | None = None
        if self.capture_content:
            from agent_platform.runtime.content_capture import DEFAULT_CONTENT_MAX_CHARS, ContentCapture

            self._content = ContentCapture(content_max_chars or DEFAULT_CONTENT_MAX_CHARS)
        self.record_guardrail_passes = record_guardrail_passes

    @classmethod
    def disabled(cls) -> Tracing:
        """The shared facade with tracing off: its scopes do nothing and allocate nothing."""
        return _DISABLED

    @classmethod
    def from_global(cls, **options: Any) -> Tracing:
        """A facade over the global tracer provider (whatever the host application installed)."""
        return cls(trace.get_tracer(INSTRUMENTATION_NAME), **options)

    @property
    def tracer(self) -> trace.Tracer:
        return self._tracer if self._tracer is not None else trace.NoOpTracer()

    # -- generic ----------------------------------------------------------------------------

    def span(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        parent: Context | None = None,
    ) -> SpanScope:
        if self._tracer is None:
            return _NULL_SCOPE
        return _SpanScope(self._tracer, name, kind, attributes or {}, parent, self._fast)

    def model_retry_event(self, failed_attempt: int, error: BaseException, delay_s: float) -> None:
        """A retried model call, as an event on its span (the retry runs in the call's context):
        which attempt failed, with what, and how long until the next one."""
        self.event(
            "gen_ai.retry",
            {
                "attempt": failed_attempt,
                "error.type": type(error).__name__,
                "error.message": redact_secrets(str(error))[:500],
                "delay_s": round(delay_s, 3),
            },
        )

    def event(self, name: str, attributes: Attributes | None = None, *, span: Span | None = None) -> None:
        """An event on `span`, or on the current span."""
        if self._tracer is None:
            return
        target = span if span is not None else trace.get_current_span()
        if target.is_recording():
            target.add_event(name, attributes)

    # -- units ------------------------------------------------------------------------------

    def run_span(
        self,
        unit_kind: str,
        unit_name: str,
        run_id: str,
        *,
        attributes: Attributes | None = None,
        parent: Context | None = None,
    ) -> SpanScope:
        """One run of a unit. `unit_kind` is `agent`, `pipeline` or `supervisor`; an agent run is a
        GenAI `invoke_agent` span, a pipeline or supervisor run an `invoke_workflow` span."""
        if self._tracer is None:
            return _NULL_SCOPE
        attrs: dict[str, AttributeValue] = {
            AP_UNIT_KIND: unit_kind,
            AP_UNIT_NAME: unit_name,
            AP_RUN_ID: run_id,
        }
        if unit_kind == "agent":
            operation = "invoke_agent"
            attrs[GEN_AI_AGENT_NAME] = unit_name
        else:
            operation = "invoke_workflow"
            attrs[GEN_AI_WORKFLOW_NAME] = unit_name
        attrs[GEN_AI_OPERATION_NAME] = operation
        if attributes:
            attrs.update(attributes)
        return _SpanScope(
            self._tracer,
            f"{operation} {unit_name}",
            SpanKind.INTERNAL,
            attrs,
            parent,
            self._fast,
            trusted=not attributes,
        )

    def record_run_result(
        self,
        span: Span,
        outcome: str,
        *,
        usage: Usage | None = None,
        cost_usd: float | None = None,
        error: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        """The run's typed outcome (`completed`, `max_iterations`, `timeout`, `failed`, …) and,
        when known, its total usage and cost. `error` (None for a run that completed) says why the
        run did not: the span becomes an error whose `error.type` is the outcome, or the class of
        `exception` when an unexpected exception is what failed the run (recorded as the span's
        exception event)."""
        if not span.is_recording():
            return
        attrs: dict[str, AttributeValue] = {AP_RUN_OUTCOME: outcome}
        if usage is not None:
            attrs[GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
            attrs[GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
        if cost_usd is not None:
            attrs[AP_COST_USD] = cost_usd
        _set_plain(span, attrs)
        if exception is not None:
            _record_error(span, exception)
        elif error is not None:
            _mark_error(span, outcome, error)

    def record_error(self, span: Span, error_type: str, description: str) -> None:
        """Work that ended without raising but did not succeed (a supervisor task whose run failed,
        say): the span gets status ERROR, `description` and `error.type`."""
        if span.is_recording():
            _mark_error(span, error_type, description)

    def iteration_span(self, n: int) -> SpanScope:
        """One turn of the agent loop (1-based)."""
        if self._tracer is None:
            return _NULL_SCOPE
        return _SpanScope(
            self._tracer, f"iteration {n}", SpanKind.INTERNAL, {AP_ITERATION: n}, None, self._fast, True
        )

    def step_span(
        self,
        pipeline: str,
        step: str,
        *,
        index: int | None = None,
        kind: str | None = None,
    ) -> SpanScope:
        """One pipeline step; `index` is the item's position when the step maps over a list."""
        if self._tracer is None:
            return _NULL_SCOPE
        attrs: dict[str, AttributeValue] = {AP_PIPELINE_NAME: pipeline, AP_STEP_NAME: step}
        name = f"step {step}"
        if index is not None:
            attrs[AP_STEP_INDEX] = index
            name = f"step {step}[{index}]"
        if kind is not None:
            attrs[AP_STEP_KIND] = kind
        return _SpanScope(self._tracer, name, SpanKind.INTERNAL, attrs, None, self._fast, True)

    def task_span(
        self,
        supervisor: str,
        task_id: str,
        task_type: str,
        priority: int,
        *,
        parent: Context | None = None,
    ) -> SpanScope:
        """One supervisor task, from the moment a worker takes it off the priority queue."""
        if self._tracer is None:
            return _NULL_SCOPE
        attrs: dict[str, AttributeValue] = {
            AP_SUPERVISOR_NAME: supervisor,
            AP_TASK_ID: task_id,
            AP_TASK_TYPE: task_type,
            AP_TASK_PRIORITY: priority,
        }
        return _SpanScope(self._tracer, f"task {task_id}", SpanKind.INTERNAL, attrs, parent, self._fast, True)

    # -- model calls ------------------------------------------------------------------------

    def model_span(
        self,
        provider: str,
        model: str,
        key: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> SpanScope:
        """One model call (a GenAI `chat` span, kind CLIENT). `key` is who asks (an agent, or
        `pipeline/step`). A `scripted` provider is labelled as a test/offline provider. Put the
        result on the span with `record_model_result(span, result)` after the call."""
        if self._tracer is None:
            return _NULL_SCOPE
        attrs: dict[str, AttributeValue] = {
            GEN_AI_OPERATION_NAME: "chat",
            GEN_AI_PROVIDER_NAME: provider,
            GEN_AI_SYSTEM: provider,
            GEN_AI_REQUEST_MODEL: model,
            AP_MODEL_KEY: key,
        }
        if provider == "scripted":
            attrs[AP_MODEL_SCRIPTED] = True
        if max_tokens is not None:
            attrs[GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        if temperature is not None:
            attrs[GEN_AI_REQUEST_TEMPERATURE] = temperature
        return _SpanScope(self._tracer, f"chat {model}", SpanKind.CLIENT, attrs, None, self._fast, True)

    def record_model_result(self, span: Span, result: ModelResult[Any]) -> None:
        """The module's `record_model_result`, as a method of the facade."""
        record_model_result(span, result)

    def record_failed_call_usage(self, span: Span, usage: Usage) -> None:
        """The tokens a model call that ended in an error still used (re-asks, a truncated answer)."""
        if type(span) is not FastSpan and not span.is_recording():
            return
        _set_plain(
            span,
            {GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens, GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens},
        )

    # -- content capture (opt-in) -------------------------------------------------------------

    def mask_secret_variables(self, names: Iterable[str | None]) -> None:
        """With content capture on, the values of these environment variables (the API keys a
        plan's models read, whatever they are called) are masked wherever captured content
        repeats them. Variables named like credentials (`*_API_KEY`, `*_TOKEN`, …) already are."""
        if self._content is not None:
            self._content.add_secret_variables(names)

    def capture_model_call(
        self, span: Span, system: str, messages: Sequence[Any], result: ModelResult[Any] | None
    ) -> None:
        """Opt-in only (`capture_content`): what a model call was sent (system instructions, input
        messages) and, when it answered, the answer, as one `gen_ai.client.inference.operation.details`
        event on its span."""
        content = self._content
        if content is None or not span.is_recording():
            return
        attrs: dict[str, AttributeValue] = {}
        try:
            if system:
                attrs[GEN_AI_SYSTEM_INSTRUCTIONS] = content.system_instructions(system)
            attrs[GEN_AI_INPUT_MESSAGES] = content.input_messages(messages)
            if result is not None:
                attrs[GEN_AI_OUTPUT_MESSAGES] = content.output_messages(
                    result.output, call_id=result.response_id
                )
        except Exception:  # observing a run must never fail it
            log.warning("content capture failed for a model call", exc_info=True)
            return
        span.add_event(EVENT_CONTENT, attrs)

    # -- tools ------------------------------------------------------------------------------

    def tool_span(self, tool_name: str, call_id: str, *, side_effects: bool | None = None) -> SpanScope:
        """One tool call (a GenAI `execute_tool` span), around all its attempts."""
        if self._tracer is None:
            return _NULL_SCOPE
        attrs: dict[str, AttributeValue] = {
            GEN_AI_OPERATION_NAME: "execute_tool",
            GEN_AI_TOOL_NAME: tool_name,
            GEN_AI_TOOL_CALL_ID: call_id,
        }
        if side_effects is not None:
            attrs[AP_TOOL_SIDE_EFFECTS] = side_effects
        return _SpanScope(
            self._tracer, f"execute_tool {tool_name}", SpanKind.INTERNAL, attrs, None, self._fast, True
        )

    def record_tool_result(
        self,
        span: Span,
        *,
        attempts: int = 1,
        cached: bool = False,
        idempotent_replay: bool = False,
        error: str | None = None,
        error_type: str = "tool_error",
    ) -> None:
        """How the call went: attempts made, whether the result came from the cache or from a
        stored idempotency key, and an error returned to the model (the block did not raise, but
        the call failed: the span gets status ERROR, with `error_type`, the class of the
        `ToolError`, as its `error.type`)."""
        if not span.is_recording():
            return
        # Flags only when set: their absence means false, and every attribute costs on the hot path.
        attrs: dict[str, AttributeValue] = {AP_TOOL_ATTEMPTS: attempts}
        if cached:
            attrs[AP_TOOL_CACHED] = True
        if idempotent_replay:
            attrs[AP_TOOL_IDEMPOTENT_REPLAY] = True
        _set_plain(span, attrs)
        if error is not None:
            _mark_error(span, error_type, error)

    def capture_tool_arguments(self, span: Span, arguments: Any) -> None:
        """Opt-in only (`capture_content`): the arguments a tool is called with, as the span's
        `gen_ai.tool.call.arguments` (recorded before the call, so a call that never returns has
        them too)."""
        content = self._content
        if content is not None and span.is_recording():
            try:
                _set_plain(span, {GEN_AI_TOOL_CALL_ARGUMENTS: content.tool_arguments(arguments)})
            except Exception:  # observing a run must never fail it
                log.warning("content capture failed for a tool's arguments", exc_info=True)

    def capture_tool_result(self, span: Span, result: Any) -> None:
        """Opt-in only (`capture_content`): what a tool returned, as `gen_ai.tool.call.result`."""
        content = self._content
        if content is not None and span.is_recording():
            try:
                _set_plain(span, {GEN_AI_TOOL_CALL_RESULT: content.tool_result(result)})
            except Exception:  # observing a run must never fail it
                log.warning("content capture failed for a tool's result", exc_info=True)

    # -- memory -----------------------------------------------------------------------------

    def compaction_span(
        self,
        tokens_before: int,
        *,
        messages_before: int | None = None,
        model: str | None = None,
    ) -> SpanScope:
        """Working-memory compaction; the summarising model call is a child `chat` span."""
        if self._tracer is None:
            return _NULL_SCOPE
        attrs: dict[str, AttributeValue] = {AP_COMPACTION_TOKENS_BEFORE: tokens_before}
        if messages_before is not None:
            attrs[AP_COMPACTION_MESSAGES_BEFORE] = messages_before
        if model is not None:
            attrs[AP_COMPACTION_MODEL] = model
        return _SpanScope(self._tracer, "compaction", SpanKind.INTERNAL, attrs, None, self._fast, True)

    def record_compaction(self, span: Span, tokens_after: int, *, messages_after: int | None = None) -> None:
        if not span.is_recording():
            return
        span.set_attribute(AP_COMPACTION_TOKENS_AFTER, tokens_after)
        if messages_after is not None:
            span.set_attribute(AP_COMPACTION_MESSAGES_AFTER, messages_after)

    # -- long-term memory -------------------------------------------------------------------

    def memory_span(self, operation: str, memory: str) -> SpanScope:
        """A long-term memory operation of an agent run: `recall`, `remember` or `episode`."""
        if self._tracer is None:
            return _NULL_SCOPE
        attrs: dict[str, AttributeValue] = {AP_MEMORY_NAME: memory, AP_MEMORY_OPERATION: operation}
        return _SpanScope(
            self._tracer, f"memory {operation}", SpanKind.INTERNAL, attrs, None, self._fast, True
        )

    def record_recall(
        self,
        span: Span,
        *,
        candidates: int,
        shown: int,
        fenced: int,
        duplicates: int,
        tokens: int,
        budget: int,
    ) -> None:
        if not span.is_recording():
            return
        span.set_attributes(
            {
                AP_MEMORY_CANDIDATES: candidates,
                AP_MEMORY_SHOWN: shown,
                AP_MEMORY_FENCED: fenced,
                AP_MEMORY_DUPLICATES: duplicates,
                AP_MEMORY_TOKENS: tokens,
                AP_MEMORY_BUDGET: budget,
            }
        )

    def memory_error(self, span: Span, message: str) -> None:
        """A store or embedder failure the run went on without (the span is marked as an error)."""
        if not span.is_recording():
            return
        span.set_status(Status(StatusCode.ERROR, message))
        span.add_event("memory.error", {"message": message})

    # -- guardrails -------------------------------------------------------------------------

    def guardrail_event(
        self,
        name: str,
        type: str,
        verdict: str,
        reason: str = "",
        *,
        stage: str | None = None,
        span: Span | None = None,
    ) -> None:
        """A guardrail decision as a `guardrail.decision` event on `span` (default: the current
        span). Passing verdicts (`pass`/`allow`/`ok`) are dropped unless `record_guardrail_passes`:
        every tool output passes several guardrails, and only hits are worth an event. `reason` is
        cut to a short line; never put the offending content in it."""
        if self._tracer is None or (verdict in _PASSING_VERDICTS and not self.record_guardrail_passes):
            return
        target = span if span is not None else trace.get_current_span()
        if not target.is_recording():
            return
        attrs: dict[str, AttributeValue] = {
            AP_GUARDRAIL_NAME: name,
            AP_GUARDRAIL_TYPE: type,
            AP_GUARDRAIL_VERDICT: verdict,
        }
        if reason:
            attrs[AP_GUARDRAIL_REASON] = _short(reason, _REASON_MAX_CHARS)
        if stage is not None:
            attrs[AP_GUARDRAIL_STAGE] = stage
        target.add_event(EVENT_GUARDRAIL, attrs)

    def loop_detected(
        self,
        tool_name: str,
        *,
        pattern: Sequence[str] = (),
        repeats: int = 0,
        action: str = "halt",
        span: Span | None = None,
    ) -> None:
        """The loop detector fired: `pattern` is the repeating cycle of tools (e.g. `[a, b]` for
        A-B-A-B), `repeats` how often it was seen, `action` what the guardrail does about it."""
        if self._tracer is None:
            return
        target = span if span is not None else trace.get_current_span()
        if not target.is_recording():
            return
        target.add_event(
            EVENT_LOOP_DETECTED,
            {
                AP_LOOP_TOOL: tool_name,
                AP_LOOP_PATTERN: list(pattern),
                AP_LOOP_REPEATS: repeats,
                AP_LOOP_ACTION: action,
            },
        )


_DISABLED: Final = Tracing(None)


# --- configuration -------------------------------------------------------------------------------


class TracingHandle(Tracing):
    """A configured provider and the facade over it. Owns its exporters: `shutdown()` (or leaving a
    `with` block) flushes and closes them. Not installed globally unless `install_global()`."""

    __slots__ = ("_closed", "exporters", "memory_exporter", "meter_provider", "metrics_reader", "provider")

    def __init__(
        self,
        provider: TracerProvider,
        *,
        memory_exporter: MemorySpanExporter | None = None,
        exporters: tuple[str, ...] = (),
        capture_content: bool = False,
        content_max_chars: int | None = None,
        record_guardrail_passes: bool = False,
        meter_provider: Any = None,
        metrics_reader: Any = None,
    ) -> None:
        super().__init__(
            provider.get_tracer(INSTRUMENTATION_NAME),
            capture_content=capture_content,
            content_max_chars=content_max_chars,
            record_guardrail_passes=record_guardrail_passes,
        )
        self.provider = provider
        self.memory_exporter = memory_exporter
        # What the spans go to, for a start-up line: "memory", "console", "jsonl:<path>", "otlp".
        self.exporters = exporters
        # The metrics derived from the spans (`runtime/metrics.py`), and the reader tests read.
        self.meter_provider = meter_provider
        self.metrics_reader = metrics_reader
        self._closed = False

    def metric_points(self) -> dict[str, list[Any]]:
        """Every metric data point recorded so far, by name (empty without `memory=True`)."""
        if self.metrics_reader is None:
            return {}
        from agent_platform.runtime.metrics import metric_points

        return metric_points(self.metrics_reader)

    def finished_spans(self) -> tuple[ReadableSpan, ...]:
        """Spans the in-memory exporter holds (empty without `memory=True`)."""
        if self.memory_exporter is None:
            return ()
        return self.memory_exporter.get_finished_spans()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        flushed = self.provider.force_flush(timeout_millis)
        if self.meter_provider is not None:  # after the spans: the metrics are made from them
            flushed = bool(self.meter_provider.force_flush(timeout_millis)) and flushed
        return flushed

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self.provider.shutdown()
            if self.meter_provider is not None:
                self.meter_provider.shutdown()

    def install_global(self) -> TracingHandle:
        """Make this provider the process-wide one (OpenTelemetry allows that once per process), so
        libraries instrumented against the global API land in the same traces."""
        trace.set_tracer_provider(self.provider)
        return self

    def __enter__(self) -> TracingHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# `true`/`false` is the variable's documented form; the GenAI instrumentations' newer capture modes
# all record content somewhere, and this runtime has one place for it.
_CAPTURE_ON: Final = frozenset({"true", "span_only", "event_only", "span_and_event"})
_CAPTURE_OFF: Final = frozenset({"", "false", "no_content"})


def capture_content_from_env() -> bool:
    """Whether `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` asks for content capture:
    `true` (any case; or `SPAN_ONLY`, `EVENT_ONLY`, `SPAN_AND_EVENT`). Unset, `false`, `NO_CONTENT`
    or anything else (logged) means no."""
    raw = os.environ.get(CAPTURE_CONTENT_ENV, "")
    value = raw.strip().lower()
    if value in _CAPTURE_ON:
        return True
    if value not in _CAPTURE_OFF:
        log.warning("%s=%r is neither true nor false: content is not captured", CAPTURE_CONTENT_ENV, raw)
    return False


def _traces_exporter_env() -> set[str]:
    return {v.strip().lower() for v in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if v.strip()}


def otlp_configured_by_env() -> bool:
    """True when the standard variables ask for OTLP. `OTEL_TRACES_EXPORTER`, when set, decides
    (`otlp` in its list; `none` or only `console` means no); otherwise an OTLP endpoint variable
    (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`) switches it on."""
    exporters = _traces_exporter_env()
    if exporters:
        return "otlp" in exporters
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def build_resource(service_name: str = "agent-platform", attributes: Attributes | None = None) -> Resource:
    """The SDK's resource detection (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`, SDK and
    process facts); `service_name` only fills in when the environment names no service."""
    resource = Resource.create(dict(attributes) if attributes else None)
    detected = resource.attributes.get(SERVICE_NAME)
    if not isinstance(detected, str) or detected.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    return resource


# The SDK's default queue (2,048 spans) overflows within a second on a host running many agent
# runs (~30 spans per 10-step run), and an overflowing queue drops spans. A larger queue and
# batch keep every span at the price of memory bounded by the queue (~1-2 KB per span). The
# standard OTEL_BSP_* variables override these defaults.
SPAN_QUEUE_SIZE: Final = 65_536
SPAN_BATCH_SIZE: Final = 2_048
SPAN_SCHEDULE_DELAY_MS: Final = 500


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return default


def batched_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    queue_size = _env_int(OTEL_BSP_MAX_QUEUE_SIZE, SPAN_QUEUE_SIZE)
    return BatchSpanProcessor(
        exporter,
        max_queue_size=queue_size,
        # A batch is at most the queue (the SDK refuses more), also when only the queue is set.
        max_export_batch_size=min(_env_int(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, SPAN_BATCH_SIZE), queue_size),
        schedule_delay_millis=_env_int(OTEL_BSP_SCHEDULE_DELAY, SPAN_SCHEDULE_DELAY_MS),
    )


def configure_tracing(
    *,
    console: bool = False,
    jsonl_path: Path | None = None,
    otlp: bool | None = None,
    memory: bool = False,
    service_name: str = "agent-platform",
    resource_attributes: Attributes | None = None,
    extra_processors: Iterable[SpanProcessor] = (),
    capture_content: bool | None = None,
    record_guardrail_passes: bool = False,
    metrics: bool | None = None,
) -> TracingHandle:
    """Build a tracer provider and the facade over it.

    * `console`: every span printed as JSON to stdout as it ends (also on with
      `OTEL_TRACES_EXPORTER=console`).
    * `jsonl_path`: one JSON object per span appended to this file (batched).
    * `otlp`: OTLP/HTTP export (batched); `None` means "when the standard environment asks for it"
      (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`, or
      `OTEL_TRACES_EXPORTER=otlp`). The exporter itself reads endpoint, headers, timeout,
      compression and certificates from the `OTEL_EXPORTER_OTLP_*` variables.
    * `memory`: keep finished spans in memory (`handle.finished_spans()`) for `--trace` and tests.
    * `capture_content`: record prompts, model answers and tool arguments and results (the GenAI
      conventions' opt-in content attributes; the CLI's `--capture-content`). `None` means "as
      `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` says" (`true`/`false`, any case; unset is
      off). Captured content is redacted (secrets always, personal data in tool results) and cut to
      a bounded size: see `content_capture`.
    * `metrics`: also the GenAI and platform metrics, derived from the spans (`metrics.py`) and
      exported wherever the spans go: OTLP, JSON lines beside the span file
      (`<name>.metrics.jsonl`), and in memory (`handle.metric_points()`) when asked for. `None`
      means "when spans are exported" (OTLP or a span file), not for in-memory spans alone.

    With `OTEL_SDK_DISABLED=true` the handle is disabled: no exporter is built, every scope is the
    shared no-op one and nothing is captured."""
    resource = build_resource(service_name, resource_attributes)
    provider = TracerProvider(resource=resource)
    if _env_flag("OTEL_SDK_DISABLED"):
        return TracingHandle(provider)
    if capture_content is None:
        capture_content = capture_content_from_env()

    env_exporters = _traces_exporter_env()
    names: list[str] = []
    memory_exporter: MemorySpanExporter | None = None
    if memory:
        memory_exporter = MemorySpanExporter()
        provider.add_span_processor(_InMemoryProcessor(memory_exporter))
        names.append("memory")
    if console or "console" in env_exporters:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(service_name=service_name)))
        names.append("console")
    if jsonl_path is not None:
        provider.add_span_processor(batched_processor(JsonlSpanExporter(jsonl_path)))
        names.append(f"jsonl:{jsonl_path}")
    use_otlp = otlp if otlp is not None else otlp_configured_by_env()
    if use_otlp:
        # Imported only when used: the exporter pulls in protobuf and an HTTP client.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(batched_processor(OTLPSpanExporter()))
        names.append("otlp")
    meter_provider, metrics_reader = None, None
    exported = jsonl_path is not None or use_otlp
    if metrics or (metrics is None and exported):
        from agent_platform.runtime.metrics import configure_metrics

        built = configure_metrics(
            resource, jsonl_path=jsonl_path, otlp=use_otlp, memory=memory and bool(metrics)
        )
        if built is not None:
            meter_provider, metrics_processor, metrics_reader = built
            provider.add_span_processor(metrics_processor)
    for processor in extra_processors:
        provider.add_span_processor(processor)
        names.append(type(processor).__name__)
    return TracingHandle(
        provider,
        memory_exporter=memory_exporter,
        exporters=tuple(names),
        capture_content=capture_content,
        record_guardrail_passes=record_guardrail_passes,
        meter_provider=meter_provider,
        metrics_reader=metrics_reader,
    )


class MemorySpanExporter(SpanExporter):
    """The spans kept by `configure_tracing(memory=True)`, with the SDK `InMemorySpanExporter`'s
    API (`get_finished_spans`, `clear`, `export`, `shutdown`). The runtime's processor appends to
    its list directly: one list operation is atomic, so no lock is taken per span."""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []
        self._stopped = False

    def keep(self, span: ReadableSpan) -> None:
        if not self._stopped:
            self._spans.append(span)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stopped:
            return SpanExportResult.FAILURE
        self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def get_finished_spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self._spans)

    def clear(self) -> None:
        self._spans.clear()

    def shutdown(self) -> None:
        self._stopped = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class _InMemoryProcessor(SpanProcessor):
    """`SimpleSpanProcessor` for the in-memory exporter without what only a network exporter
    needs (suppressing instrumentation around the export, the processor's own metrics): a few µs
    less per span, which matters when `--trace` or the benchmark keeps every span."""

    def __init__(self, exporter: MemorySpanExporter) -> None:
        self._exporter = exporter
        # Where fast spans (always sampled) go without on_end's check (see fast_spans._delivery).
        self.on_end_sampled = exporter.keep

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is not None and ctx.trace_flags.sampled:
            self._exporter.keep(span)

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


# --- the JSONL exporter ----------------------------------------------------------------------------


def _attr_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# A process exports thousands of spans that share one Resource: convert it once.
_RESOURCE_DICTS: dict[int, tuple[Resource, dict[str, Any]]] = {}


def _resource_dict(resource: Resource) -> dict[str, Any]:
    cached = _RESOURCE_DICTS.get(id(resource))
    if cached is None or cached[0] is not resource:
        if len(_RESOURCE_DICTS) > 64:
            _RESOURCE_DICTS.clear()
        cached = _RESOURCE_DICTS[id(resource)] = (
            resource,
            {k: _attr_value(v) for k, v in resource.attributes.items()},
        )
    return cached[1]


def _hex_span_id(span_id: int) -> str:
    return f"{span_id:016x}"


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as plain JSON-able data (ids in W3C hex, times in ns since the epoch)."""
    ctx = span.context
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}" if ctx is not None else None,
        "span_id": _hex_span_id(ctx.span_id) if ctx is not None else None,
        "parent_span_id": _hex_span_id(parent.span_id) if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": {k: _attr_value(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {
                "name": event.name,
                "time_unix_nano": event.timestamp,
                "attributes": {k: _attr_value(v) for k, v in (event.attributes or {}).items()},
            }
            for event in span.events
        ],
        "resource": _resource_dict(span.resource),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope is not None else None,
    }


# One span's line exactly as `to_json(span_to_dict(span))` writes it, made by one bytes formatting
# of the parts that vary per span: the exporter's hot loop, half the cost of building the dict.
# (pydantic-core writes a tuple as the JSON array span_to_dict makes a list for.)
_LINE: Final = (
    b'{"trace_id":"%032x","span_id":"%016x","parent_span_id":%b,"name":%b,"kind":"%b",'
    b'"start_time_unix_nano":%d,"end_time_unix_nano":%d,"status":%b,"attributes":%b,"events":%b,'
    b'"resource":%b,"scope":%b}\n'
)
_PARENT_ID: Final = b'"%016x"'
# By the enum members' values: an int's hash is C, an Enum member's a Python call.
_KIND_NAMES: Final = {kind.value: kind.name.encode() for kind in SpanKind}
_BARE_STATUSES: Final = {code.value: to_json({"code": code.name, "description": None}) for code in StatusCode}


class _SpanLines:
    """Spans as JSON lines. Keeps the JSON of the resources, scope names and span names seen (a
    process has a handful of each, shared by thousands of spans: `iteration 3`, `chat <model>`)."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Resource, bytes]] = {}
        self._names: dict[str | None, bytes] = {}

    def line(self, span: ReadableSpan) -> bytes:
        ctx = span.context
        start, end = span.start_time, span.end_time
        if ctx is None or start is None or end is None:
            return to_json(span_to_dict(span), fallback=str) + b"\n"
        trace_id, span_id, _remote, _flags, _state, _valid = ctx  # a SpanContext is a tuple
        parent = span.parent
        status = span.status
        events = span.events
        resource = span.resource
        resource_json = self._resources.get(id(resource))
        scope = span.instrumentation_scope
        scope_name = scope.name if scope is not None else None
        names = self._names
        name = span.name
        return _LINE % (
            trace_id,
            span_id,
            _PARENT_ID % parent[1] if parent is not None else b"null",
            names.get(name) or self._name_json(name),
            _KIND_NAMES[span.kind._value_],
            start,
            end,
            _BARE_STATUSES[status.status_code._value_]
            if status.description is None
            else to_json({"code": status.status_code.name, "description": status.description}),
            to_json(_plain_dict(span.attributes), fallback=str),
            to_json([_event_dict(event) for event in events], fallback=str) if events else b"[]",
            resource_json[1]
            if resource_json is not None and resource_json[0] is resource
            else self._resource_json(resource),
            names.get(scope_name) or self._name_json(scope_name),
        )

    def _resource_json(self, resource: Resource) -> bytes:
        if len(self._resources) > 64:
            self._resources.clear()
        json_ = to_json(_resource_dict(resource), fallback=str)
        self._resources[id(resource)] = (resource, json_)
        return json_

    def _name_json(self, name: str | None) -> bytes:
        if len(self._names) > 1024:
            self._names.clear()
        json_ = self._names[name] = to_json(name)
        return json_


def _plain_dict(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes as a dict, which pydantic-core writes as a JSON object (a mapping proxy or the
    SDK's BoundedAttributes, it would write as a string). Their copy is a dict (a proxy copies the
    mapping it shows)."""
    if type(attributes) is MappingProxyType or type(attributes) is BoundedAttributes:
        copied = attributes.copy()
        if type(copied) is dict:
            return copied
    return dict(attributes or {})


def _event_dict(event: Event) -> dict[str, Any]:
    return {
        "name": event.name,
        "time_unix_nano": event.timestamp,
        "attributes": _plain_dict(event.attributes),
    }


class JsonlSpanExporter(SpanExporter):
    """Appends one JSON object per span to a file (JSON Lines). Thread-safe. The file is opened on
    the first export (append mode, unbuffered) and closed at shutdown. Each export writes its
    batch of whole lines with one `write` (repeated only for what a short write left over), so
    processes appending to the same file never split each other's lines."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._shut_down = False
        self._lines = _SpanLines()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut_down:
            return SpanExportResult.FAILURE
        line = self._lines.line
        try:
            data = b"".join([line(span) for span in spans])
        except ValueError:  # a string JSON cannot hold as UTF-8 (a lone surrogate), somewhere
            data = b"".join([_ascii_line(span) for span in spans])
        try:
            with self._lock:
                if self._file is None:
                    from agent_platform.state_files import open_private_append

                    self._file = open_private_append(self.path)  # 0600: spans may hold prompts
                written = self._file.write(data)
                while written < len(data):  # a short write (a signal, a full disk): the rest
                    written += self._file.write(memoryview(data)[written:])
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is buffered: each export is written when it is made

    def shutdown(self) -> None:
        with self._lock:
            self._shut_down = True
            if self._file is not None:
                self._file.close()
                self._file = None


def _ascii_line(span: ReadableSpan) -> bytes:
    """A span's line with every non-ASCII character escaped: how the rare span whose text is not
    valid UTF-8 is still written (with the rest of its batch)."""
    return json.dumps(span_to_dict(span), separators=(",", ":"), default=str).encode() + b"\n"


# --- propagation across process and actor boundaries -------------------------------------------------

_PROPAGATOR: Final = TraceContextTextMapPropagator()


def inject_context(ctx: Context | None = None) -> dict[str, str]:
    """The current trace context (or `ctx`) as W3C `traceparent`/`tracestate` headers, to send with
    a call into another process or actor. Empty when there is no valid span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier


def extract_context(carrier: Mapping[str, str] | None) -> Context:
    """The context a carrier from `inject_context` describes; pass it as `parent=` to a span
    (`run_span`, `task_span`, `span`) on the receiving side. An empty carrier gives a root context."""
    return _PROPAGATOR.extract(dict(carrier) if carrier else {}, context=Context())
