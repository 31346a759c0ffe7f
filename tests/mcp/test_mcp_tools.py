"""MCP tools end to end against real MCP servers the tests start (`tests/mcp/server.py`, written
with the `mcp` SDK): over stdio (the platform starts it) and over streamable HTTP (a server
process the test starts). Specs -> validate -> `platform plan` (discovery, mcp.lock.yaml) ->
compile -> Runtime, with the scripted model."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agent_platform._cli import app
from agent_platform._compile import compile_specs
from agent_platform._runtime.engine import Runtime
from agent_platform._runtime.outcomes import Outcome, RunResult
from agent_platform._runtime.tracing import configure_tracing
from agent_platform._spec.mcp_lock import LOCK_FILE, read_lock
from agent_platform._validate import validate_paths

SERVER = Path(__file__).with_name("server.py")


def stdio_server(extra: str = "", timeout: str = "20s") -> str:
    return f"""\
apiVersion: agents.platform/v1
kind: McpServer
metadata: {{name: testsrv}}
spec:
  stdio:
    command: python
    args: [{SERVER}, stdio]
    env: {{MCP_TEST_EFFECTS: MCP_TEST_EFFECTS, MCP_TEST_SHAPE: MCP_TEST_SHAPE, MCP_TEST_STARTS: MCP_TEST_STARTS}}
  timeout: {timeout}
{extra}"""


def http_server(port: int) -> str:
    return f"""\
apiVersion: agents.platform/v1
kind: McpServer
metadata: {{name: testsrv}}
spec:
  http:
    url: http://127.0.0.1:{port}/mcp
    headers: {{X-Test-Token: {{env: MCP_TEST_TOKEN, prefix: "t-"}}}}
  timeout: 20s
"""


REST = """\
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: shape}
spec:
  description: Shapes a text.
  mcp: {server: testsrv, tool: shape}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: stall}
spec:
  description: Waits before answering.
  mcp: {server: testsrv, tool: stall}
  timeout: 1s
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, script: ../script.yaml}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: a}
spec:
  model: m
  instructions: Use the tools.
  tools: [shape, stall]
  mcp:
    - server: testsrv
      tools: [lookup, record, "ex*", die]
"""


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"thought": f"call {tool}", "action": {"action": tool, "arguments": arguments}}


FINAL = {"thought": "done", "action": {"action": "final_answer", "answer": "done"}}


class Project:
    """A spec directory with an MCP server, a Tool spec on it and an agent that attaches it."""

    def __init__(self, root: Path, server: str) -> None:
        self.root = root
        self.specs = root / "specs"
        self.specs.mkdir(exist_ok=True)
        (self.specs / "specs.yaml").write_text(server + REST)
        self.effects = root / "effects.txt"
        self.starts = root / "starts.txt"
        self.runner = CliRunner()
        self.script(FINAL)

    def plan(self, *flags: str) -> Any:
        # In a thread of its own: the command runs its own event loop, and async tests have one.
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(self.runner.invoke, app, ["plan", str(self.specs), *flags]).result()

    def compile(self) -> Any:
        report = validate_paths([self.specs])
        assert report.ok, [str(d) for d in report.diagnostics.errors]
        return compile_specs(report.specs)

    def script(self, *steps: dict[str, Any]) -> None:
        (self.root / "script.yaml").write_text(yaml.safe_dump({"responses": {"a": list(steps)}}))

    def effect_lines(self) -> list[str]:
        return self.effects.read_text().splitlines() if self.effects.exists() else []

    def start_count(self) -> int:
        return len(self.starts.read_text().splitlines()) if self.starts.exists() else 0


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MCP_TEST_EFFECTS", str(tmp_path / "effects.txt"))
    monkeypatch.setenv("MCP_TEST_STARTS", str(tmp_path / "starts.txt"))
    monkeypatch.setenv("MCP_TEST_SHAPE", "v1")
    monkeypatch.setenv("MCP_TEST_TOKEN", "secret")
    return tmp_path


@pytest.fixture
def stdio(env: Path) -> Project:
    return Project(env, stdio_server())


def observations(result: RunResult) -> list[dict[str, Any]]:
    """(tool, ok, content) of each tool step, from the run's details."""
    return [s for s in result.details["trajectory"] if s.get("action") not in (None, "final_answer")]


