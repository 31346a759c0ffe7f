"""A Model's circuit breaker and fallbacks: a model that keeps failing stops being called until
its breaker lets a trial through, and its calls go to the fallback models meanwhile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import agent_platform as ap
from agent_platform._runtime.clock import FakeClock
from agent_platform._runtime.models.base import ModelServerError

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: primary}
spec:
  provider: scripted
  on_script_exhausted: synthesize
  circuit_breaker: {failure_threshold: 2, reset_after: 60s}
  fallback: [backup]
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: backup}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: lonely}
spec:
  provider: scripted
  on_script_exhausted: synthesize
  circuit_breaker: {failure_threshold: 1, reset_after: 60s}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: a}
spec:
  model: primary
  instructions: Answer.
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: b}
spec:
  model: lonely
  instructions: Answer.
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
"""

ANSWER = {"action": {"action": "final_answer", "answer": {"answer": "from the backup"}}}


class Flaky:
    def __init__(self) -> None:
        self.calls = 0
        self.healthy = False

    def __call__(self, call: ap.ModelCall) -> dict[str, Any]:
        self.calls += 1
        if not self.healthy:
            raise ModelServerError("HTTP 500: upstream failed", provider="test", model="primary")
        return {"action": {"action": "final_answer", "answer": {"answer": "from the primary"}}}


async def test_a_failing_model_opens_its_circuit_and_its_calls_go_to_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "specs.yaml").write_text(SPECS)
    project = ap.load_project(tmp_path)
    assert project.ok, project.errors
    primary, clock = Flaky(), FakeClock()
    backup = ap.FunctionModel(lambda call: ANSWER)
    models = {"primary": ap.FunctionModel(primary), "backup": backup, "lonely": ap.FunctionModel(primary)}
    async with ap.Runtime(project.plan, models=models, clock=clock) as runtime:
        answers = [(await runtime.run("a", {})).output for _ in range(3)]
        assert answers == [{"answer": "from the backup"}] * 3
        assert primary.calls == 2, "after two failures the primary is not called"
        assert len(backup.calls) == 3

        clock.advance(61)  # half-open: one trial call goes to the primary, which has recovered
        primary.healthy = True
        result = await runtime.run("a", {})
        assert result.output == {"answer": "from the primary"} and primary.calls == 3

        primary.healthy = False  # a model without fallback: the open circuit fails the call at once
        first = await runtime.run("b", {})
        second = await runtime.run("b", {})
    assert first.outcome is ap.Outcome.FAILED and "HTTP 500" in (first.error or "")
    assert second.outcome is ap.Outcome.FAILED and "circuit is open" in (second.error or "")
    assert primary.calls == 4, "no request was sent while the circuit was open"


@pytest.mark.parametrize(
    ("fallback", "message"),
    [
        ("[bakup]", "unknown Model 'bakup' (did you mean 'backup'?)"),
        ("[primary]", "a Model cannot fall back to itself"),
    ],
)
def test_fallbacks_are_checked(tmp_path: Path, fallback: str, message: str) -> None:
    (tmp_path / "specs.yaml").write_text(SPECS.replace("fallback: [backup]", f"fallback: {fallback}"))
    project = ap.load_project(tmp_path)
    assert [e.split(": ", 2)[-1] for e in project.errors] == [message]
    assert project.errors[0].startswith(f"{tmp_path / 'specs.yaml'}:8:")


def test_a_fallback_cycle_is_an_error(tmp_path: Path) -> None:
    specs = SPECS.replace(
        "metadata: {name: backup}\nspec: {provider: scripted, on_script_exhausted: synthesize}",
        "metadata: {name: backup}\nspec: {provider: scripted, on_script_exhausted: synthesize, fallback: [primary]}",
    )
    (tmp_path / "specs.yaml").write_text(specs)
    errors = ap.load_project(tmp_path).errors
    assert len(errors) == 2 and all("the fallbacks lead back to this Model" in e for e in errors)
