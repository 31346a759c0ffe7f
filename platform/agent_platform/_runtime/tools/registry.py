"""Tools by name, for one runtime: functions registered in code, and the tools a compiled plan
binds (a Python function a `python:` reference names, an `http:` tool, an MCP server's tool).

The kinds of tool live beside it: `python_tool.py`, `http_tool.py`, `mcp.py`; what they share is
`interface.py` (the `Tool` interface) and `arguments.py` (validated arguments).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_platform._plugin_loader import import_plugin_module
from agent_platform._runtime.tools.errors import ToolUnavailable
from agent_platform._runtime.tools.http_tool import HttpTool
from agent_platform._runtime.tools.interface import Tool, UnavailableTool
from agent_platform._runtime.tools.python_tool import PythonTool
from agent_platform._spec.kinds import ToolSpec

if TYPE_CHECKING:
    import httpx

    from agent_platform._compile.plan import ToolBinding
    from agent_platform._runtime.tools.mcp import McpServerPool

log = logging.getLogger(__name__)


def default_plugin_paths() -> list[Path]:
    """The working directory, then `$PLATFORM_PLUGIN_PATH` (as `validate` looks)."""
    from agent_platform._validate.plugins import default_plugin_paths as paths

    return paths()


class ToolRegistry:
    """Tools by name. Not global: each runtime owns one.

    `plugin_paths` are the directories `python: module:attr` references are imported from
    (default: the working directory, then `$PLATFORM_PLUGIN_PATH`). They are put at the front of
    `sys.path` once, in order and without duplicates, under a lock, and left there (plugins may
    import lazily inside their functions).
    """

    _path_lock = threading.Lock()

    def __init__(
        self,
        plugin_paths: Sequence[str | os.PathLike[str]] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        roots = default_plugin_paths() if plugin_paths is None else [Path(p) for p in plugin_paths]
        self.plugin_paths = [p.resolve() for p in roots]
        self._environ = environ
        self._tools: dict[str, Tool] = {}
        self._http_client = http_client
        self._own_http_client: httpx.AsyncClient | None = None
        # The MCP servers this registry's tools are served by, started on first use (one per runtime).
        self._mcp_pool: McpServerPool | None = None

    # registration

    def register(
        self,
        target: Callable[..., Any] | Tool,
        *,
        name: str | None = None,
        description: str | None = None,
        inline: bool | None = None,
        replace: bool = False,
    ) -> Tool:
        """Register a function (decorated with `@tool` or not) or a ready `Tool`."""
        built = (
            target
            if isinstance(target, Tool)
            else PythonTool(target, name=name, description=description, inline=inline)
        )
        if built.name in self._tools and not replace:
            raise ValueError(f"a tool named '{built.name}' is already registered")
        self._tools[built.name] = built
        return built

    def get(self, name: str) -> Tool:
        found = self._tools.get(name)
        if found is None:
            from agent_platform._diagnostics import did_you_mean

            raise ToolUnavailable(name, f"no tool named '{name}'{did_you_mean(name, list(self._tools))}")
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def names(self) -> list[str]:
        return sorted(self._tools)

    # from specs

    def import_object(self, ref: str) -> Any:
        """Import `module:attr` from the plugin paths."""
        module_name, _, attr = ref.partition(":")
        if not module_name or not attr:
            raise ImportError(f"'{ref}' is not a 'module:attribute' reference")
        module = import_plugin_module(module_name, self.plugin_paths)
        try:
            return getattr(module, attr)
        except AttributeError:
            raise ImportError(f"module '{module_name}' has no attribute '{attr}'") from None

    def from_spec(self, name: str, spec: ToolSpec) -> Tool:
        """Build (not register) the tool a spec declares. Raises on import or schema errors."""
        if spec.python is not None:
            target = self.import_object(spec.python)
            if isinstance(target, Tool):
                return target.with_spec(name, spec)
            if not callable(target):
                raise TypeError(f"'{spec.python}' is not callable")
            return PythonTool(
                target,
                name=name,
                description=spec.description,
                input_schema=spec.input_schema,
                ref=spec.python,
            )
        if spec.http is not None:
            return HttpTool(
                name,
                spec.description,
                spec.http,
                input_schema=spec.input_schema,
                timeout=spec.timeout,
                environ=self._environ,
                client=self._shared_http_client,
            )
        if spec.mcp is not None:
            raise ValueError(
                f"an mcp tool is called through its McpServer '{spec.mcp.server}': load it from a compiled "
                "plan (load_binding), which carries the server and the lock"
            )
        raise ValueError(f"tool '{name}' has no implementation")  # validation prevents this

    def load_binding(self, binding: ToolBinding) -> Tool:
        """The tool for a compiled binding: a tool already registered under the binding's name
        (with the spec's description and input_schema applied), else the one the spec declares,
        registered now. Failures become an `UnavailableTool` that reports the reason per call."""
        existing = self._tools.get(binding.name)
        built: Tool
        try:
            if existing is not None:
                return existing.with_spec(binding.name, binding.spec)
            if binding.mcp_server is not None:
                from agent_platform._runtime.tools.mcp import McpServerPool, McpTool

                if self._mcp_pool is None:
                    self._mcp_pool = McpServerPool(self._environ)
                built = McpTool(binding, self._mcp_pool)
            else:
                built = self.from_spec(binding.name, binding.spec)
        except Exception as exc:
            what = binding.spec.python or "its declaration"
            reason = f"cannot load {what}: {type(exc).__name__}: {exc}" + (
                "; plugin modules are imported from the plugin paths: pass --plugin-path DIR or add DIR "
                "to $PLATFORM_PLUGIN_PATH"
                if isinstance(exc, ImportError)
                else ""
            )
            log.warning("tool %s unavailable: %s", binding.name, reason)
            built = UnavailableTool(binding.name, binding.spec.description, reason, binding.spec.input_schema)
        self._tools[binding.name] = built
        return built

    def _shared_http_client(self) -> httpx.AsyncClient:
        if self._http_client is not None:
            return self._http_client
        if self._own_http_client is None:
            import httpx

            self._own_http_client = httpx.AsyncClient()
        return self._own_http_client

    async def aclose(self) -> None:
        closers: list[Awaitable[None]] = [t.aclose() for t in self._tools.values()]
        for closer in closers:
            await closer
        if self._mcp_pool is not None:
            await self._mcp_pool.aclose()
            self._mcp_pool = None
        if self._own_http_client is not None:
            await self._own_http_client.aclose()
            self._own_http_client = None
