"""MCP servers and the tools specs select from them, checked against `mcp.lock.yaml`.

`validate` never contacts a server: it reads the lock `platform plan` wrote next to the specs.
A tool no lock pins cannot run (the runtime refuses to guess its schema), so an unpinned server,
a tool it does not pin or an allow-list entry that matches no pinned tool is an error that says
what to run. Their codes are in `PIN_CODES`: `plan` pins the servers before it reports them.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from agent_platform._diagnostics import Diagnostics, did_you_mean
from agent_platform._spec.kinds import (
    AgentDocument,
    GuardrailDocument,
    McpServerDocument,
    ToolDocument,
)
from agent_platform._spec.mcp_lock import (
    LOCK_FILE,
    MAX_TOOL_NAME,
    LockError,
    McpLock,
    lock_path_for,
    model_tool_name,
    read_lock,
    select_tools,
)
from agent_platform._validate.documents import TypedSpec
from agent_platform._validate.references import SpecSet

# Problems `platform plan` fixes by pinning the servers (they stay errors for every other command).
PIN_CODES = frozenset({"mcp-not-pinned", "mcp-tool-not-pinned"})


def plan_command(server: TypedSpec) -> str:
    """What pins a server: `platform plan DIR`, with --discover-mcp for a local (stdio) server."""
    assert isinstance(server.model, McpServerDocument)
    where = shlex.quote(str(Path(server.document.file).parent) or ".")
    flag = " --discover-mcp" if server.model.spec.stdio is not None else ""
    return f"platform plan {where}{flag}"


def _lock_of(server: TypedSpec, diags: Diagnostics, reported: set[Path]) -> McpLock | None:
    path = lock_path_for(server.document.file)
    try:
        return read_lock(path)
    except LockError as exc:
        if path not in reported:
            reported.add(path)
            diags.error(
                "mcp-lock",
                f"{LOCK_FILE} cannot be used: {exc}; write it again with `{plan_command(server)}`",
                server.locate("metadata", "name"),
                server.kind,
                server.name,
            )
        return None


def _is_directory(path: Path) -> bool:
    """Whether `path` is a directory; a name the OS cannot look up (too long) names none."""
    try:
        return path.is_dir()
    except OSError:
        return False


def check_mcp(specs: SpecSet, diags: Diagnostics) -> None:
    reported: set[Path] = set()
    locks: dict[str, McpLock | None] = {}
    for server in specs.of_kind("McpServer"):
        assert isinstance(server.model, McpServerDocument)
        spec = server.model.spec
        locks[server.name] = _lock_of(server, diags, reported)
        for index, name in enumerate(spec.guardrails):
            found = specs.get("Guardrail", name)
            if found is not None:
                assert isinstance(found.model, GuardrailDocument)
                if "tool_output" not in found.model.spec.applies_to:
                    diags.error(
                        "guardrail-stage",
                        f"guardrail '{name}' does not apply to tool_output, so it cannot guard a tool's output",
                        server.locate("spec", "guardrails", index),
                        server.kind,
                        server.name,
                    )
        if spec.stdio is not None and spec.stdio.cwd is not None:
            cwd = Path(server.document.file).parent / spec.stdio.cwd
            if not _is_directory(cwd):
                diags.error(
                    "mcp-cwd",
                    f"the working directory {cwd} does not exist",
                    server.locate("spec", "stdio", "cwd"),
                    server.kind,
                    server.name,
                )

    def pinned(spec: TypedSpec, server_name: str, at: tuple[str | int, ...]) -> dict[str, object] | None:
        """The tools the lock pins for `server_name`, or None after reporting that it pins none."""
        server = specs.get("McpServer", server_name)
        if server is None or server_name not in locks:
            return None  # a dangling name is reported as a reference
        lock = locks[server_name]
        if lock is None:
            return None
        entry = lock.servers.get(server_name)
        if entry is None:
            beside = Path(server.document.file).name
            where = (
                f"there is no {LOCK_FILE} next to {beside}"
                if not lock.exists
                else f"the {LOCK_FILE} next to {beside} does not pin it"
            )
            diags.error(
                "mcp-not-pinned",
                f"the tools of MCP server '{server_name}' are not pinned ({where}): run "
                f"`{plan_command(server)}` to list them and pin their schemas",
                spec.locate(*at),
                spec.kind,
                spec.name,
            )
            return None
        return dict(entry.tools)

    for tool in specs.of_kind("Tool"):
        assert isinstance(tool.model, ToolDocument)
        mcp = tool.model.spec.mcp
        if mcp is None:
            continue
        tools = pinned(tool, mcp.server, ("spec", "mcp", "server"))
        if tools is not None and mcp.tool not in tools:
            owner = specs.get("McpServer", mcp.server)
            assert owner is not None
            listing = ", ".join(sorted(tools)) or "none"
            diags.error(
                "mcp-tool-not-pinned",
                f"'{mcp.tool}' is not among the tools pinned for MCP server '{mcp.server}' ({listing})"
                f"{did_you_mean(mcp.tool, list(tools))}; if the server has it, run `{plan_command(owner)}`",
                tool.locate("spec", "mcp", "tool"),
                tool.kind,
                tool.name,
            )

    tool_specs = set(specs.names("Tool"))
    for agent in specs.of_kind("Agent"):
        assert isinstance(agent.model, AgentDocument)
        taken: dict[str, str] = {name: f"Tool '{name}'" for name in agent.model.spec.tools}
        for index, selection in enumerate(agent.model.spec.mcp):
            base = ("spec", "mcp", index)
            tools = pinned(agent, selection.server, (*base, "server"))
            if tools is None:
                continue
            owner = specs.get("McpServer", selection.server)
            assert owner is not None
            chosen, unmatched = select_tools(selection.tools, tools)
            for entry in unmatched:
                listing = ", ".join(sorted(tools)) or "none"
                diags.error(
                    "mcp-tool-not-pinned",
                    f"'{selection.tools[entry]}' matches no tool pinned for MCP server '{selection.server}' "
                    f"({listing}); if the server has it, run `{plan_command(owner)}`",
                    agent.locate(*base, "tools", entry),
                    agent.kind,
                    agent.name,
                )
            for name in chosen:
                shown = model_tool_name(selection.server, name)
                clash = taken.get(shown) or (f"Tool '{shown}'" if shown in tool_specs else None)
                if clash is not None:
                    diags.error(
                        "mcp-tool-name",
                        f"the MCP tool '{name}' of '{selection.server}' is offered as '{shown}', which is "
                        f"already the name of {clash}",
                        agent.locate(*base, "server"),
                        agent.kind,
                        agent.name,
                    )
                elif len(shown) > MAX_TOOL_NAME:
                    diags.error(
                        "mcp-tool-name",
                        f"the MCP tool '{name}' of '{selection.server}' would be offered as '{shown}', longer "
                        f"than the {MAX_TOOL_NAME} characters model APIs accept: declare it as a Tool spec "
                        "with a shorter name instead",
                        agent.locate(*base, "server"),
                        agent.kind,
                        agent.name,
                    )
                taken[shown] = f"tool '{name}' of MCP server '{selection.server}'"
