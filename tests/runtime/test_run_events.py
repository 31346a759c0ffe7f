"""Run events of durable runs, in process against a real SQLite run store: what a run stores as
it goes (run, iterations, model calls with usage, tool calls, sub-runs, approval requests,
checkpoints), in order, and that following a run never fails it: a store that refuses the
events, or a full buffer, is logged and counted while the run completes."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.test_approvals_local import PLUGIN, SPECS, final, send

from agent_platform._compile import compile_specs
from agent_platform._runstore import open_run_store
from agent_platform._runstore.events import StoredEvent
from agent_platform._runtime.durable import DurableRunner, RunRequest
from agent_platform._runtime.engine import Runtime
from agent_platform._runtime.event_log import RunEventLog
from agent_platform._runtime.events import StepStarted, parse_event
from agent_platform._runtime.outcomes import Outcome
from agent_platform._validate import ValidationOptions, validate_paths

PIPELINE = """\
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: two-steps}
spec:
  inputs: {type: object, properties: {n: {type: integer}}, required: [n]}
  steps:
    - {name: first, tool: step, input: {n: "{{ inputs.n }}"}}
    - {name: second, tool: step, input: {n: "{{ inputs.n + 1 }}"}}
"""


def step(n: int) -> dict[str, Any]:
    return {"action": {"action": "step", "arguments": {"n": n}}}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "mailplug.py").write_text(PLUGIN)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "all.yaml").write_text(SPECS + PIPELINE)
    script = {
        "stepper": [step(1), step(2), final("stepped")],
        "boss": [{"action": {"action": "delegate:mailer", "task": {"to": "ana@example.com"}}}, final("ok")],
        "mailer": [send("ana@example.com"), final("sent")],
    }
    (tmp_path / "specs" / "script.json").write_text(json.dumps({"responses": script}))
    return tmp_path


async def durable_run(project: Path, unit: str, inputs: dict[str, Any], run_id: str, **runner: Any) -> Any:
    report = validate_paths([project / "specs"], ValidationOptions(plugin_paths=[project]))
    assert report.ok, list(report.diagnostics)
    runtime = Runtime(compile_specs(report.specs), plugin_paths=[project], durable=True)
    store = open_run_store(f"sqlite://{project / 'runs.sqlite3'}")
    try:
        durable = DurableRunner(runtime, store, "test-owner", **runner)
        result = await durable.run(RunRequest(run_id, unit, inputs))
        await durable.aclose()
        return result, durable
    finally:
        await runtime.aclose()
        await store.close()


async def stored_events(project: Path, run_id: str) -> list[StoredEvent]:
    store = open_run_store(f"sqlite://{project / 'runs.sqlite3'}")
    try:
        return await store.read_events(run_id)
    finally:
        await store.close()


def shape(events: list[StoredEvent]) -> list[tuple[str, ...]]:
    """(kind, what it names) of each event, checkpoints left out (how many there are depends on
    the writer's pace)."""
    out: list[tuple[str, ...]] = []
    for stored in events:
        event = parse_event(stored.kind, stored.data)
        named = getattr(event, "step", None) or getattr(event, "tool", None) or getattr(event, "unit", None)
        if stored.kind != "checkpoint.written":
            out.append((stored.kind, stored.run_id, str(named or getattr(event, "model", ""))))
    return out


async def test_an_agent_runs_events_are_stored_in_order_with_usage(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second step waits until a checkpoint has been announced, so one is announced during
    # the run (the writer works behind the run: a quick run may end before any commit lands).
    monkeypatch.setenv("STEP_WAITS_FOR_A_CHECKPOINT_IN", str(project / "runs.sqlite3"))
    result, log = await durable_run(project, "Agent/stepper", {}, "run-ev1")
    assert result.outcome is Outcome.COMPLETED
    events = await stored_events(project, "run-ev1")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    r = "run-ev1"
    iteration = [
        ("model_call.started", r, "m"),
        ("model_call.finished", r, "m"),
        ("tool_call.started", r, "step"),
        ("tool_call.finished", r, "step"),
    ]
    assert shape(events) == [
        ("run.started", r, "Agent/stepper"),
        ("step.started", r, "iteration 1"),
        *iteration,
        ("step.finished", r, "iteration 1"),
        ("step.started", r, "iteration 2"),
        *iteration,
        ("step.finished", r, "iteration 2"),
        ("step.started", r, "iteration 3"),
        ("model_call.started", r, "m"),
        ("model_call.finished", r, "m"),
        ("step.finished", r, "iteration 3"),
        ("run.finished", r, "Agent/stepper"),
    ]
    typed = [parse_event(e.kind, e.data) for e in events]
    calls = [e for e in typed if e.kind == "model_call.finished"]
    assert sum(c.input_tokens for c in calls) == result.usage.input_tokens > 0  # type: ignore[union-attr]
    assert sum(c.output_tokens for c in calls) == result.usage.output_tokens > 0  # type: ignore[union-attr]
    end = typed[-1]
    assert end.kind == "run.finished" and end.outcome == "completed"  # type: ignore[union-attr]
    assert end.input_tokens == result.usage.input_tokens  # type: ignore[union-attr]
    assert all(e.outcome == "ok" for e in typed if e.kind == "tool_call.finished")  # type: ignore[union-attr]
    # Checkpoints are reported once committed, numbered as the store numbers them, before the end.
    checkpoints = [e.seq for e in typed if e.kind == "checkpoint.written"]  # type: ignore[union-attr]
    assert checkpoints and checkpoints == sorted(checkpoints)
    assert log.events.written == len(events) and log.events.dropped == 0 and log.events.failures == 0


async def test_a_delegates_events_and_an_approval_request_are_in_the_callers_stream(project: Path) -> None:
    result, _ = await durable_run(project, "Agent/boss", {}, "run-ev2")
    assert result.outcome is Outcome.NEEDS_APPROVAL
    events = await stored_events(project, "run-ev2")
    sub = "run-ev2/mailer-1"
    assert shape(events) == [
        ("run.started", "run-ev2", "Agent/boss"),
        ("step.started", "run-ev2", "iteration 1"),
        ("model_call.started", "run-ev2", "m"),
        ("model_call.finished", "run-ev2", "m"),
        ("run.started", sub, "Agent/mailer"),
        ("step.started", sub, "iteration 1"),
        ("model_call.started", sub, "m"),
        ("model_call.finished", sub, "m"),
        ("tool_call.started", sub, "send-email"),
        ("tool_call.finished", sub, "send-email"),
        ("step.finished", sub, "iteration 1"),
        ("run.finished", sub, "Agent/mailer"),
        ("step.finished", "run-ev2", "iteration 1"),
        ("run.finished", "run-ev2", "Agent/boss"),
        ("approval.requested", sub, "send-email"),
    ]
    typed = {(e.kind, e.run_id): parse_event(e.kind, e.data) for e in events}
    assert typed[("run.started", sub)].parent_run_id == "run-ev2"  # type: ignore[union-attr]
    assert typed[("tool_call.finished", sub)].outcome == "needs_approval"  # type: ignore[union-attr]
    assert typed[("step.finished", sub)].paused  # type: ignore[union-attr]
    assert typed[("run.finished", "run-ev2")].outcome == "needs_approval"  # type: ignore[union-attr]
    asked = typed[("approval.requested", sub)]
    assert asked.asking_run_id == sub  # type: ignore[union-attr]
    assert asked.call_key == result.details["approval"]["call_key"]  # type: ignore[union-attr]
    # The mailer's own stream is its subtree, in the tree's numbering.
    assert [e.run_id for e in await stored_events(project, sub)] == [sub] * 9


async def test_pipeline_steps_are_events(project: Path) -> None:
    result, _ = await durable_run(project, "Pipeline/two-steps", {"n": 1}, "run-ev3")
    assert result.outcome is Outcome.COMPLETED, result.error
    kinds = shape(await stored_events(project, "run-ev3"))
    steps = [k for k in kinds if k[0].startswith("step.")]
    assert steps == [
        ("step.started", "run-ev3", "first"),
        ("step.finished", "run-ev3", "first"),
        ("step.started", "run-ev3", "second"),
        ("step.finished", "run-ev3", "second"),
    ]


async def test_a_store_that_refuses_the_events_does_not_fail_the_run(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_file = project / "runs.sqlite3"
    opened = open_run_store(f"sqlite://{store_file}")
    await opened.ping()  # the schema exists; now the events table refuses every row
    await opened.close()
    with sqlite3.connect(store_file) as db:
        db.execute(
            "CREATE TRIGGER refuse_events BEFORE INSERT ON runstore_events "
            "BEGIN SELECT RAISE(ABORT, 'events refused'); END"
        )
    with caplog.at_level(logging.WARNING, logger="agent_platform._runtime.event_log"):
        result, runner = await durable_run(project, "Agent/stepper", {}, "run-ev4")
    assert result.outcome is Outcome.COMPLETED and result.output == {"answer": "stepped"}
    assert runner.events.failures >= 1 and runner.events.written == 0
    assert "not stored" in caplog.text


async def test_a_full_buffer_drops_new_events_and_counts_them(project: Path) -> None:
    store = open_run_store(f"sqlite://{project / 'runs.sqlite3'}")
    log = RunEventLog(store, capacity=3)
    try:
        for n in range(5):  # no await between: the writer has not run yet
            log.emit("run-ev5", StepStarted(step=f"s{n}"))
        assert log.dropped == 2
        assert await log.flush()
        assert [e.data["step"] for e in await store.read_events("run-ev5")] == ["s0", "s1", "s2"]
        assert log.written == 3
    finally:
        await log.aclose()
        await store.close()


async def test_events_are_off_where_no_run_store_records_the_run(project: Path) -> None:
    report = validate_paths([project / "specs"], ValidationOptions(plugin_paths=[project]))
    async with Runtime(compile_specs(report.specs), plugin_paths=[project]) as runtime:
        result = await runtime.run("stepper", {}, run_id="run-ev6")
    assert result.outcome is Outcome.COMPLETED
    assert not (project / "runs.sqlite3").exists()


async def test_a_checkpoint_committed_after_its_run_finished_is_not_announced() -> None:
    """The race behind a flaky ordering test: the last checkpoint, written behind the run, could
    commit after the run's end event, so the run's events did not end with `run.finished`. A run
    that finished (`discard`) while its batch was in flight gets no `checkpoint.written`; a run
    still going does."""
    import asyncio

    from agent_platform._runtime.durable import CheckpointWriter

    in_flight, release = asyncio.Event(), asyncio.Event()

    class SlowStore:
        async def save_checkpoints(self, items: list[Any]) -> list[None]:
            in_flight.set()
            await release.wait()
            return [None for _ in items]

    announced: list[tuple[str, int]] = []
    writer = CheckpointWriter(SlowStore(), on_written=lambda run_id, seq: announced.append((run_id, seq)))
    writer.submit("ended", 1, 1, lambda: {"step": 1})
    writer.submit("going", 1, 1, lambda: {"step": 1})
    await in_flight.wait()  # both runs' checkpoints are in one batch being written
    writer.discard("ended")  # the run emitted its end event and finished
    release.set()
    while writer.written < 2:
        await asyncio.sleep(0.01)
    assert announced == [("going", 1)]
    assert writer.written == 2  # both are stored
    assert writer._task is not None
    writer._task.cancel()
