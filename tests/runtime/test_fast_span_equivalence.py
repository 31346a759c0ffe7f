"""Fast spans export exactly what the SDK's own `Tracer.start_span` path exports.

Each case runs the same work twice, once with `configure_tracing()` as it is (fast spans wherever
`fast_spans` says they cannot change anything) and once with `fast_spans=False` (every span made by
the SDK), from the same random state (so the same trace and span ids are drawn) and on the same
fake clock. Then every span every exporter received is compared field by field: name, ids and
flags and trace state, parent, kind, attributes, events (with their times and attributes), links,
status, start and end times, resource, instrumentation scope and the drop counts. The features:
nested spans of every kind the facade makes, errors and cancellations, sampling (remote parents
sampled or not, every sampler `OTEL_TRACES_SAMPLER` can name), span limits, several processors of
different kinds (and the metrics derived from the spans), context propagation across a process
boundary and other instrumentation nesting inside and around fast spans, and real agent runs.

A case also checks that the fast path made the spans it should: without that, the comparison
would only compare the SDK with itself."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import opentelemetry.sdk.trace as sdk_trace
import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from tests.runtime.test_engine import World, agent, call, final

from agent_platform._runtime.models.base import ModelResult, Usage
from agent_platform._runtime.outcomes import Outcome
from agent_platform._runtime.tracing import (
    Tracing,
    TracingHandle,
    configure_tracing,
    extract_context,
    inject_context,
    record_model_result,
)
from agent_platform._runtime.tracing.fast_spans import EndedFastSpan

OTEL_LIMIT_VARIABLES = (
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED",
)


class CountingClock:
    """Every reading advances one microsecond: both paths read the clock at the same moments, so
    their start, end and event times are equal."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        self.now += 1_000
        return self.now


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def snapshot(span: ReadableSpan) -> dict[str, Any]:
    """Everything an exporter can read from a finished span."""
    scope = span.instrumentation_scope
    return {
        "name": span.name,
        "context": _context(span.context),
        "parent": _context(span.parent),
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "events": [
            (e.name, e.timestamp, dict(e.attributes or {}), e.dropped_attributes) for e in span.events
        ],
        "links": [
            (_context(link.context), dict(link.attributes or {}), link.dropped_attributes)
            for link in span.links
        ],
        "status": (span.status.status_code, span.status.description),
        "times": (span.start_time, span.end_time),
        "resource": (dict(span.resource.attributes), span.resource.schema_url),
        "scope": (scope.name, scope.version, scope.schema_url, scope.attributes)
        if scope is not None
        else None,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
    }


def _context(ctx: SpanContext | None) -> tuple[Any, ...] | None:
    if ctx is None:
        return None
    return (
        ctx.trace_id,
        ctx.span_id,
        ctx.is_remote,
        ctx.trace_flags,
        ctx.trace_state.to_header(),
        ctx.is_valid,
    )


class Received:
    """What each exporter of a handle received, in order (the batch processor's sorted by span id:
    its worker thread exports in batches)."""

    def __init__(self) -> None:
        self.simple = InMemorySpanExporter()
        self.batched = InMemorySpanExporter()
        self.on_end: list[ReadableSpan] = []
        received = self

        class OnEndOnly(SpanProcessor):
            def on_end(self, span: ReadableSpan) -> None:
                received.on_end.append(span)

        self.processors = [SimpleSpanProcessor(self.simple), BatchSpanProcessor(self.batched), OnEndOnly()]

    def spans(self, handle: TracingHandle) -> dict[str, list[ReadableSpan]]:
        handle.force_flush()
        return {
            "memory": list(handle.finished_spans()),
            "simple": list(self.simple.get_finished_spans()),
            "batched": sorted(self.batched.get_finished_spans(), key=lambda s: s.context.span_id),  # type: ignore[union-attr]
            "on_end": list(self.on_end),
        }


