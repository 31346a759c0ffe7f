"""Approval as a run state on a deployment: a deployed run (and the hand-off that made the call)
pauses in the run store, `platform approve` decides and hands the run back to the control plane,
which resumes it on a replica from the call it was making; the side effect happens once."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.cli_env import isolated_env, run_platform
from tests.test_approvals_local import PLUGIN, SPECS, final, send

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    (tmp_path / "specs").mkdir()
    # Each agent a tenth of a CPU: CI has two.
    (tmp_path / "specs" / "all.yaml").write_text(
        SPECS.replace("  model: m\n", "  model: m\n  runtime: {resources: {num_cpus: 0.1}}\n")
    )
    (tmp_path / "mailplug.py").write_text(PLUGIN)
    delegate = {"action": {"action": "delegate:mailer", "task": {"to": "ana@example.com"}}}
    script = {
        "boss": [delegate, final("the mailer sent it")],
        "mailer": [send("ana@example.com"), final("sent")],
    }
    (tmp_path / "specs" / "script.json").write_text(json.dumps({"responses": script}))
    env = isolated_env(tmp_path)
    yield tmp_path, env
    run_platform("down", env=env, cwd=tmp_path)


def mails(root: Path) -> list[str]:
    if not (root / "effects.db").exists():
        return []
    with sqlite3.connect(root / "effects.db") as db:
        return [v for (v,) in db.execute("SELECT value FROM effects WHERE kind = 'mail'")]


def test_a_deployed_run_waits_for_approval_and_resumes_on_its_deployment(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, env = project
    applied = run_platform("apply", "specs", env=env, cwd=root)
    assert applied.returncode == 0, applied.stderr
    ran = run_platform("run", "boss", "--input", "{}", env=env, cwd=root)
    paused = json.loads(ran.stdout)
    assert ran.returncode == 1 and paused["outcome"] == "needs_approval", ran.stderr
    run_id = paused["run_id"]
    assert mails(root) == []
    runs = json.loads(run_platform("runs", "--all", "-o", "json", env=env, cwd=root).stdout)
    waiting = {r["run_id"] for r in runs if r["status"] == "waiting_approval"}
    assert waiting == {run_id, f"{run_id}/mailer-1"}, runs  # the hand-off that asked, and its caller

    approved = run_platform("approve", run_id, "--as", "ana", env=env, cwd=root)
    assert approved.returncode == 0, approved.stderr
    result = json.loads(approved.stdout)
    assert result["outcome"] == "completed" and result["output"] == {"answer": "the mailer sent it"}
    assert mails(root) == ["ana@example.com"]
    runs = json.loads(run_platform("runs", "--all", "-o", "json", env=env, cwd=root).stdout)
    assert {r["status"] for r in runs} == {"completed"}

    # A waiting run can be cancelled, with the hand-off it waits through; nothing is sent.
    second = json.loads(run_platform("run", "boss", "--input", "{}", env=env, cwd=root).stdout)
    assert second["outcome"] == "needs_approval"
    cancelled = run_platform("cancel", second["run_id"], env=env, cwd=root)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout, cancelled.stderr
    runs = json.loads(run_platform("runs", "--all", "-o", "json", env=env, cwd=root).stdout)
    assert {r["status"] for r in runs if r["run_id"].startswith(second["run_id"])} == {"cancelled"}
    assert mails(root) == ["ana@example.com"]
    refused = run_platform("approve", second["run_id"], env=env, cwd=root)
    assert refused.returncode == 1 and "already finished (cancelled)" in refused.stderr
