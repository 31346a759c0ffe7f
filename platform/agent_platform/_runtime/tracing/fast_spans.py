"""Cheap spans for the runtime's hot path, made with public OpenTelemetry API only.

An OpenTelemetry SDK span costs many times the rest of a step (the sampler's call, the SDK
internal metrics' hook, `BoundedAttributes` cleaning every value under a lock, bounded event and
link lists made up front, two processor hooks, a lock per setter), and an agent step makes three
(iteration, model call, tool call). `FastSpans` makes the same spans for less, when doing so
cannot change what an exporter receives. It relies only on what the SDK publishes, or on what the
platform itself built:

* the provider is one `tracer_provider()` built: its active span processor is a
  `KnownSpanProcessors`, which keeps the list of processors and the span limits the provider was
  given (the SDK keeps both private), and it has no meter provider (so no SDK internal metrics
  unless `OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED` asks for them: then the SDK makes every span);
* the tracer's sampler (a public attribute) is the SDK's `sampling.DEFAULT_ON` or `ALWAYS_ON`
  object: documented to record and sample a root span in a new trace with no trace state, and a
  child of a sampled parent with the parent's trace id and trace state, adding no attributes;
  a child of an unsampled parent goes to the SDK;
* the span limits put no bound on an attribute value's length (the SDK would cut values);
* every processor only looks at finished spans: it is one of the SDK's exporting processors
  (`SimpleSpanProcessor`, `BatchSpanProcessor`), or it overrides none of `SpanProcessor`'s hooks
  but `on_end`, `shutdown` and `force_flush` (the runtime's in-memory processor, the metrics
  processor; hooks are found by walking `SpanProcessor`'s methods, so a hook a future SDK adds
  counts too). A processor with an `on_start` of its own turns the fast path off.

Anything else goes through `tracer.start_span`. (A tracer switched off through the SDK's
experimental tracer configurator, private SDK API the platform never calls, is not seen.) A `FastSpan` is a real API span
(`opentelemetry.trace.Span`) with a `SpanContext` from the provider's id generator (ids drawn in
the SDK's order), made current through the context API, so any other instrumentation nests under
it. When it ends it becomes an `EndedFastSpan`, a `ReadableSpan` built by its public constructor
with the fields the SDK's own span hands over, and each processor's `on_end` receives it in turn,
as the SDK's multi-processor does. Events and links use the SDK's bounded containers and limits;
attributes set through the public API go into the SDK's `BoundedAttributes` (cleaned, limited,
drops counted); attributes the runtime itself sets (strings, numbers, booleans it built) are stored
as they are.

`tests/runtime/test_fast_span_equivalence.py` runs the same work on both paths and compares, span
by span, everything an exporter reads."""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Final

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.environment_variables import OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanLimits,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, DEFAULT_ON
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util import types

__all__ = [
    "EndedFastSpan",
    "FastSpan",
    "FastSpans",
    "KnownSpanProcessors",
    "tracer_provider",
]

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

# Every hook `SpanProcessor` declares, found by walking its methods (a hook a future SDK adds is
# in it too); a processor overriding any but these three may look at a span before it ends.
_SPAN_PROCESSOR_HOOKS: Final = frozenset(
    name for name, value in vars(SpanProcessor).items() if callable(value) and not name.startswith("__")
)
_FINISHED_ONLY_HOOKS: Final = frozenset({"on_end", "shutdown", "force_flush"})
# The SDK's exporting processors: they export finished spans and nothing else.
_EXPORTING_PROCESSORS: Final[frozenset[type[SpanProcessor]]] = frozenset(
    {SimpleSpanProcessor, BatchSpanProcessor}
)
# Spans read the SDK trace module's clock when it has one (so a clock faked for the SDK's spans is
# faked for these too), else the standard library's, which is what the SDK reads.
_CLOCK: Final = "time_ns"
_time_ns: Final = time.time_ns

Delivery = Callable[[ReadableSpan], object]


class KnownSpanProcessors(SynchronousMultiSpanProcessor):
    """The active span processor of a provider `tracer_provider()` built: the SDK's synchronous
    multi-processor, which also keeps, readable by anyone, the processors it was given and the
    span limits of its provider (the SDK keeps both private)."""

    def __init__(self, span_limits: SpanLimits) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.span_limits = span_limits
        self.processors: tuple[SpanProcessor, ...] = ()
        self._adding = threading.Lock()

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        with self._adding:
            super().add_span_processor(span_processor)
            self.processors = (*self.processors, span_processor)


def tracer_provider(
    resource: Resource | None = None,
    *,
    id_generator: IdGenerator | None = None,
    span_limits: SpanLimits | None = None,
) -> TracerProvider:
    """An SDK tracer provider whose tracers can make fast spans (the sampler comes from
    `OTEL_TRACES_SAMPLER`, the span limits from the `OTEL_*_LIMIT` variables, as the SDK reads
    them, unless `span_limits` is given)."""
    limits = span_limits if span_limits is not None else SpanLimits()
    return TracerProvider(
        resource=resource,
        id_generator=id_generator,
        span_limits=limits,
        active_span_processor=KnownSpanProcessors(limits),
    )


