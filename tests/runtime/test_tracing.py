"""Tracing: parentage under concurrency, GenAI attributes from real usage, errors, events, the JSONL
and OTLP exporters (against a real OTLP/HTTP receiver), the standard OTEL_* variables, context
propagation across a process boundary, the span tree, and the cost of a span on and off."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import INVALID_SPAN, StatusCode
from pydantic import BaseModel

from agent_platform._runtime.models.base import ModelResult, Usage
from agent_platform._runtime.span_tree import render_span_tree
from agent_platform._runtime.tracing import (
    JsonlSpanExporter,
    Tracing,
    TracingHandle,
    configure_tracing,
    extract_context,
    inject_context,
    record_model_result,
)

ROOT = Path(__file__).resolve().parents[2]

OTEL_VARS = (
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tracing() -> Iterator[TracingHandle]:
    handle = configure_tracing(memory=True)
    yield handle
    handle.shutdown()


class Answer(BaseModel):
    summary: str


USAGE = Usage(1234, 56)


def result(provider: str = "anthropic", usage: Usage = USAGE) -> ModelResult[Answer]:
    return ModelResult(
        output=Answer(summary="the secret plan"),
        usage=usage,
        cost_usd=0.004542,
        provider=provider,
        model="claude-sonnet-4-5",
        response_id="toolu_01",
        attempts=2,
    )


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def sid(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def tid(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


# --- parentage ---------------------------------------------------------------------------------------


def test_parentage_under_gather_and_concurrent_runs_never_cross(tracing: TracingHandle) -> None:
    async def tool(run: str, i: int) -> None:
        with tracing.tool_span(f"tool-{i}", f"{run}-call-{i}"):
            # Interleave: later tools finish first, and the two runs interleave with each other.
            await asyncio.sleep(0.002 * (3 - i))
            with tracing.span(f"inner {run}-{i}"):
                await asyncio.sleep(0)

    async def run(run_id: str) -> None:
        with tracing.run_span("agent", f"agent-{run_id}", run_id):
            for n in (1, 2):
                with tracing.iteration_span(n):
                    await asyncio.sleep(0)
                    await asyncio.gather(*(tool(run_id, i) for i in range(3)))

    async def main() -> None:
        await asyncio.gather(run("a"), run("b"))

    asyncio.run(main())
    spans = tracing.finished_spans()
    assert len(spans) == 2 * (1 + 2 + 6 + 6)

    runs = {s.attributes["agent_platform.run.id"]: s for s in by_name(spans, "invoke_agent agent-a")}
    runs |= {s.attributes["agent_platform.run.id"]: s for s in by_name(spans, "invoke_agent agent-b")}
    assert set(runs) == {"a", "b"}
    assert tid(runs["a"]) != tid(runs["b"])
    by_id = {sid(s): s for s in spans}

    for run_id, run_span in runs.items():
        iterations = [
            s
            for s in by_name(spans, "iteration 1") + by_name(spans, "iteration 2")
            if tid(s) == tid(run_span)
        ]
        assert len(iterations) == 2
        for iteration in iterations:
            assert parent_id(iteration) == sid(run_span)
            tools = [s for s in spans if s.name.startswith("execute_tool") and parent_id(s) == sid(iteration)]
            # The three concurrent tool spans all have this iteration as parent, and are this run's.
            assert sorted(s.name for s in tools) == [
                "execute_tool tool-0",
                "execute_tool tool-1",
                "execute_tool tool-2",
            ]
            assert all(str(s.attributes["gen_ai.tool.call.id"]).startswith(f"{run_id}-") for s in tools)
        # Every span of the run shares its trace id, and walks up to the run span.
        members = [s for s in spans if tid(s) == tid(run_span)]
        assert len(members) == 15
        for span in members:
            node = span
            while node.parent is not None:
                node = by_id[node.parent.span_id]
            assert node is run_span
        inner = [s for s in members if s.name.startswith("inner ")]
        assert all(s.name.startswith(f"inner {run_id}-") for s in inner)
        for span in inner:
            tool_span = by_id[parent_id(span) or 0]
            assert tool_span.attributes is not None
            assert tool_span.attributes["gen_ai.tool.call.id"] == f"{run_id}-call-{span.name[-1]}"


def test_nested_units_share_the_trace(tracing: TracingHandle) -> None:
    with (
        tracing.run_span("pipeline", "ingest", "r1") as pipeline,
        tracing.step_span("ingest", "summarise", index=2, kind="agent") as step,
        tracing.run_span("agent", "summariser", "r1.2") as agent,
    ):
        pass
    spans = tracing.finished_spans()
    assert [s.name for s in spans] == [
        "invoke_agent summariser",
        "step summarise[2]",
        "invoke_workflow ingest",
    ]
    assert parent_id(spans[0]) == step.get_span_context().span_id
    assert parent_id(spans[1]) == pipeline.get_span_context().span_id
    assert agent.get_span_context().trace_id == pipeline.get_span_context().trace_id
    assert spans[2].attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert spans[2].attributes["gen_ai.workflow.name"] == "ingest"
    assert spans[1].attributes["agent_platform.step.index"] == 2


# --- attributes ----------------------------------------------------------------------------------------


def test_model_span_has_genai_attributes_with_real_usage(tracing: TracingHandle) -> None:
    with tracing.model_span(
        "anthropic", "claude-sonnet-4-5", "researcher", max_tokens=1024, temperature=0.2
    ) as span:
        record_model_result(span, result())
    (model,) = tracing.finished_spans()
    assert model.name == "chat claude-sonnet-4-5"
    assert model.kind.name == "CLIENT"
    attrs = dict(model.attributes or {})
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "agent_platform.model.key": "researcher",
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.request.temperature": 0.2,
        # The provider's reported usage, not a character count of anything.
        "gen_ai.usage.input_tokens": 1234,
        "gen_ai.usage.output_tokens": 56,
        "agent_platform.cost_usd": 0.004542,
        "gen_ai.response.model": "claude-sonnet-4-5",
        "gen_ai.response.id": "toolu_01",
        "agent_platform.model.attempts": 2,
    }
    # No content by default: neither the prompt nor the answer is anywhere on the span.
    assert not model.events
    assert "secret" not in json.dumps(attrs)


def test_scripted_provider_is_labelled(tracing: TracingHandle) -> None:
    with tracing.model_span("scripted", "fast", "pipeline/step") as span:
        tracing.record_model_result(span, result("scripted", Usage(10, 3)))
    (model,) = tracing.finished_spans()
    assert model.attributes["agent_platform.model.scripted"] is True
    assert model.attributes["gen_ai.provider.name"] == "scripted"
    assert model.attributes["gen_ai.usage.input_tokens"] == 10
    with tracing.model_span("openai", "gemma", "k"):
        pass
    assert "agent_platform.model.scripted" not in tracing.finished_spans()[-1].attributes


def test_tool_task_compaction_and_run_result_attributes(tracing: TracingHandle) -> None:
    with tracing.run_span("supervisor", "triage", "run-7") as run:
        with tracing.task_span("triage", "t-1", "code_review", 5):
            with tracing.tool_span("search", "call-1", side_effects=False) as tool:
                tracing.record_tool_result(tool, attempts=3, cached=True)
            with tracing.tool_span("charge", "call-2", side_effects=True) as tool:
                tracing.record_tool_result(tool, idempotent_replay=True, error="card declined")
        with tracing.compaction_span(9000, messages_before=40, model="haiku") as compaction:
            tracing.record_compaction(compaction, 2500, messages_after=6)
        tracing.record_run_result(run, "final_answer", usage=Usage(100, 20), cost_usd=0.5)
    spans = {s.name: s for s in tracing.finished_spans()}
    search = spans["execute_tool search"].attributes
    assert search["gen_ai.operation.name"] == "execute_tool"
    assert search["gen_ai.tool.name"] == "search"
    assert search["gen_ai.tool.call.id"] == "call-1"
    assert search["agent_platform.tool.attempts"] == 3
    assert search["agent_platform.tool.cached"] is True
    assert search["agent_platform.tool.side_effects"] is False
    charge = spans["execute_tool charge"]
    assert charge.attributes["agent_platform.tool.idempotent_replay"] is True
    assert charge.status.status_code is StatusCode.ERROR
    assert charge.status.description == "card declined"
    task = spans["task t-1"].attributes
    assert (task["agent_platform.task.type"], task["agent_platform.task.priority"]) == ("code_review", 5)
    compaction = spans["compaction"].attributes
    assert compaction["agent_platform.compaction.tokens_before"] == 9000
    assert compaction["agent_platform.compaction.tokens_after"] == 2500
    run_attrs = spans["invoke_workflow triage"].attributes
    assert run_attrs["agent_platform.run.outcome"] == "final_answer"
    assert run_attrs["gen_ai.usage.input_tokens"] == 100
    assert run_attrs["agent_platform.unit.kind"] == "supervisor"


# --- errors and events -----------------------------------------------------------------------------------


def test_exception_sets_error_status_and_is_recorded(tracing: TracingHandle) -> None:
    with pytest.raises(ValueError), tracing.run_span("agent", "a", "r"), tracing.tool_span("t", "c"):
        raise ValueError("bad input\nsecond line with details " + "x" * 500)
    tool, run = tracing.finished_spans()
    for span in (tool, run):  # the exception escapes both blocks
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ValueError: bad input …"
        assert span.attributes["error.type"] == "ValueError"
        (event,) = span.events
        assert event.name == "exception"
        assert event.attributes["exception.type"] == "ValueError"
        assert "x" * 50 not in str(event.attributes["exception.message"])


def test_cancellation_is_an_error_marked_as_a_cancellation(tracing: TracingHandle) -> None:
    async def main() -> None:
        async def slow() -> None:
            with tracing.tool_span("slow", "c"):
                await asyncio.sleep(10)

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (span,) = tracing.finished_spans()
    assert span.attributes["agent_platform.cancelled"] is True
    assert span.attributes["error.type"] == "CancelledError"
    assert span.status.status_code is StatusCode.ERROR
    assert span.events == ()  # no stack trace: it would only show where the span was waiting
    assert render_span_tree([span], durations=False) == "execute_tool slow  ERROR CancelledError\n"


def test_guardrail_and_loop_events(tracing: TracingHandle) -> None:
    with tracing.iteration_span(3) as iteration:
        with tracing.tool_span("fetch", "c1"):
            tracing.guardrail_event(
                "tool-output-injection",
                "prompt_injection",
                "redact",
                "matched an instruction\nfull text",
                stage="tool_output",
            )
            tracing.guardrail_event("allow-list", "tool_allowlist", "pass")  # passes are not recorded
        tracing.loop_detected("search", pattern=["search", "fetch"], repeats=3, action="halt")
        tracing.guardrail_event("budget", "budget", "halt", "cost 2.1 > 2.0", span=iteration)
    tool, it = tracing.finished_spans()
    (hit,) = tool.events
    assert hit.name == "guardrail.decision"
    assert dict(hit.attributes or {}) == {
        "agent_platform.guardrail.name": "tool-output-injection",
        "agent_platform.guardrail.type": "prompt_injection",
        "agent_platform.guardrail.verdict": "redact",
        "agent_platform.guardrail.reason": "matched an instruction …",
        "agent_platform.guardrail.stage": "tool_output",
    }
    assert [e.name for e in it.events] == ["loop_detected", "guardrail.decision"]
    assert it.events[0].attributes["agent_platform.loop.pattern"] == ("search", "fetch")
    assert it.events[0].attributes["agent_platform.loop.repeats"] == 3

    with configure_tracing(memory=True, record_guardrail_passes=True) as verbose, verbose.tool_span("t", "c"):
        verbose.guardrail_event("allow-list", "tool_allowlist", "pass")
    assert [e.name for e in verbose.finished_spans()[0].events] == ["guardrail.decision"]


def _capture(handle: Tracing) -> None:
    with handle.model_span("anthropic", "m", "k") as span:
        handle.capture_model_call(
            span, "You are helpful. " * 20, [{"role": "user", "content": "hi"}], result()
        )
        handle.record_model_result(span, result())
    with handle.tool_span("t", "c") as span:
        handle.capture_tool_arguments(span, {"q": "weather"})
        handle.capture_tool_result(span, "sunny")


def test_content_capture_is_opt_in_and_truncated() -> None:
    with configure_tracing(memory=True) as off:
        _capture(off)
        for span in off.finished_spans():
            assert span.events == () and not any(k.startswith("gen_ai.tool.call.a") for k in span.attributes)
    with configure_tracing(memory=True, capture_content=True) as handle:
        capturing = Tracing(handle.tracer, capture_content=True, content_max_chars=200)
        _capture(capturing)
        model, tool = handle.finished_spans()
    (details,) = [e.attributes for e in model.events if e.name == "gen_ai.client.inference.operation.details"]
    assert len(str(details["gen_ai.system_instructions"])) == 200
    assert str(details["gen_ai.system_instructions"]).endswith("…")
    assert details["gen_ai.input.messages"] == '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]'
    assert json.loads(str(details["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "toolu_01",
                    "name": "Answer",
                    "arguments": {"summary": "the secret plan"},
                }
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert tool.attributes["gen_ai.tool.call.arguments"] == '{"q":"weather"}'
    assert tool.attributes["gen_ai.tool.call.result"] == "sunny"


# --- disabled ----------------------------------------------------------------------------------------------


def test_disabled_facade_is_a_shared_no_op() -> None:
    off = Tracing.disabled()
    assert not off.enabled
    scope = off.tool_span("t", "c")
    assert scope is off.run_span("agent", "a", "r") is off.iteration_span(1)
    with scope as span:
        assert span is INVALID_SPAN
        record_model_result(span, result())
        off.record_tool_result(span, attempts=2, error="x")
        off.guardrail_event("g", "regex", "block", "r")
        off.loop_detected("t")
    with pytest.raises(KeyError), off.model_span("anthropic", "m", "k"):
        raise KeyError("errors still propagate")


def test_otel_sdk_disabled_disables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    with configure_tracing(memory=True, jsonl_path=tmp_path / "spans.jsonl") as handle:
        assert not handle.enabled
        with handle.run_span("agent", "a", "r") as span, handle.tool_span("t", "c"):
            assert span is INVALID_SPAN
        assert handle.finished_spans() == ()
    assert not (tmp_path / "spans.jsonl").exists()


# --- resource ----------------------------------------------------------------------------------------------


def test_resource_from_standard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with configure_tracing(memory=True) as handle:
        assert handle.provider.resource.attributes["service.name"] == "agent-platform"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "research-svc")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,team=search")
    with configure_tracing(memory=True) as handle:
        with handle.iteration_span(1):
            pass
        resource = handle.finished_spans()[0].resource.attributes
    assert resource["service.name"] == "research-svc"
    assert resource["deployment.environment"] == "staging"
    assert resource["team"] == "search"


# --- JSONL exporter ----------------------------------------------------------------------------------------


def test_jsonl_exporter_writes_one_valid_object_per_span(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "spans.jsonl"
    with (
        configure_tracing(jsonl_path=path, service_name="jsonl-test") as handle,
        handle.run_span("agent", "a", "r1"),
        handle.iteration_span(1) as it,
    ):
        with handle.model_span("scripted", "fast", "a") as model:
            record_model_result(model, result("scripted", Usage(7, 8)))
        handle.guardrail_event("g", "regex", "block", "matched", span=it)
        with pytest.raises(RuntimeError), handle.tool_span("t", "c1"):
            raise RuntimeError("boom")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 4
    by_name_ = {r["name"]: r for r in records}
    run, iteration = by_name_["invoke_agent a"], by_name_["iteration 1"]
    chat, tool = by_name_["chat fast"], by_name_["execute_tool t"]
    assert run["parent_span_id"] is None
    assert iteration["parent_span_id"] == run["span_id"]
    assert chat["parent_span_id"] == tool["parent_span_id"] == iteration["span_id"]
    assert {r["trace_id"] for r in records} == {run["trace_id"]}
    assert len(run["trace_id"]) == 32 and len(run["span_id"]) == 16
    assert chat["attributes"]["gen_ai.usage.output_tokens"] == 8
    assert chat["kind"] == "CLIENT"
    assert tool["status"] == {"code": "ERROR", "description": "RuntimeError: boom"}
    assert iteration["events"][0]["name"] == "guardrail.decision"
    assert iteration["events"][0]["attributes"]["agent_platform.guardrail.verdict"] == "block"
    assert run["resource"]["service.name"] == "jsonl-test"
    assert run["end_time_unix_nano"] >= iteration["end_time_unix_nano"] > iteration["start_time_unix_nano"]

    # Appends; exporting after shutdown fails cleanly.
    exporter = JsonlSpanExporter(path)
    exporter.shutdown()
    assert exporter.export([]).name == "FAILURE"


# --- OTLP, against a real receiver --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def otlp_attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


def test_otlp_export_reaches_a_real_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings

    port = free_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}/v1/traces")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otlp-test")

    async def main() -> list[Any]:
        received: list[Any] = []
        settings = OtelTapHttpProtobufReceiverSettings(http_port=port)
        async with OtelTapHttpProtobufReceiver(settings) as receiver:

            async def collect() -> None:
                async for span in receiver.stream_traces():
                    received.append(span)

            collector = asyncio.create_task(collect())
            await asyncio.sleep(0.05)  # subscribed before anything is sent
            handle = configure_tracing()  # OTLP switched on by the environment alone
            try:
                with handle.run_span("agent", "researcher", "run-otlp"), handle.iteration_span(1):
                    with handle.model_span("anthropic", "claude-sonnet-4-5", "researcher") as span:
                        record_model_result(span, result())
                    with handle.tool_span("web_search", "toolu_9"):
                        handle.guardrail_event("inj", "prompt_injection", "block", "boundary forged")
                assert await asyncio.to_thread(handle.force_flush, 10_000)
            finally:
                await asyncio.to_thread(handle.shutdown)
            deadline = asyncio.get_running_loop().time() + 10
            while len(received) < 4 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            collector.cancel()
        return received

    received = asyncio.run(main())
    spans = {s.name: s for s in received}
    assert set(spans) == {
        "invoke_agent researcher",
        "iteration 1",
        "chat claude-sonnet-4-5",
        "execute_tool web_search",
    }
    chat = otlp_attrs(spans["chat claude-sonnet-4-5"])
    assert chat["gen_ai.usage.input_tokens"] == 1234
    assert chat["gen_ai.usage.output_tokens"] == 56
    assert chat["gen_ai.provider.name"] == "anthropic"
    assert chat["agent_platform.cost_usd"] == pytest.approx(0.004542)
    assert otlp_attrs(spans["execute_tool web_search"])["gen_ai.tool.call.id"] == "toolu_9"
    assert otlp_attrs(spans["invoke_agent researcher"])["agent_platform.run.id"] == "run-otlp"
    iteration = spans["iteration 1"]
    assert spans["chat claude-sonnet-4-5"].parent_span_id == iteration.span_id
    assert iteration.parent_span_id == spans["invoke_agent researcher"].span_id
    assert {s.trace_id for s in received} == {iteration.trace_id}
    (event,) = spans["execute_tool web_search"].events
    assert event.name == "guardrail.decision"


def test_exporters_follow_the_arguments_and_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with configure_tracing() as handle:
        assert handle.exporters == ()
    with configure_tracing(memory=True, console=True, jsonl_path=tmp_path / "s.jsonl") as handle:
        assert handle.exporters == ("memory", "console", f"jsonl:{tmp_path / 's.jsonl'}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    with configure_tracing() as handle:
        assert handle.exporters == ("otlp",)
    with configure_tracing(otlp=False) as handle:
        assert handle.exporters == ()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    with configure_tracing() as handle:
        assert handle.exporters == ()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    with configure_tracing() as handle:
        assert handle.exporters == ("console",)


# --- propagation ---------------------------------------------------------------------------------------------


def test_inject_extract_across_a_thread(tracing: TracingHandle) -> None:
    seen: dict[str, Any] = {}

    def worker(carrier: dict[str, str]) -> None:
        # A new thread starts with an empty context: without the carrier this would be a new trace.
        with tracing.span("orphan"):
            pass
        with (
            tracing.task_span("sup", "t-1", "summarise", 1, parent=extract_context(carrier)) as task,
            tracing.tool_span("t", "c"),
        ):
            seen["inside"] = inject_context()
        seen["task"] = task

    with tracing.run_span("supervisor", "sup", "r") as run:
        carrier = inject_context()
        thread = threading.Thread(target=worker, args=(carrier,))
        thread.start()
        thread.join()
    assert set(carrier) == {"traceparent"}
    spans = {s.name: s for s in tracing.finished_spans()}
    assert spans["orphan"].parent is None
    task = spans["task t-1"]
    assert parent_id(task) == run.get_span_context().span_id
    assert tid(task) == run.get_span_context().trace_id
    assert task.parent is not None and task.parent.is_remote
    assert parent_id(spans["execute_tool t"]) == sid(task)
    assert extract_context({}) is not None and inject_context() == {}


def test_inject_extract_across_a_process(tmp_path: Path, tracing: TracingHandle) -> None:
    child = """
