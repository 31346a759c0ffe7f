"""Metrics derived from spans: the GenAI client metrics and the platform's own, recorded for real
runs through the OpenTelemetry metrics SDK (an in-memory reader here; OTLP or JSON lines in use)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import agent_platform as ap
from agent_platform._runtime.tracing import configure_tracing

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, on_script_exhausted: synthesize, pricing: {input_per_mtok: 1, output_per_mtok: 2}}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: add}
spec: {description: Add., python: "nowhere:add", trust: trusted}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: calc}
spec:
  model: m
  instructions: Add 2 and 3.
  output: {type: object, properties: {sum: {type: integer}}, required: [sum]}
  tools: [add]
"""


def add(a: int, b: int) -> int:
    """Add.

    Args:
        a: One.
        b: Two.
    """
    if a < 0:
        raise ValueError("negative")
    return a + b


def decide(call: ap.ModelCall) -> dict[str, Any]:
    turns = sum(1 for m in call.messages if m.role == "assistant")
    if turns == 0:
        return {"action": {"action": "add", "arguments": {"a": 2, "b": 3}}}
    if turns == 1:
        return {"action": {"action": "add", "arguments": {"a": -1, "b": 3}}}
    return {"action": {"action": "final_answer", "answer": {"sum": 5}}}


def total(points: list[Any], **labels: Any) -> float:
    return sum(
        (p.value if hasattr(p, "value") else p.sum)
        for p in points
        if all(p.attributes.get(k) == v for k, v in labels.items())
    )


async def test_a_run_records_the_genai_and_platform_metrics(tmp_path: Path) -> None:
    (tmp_path / "calc.yaml").write_text(SPECS)
    project = ap.load_project(tmp_path, tools=[add])
    tracing = configure_tracing(memory=True, metrics=True)
    async with ap.Runtime(
        project.plan, tools=[add], models={"m": ap.FunctionModel(decide)}, tracing=tracing
    ) as rt:
        result = await rt.run("calc", {})
    assert result.ok
    tracing.force_flush()
    points = tracing.metric_points()
    assert total(points["agent_platform.runs"], **{"agent_platform.run.outcome": "completed"}) == 1
    assert total(points["agent_platform.steps"]) == 3
    assert total(points["agent_platform.tool.calls"], outcome="ok") == 1
    assert total(points["agent_platform.tool.calls"], outcome="error") == 1
    durations = points["gen_ai.client.operation.duration"]
    assert sum(p.count for p in durations) == 3
    assert {p.attributes["gen_ai.operation.name"] for p in durations} == {"chat"}
    tokens = points["gen_ai.client.token.usage"]
    input_tokens = sum(p.sum for p in tokens if p.attributes["gen_ai.token.type"] == "input")
    assert input_tokens == result.usage.input_tokens
    assert total(points["agent_platform.cost"]) == result.cost_usd > 0
    tracing.shutdown()


async def test_metrics_go_where_the_spans_go(tmp_path: Path) -> None:
    (tmp_path / "calc.yaml").write_text(SPECS)
    project = ap.load_project(tmp_path, tools=[add])
    tracing = configure_tracing(jsonl_path=tmp_path / "spans.jsonl")
    async with ap.Runtime(
        project.plan, tools=[add], models={"m": ap.FunctionModel(decide)}, tracing=tracing
    ) as rt:
        await rt.run("calc", {})
    tracing.shutdown()
    lines = [json.loads(line) for line in (tmp_path / "spans.metrics.jsonl").read_text().splitlines()]
    assert {"agent_platform.runs", "gen_ai.client.token.usage", "agent_platform.tool.calls"} <= {
        line["name"] for line in lines
    }


def test_no_exporter_no_meter() -> None:
    assert configure_tracing().meter_provider is None
    assert configure_tracing(memory=True).meter_provider is None  # `--trace`: spans only