def run_both(
    monkeypatch: pytest.MonkeyPatch,
    work: Callable[[TracingHandle], Any],
    *,
    metrics: bool = False,
) -> tuple[dict[str, list[ReadableSpan]], dict[str, list[ReadableSpan]], list[Any]]:
    """`work` on the fast path and on the SDK's, each from seed 7 on its own fake clock: what each
    exporter received on each, and the metric points of each when `metrics`."""
    received: list[dict[str, list[ReadableSpan]]] = []
    points: list[Any] = []
    for fast in (True, False):
        monkeypatch.setattr(sdk_trace, "time_ns", CountingClock())
        exporters = Received()
        handle = configure_tracing(
            memory=True, extra_processors=exporters.processors, fast_spans=fast, metrics=metrics
        )
        random.seed(7)
        try:
            work(handle)
            received.append(exporters.spans(handle))
            if metrics:
                points.append(_metric_values(handle))
        finally:
            handle.shutdown()
    fast_spans, sdk_spans = received
    return fast_spans, sdk_spans, points


def _metric_values(handle: TracingHandle) -> dict[str, list[tuple[Any, ...]]]:
    values: dict[str, list[tuple[Any, ...]]] = {}
    for name, data_points in handle.metric_points().items():
        values[name] = sorted(
            (
                tuple(sorted(dict(p.attributes or {}).items())),
                getattr(p, "value", None),
                getattr(p, "count", None),
                getattr(p, "sum", None),
            )
            for p in data_points
        )
    return values


def assert_same_exports(
    fast: dict[str, list[ReadableSpan]],
    sdk: dict[str, list[ReadableSpan]],
    *,
    run_ids: tuple[str, str] | None = None,
) -> None:
    assert fast.keys() == sdk.keys()
    for exporter, spans in sdk.items():
        assert len(fast[exporter]) == len(spans) > 0, exporter
        assert all(type(s) is ReadableSpan for s in spans), exporter
        for made_fast, made_by_sdk in zip(fast[exporter], spans, strict=True):
            expected, got = snapshot(made_by_sdk), snapshot(made_fast)
            if run_ids is not None:
                got["attributes"] = _with_run_id(got["attributes"], run_ids[0])
                expected["attributes"] = _with_run_id(expected["attributes"], run_ids[1])
            assert got == expected, (exporter, made_by_sdk.name)


def _with_run_id(attributes: dict[str, Any], run_id: str) -> dict[str, Any]:
    return {k: v.replace(run_id, "<run>") if isinstance(v, str) else v for k, v in attributes.items()}


def made_fast(spans: dict[str, list[ReadableSpan]]) -> set[str]:
    return {s.name for s in spans["memory"] if type(s) is EndedFastSpan}


# --- the work ----------------------------------------------------------------------------------