import json, sys
from pathlib import Path
from agent_platform._runtime.tracing import configure_tracing, extract_context

carrier = json.loads(sys.argv[1])
with configure_tracing(jsonl_path=Path(sys.argv[2])) as handle:
    with handle.run_span("agent", "remote", "r-remote", parent=extract_context(carrier)):
        with handle.iteration_span(1):
            pass
"""
    path = tmp_path / "child.jsonl"
    with tracing.run_span("supervisor", "sup", "r") as run:
        carrier = inject_context()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), env.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, "-c", child, json.dumps(carrier), str(path)], check=True, env=env, timeout=60
    )
    records = {r["name"]: r for r in map(json.loads, path.read_text().splitlines())}
    remote = records["invoke_agent remote"]
    assert remote["trace_id"] == f"{run.get_span_context().trace_id:032x}"
    assert remote["parent_span_id"] == f"{run.get_span_context().span_id:016x}"
    assert records["iteration 1"]["parent_span_id"] == remote["span_id"]


# --- span tree -------------------------------------------------------------------------------------------------


class FakeClock:
    """Every reading advances one millisecond: span times and durations become deterministic."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


SNAPSHOT = """\
invoke_agent researcher         21.0 ms  [Σ tokens 1,334/76, $0.0045]  ok
├─ iteration 1                   7.0 ms                                ok
│  ├─ chat fast (scripted)       1.0 ms  [tokens 100/20, $0]           ok
│  ├─ execute_tool web_search    2.0 ms                                ok
│  │  └─ • guardrail.decision injection (prompt_injection) → redact at tool_output: instruction-like text
│  └─ • loop_detected web_search [web_search → fetch] (2 repeats) → warn
├─ iteration 2                  10.0 ms                                ok
│  ├─ compaction                 3.0 ms  [Σ tokens 0/0, $0]            ok
│  │  └─ chat haiku (scripted)   1.0 ms  [tokens 0/0, $0]              ok
│  ├─ chat claude-sonnet-4-5     1.0 ms  [tokens 1,234/56, $0.0045]    ok
│  └─ execute_tool fetch         2.0 ms                                ERROR TimeoutError: fetch took 30 s
└─ • guardrail.decision budget (budget) → halt: cost limit reached
"""


