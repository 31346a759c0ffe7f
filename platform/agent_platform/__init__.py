"""Declarative AI agent platform.

Layers follow the data: load -> validate -> compile -> deploy -> run -> observe.

The Python API (see docs/python-api.md):

    import agent_platform as ap

    project = ap.load_project("specs/")              # validate + compile; project.errors if any
    async with ap.Runtime(project.plan, tools=[...], models={...}) as runtime:
        result = await runtime.run("researcher", {"topic": "..."})
    result.outcome is ap.Outcome.COMPLETED

Importing this package must stay cheap (`platform validate` runs on every CI commit): each name
below is imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
API_VERSION = "agents.platform/v1"

# name -> module that defines it (the public face; everything else is an implementation detail).
_PUBLIC = {
    "load_project": "agent_platform.api",
    "Project": "agent_platform.api",
    "InvalidProject": "agent_platform.api",
    "Runtime": "agent_platform.runtime.engine",
    "UnknownUnit": "agent_platform.runtime.engine",
    "tool": "agent_platform.runtime.tools.registry",
    "RunResult": "agent_platform.runtime.outcomes",
    "Outcome": "agent_platform.runtime.outcomes",
    "InputError": "agent_platform.runtime.inputs",
    "FunctionModel": "agent_platform.runtime.models.function_model",
    "ModelCall": "agent_platform.runtime.models.function_model",
    "ModelError": "agent_platform.runtime.models.base",
    "configure_tracing": "agent_platform.runtime.tracing",
}

__all__ = ["API_VERSION", "__version__", *_PUBLIC]

if TYPE_CHECKING:
    from agent_platform.api import InvalidProject as InvalidProject
    from agent_platform.api import Project as Project
    from agent_platform.api import load_project as load_project
    from agent_platform.runtime.engine import Runtime as Runtime
    from agent_platform.runtime.engine import UnknownUnit as UnknownUnit
    from agent_platform.runtime.inputs import InputError as InputError
    from agent_platform.runtime.models.base import ModelError as ModelError
    from agent_platform.runtime.models.function_model import FunctionModel as FunctionModel
    from agent_platform.runtime.models.function_model import ModelCall as ModelCall
    from agent_platform.runtime.outcomes import Outcome as Outcome
    from agent_platform.runtime.outcomes import RunResult as RunResult
    from agent_platform.runtime.tools.registry import tool as tool
    from agent_platform.runtime.tracing import configure_tracing as configure_tracing


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'agent_platform' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
