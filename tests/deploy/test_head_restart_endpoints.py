"""A restored head serves its HTTP endpoints again (issue 17, item 3).

The embedded head's GCS is killed, which ends the whole head and Ray Serve with it. The next
command, run from a shell without the endpoint's token variable, starts the head again,
re-applies the units and deploys the Endpoint again with the token it was applied with: the API
answers over HTTP with that token and refuses another."""

from __future__ import annotations

import json
import os
import signal
import socket
import textwrap
from pathlib import Path

import httpx
import pytest
from tests.support.cli_env import RAY_TEXT, isolated_env, run_platform

from agent_platform._deploy.cluster import head_processes, read_head

pytestmark = pytest.mark.slow

TOKEN = "restored-endpoint-token"
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
    ---
    apiVersion: agents.platform/v1
    kind: Endpoint
    metadata: {name: api}
    spec:
      units: [greeter]
      auth: {token_env: TEST_API_TOKEN}
      port: PORT
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def greet(port: int, token: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/units/greeter/runs?wait=true",
        json={"inputs": {"who": "Ada"}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )


def test_the_next_command_after_the_head_died_redeploys_its_endpoints(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "app.yaml").write_text(SPECS.replace("PORT", str(port)))
    env = isolated_env(tmp_path)
    with_token = {**env, "TEST_API_TOKEN": TOKEN}
    applied = run_platform("apply", "specs", env=with_token, cwd=tmp_path, timeout=300)
    assert applied.returncode == 0, applied.stderr
    try:
        assert greet(port, TOKEN).status_code == 200

        head = read_head(tmp_path / "state")
        assert head is not None
        gcs = [pid for pid, name in head_processes(head).items() if name == "gcs_server"]
        assert gcs, head_processes(head)
        os.kill(gcs[0], signal.SIGKILL)

        # The restoring command does not have the token: the endpoint keeps the one applied.
        got = run_platform("get", env=env, cwd=tmp_path, timeout=400)
        assert got.returncode == 0, got.stderr
        assert "was down; started it again" in got.stderr, got.stderr
        assert f"restored Endpoint/api serving Agent/greeter at http://127.0.0.1:{port}/v1" in got.stderr, (
            got.stderr
        )
        assert not any(text in got.stdout + got.stderr for text in RAY_TEXT), got.stderr

        answer = greet(port, TOKEN)
        assert answer.status_code == 200, answer.text
        run = answer.json()
        assert run["status"] == "completed" and isinstance(run["output"]["greeting"], str), run
        assert greet(port, "another-token").status_code == 401

        # The endpoint is running with its token: the next apply leaves it as it is.
        again = run_platform("apply", "specs", "-o", "json", env=with_token, cwd=tmp_path, timeout=300)
        assert again.returncode == 0, again.stderr
        assert "Endpoint/api serving" not in again.stderr, again.stderr
        assert json.loads(again.stdout)["counts"].get("unchanged") == 3, again.stdout
    finally:
        run_platform("down", env=env, cwd=tmp_path, timeout=300)
