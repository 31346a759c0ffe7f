"""The deployment commands through the real `platform` console script: the embedded local Ray
head (started by `apply`, reused by later commands, stopped by `down`), detached runs, and the
failure messages a user sees instead of Ray tracebacks."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.cli_env import PLATFORM, isolated_env

pytestmark = pytest.mark.slow


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
    # As on a machine that never ran Ray: an empty HOME (no ~/.ray/auth_token), no Ray variables.
    env = isolated_env(tmp_path)
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
    assert result.returncode == 1, "like `kubectl diff`: a dry run that would change something exits 1"
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
    token = root / "state" / "ray-auth-token"
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) == 64
    assert not (root / "home" / ".ray").exists(), "the user's ~/.ray is neither read nor written"
    assert token.read_text() not in applied.stdout + applied.stderr, "the token is never printed"

    # A user's own RAY_AUTH_TOKEN does not shadow the embedded head's token, and is left alone.
    with_user_token = platform("get", env={**env, "RAY_AUTH_TOKEN": "the-users-own-token"})
    assert with_user_token.returncode == 0, with_user_token.stderr
    # A cluster given by address uses the user's token: with none, the message says where to put it.
    no_token = platform("get", "--address", head["address"], env=env, timeout=120)
    assert no_token.returncode == 1
    assert "requires an authentication token and none was found" in no_token.stderr
    assert "RAY_AUTH_TOKEN" in no_token.stderr and "gcs_client" not in no_token.stderr
    by_address = platform(
        "get", "--address", head["address"], env={**env, "RAY_AUTH_TOKEN": token.read_text()}
    )
    assert by_address.returncode == 0 and "greeter" in by_address.stdout

    again = platform("apply", str(root / "specs"), env=env)
    assert "2 unchanged" in again.stdout, again.stdout
    assert json.loads((root / "state" / "ray-head.json").read_text()) == head, "the head is reused"

    listed = platform("get", "agents", env=env)
    assert listed.returncode == 0 and "greeter" in listed.stdout and "1/1" in listed.stdout

    ran = platform("run", "greeter", "--input", '{"who": "Ada"}', env=env)
    assert ran.returncode == 0, ran.stderr
    output = json.loads(ran.stdout)  # the result alone: where it ran goes to stderr
    assert output["outcome"] == "completed" and "greeting" in output["output"]
    assert "actor agent-greeter-g1-r0" in ran.stderr

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
