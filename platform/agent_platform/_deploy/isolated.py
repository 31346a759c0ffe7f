"""`isolation: {mode: task}` tools: each call runs as its own Ray task with the tool's resources
(a heavy or GPU tool), wherever the cluster has them, while the calling run stays in its actor.

The task re-imports the plugin function by its `module:function` reference from the plugin
paths (nothing but the arguments crosses the wire), so the executor's policies around the call
— timeout, retries, circuit breaker, idempotency — are exactly those of an inline tool. In-process
runs (`platform run --local`) run such tools in the process, as documented."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent_platform._compile.plan import ToolBinding
from agent_platform._runtime.tools import PythonTool, Tool, ToolArguments


def _run_tool(ref: str, plugin_paths: Sequence[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Body of the Ray task: import the tool's function and call it once."""
    from agent_platform._plugin_loader import import_plugin_module

    module_name, _, attr = ref.partition(":")
    func = getattr(import_plugin_module(module_name, [Path(p) for p in plugin_paths]), attr)
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class RayTaskTool(Tool):
    """A Python tool whose calls run as Ray tasks with the resources its spec asks for."""

    def __init__(self, inner: PythonTool, binding: ToolBinding, plugin_paths: Sequence[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.description = inner.description
        self.runs_inline = False
        self.plugin_paths = tuple(plugin_paths)
        resources = binding.spec.isolation.resources
        self.options: dict[str, Any] = {"num_cpus": resources.num_cpus, "max_retries": 0}
        if resources.num_gpus:
            self.options["num_gpus"] = resources.num_gpus
        if resources.memory is not None:
            self.options["memory"] = int(resources.memory)
        custom = {k: float(v) for k, v in resources.custom.items()}
        if custom:
            self.options["resources"] = custom
        self._remote: Any = None

    def json_schema(self) -> dict[str, Any]:
        return self.inner.json_schema()

    @property
    def arguments_model(self) -> type[BaseModel]:
        return self.inner.arguments_model

    def validate(self, raw: Mapping[str, Any]) -> ToolArguments:
        return self.inner.validate(raw)

    async def invoke(self, arguments: ToolArguments) -> Any:
        import ray

        if self._remote is None:
            # Retries are the executor's (its policy, its idempotency), never Ray's.
            self._remote = ray.remote(_run_tool).options(**self.options)
        ref = self._remote.remote(
            self.inner.ref, self.plugin_paths, tuple(arguments.args), dict(arguments.kwargs)
        )
        return await ref


def isolating(plugin_paths: Sequence[str]) -> Any:
    """The `wrap_tool` hook for the Ray host: isolated Python tools become Ray task tools."""

    def wrap(binding: ToolBinding, tool: Tool) -> Tool:
        if binding.isolated and isinstance(tool, PythonTool):
            return RayTaskTool(tool, binding, plugin_paths)
        return tool

    return wrap