def _finished_only(processor: SpanProcessor) -> bool:
    cls = type(processor)
    if cls in _EXPORTING_PROCESSORS:
        return True
    return all(
        getattr(cls, hook, None) is getattr(SpanProcessor, hook)
        for hook in _SPAN_PROCESSOR_HOOKS - _FINISHED_ONLY_HOOKS
    )


def _delivery(processor: SpanProcessor) -> Delivery:
    """What a finished span goes to: a processor's `on_end_sampled` when it has one (the runtime's
    in-memory processor: every fast span is sampled), otherwise its `on_end`."""
    on_end_sampled = getattr(processor, "on_end_sampled", None)
    return on_end_sampled if callable(on_end_sampled) else processor.on_end


def _internal_metrics_on() -> bool:
    return os.environ.get(OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED, "").strip().lower() == "true"


class FastSpans:
    """Starts `FastSpan`s for one SDK tracer, or says it cannot (then use `tracer.start_span`)."""

    __slots__ = (
        "_checked_processors",
        "_deliveries",
        "_id_generator",
        "_info",
        "_known",
        "_limits",
        "_ok",
        "_scope",
        "_tracer",
    )

    def __init__(self, tracer: sdk_trace.Tracer, known: KnownSpanProcessors) -> None:
        self._tracer = tracer
        self._known = known
        self._limits = known.span_limits
        self._id_generator = tracer.id_generator
        info = self._info = tracer.instrumentation_info
        # What the SDK's get_tracer builds for the tracer (no scope attributes are ever given).
        self._scope = InstrumentationScope(info.name, info.version, info.schema_url)
        self._checked_processors: tuple[SpanProcessor, ...] | None = None
        self._deliveries: tuple[Delivery, ...] = ()
        self._ok = False
        self._check()

    @classmethod
    def for_tracer(cls, tracer: trace.Tracer | None) -> FastSpans | None:
        """The fast path for `tracer`, or None when it is not a tracer of a `tracer_provider()`,
        or the SDK was asked for its internal metrics (which it records per span)."""
        if type(tracer) is not sdk_trace.Tracer or _internal_metrics_on():
            return None
        known = tracer.span_processor
        if type(known) is not KnownSpanProcessors:
            return None
        return cls(tracer, known)

    def _check(self) -> None:
        processors = self._known.processors
        self._deliveries = tuple(_delivery(p) for p in processors)
        self._ok = self._limits.max_span_attribute_length is None and all(
            _finished_only(p) for p in processors
        )
        # Last: another thread that sees this identity unchanged sees the state made from it.
        self._checked_processors = processors

    def deliveries(self) -> tuple[Delivery, ...]:
        """Where a finished span goes: each processor in the order they were added (checked again
        when that list changed, as the SDK's multi-processor would hand it to a new one)."""
        if self._known.processors is not self._checked_processors:
            self._check()
        return self._deliveries

    def start(
        self,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, types.AnyValue],
        base: Context,
        *,
        trusted: bool = False,
    ) -> FastSpan | None:
        """A started span, child of the span in `base` (the current context, or an explicit
        parent context); None when the SDK must make it. `trusted`: `attributes` is a fresh dict
        of plain values the caller built (it is kept as it is); otherwise it is copied and cleaned
        like the SDK cleans attributes."""
        if self._known.processors is not self._checked_processors:
            self._check()
        tracer = self._tracer
        sampler = tracer.sampler
        if not self._ok or (sampler is not DEFAULT_ON and sampler is not ALWAYS_ON):
            return None
        parent_span = trace.get_current_span(base)
        if type(parent_span) is FastSpan:
            parent_context = parent_span._context
        else:
            parent_context = parent_span.get_span_context()
            if not isinstance(parent_context, SpanContext):
                return None  # the SDK raises a TypeError
        # A SpanContext is a tuple of these fields (its declared base): read without six calls.
        trace_id, _parent_id, _remote, parent_flags, trace_state, parent_valid = parent_context
        generator = self._id_generator
        span_parent: SpanContext | None
        if parent_valid:
            flags = _CHILD_FLAGS.get(parent_flags)
            if flags is None:
                return None
            # Positional: SpanContext(trace_id, span_id, is_remote, trace_flags, trace_state).
            context = SpanContext(trace_id, generator.generate_span_id(), False, flags, trace_state)
            span_parent = parent_context
        else:  # a new trace, ids drawn in the SDK's order; no trace state
            trace_id = generator.generate_trace_id()
            flags = _SAMPLED_RANDOM if generator.is_trace_id_random() else _SAMPLED
            context = SpanContext(trace_id, generator.generate_span_id(), False, flags)
            span_parent = None
        maxlen = self._limits.max_span_attributes
        attrs: dict[str, types.AnyValue] | BoundedAttributes
        if trusted and (maxlen is None or maxlen >= _TRUSTED_MAX_ATTRIBUTES):
            attrs = attributes  # type: ignore[assignment]
        else:  # what the SDK's span makes of them
            attrs = BoundedAttributes(maxlen, attributes, immutable=False)
        return FastSpan(self, name, context, span_parent, kind, attrs, tracer.resource)


