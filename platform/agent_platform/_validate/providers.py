"""Model providers by name: every Model spec, wherever it is written (a Model document, or inline
in an agent, a guardrail, a pipeline step, a memory's compaction, a Test), names a provider the
run will find.

A provider is known when it is built in (`BUILTIN_PROVIDERS`), when the caller registers it in
code (`load_project(providers=...)`, as `Runtime(providers=...)` will), or when the Model spec
names its factory in `python:` (that reference is checked with the other plugin references). Any
other name is a located error that lists the known ones.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from agent_platform._diagnostics import Diagnostics, did_you_mean
from agent_platform._spec.kinds import BUILTIN_PROVIDERS, ModelSpec
from agent_platform._validate.documents import CheckedSpec, TypedSpec
from agent_platform._validate.plugins import PluginResolver
from agent_platform._validate.references import SpecSet

Path_ = tuple[str | int, ...]


def model_specs_in(spec: CheckedSpec) -> Iterator[tuple[Path_, ModelSpec]]:
    """Every Model spec a whole spec holds, with its path in the document (`("spec",)` for a Model
    document). A partial spec is skipped: its invalid fields are already reported."""
    if not isinstance(spec, TypedSpec):
        return
    stack: list[tuple[Path_, object]] = [(("spec",), spec.model.spec)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, ModelSpec):
            yield path, value
        elif isinstance(value, BaseModel):
            stack.extend(((*path, name), getattr(value, name)) for name in type(value).model_fields)
        elif isinstance(value, list | tuple):
            stack.extend(((*path, index), item) for index, item in enumerate(value))
        elif isinstance(value, dict):
            stack.extend(((*path, key), item) for key, item in value.items() if isinstance(key, str))


def check_providers(
    specs: SpecSet, resolver: PluginResolver, diags: Diagnostics, provided: frozenset[str] = frozenset()
) -> None:
    """An unknown provider name is an error at its `provider` field, naming the known ones; a
    factory named in `python:` must resolve (unless the caller registers that provider in code)."""
    known = sorted({*BUILTIN_PROVIDERS, *provided})
    for spec in specs.checked():
        for path, model in model_specs_in(spec):
            if model.provider in known:
                continue
            if model.python is not None:
                problem = resolver.check(model.python, expect="callable")
                if problem is not None:
                    diags.error("python-ref", problem, spec.locate(*path, "python"), spec.kind, spec.name)
                continue
            diags.error(
                "unknown-provider",
                f"unknown model provider '{model.provider}'{did_you_mean(model.provider, known)}: the "
                f"known ones are {', '.join(known)}; register a custom provider in code "
                "(Runtime(providers=...) and load_project(providers=...)) or name its factory in "
                "`python: module:function`",
                spec.locate(*path, "provider"),
                spec.kind,
                spec.name,
            )
