"""Benchmark the Ray backend: the cost of hosting runs in actors, and supervisor fan-out.

    .venv/bin/python bench/ray_bench.py            # full run (about 2 minutes)
    .venv/bin/python bench/ray_bench.py --quick    # fewer runs and tasks
    .venv/bin/python bench/ray_bench.py --json out.json
    .venv/bin/python bench/ray_bench.py --breakdown  # no Ray: where a hosted run's time goes

It starts its own local Ray (4 logical CPUs), applies generated specs through the real
`Deployment` (validate -> compile -> control plane -> unit actors) and measures, in one run:

1. Per step: N sequential 10-step runs of an agent (zero-latency scripted model, one inline tool
   call per step) in-process on the runtime core, and the same runs sent to the agent's actor
   (hand-off through the Router, run record in the run store, the run inside the actor). The
   ratio is actor / in-process per step: what hosting a run in an actor costs, amortised over
   its steps.
2. Fan-out: one supervisor run with 1,000 tasks (concurrency 1,000) routed to a sub-agent whose
   model sleeps 50 ms per call, 10 calls per task, over 1, 2 and 4 replicas. The ideal is 0.5 s
   (every task runs at once); the reference is 0.8 s for 1,000 ten-step runs over 2 actors with
   each run inside its actor, and the aim is within 1.5x of that.

`--breakdown` measures instead, without Ray, 1,000 concurrent runs of that sub-agent in one
`UnitHost` (one replica's work), adding one layer at a time: the bare runtime core, + run records
(run store: the record created and started, then finished), + a checkpoint after every step,
+ spans exported to JSON lines. Wall time and CPU time (all threads) of each.

Exit 0 whatever the timings; exit 1 only when a run does not complete."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as _platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS = 10
LATENCY_S = 0.050
IDEAL_FANOUT_S = STEPS * LATENCY_S
REFERENCE_IN_ACTOR_S = 0.8  # 1,000 ten-step runs over 2 actors, each run inside its actor
AIM_FANOUT_S = 1.5 * REFERENCE_IN_ACTOR_S

PLUGIN = '''\
from agent_platform import tool


@tool(inline=True)
def echo(text: str) -> dict:
    """Echo the text back.

    Args:
        text: What to echo.
    """
    return {"echo": text}
'''


def specs(replicas: int) -> str:
    return f"""\
apiVersion: agents.platform/v1
kind: Model
metadata: {{name: fast}}
spec: {{provider: scripted, script: script.json, on_script_exhausted: error}}
---
apiVersion: agents.platform/v1
kind: Model
metadata: {{name: slow}}
spec: {{provider: scripted, script: script.json, on_script_exhausted: error, latency: 50ms}}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {{name: echo}}
spec: {{description: Echo., python: "benchrayplug:echo"}}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {{name: stepper}}
spec:
  model: fast
  instructions: Echo nine times, then answer.
  output: {{type: object, properties: {{answer: {{type: string}}}}, required: [answer]}}
  tools: [echo]
  runtime: {{resources: {{num_cpus: 0.1}}, max_concurrency: 1000}}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {{name: worker}}
spec:
  model: slow
  instructions: Echo nine times, then answer.
  output: {{type: object, properties: {{answer: {{type: string}}}}, required: [answer]}}
  tools: [echo]
  runtime:
    replicas: {replicas}
    resources: {{num_cpus: 0.1}}
    max_concurrency: 1000
---
apiVersion: agents.platform/v1
kind: Supervisor
metadata: {{name: fanout}}
spec:
  routes:
    work: {{agent: worker}}
  concurrency: 1000
  max_queue: 10000
  runtime: {{resources: {{num_cpus: 0.1}}, max_concurrency: 10}}
