"""Cheap spans for the runtime's hot path, delivered to the SDK's own span processors.

An OpenTelemetry SDK span costs many times the rest of a step (sampler, `BoundedAttributes`
cleaning every value under a lock, bounded event and link lists, two processor hooks, a copy into a `ReadableSpan` at
the end), and an agent step makes three (iteration, model call, tool call). `FastSpans` makes the
same spans for a fraction of that, when doing so cannot change what an exporter receives:

* the tracer is the SDK's (`opentelemetry.sdk.trace.Tracer`), enabled, without the SDK's internal
  metrics, and without an attribute value length limit;
* the sampler is `ParentBased` with its default delegates for sampled parents (`ALWAYS_ON`), and
  the parent span context is valid and sampled: the SDK would then record and sample the child,
  with the parent's trace id, trace state and random-trace-id flag, and no sampler attributes;
  without a valid parent (a root span), the root delegate is `ALWAYS_ON` too (the default
  sampler): the SDK would record and sample it, in a new trace with no trace state;
* every span processor has the SDK's no-op `on_start` and `_on_ending` (the exporting processors:
  `SimpleSpanProcessor`, `BatchSpanProcessor`, the runtime's in-memory one), so nothing would
  have looked at the writable span before it ends;
* the OpenTelemetry runtime context is the default, contextvars-based one.

Anything else (an unsampled parent, a custom sampler or processor, span limits on value length)
goes through `tracer.start_span` as before. The result is a real OpenTelemetry span: `FastSpan`
implements `opentelemetry.trace.Span`, has a real `SpanContext` (ids from the provider's id
generator, drawn in the SDK's order), is made current in the OpenTelemetry context (so any other
instrumentation nests under it), and, being an SDK `ReadableSpan` like the SDK's own span class,
is handed to the provider's span processors when it ends (it refuses every change after that):
to each processor's `on_end` in turn as the SDK's multi-processor does, or, as every fast span is
sampled, to what `on_end` does with a sampled span (a `BatchSpanProcessor`'s queue, the in-memory
processor's `on_end_sampled`). Events and links use the SDK's bounded containers and limits;
attributes set through the public API go into the SDK's `BoundedAttributes` (cleaned, limited,
drops counted); attributes the runtime itself sets (strings, numbers, booleans it built) are
stored as they are.

The span processors are checked again whenever the provider's list of processors, the tracer's
sampler or the runtime context changes (identity checks per span)."""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types

__all__ = ["FastSpan", "FastSpans"]

log = logging.getLogger(__name__)

_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_RANDOM: Final = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_UNSET: Final = Status(StatusCode.UNSET)
# A child's trace flags by its parent's, as the SDK sets them when the parent is sampled (sampled,
# keeping the parent's random-trace-id flag); None for an unsampled parent (the SDK decides).
_CHILD_FLAGS: Final[dict[int, TraceFlags | None]] = {
    flags: (_SAMPLED_RANDOM if flags & TraceFlags.RANDOM_TRACE_ID else _SAMPLED)
    if flags & TraceFlags.SAMPLED
    else None
    for flags in range(256)
}
# The runtime's own spans carry at most ~15 attributes: with an attribute count limit below this,
# they are stored in the SDK's BoundedAttributes like any other (oldest dropped, drops counted).
_TRUSTED_MAX_ATTRIBUTES: Final = 32

# Hooks known to do nothing: a processor whose on_start/_on_ending is one of these never sees the
# writable span, so handing it only the finished ReadableSpan is all it would have used.
_NOOP_ON_START: Final = frozenset(
    {SpanProcessor.on_start, SimpleSpanProcessor.on_start, BatchSpanProcessor.on_start}
)
_NOOP_ON_ENDING: Final = frozenset(
    {SpanProcessor._on_ending, SimpleSpanProcessor._on_ending, BatchSpanProcessor._on_ending}
)

Delivery = Callable[[ReadableSpan], object]


