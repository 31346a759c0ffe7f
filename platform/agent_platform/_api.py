"""The Python API's entry point: `load_project` specs into a `Project`, whose `plan` a `Runtime` runs.

    project = agent_platform.load_project("specs/")
    async with agent_platform.Runtime(project.plan, tools=[web_search]) as runtime:
        result = await runtime.run("researcher", {"topic": "idempotency keys"})

`load_project` is `platform validate` and the compile step of `platform plan`: the same checks, the same
located diagnostics. Tools given in code (`tools=`) stand in for the Tool specs of the same name,
so `load_project` does not look for the modules those specs' `python:` references name."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_platform._compile.plan import Plan
    from agent_platform._validate import ValidationReport


class InvalidProject(ValueError):
    """The specs have errors; `diagnostics` lists them, located (`file:line:col: ...`)."""

    def __init__(self, diagnostics: Sequence[str]) -> None:
        self.diagnostics = list(diagnostics)
        shown = "\n".join(self.diagnostics[:20])
        more = f"\n... and {len(self.diagnostics) - 20} more" if len(self.diagnostics) > 20 else ""
        super().__init__(f"the specs have {len(self.diagnostics)} error(s):\n{shown}{more}")


@dataclass
class Project:
    """Validated specs: their diagnostics, and (when there is no error) the compiled plan."""

    report: ValidationReport
    _plan: Plan | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def errors(self) -> list[str]:
        return [str(d) for d in self.report.diagnostics.errors]

    @property
    def warnings(self) -> list[str]:
        return [str(d) for d in self.report.diagnostics if d.severity != "error"]

    @property
    def plan(self) -> Plan:
        """The compiled plan (with every structured-output model built). Raises InvalidProject."""
        if self._plan is None:
            if not self.ok:
                raise InvalidProject(self.errors)
            from agent_platform._compile import build_output_models, compile_specs

            plan = compile_specs(self.report.specs)
            build_output_models(plan, self.report.diagnostics)
            if self.report.diagnostics.has_errors:
                raise InvalidProject(self.errors)
            self._plan = plan
        return self._plan

    def units(self) -> list[str]:
        """`Kind/name` of every agent, pipeline and supervisor."""
        return sorted(str(ref) for ref in self.plan.units)


def _tool_name(target: Any) -> str:
    """The name a tool given in code registers under (what `Runtime(tools=...)` uses)."""
    from agent_platform._runtime.tools.interface import Tool
    from agent_platform._tool_functions import tool_options

    if isinstance(target, Tool):
        return str(target.name)
    return str(tool_options(target).name or getattr(target, "__name__", ""))


def load_project(
    *paths: str | os.PathLike[str],
    plugin_paths: Iterable[str | os.PathLike[str]] | None = None,
    import_plugins: bool = False,
    tools: Iterable[Callable[..., Any]] = (),
    providers: Iterable[str] = (),
) -> Project:
    """Validate spec files and directories (`specs/` when none is given). Never raises for bad
    specs: `Project.ok` and `Project.errors` say what is wrong; `Project.plan` raises then.

    `tools`: the functions `Runtime(tools=...)` will be given. `providers`: the names of the
    custom model providers `Runtime(providers=...)` will be given (its dict does: its keys), which
    Model specs may then name.

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "agent.yaml").write_text(
    ...     "apiVersion: agents.platform/v1\\nkind: Agent\\nmetadata: {name: a}\\n"
    ...     "spec: {model: nowhere, instructions: hi}\\n"
    ... )
    >>> project = load_project(folder)
    >>> project.ok
    False
    >>> print(project.errors[0].removeprefix(str(folder)))
    /agent.yaml:4:15: Agent/a: unknown Model 'nowhere' (no Model is defined in the given files)
    >>> project.plan
    Traceback (most recent call last):
    ...
    agent_platform._api.InvalidProject: the specs have 1 error(s):
    ...
    """
    from agent_platform._validate import ValidationOptions, validate_paths

    options = ValidationOptions(
        plugin_paths=[Path(p) for p in plugin_paths] if plugin_paths is not None else None,
        import_plugins=import_plugins,
        provided_tools=frozenset(_tool_name(t) for t in tools),
        provided_providers=frozenset(providers),
    )
    return Project(validate_paths(list(paths) or ["specs"], options))
