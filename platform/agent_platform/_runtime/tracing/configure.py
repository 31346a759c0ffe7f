"""Tracing set up: `configure_tracing()` builds a tracer provider (not the global one unless asked)
with the exporters the operator wants: the console, a JSONL file, OTLP/HTTP (switched on by the
standard `OTEL_EXPORTER_OTLP_*` variables, so any collector, Datadog, Grafana or Honeycomb receives
the spans) and an in-memory exporter for `platform run --trace` and tests. `OTEL_SDK_DISABLED`,
`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` are honoured through the SDK itself; the
`OTEL_BSP_*` variables tune the batch processors. `TracingHandle` is the facade over that
provider, owning its exporters.

By default no prompt, response, tool argument or secret goes into a span. Content capture
(`capture_content=True`, or `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`) records them
under the GenAI conventions' names, redacted and size-capped (see `content_capture`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from agent_platform._runtime.tracing.exporters import InMemoryProcessor, JsonlSpanExporter, MemorySpanExporter
from agent_platform._runtime.tracing.facade import Tracing
from agent_platform._runtime.tracing.fast_spans import tracer_provider
from agent_platform._runtime.tracing.names import INSTRUMENTATION_NAME, Attributes

log = logging.getLogger(__name__)


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
        fast_spans: bool = True,
    ) -> None:
        super().__init__(
            provider.get_tracer(INSTRUMENTATION_NAME),
            capture_content=capture_content,
            content_max_chars=content_max_chars,
            record_guardrail_passes=record_guardrail_passes,
            fast_spans=fast_spans,
        )
        self.provider = provider
        self.memory_exporter = memory_exporter
        # What the spans go to, for a start-up line: "memory", "console", "jsonl:<path>", "otlp".
        self.exporters = exporters
        # The metrics derived from the spans (`_runtime/metrics.py`), and the reader tests read.
        self.meter_provider = meter_provider
        self.metrics_reader = metrics_reader
        self._closed = False

    def metric_points(self) -> dict[str, list[Any]]:
        """Every metric data point recorded so far, by name (empty without `memory=True`)."""
        if self.metrics_reader is None:
            return {}
        from agent_platform._runtime.metrics import metric_points

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
    fast_spans: bool = True,
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
    * `fast_spans`: make spans with `fast_spans` whenever that cannot change what an exporter
      receives (the default); False makes every span through the SDK's tracer (for comparisons).

    With `OTEL_SDK_DISABLED=true` the handle is disabled: no exporter is built, every scope is the
    shared no-op one and nothing is captured."""
    resource = build_resource(service_name, resource_attributes)
    provider = tracer_provider(resource)
    if _env_flag("OTEL_SDK_DISABLED"):
        return TracingHandle(provider)
    if capture_content is None:
        capture_content = capture_content_from_env()

    env_exporters = _traces_exporter_env()
    names: list[str] = []
    memory_exporter: MemorySpanExporter | None = None
    if memory:
        memory_exporter = MemorySpanExporter()
        provider.add_span_processor(InMemoryProcessor(memory_exporter))
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
        from agent_platform._runtime.metrics import configure_metrics

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
        fast_spans=fast_spans,
    )