def test_span_tree_snapshot(monkeypatch: pytest.MonkeyPatch, tracing: TracingHandle) -> None:
    import opentelemetry.sdk.trace as sdk_trace

    monkeypatch.setattr(sdk_trace, "time_ns", FakeClock())
    with tracing.run_span("agent", "researcher", "r") as run:
        with tracing.iteration_span(1):
            with tracing.model_span("scripted", "fast", "researcher") as span:
                record_model_result(
                    span, ModelResult(Answer(summary="s"), Usage(100, 20), 0.0, "scripted", "fast")
                )
            with tracing.tool_span("web_search", "c1"):
                tracing.guardrail_event(
                    "injection", "prompt_injection", "redact", "instruction-like text", stage="tool_output"
                )
            tracing.loop_detected("web_search", pattern=["web_search", "fetch"], repeats=2, action="warn")
        with tracing.iteration_span(2):
            with tracing.compaction_span(5000) as compaction:
                with tracing.model_span("scripted", "haiku", "memory") as span:
                    record_model_result(
                        span, ModelResult(Answer(summary="s"), Usage(0, 0), 0.0, "scripted", "haiku")
                    )
                tracing.record_compaction(compaction, 800)
            with tracing.model_span("anthropic", "claude-sonnet-4-5", "researcher") as span:
                record_model_result(span, result())
            try:
                with tracing.tool_span("fetch", "c2"):
                    raise TimeoutError("fetch took 30 s")
            except TimeoutError:
                pass
        tracing.guardrail_event("budget", "budget", "halt", "cost limit reached", span=run)
    tree = render_span_tree(tracing.finished_spans())
    assert tree == SNAPSHOT, "\n" + tree
    # Input order does not matter; durations can be left out; ASCII connectors on request.
    assert render_span_tree(reversed(tracing.finished_spans())) == SNAPSHOT
    plain = render_span_tree(tracing.finished_spans(), durations=False, show_events=False, ascii=True)
    assert plain.splitlines()[:3] == [
        "invoke_agent researcher         [Σ tokens 1,334/76, $0.0045]  ok",
        "|- iteration 1                                                ok",
        "|  |- chat fast (scripted)      [tokens 100/20, $0]           ok",
    ]
    assert "•" not in plain and "*" not in plain


def test_span_tree_of_several_traces_and_rich(tracing: TracingHandle) -> None:
    for name in ("a", "b"):
        with tracing.run_span("pipeline", name, name), tracing.step_span(name, "s1"):
            pass
    text = render_span_tree(tracing.finished_spans(), durations=False)
    assert [line.split()[0:2] for line in text.splitlines()] == [
        ["invoke_workflow", "a"],
        ["└─", "step"],
        ["invoke_workflow", "b"],
        ["└─", "step"],
    ]
    assert render_span_tree(()) == ""

    from rich.console import Console

    from agent_platform._runtime.span_tree import rich_span_tree

    console = Console(width=120, record=True, color_system=None)
    console.print(rich_span_tree(tracing.finished_spans()))
    assert "invoke_workflow b" in console.export_text()