def every_kind_of_span(t: Tracing) -> None:
    """Nested spans of every kind the facade makes, with results, events, links, an error span, an
    exception and a status set through the API."""
    result = ModelResult(None, Usage(12, 3), 0.25, "scripted", "fast", response_id="r-1", attempts=2)  # type: ignore[arg-type]
    linked = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), TraceState([("k", "v")]))
    with t.run_span("agent", "researcher", "run-1", attributes={"extra": "x"}) as run:
        with t.iteration_span(1):
            with t.model_span("scripted", "fast", "researcher", max_tokens=64, temperature=0.5) as span:
                t.record_model_result(span, result)
                t.model_retry_event(1, TimeoutError("slow"), 0.5)
            with t.tool_span("search", "run-1:1", side_effects=False) as span:
                t.guardrail_event("inj", "prompt_injection", "redact", "looks like an instruction")
                t.loop_detected("search", pattern=["search", "fetch"], repeats=2, action="warn")
                t.record_tool_result(
                    span, attempts=2, cached=True, idempotent_replay=True, error="declined\nmore"
                )
                span.set_attribute("custom.list", ["a", "b"])
                span.set_attributes({"custom.n": 3, "custom.f": 0.5, "": "dropped", "custom.bad": object()})  # type: ignore[dict-item]
                span.add_link(linked, {"why": "retry of"})
                span.add_link(SpanContext(0, 0, False), None)  # not worth keeping: dropped by both
                span.add_event("custom", {"n": 1}, timestamp=123)
        with t.iteration_span(2):
            with t.compaction_span(5000, messages_before=12, model="haiku") as compaction:
                with t.model_span("scripted", "haiku", "memory") as span:
                    record_model_result(span, result)
                t.record_compaction(compaction, 800, messages_after=3)
            with t.memory_span("recall", "notes") as span:
                t.record_recall(span, candidates=5, shown=2, fenced=1, duplicates=1, tokens=40, budget=100)
                t.memory_error(span, "store unavailable")
            try:
                with t.tool_span("fetch", "run-1:2"):
                    raise TimeoutError("fetch took 30 s")
            except TimeoutError:
                pass
            with t.step_span("p", "s", index=1, kind="agent"), t.span("custom", {"k": [1, 2]}) as span:
                span.update_name("renamed")
                span.set_status(StatusCode.OK)
                span.set_status(StatusCode.ERROR, "ignored: OK is final")
            with t.task_span("sup", "task-1", "research", 3) as span:
                t.record_error(span, "failed", "the task's run failed")
        t.record_run_result(run, "failed", usage=Usage(20, 5), cost_usd=0.5, error="it broke")


def cancelled_and_raised(t: Tracing) -> None:
    """A cancelled step under a run that raised: the exception events, statuses and markers."""

    async def main() -> None:
        with t.run_span("agent", "a", "run-2"):
            task = asyncio.ensure_future(step())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    async def step() -> None:
        with t.iteration_span(1), t.tool_span("slow", "run-2:1"):
            await asyncio.sleep(60)

    asyncio.run(main())
    try:
        with t.run_span("pipeline", "p", "run-3"), t.step_span("p", "boom"):
            raise ValueError("token sk-live-0123456789abcdef0123 leaked")
    except ValueError:
        pass


def test_every_kind_of_span_through_several_processors_is_exported_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast, sdk, points = run_both(monkeypatch, every_kind_of_span, metrics=True)
    assert_same_exports(fast, sdk)
    assert made_fast(fast) == {s.name for s in fast["memory"]}  # every span, the root too
    assert made_fast(sdk) == set()
    assert points[0] == points[1] and points[0]  # the metrics derived from the spans, too


def test_errors_and_cancellations_are_exported_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, sdk, _ = run_both(monkeypatch, cancelled_and_raised)
    assert_same_exports(fast, sdk)
    assert made_fast(fast) == {s.name for s in fast["memory"]}
    statuses = {s.name: s.status.status_code for s in sdk["memory"]}
    assert statuses["execute_tool slow"] is StatusCode.ERROR and statuses["step boom"] is StatusCode.ERROR


