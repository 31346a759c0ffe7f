"""`platform plan`'s MCP discovery: connect to the MCP servers the specs use, check that the
tools they select exist, and pin their descriptions, input schemas and annotations in
`mcp.lock.yaml` next to the McpServer specs (see `_spec/mcp_lock.py`).

HTTP servers are contacted by every `plan`. A stdio server is a program on this machine, so it
is started only with `--discover-mcp`; without that flag a pinned stdio server is taken from the
lock as it is, and an unpinned one makes `plan` say what to run. A pinned tool whose schema,
description or annotations changed is reported as a diff, and the lock keeps the old one unless
`--update-mcp-lock` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent_platform._diagnostics import did_you_mean
from agent_platform._spec.kinds import AgentDocument, McpServerDocument, ToolDocument
from agent_platform._spec.mcp_lock import (
    LockError,
    PinnedServer,
    PinnedTool,
    annotations_summary,
    lock_path_for,
    read_lock,
    select_tools,
    server_drift,
    write_lock,
)
from agent_platform._validate.documents import TypedSpec
from agent_platform._validate.mcp import plan_command
from agent_platform._validate.references import SpecSet


@dataclass
class _Use:
    """What the specs select from one server."""

    server: TypedSpec
    tools: dict[str, list[str]] = field(default_factory=dict)  # tool -> where ("Tool/x")
    patterns: list[tuple[str, str]] = field(default_factory=list)  # (allow-list entry, "Agent/x")


def servers_in_use(specs: SpecSet) -> dict[str, _Use]:
    uses: dict[str, _Use] = {}

    def use(name: str) -> _Use | None:
        server = specs.get("McpServer", name)
        if server is None:
            return None
        return uses.setdefault(name, _Use(server))

    for tool in specs.of_kind("Tool"):
        assert isinstance(tool.model, ToolDocument)
        mcp = tool.model.spec.mcp
        if mcp is not None and (found := use(mcp.server)) is not None:
            found.tools.setdefault(mcp.tool, []).append(f"Tool/{tool.name}")
    for agent in specs.of_kind("Agent"):
        assert isinstance(agent.model, AgentDocument)
        for selection in agent.model.spec.mcp:
            if (found := use(selection.server)) is not None:
                found.patterns.extend((entry, f"Agent/{agent.name}") for entry in selection.tools)
    return uses


async def discover_tools(server: TypedSpec) -> dict[str, PinnedTool]:
    """Connect to (or start) the server and list its tools."""
    from agent_platform._compile.plan import McpServerBinding
    from agent_platform._runtime.tools.mcp import list_all_tools, open_client

    assert isinstance(server.model, McpServerDocument)
    spec = server.model.spec
    binding = McpServerBinding(
        server.name,
        spec,
        str(Path(server.document.file).resolve().parent),
        str(lock_path_for(server.document.file)),
        {},
    )
    async with contextlib.AsyncExitStack() as stack:
        client = open_client(binding, os.environ, stack)
        async with asyncio.timeout(spec.startup_timeout):
            await stack.enter_async_context(client)
            return await list_all_tools(client)


def _describe(server: TypedSpec) -> str:
    assert isinstance(server.model, McpServerDocument)
    spec = server.model.spec
    if spec.stdio is not None:
        return f"stdio: {' '.join([spec.stdio.command, *spec.stdio.args])}"
    assert spec.http is not None
    return f"http: {spec.http.url}"


def _error_text(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "it did not answer in time (startup_timeout)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def pin_servers(specs: SpecSet, *, discover: bool, update: bool, echo: Callable[[str], None]) -> bool:
    """Pin the servers the specs use (see the module docstring); False when something is left
    to do (what is printed says what)."""
    uses = servers_in_use(specs)
    if not uses:
        return True
    contact = {
        name: use
        for name, use in uses.items()
        if (isinstance(use.server.model, McpServerDocument) and use.server.model.spec.http is not None)
        or discover
        or update
    }
    ok = True
    for name in sorted(set(uses) - set(contact)):
        use = uses[name]
        path = lock_path_for(use.server.document.file)
        try:
            pinned = read_lock(path).servers.get(name)
        except LockError as exc:
            echo(f"McpServer/{name}: {exc}")
            pinned = None
        wanted_missing = pinned is None or any(t not in pinned.tools for t in use.tools)
        if pinned is not None and not wanted_missing:
            unmatched = select_tools([p for p, _ in use.patterns], pinned.tools)[1]
            wanted_missing = bool(unmatched)
        if wanted_missing:
            ok = False
            echo(
                f"McpServer/{name} ({_describe(use.server)}) is not pinned in {path}: run "
                f"`{plan_command(use.server)}` (it starts the server to list its tools)"
            )
        else:
            assert pinned is not None
            echo(
                f"McpServer/{name}: {len(pinned.tools)} tools pinned in {path} (not started: --discover-mcp checks them)"
            )

    async def gather() -> list[dict[str, PinnedTool] | BaseException]:
        return await asyncio.gather(
            *(discover_tools(contact[name].server) for name in sorted(contact)), return_exceptions=True
        )

    results = asyncio.run(gather()) if contact else []
    for name, outcome in zip(sorted(contact), results, strict=True):
        use = contact[name]
        path = lock_path_for(use.server.document.file)
        try:
            current = read_lock(path).servers.get(name)
        except LockError:
            current = None
        if isinstance(outcome, BaseException):
            if current is not None and not discover and not update:
                echo(
                    f"warning: McpServer/{name} ({_describe(use.server)}) cannot be reached ({_error_text(outcome)}); "
                    f"keeping the tools pinned in {path}"
                )
                continue
            ok = False
            echo(f"McpServer/{name} ({_describe(use.server)}): cannot list its tools: {_error_text(outcome)}")
            continue
        live = outcome
        wanted: list[str] = []
        for tool, users in sorted(use.tools.items()):
            if tool in live:
                wanted.append(tool)
            else:
                ok = False
                listing = ", ".join(sorted(live)) or "none"
                echo(
                    f"{', '.join(users)}: McpServer/{name} has no tool '{tool}'{did_you_mean(tool, list(live))} "
                    f"(it has: {listing})"
                )
        patterns = [p for p, _ in use.patterns]
        matched, unmatched = select_tools(patterns, live)
        for index in unmatched:
            ok = False
            pattern, where = use.patterns[index]
            echo(
                f"{where}: '{pattern}' matches no tool of McpServer/{name} (it has: {', '.join(sorted(live)) or 'none'})"
            )
        wanted.extend(t for t in matched if t not in wanted)
        assert isinstance(use.server.model, McpServerDocument)
        entry = PinnedServer(name, use.server.model.spec.transport, {t: live[t] for t in sorted(wanted)})
        drift = (
            server_drift({t: p for t, p in current.tools.items() if t in entry.tools}, live)
            if current
            else []
        )
        if drift and not update:
            ok = False
            echo(
                f"McpServer/{name} no longer matches {path}:\n"
                + "\n".join(f"  {line}" for line in drift)
                + f"\n  review the change, then accept it with `{plan_command(use.server)} --update-mcp-lock`"
            )
            continue
        if current is not None and current.tools == entry.tools:
            echo(f"McpServer/{name}: {len(entry.tools)} tools checked against {path}: unchanged")
            continue
        write_lock(path, [entry])
        verb = "updated" if drift else "pinned"
        echo(f"McpServer/{name}: {verb} {len(entry.tools)} tools in {path}")
        for line in drift:
            echo(f"  {line}")
        for tool in sorted(entry.tools):
            echo(f"  {tool}: {annotations_summary(entry.tools[tool])}")
    return ok


def pin_before_plan(paths: list[Path], options: object, *, discover: bool, update: bool) -> None:
    """`plan`'s first step: validate, pin the MCP servers when nothing but their pins is wrong,
    and exit 1 (having said what to run) when a server could not be pinned."""
    import typer

    from agent_platform._validate import ValidationOptions, validate_paths
    from agent_platform._validate.mcp import PIN_CODES

    assert isinstance(options, ValidationOptions)
    report = validate_paths(paths, options)
    if any(d.code not in PIN_CODES for d in report.diagnostics.errors):
        return  # `plan` reports them as it reports any invalid spec
    if not pin_servers(
        report.specs, discover=discover, update=update, echo=lambda t: typer.echo(t, err=True)
    ):
        raise typer.Exit(1)


# --- platform serve --mcp ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedUnit:
    """A unit as an MCP tool: its inputs schema in, its output schema out (MCP structured
    output is an object: a unit whose output is not one answers with text only)."""

    tool: str
    ref: str
    description: str
    input_schema: dict[str, object]
    output_schema: dict[str, object] | None


def _supervisor_input(routes: list[str]) -> dict[str, object]:
    return {
        "type": "object",
        "required": ["tasks"],
        "properties": {
            "tasks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["task_id", "task_type"],
                    "properties": {
                        "task_id": {"type": "string"},
                        "task_type": {"type": "string", "enum": routes},
                        "payload": {"type": "object"},
                        "priority": {"type": "integer"},
                    },
                },
            }
        },
    }


def served_units(plan: object, specs: SpecSet) -> list[ServedUnit]:
    """Every Agent, Pipeline and Supervisor of the plan, named by its name (Kind-name when an
    Agent and a Pipeline share one)."""
    from agent_platform._compile.plan import AgentLoopUnit, PipelineUnit, Plan, SupervisorUnit

    assert isinstance(plan, Plan)
    taken = [ref.name for ref in plan.units]
    served = []
    for ref in sorted(plan.units, key=str):
        unit = plan.units[ref]
        spec = specs.get(ref.kind, ref.name)
        description = spec.model.metadata.description if spec is not None else ""
        output: dict[str, object] | None = None
        if isinstance(unit, AgentLoopUnit | PipelineUnit):
            inputs: dict[str, object] = dict(unit.input_schema)
            schema = unit.output_schema
            if isinstance(schema, dict) and schema.get("type") == "object":
                output = dict(schema)
        else:
            assert isinstance(unit, SupervisorUnit)
            inputs = _supervisor_input(sorted(route.task_type for route in unit.routes))
        name = ref.name if taken.count(ref.name) == 1 else f"{ref.kind.lower()}-{ref.name}"
        served.append(ServedUnit(name, str(ref), description or unit.reason, inputs, output))
    return served


class LocalUnits:
    """Runs the served units in this process."""

    def __init__(self, runtime: object) -> None:
        self.runtime = runtime

    async def run(self, ref: str, inputs: dict[str, object]) -> object:
        from agent_platform._runtime.engine import Runtime

        assert isinstance(self.runtime, Runtime)
        return await self.runtime.run(ref, inputs)

    async def aclose(self) -> None:
        from agent_platform._runtime.engine import Runtime

        assert isinstance(self.runtime, Runtime)
        await self.runtime.aclose()


class DeployedUnits:
    """Runs the served units on their deployment: each call is a run through the replicas, as
    `platform run` makes (durable, resumed if a replica dies), with its inputs checked first."""

    def __init__(self, deployment: object) -> None:
        from agent_platform._deploy.client import Deployment
        from agent_platform._deploy.router import Router

        assert isinstance(deployment, Deployment)
        self.deployment = deployment
        self.router = Router(deployment.namespace, deployment.settings()["run_store_url"])

    async def run(self, ref: str, inputs: dict[str, object]) -> object:
        from agent_platform._deploy.host import RunRequest
        from agent_platform._runtime.inputs import InputError
        from agent_platform._runtime.services import new_run_id

        problem = await asyncio.to_thread(self.deployment.input_problem, ref, inputs)
        if problem is not None:
            raise InputError(problem)
        return await self.router.call(RunRequest(new_run_id(), ref, inputs))

    async def aclose(self) -> None:
        return None


def build_mcp_server(units: list[ServedUnit], runner: LocalUnits | DeployedUnits) -> object:
    """An MCP server (the SDK's low-level `Server`) whose tools run the units with `runner`."""
    import json

    import mcp_types as types
    from mcp.server.lowlevel import Server

    from agent_platform import __version__
    from agent_platform._runtime.inputs import InputError
    from agent_platform._runtime.outcomes import Outcome, RunResult
    from agent_platform._runtime.supervisor import TaskError

    by_name = {unit.tool: unit for unit in units}
    tools = [
        types.Tool(
            name=unit.tool,
            description=unit.description,
            input_schema=unit.input_schema,
            output_schema=unit.output_schema,
        )
        for unit in units
    ]

    def failed(text: str) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)

    async def list_tools(_ctx: object, _params: object) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(_ctx: object, params: types.CallToolRequestParams) -> types.CallToolResult:
        unit = by_name.get(params.name)
        if unit is None:
            return failed(f"no unit is served as '{params.name}' (served: {', '.join(sorted(by_name))})")
        try:
            result = await runner.run(unit.ref, dict(params.arguments or {}))
        except (InputError, TaskError) as exc:
            return failed(f"invalid inputs for {unit.ref}: {exc}")
        assert isinstance(result, RunResult)
        if result.outcome is not Outcome.COMPLETED:
            why = f": {result.error}" if result.error else ""
            return failed(f"run {result.run_id} of {unit.ref} ended {result.outcome.value}{why}")
        text = (
            result.output if isinstance(result.output, str) else json.dumps(result.output, ensure_ascii=False)
        )
        structured = (
            result.output if unit.output_schema is not None and isinstance(result.output, dict) else None
        )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], structured_content=structured
        )

    return Server(
        "agent-platform",
        version=__version__,
        instructions="Agents, pipelines and supervisors of an agent platform deployment, as tools.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def _serve(server: object, runner: LocalUnits | DeployedUnits, http: tuple[str, int] | None) -> None:
    from mcp.server.lowlevel import Server

    assert isinstance(server, Server)
    try:
        if http is None:
            from mcp.server.stdio import stdio_server

            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        else:
            import uvicorn

            host, port = http
            app = server.streamable_http_app(host=host)
            config = uvicorn.Config(app, host=host, port=port, log_level="warning")
            await uvicorn.Server(config).serve()
    finally:
        await runner.aclose()


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{text}' is not HOST:PORT")
    return host.strip("[]"), int(port)


def serve_mcp(
    plan: object,
    specs: SpecSet,
    *,
    http: tuple[str, int] | None,
    approve_all: bool,
    plugins: list[Path] | None,
    deployment: object | None = None,
) -> None:
    """Serve the plan's units as MCP tools over stdio (stdout is the protocol's: nothing else may
    print there) or streamable HTTP, until the client or a signal ends it. With a `deployment`
    (a connected `Deployment`), each call is a run on it; otherwise units run in this process."""
    from agent_platform._compile.plan import Plan
    from agent_platform._runtime.engine import Runtime

    assert isinstance(plan, Plan)
    units = served_units(plan, specs)
    if deployment is not None:  # only what is deployed is served
        from agent_platform._deploy.client import Deployment

        assert isinstance(deployment, Deployment)
        deployed = set(deployment.records())
        units = [unit for unit in units if unit.ref in deployed]

    async def main() -> None:
        runner: LocalUnits | DeployedUnits = (
            DeployedUnits(deployment)
            if deployment is not None
            else LocalUnits(Runtime(plan, plugin_paths=plugins, approve_all=approve_all))
        )
        await _serve(build_mcp_server(units, runner), runner, http)

    asyncio.run(main())
