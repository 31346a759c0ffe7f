"""Spans produced faster than an exporter ships them are queued, not dropped: a host running many
agent runs makes ~30 spans per run, and the SDK's default queue (2,048) overflowed in a benchmark."""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agent_platform._runtime.tracing.configure import batched_processor


class SlowExporter(SpanExporter):
    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(0.05)  # a collector far away
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def burst(processor: BatchSpanProcessor, exporter: SlowExporter, spans: int) -> int:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for i in range(spans):
        with tracer.start_as_current_span(f"span-{i}"):
            pass
    provider.force_flush()
    provider.shutdown()
    return exporter.exported


def test_the_default_queue_drops_a_burst_and_ours_keeps_it() -> None:
    default = SlowExporter()
    assert burst(BatchSpanProcessor(default), default, 6_000) < 6_000, "the SDK default drops"
    ours = SlowExporter()
    assert burst(batched_processor(ours), ours, 6_000) == 6_000
