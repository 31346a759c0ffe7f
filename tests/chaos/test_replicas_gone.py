"""Chaos: every replica of a delegate's unit is gone for good while hand-offs to it are running.

The measured failure: the parents failed correctly, but the sub-runs stayed `running` forever
(through applies and a `down`), and `platform result` on one waited forever. Now the router,
once no replica can take a hand-off, records the sub-run `failed` with the reason, and the
caller's model is told the delegate failed. Runs here are driven by the same `DurableRunner`
and `Router` a replica uses; the dead replicas are fakes that answer as Ray does for an actor
that is gone (a named actor that cannot be found)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.test_approvals_local import PLUGIN, SPECS, final

from agent_platform._compile import compile_specs
from agent_platform._deploy.host import RayRuntime
from agent_platform._deploy.router import Router
from agent_platform._runstore import RunRecord, RunStatus, open_run_store
from agent_platform._runtime.durable import DurableRunner, RunRequest
from agent_platform._validate import ValidationOptions, validate_paths

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

SUB_RUNS = int(os.environ.get("CHAOS_RUNS", "40"))


class Routes:
    async def remote(self, unit: str) -> list[str]:
        return ["agent-mailer-g1-r0"]


class ControlPlane:
    routes = Routes()


class GoneReplica:
    """Every call fails as a call to an actor that no longer exists does."""

    calls = 0

    @property
    def run(self) -> GoneReplica:
        return self

    @property
    def run_batch(self) -> GoneReplica:
        return self

    def options(self, **_: Any) -> GoneReplica:
        return self

    def remote(self, *_: Any) -> Any:
        GoneReplica.calls += 1
        raise ValueError("Failed to look up actor with name 'agent-mailer-g1-r0'")


async def test_hand_offs_to_a_unit_with_no_replica_left_end_failed_and_the_caller_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "mailplug.py").write_text(PLUGIN)  # never called: its replicas are gone
    (tmp_path / "specs.yaml").write_text(SPECS)
    delegate = {"action": {"action": "delegate:mailer", "task": {"to": "ana@example.com"}}}
    script = {"responses": {"boss": [delegate, final("the mailer is unreachable")]}}
    (tmp_path / "script.json").write_text(json.dumps(script))
    report = validate_paths([tmp_path / "specs.yaml"], ValidationOptions(plugin_paths=[tmp_path]))
    assert report.ok, [str(d) for d in report.diagnostics.errors]
    url = f"sqlite://{tmp_path / 'runs.sqlite3'}"
    store = open_run_store(url)
    router = Router("chaos", url)
    router._control = ControlPlane()
    # Ray's own lookup would find nothing either: every replica is gone.
    monkeypatch.setattr(router, "_handle", lambda name: GoneReplica())
    runtime = RayRuntime(compile_specs(report.specs), plugin_paths=[tmp_path], router=router)
    runner = DurableRunner(runtime, store, "agent-boss-g1-r0")
    for n in range(SUB_RUNS):  # each replica had started its hand-off before it died
        await store.create_run(
            RunRecord(
                f"run-{n}/mailer-1", "Agent/mailer", {"to": "ana@example.com"}, parent_run_id=f"run-{n}"
            )
        )
        await store.begin_attempt(f"run-{n}/mailer-1", "agent-mailer-g1-r0")
    import asyncio

    results = await asyncio.gather(
        *(runner.run(RunRequest(f"run-{n}", "Agent/boss", {})) for n in range(SUB_RUNS))
    )
    assert all(r.ok and r.output == {"answer": "the mailer is unreachable"} for r in results)
    told = results[0].details["trajectory"][0]
    assert told["name"] == "mailer" and told.get("error")
    sub_runs = [await store.get_run(f"run-{n}/mailer-1") for n in range(SUB_RUNS)]
    assert all(r is not None and r.status is RunStatus.FAILED for r in sub_runs)
    assert sub_runs[0] is not None and "no replica could take run" in (sub_runs[0].error or "")
    assert (await store.wait("run-0/mailer-1", timeout=1)).finished  # `platform result` returns
    failed = sum(1 for r in sub_runs if r is not None and r.status is RunStatus.FAILED)
    print(
        f"\nchaos replicas-gone: {json.dumps({'sub_runs': SUB_RUNS, 'callers_completed': sum(r.ok for r in results), 'sub_runs_failed_with_reason': failed, 'not_final': SUB_RUNS - failed})}"
    )
    await runtime.aclose()
    await store.close()
