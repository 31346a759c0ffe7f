"""`Tracing`, the facade the runtime calls: one context manager per kind of work (run, iteration,
model call, tool call, compaction, pipeline step, supervisor task, memory operation) and helpers
for results and events (guardrail decisions, loop detection, content capture).

Work that did not succeed is an error span: status ERROR with a description and `error.type` (the
OpenTelemetry semantic conventions' attribute), whether it raised (the exception's class; a
cancellation is `CancelledError`, marked `agent_platform.cancelled`), ended a run with an outcome
other than `completed` (the outcome: `failed`, `timeout`, `max_iterations`, …) or was a tool call
that failed (the `ToolError` class).

Parentage is OpenTelemetry's: the current span lives in a `contextvars` context, which asyncio
copies into every task, so spans started under `asyncio.gather` get the right parent and two
concurrent runs never cross. Nothing here keeps a "current span" on an object. Token counts are the
provider's reported usage, never an estimate from characters.

With tracing off, `Tracing.disabled()` returns a facade whose context managers are one shared
object doing nothing, so the runtime can call the facade unconditionally. With tracing on, spans
are made by `fast_spans` whenever that cannot change what the exporters receive; every other case
goes through the SDK tracer."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from agent_platform._redaction import redact_secrets
from agent_platform._runtime.tracing.fast_spans import FastSpan, FastSpans
from agent_platform._runtime.tracing.names import (
    AP_CANCELLED,
    AP_COMPACTION_MESSAGES_AFTER,
    AP_COMPACTION_MESSAGES_BEFORE,
    AP_COMPACTION_MODEL,
    AP_COMPACTION_TOKENS_AFTER,
    AP_COMPACTION_TOKENS_BEFORE,
    AP_COST_USD,
    AP_GUARDRAIL_NAME,
    AP_GUARDRAIL_REASON,
    AP_GUARDRAIL_STAGE,
    AP_GUARDRAIL_TYPE,
    AP_GUARDRAIL_VERDICT,
    AP_ITERATION,
    AP_LOOP_ACTION,
    AP_LOOP_PATTERN,
    AP_LOOP_REPEATS,
    AP_LOOP_TOOL,
    AP_MEMORY_BUDGET,
    AP_MEMORY_CANDIDATES,
    AP_MEMORY_DUPLICATES,
    AP_MEMORY_FENCED,
    AP_MEMORY_NAME,
    AP_MEMORY_OPERATION,
    AP_MEMORY_SHOWN,
    AP_MEMORY_TOKENS,
    AP_MODEL_ATTEMPTS,
    AP_MODEL_KEY,
    AP_MODEL_SCRIPTED,
    AP_PIPELINE_NAME,
    AP_RUN_ID,
    AP_RUN_OUTCOME,
    AP_STEP_INDEX,
    AP_STEP_KIND,
    AP_STEP_NAME,
    AP_SUPERVISOR_NAME,
    AP_TASK_ID,
    AP_TASK_PRIORITY,
    AP_TASK_TYPE,
    AP_TOOL_ATTEMPTS,
    AP_TOOL_CACHED,
    AP_TOOL_IDEMPOTENT_REPLAY,
    AP_TOOL_SIDE_EFFECTS,
    AP_UNIT_KIND,
    AP_UNIT_NAME,
    ERROR_TYPE,
    EVENT_CONTENT,
    EVENT_GUARDRAIL,
    EVENT_LOOP_DETECTED,
    GEN_AI_AGENT_NAME,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_SYSTEM,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_ID,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_WORKFLOW_NAME,
    INSTRUMENTATION_NAME,
    Attributes,
)

if TYPE_CHECKING:
    from agent_platform._runtime.content_capture import ContentCapture
    from agent_platform._runtime.models.base import ModelResult, Usage

log = logging.getLogger(__name__)

_PASSING_VERDICTS: Final = frozenset({"pass", "allow", "ok"})
_REASON_MAX_CHARS: Final = 200
_DESCRIPTION_MAX_CHARS: Final = 200


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
    its generator-based context manager, a wrapper paid on every span. One use per instance.

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
        parent = self._parent
        span: Span | None = None
        fast = self._fast
        if fast is not None:
            base = parent if parent is not None else otel_context.get_current()
            span = fast.start(self._name, self._kind, self._attributes, base, trusted=self._trusted)
            if span is not None:
                parent = base
        if span is None:
            span = self._tracer.start_span(
                self._name,
                context=parent,
                kind=self._kind,
                attributes=self._attributes,
                record_exception=False,
                set_status_on_exception=False,
            )
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span, parent))
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
            otel_context.detach(self._token)
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
        fast_spans: bool = True,
    ) -> None:
        if tracer is not None and isinstance(tracer, trace.NoOpTracer):
            tracer = None
        self._tracer = tracer
        # Cheap spans when they cannot change what the exporters receive (see fast_spans).
        self._fast = FastSpans.for_tracer(tracer) if fast_spans else None
        self.enabled = tracer is not None
        # The runtime checks this flag before doing anything for content capture, so a run without
        # it does no capture work at all.
        self.capture_content = capture_content and self.enabled
        self._content: ContentCapture | None = None
        if self.capture_content:
            from agent_platform._runtime.content_capture import DEFAULT_CONTENT_MAX_CHARS, ContentCapture

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
