"""Tracing for the runtime: OpenTelemetry spans with GenAI semantic-convention attributes.

One module per job:

* `facade`: `Tracing`, what the runtime calls (a context manager per kind of work, helpers for
  results and events), and `record_model_result`;
* `configure`: `configure_tracing()`, which builds a tracer provider with the exporters asked for
  (from arguments and the standard `OTEL_*` variables), and `TracingHandle`, the facade over it;
* `exporters`: the in-memory exporter and the JSONL file exporter (`span_to_dict`);
* `propagation`: W3C trace context across process and actor boundaries;
* `fast_spans`: cheap spans on public OpenTelemetry API, made whenever they cannot change what an
  exporter receives;
* `names`: the attribute and event names spans carry.

This package's own names below are what the rest of the platform imports."""

from agent_platform._runtime.tracing.configure import (
    CAPTURE_CONTENT_ENV,
    TracingHandle,
    capture_content_from_env,
    configure_tracing,
)
from agent_platform._runtime.tracing.exporters import JsonlSpanExporter, MemorySpanExporter, span_to_dict
from agent_platform._runtime.tracing.facade import Tracing, record_model_result
from agent_platform._runtime.tracing.propagation import extract_context, inject_context

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
