"""`platform trace RUN_ID`: a run's span tree read back from the span file, as text or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.test_cli_run import SPECS
from typer.testing import CliRunner

from agent_platform._cli import app


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_local_runs_trace_is_printed_from_its_span_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs.yaml").write_text(SPECS)
    spans = tmp_path / "spans.jsonl"
    code, out, _ = cli(
        "run", "a", "--local", "-s", "specs.yaml", "-i", '{"topic": "ray"}', "--trace-file", str(spans)
    )
    assert code == 0
    result = json.loads(out)
    code, out, err = cli("trace", result["run_id"], "--trace-file", str(spans))
    assert code == 0, err
    assert f"trace {result['trace_id']}" in out and "invoke_agent a" in out and "chat m (scripted)" in out
    code, out, _ = cli("trace", result["run_id"], "--trace-file", str(spans), "-o", "json")
    listed = json.loads(out)
    assert code == 0 and {s["trace_id"] for s in listed} == {result["trace_id"]} and len(listed) >= 3
    code, _, err = cli("trace", result["run_id"], "--trace-file", str(tmp_path / "none.jsonl"))
    assert code == 1 and "no spans of run" in err
