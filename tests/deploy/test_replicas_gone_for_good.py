"""Replicas gone for good, on a real embedded head (issue 17, item 2).

A delegate's only replica is killed more often than its `max_restarts` allows while its callers'
hand-offs run on it. The hand-offs end `failed` with a reason, their callers are told and finish,
`platform get` says what happened and what to run (not `0/1 unreachable (ValueError)`), and the
next `platform apply` recreates the replica, which then serves hand-offs again."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from tests.support.cli_env import RAY_TEXT, isolated_env, run_platform

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

CALLERS = 3
SPECS = textwrap.dedent(
    """\
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: m}
    spec: {provider: scripted, script: script.json, on_script_exhausted: error}
    ---
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: slow}
    spec: {provider: scripted, on_script_exhausted: synthesize, latency: 600s}  # still running when its replica dies
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: mailer}
    spec:
      model: slow
      instructions: Send the mail you are asked to.
      inputs: {type: object, properties: {to: {type: string}}}
      output: {type: object, properties: {sent: {type: boolean}}, required: [sent]}
      runtime: {resources: {num_cpus: 0.1}, max_restarts: 1}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: boss}
    spec:
      model: m
      instructions: Have the mailer send the mail.
      output: {type: object, properties: {answer: {type: string}}, required: [answer]}
      delegates: [mailer]
      runtime: {resources: {num_cpus: 0.1}}
    """
)
SCRIPT = {
    "responses": {
        "boss": [
            {"action": {"action": "delegate:mailer", "task": {"to": "ana@example.com"}}},
            {"action": {"action": "final_answer", "answer": {"answer": "done"}}},
        ]
    }
}


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = isolated_env(root)

    def platform(self, *args: str, timeout: float = 300) -> Any:
        return run_platform(*args, env=self.env, cwd=self.root, timeout=timeout)

    def json(self, *args: str) -> Any:
        done = self.platform(*args, "-o", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def mailer(self) -> dict[str, Any]:
        rows = self.json("get", "Agent/mailer")
        return dict(rows[0])

    def write_specs(self) -> Path:
        specs = self.root / "specs"
        specs.mkdir(exist_ok=True)
        (specs / "app.yaml").write_text(SPECS)
        (specs / "script.json").write_text(json.dumps(SCRIPT))
        return specs


def wait_for(what: str, check: Any, patience: float = 180) -> Any:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: not seen within {patience:g}s")


def kill_replica(project: Project, previous_pid: int | None) -> int:
    """`kill -9` the mailer's replica process once it is up (a restart brings a new pid)."""

    def live_pid() -> int | None:
        replicas = project.mailer()["replicas"]
        pid = replicas[0].get("pid") if replicas and replicas[0]["health"] == "ok" else None
        return pid if pid is not None and pid != previous_pid else None

    pid = int(wait_for("the mailer's replica answering", live_pid))
    os.kill(pid, signal.SIGKILL)
    return pid


def clean(*texts: str) -> None:
    for text in texts:
        assert not any(bad in text for bad in (*RAY_TEXT, "ValueError", "Failed to look up")), text


def test_a_unit_whose_replicas_died_for_good_fails_its_hand_offs_says_so_and_apply_recreates_it(
    tmp_path: Path,
) -> None:
    project = Project(tmp_path)
    specs = project.write_specs()
    applied = project.platform("apply", str(specs))
    assert applied.returncode == 0, applied.stderr
    try:
        callers = []
        for _ in range(CALLERS):
            detached = project.platform("run", "boss", "--detach")
            assert detached.returncode == 0, detached.stderr
            callers.append(detached.stdout.strip())
        hand_offs = [f"{run_id}/mailer-1" for run_id in callers]

        def all_running() -> bool:
            rows = {r["run_id"]: r["status"] for r in project.json("runs", "--all")}
            return all(rows.get(h) == "running" for h in hand_offs)

        wait_for("every hand-off running on the mailer", all_running)
        first = kill_replica(project, None)  # Ray restarts it once (max_restarts: 1)...
        kill_replica(project, first)  # ...and not again: gone for good

        for run_id in callers:  # the callers are told and finish
            done = project.platform("result", run_id, "--wait", "300")
            assert done.returncode == 0, done.stderr
            result = json.loads(done.stdout)
            assert result["output"] == {"answer": "done"}, result
            told = result["details"]["trajectory"][0]
            assert told["name"] == "mailer" and told.get("error") is True, told
        for run_id in hand_offs:  # the hand-offs end with a reason; `result` answers at once
            ended = project.platform("result", run_id, "--wait", "30")
            assert ended.returncode == 1, ended.stdout
            failure = json.loads(ended.stdout)
            assert failure["outcome"] == "failed", failure
            assert "no replica could take run" in failure["error"] and "platform apply" in failure["error"]
            clean(failure["error"])

        got = project.platform("get")
        assert got.returncode == 0, got.stderr
        assert (
            "all replicas of Agent/mailer are gone (restarted 1 time, then died for good): "
            "run `platform apply SPECS` to recreate them" in got.stdout
        ), got.stdout
        row = project.mailer()
        assert [r["health"] for r in row["replicas"]] == ["gone (died for good after 1 restart)"], row
        clean(got.stdout, got.stderr)

        # The next apply, of the same specs, recreates the replica (a new generation), which
        # takes hand-offs again.
        again = project.platform("apply", str(specs))
        assert again.returncode == 0, again.stderr
        assert "Agent/mailer updated" in again.stdout and "replicas recreated" in again.stdout, again.stdout
        row = project.mailer()
        assert [r["health"] for r in row["replicas"]] == ["ok"] and "problem" not in row, row
        assert row["generation"] == 2, row
        detached = project.platform("run", "boss", "--detach")
        assert detached.returncode == 0, detached.stderr
        hand_off = detached.stdout.strip() + "/mailer-1"
        wait_for(
            "a new hand-off running on the recreated replica",
            lambda: (
                {r["run_id"]: r["status"] for r in project.json("runs", "--all")}.get(hand_off) == "running"
            ),
        )
    finally:
        project.platform("down")
