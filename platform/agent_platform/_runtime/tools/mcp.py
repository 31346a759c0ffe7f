"""MCP tools: tools served by an MCP server, called through the official `mcp` SDK.

One `McpServerPool` per runtime (per replica) holds one `McpConnection` per McpServer spec. A
connection starts on the first call that needs it, is shared by every run of the runtime, is
started again when the server dies or the session breaks, and stops with the runtime
(`Runtime.aclose` -> `ToolRegistry.aclose`). Each start lists the server's tools and compares
them with what `mcp.lock.yaml` pins: a server whose tools drifted is refused, with the diff, until
the lock is written again (`platform plan --update-mcp-lock`).

The SDK's client keeps anyio task groups that must be entered and left by one task, so each
connection has an owner task that enters the client, reports it ready and waits to be told to
stop; calls from any run's task go through the client's session, which multiplexes them.

`McpTool` is an ordinary `Tool`: the executor applies its timeout (cancelling a call sends the
server `notifications/cancelled`), retries, circuit breaker, idempotency and approval exactly as
for python and http tools. What the SDK raises becomes a typed `ToolError`: a closed connection
is a `connection` error (retried per the policy, and the next attempt starts the server again),
a JSON-RPC error its category, a result with `isError` a failure of the tool that is not retried.

The `mcp` package is imported only when a connection starts: `validate` never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import BaseModel

from agent_platform._runtime.tools.arguments import (
    ArgumentsNotSerializable,
    SchemaCheck,
    ToolArguments,
    canonical_json,
    model_from_schema,
)
from agent_platform._runtime.tools.errors import ToolArgumentsInvalid, ToolError, ToolUnavailable
from agent_platform._runtime.tools.interface import Tool
from agent_platform._spec.mcp_lock import PinnedTool, server_drift

if TYPE_CHECKING:
    from mcp import Client

    from agent_platform._compile.plan import McpServerBinding, ToolBinding
    from agent_platform._spec.kinds import ToolSpec

log = logging.getLogger(__name__)

# Span attributes (OpenTelemetry's MCP conventions, and the platform's names for its own specs).
MCP_METHOD_NAME = "mcp.method.name"
MCP_PROTOCOL_VERSION = "mcp.protocol.version"
NETWORK_TRANSPORT = "network.transport"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
AP_MCP_SERVER = "agent_platform.mcp.server"
AP_MCP_TOOL = "agent_platform.mcp.tool"

# A server that fails to start is not started again before this long (doubling up to the max):
# every call in the meantime fails fast instead of each spawning a process.
RESTART_BACKOFF_S = 0.5
RESTART_BACKOFF_MAX_S = 30.0
_MAX_ERROR_TEXT = 2000


class McpError(ToolError):
    """An MCP call that failed in the protocol or the transport; `category` is its retry
    category (None: not retried)."""

    def __init__(self, tool: str, message: str, category: str | None) -> None:
        super().__init__(tool, message)
        self.category = category


class McpToolFailed(ToolError):
    """The server ran the tool and it reported an error (`isError`): not retried, the model is
    shown the error."""

    def __init__(self, tool: str, text: str) -> None:
        super().__init__(tool, f"the tool reported an error: {text}")


class McpServerRefused(ToolUnavailable):
    """The server cannot be used: it does not start, or its tools drifted from the lock."""


def _python_command(command: str) -> str:
    # `python` is the interpreter running the platform, so a server shipped in `plugins/` runs
    # with the packages the platform runs with, whatever PATH holds.
    return sys.executable if command in ("python", "python3") else command


def _server_stderr() -> TextIO:
    """Where a stdio server's stderr goes: the platform's own, which may have been replaced by
    an object without a file descriptor (a test runner's capture), then the original one."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    global _devnull
    if _devnull is None:
        _devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - kept for the process
    return _devnull


_devnull: TextIO | None = None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"


def pinned_from_listing(tools: Any) -> dict[str, PinnedTool]:
    """`tools/list` results (`mcp_types.Tool`s) as the lock pins them."""
    found: dict[str, PinnedTool] = {}
    for tool in tools:
        annotations: dict[str, bool] = {}
        if tool.annotations is not None:
            data = tool.annotations.model_dump(by_alias=True, exclude_none=True)
            annotations = {k: v for k, v in data.items() if isinstance(v, bool)}
        found[tool.name] = PinnedTool(tool.name, tool.description or "", dict(tool.input_schema), annotations)
    return found


async def list_all_tools(client: Client) -> dict[str, PinnedTool]:
    """Every tool the server lists, page by page (bounded: a server paging forever is refused)."""
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(100):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return pinned_from_listing(tools)
    raise RuntimeError("the server's tool list did not end after 100 pages")


def describe_server(binding: McpServerBinding) -> str:
    spec = binding.spec
    if spec.stdio is not None:
        return f"stdio: {' '.join([spec.stdio.command, *spec.stdio.args])}"
    assert spec.http is not None
    return f"http: {spec.http.url}"


def open_client(
    binding: McpServerBinding, environ: Mapping[str, str], stack: contextlib.AsyncExitStack
) -> Client:
    """An SDK client for the server (not entered): the stdio process or HTTP session it needs is
    opened on `stack`. Raises `ValueError` naming a missing environment variable."""
    from mcp import Client
    from mcp_types import Implementation

    from agent_platform import __version__

    spec = binding.spec
    info = Implementation(name="agent-platform", version=__version__)
    if spec.stdio is not None:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        env = {}
        for name, source in spec.stdio.env.items():
            value = environ.get(source)
            if value is None:
                raise ValueError(
                    f"environment variable {source} is not set (McpServer '{binding.name}' passes it as {name})"
                )
            env[name] = value
        cwd = Path(binding.base_dir) / (spec.stdio.cwd or ".")
        params = StdioServerParameters(
            command=_python_command(spec.stdio.command), args=list(spec.stdio.args), env=env, cwd=cwd
        )
        return Client(stdio_client(params, errlog=_server_stderr()), client_info=info, cache=None)
    assert spec.http is not None
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers: dict[str, str] = {}
    for header, from_env in spec.http.headers.items():
        found = environ.get(from_env.env)
        if found is None:
            raise ValueError(
                f"environment variable {from_env.env} is not set (McpServer '{binding.name}' sends it as {header})"
            )
        headers[header] = from_env.prefix + found
    timeout = httpx2.Timeout(spec.http.connect_timeout, read=spec.http.read_timeout)
    http_client = create_mcp_http_client(headers=headers, timeout=timeout)
    stack.push_async_callback(http_client.aclose)
    return Client(
        streamable_http_client(spec.http.url, http_client=http_client), client_info=info, cache=None
    )


class McpConnection:
    """One MCP server for one runtime: started on first use, shared, restarted, refused on drift
    (see the module docstring)."""

    def __init__(self, binding: McpServerBinding, environ: Mapping[str, str]) -> None:
        self.binding = binding
        self.name = binding.name
        self._environ = environ
        self._ready: asyncio.Future[Client] | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._closed = False
        self.starts = 0  # how many times the server was started (tests and `plan` read it)

    async def client(self, tool: str) -> Client:
        """The live client, starting (or restarting) the server first if needed."""
        if self._closed:
            raise McpServerRefused(tool, f"the MCP server '{self.name}' was stopped with the runtime")
        ready = self._ready
        if ready is None or (ready.done() and (ready.cancelled() or ready.exception() is not None)):
            if ready is not None and not ready.cancelled() and time.monotonic() < self._retry_at:
                error = ready.exception()
                assert isinstance(error, ToolError)
                raise self._retarget(error, tool)
            ready = self._start()
        try:
            # Shielded: a caller that times out stops waiting, the start goes on for the next one.
            return await asyncio.shield(ready)
        except ToolError as exc:
            raise self._retarget(exc, tool) from None

    @staticmethod
    def _retarget(error: ToolError, tool: str) -> ToolError:
        if error.tool == tool:
            return error
        if isinstance(error, McpServerRefused):
            return McpServerRefused(tool, error.message)
        if isinstance(error, McpError):
            return McpError(tool, error.message, error.category)
        return ToolUnavailable(tool, error.message)

    def _start(self) -> asyncio.Future[Client]:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Client] = loop.create_future()
        # Nobody may be waiting when it fails (a caller timed out): the exception is still retrieved.
        ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._ready = ready
        self._stop = asyncio.Event()
        self.starts += 1
        self._owner = loop.create_task(self._own(ready, self._stop), name=f"mcp-server-{self.name}")
        return ready

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """Enter the client, list and check the tools, then hold the session until told to stop
        or until it breaks (a dead process ends the client's task group, which ends this)."""
        spec = self.binding.spec
        started = False
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    client = open_client(self.binding, self._environ, stack)
                except ValueError as exc:
                    raise McpServerRefused(self.name, str(exc)) from None
                try:
                    async with asyncio.timeout(spec.startup_timeout):
                        await stack.enter_async_context(client)
                        live = await list_all_tools(client)
                except TimeoutError:
                    raise McpError(
                        self.name,
                        f"the MCP server '{self.name}' ({describe_server(self.binding)}) did not start and "
                        f"list its tools within {spec.startup_timeout:g}s",
                        "timeout",
                    ) from None
                drift = server_drift(self.binding.pinned, live)
                if drift:
                    raise McpServerRefused(
                        self.name,
                        f"refused: the MCP server '{self.name}' no longer matches {self.binding.lock_path}:\n"
                        + "\n".join(drift)
                        + "\nReview the change, then pin it with `platform plan --discover-mcp --update-mcp-lock`",
                    )
                self._failures = 0
                started = True
                ready.set_result(client)
                await stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as exc:
            if not started:
                error = _single(exc)
                self._failed(
                    ready,
                    error if isinstance(error, ToolError) else _start_error(self.name, self.binding, error),
                )
            elif not stop.is_set():
                log.warning(
                    "MCP server %s: the session ended (%s); it is started again at the next call",
                    self.name,
                    type(exc).__name__,
                )
        finally:
            if started and self._ready is ready:
                self._ready = None  # the next call starts the server again

    def _failed(self, ready: asyncio.Future[Client], error: ToolError) -> None:
        self._failures += 1
        self._retry_at = time.monotonic() + min(
            RESTART_BACKOFF_S * 2 ** (self._failures - 1), RESTART_BACKOFF_MAX_S
        )
        log.warning("MCP server %s: %s", self.name, error.message)
        if not ready.done():
            ready.set_exception(error)

    def session_broken(self, client: Client) -> None:
        """A call found the session closed: stop it, so the next call starts the server again."""
        ready = self._ready
        if ready is not None and ready.done() and not ready.cancelled() and ready.exception() is None:
            if ready.result() is client:
                self._ready = None
                if self._stop is not None:
                    self._stop.set()

    async def aclose(self) -> None:
        self._closed = True
        if self._stop is not None:
            self._stop.set()
        owner = self._owner
        if owner is not None and not owner.done():
            try:
                await asyncio.wait_for(asyncio.shield(owner), timeout=10.0)
            except TimeoutError:
                owner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await owner
            except Exception:
                log.debug("MCP server %s: error while stopping", self.name, exc_info=True)