async def run(
    project: Project, *steps: dict[str, Any], approve_all: bool = True, tracing: Any = None
) -> RunResult:
    project.script(*steps)
    runtime = Runtime(project.compile(), approve_all=approve_all, tracing=tracing)
    try:
        return await runtime.run("a", {})
    finally:
        await runtime.aclose()


# --- validate and plan ---------------------------------------------------------------------------


def test_validate_is_offline_and_says_what_to_run(stdio: Project) -> None:
    report = validate_paths([stdio.specs])
    errors = {(d.code, d.location.line if d.location else 0): d.message for d in report.diagnostics.errors}
    assert set(errors) == {("mcp-not-pinned", 16), ("mcp-not-pinned", 23), ("mcp-not-pinned", 39)}
    assert "run `platform plan" in errors[("mcp-not-pinned", 16)]
    assert "--discover-mcp" in errors[("mcp-not-pinned", 16)]
    assert stdio.start_count() == 0
    # The whole command in a fresh interpreter: it never loads the SDK.
    probe = (
        "import sys; from agent_platform._cli import main; sys.argv=['platform','validate',sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('mcp' in sys.modules, 'mcp_types' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(stdio.specs)], capture_output=True, text=True, timeout=60
    )
    assert done.stderr.strip().endswith("False False"), done.stderr


def test_dangling_server_names_are_located_errors(stdio: Project) -> None:
    text = (stdio.specs / "specs.yaml").read_text()
    (stdio.specs / "specs.yaml").write_text(
        text.replace("mcp: {server: testsrv, tool: shape}", "mcp: {server: testsvr, tool: shape}").replace(
            "    - server: testsrv", "    - server: nothere"
        )
    )
    report = validate_paths([stdio.specs])
    found = sorted(
        (d.location.line, d.location.column, d.message)
        for d in report.diagnostics.errors
        if d.location and d.code == "unresolved-reference"
    )
    assert found == [
        (16, 17, "unknown McpServer 'testsvr' (did you mean 'testsrv'?)"),
        (39, 15, "unknown McpServer 'nothere'"),
    ]


def test_plan_without_the_flag_starts_nothing_and_says_what_to_run(stdio: Project) -> None:
    result = stdio.plan()
    assert result.exit_code == 1
    assert "is not pinned" in result.output and "--discover-mcp" in result.output
    assert stdio.start_count() == 0
    assert not (stdio.specs / LOCK_FILE).exists()


def test_plan_discovers_pins_and_maps_annotations(stdio: Project) -> None:
    result = stdio.plan("--discover-mcp")
    assert result.exit_code == 0, result.output
    assert stdio.start_count() == 1
    lock = read_lock(stdio.specs / LOCK_FILE).servers["testsrv"]
    assert sorted(lock.tools) == ["die", "explode", "lookup", "record", "shape", "stall"]
    assert lock.tools["shape"].input_schema["required"] == ["text"]
    assert lock.tools["lookup"].annotations == {"readOnlyHint": True}
    plan = stdio.compile()
    policy = {name: plan.tools[name].policy for name in plan.tools}
    assert not policy["testsrv_lookup"].side_effects and not policy["testsrv_lookup"].requires_approval
    assert policy["testsrv_record"].side_effects and policy["testsrv_record"].requires_approval
    assert policy["shape"].trust == "untrusted" and policy["testsrv_lookup"].trust == "untrusted"
    # A second plan without the flag uses the lock and starts nothing.
    again = stdio.plan()
    assert again.exit_code == 0, again.output
    assert stdio.start_count() == 1


def test_an_allow_list_entry_the_server_lacks_is_reported(stdio: Project) -> None:
    text = (stdio.specs / "specs.yaml").read_text()
    (stdio.specs / "specs.yaml").write_text(text.replace("die]", "dye]"))
    result = stdio.plan("--discover-mcp")
    assert result.exit_code == 1
    assert "Agent/a: 'dye' matches no tool of McpServer/testsrv" in result.output


# --- runs over stdio -------------------------------------------------------------------------------


