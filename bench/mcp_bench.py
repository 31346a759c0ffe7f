"""The overhead of an MCP tool call against the same function as a `python:` tool.

    .venv/bin/python bench/mcp_bench.py              # 2,000 sequential calls per kind, then 8 at a time
    .venv/bin/python bench/mcp_bench.py --quick      # 300 calls per kind
    .venv/bin/python bench/mcp_bench.py --json out.json

One function, `add(a, b)`, is called three ways through the same `ToolExecutor` (validation,
timeout, breaker, retries and all): as a `python:` tool (run in a worker thread, as a plain sync
tool is), as a tool of an MCP server over stdio (this file started by the runtime with `--serve
stdio`, written with the `mcp` SDK) and over streamable HTTP (this file with `--serve http PORT`).
Specs -> `platform plan`'s pinning -> compile -> Runtime, as a user's specs would go. Reported per
kind: the median, p90 and p99 latency of a call made alone, and calls per second with 8 in
flight. The first call of each MCP kind (starting the server, the handshake, listing the tools)
is measured apart: it is the cost a runtime pays once.

Exit 0 whatever the timings; exit 1 when a call fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def serve(transport: str, port: int | None) -> None:
    import logging

    from mcp.server import MCPServer
    from mcp_types import ToolAnnotations

    logging.disable(logging.WARNING)
    server = MCPServer("bench")
    server.add_tool(add, annotations=ToolAnnotations(readOnlyHint=True))
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=port or 0)


SPECS = """\
apiVersion: agents.platform/v1
kind: McpServer
metadata: {{name: bench-stdio}}
spec:
  stdio: {{command: python, args: [{script}, --serve, stdio]}}
---
apiVersion: agents.platform/v1
kind: McpServer
metadata: {{name: bench-http}}
spec:
  http: {{url: "http://127.0.0.1:{port}/mcp"}}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {{name: add-python}}
spec:
  description: Add two integers.
  python: mcp_bench:add
  trust: trusted
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {{name: add-stdio}}
spec:
  description: Add two integers.
  mcp: {{server: bench-stdio, tool: add}}
  trust: trusted
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {{name: add-http}}
spec:
  description: Add two integers.
  mcp: {{server: bench-http, tool: add}}
  trust: trusted
"""

KINDS = ("add-python", "add-stdio", "add-http")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the HTTP MCP server did not start")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(plan: Any, calls: int, concurrency: int) -> dict[str, dict[str, float]]:
    from agent_platform._runtime.engine import Runtime

    runtime = Runtime(plan, plugin_paths=[HERE])
    executor = runtime.tools
    figures: dict[str, dict[str, float]] = {}
    try:
        for kind in KINDS:
            started = time.perf_counter()
            first = await executor.call(kind, {"a": 1, "b": 2}, run_id="bench")
            first_s = time.perf_counter() - started
            if first.error is not None or first.output not in (3, {"result": 3}):
                raise RuntimeError(f"{kind}: {first.error or first.output}")
            for _ in range(50):  # warm-up
                await executor.call(kind, {"a": 1, "b": 2}, run_id="bench")
            latencies = []
            for i in range(calls):
                started = time.perf_counter()
                result = await executor.call(kind, {"a": i, "b": 1}, run_id="bench")
                latencies.append(time.perf_counter() - started)
                if result.error is not None:
                    raise RuntimeError(f"{kind}: {result.error}")

            async def worker(count: int, name: str = kind) -> None:
                for i in range(count):
                    result = await executor.call(name, {"a": i, "b": 1}, run_id="bench")
                    if result.error is not None:
                        raise RuntimeError(f"{name}: {result.error}")

            started = time.perf_counter()
            await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
            wall = time.perf_counter() - started
            figures[kind] = {
                "first_call_ms": first_s * 1e3,
                "median_us": statistics.median(latencies) * 1e6,
                "p90_us": _percentile(latencies, 0.9) * 1e6,
                "p99_us": _percentile(latencies, 0.99) * 1e6,
                "calls_per_s_concurrent": (calls // concurrency) * concurrency / wall,
            }
    finally:
        await runtime.aclose()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]) if len(args.serve) > 1 else None)
        return 0
    sys.path.insert(0, str(REPO / "platform"))
    from agent_platform._cli.mcp import pin_servers
    from agent_platform._compile import compile_specs
    from agent_platform._validate import ValidationOptions, validate_paths

    calls = 300 if args.quick else 2000
    port = _free_port()
    http = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port)
        with tempfile.TemporaryDirectory() as tmp:
            specs = Path(tmp) / "specs"
            specs.mkdir()
            (specs / "bench.yaml").write_text(SPECS.format(script=Path(__file__).resolve(), port=port))
            options = ValidationOptions(plugin_paths=[HERE])
            report = validate_paths([specs], options)
            if not pin_servers(report.specs, discover=True, update=True, echo=lambda _text: None):
                print("could not pin the bench servers", file=sys.stderr)
                return 1
            report = validate_paths([specs], options)
            if not report.ok:
                print("\n".join(str(d) for d in report.diagnostics.errors), file=sys.stderr)
                return 1
            os.environ.setdefault("PLATFORM_STATE_DIR", str(Path(tmp) / "state"))
            figures = asyncio.run(measure(compile_specs(report.specs), calls, 8))
    finally:
        http.terminate()
        http.wait(timeout=10)
    python = figures["add-python"]
    print(
        f"{calls} sequential calls per kind, then {calls} with 8 in flight (2-core machine: read the ratios)"
    )
    print(
        f"{'tool':<12} {'first call':>11} {'median':>10} {'p90':>10} {'p99':>10} {'x python':>9} {'calls/s @8':>11}"
    )
    for kind in KINDS:
        f = figures[kind]
        print(
            f"{kind:<12} {f['first_call_ms']:>9.1f}ms {f['median_us']:>8.0f}µs {f['p90_us']:>8.0f}µs "
            f"{f['p99_us']:>8.0f}µs {f['median_us'] / python['median_us']:>8.1f}x {f['calls_per_s_concurrent']:>11.0f}"
        )
    for kind in ("add-stdio", "add-http"):
        overhead = figures[kind]["median_us"] - python["median_us"]
        print(f"MCP overhead per call, {kind.removeprefix('add-')}: {overhead:.0f} µs (median)")
    if args.json is not None:
        args.json.write_text(json.dumps({"calls": calls, "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