def _single(exc: BaseException) -> BaseException:
    """The exception an anyio task group wrapped in a group of one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _start_error(name: str, binding: McpServerBinding, exc: BaseException) -> ToolError:
    from mcp.shared.exceptions import MCPError

    where = describe_server(binding)
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        return McpServerRefused(name, f"cannot start the MCP server '{name}' ({where}): {exc}")
    if isinstance(exc, MCPError):
        return McpError(
            name, f"the MCP server '{name}' ({where}) failed to start: {exc.message}", "connection"
        )
    text = str(exc) or type(exc).__name__
    return McpError(name, f"cannot connect to the MCP server '{name}' ({where}): {_clip(text)}", "connection")


class McpServerPool:
    """The MCP servers of one runtime (see the module docstring)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ
        self._connections: dict[str, McpConnection] = {}

    def connection(self, binding: McpServerBinding) -> McpConnection:
        found = self._connections.get(binding.name)
        if found is None:
            found = self._connections[binding.name] = McpConnection(binding, self._environ)
        return found

    async def aclose(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(c.aclose() for c in connections), return_exceptions=True)


def _content_text(blocks: Any) -> str | None:
    parts: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            if text is not None:
                parts.append(text)
            else:
                parts.append(f"[resource {resource.uri} ({resource.mime_type or 'binary'}) not shown]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} ({block.mime_type}), {len(block.data) * 3 // 4} bytes not shown]")
    return "\n".join(parts) if parts else None