async def test_a_run_over_stdio(stdio: Project) -> None:
    assert stdio.plan("--discover-mcp").exit_code == 0
    tracing = configure_tracing(memory=True)
    result = await run(
        stdio,
        call("testsrv_lookup", key="abc"),
        call("testsrv_record", entry="one"),
        call("testsrv_explode", reason="bad input"),
        call("stall", seconds=30),
        call("shape", text="hello world"),
        FINAL,
        tracing=tracing,
    )
    assert result.outcome is Outcome.COMPLETED, result.error
    steps = observations(result)
    assert [s["name"] for s in steps] == [
        "testsrv_lookup",
        "testsrv_record",
        "testsrv_explode",
        "stall",
        "shape",
    ]
    assert [s.get("ok", False) for s in steps] == [True, True, False, False, True]
    assert stdio.effect_lines() == ["one"]  # the side effect happened once
    spans = {s.name: s for s in tracing.finished_spans()}
    explode = spans["execute_tool testsrv_explode"]
    assert explode.attributes["error.type"] == "McpToolFailed"
    assert "exploded: bad input" in explode.status.description
    stall = spans["execute_tool stall"]
    assert stall.attributes["error.type"] == "ToolTimeout"
    lookup = spans["execute_tool testsrv_lookup"]
    assert lookup.attributes["agent_platform.mcp.server"] == "testsrv"
    assert lookup.attributes["agent_platform.mcp.tool"] == "lookup"
    assert lookup.attributes["mcp.method.name"] == "tools/call"
    assert lookup.attributes["network.transport"] == "pipe"
    # MCP output is untrusted: the run is tainted by it.
    assert "tool:testsrv_lookup" in result.taint
    assert stdio.start_count() == 2  # plan's discovery, then this runtime's one server
    tracing.shutdown()


async def test_one_server_per_runtime_shared_by_runs_and_stopped_with_it(stdio: Project) -> None:
    assert stdio.plan("--discover-mcp").exit_code == 0
    stdio.script(call("testsrv_lookup", key="k"), FINAL)
    runtime = Runtime(stdio.compile())
    pids = set()
    try:
        for _ in range(3):
            result = await runtime.run("a", {})
            assert result.outcome is Outcome.COMPLETED, result.error
        outcomes = await runtime.tools.call("testsrv_lookup", {"key": "x"}, run_id="r")
        pids.add(int(outcomes.output["pid"]))
    finally:
        await runtime.aclose()
    assert stdio.start_count() == 2  # plan's, and one for the three runs
    (pid,) = pids
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the server process {pid} outlived the runtime")


async def test_side_effects_wait_for_approval_by_default(stdio: Project) -> None:
    assert stdio.plan("--discover-mcp").exit_code == 0
    result = await run(stdio, call("testsrv_record", entry="x"), FINAL, approve_all=False)
    assert result.outcome is Outcome.NEEDS_APPROVAL
    assert stdio.effect_lines() == []


async def test_a_server_that_dies_is_started_again(stdio: Project) -> None:
    assert stdio.plan("--discover-mcp").exit_code == 0
    stdio.script(call("testsrv_lookup", key="k"), FINAL)
    runtime = Runtime(stdio.compile(), approve_all=True)
    try:
        first = await runtime.tools.call("testsrv_lookup", {"key": "a"}, run_id="r1")
        died = await runtime.tools.call("testsrv_die", {}, run_id="r1")
        assert died.error is not None and died.error.category == "connection", died.error
        again = await runtime.tools.call("testsrv_lookup", {"key": "b"}, run_id="r1")
        assert again.error is None, again.error
        assert again.output["pid"] != first.output["pid"]
    finally:
        await runtime.aclose()
    assert stdio.start_count() == 3  # plan, the first server, the one after it died


async def test_schema_drift_between_plan_and_run_is_refused_with_a_diff(
    stdio: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stdio.plan("--discover-mcp").exit_code == 0
    monkeypatch.setenv("MCP_TEST_SHAPE", "v2")  # the server now wants `limit` as well
    result = await run(stdio, call("shape", text="hi"), FINAL)
    (step,) = observations(result)
    assert step.get("error")
    runtime = Runtime(stdio.compile())
    try:
        refused = await runtime.tools.call("shape", {"text": "hi"}, run_id="r")
    finally:
        await runtime.aclose()
    assert refused.error is not None and refused.error.category == "unavailable"
    message = refused.error.message
    assert "no longer matches" in message and "input schema changed" in message
    assert '  +    "limit": {\n' in message and '  -    "text"\n  +    "text",\n  +    "limit"\n' in message
    assert "--update-mcp-lock" in message
    # plan shows the same diff and keeps the lock until told to update it
    kept = stdio.plan("--discover-mcp")
    assert kept.exit_code == 1 and "input schema changed" in kept.output
    assert read_lock(stdio.specs / LOCK_FILE).servers["testsrv"].tools["shape"].input_schema["required"] == [
        "text"
    ]
    updated = stdio.plan("--discover-mcp", "--update-mcp-lock")
    assert updated.exit_code == 0, updated.output
    assert read_lock(stdio.specs / LOCK_FILE).servers["testsrv"].tools["shape"].input_schema["required"] == [
        "text",
        "limit",
    ]
    result = await run(stdio, call("shape", text="hello", limit=3), FINAL)
    (step,) = observations(result)
    assert step.get("ok"), step


# --- streamable HTTP -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HttpServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, shape: str = "v1") -> None:
        env = {**os.environ, "MCP_TEST_SHAPE": shape}
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), "http", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the HTTP MCP server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def http(env: Path) -> Iterator[tuple[Project, HttpServer]]:
    server = HttpServer(env)
    server.start()
    try:
        yield Project(env, http_server(server.port)), server
    finally:
        server.stop()


