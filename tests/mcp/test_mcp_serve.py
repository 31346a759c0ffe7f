"""`platform serve --mcp`: the specs' units as MCP tools, driven by the `mcp` SDK's own client
over stdio (as Claude Desktop or an IDE would start it) and over streamable HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

PLATFORM = str(Path(sys.executable).with_name("platform"))

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, script: ../script.yaml}
---
apiVersion: agents.platform/v1
kind: Agent
metadata:
  name: greeter
  description: Greets someone by name, formally or not.
spec:
  model: m
  instructions: Greet {{ inputs.name }}.
  inputs:
    type: object
    required: [name]
    properties:
      name: {type: string, minLength: 1}
      formal: {type: boolean, default: false}
  output:
    type: object
    required: [greeting, words]
    properties:
      greeting: {type: string}
      words: {type: integer}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: echo}
spec:
  model: m
  instructions: Say something.
"""

SCRIPT = {
    "responses": {
        "greeter": [
            {
                "thought": "Greet.",
                "action": {"action": "final_answer", "answer": {"greeting": "Hello, Ada!", "words": 2}},
            }
        ],
        "echo": [{"thought": "Say.", "action": {"action": "final_answer", "answer": "something"}}],
    }
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "units.yaml").write_text(SPECS)
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(SCRIPT))
    return tmp_path


async def _exercise(client: Client) -> None:
    listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert sorted(listed) == ["echo", "greeter"]
    greeter = listed["greeter"]
    assert greeter.description == "Greets someone by name, formally or not."
    assert greeter.input_schema["required"] == ["name"]
    assert greeter.output_schema is not None and greeter.output_schema["required"] == ["greeting", "words"]
    assert listed["echo"].output_schema is None  # its answer is text: no structured output

    result = await client.call_tool("greeter", {"name": "Ada"})
    assert not result.is_error, result.content
    assert result.structured_content == {"greeting": "Hello, Ada!", "words": 2}

    echoed = await client.call_tool("echo", {})
    assert not echoed.is_error and echoed.content[0].text == "something"  # type: ignore[union-attr]

    refused = await client.call_tool("greeter", {"name": ""})
    assert refused.is_error
    assert "invalid inputs for Agent/greeter" in refused.content[0].text  # type: ignore[union-attr]


async def test_serve_over_stdio(project: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PLATFORM_STATE_DIR": str(project / "state")}
    params = StdioServerParameters(
        command=PLATFORM, args=["serve", "--mcp", "--stdio", "--local", "-s", "specs"], env=env, cwd=project
    )
    async with Client(stdio_client(params, errlog=sys.__stderr__), cache=None) as client:
        await _exercise(client)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_serve_over_streamable_http(project: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PLATFORM_STATE_DIR": str(project / "state")}
    server = subprocess.Popen(
        [PLATFORM, "serve", "--mcp", "--http", f"127.0.0.1:{port}", "--local", "-s", "specs"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        async with Client(f"http://127.0.0.1:{port}/mcp", cache=None) as client:
            await _exercise(client)
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_serve_refuses_what_it_cannot_do(project: Path) -> None:
    wide = {**os.environ, "COLUMNS": "300", "PLATFORM_STATE_DIR": str(project / "state")}
    done = subprocess.run(
        [PLATFORM, "serve", "--mcp", "--stdio", "-s", "specs"],
        cwd=project,
        env=wide,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Deployed units are served from their deployment: with none running, a clear message.
    assert done.returncode == 1 and "no local Ray head is running" in done.stderr, done.stderr
    done = subprocess.run(
        [PLATFORM, "serve", "--mcp", "--local", "-s", "specs"],
        cwd=project,
        env=wide,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--stdio" in done.stderr


@pytest.mark.slow
async def test_serve_deployed_units_over_stdio(project: Path) -> None:
    """Without --local, each tool call is a run on the deployment the specs were applied to (a
    real embedded Ray head here, under an empty HOME)."""
    (project / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(project / "home"), PLATFORM_STATE_DIR=str(project / "state"))
    specs = (project / "specs" / "units.yaml").read_text()
    (project / "specs" / "units.yaml").write_text(
        specs.replace("  model: m\n", "  model: m\n  runtime: {resources: {num_cpus: 0.1}}\n")
    )
    applied = subprocess.run(
        [PLATFORM, "apply", "specs"], cwd=project, env=env, capture_output=True, text=True, timeout=240
    )
    try:
        assert applied.returncode == 0, applied.stderr
        params = StdioServerParameters(
            command=PLATFORM, args=["serve", "--mcp", "--stdio", "-s", "specs"], env=env, cwd=project
        )
        async with Client(stdio_client(params, errlog=sys.__stderr__), cache=None) as client:
            await _exercise(client)
        runs = subprocess.run(
            [PLATFORM, "runs", "-o", "json"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert {r["unit"] for r in __import__("json").loads(runs.stdout)} == {"Agent/greeter", "Agent/echo"}
    finally:
        subprocess.run([PLATFORM, "down"], cwd=project, env=env, capture_output=True, timeout=240)