@pytest.mark.parametrize(
    ("variables", "fast_path"),
    [
        ({}, True),
        ({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "3"}, True),  # the runtime's own attributes bounded too
        ({"OTEL_SPAN_EVENT_COUNT_LIMIT": "1", "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "1"}, True),
        ({"OTEL_SPAN_LINK_COUNT_LIMIT": "0", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": "0"}, True),
        ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4"}, False),  # values cut: the SDK makes the spans
        ({"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4"}, False),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, True),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, False),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, False),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.0"}, False),
        ({"OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED": "true"}, False),
    ],
)
def test_limits_and_samplers_give_the_same_exports(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], fast_path: bool
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    def work(t: Tracing) -> None:
        for _ in range(3):  # several traces: a ratio sampler keeps some
            every_kind_of_span(t)

    fast, sdk, _ = run_both(monkeypatch, work)
    if variables.get("OTEL_TRACES_SAMPLER") == "parentbased_always_off":
        assert fast == sdk == {"memory": [], "simple": [], "batched": [], "on_end": []}
        return
    assert_same_exports(fast, sdk)
    assert bool(made_fast(fast)) is fast_path


def test_remote_parents_and_other_instrumentation_nest_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parents from another process (sampled with a trace state, or unsampled), and SDK spans of
    other instrumentation both under and above the runtime's spans."""

    def work(t: TracingHandle) -> None:
        with t.run_span("agent", "caller", "r0"):
            carrier = inject_context()
        carrier["tracestate"] = "vendor=1"
        remote = extract_context(carrier)
        other = t.provider.get_tracer("other.library")
        with (
            t.run_span("agent", "callee", "r1", parent=remote),
            t.tool_span("t", "c1"),
            other.start_as_current_span("http GET", kind=SpanKind.CLIENT) as http,
        ):
            http.set_attribute("http.status_code", 200)
            with t.span("inside other"):
                pass
        with other.start_as_current_span("outer job"), t.iteration_span(1):
            pass
        unsampled = extract_context({"traceparent": carrier["traceparent"][:-2] + "00"})
        with t.span("under an unsampled parent", parent=unsampled) as span:
            assert not span.is_recording()
            with t.tool_span("t", "c2") as child:
                assert not child.is_recording()

    fast, sdk, _ = run_both(monkeypatch, work)
    assert_same_exports(fast, sdk)
    assert made_fast(fast) == {
        "invoke_agent caller",
        "invoke_agent callee",
        "execute_tool t",
        "inside other",
        "iteration 1",
    }
    callee = next(s for s in sdk["memory"] if s.name == "invoke_agent callee")
    assert callee.parent is not None and callee.parent.is_remote
    assert callee.context is not None and callee.context.trace_state.get("vendor") == "1"


def test_a_processor_added_while_spans_are_open_gets_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    late: dict[bool, InMemorySpanExporter] = {}

    def work(t: TracingHandle) -> None:
        exporter = late[t._fast is not None] = InMemorySpanExporter()
        with t.run_span("agent", "a", "r"), t.iteration_span(1):
            t.provider.add_span_processor(SimpleSpanProcessor(exporter))
            with t.tool_span("t", "c"):
                pass

    fast, sdk, _ = run_both(monkeypatch, work)
    assert_same_exports(fast, sdk)
    late_fast, late_sdk = late[True].get_finished_spans(), late[False].get_finished_spans()
    assert [snapshot(s) for s in late_fast] == [snapshot(s) for s in late_sdk]
    assert [s.name for s in late_sdk] == ["execute_tool t", "iteration 1", "invoke_agent a"]


# --- real runs ---------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    yield World(tmp_path)


@pytest.mark.parametrize(
    ("limits", "script", "outcome"),
    [
        (
            "{}",
            [call("lookup", query="ray"), call("lookup", query="actors"), final("done")],
            Outcome.COMPLETED,
        ),
        ("{max_iterations: 2}", [call("lookup", query=f"q{i}") for i in range(3)], Outcome.MAX_ITERATIONS),
        ("{}", [call("lookup", query="x")], Outcome.FAILED),  # the script runs out: a model error
    ],
)
def test_agent_runs_are_exported_the_same(
    monkeypatch: pytest.MonkeyPatch, world: World, limits: str, script: list[Any], outcome: Outcome
) -> None:
    run_ids: list[str] = []

    def work(t: TracingHandle) -> None:
        result = asyncio.run(world.run(agent(limits=limits), {"a": script}, tracing=t))
        assert result.outcome is outcome, result.error
        run_ids.append(result.run_id)

    fast, sdk, _ = run_both(monkeypatch, work)
    # Run ids are uuids, not drawn from `random`: each run's own id is read as the same.
    assert_same_exports(fast, sdk, run_ids=(run_ids[0], run_ids[1]))
    assert made_fast(fast) == {s.name for s in fast["memory"]}
    assert {"invoke_agent a", "iteration 1", "execute_tool lookup"} <= {s.name for s in sdk["memory"]}