def _processors_qualify(processors: Sequence[Any]) -> bool:
    for processor in processors:
        cls = type(processor)
        if getattr(cls, "on_start", None) not in _NOOP_ON_START:
            return False
        if getattr(cls, "_on_ending", None) not in _NOOP_ON_ENDING:
            return False
    return True


def _delivery(processor: SpanProcessor) -> Delivery:
    """What `processor.on_end` does with a sampled span (every fast span is), without the checks
    it makes first: the `BatchSpanProcessor` queues it; a processor with an `on_end_sampled`
    method (the runtime's in-memory one) is handed it there; any other gets `on_end`."""
    if type(processor) is BatchSpanProcessor:
        emit = getattr(getattr(processor, "_batch_processor", None), "emit", None)
        if callable(emit):
            return emit  # type: ignore[no-any-return]
    on_end_sampled = getattr(processor, "on_end_sampled", None)
    return on_end_sampled if callable(on_end_sampled) else processor.on_end


def _sampler_qualifies(sampler: Any) -> bool:
    """ParentBased whose sampled-parent delegates are ALWAYS_ON: a sampled parent means a
    sampled, recorded child with no extra attributes and the parent's trace state."""
    return (
        isinstance(sampler, ParentBased)
        and getattr(sampler, "_local_parent_sampled", None) is ALWAYS_ON
        and getattr(sampler, "_remote_parent_sampled", None) is ALWAYS_ON
    )


