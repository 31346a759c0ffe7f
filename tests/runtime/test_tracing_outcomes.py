"""A run, pipeline step, supervisor task, agent step, tool call or model call that did not succeed
is an error span (status ERROR, `error.type`, a description), whether it raised or ended with a
typed outcome, on the fast span path and on the SDK's, and the span tree, the JSONL file read back
by `deploy.traces` and the OTLP export all show it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode
from tests.runtime.test_engine import World, agent, call, final

from agent_platform._deploy.traces import render_trace
from agent_platform._runtime.outcomes import Outcome, RunResult
from agent_platform._runtime.span_tree import render_span_tree
from agent_platform._runtime.tracing import TracingHandle, configure_tracing
from agent_platform._runtime.tracing.fast_spans import EndedFastSpan

SUPERVISOR = """\
---
apiVersion: agents.platform/v1
kind: Supervisor
metadata: {{name: s}}
spec:
  routes: {{research: {{agent: a}}, review: {{agent: b}}}}
  concurrency: 2
  on_error: {on_error}
"""

PIPELINE = """\
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: p}
spec:
  inputs: {type: object, properties: {queries: {type: array, items: {type: string}}}, required: [queries]}
  steps:
    - {name: each, tool: lookup, map: {over: "{{ inputs.queries }}", as: q, concurrency: 2}, input: {query: "{{ q }}"}}
"""


class _Watching(SpanProcessor):
    """A processor with an on_start: every span is then made by the SDK, not by `fast_spans`."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass


@pytest.fixture(params=["fast", "sdk"])
def tracing(request: pytest.FixtureRequest) -> Iterator[TracingHandle]:
    processors = [_Watching()] if request.param == "sdk" else []
    handle = configure_tracing(memory=True, extra_processors=processors)
    yield handle
    handle.shutdown()
    made_by = {type(s) for s in handle.finished_spans()}
    assert made_by == ({EndedFastSpan} if request.param == "fast" else {ReadableSpan}), made_by


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    return World(tmp_path)


def by_name(handle: TracingHandle) -> dict[str, ReadableSpan]:
    return {span.name: span for span in handle.finished_spans()}


def assert_error(span: ReadableSpan, error_type: str, description: str | None = None) -> None:
    attributes = span.attributes or {}
    assert span.status.status_code is StatusCode.ERROR, (span.name, span.status)
    assert attributes.get("error.type") == error_type, (span.name, dict(attributes))
    assert span.status.description, span.name
    if description is not None:  # a long one is cut to a line of 200 characters
        assert span.status.description[:150] == description[:150], span.name


def assert_ok(span: ReadableSpan) -> None:
    assert span.status.status_code is StatusCode.UNSET, (span.name, span.status)
    assert "error.type" not in (span.attributes or {}), span.name


async def test_a_completed_run_has_no_error(world: World, tracing: TracingHandle) -> None:
    result = await world.run(agent(), {"a": [call("lookup", query="x"), final()]}, tracing=tracing)
    assert result.outcome is Outcome.COMPLETED
    for span in tracing.finished_spans():
        assert_ok(span)
    assert render_span_tree(tracing.finished_spans(), durations=False).splitlines()[0].endswith("  ok")


@pytest.mark.parametrize(
    ("limits", "script", "outcome"),
    [
        ("{}", [call("lookup", query="x")], Outcome.FAILED),  # the script runs out: a model error
        ("{max_iterations: 2}", [call("lookup", query=f"q{i}") for i in range(3)], Outcome.MAX_ITERATIONS),
        (
            "{max_tool_calls: 1}",
            [call("lookup", query="x"), call("lookup", query="y")],
            Outcome.TOOL_CALL_BUDGET,
        ),
    ],
)
async def test_a_run_ending_with_a_typed_outcome_is_an_error_span(
    world: World, tracing: TracingHandle, limits: str, script: list[Any], outcome: Outcome
) -> None:
    """The agent loop does not raise: it returns a RunResult whose outcome says how it ended."""
    result = await world.run(agent(limits=limits), {"a": script}, tracing=tracing)
    assert result.outcome is outcome and result.error
    run = by_name(tracing)["invoke_agent a"]
    assert_error(run, outcome.value, result.error)
    assert (run.attributes or {})["agent_platform.run.outcome"] == outcome.value
    line = render_span_tree(tracing.finished_spans(), durations=False).splitlines()[0]
    assert line.startswith("invoke_agent a") and f"ERROR {outcome.value}: " in line, line


async def test_a_failed_model_call_and_the_step_it_stopped_are_errors(
    world: World, tracing: TracingHandle
) -> None:
    await world.run(agent(), {"a": [call("lookup", query="x")]}, tracing=tracing)
    chats = [s for s in tracing.finished_spans() if s.name.startswith("chat ")]
    assert_ok(chats[0])
    assert_error(chats[-1], "ScriptExhausted")  # the provider's typed error
    spans = by_name(tracing)
    assert_ok(spans["iteration 1"])
    assert_error(spans["iteration 2"], "ScriptExhausted")