class EndedFastSpan(ReadableSpan):
    """A fast span once ended: the `ReadableSpan` the SDK's own span would hand its processors,
    built by the same public constructor. The class only tells which path made it."""


class FastSpan(trace.Span):
    """A recording span made by `FastSpans`. Refuses every change once ended, as the SDK's span
    does; its processors then receive an `EndedFastSpan` of it."""

    __slots__ = (
        "_attrs",
        "_context",
        "_end_time",
        "_events",
        "_kind",
        "_links",
        "_name",
        "_owner",
        "_parent",
        "_resource",
        "_start_time",
        "_status",
    )

    def __init__(
        self,
        owner: FastSpans,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, types.AnyValue] | BoundedAttributes,
        resource: Resource,
    ) -> None:
        self._owner = owner
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attrs = attributes
        self._events: BoundedList[Event] | None = None
        self._links: BoundedList[Link] | None = None
        self._status = _UNSET
        self._resource = resource
        self._end_time: int | None = None
        self._start_time: int = getattr(sdk_trace, _CLOCK, _time_ns)()

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name="{self._name}", context={self._context})'

    @property
    def name(self) -> str:
        return self._name

    @property
    def parent(self) -> SpanContext | None:
        return self._parent

    @property
    def attributes(self) -> Mapping[str, types.AnyValue]:
        return self._attrs

    # What a `ReadableSpan` shows, as the SDK's own span (a ReadableSpan too) shows it while open.
    @property
    def context(self) -> SpanContext:
        return self._context

    @property
    def kind(self) -> SpanKind:
        return self._kind

    @property
    def start_time(self) -> int | None:
        return self._start_time

    @property
    def end_time(self) -> int | None:
        return self._end_time

    @property
    def status(self) -> Status:
        return self._status

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(self._events) if self._events is not None else ()

    @property
    def links(self) -> tuple[Link, ...]:
        return tuple(self._links) if self._links is not None else ()

    @property
    def resource(self) -> Resource:
        return self._resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        return self._owner._scope

    @property
    def dropped_attributes(self) -> int:
        attrs = self._attrs
        return attrs.dropped if isinstance(attrs, BoundedAttributes) else 0

    @property
    def dropped_events(self) -> int:
        return self._events.dropped if self._events is not None else 0

    @property
    def dropped_links(self) -> int:
        return self._links.dropped if self._links is not None else 0

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
                self._set_each(attributes)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is not None:
            log.warning("Setting attribute on ended span.")
            return
        self._set_each(attributes)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is not None:
            log.warning("Setting attribute on ended span.")
            return
        self._bounded()[key] = value

    def _set_each(self, attributes: Mapping[str, types.AnyValue]) -> None:
        bounded = self._bounded()
        for key, value in attributes.items():
            bounded[key] = value

    def _bounded(self) -> BoundedAttributes:
        """The attributes as the SDK's `BoundedAttributes` (made on the first use of the public
        setters, so what anyone else sets is cleaned, limited and counted exactly as the SDK does)."""
        attrs = self._attrs
        if not isinstance(attrs, BoundedAttributes):
            attrs = BoundedAttributes(self._owner._limits.max_span_attributes, attrs, immutable=False)
            self._attrs = attrs
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
        if events is None:
            events = self._events = BoundedList(limits.max_events)
        events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        # The SDK's rule for a link worth keeping: a valid context, or attributes or trace state.
        if not (context and (context.is_valid or attributes or context.trace_state)):
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
        if links is None:
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
        end = self._end_time = end_time if end_time is not None else getattr(sdk_trace, _CLOCK, _time_ns)()
        owner = self._owner
        # The constructor's parameters in their documented order (name, context, parent,
        # resource, attributes, events, links, kind, instrumentation_info, status, start_time,
        # end_time, instrumentation_scope): passed by keyword, they cost more than the rest of
        # the end; the equivalence test reads every field back.
        ended = EndedFastSpan(
            self._name,
            self._context,
            self._parent,
            self._resource,
            self._attrs,
            self._events if self._events is not None else (),
            self._links if self._links is not None else (),
            self._kind,
            owner._info,
            self._status,
            self._start_time,
            end,
            owner._scope,
        )
        deliveries = owner._deliveries
        if owner._known.processors is not owner._checked_processors:
            deliveries = owner.deliveries()
        for deliver in deliveries:
            deliver(ended)
