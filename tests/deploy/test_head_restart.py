"""The embedded head comes back by itself (issue 17, item 3).

When the head's raylet or GCS dies, the whole embedded head goes with it. The next command that
needs it starts it again and re-applies what was applied (kept in the state directory), and the
control plane's recovery then resumes the runs in flight. A command caught while the head dies
ends at once, with the run id it was given and a message naming what to run, instead of blocking
for a minute and printing Ray's own log lines (on stderr, and the raylet's last log lines on
stdout)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.cli_env import PLATFORM, isolated_env

from agent_platform._deploy.cluster import head_processes, read_head

pytestmark = pytest.mark.slow


SPECS = textwrap.dedent(
    """\
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: m}
    spec: {provider: scripted, on_script_exhausted: synthesize}
    ---
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: slow}
    spec: {provider: scripted, on_script_exhausted: synthesize, latency: 8s}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: greeter}
    spec:
      model: m
      instructions: Greet {{ inputs.who }}.
      inputs: {type: object, properties: {who: {type: string}}, required: [who]}
      output: {type: object, properties: {greeting: {type: string}}, required: [greeting]}
      runtime: {resources: {num_cpus: 0.1}}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: sleeper}
    spec:
      model: slow
      instructions: Take your time.
      output: {type: object, properties: {done: {type: boolean}}, required: [done]}
      runtime: {resources: {num_cpus: 0.1}}
    """
)
# What must never reach the user: Ray's log lines ("[2026-12-06 …] rpc_client.h: …", the raylet's
# last lines) and tracebacks.
RAY_TEXT = ("Traceback", "[20", "rpc_client", "task_manager", "Raylet is terminated", "gcs_client")


class Project:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.state = root / "state"

    def platform(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PLATFORM, *args], capture_output=True, text=True, env=self.env, cwd=self.root, timeout=timeout
        )

    def kill(self, process: str) -> None:
        """`kill -9` one of the head's own processes (gcs_server, raylet), found in its session."""
        head = read_head(self.state)
        assert head is not None
        pids = [pid for pid, name in head_processes(head).items() if name == process]
        assert pids, f"no {process} in the head's session: {head_processes(head)}"
        os.kill(pids[0], signal.SIGKILL)

    def runs(self) -> list[dict[str, Any]]:
        listed = self.platform("runs", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        rows: list[dict[str, Any]] = json.loads(listed.stdout)
        return rows

    def wait_running(self, run_id: str | None = None) -> str:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for row in self.runs():
                if (
                    row["status"] == "running"
                    and row["unit"] == "Agent/sleeper"
                    and run_id in (None, row["run_id"])
                ):
                    return str(row["run_id"])
            time.sleep(0.5)
        raise AssertionError("no run of Agent/sleeper started")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "app.yaml").write_text(SPECS)
    project = Project(tmp_path, isolated_env(tmp_path))
    applied = project.platform("apply", "specs")
    assert applied.returncode == 0, applied.stderr
    try:
        yield project
    finally:
        project.platform("down")


def clean(*texts: str) -> None:
    for text in texts:
        assert not any(bad in text for bad in RAY_TEXT), text


def test_the_next_command_restarts_a_dead_head_and_its_runs_resume(project: Project) -> None:
    detached = project.platform("run", "sleeper", "--detach")
    assert detached.returncode == 0, detached.stderr
    run_id = detached.stdout.strip()
    project.wait_running(run_id)
    before = read_head(project.state)

    project.kill("gcs_server")
    listed = project.platform("runs", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert run_id in {r["run_id"] for r in json.loads(listed.stdout)}
    assert before is not None and f"the local Ray head at {before.address} was down" in listed.stderr
    assert "re-applied 2 spec(s)" in listed.stderr
    clean(listed.stdout, listed.stderr)
    after = read_head(project.state)
    assert after is not None and after.pid != before.pid
    assert not any(name == "raylet" for name in head_processes(before).values()), (
        "nothing left of the old head"
    )

    finished = project.platform("result", run_id, "--wait", "120")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["outcome"] == "completed"
    agents = project.platform("get", "agents", "-o", "json")
    assert agents.returncode == 0, agents.stderr
    assert {r["name"]: [x["health"] for x in r["replicas"]] for r in json.loads(agents.stdout)} == {
        "greeter": ["ok"],
        "sleeper": ["ok"],
    }
    again = project.platform("apply", "specs")
    assert again.returncode == 0 and "4 unchanged" in again.stdout, again.stdout


def test_a_run_caught_by_the_head_dying_ends_at_once_with_its_id(project: Project) -> None:
    running = subprocess.Popen(
        [PLATFORM, "run", "sleeper"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=project.env,
        cwd=project.root,
    )
    run_id = project.wait_running()
    project.kill("raylet")
    killed = time.monotonic()
    out, err = running.communicate(timeout=60)
    assert time.monotonic() - killed < 15, "not Ray's 60 s of retries"
    assert running.returncode == 1, err
    assert "the local Ray head" in err and "went down while running run " + run_id in err, err
    assert f"`platform result {run_id}`" in err
    assert out == "", "nothing on stdout, where the result would go (the raylet's log went there)"
    clean(out, err)

    # A run --detach right after: it starts the head again and submits.
    detached = project.platform("run", "greeter", "--detach", "-i", '{"who": "Ada"}')
    assert detached.returncode == 0, detached.stderr
    assert detached.stdout.strip().startswith("run-") and "was down" in detached.stderr
    clean(detached.stdout, detached.stderr)
    resumed = project.platform("result", run_id, "--wait", "120")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["outcome"] == "completed"