async def test_a_failed_tool_call_names_its_error_type(world: World, tracing: TracingHandle) -> None:
    result = await world.run(agent(), {"a": [call("lookup", query="explode"), final()]}, tracing=tracing)
    assert result.outcome is Outcome.COMPLETED  # the model was told and went on
    tool = by_name(tracing)["execute_tool lookup"]
    assert_error(tool, "ToolFailed", "ValueError: lookup exploded")
    tree = render_span_tree(tracing.finished_spans(), durations=False)
    assert "ERROR ToolFailed: ValueError: lookup exploded" in tree, tree
    assert_ok(by_name(tracing)["invoke_agent a"])


async def test_a_timed_out_run_cancels_its_step_and_tool_as_errors(
    world: World, tracing: TracingHandle
) -> None:
    result = await world.run(
        agent(limits="{timeout: 200ms}"), {"a": [call("slow", seconds=5), final()]}, tracing=tracing
    )
    assert result.outcome is Outcome.TIMEOUT
    spans = by_name(tracing)
    assert_error(spans["invoke_agent a"], "timeout")
    for name in ("iteration 1", "execute_tool slow"):
        assert_error(spans[name], "CancelledError")
        assert (spans[name].attributes or {})["agent_platform.cancelled"] is True
    tree = render_span_tree(tracing.finished_spans(), durations=False)
    assert "execute_tool slow" in tree and "ERROR CancelledError" in tree, tree


async def test_a_failed_pipeline_and_its_step_are_errors(world: World, tracing: TracingHandle) -> None:
    result = await world.run(PIPELINE, {}, "p", {"queries": ["x", "explode"]}, tracing=tracing)
    assert result.outcome is Outcome.FAILED and result.error
    spans = by_name(tracing)
    assert_error(spans["invoke_workflow p"], "failed", result.error)
    assert_error(spans["step each[0]"], "StepFailed")


async def test_failed_supervisor_tasks_are_errors_and_so_is_the_supervisor(
    world: World, tracing: TracingHandle
) -> None:
    specs = agent("a") + agent("b") + SUPERVISOR.format(on_error="collect")
    tasks = [
        {"task_id": "good", "task_type": "research", "payload": {"topic": "x"}},
        {"task_id": "bad", "task_type": "review", "payload": {"topic": "y"}},
    ]
    script = {"a": [final("a")], "b": [call("lookup", query="y")]}  # b's script runs out
    result = await world.run(specs, script, "s", {"tasks": tasks}, tracing=tracing)
    assert result.outcome is Outcome.FAILED
    spans = by_name(tracing)
    assert_ok(spans["task good"])
    assert_error(spans["task bad"], "failed", result.output["bad"]["error"])
    assert_error(spans["invoke_workflow s"], "failed", "one or more tasks did not complete")
    tree = render_span_tree(tracing.finished_spans(), durations=False)
    lines = {line.split("  ")[0].strip("├└─│ "): line for line in tree.splitlines()}
    assert lines["task good"].endswith("  ok")
    assert "ERROR failed: " in lines["task bad"]
    assert "ERROR failed: one or more tasks did not complete" in lines["invoke_workflow s"]


async def test_tasks_cancelled_by_fail_fast_are_errors(world: World, tracing: TracingHandle) -> None:
    specs = agent("a") + agent("b") + SUPERVISOR.format(on_error="fail_fast")
    tasks = [
        {"task_id": "slow", "task_type": "review", "payload": {"topic": "y"}},
        {"task_id": "failing", "task_type": "research", "payload": {"topic": "x"}},
    ]
    script = {"a": [call("lookup", query="x")], "b": [call("slow", seconds=5), final()]}
    result = await world.run(specs, script, "s", {"tasks": tasks}, tracing=tracing)
    assert result.output["slow"]["outcome"] == "cancelled"
    spans = by_name(tracing)
    assert_error(spans["task failing"], "failed")
    assert_error(spans["task slow"], "CancelledError")
    assert_error(spans["invoke_agent b"], "CancelledError")  # the sub-run the cancellation stopped


async def test_the_deployed_trace_file_shows_the_error(world: World, tmp_path: Path) -> None:
    """What `platform run NAME --trace` prints for a deployed run: the JSONL the actors wrote, read
    back by `deploy.traces`."""
    path = tmp_path / "traces.jsonl"
    with configure_tracing(jsonl_path=path) as handle:
        result: RunResult = await world.run(agent(), {"a": [call("lookup", query="x")]}, tracing=handle)
    assert result.outcome is Outcome.FAILED and result.trace_id
    text = render_trace(path, result.trace_id)
    root = text.splitlines()[1]
    assert root.startswith("invoke_agent a") and "ERROR failed: model call failed" in root, text
    assert " ok" not in root
