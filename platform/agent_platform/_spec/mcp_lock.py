"""`mcp.lock.yaml`: what `platform plan` learnt from each MCP server, pinned next to the specs.

The lock holds, per McpServer spec, the tools the specs use: each tool's description, input
schema and annotations as the server listed them. `validate` reads it (a file, never the
server) to check that every tool a spec selects exists; the compiler builds each MCP tool's
binding from it; at run time a server whose tools no longer match it is refused with the diff.
Pinning the description too is deliberate: a server that changes what a tool says it does
changes what the model is told, and that is a change someone should review.

Annotations map onto the platform's own fields (`effective_tool_spec`). MCP's defaults are the
cautious ones (a tool that says nothing may write, destroy and reach the open world), so:

- `readOnlyHint: true` -> no side effects: no approval by default, retried like any read;
- otherwise side effects, and so approval by default and no retry, unless `idempotentHint: true`,
  which lets the platform retry it under a durable idempotency key (`idempotency.mode: key`);
- `destructiveHint` is kept for `plan` and approval requests to show.

A Tool spec that sets `side_effects`, `requires_approval` or `idempotency` itself keeps them.

Nothing here imports the `mcp` package: `validate` stays offline and light.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_platform._spec.common import IdempotencyPolicy
from agent_platform._spec.kinds import McpServerSpec, ToolSpec

LOCK_FILE = "mcp.lock.yaml"
LOCK_VERSION = 1
ANNOTATION_KEYS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
_MODEL_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")
MAX_TOOL_NAME = 64  # what the Messages and OpenAI APIs accept


class LockError(ValueError):
    """The lock file cannot be read or does not have the lock's shape."""


@dataclass(frozen=True)
class PinnedTool:
    """One tool as a server listed it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, bool] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"description": self.description, "input_schema": self.input_schema}
        if self.annotations:
            data["annotations"] = dict(sorted(self.annotations.items()))
        return data

    @classmethod
    def from_json(cls, name: str, data: Any) -> PinnedTool:
        if not isinstance(data, Mapping):
            raise LockError(f"tool '{name}' must be a mapping")
        description = data.get("description", "")
        schema = data.get("input_schema")
        annotations = data.get("annotations", {})
        if not isinstance(description, str):
            raise LockError(f"tool '{name}': description must be a string")
        if not isinstance(schema, dict):
            raise LockError(f"tool '{name}': input_schema must be a mapping")
        if not isinstance(annotations, Mapping) or not all(
            k in ANNOTATION_KEYS and isinstance(v, bool) for k, v in annotations.items()
        ):
            raise LockError(f"tool '{name}': annotations must map {', '.join(ANNOTATION_KEYS)} to booleans")
        return cls(name, description, schema, dict(annotations))

    @property
    def read_only(self) -> bool:
        return self.annotations.get("readOnlyHint", False)

    @property
    def destructive(self) -> bool:
        return not self.read_only and self.annotations.get("destructiveHint", True)

    @property
    def idempotent(self) -> bool:
        return self.annotations.get("idempotentHint", False)


@dataclass(frozen=True)
class PinnedServer:
    name: str
    transport: str
    tools: dict[str, PinnedTool]

    def to_json(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "tools": {name: self.tools[name].to_json() for name in sorted(self.tools)},
        }


@dataclass(frozen=True)
class McpLock:
    path: Path
    servers: dict[str, PinnedServer]
    exists: bool = True


def lock_path_for(spec_file: str | os.PathLike[str]) -> Path:
    """The lock of the specs in `spec_file`'s directory."""
    return Path(spec_file).resolve().parent / LOCK_FILE


_cache: dict[Path, tuple[tuple[int, int], McpLock]] = {}