async def test_a_run_over_streamable_http(
    http: tuple[Project, HttpServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, server = http
    planned = project.plan()  # an HTTP server is contacted without --discover-mcp
    assert planned.exit_code == 0, planned.output
    plan = project.compile()
    assert plan.tools["testsrv_lookup"].policy.endpoints == (f"127.0.0.1:{server.port}",)
    tracing = configure_tracing(memory=True)
    result = await run(
        project,
        call("testsrv_lookup", key="abc"),
        call("testsrv_record", entry="over http"),
        call("testsrv_explode", reason="nope"),
        call("stall", seconds=30),
        FINAL,
        tracing=tracing,
    )
    assert result.outcome is Outcome.COMPLETED, result.error
    assert [s.get("ok", False) for s in observations(result)] == [True, True, False, False]
    assert project.effect_lines() == ["over http"]
    spans = {s.name: s for s in tracing.finished_spans()}
    assert spans["execute_tool stall"].attributes["error.type"] == "ToolTimeout"
    assert spans["execute_tool testsrv_lookup"].attributes["network.transport"] == "tcp"
    assert spans["execute_tool testsrv_lookup"].attributes["server.port"] == server.port
    tracing.shutdown()
    # A header whose variable is unset: the call says which, nothing is sent.
    monkeypatch.delenv("MCP_TEST_TOKEN")
    runtime = Runtime(project.compile())
    try:
        missing = await runtime.tools.call("testsrv_lookup", {"key": "x"}, run_id="r")
    finally:
        await runtime.aclose()
    assert missing.error is not None and "MCP_TEST_TOKEN is not set" in missing.error.message


async def test_http_schema_drift_is_refused(http: tuple[Project, HttpServer]) -> None:
    project, server = http
    assert project.plan().exit_code == 0
    server.stop()
    server.start(shape="v2")
    runtime = Runtime(project.compile())
    try:
        refused = await runtime.tools.call("shape", {"text": "hi"}, run_id="r")
        lookup = await runtime.tools.call("testsrv_lookup", {"key": "hi"}, run_id="r")
    finally:
        await runtime.aclose()
    assert refused.error is not None and "input schema changed" in refused.error.message
    assert lookup.error is not None and "no longer matches" in lookup.error.message  # the whole server
    replanned = project.plan()
    assert replanned.exit_code == 1 and "--update-mcp-lock" in replanned.output


def test_a_server_that_cannot_start_is_a_clear_error(env: Path) -> None:
    project = Project(env, stdio_server())
    text = (project.specs / "specs.yaml").read_text()
    (project.specs / "specs.yaml").write_text(text.replace("command: python", "command: no-such-mcp-server"))
    result = project.plan("--discover-mcp")
    assert result.exit_code == 1
    assert "McpServer/testsrv (stdio: no-such-mcp-server" in result.output
    assert "cannot list its tools" in result.output


def test_a_damaged_lock_is_a_located_error(stdio: Project) -> None:
    (stdio.specs / LOCK_FILE).write_text(
        "version: 1\nservers:\n  testsrv: {tools: {lookup: {input_schema: 3}}}\n"
    )
    report = validate_paths([stdio.specs])
    (error,) = [d for d in report.diagnostics.errors if d.code == "mcp-lock"]
    assert error.location is not None and error.location.line == 3  # the McpServer's name
    assert "tool 'lookup': input_schema must be a mapping" in error.message
    assert "platform plan" in error.message and "--discover-mcp" in error.message


def test_apply_sees_a_lock_change_and_hands_replicas_the_server_variables(stdio: Project) -> None:
    from dataclasses import replace

    from agent_platform._deploy.reconcile import desired_state
    from agent_platform._spec.mcp_lock import write_lock

    assert stdio.plan("--discover-mcp").exit_code == 0
    report = validate_paths([stdio.specs])
    before = desired_state(report.specs, compile_specs(report.specs))
    assert {"MCP_TEST_EFFECTS", "MCP_TEST_SHAPE", "MCP_TEST_STARTS"} <= set(before["Agent/a"].credential_vars)
    lock = read_lock(stdio.specs / LOCK_FILE).servers["testsrv"]
    lookup = replace(lock.tools["lookup"], description="Look a key up, carefully.")
    write_lock(stdio.specs / LOCK_FILE, [replace(lock, tools={**lock.tools, "lookup": lookup})])
    report = validate_paths([stdio.specs])
    after = desired_state(report.specs, compile_specs(report.specs))
    assert after["McpServer/testsrv"].spec_hash != before["McpServer/testsrv"].spec_hash
    assert after["Agent/a"].effective_hash != before["Agent/a"].effective_hash
    assert after["Tool/shape"].effective_hash != before["Tool/shape"].effective_hash


async def test_retries_and_the_circuit_breaker_apply_as_to_any_tool(env: Path) -> None:
    # A timeout that covers starting the server again (the first call after a death pays for it).
    project = Project(
        env, stdio_server("  circuit_breaker: {failure_threshold: 2, reset_after: 1m}\n", "20s")
    )
    assert project.plan("--discover-mcp").exit_code == 0
    runtime = Runtime(project.compile())
    try:
        first = await runtime.tools.call("testsrv_lookup", {"key": "a"}, run_id="r")
        os.kill(int(first.output["pid"]), 9)  # the server dies between two calls
        time.sleep(0.2)
        again = await runtime.tools.call("testsrv_lookup", {"key": "b"}, run_id="r")
        # A read-only tool is retried on a connection error; the retry starts the server again.
        assert again.error is None and again.attempts == 2, (again.error, again.attempts)
        assert again.output["pid"] != first.output["pid"]
        failures = [
            await runtime.tools.call("testsrv_explode", {"reason": "x"}, run_id="r") for _ in range(3)
        ]
    finally:
        await runtime.aclose()
    assert [type(f.error).__name__ for f in failures] == ["McpToolFailed", "McpToolFailed", "CircuitOpen"]
    assert failures[0].attempts == 1  # a tool that reported an error is not retried


def test_run_told_to_update_the_lock_accepts_the_change_and_runs(
    stdio: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stdio.plan("--discover-mcp").exit_code == 0
    monkeypatch.setenv("MCP_TEST_SHAPE", "v2")
    stdio.script(call("shape", text="hello", limit=3), FINAL)
    command = ["run", "a", "--local", "-s", str(stdio.specs)]
    refused = stdio.runner.invoke(app, command)
    # The call is refused (the model is told, and answers): the step is an error.
    assert refused.exit_code == 0 and '"error": true' in refused.output, refused.output
    assert read_lock(stdio.specs / LOCK_FILE).servers["testsrv"].tools["shape"].input_schema["required"] == [
        "text"
    ]
    updated = stdio.runner.invoke(app, [*command, "--update-mcp-lock"])
    assert "McpServer/testsrv: updated 6 tools" in updated.output
    assert "input schema changed" in updated.output
    assert read_lock(stdio.specs / LOCK_FILE).servers["testsrv"].tools["shape"].input_schema["required"] == [
        "text",
        "limit",
    ]
    assert updated.exit_code == 0 and '"error": true' not in updated.output, updated.output


async def test_concurrent_first_calls_start_the_server_once(stdio: Project) -> None:
    assert stdio.plan("--discover-mcp").exit_code == 0
    runtime = Runtime(stdio.compile())
    try:
        results = await asyncio.gather(
            *(runtime.tools.call("testsrv_lookup", {"key": f"k{i}"}, run_id=f"r{i}") for i in range(20))
        )
    finally:
        await runtime.aclose()
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    assert len({r.output["pid"] for r in results}) == 1
    assert stdio.start_count() == 2  # plan's discovery, then one for the twenty calls
