"""End to end on a real model (Gemma 3 270M on llama-cpp-python, see conftest.py): an agent with a
tool, a pipeline `llm` step, a supervisor and the research agent, in-process and through
`platform apply` on the embedded Ray. Each run has a time bound.

A 270M model often answers badly, so completion is measured, not required, where it depends on
the model's judgement (an agent choosing to stop). What must hold is what the platform owns:
every request is accepted by the real server, every answer is parsed into its schema or re-asked,
every run ends within its bound with an outcome, and the tokens are counted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = str(Path(sys.executable).parent / "platform")
# What a request the server refused, or could not take, looks like in a run's error.
REFUSED = re.compile(r"HTTP [45]\d\d|rejected the request|cannot reach the API|wrong shape")


@dataclass(frozen=True)
class Case:
    name: str
    unit: str
    inputs: dict[str, Any]
    bound_s: float  # wall time of one run
    runs: int  # default number of runs (LLM_RUNS overrides)
    agent: bool = True  # the unit is an agent: time per step = duration / iterations


CASES = (
    Case("agent-with-tools", "quick-search", {"topic": "idempotency keys for retries"}, 240, 3),
    Case(
        "pipeline-llm-step",
        "search-and-summarise",
        {"topic": "retries with backoff and jitter"},
        180,
        3,
        False,
    ),
    Case(
        "supervisor",
        "search-supervisor",
        {
            "tasks": [
                {"task_id": "limits", "task_type": "lookup", "payload": {"topic": "API rate limits"}},
                {"task_id": "keys", "task_type": "lookup", "payload": {"topic": "rotating API keys"}},
            ]
        },
        600,
        2,
        False,
    ),
    Case(
        "research-agent", "researcher", {"topic": "idempotency keys for retries", "max_searches": 1}, 900, 1
    ),
)


@dataclass
class Figures:
    """Per case and mode (local, deployed): each run's outcome, wall time, iterations, tokens."""

    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, key: str, result: dict[str, Any], wall_s: float) -> None:
        usage = result.get("usage") or {}
        self.runs.setdefault(key, []).append(
            {
                "outcome": result.get("outcome"),
                "error": result.get("error"),
                "wall_s": round(wall_s, 2),
                "iterations": result.get("iterations"),
                "tool_calls": result.get("tool_calls", 0),
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
            }
        )

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, runs in self.runs.items():
            completed = sum(1 for r in runs if r["outcome"] == "completed")
            steps = [r["wall_s"] / r["iterations"] for r in runs if r.get("iterations")]
            out[key] = {
                "runs": len(runs),
                "completed": completed,
                "completion_rate": round(completed / len(runs), 3),
                "outcomes": sorted({str(r["outcome"]) for r in runs}),
                "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 2),
                "s_per_agent_step_median": round(statistics.median(steps), 2) if steps else None,
                "tokens_per_run_median": statistics.median(
                    r["input_tokens"] + r["output_tokens"] for r in runs
                ),
                "output_tokens_per_run_median": statistics.median(r["output_tokens"] for r in runs),
                "tool_calls_per_run": [r["tool_calls"] for r in runs],
                "runs_detail": runs,
            }
        return out


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    collected = Figures()
    yield collected
    summary = collected.summary()
    report = Path(os.environ.get("LLM_REPORT", ROOT / ".platform" / "llm" / "figures.json"))
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(summary, indent=2))
    print(f"\nreal-model figures (also in {report}):")
    print(f"{'case':34} {'runs':>4} {'done':>4} {'rate':>5} {'s/run':>7} {'s/step':>7} {'tokens':>7}")
    for key, row in summary.items():
        step = "-" if row["s_per_agent_step_median"] is None else f"{row['s_per_agent_step_median']:.1f}"
        print(
            f"{key:34} {row['runs']:>4} {row['completed']:>4} {row['completion_rate']:>5.2f} "
            f"{row['wall_s_median']:>7.1f} {step:>7} {row['tokens_per_run_median']:>7}  {','.join(row['outcomes'])}"
        )


