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

A whole run, with a Python function in place of the model (the test suite runs this):

>>> import asyncio, json, pathlib, tempfile
>>> import agent_platform as ap
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "echo.yaml").write_text('''
... apiVersion: agents.platform/v1
... kind: Model
... metadata: {name: m}
... spec: {provider: scripted, on_script_exhausted: synthesize}
... ---
... apiVersion: agents.platform/v1
... kind: Agent
... metadata: {name: echo}
... spec:
...   model: m
...   instructions: Repeat what you are told.
...   inputs: {type: object, properties: {text: {type: string}}, required: [text]}
...   output: {type: object, properties: {said: {type: string}}, required: [said]}
... ''')
>>> project = ap.load_project(folder)
>>> project.units()
['Agent/echo']
>>> def echo(call: ap.ModelCall) -> dict:
...     said = json.loads(call.last_text.removeprefix("Task inputs:"))["text"]
...     return {"action": {"action": "final_answer", "answer": {"said": said}}}
>>> async def main() -> ap.RunResult:
...     async with ap.Runtime(project.plan, models={"m": ap.FunctionModel(echo)}) as runtime:
...         return await runtime.run("echo", {"text": "hello"})
>>> result = asyncio.run(main())
>>> result.outcome is ap.Outcome.COMPLETED, result.output
(True, {'said': 'hello'})
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
API_VERSION = "agents.platform/v1"

# name -> module that defines it. This is the public face: every other module of the package is
# private (its name starts with `_`) and may change in any release. Besides these names, the public
# surface is the `platform` command (also `python -m agent_platform`) and the program
# `python -m agent_platform.local_llm`.
_PUBLIC = {
    "load_project": "agent_platform._api",
    "Project": "agent_platform._api",
    "InvalidProject": "agent_platform._api",
    "Runtime": "agent_platform._runtime.engine",
    "UnknownUnit": "agent_platform._runtime.engine",
    "tool": "agent_platform._tool_functions",
    "RunResult": "agent_platform._runtime.outcomes",
    "Outcome": "agent_platform._runtime.outcomes",
    "RunStream": "agent_platform._runtime.streaming",
    "RunEvent": "agent_platform._runtime.streaming",
    "InputError": "agent_platform._runtime.inputs",
    "FunctionModel": "agent_platform._runtime.models.function_model",
    "ModelCall": "agent_platform._runtime.models.function_model",
    "ModelError": "agent_platform._runtime.models.base",
    # For custom providers (`Runtime(providers=...)`): the interface, and what it takes and gives.
    "ModelProvider": "agent_platform._runtime.models.base",
    "ModelRequest": "agent_platform._runtime.models.base",
    "ModelResult": "agent_platform._runtime.models.base",
    "Usage": "agent_platform._runtime.models.base",
    "configure_tracing": "agent_platform._runtime.tracing",
    # For guardrails written in Python (`type: python`, and `injection_classifier` with `function:`).
    "GuardContext": "agent_platform._runtime.guardrails.base",
    "ClassifierInput": "agent_platform._runtime.guardrails.classifier",
    "InjectionVerdict": "agent_platform._runtime.guardrails.classifier",
}

__all__ = ["API_VERSION", "__version__", *_PUBLIC]

if TYPE_CHECKING:
    from agent_platform._api import InvalidProject as InvalidProject
    from agent_platform._api import Project as Project
    from agent_platform._api import load_project as load_project
    from agent_platform._runtime.engine import Runtime as Runtime
    from agent_platform._runtime.engine import UnknownUnit as UnknownUnit
    from agent_platform._runtime.guardrails.base import GuardContext as GuardContext
    from agent_platform._runtime.guardrails.classifier import ClassifierInput as ClassifierInput
    from agent_platform._runtime.guardrails.classifier import InjectionVerdict as InjectionVerdict
    from agent_platform._runtime.inputs import InputError as InputError
    from agent_platform._runtime.models.base import ModelError as ModelError
    from agent_platform._runtime.models.base import ModelProvider as ModelProvider
    from agent_platform._runtime.models.base import ModelRequest as ModelRequest
    from agent_platform._runtime.models.base import ModelResult as ModelResult
    from agent_platform._runtime.models.base import Usage as Usage
    from agent_platform._runtime.models.function_model import FunctionModel as FunctionModel
    from agent_platform._runtime.models.function_model import ModelCall as ModelCall
    from agent_platform._runtime.outcomes import Outcome as Outcome
    from agent_platform._runtime.outcomes import RunResult as RunResult
    from agent_platform._runtime.streaming import RunEvent as RunEvent
    from agent_platform._runtime.streaming import RunStream as RunStream
    from agent_platform._runtime.tracing import configure_tracing as configure_tracing
    from agent_platform._tool_functions import tool as tool


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'agent_platform' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
