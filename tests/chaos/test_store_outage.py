"""Chaos: the PostgreSQL run store crashes and comes back while runs are in flight.

Many runs of an agent whose tool has a keyed side effect run on a replica (the `UnitHost` that
Ray would host, here in-process, which is all this fault needs). Mid-flight the database server
is killed (`pg_ctl -m immediate`, as a crash), left down, and started again. Every run must
end `completed`, every side effect must have happened exactly once (the tool records each real
execution outside the database), and no run may be left unfinished in the store.

`CHAOS_RUNS` sets the number of runs (40 by default, as CI runs it; `make chaos` runs more, and repeats)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from tests.chaos.common import SCRIPT, worker_specs
from tests.support.postgres import fresh_schema_url, kill_server, restart_server, running_postgres

from agent_platform._deploy.bundle import SpecBundle
from agent_platform._deploy.host import HostConfig, RunRequest, UnitHost
from agent_platform._runstore import RunStatus, open_run_store

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

RUNS = int(os.environ.get("CHAOS_RUNS", "40"))
DOWN_S = float(os.environ.get("CHAOS_DOWN_S", "4"))

PLUGIN = '''
import asyncio, os, sqlite3
from agent_platform._runtime.tools import current_idempotency_key

async def record(item: str) -> dict:
    """Record a side effect.

    Args:
        item: What to record.
    """
    await asyncio.sleep(0.3)
    with sqlite3.connect(os.path.join(os.path.dirname(__file__), "effects.db"), timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT, item TEXT)")
        db.execute("INSERT INTO effects VALUES (?, ?)", (current_idempotency_key(), item))
    return {"recorded": item}
'''

SPECS = worker_specs("chaosplug", extra="limits: {timeout: 300s}\nruntime: {max_concurrency: 1000}\n")


def effects(root: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(root / "effects.db") as db:
        return [(k, i) for k, i in db.execute("SELECT key, item FROM effects")]


async def test_runs_survive_the_run_store_crashing_and_coming_back(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "chaosplug.py").write_text(PLUGIN)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "all.yaml").write_text(SPECS)
    (tmp_path / "specs" / "script.json").write_text(json.dumps(SCRIPT))
    bundle = SpecBundle.from_files([tmp_path / "specs" / "all.yaml"], [tmp_path / "plugins"])
    with running_postgres() as server:
        url = fresh_schema_url(server.url, "chaos")
        config = HostConfig(namespace="chaos", state_dir=str(tmp_path / "state"), run_store_url=url)
        host = UnitHost(bundle, "Agent/worker", 0, 1, config)
        store = open_run_store(url)
        await store.ping()
        runs = [
            asyncio.ensure_future(host.run(RunRequest(f"run-{n}", "Agent/worker", {}))) for n in range(RUNS)
        ]
        await asyncio.sleep(0.5)  # every run is between its first claim and its last finish
        started = time.monotonic()
        await asyncio.to_thread(kill_server, server)
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(restart_server, server)
        back = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), timeout=240)
        settled_after_s = time.monotonic() - back
        records = [await store.get_run(f"run-{n}") for n in range(RUNS)]
        await store.close()
        await host.runtime.aclose()

    failures = [r for r in results if isinstance(r, BaseException) or not r.ok]
    lost = [n for n, record in enumerate(records) if record is None]
    unfinished = [r.run_id for r in records if r is not None and r.status is not RunStatus.COMPLETED]
    counts = Counter(effects(tmp_path / "plugins"))
    repeated = {key: n for key, n in counts.items() if n > 1}
    report = {
        "runs": RUNS,
        "down_s": round(back - started, 1),
        "failed": len(failures),
        "lost": len(lost),
        "not_final": len(unfinished),
        "side_effects": sum(counts.values()),
        "repeated_side_effects": sum(n - 1 for n in repeated.values()),
        "settled_after_restart_s": round(settled_after_s, 1),
    }
    print(f"\nchaos store-outage: {json.dumps(report)}")
    assert not failures, failures[:3]
    assert not lost and not unfinished
    assert not repeated, list(repeated.items())[:5]
    assert sum(counts.values()) == 3 * RUNS
    assert settled_after_s < 60