def runs_of(case: Case) -> int:
    return int(os.environ.get("LLM_RUNS", case.runs))


# How a run may end on a 270M model: the platform stopped it (its iteration and time limits, the
# loop guard) or the model's answer kept failing its schema. Anything else is the platform's fault.
ENDINGS = {"completed", "max_iterations", "timeout", "guardrail_halt", "failed"}
MODEL_FAILURES = ("did not validate", "cut off at max_tokens")


def check_ending(where: str, outcome: Any, error: str | None) -> None:
    assert outcome in ENDINGS, f"{where}: {outcome} ({error})"
    if outcome == "failed":
        assert error and any(reason in error for reason in MODEL_FAILURES), f"{where}: {error}"


def check_run(case: Case, result: dict[str, Any]) -> None:
    """What the platform owns, whatever the model answered."""
    refused = REFUSED.search(json.dumps(result))  # sub-runs' errors included
    assert refused is None, f"{case.name}: a request failed at the server: {result.get('error')}"
    usage = result.get("usage") or {}
    assert usage.get("input_tokens", 0) > 0 and usage.get("output_tokens", 0) > 0, result
    if case.unit == "search-supervisor":
        tasks = result.get("output") or {}
        assert set(tasks) == {"limits", "keys"}, result
        for task_id, task in tasks.items():
            check_ending(f"{case.name} task {task_id}", task.get("outcome"), task.get("error"))
        if result["outcome"] != "completed":  # with on_error: collect, a task that did not complete
            assert result.get("error") == "one or more tasks did not complete", result
    else:
        check_ending(case.name, result.get("outcome"), result.get("error"))


def check_case(case: Case, results: list[dict[str, Any]]) -> None:
    # One structured call over a short prompt: the grammar keeps it in shape. Whether an agent
    # searches or stops is the model's choice, sampled: figures, not assertions.
    if case.unit == "search-and-summarise":
        assert any(r["outcome"] == "completed" for r in results), results


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_in_process(
    case: Case, llm_specs: Path, state_dir: Path, figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_platform._compile import build_output_models, compile_specs
    from agent_platform._runtime.engine import Runtime
    from agent_platform._validate import validate_paths

    monkeypatch.setenv("PLATFORM_STATE_DIR", str(state_dir))
    monkeypatch.chdir(ROOT)  # the tools are the repository's plugins
    report = validate_paths([llm_specs])
    assert report.ok, [d.message for d in report.diagnostics.sorted()]
    plan = compile_specs(report.specs)
    build_output_models(plan, report.diagnostics)

    async def one() -> tuple[dict[str, Any], float]:
        runtime = Runtime(plan, approve_all=True)
        started = time.monotonic()
        try:
            async with asyncio.timeout(case.bound_s):
                result = await runtime.run(case.unit, case.inputs)
        finally:
            await runtime.aclose()
        return result.to_json(), time.monotonic() - started

    results = []
    for _ in range(runs_of(case)):
        result, wall = asyncio.run(one())  # a TimeoutError here fails the test: the bound was passed
        figures.add(f"{case.name} (in-process)", result, wall)
        check_run(case, result)
        results.append(result)
    check_case(case, results)


def platform(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PLATFORM, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )


def test_through_platform_apply(llm_specs: Path, state_dir: Path, figures: Figures) -> None:
    """The same cases deployed on the embedded Ray: actors call the model server, once each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PLATFORM_STATE_DIR"] = str(state_dir / "deployed")
    try:
        applied = platform("apply", str(llm_specs), "--approve-all", env=env, timeout=300)
        assert applied.returncode == 0, applied.stderr
        for case in CASES:
            started = time.monotonic()
            ran = platform(
                "run",
                case.unit,
                "--input",
                json.dumps(case.inputs),
                "-o",
                "json",
                env=env,
                timeout=case.bound_s,
            )
            assert ran.stdout, ran.stderr
            result = json.loads(ran.stdout)
            figures.add(f"{case.name} (platform apply)", result, time.monotonic() - started)
            check_run(case, result)
    finally:
        platform("down", env=env, timeout=120)
