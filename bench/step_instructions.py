"""Instructions per agent step, counted by valgrind (callgrind): a figure that, unlike a timing,
does not move when the machine is shared, so a change to the hot path can be judged in one run.

    .venv/bin/python bench/step_instructions.py            # tracing off and on, agent `a`
    .venv/bin/python bench/step_instructions.py --runs 200 # more runs: a steadier difference

It runs the agent of `agent_step_bench.py` (10 steps, zero-latency scripted model, one inline tool
call per step) under callgrind twice, with R and 3R runs after the same warm-up, and prints
(instructions(3R) - instructions(R)) / (2R x 10): start-up and imports cancel out. Callgrind
counts user-space instructions only (no syscalls, no cache misses): read it beside the timings of
`agent_step_bench.py`, not instead of them. Needs `valgrind` on PATH; exits 0 with a note when it
is missing. About a minute per configuration."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = 10


def child(root: Path, runs: int, traced: bool) -> None:
    """The measured process: build the world, warm up, then `runs` sequential runs."""
    sys.path.insert(0, str(Path(__file__).parent))
    from agent_platform._runtime.engine import Runtime
    from agent_platform._runtime.tracing import Tracing, configure_tracing
    from agent_step_bench import INPUTS, build_world

    plan = build_world(root)
    tracing = configure_tracing(memory=True) if traced else Tracing.disabled()
    runtime = Runtime(plan, plugin_paths=[root], tracing=tracing)

    async def go() -> None:
        for _ in range(20):
            await runtime.run("a", INPUTS)
        for _ in range(runs):
            await runtime.run("a", INPUTS)
            if traced and tracing.memory_exporter is not None:  # type: ignore[attr-defined]
                tracing.memory_exporter.clear()  # type: ignore[attr-defined]

    asyncio.run(go())


def count(runs: int, traced: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="step-instructions-") as tmp:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            tmp,
            str(runs),
            "on" if traced else "off",
        ]
        # Counts must not depend on the run: fixed string hashing, and no OpenBLAS worker threads
        # (numpy, imported by the memory layers, starts them; callgrind counts their spinning).
        env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            sys.exit(f"valgrind failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100, help="R: the runs of the smaller batch")
    parser.add_argument("--child", nargs=3, metavar=("ROOT", "RUNS", "TRACING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root, runs, tracing = args.child
        child(Path(root), int(runs), tracing == "on")
        return
    if shutil.which("valgrind") is None:
        print("step_instructions: valgrind is not installed; nothing measured")
        return
    print(f"Instructions per agent step (callgrind; {args.runs} and {3 * args.runs} runs of 10 steps)")
    for traced in (False, True):
        small, large = count(args.runs, traced), count(3 * args.runs, traced)
        per_step = (large - small) / (2 * args.runs * STEPS)
        print(f"   tracing {'on ' if traced else 'off'}   {per_step:10,.0f} instructions/step")


if __name__ == "__main__":
    main()
