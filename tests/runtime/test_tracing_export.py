"""The JSONL export path: each span's line is exactly what `span_to_dict` gives, the file reads back
through `deploy.traces`, writers in several threads and processes append whole lines only, nothing
is lost at shutdown, and the batch settings follow the standard OTEL_BSP_* variables."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from pydantic_core import to_json

from agent_platform._deploy.traces import read_spans, to_readable
from agent_platform._runtime.models.base import ModelResult, Usage
from agent_platform._runtime.tracing import (
    JsonlSpanExporter,
    Tracing,
    TracingHandle,
    configure_tracing,
    span_to_dict,
)
from agent_platform._runtime.tracing.configure import (
    SPAN_BATCH_SIZE,
    SPAN_QUEUE_SIZE,
    SPAN_SCHEDULE_DELAY_MS,
    batched_processor,
)
from agent_platform._runtime.tracing.exporters import _SpanLines
from agent_platform._runtime.tracing.fast_spans import EndedFastSpan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_bsp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_SCHEDULE_DELAY"):
        monkeypatch.delenv(name, raising=False)


class _Watching(SpanProcessor):
    """A processor with an on_start: every span is then the SDK's own."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass


def _workload(t: Tracing, run_id: str = "run-1") -> None:
    result = ModelResult(None, Usage(12, 3), 0.25, "anthropic", "m-1", response_id="r-1")  # type: ignore[arg-type]
    with t.run_span("agent", "researcher", run_id) as run:
        with t.iteration_span(1):
            with t.model_span("anthropic", 'say "hi"\n', "researcher", temperature=0.5) as span:
                t.record_model_result(span, result)
            with t.tool_span("search", f"{run_id}:1", side_effects=True) as span:
                t.guardrail_event("inj", "prompt_injection", "redact", 'café ☃ "quoted"\nnext')
                t.loop_detected("search", pattern=["search", "fetch"], repeats=2)
                t.record_tool_result(span, attempts=2, cached=True, error="card declined")
                span.set_attribute("custom.list", ["a", "b"])
                span.set_attributes(
                    {"custom.float": 1.5e-7, "custom.unicode": "日本語 ✓", "custom.flag": False}
                )
        try:
            with t.tool_span("fetch", f"{run_id}:2"):
                raise TimeoutError("fetch took 30 s")
        except TimeoutError:
            pass
        with t.span("custom", {"k": [1, 2], "empty": ""}):
            pass
        t.record_run_result(run, "completed", usage=Usage(12, 3), cost_usd=0.25)


def _expected(span: ReadableSpan) -> bytes:
    return to_json(span_to_dict(span), fallback=str) + b"\n"


@pytest.fixture
def spans() -> Iterator[tuple[ReadableSpan, ...]]:
    """Fast spans, the same made by the SDK, and spans read back from a file (plain ReadableSpans)."""
    with (
        configure_tracing(memory=True) as fast,
        configure_tracing(memory=True, extra_processors=[_Watching()]) as sdk,
    ):
        _workload(fast)
        _workload(sdk)
        made = fast.finished_spans() + sdk.finished_spans()
    assert any(type(s) is EndedFastSpan for s in made) and any(type(s) is ReadableSpan for s in made)
    read_back = tuple(to_readable(json.loads(_expected(s))) for s in made)
    yield made + read_back


def test_each_line_is_what_span_to_dict_gives(spans: tuple[ReadableSpan, ...]) -> None:
    lines = _SpanLines()
    for span in spans:
        assert lines.line(span) == _expected(span), span.name
    # The same again, now from the resource and name caches.
    assert [lines.line(s) for s in spans] == [_expected(s) for s in spans]


