"""A published MCP server from npm (@modelcontextprotocol/server-filesystem, the reference
filesystem server, speaking the 2025-11-25 protocol with draft-07 schemas), installed by this
module's set-up with npm and driven through specs, `platform plan --discover-mcp` and a run.
Skipped, saying why, when Node or npm is missing or npm cannot reach the registry."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agent_platform._cli import app
from agent_platform._compile import compile_specs
from agent_platform._runtime.engine import Runtime
from agent_platform._runtime.outcomes import Outcome
from agent_platform._validate import validate_paths

PACKAGE = "@modelcontextprotocol/server-filesystem@2026.8.31"


@pytest.fixture(scope="module")
def server_bin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("Node.js and npm are not installed: the published npm MCP server cannot run here")
    prefix = tmp_path_factory.mktemp("npm")
    try:
        done = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm did not install {PACKAGE} within 5 minutes (is the registry reachable?)")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        pytest.skip(f"npm cannot install {PACKAGE} (no registry access?): {' / '.join(tail)}")
    yield prefix / "node_modules" / ".bin" / "mcp-server-filesystem"


SPECS = """\
apiVersion: agents.platform/v1
kind: McpServer
metadata: {{name: files}}
spec:
  stdio:
    command: {bin}
    args: [{data}]
  timeout: 10s
---
apiVersion: agents.platform/v1
kind: Model
metadata: {{name: m}}
spec: {{provider: scripted, script: ../script.yaml}}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {{name: a}}
spec:
  model: m
  instructions: Work with the files.
  mcp:
    - server: files
      tools: [read_text_file, "list_dir*", write_file]
"""


def call(tool: str, **arguments: object) -> dict[str, object]:
    return {"thought": tool, "action": {"action": tool, "arguments": arguments}}


async def test_a_published_npm_server(
    server_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_text("hello from a file\n")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(SPECS.format(bin=server_bin, data=data))
    script = [
        call("files_read_text_file", path=str(data / "hello.txt")),
        call("files_write_file", path=str(data / "out.txt"), content="written by an agent"),
        call("files_list_directory", path=str(data)),
        {"thought": "done", "action": {"action": "final_answer", "answer": "done"}},
    ]
    (tmp_path / "script.yaml").write_text(yaml.safe_dump({"responses": {"a": script}}))

    with ThreadPoolExecutor(1) as thread:
        planned = thread.submit(CliRunner().invoke, app, ["plan", str(specs), "--discover-mcp"]).result()
    assert planned.exit_code == 0, planned.output
    report = validate_paths([specs])
    assert report.ok, [str(d) for d in report.diagnostics.errors]
    plan = compile_specs(report.specs)
    assert sorted(t.name for t in plan.units[next(iter(plan.units))].tools) == [  # type: ignore[union-attr]
        "files_list_directory",
        "files_list_directory_with_sizes",
        "files_read_text_file",
        "files_write_file",
    ]
    write = plan.tools["files_write_file"]
    assert write.policy.side_effects and write.policy.requires_approval  # destructiveHint: true
    assert write.spec.idempotency.mode == "key"  # idempotentHint: true
    assert not plan.tools["files_read_text_file"].policy.side_effects  # readOnlyHint: true

    runtime = Runtime(plan, approve_all=True)
    try:
        result = await runtime.run("a", {})
    finally:
        await runtime.aclose()
    assert result.outcome is Outcome.COMPLETED, result.error
    steps = [s for s in result.details["trajectory"] if s["action"] == "tool"]
    assert [s.get("ok", False) for s in steps] == [True, True, True], steps
    assert (data / "out.txt").read_text() == "written by an agent"
