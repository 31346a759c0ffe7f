"""`Runtime.stream`: a run's events as they happen, in process, through the public face only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import agent_platform as ap

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: add}
spec: {description: Add two numbers., python: "nowhere:add", trust: trusted}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: helper}
spec:
  model: m
  instructions: Add what you are given.
  inputs: {type: object, properties: {a: {type: integer}, b: {type: integer}}, required: [a, b]}
  output: {type: object, properties: {sum: {type: integer}}, required: [sum]}
  tools: [add]
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: boss}
spec:
  model: m
  instructions: Get 2 and 3 added.
  output: {type: object, properties: {sum: {type: integer}}, required: [sum]}
  delegates: [helper]
"""


async def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: The first.
        b: The second.
    """
    await asyncio.sleep(0)
    return a + b


def decide(call: ap.ModelCall) -> dict[str, Any]:
    answered = [m for m in call.messages if m.role != "assistant"][1:]  # after the task itself
    if call.key == "boss":
        if not answered:
            return {"action": {"action": "delegate:helper", "task": {"a": 2, "b": 3}}}
        return {"action": {"action": "final_answer", "answer": {"sum": 5}}}
    if not answered:
        task = json.loads(call.last_text.removeprefix("Task inputs:"))
        return {"action": {"action": "add", "arguments": task}}
    return {"action": {"action": "final_answer", "answer": {"sum": 5}}}


@pytest.fixture
def plan(tmp_path: Path) -> Any:
    (tmp_path / "specs.yaml").write_text(SPECS)
    project = ap.load_project(tmp_path, tools=[add])
    assert project.ok, project.errors
    return project.plan


async def test_a_streamed_run_yields_its_events_and_its_sub_runs_then_the_same_result(plan: Any) -> None:
    async with ap.Runtime(plan, tools=[add], models={"m": ap.FunctionModel(decide)}) as runtime:
        async with runtime.stream("boss", {}) as run:
            items = [item async for item in run]
        plain = await runtime.run("boss", {})
    assert run.result.outcome is ap.Outcome.COMPLETED and run.result.output == {"sum": 5}
    assert (plain.outcome, plain.output, plain.tool_calls) == (
        run.result.outcome,
        run.result.output,
        run.result.tool_calls,
    )
    assert all(isinstance(item, ap.RunEvent) for item in items)
    top = [item.kind for item in items if item.run_id == run.run_id]
    assert top[0] == "run.started" and top[-1] == "run.finished"
    sub_ids = {item.run_id for item in items} - {run.run_id}
    assert len(sub_ids) == 1 and next(iter(sub_ids)).startswith(run.run_id + "/")
    sub = [item.kind for item in items if item.run_id in sub_ids]
    assert sub[0] == "run.started" and sub[-1] == "run.finished"
    assert sub.count("tool_call.started") == sub.count("tool_call.finished") == 1
    # The sub-run happened inside the boss's run: its events sit between the boss's start and end.
    first_sub = next(i for i, item in enumerate(items) if item.run_id in sub_ids)
    last_sub = max(i for i, item in enumerate(items) if item.run_id in sub_ids)
    assert first_sub > 0 and last_sub < len(items) - 1
    assert items[-1].event.outcome == "completed"  # type: ignore[attr-defined]


async def test_leaving_the_block_early_cancels_the_run(tmp_path: Path) -> None:
    calls: list[str] = []
    (tmp_path / "specs.yaml").write_text(SPECS)

    async def slow_add(a: int, b: int) -> int:
        """Add two numbers, slowly.

        Args:
            a: The first.
            b: The second.
        """
        calls.append("started")
        await asyncio.sleep(30)
        calls.append("finished")
        return a + b

    slow_add.__name__ = "add"
    project = ap.load_project(tmp_path, tools=[slow_add])
    async with ap.Runtime(project.plan, tools=[slow_add], models={"m": ap.FunctionModel(decide)}) as runtime:
        async with runtime.stream("helper", {"a": 1, "b": 2}) as run:
            async for item in run:
                if item.kind == "tool_call.started":
                    break
        await asyncio.sleep(0.05)
    assert run.result.outcome is ap.Outcome.CANCELLED
    assert calls == ["started"]


async def test_wrong_inputs_and_unknown_units_fail_before_anything_runs(plan: Any) -> None:
    model = ap.FunctionModel(decide)
    async with ap.Runtime(plan, tools=[add], models={"m": model}) as runtime:
        with pytest.raises(ap.InputError):
            runtime.stream("helper", {"a": "two"})
        with pytest.raises(ap.UnknownUnit):
            runtime.stream("nobody", {})
    assert model.calls == []


async def test_the_result_is_an_error_to_ask_for_before_the_end_and_a_second_read_is_empty(plan: Any) -> None:
    async with ap.Runtime(plan, tools=[add], models={"m": ap.FunctionModel(decide)}) as runtime:
        run = runtime.stream("helper", {"a": 1, "b": 2})
        with pytest.raises(RuntimeError, match="has not ended"):
            _ = run.result
        first = [item async for item in run]  # without `async with`: read to the end
        again = [item async for item in run]
    assert first and again == []
    assert run.result.output == {"sum": 5}


async def test_a_failing_run_ends_its_stream_with_the_error(plan: Any) -> None:
    def broken(call: ap.ModelCall) -> dict[str, Any]:
        raise ValueError("the policy broke")

    async with ap.Runtime(plan, tools=[add], models={"m": ap.FunctionModel(broken)}) as runtime:
        run = runtime.stream("helper", {"a": 1, "b": 2})
        async with run:
            items = [item async for item in run]
    assert run.result.outcome is ap.Outcome.FAILED
    assert items[-1].kind == "run.error" and "the policy broke" in items[-1].event.error  # type: ignore[attr-defined]


async def test_cancelling_the_reader_while_the_run_winds_down_reaches_the_reader(tmp_path: Path) -> None:
    """Leaving the block cancels the run and waits for it to wind down; a cancellation of the
    reader that arrives during that wait is the reader's, and must not be swallowed with the run's."""
    (tmp_path / "specs.yaml").write_text(SPECS)
    in_tool = asyncio.Event()
    winding_down = asyncio.Event()

    async def slow_add(a: int, b: int) -> int:
        """Add two numbers, slowly, and take a while to stop.

        Args:
            a: The first.
            b: The second.
        """
        in_tool.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            winding_down.set()
            await asyncio.sleep(0.5)  # cleaning up
            raise
        return a + b

    slow_add.__name__ = "add"
    after_block: list[str] = []
    project = ap.load_project(tmp_path, tools=[slow_add])

    async def reader(runtime: ap.Runtime) -> None:
        async with runtime.stream("helper", {"a": 1, "b": 2}):
            await in_tool.wait()
        after_block.append("went on")  # must not happen: the reader was cancelled

    async with ap.Runtime(project.plan, tools=[slow_add], models={"m": ap.FunctionModel(decide)}) as runtime:
        task = asyncio.create_task(reader(runtime))
        await winding_down.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert after_block == []