def read_lock(path: Path) -> McpLock:
    """The lock at `path` (an empty one when there is none). Raises `LockError`."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return McpLock(path, {}, exists=False)
    except OSError as exc:
        raise LockError(f"cannot read {path}: {exc}") from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    from agent_platform._load import load_text

    try:
        text = path.read_bytes()
    except OSError as exc:
        raise LockError(f"cannot read {path}: {exc}") from None
    loaded = load_text(text, str(path))
    if loaded.diagnostics.has_errors:
        first = loaded.diagnostics.errors[0]
        raise LockError(f"{first.location}: {first.message}")
    if len(loaded.documents) != 1:
        raise LockError(f"{path}: expected one YAML document")
    lock = McpLock(path, _servers_of(loaded.documents[0].data))
    _cache[path] = (stamp, lock)
    return lock


def _servers_of(data: Any) -> dict[str, PinnedServer]:
    if not isinstance(data, Mapping) or data.get("version") != LOCK_VERSION:
        raise LockError(f"not an MCP lock of version {LOCK_VERSION} (write it again with `platform plan`)")
    servers = data.get("servers") or {}
    if not isinstance(servers, Mapping):
        raise LockError("servers must be a mapping")
    found: dict[str, PinnedServer] = {}
    for name, entry in servers.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("tools", {}), Mapping):
            raise LockError(f"server '{name}' must be a mapping with a 'tools' mapping")
        tools = {tool: PinnedTool.from_json(tool, spec) for tool, spec in (entry.get("tools") or {}).items()}
        found[name] = PinnedServer(name, str(entry.get("transport", "")), tools)
    return found


def write_lock(path: Path, servers: Iterable[PinnedServer]) -> None:
    """Write `servers` into the lock at `path`, keeping the other servers it pins."""
    import yaml

    try:
        current = read_lock(path).servers
    except LockError:
        current = {}
    merged = dict(current)
    for server in servers:
        merged[server.name] = server
    data = {
        "version": LOCK_VERSION,
        "servers": {name: merged[name].to_json() for name in sorted(merged)},
    }
    header = (
        "# Written by `platform plan`: the MCP tools these specs use, as their servers listed them.\n"
        "# A run refuses a server whose tools no longer match. Review changes like code.\n"
    )
    text = header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    _cache.pop(path, None)


# --- selection ----------------------------------------------------------------------------------


def is_pattern(entry: str) -> bool:
    return any(c in entry for c in "*?[")


def select_tools(patterns: Sequence[str], available: Iterable[str]) -> tuple[list[str], list[int]]:
    """The tools an allow-list selects from `available` (in its order, sorted within a pattern),
    and the indexes of entries that match none."""
    names = sorted(available)
    chosen: list[str] = []
    unmatched: list[int] = []
    for index, entry in enumerate(patterns):
        matched = (
            [n for n in names if fnmatch.fnmatchcase(n, entry)]
            if is_pattern(entry)
            else ([entry] if entry in names else [])
        )
        if not matched:
            unmatched.append(index)
        chosen.extend(n for n in matched if n not in chosen)
    return chosen, unmatched


def model_tool_name(server: str, tool: str) -> str:
    """The name the model sees for a tool of a server attached to an agent."""
    return _MODEL_TOOL_NAME.sub("_", f"{server}_{tool}")


# --- the platform's view of a pinned tool ------------------------------------------------------


def effective_tool_spec(spec: ToolSpec, pinned: PinnedTool | None) -> ToolSpec:
    """A Tool spec with `mcp:` completed from the lock: the pinned input schema (unless the spec
    declares one), and the annotations' side effects and idempotency for the fields the spec
    leaves unset (approval follows side effects, as for any tool)."""
    if pinned is None:
        return spec
    update: dict[str, Any] = {}
    if spec.input_schema is None:
        update["input_schema"] = pinned.input_schema
    explicit = spec.model_fields_set
    side_effects = spec.side_effects if "side_effects" in explicit else not pinned.read_only
    update["side_effects"] = side_effects
    if (
        side_effects
        and pinned.idempotent
        and "idempotency" not in explicit
        and (spec.retry is None or "retry" not in explicit)
    ):
        update["idempotency"] = IdempotencyPolicy(mode="key")
    return spec.model_copy(update=update)


def attached_tool_spec(server: McpServerSpec, pinned: PinnedTool, server_name: str) -> ToolSpec:
    """The Tool spec of a tool an Agent attaches with its server (`Agent.spec.mcp`)."""
    data: dict[str, Any] = {
        "description": pinned.description or f"The '{pinned.name}' tool of the MCP server '{server_name}'.",
        "mcp": {"server": server_name, "tool": pinned.name},
        "timeout": server.timeout,
        "trust": server.trust,
        "max_output": server.max_output.model_dump(),
        "guardrails": list(server.guardrails),
    }
    if server.circuit_breaker is not None:
        data["circuit_breaker"] = server.circuit_breaker.model_dump()
    base = ToolSpec.model_validate(data)
    return effective_tool_spec(base, pinned)


def annotations_summary(pinned: PinnedTool) -> str:
    """What the annotations say, in the platform's words (for `plan`)."""
    if pinned.read_only:
        return "read-only"
    parts = ["side effects"]
    if pinned.destructive:
        parts.append("destructive")
    if pinned.idempotent:
        parts.append("idempotent")
    if not pinned.annotations:
        parts.append("(no annotations: MCP's cautious defaults)")
    return ", ".join(parts)


# --- drift ---------------------------------------------------------------------------------------


def _schema_lines(schema: Any) -> list[str]:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def tool_drift(pinned: PinnedTool, live: PinnedTool | None) -> list[str]:
    """How the live tool differs from the pinned one (empty: it does not)."""
    if live is None:
        return [f"tool '{pinned.name}' is gone from the server"]
    lines: list[str] = []
    if live.input_schema != pinned.input_schema:
        lines.append(f"tool '{pinned.name}': input schema changed:")
        diff = difflib.unified_diff(
            _schema_lines(pinned.input_schema),
            _schema_lines(live.input_schema),
            "pinned",
            "server",
            lineterm="",
            n=1,
        )
        lines.extend("  " + line for line in diff)
    if live.description != pinned.description:
        lines.append(
            f"tool '{pinned.name}': description changed: {pinned.description!r} -> {live.description!r}"
        )
    if live.annotations != pinned.annotations:
        lines.append(
            f"tool '{pinned.name}': annotations changed: {pinned.annotations or '{}'} -> {live.annotations or '{}'}"
        )
    return lines


def server_drift(pinned: Mapping[str, PinnedTool], live: Mapping[str, PinnedTool]) -> list[str]:
    lines: list[str] = []
    for name in sorted(pinned):
        lines.extend(tool_drift(pinned[name], live.get(name)))
    return lines