def test_lines_of_unusual_spans() -> None:
    context = SpanContext(0x1, 0x2, False, TraceFlags(1))
    odd = [
        ReadableSpan(name="no scope, no times", context=context),  # the general path
        ReadableSpan(
            name="status text",
            context=context,
            parent=SpanContext(0x1, 0x3, True, TraceFlags(1)),
            kind=SpanKind.CONSUMER,
            status=Status(StatusCode.ERROR, 'it broke: "x" ☃'),
            start_time=1,
            end_time=2,
            attributes={"t": (1, 2), "n": None},  # type: ignore[dict-item]
            resource=Resource({"service.name": "other", "list": ("a",)}),
        ),
    ]
    unended = configure_tracing(memory=True)
    with unended.run_span("agent", "a", "r") as open_span:
        odd.append(open_span)  # type: ignore[arg-type]
        assert open_span.end_time is None  # type: ignore[attr-defined]
        lines = _SpanLines()
        for span in odd:
            assert lines.line(span) == _expected(span), span.name
    unended.shutdown()


def test_the_file_reads_back_as_span_to_dict_gives(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    with configure_tracing(memory=True, jsonl_path=path) as handle:
        _workload(handle)
        kept = handle.finished_spans()
    expected = sorted((json.loads(json.dumps(span_to_dict(s))) for s in kept), key=lambda d: d["span_id"])
    assert sorted(read_spans(path), key=lambda d: d["span_id"]) == expected


def test_a_span_that_is_not_utf8_does_not_lose_its_batch(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    with configure_tracing(memory=True) as handle:
        _workload(handle)
        with handle.run_span("agent", "a", "r") as run:
            run.set_attribute("broken", "half a pair: \ud800")
        spans = handle.finished_spans()
    exporter = JsonlSpanExporter(path)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    records = read_spans(path)
    assert [r["name"] for r in records] == [s.name for s in spans]
    assert records[-1]["attributes"]["broken"] == "half a pair: \ud800"
    assert records[0] == json.loads(json.dumps(span_to_dict(spans[0])))


class _ShortWrites:
    """A file whose writes take at most 100 bytes at a time (as a signal or a full disk may)."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("ab", buffering=0)
        self.calls = 0

    def write(self, data: bytes) -> int:
        self.calls += 1
        return self.file.write(bytes(data[:100]))

    def close(self) -> None:
        self.file.close()


def test_a_short_write_is_completed(tmp_path: Path) -> None:
    with configure_tracing(memory=True) as handle:
        _workload(handle)
        spans = handle.finished_spans()
    exporter = JsonlSpanExporter(tmp_path / "short.jsonl")
    exporter._file = short = _ShortWrites(tmp_path / "short.jsonl")  # type: ignore[assignment]
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert short.calls > len(spans)
    assert (tmp_path / "short.jsonl").read_bytes() == b"".join(_expected(s) for s in spans)


def _big_spans(writer: int, count: int) -> list[ReadableSpan]:
    """Spans of ~4 KB each: a batch is far larger than any pipe or stdio buffer."""
    context = SpanContext(writer + 1, 1, False, TraceFlags(1))
    return [
        ReadableSpan(
            name=f"w{writer}-{i}",
            context=SpanContext(writer + 1, i + 1, False, TraceFlags(1)),
            parent=context,
            attributes={"padding": "x" * 4000, "writer": writer, "i": i},
            start_time=1,
            end_time=2,
        )
        for i in range(count)
    ]


def _check_whole_lines(path: Path, writers: int, batches: int, per_batch: int) -> None:
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # the file ends with a whole line
    records = [json.loads(line) for line in lines[:-1]]  # a torn line would not parse
    seen = sorted((r["attributes"]["writer"], r["attributes"]["i"]) for r in records)
    assert seen == sorted((w, i) for w in range(writers) for _ in range(batches) for i in range(per_batch))


def test_threads_appending_to_one_file_write_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    writers, batches, per_batch = 4, 5, 300

    def write(writer: int) -> None:
        exporter = JsonlSpanExporter(path)  # its own file descriptor, as another process has
        spans = _big_spans(writer, per_batch)
        for _ in range(batches):
            assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _check_whole_lines(path, writers, batches, per_batch)


WRITER = """
import sys
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from test_tracing_export import _big_spans
from agent_platform._runtime.tracing import JsonlSpanExporter

exporter = JsonlSpanExporter(Path(sys.argv[1]))
spans = _big_spans(int(sys.argv[2]), 300)
for _ in range(5):
    exporter.export(spans)
exporter.shutdown()
"""


def test_processes_appending_to_one_file_write_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    here = str(Path(__file__).parent)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), here], cwd=ROOT) for w in range(3)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    _check_whole_lines(path, 3, 5, 300)


def test_nothing_is_lost_at_shutdown(tmp_path: Path) -> None:
    """Spans ended by concurrent tasks and threads up to the moment of shutdown are all written."""
    path = tmp_path / "spans.jsonl"
    handle: TracingHandle = configure_tracing(jsonl_path=path)

    async def runs(prefix: str) -> None:
        await asyncio.gather(*(run(f"{prefix}-{i}") for i in range(50)))

    async def run(run_id: str) -> None:
        with handle.run_span("agent", "a", run_id):
            for n in range(10):
                with handle.iteration_span(n + 1), handle.tool_span("t", f"{run_id}:{n}"):
                    await asyncio.sleep(0)

    threads = [threading.Thread(target=asyncio.run, args=(runs(f"t{t}"),)) for t in range(3)]
    for thread in threads:
        thread.start()
    asyncio.run(runs("main"))
    for thread in threads:
        thread.join()
    handle.shutdown()
    records = read_spans(path)
    assert len(records) == 4 * 50 * 21
    assert len({r["span_id"] for r in records}) == len(records)


def _settings(processor: Any) -> tuple[int, int, float]:
    batch = processor._batch_processor
    return batch._max_queue_size, batch._max_export_batch_size, batch._schedule_delay_millis


def test_batch_settings_follow_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = JsonlSpanExporter("unused.jsonl")
    processors = []

    def settings() -> tuple[int, int, float]:
        processor = batched_processor(exporter)
        processors.append(processor)
        return _settings(processor)

    assert settings() == (SPAN_QUEUE_SIZE, SPAN_BATCH_SIZE, SPAN_SCHEDULE_DELAY_MS)
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    assert settings() == (SPAN_QUEUE_SIZE, 512, 100)
    monkeypatch.delenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "1000")  # below our batch: the batch follows
    assert settings() == (1000, 1000, 100)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "soon")  # not a number: our default
    assert settings()[2] == SPAN_SCHEDULE_DELAY_MS
    for processor in processors:
        processor.shutdown()


def test_a_failed_run_reaches_an_otlp_receiver_as_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that ends `failed` without raising arrives at a real OTLP/HTTP receiver with status
    ERROR, its description and `error.type`; the step and model call that failed are errors too."""
    from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings
    from tests.runtime.test_engine import World, agent, call
    from tests.runtime.test_tracing import free_port, otlp_attrs

    port = free_port()
    for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}/v1/traces")
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    world = World(tmp_path)

    async def main() -> list[Any]:
        received: list[Any] = []
        async with OtelTapHttpProtobufReceiver(
            OtelTapHttpProtobufReceiverSettings(http_port=port)
        ) as receiver:

            async def collect() -> None:
                async for span in receiver.stream_traces():
                    received.append(span)

            collector = asyncio.create_task(collect())
            await asyncio.sleep(0.05)  # subscribed before anything is sent
            handle = configure_tracing()  # OTLP switched on by the environment alone
            try:
                # The script has one answer: the second model call finds none, and the run fails.
                result = await world.run(agent(), {"a": [call("lookup", query="x")]}, tracing=handle)
                assert result.outcome.value == "failed"
                assert await asyncio.to_thread(handle.force_flush, 10_000)
            finally:
                await asyncio.to_thread(handle.shutdown)
            deadline = asyncio.get_running_loop().time() + 10
            while len(received) < 6 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            collector.cancel()
        return received

    spans = {span.name: span for span in asyncio.run(main())}
    error = 2  # STATUS_CODE_ERROR in the OTLP protocol
    run = spans["invoke_agent a"]
    assert run.status.code == error
    assert run.status.message.startswith("model call failed: ")
    assert otlp_attrs(run)["error.type"] == "failed"
    assert otlp_attrs(run)["agent_platform.run.outcome"] == "failed"
    assert spans["iteration 2"].status.code == error
    assert otlp_attrs(spans["iteration 2"])["error.type"] == "ScriptExhausted"
    assert spans["iteration 1"].status.code == 0  # STATUS_CODE_UNSET: that step went well
