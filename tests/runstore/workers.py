"""Functions run in other processes (multiprocessing, spawn) by the run store tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from agent_platform._runstore import RunRecord, RunStatus, open_run_store


def write_runs(url: str, worker: int, runs: int, steps: int, shared_run: str, bumps: int) -> list[int]:
    """Create `runs` runs of this worker and drive each through `steps` checkpoints to its end;
    meanwhile take `bumps` attempts at the shared run. Returns the attempt numbers it got."""

    async def main() -> list[int]:
        store = open_run_store(url)
        got: list[int] = []
        try:
            await store.create_run(RunRecord(shared_run, "Agent/shared", None))  # idempotent
            for index in range(runs):
                run_id = f"w{worker}-r{index}"
                await store.create_run(RunRecord(run_id, "Agent/writer", {"worker": worker, "index": index}))
                attempt = await store.begin_attempt(run_id, f"worker-{worker}")
                for seq in range(1, steps + 1):
                    await store.save_checkpoint(run_id, attempt, seq, {"worker": worker, "seq": seq})
                    if index < bumps:
                        got.append(await store.begin_attempt(shared_run, f"worker-{worker}"))
                # Odd runs fail: a failed run keeps its last checkpoint, a completed one drops it.
                ending = RunStatus.COMPLETED if index % 2 == 0 else RunStatus.FAILED
                await store.finish(run_id, attempt, ending, {"sum": worker * 1000 + index})
            return got
        finally:
            await store.close()

    return asyncio.run(main())


def finish_later(url: str, run_id: str, delay: float) -> None:
    async def main() -> None:
        store = open_run_store(url)
        try:
            attempt = await store.begin_attempt(run_id, f"pid-{os.getpid()}")
            await asyncio.sleep(delay)
            await store.finish(run_id, attempt, RunStatus.COMPLETED, {"by": "another process"})
        finally:
            await store.close()

    asyncio.run(main())


def crash_mid_run(url: str, run_id: str, steps: int, marker: str) -> None:
    """A replica that checkpoints `steps` steps and then dies abruptly (SIGKILL: no clean-up)."""

    async def main() -> None:
        store = open_run_store(url)
        attempt = await store.begin_attempt(run_id, f"pid-{os.getpid()}")
        for seq in range(1, steps + 1):
            await store.save_checkpoint(run_id, attempt, seq, {"done": list(range(1, seq + 1))})
        Path(marker).write_text(json.dumps({"attempt": attempt}))
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())


def run_keyed_side_effect(url: str, log_path: str, barrier: str, delay: float) -> dict[str, Any]:
    """`run_once` with the idempotency store at `url`: append to `log_path` (the side effect)."""
    from agent_platform._runstore import open_idempotency_store
    from agent_platform._runtime.clock import SystemClock
    from agent_platform._runtime.tools.idempotency import run_once

    async def side_effect() -> dict[str, Any]:
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()}\n")
        await asyncio.sleep(delay)
        return {"ticket": f"T-{os.getpid()}"}

    async def main() -> dict[str, Any]:
        store = open_idempotency_store(url)
        try:
            Path(f"{barrier}.ready.{os.getpid()}").touch()
            while not os.path.exists(barrier):
                time.sleep(0.005)
            outcome = await run_once(
                store, "create-ticket", "k" * 64, side_effect, clock=SystemClock(), lease_s=30, ttl_s=None
            )
            return {"output": outcome.output, "from_store": outcome.from_store}
        finally:
            await store.aclose()

    return asyncio.run(main())


def append_events(url: str, root: str, worker: int, batches: int) -> None:
    """Append `batches` batches of two events (the top-level run's and this worker's sub-run's)
    to `root`'s tree, one transaction each."""
    from datetime import UTC, datetime

    from agent_platform._runstore.events import NewEvent

    async def main() -> None:
        store = open_run_store(url)
        try:
            for i in range(batches):
                now = datetime.now(UTC)
                await store.append_events(
                    [
                        NewEvent(root, "w", {"worker": worker, "i": i}, now),
                        NewEvent(f"{root}/w-{worker}", "w", {"worker": worker, "i": i}, now),
                    ]
                )
        finally:
            await store.close()

    asyncio.run(main())