class FastSpans:
    """Starts `FastSpan`s for one SDK tracer, or says it cannot (then use `tracer.start_span`)."""

    __slots__ = (
        "_checked_processors",
        "_checked_runtime",
        "_checked_sampler",
        "_current",
        "_deliveries",
        "_id_generator",
        "_info",
        "_limits",
        "_ok",
        "_processor",
        "_random_ids",
        "_resource",
        "_roots",
        "_scope",
        "_tracer",
    )

    def __init__(self, tracer: sdk_trace.Tracer) -> None:
        self._tracer = tracer
        self._processor: Any = tracer.span_processor
        self._resource = tracer.resource
        self._info = tracer.instrumentation_info
        self._scope = getattr(tracer, "_instrumentation_scope", None)
        self._limits: Any = getattr(tracer, "_span_limits", None)
        self._id_generator = tracer.id_generator
        self._random_ids = type(tracer.id_generator) is RandomIdGenerator
        self._checked_processors: object = None
        self._checked_sampler: object = None
        self._checked_runtime: object = None
        self._current: ContextVar[Context] | None = None
        self._deliveries: tuple[Delivery, ...] = ()
        self._ok = False
        self._roots = False
        self._check()

    @classmethod
    def for_tracer(cls, tracer: trace.Tracer | None) -> FastSpans | None:
        """The fast path for `tracer`, or None when it is not an SDK tracer we know how to mirror."""
        if type(tracer) is not sdk_trace.Tracer:
            return None
        try:
            return cls(tracer)
        except Exception:  # an SDK whose internals differ from the ones this mirrors
            log.debug("fast spans unavailable for this tracer", exc_info=True)
            return None

    def _check(self) -> None:
        tracer = self._tracer
        multi = self._processor
        processors = getattr(multi, "_span_processors", None)
        sampler = tracer.sampler
        runtime = otel_context._RUNTIME_CONTEXT
        # The current context is read and set on OpenTelemetry's own context variable, as
        # get_current/attach do (when the runtime context is the default, contextvars-based one).
        self._current = runtime._current_context if type(runtime) is ContextVarsRuntimeContext else None
        # The SDK's multi-processor calls each processor's on_end in turn: so does FastSpan.end.
        self._deliveries = (
            tuple(_delivery(p) for p in processors)
            if type(multi) is SynchronousMultiSpanProcessor and processors is not None
            else (multi.on_end,)
        )
        # A root span (no valid parent) is recorded, sampled and unchanged only with this sampler.
        self._roots = getattr(sampler, "_root", None) is ALWAYS_ON
        metrics = getattr(tracer, "_tracer_metrics", None)
        limits = self._limits
        self._ok = (
            processors is not None
            and self._current is not None
            and _processors_qualify(processors)
            and _sampler_qualifies(sampler)
            and type(metrics).__name__ == "NoOpTracerMetrics"
            and limits is not None
            and limits.max_span_attribute_length is None
            and isinstance(getattr(tracer, "_tracer_config", None), sdk_trace._TracerConfig)
        )
        # Last: another thread that sees these identities unchanged sees the state made from them.
        self._checked_processors = processors
        self._checked_sampler = sampler
        self._checked_runtime = runtime

    def start_current(
        self,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, types.AnyValue],
        parent: Context | None,
        *,
        trusted: bool = False,
    ) -> tuple[FastSpan, Token[Context]] | None:
        """A started span, child of the current span (or of `parent`), made the current span (as
        `otel_context.attach(trace.set_span_in_context(span, parent))` does) with the token that
        restores the previous context (`token.var.reset(token)`); None when the SDK must make it.
        `trusted`: `attributes` is a fresh dict of plain values the caller built (it is kept as it
        is); otherwise it is copied and cleaned like the SDK cleans attributes."""
        if (
            self._processor._span_processors is not self._checked_processors
            or self._tracer.sampler is not self._checked_sampler
            or otel_context._RUNTIME_CONTEXT is not self._checked_runtime
        ):
            self._check()
        current = self._current
        if not self._ok or current is None or not self._tracer._tracer_config.is_enabled:
            return None
        base = current.get() if parent is None else parent
        parent_span = base.get(_SPAN_KEY)
        parent_context: SpanContext
        if type(parent_span) is FastSpan:
            parent_context = parent_span._context
        elif isinstance(parent_span, trace.Span):
            parent_context = parent_span.get_span_context()
            if type(parent_context) is not SpanContext:
                return None  # the SDK raises a TypeError
        else:  # what trace.get_current_span returns when there is no span
            parent_context = INVALID_SPAN_CONTEXT
        # SpanContext's fields (it is a tuple): what its properties read, without their calls.
        trace_id, _parent_id, _remote, parent_flags, trace_state, parent_valid = parent_context
        generator = self._id_generator
        context: SpanContext
        span_parent: SpanContext | None = parent_context
        if parent_valid:
            flags = _CHILD_FLAGS.get(parent_flags)
            if flags is None:
                return None
            # The default generator's draw, made here (a zero, the invalid id, goes to the
            # generator, which draws again).
            span_id = (random.getrandbits(64) if self._random_ids else 0) or generator.generate_span_id()
            # SpanContext(...) without its constructor's checks: the trace id is the (valid)
            # parent's, the span id never the invalid one. The tuple is what __new__ makes.
            context = tuple.__new__(SpanContext, (trace_id, span_id, False, flags, trace_state, True))
        elif self._roots:  # a new trace, ids drawn in the SDK's order; no trace state
            trace_id = generator.generate_trace_id()
            flags = _SAMPLED_RANDOM if generator.is_trace_id_random() else _SAMPLED
            context = SpanContext(trace_id, generator.generate_span_id(), False, flags)
            span_parent = None
        else:
            return None
        maxlen = self._limits.max_span_attributes
        attrs: dict[str, types.AnyValue] | BoundedAttributes
        if trusted and (maxlen is None or maxlen >= _TRUSTED_MAX_ATTRIBUTES):
            attrs = attributes  # type: ignore[assignment]
        else:  # what the SDK's span makes of them
            attrs = BoundedAttributes(maxlen, attributes, immutable=False)
        span = FastSpan(self, name, context, span_parent, kind, attrs)
        return span, current.set(Context({**base, _SPAN_KEY: span}))


