"""What `platform run --local` shows never carries a secret: not a connection string quoted in a
run's error, not an API key a model server echoes in its error body (in the run result or in the
lines instructor logs to stderr), and instructor's per-attempt errors stay off stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.support.openai_api import ChatCompletionsServer, openai_error
from typer.testing import CliRunner

from agent_platform._cli import app

PLATFORM = str(Path(sys.executable).parent / "platform")
# A key of no recognisable shape: only knowing the key can hide it.
KEY = "e2e-credential-0042-of-no-known-shape"

MODEL_SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {{name: m}}
spec:
  provider: openai
  name: local-model
  base_url: {base_url}
  api_key_env: AP_E2E_KEY
  timeout: 5
  retry: {{max_attempts: 2, backoff: {{initial: 0.01, max: 0.01, jitter: none}}}}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {{name: a}}
spec:
  model: m
  instructions: Answer about {{{{ inputs.topic }}}}.
  inputs: {{type: object, properties: {{topic: {{type: string}}}}, required: [topic]}}
  output: {{type: object, properties: {{answer: {{type: string}}}}, required: [answer]}}
"""


def test_an_echoed_key_is_in_neither_the_result_nor_stderr(tmp_path: Path) -> None:
    # In a fresh process, as a user runs it: nothing has configured logging there, so Python
    # prints what instructor logs at WARNING and above to stderr.
    with ChatCompletionsServer(api_key=KEY) as server:
        server.push(
            openai_error(500, "server_error", f"upstream rejected {KEY}"),
            openai_error(401, "invalid_api_key", f"Incorrect API key provided: {KEY}"),
        )
        (tmp_path / "specs.yaml").write_text(MODEL_SPECS.format(base_url=f"{server.url}/v1"))
        env = {**os.environ, "AP_E2E_KEY": KEY, "PLATFORM_STATE_DIR": str(tmp_path / "state")}
        env.pop("RAY_ADDRESS", None)
        done = subprocess.run(
            [PLATFORM, "run", "a", "--local", "-s", "specs.yaml", "--input", '{"topic": "x"}'],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert len(server.requests) == 2, "the 500 was retried, the 401 was not"
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "failed"
    assert (
        "refused the credentials" in result["error"] and "Incorrect API key provided: ***" in result["error"]
    )
    assert KEY not in done.stdout and KEY not in done.stderr
    assert "API call failed" not in done.stderr and "Max retries exceeded" not in done.stderr


PLUGIN = """\
import os


def connect(table: str) -> dict:
    raise ConnectionError(f"could not connect to {os.environ['AP_E2E_DSN']} for {table}")
"""

PIPELINE_SPECS = """\
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: connect}
spec:
  description: Connect to the database.
  python: plug.tools:connect
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: p}
spec:
  inputs: {type: object, properties: {table: {type: string}}, required: [table]}
  steps:
    - name: load
      tool: connect
      input: {table: '{{ inputs.table }}'}
"""


@pytest.mark.parametrize(
    "dsn",
    [
        "host=db password=hunter2 user=runner dbname=runs",
        "host=db password='hunter2 and more' user=runner",
        "postgresql://runner:hunter2@db:5432/runs",
        "postgresql://runner@db/runs?sslmode=require&password=hunter2",
    ],
)
def test_a_run_error_quoting_a_connection_string_is_printed_without_its_password(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "__init__.py").write_text("")
    (tmp_path / "plug" / "tools.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "specs.yaml").write_text(PIPELINE_SPECS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AP_E2E_DSN", dsn)
    arguments = ["p", "--local", "-s", "specs.yaml", "--input", '{"table": "runs"}', "--plugin-path", "."]
    done = CliRunner().invoke(app, ["run", *arguments])
    assert done.exit_code == 1, done.output
    result = json.loads(done.stdout)
    assert "could not connect to" in result["error"] and "db" in result["error"]
    assert "hunter2" not in done.stdout + done.stderr
