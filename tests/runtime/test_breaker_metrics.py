"""Circuit breaker states as an OpenTelemetry metric: a model's and a tool's breaker that open
under failures and recover show in `agent_platform.circuit_breakers`, read through the metrics
SDK's in-memory reader from real runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import agent_platform as ap
from agent_platform._runtime.clock import FakeClock
from agent_platform._runtime.models.base import ModelServerError
from agent_platform._runtime.tracing import TracingHandle, configure_tracing

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: primary}
spec:
  provider: scripted
  on_script_exhausted: synthesize
  circuit_breaker: {failure_threshold: 2, reset_after: 60s}
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: plain}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: lookup}
spec:
  description: Look something up.
  python: "nowhere:lookup"
  trust: trusted
  retry: {max_attempts: 1}
  circuit_breaker: {failure_threshold: 1, reset_after: 30s}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: asker}
spec:
  model: primary
  instructions: Answer.
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: looker}
spec:
  model: plain
  instructions: Look it up, then answer.
  tools: [lookup]
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
"""

ANSWER = {"action": {"action": "final_answer", "answer": {"answer": "done"}}}


class Service:
    """What the model and the tool depend on: down until it is told it is up."""

    healthy = False


def lookup(key: str) -> str:
    """Look something up.

    Args:
        key: What to look up.
    """
    if not Service.healthy:
        raise ConnectionError("the lookup service refused the connection")
    return f"value of {key}"


def primary(call: ap.ModelCall) -> dict[str, Any]:
    if not Service.healthy:
        raise ModelServerError("HTTP 503: overloaded", provider="test", model="primary")
    return ANSWER


def looker(call: ap.ModelCall) -> dict[str, Any]:
    if not any(m.role == "assistant" for m in call.messages):
        return {"action": {"action": "lookup", "arguments": {"key": "k"}}}
    return ANSWER


def states(tracing: TracingHandle, kind: str, name: str) -> dict[str, int]:
    """The breaker's count per state, as the metrics reader collects them now."""
    found = {
        p.attributes["agent_platform.breaker.state"]: p.value
        for p in tracing.metric_points().get("agent_platform.circuit_breakers", [])
        if p.attributes["agent_platform.breaker.kind"] == kind
        and p.attributes["agent_platform.breaker.name"] == name
    }
    return {state: int(count) for state, count in found.items()}


CLOSED = {"closed": 1, "open": 0, "half_open": 0}
OPEN = {"closed": 0, "open": 1, "half_open": 0}
HALF_OPEN = {"closed": 0, "open": 0, "half_open": 1}


async def test_breakers_that_open_and_recover_show_in_the_metric(tmp_path: Path) -> None:
    (tmp_path / "specs.yaml").write_text(SPECS)
    project = ap.load_project(tmp_path, tools=[lookup])
    assert project.ok, project.errors
    tracing = configure_tracing(memory=True, metrics=True)
    clock = FakeClock()
    models = {"primary": ap.FunctionModel(primary), "plain": ap.FunctionModel(looker)}
    Service.healthy = False
    try:
        async with ap.Runtime(
            project.plan, tools=[lookup], models=models, clock=clock, tracing=tracing
        ) as rt:
            assert states(tracing, "model", "primary") == CLOSED
            assert states(tracing, "tool", "lookup") == CLOSED
            assert states(tracing, "model", "plain") == {}, "a model without a breaker has no series"

            looked = await rt.run("looker", {})  # the tool fails once: its breaker opens
            assert looked.ok and rt.tools.breaker("lookup") is not None
            assert states(tracing, "tool", "lookup") == OPEN
            for _ in range(2):  # two failed calls open the model's breaker
                assert not (await rt.run("asker", {})).ok
            assert states(tracing, "model", "primary") == OPEN

            clock.advance(61)  # both may try again: the next call is a trial
            assert states(tracing, "model", "primary") == HALF_OPEN
            assert states(tracing, "tool", "lookup") == HALF_OPEN

            Service.healthy = True  # the trials succeed and the breakers close
            assert (await rt.run("asker", {})).ok
            assert (await rt.run("looker", {})).ok
            assert states(tracing, "model", "primary") == CLOSED
            assert states(tracing, "tool", "lookup") == CLOSED
    finally:
        Service.healthy = False
        tracing.shutdown()


def test_no_metrics_no_observer(tmp_path: Path) -> None:
    """Without metrics configured, nothing observes the breakers (and nothing is registered)."""
    from agent_platform._runtime import metrics

    (tmp_path / "specs.yaml").write_text(SPECS)
    project = ap.load_project(tmp_path, tools=[lookup])
    before = len(metrics._BREAKER_STATES)
    tracing = configure_tracing(memory=True)
    ap.Runtime(project.plan, tools=[lookup], tracing=tracing)
    assert tracing.meter_provider is None and len(metrics._BREAKER_STATES) == before