"""


def script() -> dict[str, Any]:
    usage = {"input_tokens": 100, "output_tokens": 10}  # given, so no per-call token estimate
    entries = [
        {"action": {"action": "echo", "arguments": {"text": f"step {i}"}}, "usage": usage}
        for i in range(STEPS - 1)
    ]
    entries.append({"action": {"action": "final_answer", "answer": {"answer": "done"}}, "usage": usage})
    return {"responses": {"stepper": entries, "worker": entries}}


def write_project(root: Path, replicas: int) -> None:
    (root / "plugins").mkdir(parents=True, exist_ok=True)
    (root / "plugins" / "benchrayplug.py").write_text(PLUGIN, encoding="utf-8")
    (root / "specs").mkdir(exist_ok=True)
    (root / "specs" / "bench.yaml").write_text(specs(replicas), encoding="utf-8")
    (root / "specs" / "script.json").write_text(json.dumps(script()), encoding="utf-8")


def compiled(root: Path) -> tuple[Any, Any, Any]:
    from agent_platform._compile import build_output_models, compile_specs
    from agent_platform._deploy.bundle import SpecBundle
    from agent_platform._validate import ValidationOptions, validate_paths

    report = validate_paths([root / "specs"], ValidationOptions(plugin_paths=[root / "plugins"]))
    if not report.ok:
        sys.exit("bench specs do not validate: " + "; ".join(str(d) for d in report.diagnostics.sorted()))
    plan = compile_specs(report.specs)
    build_output_models(plan, report.diagnostics)
    return report, plan, SpecBundle.from_files(report.files, [root / "plugins"])


def in_process_per_step(root: Path, runs: int) -> float:
    from agent_platform._runtime.engine import Runtime
    from agent_platform._runtime.tracing import configure_tracing

    _, plan, _ = compiled(root)
    # Traced like the actors (spans batched to a JSON-lines file), so the ratio is like for like.
    tracing = configure_tracing(jsonl_path=root / "state" / "in-process-traces.jsonl")
    runtime = Runtime(plan, plugin_paths=[root / "plugins"], tracing=tracing)

    async def go() -> float:
        for _ in range(20):  # warm-up
            await runtime.run("stepper", {})
        started = time.perf_counter()
        for _ in range(runs):
            result = await runtime.run("stepper", {})
            if not result.ok:
                sys.exit(f"in-process run failed: {result.error}")
        return (time.perf_counter() - started) / (runs * STEPS)

    try:
        return asyncio.run(go())
    finally:
        asyncio.run(runtime.aclose())


def actor_per_step(namespace: str, runs: int) -> float:
    from agent_platform._deploy.host import RunRequest
    from agent_platform._deploy.router import Router

    async def go() -> float:
        router = Router(namespace)
        for i in range(20):
            await router.call(RunRequest(f"warm-{i}-{time.time_ns()}", "Agent/stepper", {}))
        started = time.perf_counter()
        for i in range(runs):
            result = await router.call(RunRequest(f"step-{i}-{time.time_ns()}", "Agent/stepper", {}))
            if not result.ok:
                sys.exit(f"actor run failed: {result.error}")
        return (time.perf_counter() - started) / (runs * STEPS)

    return asyncio.run(go())


def fanout(namespace: str, tasks: int) -> float:
    from agent_platform._deploy.host import RunRequest
    from agent_platform._deploy.router import Router

    payload = {"tasks": [{"task_id": f"t{i}", "task_type": "work", "payload": {}} for i in range(tasks)]}

    async def go() -> float:
        router = Router(namespace)
        started = time.perf_counter()
        result = await router.call(RunRequest(f"fanout-{time.time_ns()}", "Supervisor/fanout", payload))
        elapsed = time.perf_counter() - started
        if not result.ok:
            failed = [k for k, v in (result.output or {}).items() if v.get("outcome") != "completed"]
            sys.exit(f"fan-out run failed: {result.error} ({len(failed)} tasks: {failed[:3]})")
        return elapsed

    return asyncio.run(go())


BREAKDOWN_LEVELS = ("core", "records", "checkpoints", "spans")


def breakdown_level(root: Path, level: str, runs: int, rounds: int) -> tuple[float, float]:
    """(wall, CPU) seconds for `runs` concurrent runs of the worker in one host, median of rounds."""
    from agent_platform._deploy.host import HostConfig, RunRequest, UnitHost

    _, _, bundle = compiled(root)
    state = root / f"breakdown-{level}"
    config = HostConfig(
        namespace="bench",
        state_dir=str(state),
        trace_file=str(state / "traces.jsonl") if level == "spans" else None,
    )
    if level != "spans":
        os.environ["OTEL_SDK_DISABLED"] = "true"
    try:
        host = UnitHost(bundle, "Agent/worker", 0, 1, config)
    finally:
        os.environ.pop("OTEL_SDK_DISABLED", None)
    # Read when the agent's executor is built (by the first run).
    host.runtime.checkpoints_enabled = level in ("checkpoints", "spans")

    async def one(run_id: str) -> Any:
        if level == "core":
            return await host.runtime.run("worker", {})
        return await host.run(RunRequest(run_id, "Agent/worker", {}))

    async def go() -> tuple[float, float]:
        await asyncio.gather(*(one(f"warm-{i}") for i in range(100)))
        walls, cpus = [], []
        for round_ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            results = await asyncio.gather(*(one(f"run-{round_}-{i}") for i in range(runs)))
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            failed = [r.error for r in results if not r.ok]
            if failed:
                sys.exit(f"breakdown ({level}) run failed: {failed[0]}")
        host.tracing.force_flush()
        return statistics.median(walls), statistics.median(cpus)

    return asyncio.run(go())


def breakdown(rounds: int) -> dict[str, Any]:
    runs = 1_000
    root = Path(tempfile.mkdtemp(prefix="ray-bench-breakdown-"))
    write_project(root, 1)
    print(f"ray_bench --breakdown: Python {_platform.python_version()}, {os.cpu_count()} CPUs, no Ray")
    print(f"{runs} concurrent runs of the fan-out's sub-agent in one host (10 steps, 50 ms model):")
    figures: dict[str, Any] = {}
    previous = None
    for level in BREAKDOWN_LEVELS:
        wall, cpu = breakdown_level(root, level, runs, rounds)
        figures[f"breakdown_{level}_s"] = wall
        figures[f"breakdown_{level}_cpu_s"] = cpu
        added = "" if previous is None else f"   (+{(cpu - previous) / runs * 1e6:6.0f} us CPU per run)"
        label = "bare runtime core" if level == "core" else f"+ {level}"
        print(f"   {label:<20} {wall:6.2f}s wall  {cpu:6.2f}s CPU{added}")
        previous = cpu
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--breakdown", action="store_true", help="the host-level breakdown, without Ray")
    args = parser.parse_args()
    runs = 100 if args.quick else 300
    tasks = 1_000
    rounds = 1 if args.quick else 3
    if args.breakdown:
        figures = breakdown(rounds)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
        return

    import ray

    from agent_platform._deploy.client import Deployment

    root = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    os.environ["PLATFORM_STATE_DIR"] = str(root / "state")
    write_project(root, 1)
    print(f"ray_bench: Python {_platform.python_version()}, {os.cpu_count()} CPUs, Ray {ray.__version__}")
    started = time.perf_counter()
    runtime_env = {"env_vars": {"OTEL_SDK_DISABLED": "true"}} if os.environ.get("BENCH_NO_TRACING") else None
    ray.init(
        address="local",  # always a fresh local Ray, never one left running on the machine
        num_cpus=4,
        logging_level="WARNING",
        log_to_driver=False,
        include_dashboard=False,
        runtime_env=runtime_env,
    )
    print(f"  local Ray started in {time.perf_counter() - started:.1f}s")
    namespace = "ray-bench"
    deployment = Deployment.connect(None, namespace, start=False, state_dir=root / "state")
    figures: dict[str, Any] = {}
    try:
        report, plan, bundle = compiled(root)
        deployment.apply(report.specs, plan, bundle)

        local = statistics.median(in_process_per_step(root, runs) for _ in range(rounds))
        remote = statistics.median(actor_per_step(namespace, runs) for _ in range(rounds))
        figures["step_in_process_us"] = local * 1e6
        figures["step_via_actor_us"] = remote * 1e6
        figures["step_ratio"] = remote / local
        print("\n1. One agent step (10-step runs, zero-latency model, one inline tool call per step)")
        print(f"   in-process runtime core     {local * 1e6:8.1f} us/step")
        print(f"   run hosted in a Ray actor   {remote * 1e6:8.1f} us/step   ratio {remote / local:.2f}x")
        print(f"   (per run: +{(remote - local) * STEPS * 1e3:.2f} ms for the hand-off and the run record)")

        print(
            f"\n2. Supervisor fan-out: {tasks} tasks, 10 model calls each at 50 ms (ideal {IDEAL_FANOUT_S:.1f}s)"
        )
        for replicas in (1, 2, 4):
            write_project(root, replicas)
            report, plan, bundle = compiled(root)
            deployment.apply(report.specs, plan, bundle)
            fanout(namespace, 100)  # warm the new replicas
            wall = statistics.median(fanout(namespace, tasks) for _ in range(rounds))
            figures[f"fanout_{replicas}_replicas_s"] = wall
            verdict = "within" if wall <= AIM_FANOUT_S else "above"
            print(
                f"   {replicas} replica(s): {wall:6.2f}s  = {wall / IDEAL_FANOUT_S:.2f}x ideal, "
                f"{wall / REFERENCE_IN_ACTOR_S:.2f}x the 0.8s in-actor reference ({verdict} the 1.5x aim)"
            )
    finally:
        ray.shutdown()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
