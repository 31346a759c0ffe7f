"""Chaos: the process running local runs is killed (`kill -9`) mid-flight, then they are resumed.

A child process runs many local runs at once, recorded in the local run store (what
`platform run --local` does for one), each calling a keyed side-effecting tool three times. It
is killed while the runs are half done; the runs are then resumed from the store, as
`platform resume` does. Every run must complete; the tool records every real execution, and an
execution of a key that had already completed would be a repeated side effect.

A call the kill interrupts mid-way has not completed: resuming runs it again once its lease has
lapsed (the tool gets the same idempotency key, `current_idempotency_key()`, to deduplicate on
its side). A call whose result the idempotency store had recorded before the kill never runs
again: executions beyond the first are bounded by the calls that had started without a recorded
result."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from tests.chaos.common import SCRIPT, worker_specs

from agent_platform._compile import compile_specs
from agent_platform._runstore import RunStatus, open_run_store
from agent_platform._runtime.durable import DurableRunner, RunRequest
from agent_platform._runtime.engine import Runtime
from agent_platform._validate import ValidationOptions, validate_paths

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

RUNS = int(os.environ.get("CHAOS_RUNS", "40"))

PLUGIN = '''
import asyncio, os, sqlite3
from agent_platform._runtime.tools import current_idempotency_key

def _log(table, key, item):
    with sqlite3.connect(os.path.join(os.path.dirname(__file__), "effects.db"), timeout=30) as db:
        unique = ", PRIMARY KEY (key, item)" if table == "effects" else ""
        db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT, item TEXT{unique})")
        db.execute(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", (key, item))

async def record(item: str) -> dict:
    """Record a side effect.

    Args:
        item: What to record.
    """
    key = current_idempotency_key()
    _log("started", key, item)
    await asyncio.sleep(0.2)
    _log("executions", key, item)  # the function ran to its effect...
    _log("effects", key, item)  # ...which, like a service given the key, happens once per key
    return {"recorded": item}
'''

SPECS = worker_specs("killplug")

CHILD = """
import asyncio, sys
from pathlib import Path
from agent_platform._compile import compile_specs
from agent_platform._runstore import open_run_store
from agent_platform._runtime.durable import DurableRunner, RunRequest
from agent_platform._runtime.engine import Runtime
from agent_platform._validate import ValidationOptions, validate_paths

root, runs = Path(sys.argv[1]), int(sys.argv[2])
report = validate_paths([root / "specs.yaml"], ValidationOptions(plugin_paths=[root]))
runtime = Runtime(compile_specs(report.specs), plugin_paths=[root], durable=True)

async def main():
    runner = DurableRunner(runtime, open_run_store(), "local:chaos-child")
    await asyncio.gather(*(runner.run(RunRequest(f"run-{n}", "Agent/worker", {})) for n in range(runs)))

asyncio.run(main())
"""


def rows(root: Path, table: str) -> list[tuple[str, str]]:
    try:
        with sqlite3.connect(root / "effects.db") as db:
            return list(db.execute(f"SELECT key, item FROM {table}"))
    except sqlite3.OperationalError:
        return []


async def test_local_runs_killed_mid_flight_resume_without_repeating_side_effects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "killplug.py").write_text(PLUGIN)
    (tmp_path / "specs.yaml").write_text(SPECS)
    (tmp_path / "script.json").write_text(json.dumps(SCRIPT))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(RUNS)],
        env={**os.environ, "PLATFORM_STATE_DIR": str(tmp_path / "state")},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while len(rows(tmp_path, "effects")) < RUNS:  # about a third of the calls are done
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        await asyncio.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    done_before = Counter(rows(tmp_path, "effects"))
    interrupted = len(rows(tmp_path, "started")) - sum(done_before.values())
    # Calls whose result the idempotency store had recorded when the process died: these must
    # never run again. Every other call that had started may (its claim lapses), the key keeping
    # its effect single.
    with sqlite3.connect(tmp_path / "state" / "idempotency.sqlite3") as db:
        (recorded_before,) = db.execute(
            "SELECT count(*) FROM idempotency WHERE status = 'succeeded'"
        ).fetchone()
    unrecorded = len(rows(tmp_path, "started")) - recorded_before

    report = validate_paths([tmp_path / "specs.yaml"], ValidationOptions(plugin_paths=[tmp_path]))
    runtime = Runtime(compile_specs(report.specs), plugin_paths=[tmp_path], durable=True)
    store = open_run_store()
    runner = DurableRunner(runtime, store, "local:chaos-resume")
    started = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(runner.run(RunRequest(f"run-{n}", "Agent/worker", {})) for n in range(RUNS))),
        timeout=240,
    )
    resumed_in_s = time.monotonic() - started
    records = [await store.get_run(f"run-{n}") for n in range(RUNS)]
    await store.close()
    await runtime.aclose()

    effects = Counter(rows(tmp_path, "effects"))
    executions = Counter(rows(tmp_path, "executions"))
    # A call the kill caught after its effect but before its result was recorded runs again on
    # resume (its claim lapsed): the key it passes makes the effect single, as it would for a
    # service given the key; a call whose result was recorded never runs again.
    repeated = sum(n - 1 for n in executions.values() if n > 1)
    report_line = {
        "runs": RUNS,
        "effects_before_kill": sum(done_before.values()),
        "calls_interrupted_by_the_kill": interrupted,
        "calls_started_but_not_recorded_at_the_kill": unrecorded,
        "failed": sum(1 for r in results if not r.ok),
        "lost": sum(1 for r in records if r is None),
        "not_final": sum(1 for r in records if r is not None and r.status is not RunStatus.COMPLETED),
        "side_effects": sum(effects.values()),
        "repeated_side_effects": sum(n - 1 for n in effects.values() if n > 1),
        "repeated_executions": repeated,
        "resumed_in_s": round(resumed_in_s, 1),
    }
    print(f"\nchaos local-kill: {json.dumps(report_line)}")
    assert report_line["failed"] == 0, [(r.run_id, r.outcome.value, r.error) for r in results if not r.ok][:5]
    assert report_line["lost"] == 0 and report_line["not_final"] == 0
    assert repeated <= unrecorded, (repeated, unrecorded)
    assert sum(effects.values()) == 3 * RUNS