class FastSpan(trace.Span, ReadableSpan):
    """A recording span made by `FastSpans`. Like the SDK's own `Span` it is both the API span and
    a `ReadableSpan`; once ended it refuses every change, so it is handed to the span processors
    itself (the SDK copies its writable span into a new `ReadableSpan` at that point)."""

    # ReadableSpan's fields as slots (its instances use a __dict__; this one never needs one).
    __slots__ = (
        "_attributes",
        "_attrs",
        "_context",
        "_end_time",
        "_events",
        "_instrumentation_info",
        "_instrumentation_scope",
        "_kind",
        "_links",
        "_name",
        "_owner",
        "_parent",
        "_resource",
        "_start_time",
        "_status",
    )
    _context: SpanContext  # never None here, unlike a ReadableSpan's

    def __init__(
        self,
        owner: FastSpans,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, types.AnyValue] | BoundedAttributes,
    ) -> None:
        # ReadableSpan's fields, set directly (its __init__ would make a Resource when given none).
        self._owner = owner
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._attrs = attributes  # the same dict, typed for this class
        self._events: Sequence[Event] = ()
        self._links: Sequence[Link] = ()
        self._status = _UNSET
        self._resource = owner._resource
        self._instrumentation_info = owner._info
        self._instrumentation_scope = owner._scope
        self._end_time: int | None = None
        # The SDK's clock, looked up on its module at each call (as the SDK's own spans do).
        self._start_time: int | None = sdk_trace.time_ns()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name="{self._name}", context={self._context})'

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def _ended(self, what: str) -> bool:
        if self._end_time is None:
            return False
        log.warning("Tried calling %s on an ended span.", what)
        return True

    # -- attributes ------------------------------------------------------------------------------

    def set_trusted(self, attributes: Mapping[str, types.AnyValue]) -> None:
        """Attributes the runtime built from plain values (no cleaning needed)."""
        if self._end_time is None:
            attrs = self._attrs
            if type(attrs) is dict:
                attrs.update(attributes)
            else:
                self._bounded()._set_items(attributes)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is not None:
            log.warning("Setting attribute on ended span.")
            return
        self._bounded()._set_items(attributes)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is not None:
            log.warning("Setting attribute on ended span.")
            return
        self._bounded()[key] = value

    def _bounded(self) -> BoundedAttributes:
        """The attributes as the SDK's `BoundedAttributes` (made on the first use of the public
        setters, so what anyone else sets is cleaned, limited and counted exactly as the SDK does)."""
        attrs = self._attrs
        if not isinstance(attrs, BoundedAttributes):
            attrs = BoundedAttributes(self._owner._limits.max_span_attributes, attrs, immutable=False)
            self._attrs = self._attributes = attrs
        return attrs

    # -- events, links, status, name -------------------------------------------------------------

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        limits = self._owner._limits
        bounded = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        if self._ended("add_event"):
            return
        events = self._events
        if not isinstance(events, BoundedList):
            events = self._events = BoundedList(limits.max_events)
        events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if not sdk_trace._is_valid_link(context, attributes):
            return
        limits = self._owner._limits
        bounded = BoundedAttributes(
            limits.max_link_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        if self._ended("add_link"):
            return
        links = self._links
        if not isinstance(links, BoundedList):
            links = self._links = BoundedList(limits.max_links)
        links.append(Link(context=context, attributes=bounded))

    def update_name(self, name: str) -> None:
        if not self._ended("update_name"):
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._ended("set_status"):
            return
        # The SDK's rules: OK is final, UNSET is ignored.
        if self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                log.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self._status = status
        elif isinstance(status, StatusCode):
            if status is StatusCode.UNSET:
                return
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """As the SDK records it: an `exception` event with type, message, stack trace, escaped."""
        stacktrace = "".join(traceback.format_exception(exception))
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        exception_type = f"{module}.{qualname}" if module and module != "builtins" else qualname
        event: dict[str, types.AnyValue] = {
            "exception.type": exception_type,
            "exception.message": str(exception),
            "exception.stacktrace": stacktrace,
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event(name="exception", attributes=event, timestamp=timestamp)

    # -- the end ---------------------------------------------------------------------------------

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            log.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else sdk_trace.time_ns()  # type: ignore[attr-defined]
        owner = self._owner
        if owner._processor._span_processors is not owner._checked_processors:
            owner._check()
        for deliver in owner._deliveries:
            deliver(self)
