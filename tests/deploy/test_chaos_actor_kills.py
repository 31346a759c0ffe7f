"""Chaos on a real multi-node Ray cluster: replicas and the control plane are killed repeatedly
while 100 runs of a side-effecting agent are in flight.

Each run records three side effects through a keyed tool. While they run, worker replicas are
killed (`ray.kill`, Ray restarts them: `max_restarts: -1`) several times and the control plane
once. Every run must complete; the tool counts every real execution of the function and keys
the effect itself by the idempotency key (as a service given the key would). The figures are
printed for the chaos table. (It lives beside the other cluster tests to share their cluster.)"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.deploy.test_ray_cluster import PLUGIN, SCRIPT, compiled, specs, write_specs

from agent_platform._deploy.client import Deployment
from agent_platform._deploy.host import RunRequest
from agent_platform._deploy.router import CONTROL_PLANE, Router
from agent_platform._runstore import RunStatus, open_run_store

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

RUNS = int(os.environ.get("CHAOS_RUNS", "40"))
REPLICA_KILLS = 4


@pytest.fixture(scope="module")
def chaos_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chaos-project")
    (root / "plugins").mkdir()
    (root / "plugins" / "sideplug.py").write_text(PLUGIN, encoding="utf-8")
    write_specs(root / "specs", {"all.yaml": specs(), "script.json": json.dumps(SCRIPT)})
    return root


def test_runs_survive_replica_and_control_plane_kills(
    ray_cluster: Any, chaos_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import ray

    state = tmp_path_factory.mktemp("chaos-state")
    deployment = Deployment.connect(
        ray_cluster.address,
        "chaos-kills",
        start=False,
        state_dir=state,
        run_store_url=f"sqlite:///{state}/runs.db",
    )
    report, plan, bundle = compiled(chaos_project / "specs", chaos_project / "plugins")
    deployment.apply(report.specs, plan, bundle)
    run_ids = [f"run-chaos-{i:03d}" for i in range(RUNS)]
    db_path = chaos_project / "plugins" / "side-effects.db"

    async def run_all() -> list[Any]:
        router = Router(deployment.namespace, deployment.settings()["run_store_url"])
        return await asyncio.gather(*(router.call(RunRequest(r, "Agent/worker", {})) for r in run_ids))

    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.extend(asyncio.run(run_all())))
    runner.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the runs are under way: their first effects are in
        try:
            with sqlite3.connect(db_path) as db:
                if db.execute("SELECT count(*) FROM executions").fetchone()[0] >= RUNS // 4:
                    break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    kills = 0
    for round_ in range(REPLICA_KILLS):
        for name in deployment.records()["Agent/worker"]["actors"][: 1 + round_ % 2]:
            try:
                ray.kill(ray.get_actor(name, namespace=deployment.namespace), no_restart=False)
                kills += 1
            except ValueError:
                pass  # restarting: not registered under its name this instant
        if round_ == 1:
            ray.kill(ray.get_actor(CONTROL_PLANE, namespace=deployment.namespace), no_restart=False)
        time.sleep(0.8)
    cleared = time.monotonic()
    runner.join(timeout=300)
    finished_after_s = time.monotonic() - cleared
    assert not runner.is_alive(), "runs did not finish after the kills"

    async def records() -> list[Any]:
        store = open_run_store(deployment.settings()["run_store_url"])
        try:
            return [await store.get_run(r) for r in run_ids]
        finally:
            await store.close()

    stored = asyncio.run(records())
    with sqlite3.connect(db_path) as db:
        executions = db.execute("SELECT count(*) FROM executions").fetchone()[0]
        effects = db.execute("SELECT count(*) FROM effects").fetchone()[0]
    figures = {
        "runs": RUNS,
        "replica_kills": kills,
        "control_plane_kills": 1,
        "failed": sum(1 for r in results if not r.ok),
        "lost": sum(1 for r in stored if r is None),
        "not_final": sum(1 for r in stored if r is not None and r.status is not RunStatus.COMPLETED),
        "side_effects": effects,
        "repeated_side_effects": effects - 3 * RUNS if effects > 3 * RUNS else 0,
        "repeated_executions": executions - effects,
        "finished_after_last_kill_s": round(finished_after_s, 1),
        "resumed_runs": sum(1 for r in stored if r is not None and r.attempt >= 2),
    }
    print(f"\nchaos actor-kills: {json.dumps(figures)}")
    assert figures["failed"] == 0, [r.error for r in results if not r.ok][:3]
    assert figures["lost"] == 0 and figures["not_final"] == 0
    assert effects == 3 * RUNS, "every effect once"
    assert finished_after_s < 60
    deployment.delete(
        ["Agent/worker", "Agent/helper", "Agent/prober", "Agent/sidekick", "Supervisor/boss"], force=True
    )