class McpTool(Tool):
    """One tool of an MCP server, as a Tool spec (or an Agent's attached server) declares it:
    its name and description as the model sees them, the input schema pinned in the lock."""

    def __init__(self, binding: ToolBinding, pool: McpServerPool) -> None:
        server = binding.mcp_server
        spec = binding.spec
        assert server is not None and spec.mcp is not None
        self.name = binding.name
        self.description = spec.description
        self.remote_name = spec.mcp.tool
        self.server = server
        self._pool = pool
        self._pinned = server.pinned.get(self.remote_name)
        self._schema = spec.input_schema if spec.input_schema is not None else {"type": "object"}
        self._check = SchemaCheck(self._schema)
        self._model: type[BaseModel] | None = None

    def with_spec(self, name: str, spec: ToolSpec) -> Tool:
        return self

    @property
    def arguments_model(self) -> type[BaseModel]:
        if self._model is None:
            self._model = model_from_schema(self.name, self._schema)
        return self._model

    def json_schema(self) -> dict[str, Any]:
        return self._schema

    def _not_pinned(self) -> McpServerRefused:
        return McpServerRefused(
            self.name,
            f"the tool '{self.remote_name}' of MCP server '{self.server.name}' is not pinned in "
            f"{self.server.lock_path}: run `platform plan` (with --discover-mcp for a stdio server)",
        )

    def validate(self, raw: Mapping[str, Any]) -> ToolArguments:
        if self._pinned is None:
            raise self._not_pinned()
        if not isinstance(raw, Mapping):
            raise ToolArgumentsInvalid(self.name, [f"arguments must be an object, got {type(raw).__name__}"])
        data = dict(raw)
        try:
            errors = self._check.errors(data)
            canonical_json(data)
        except (ValueError, ArgumentsNotSerializable) as exc:
            raise ToolArgumentsInvalid(self.name, [f"arguments must be JSON data: {exc}"]) from None
        if errors:
            raise ToolArgumentsInvalid(self.name, errors)
        return ToolArguments(data, jsonable=data)

    async def invoke(self, arguments: ToolArguments) -> Any:
        import anyio
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, INVALID_PARAMS, METHOD_NOT_FOUND, REQUEST_TIMEOUT
        from pydantic import ValidationError

        broken = (
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
            anyio.EndOfStream,
            ConnectionError,
            EOFError,
        )

        connection = self._pool.connection(self.server)
        client = await connection.client(self.name)
        self._trace(client)
        try:
            result = await client.call_tool(self.remote_name, arguments.kwargs)
        except MCPError as exc:
            message = f"MCP error {exc.code} from '{self.server.name}': {_clip(exc.message)}"
            if exc.code == CONNECTION_CLOSED:
                connection.session_broken(client)
                raise McpError(self.name, message, "connection") from None
            if exc.code == INVALID_PARAMS:
                raise ToolArgumentsInvalid(self.name, [message]) from None
            if exc.code == METHOD_NOT_FOUND:
                raise ToolUnavailable(self.name, message) from None
            raise McpError(
                self.name, message, "timeout" if exc.code == REQUEST_TIMEOUT else "server_error"
            ) from None
        except ValidationError as exc:
            raise McpError(
                self.name,
                f"the MCP server '{self.server.name}' answered outside the protocol: {_clip(str(exc))}",
                None,
            ) from None
        except broken as exc:
            connection.session_broken(client)
            raise McpError(
                self.name,
                f"the connection to MCP server '{self.server.name}' broke: {type(exc).__name__}",
                "connection",
            ) from None
        if result.is_error:
            raise McpToolFailed(self.name, _clip(_content_text(result.content) or "(no message)"))
        if result.structured_content is not None:
            return result.structured_content
        return _content_text(result.content)

    def _trace(self, client: Client) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        if not span.is_recording():
            return
        attributes: dict[str, Any] = {
            MCP_METHOD_NAME: "tools/call",
            AP_MCP_SERVER: self.server.name,
            AP_MCP_TOOL: self.remote_name,
        }
        with contextlib.suppress(Exception):
            attributes[MCP_PROTOCOL_VERSION] = client.protocol_version
        http = self.server.spec.http
        if http is None:
            attributes[NETWORK_TRANSPORT] = "pipe"
        else:
            from urllib.parse import urlsplit

            parts = urlsplit(http.url)
            attributes[NETWORK_TRANSPORT] = "tcp"
            if parts.hostname:
                attributes[SERVER_ADDRESS] = parts.hostname
            attributes[SERVER_PORT] = parts.port or (443 if parts.scheme == "https" else 80)
        span.set_attributes(attributes)

    def __repr__(self) -> str:
        return f"McpTool({self.name!r}, {self.server.name}:{self.remote_name})"
