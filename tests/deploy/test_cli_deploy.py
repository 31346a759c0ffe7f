"""The deployment commands through the real `platform` console script: the embedded local Ray
head (started by `apply`, reused by later commands, stopped by `down`), detached runs, and the
failure messages a user sees instead of Ray tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PLATFORM = str(Path(sys.executable).parent / "platform")

SPECS = textwrap.dedent(
    """\
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: m}
    spec: {provider: scripted, on_script_exhausted: synthesize}
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
    """
)


def platform(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PLATFORM, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "greeter.yaml").write_text(SPECS)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PLATFORM_STATE_DIR"] = str(tmp_path / "state")
    yield tmp_path, env
    platform("down", env=env)  # never leave a head behind, whatever failed


def test_an_unreachable_address_fails_fast_with_a_message(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    started = time.monotonic()
    result = platform("apply", str(root / "specs"), "--address", "127.0.0.1:9", env=env)
    assert result.returncode == 1 and time.monotonic() - started < 15
    assert "platform apply: cannot reach a Ray cluster at 127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_dry_run_with_nothing_deployed_starts_no_cluster(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    result = platform("apply", str(root / "specs"), "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert "Agent/greeter would be created" in result.stdout and "(no deployment)" in result.stdout
    assert not (root / "state" / "ray-head.json").exists()
    for command in (["get"], ["run", "greeter", "--input", '{"who": "x"}'], ["runs"]):
        missing = platform(*command, env=env)
        assert missing.returncode == 1 and "no local Ray head is running" in missing.stderr, command


def test_apply_run_detach_result_delete_down_on_the_embedded_head(
    project: tuple[Path, dict[str, str]],
) -> None:
    root, env = project
    applied = platform("apply", str(root / "specs"), env=env)
    assert applied.returncode == 0, applied.stderr
    assert "Agent/greeter created -> 1 replica(s)" in applied.stdout
    head = json.loads((root / "state" / "ray-head.json").read_text())

    again = platform("apply", str(root / "specs"), env=env)
    assert "2 unchanged" in again.stdout, again.stdout
    assert json.loads((root / "state" / "ray-head.json").read_text()) == head, "the head is reused"

    listed = platform("get", "agents", env=env)
    assert listed.returncode == 0 and "greeter" in listed.stdout and "1/1" in listed.stdout

    ran = platform("run", "greeter", "--input", '{"who": "Ada"}', env=env)
    assert ran.returncode == 0, ran.stderr
    output = json.loads(ran.stdout.split("\n\nran on:", 1)[0])
    assert output["outcome"] == "completed" and "greeting" in output["output"]
    assert "actor agent-greeter-g1-r0" in ran.stdout

    run_id = platform("run", "greeter", "--detach", "--input", '{"who": "Bob"}', env=env).stdout.strip()
    assert run_id.startswith("run-")
    waited = platform("result", run_id, "--wait", "60", env=env)
    assert waited.returncode == 0 and json.loads(waited.stdout)["run_id"] == run_id
    runs = platform("runs", env=env)
    assert run_id in runs.stdout and output["run_id"] in runs.stdout and "completed" in runs.stdout

    bad = platform("run", "greeter", "--input", '{"nobody": 1}', env=env)
    assert bad.returncode == 2 and '"who" is a required property' in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = platform("result", "run-doesnotexist", env=env)
    assert (
        unknown.returncode == 1 and "run-doesnotexist" in unknown.stderr and "Traceback" not in unknown.stderr
    )

    deleted = platform("delete", "greeter", env=env)
    assert deleted.returncode == 0 and "Agent/greeter deleted" in deleted.stdout
    gone = platform("run", "greeter", "--input", '{"who": "x"}', env=env)
    assert gone.returncode == 1 and "no deployed agent, pipeline or supervisor named 'greeter'" in gone.stderr

    down = platform("down", env=env)
    assert down.returncode == 0 and f"stopped the local Ray head at {head['address']}" in down.stdout
    assert not (root / "state" / "ray-head.json").exists()
