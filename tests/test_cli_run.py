"""`platform run --local`: exit codes, input handling, and trace output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_platform._cli import app

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: a}
spec:
  model: m
  instructions: Answer about {{ inputs.topic }}.
  inputs: {type: object, properties: {topic: {type: string}}, required: [topic]}
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
  limits: {max_iterations: 2}
"""


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "specs.yaml"
    path.write_text(SPECS)
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["run", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_completed_run_prints_json_and_exits_0(specs: Path) -> None:
    code, out, _ = run("a", "--local", "-s", str(specs), "--input", '{"topic": "ray"}')
    assert code == 0, out
    result = json.loads(out)
    assert result["outcome"] == "completed" and result["unit"] == "Agent/a"
    assert set(result["output"]) == {"answer"}


def test_trace_prints_the_span_tree_on_stderr_and_only_json_on_stdout(specs: Path) -> None:
    code, out, err = run("a", "--local", "-s", str(specs), "--input", '{"topic": "ray"}', "--trace")
    assert code == 0
    assert json.loads(out)["outcome"] == "completed", "stdout is the result alone: `| jq` works"
    assert "invoke_agent a" in err and "chat m (scripted)" in err


def test_yaml_and_text_results(specs: Path) -> None:
    import yaml

    code, out, _ = run("a", "--local", "-s", str(specs), "--input", '{"topic": "ray"}', "-o", "yaml")
    assert code == 0 and yaml.safe_load(out)["outcome"] == "completed"
    code, out, _ = run("a", "--local", "-s", str(specs), "--input", '{"topic": "ray"}', "-o", "text")
    assert code == 0 and out.startswith("run run-") and ": completed" in out.splitlines()[0]


def test_input_from_a_file_and_its_errors(specs: Path, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"topic": "files"}')
    assert run("a", "--local", "-s", str(specs), "--input", "@in.json")[0] == 0
    (tmp_path / "bad.json").write_text('{"topic": }')
    code, _, err = run("a", "--local", "-s", str(specs), "--input", "@bad.json")
    assert code == 2 and "bad.json:1:11: invalid JSON" in err
    code, _, err = run("a", "--local", "-s", str(specs), "--input", "@missing.json")
    assert code == 2 and "cannot read missing.json" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a", "--local", "--input", '{"nope": 1}'], '"topic" is a required property'),
        (["b", "--local", "--input", "{}"], "no agent, pipeline or supervisor named 'b'"),
        (["a", "--local", "--detach", "--input", '{"topic": "x"}'], "--detach needs a deployment"),
        (["a", "--local", "--input", "[1]"], "inputs must be a JSON object"),
    ],
)
def test_usage_errors_exit_2_before_running(specs: Path, args: list[str], message: str) -> None:
    code, _, err = run(*args[:1], "-s", str(specs), *args[1:])
    assert code == 2 and message in err


def test_a_run_without_local_needs_a_deployment(specs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In a fresh process: this one may already be connected to a test cluster.
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "platform"), "run", "a", "--input", '{"topic": "x"}'],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1 and "no local Ray head is running (run `platform apply` first)" in done.stderr


def test_invalid_specs_exit_1_with_located_errors(specs: Path) -> None:
    specs.write_text(SPECS.replace("model: m", "model: mm"))
    code, out, err = run("a", "--local", "-s", str(specs), "--input", '{"topic": "x"}')
    assert code == 1 and "unknown Model 'mm' (did you mean 'm'?)" in err and out == ""
