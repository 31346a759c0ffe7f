"""Benchmark the HTTP API (an Endpoint on Ray Serve) against `platform run` through the same
deployment.

    .venv/bin/python bench/serve_bench.py            # about 2 minutes
    .venv/bin/python bench/serve_bench.py --quick
    .venv/bin/python bench/serve_bench.py --json out.json

It makes a project in a temporary directory (its own state directory and HOME: its own embedded
Ray head, stopped at the end), applies two agents and an Endpoint with the real `platform apply`
and measures:

1. Per run, sequentially, a one-step agent whose model answers at once: `platform run NAME` (a
   new process each time: start-up, connecting to the cluster, the run) against
   `POST /v1/units/NAME/runs?wait=true` on a kept-alive connection (proxy, ingress replica,
   input check, run record, the run on the unit's replica, the answer).
2. Under load: 100 concurrent HTTP clients, each starting runs of an agent whose model sleeps
   50 ms, waiting for each result: runs per second, and p50/p99 latency per run (the ideal is
   50 ms).

Exit 0 whatever the timings; exit 1 only when a run does not complete."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as _platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

PLATFORM = str(Path(sys.executable).parent / "platform")
TOKEN = "bench-token"

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: instant}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: sleepy}
spec: {provider: scripted, on_script_exhausted: synthesize, latency: 50ms}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: echo}
spec:
  model: instant
  instructions: Answer {{ inputs.q }}.
  inputs: {type: object, properties: {q: {type: string}}, required: [q]}
  output: {type: object, properties: {a: {type: string}}, required: [a]}
  runtime: {resources: {num_cpus: 0.1}, max_concurrency: 1000}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: slow}
spec:
  model: sleepy
  instructions: Answer {{ inputs.q }}.
  inputs: {type: object, properties: {q: {type: string}}, required: [q]}
  output: {type: object, properties: {a: {type: string}}, required: [a]}
  runtime: {resources: {num_cpus: 0.1}, max_concurrency: 1000}
---
apiVersion: agents.platform/v1
kind: Endpoint
metadata: {name: bench}
spec:
  auth: {token_env: BENCH_API_TOKEN}
  port: PORT
  concurrency: 1000
  replicas: REPLICAS
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PLATFORM, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def sequential_cli(n: int, env: dict[str, str], cwd: Path) -> list[float]:
    times = []
    for i in range(n):
        started = time.perf_counter()
        ran = cli(["run", "echo", "--input", json.dumps({"q": str(i)})], env, cwd)
        times.append(time.perf_counter() - started)
        if ran.returncode != 0:
            raise SystemExit(f"platform run failed: {ran.stderr}")
    return times


def sequential_http(n: int, base: str) -> list[float]:
    times = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        client.post("/v1/units/echo/runs?wait=true", json={"inputs": {"q": "warm"}})
        for i in range(n):
            started = time.perf_counter()
            answer = client.post("/v1/units/echo/runs?wait=true", json={"inputs": {"q": str(i)}})
            times.append(time.perf_counter() - started)
            if answer.status_code != 200 or answer.json()["status"] != "completed":
                raise SystemExit(f"HTTP run failed: {answer.status_code} {answer.text}")
    return times


async def concurrent_http(clients: int, runs_each: int, base: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120, limits=limits
    ) as client:
        await client.post("/v1/units/slow/runs?wait=true", json={"inputs": {"q": "warm"}})

        async def one_client(c: int) -> None:
            for i in range(runs_each):
                started = time.perf_counter()
                answer = await client.post(
                    "/v1/units/slow/runs?wait=true", json={"inputs": {"q": f"{c}-{i}"}}
                )
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200 or answer.json()["status"] != "completed":
                    raise SystemExit(f"HTTP run failed: {answer.status_code} {answer.text}")

        started = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in range(clients)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--replicas", type=int, default=1, help="Ray Serve replicas of the API.")
    args = parser.parse_args()
    cli_runs, http_runs, clients, runs_each = (3, 30, 100, 3) if args.quick else (10, 200, 100, 10)
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        root = Path(tmp)
        port = free_port()
        (root / "specs").mkdir()
        (root / "home").mkdir()
        (root / "specs" / "bench.yaml").write_text(
            SPECS.replace("PORT", str(port)).replace("REPLICAS", str(args.replicas))
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(HOME=str(root / "home"), PLATFORM_STATE_DIR=str(root / "state"), BENCH_API_TOKEN=TOKEN)
        try:
            applied = cli(["apply", "specs"], env, root)
            if applied.returncode != 0:
                raise SystemExit(f"apply failed: {applied.stderr}")
            base = f"http://127.0.0.1:{port}"
            cli(["run", "echo", "--input", '{"q": "warm"}'], env, root)
            by_cli = sequential_cli(cli_runs, env, root)
            by_http = sequential_http(http_runs, base)
            elapsed, latencies = asyncio.run(concurrent_http(clients, runs_each, base))
        finally:
            cli(["down"], env, root)
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": _platform.python_version()},
        "sequential": {
            "platform_run_s": {"runs": cli_runs, "median": statistics.median(by_cli), "min": min(by_cli)},
            "http_s": {
                "runs": http_runs,
                "median": statistics.median(by_http),
                "p99": pct(by_http, 99),
                "min": min(by_http),
            },
        },
        "concurrent": {
            "clients": clients,
            "api_replicas": args.replicas,
            "runs": len(latencies),
            "model_latency_s": 0.05,
            "wall_s": elapsed,
            "runs_per_s": len(latencies) / elapsed,
            "p50_s": pct(latencies, 50),
            "p99_s": pct(latencies, 99),
        },
    }
    seq = report["sequential"]
    conc = report["concurrent"]
    print(
        f"sequential, one-step agent, instant model:\n"
        f"  platform run (new process)   median {seq['platform_run_s']['median'] * 1000:8.1f} ms   "
        f"min {seq['platform_run_s']['min'] * 1000:8.1f} ms   ({cli_runs} runs)\n"
        f"  POST ?wait=true (HTTP)       median {seq['http_s']['median'] * 1000:8.1f} ms   "
        f"p99 {seq['http_s']['p99'] * 1000:8.1f} ms   ({http_runs} runs)\n"
        f"{clients} concurrent clients, model sleeping 50 ms, {conc['runs']} runs, {args.replicas} API replica(s):\n"
        f"  {conc['runs_per_s']:.0f} runs/s   p50 {conc['p50_s'] * 1000:.0f} ms   p99 {conc['p99_s'] * 1000:.0f} ms   "
        f"(wall {conc['wall_s']:.1f} s)"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
