"""Python functions as tools: the `@tool` mark, and the arguments model of a function's signature.

A tool function's argument schema is *derived by pydantic* from its signature: every parameter
becomes a field of a generated arguments model (`pydantic.create_model`), so nested models,
`list[Model]`, TypedDicts, dataclasses, dicts, enums, `Literal`, `Optional`, defaults and
`Annotated[..., Field(...)]` constraints all work, and the JSON Schema shown to the model is the
model's own `model_json_schema()`. Per-parameter descriptions come from the Google-style `Args:`
section of the docstring (parsed with `docstring_parser`); an explicit `Field(description=...)`
wins over the docstring.

`validate` (with `--import-plugins`) and the runtime's tool registry build the model the same way,
from this module: it sits below both layers and imports neither.

`@tool` only marks the function (it stays a plain function, callable and typed as before); the
arguments model is built when a tool registry registers it. Undecorated functions can be
registered too: the plugins in `plugins/` are plain typed functions.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

F = TypeVar("F", bound=Callable[..., Any])

# --- the decorator ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolOptions:
    name: str | None = None
    description: str | None = None
    inline: bool = False


TOOL_OPTIONS_ATTR = "__tool_options__"


@overload
def tool(func: F, /) -> F: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, inline: bool = False
) -> Callable[[F], F]: ...


def tool(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    inline: bool = False,
) -> F | Callable[[F], F]:
    """Mark a function as a tool: `@tool` or `@tool(name=..., description=..., inline=True)`.

    `name` defaults to the function's name, `description` to its docstring (without the `Args:`
    section). `inline=True` runs a *sync* function on the event loop instead of a worker thread:
    only for trivial, non-blocking, CPU-only functions (no I/O, no locks, no sleeps), which the
    tool's timeout could not interrupt. The function stays a plain function:

    >>> from agent_platform import tool
    >>> @tool(name="add", description="Add two integers.", inline=True)
    ... def add(a: int, b: int) -> int:
    ...     return a + b
    >>> add(2, 3)
    5
    >>> tool_options(add).name
    'add'

    Its arguments model, as a registry builds it, checks what a model sends:

    >>> model, _ = build_arguments_model(add, "add")
    >>> sorted(model.model_json_schema()["required"])
    ['a', 'b']
    """
    options = ToolOptions(name=name, description=description, inline=inline)

    def mark(target: F) -> F:
        if inline and is_async_callable(target):
            raise TypeError(f"@tool(inline=True) applies to sync functions; {target!r} is async")
        setattr(target, TOOL_OPTIONS_ATTR, options)
        return target

    return mark(func) if func is not None else mark


def tool_options(func: Any) -> ToolOptions:
    """What `@tool` said about `func` (defaults for an undecorated function)."""
    options = getattr(func, TOOL_OPTIONS_ATTR, None)
    return options if isinstance(options, ToolOptions) else ToolOptions()


def is_async_callable(func: Any) -> bool:
    """An `async def` function, or an object whose `__call__` is one."""
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004


def docstring_parts(func: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The description of `func` (its docstring without the `Args:` section), and each parameter's
    description from that section."""
    doc = inspect.getdoc(func)
    if not doc:
        return "", {}
    try:
        import docstring_parser

        parsed = docstring_parser.parse(doc)
    except Exception:  # a malformed docstring is not worth failing a tool over
        return doc.strip(), {}
    parts = [p for p in (parsed.short_description, parsed.long_description) if p]
    params = {
        p.arg_name: " ".join(p.description.split()) for p in parsed.params if p.arg_name and p.description
    }
    return "\n\n".join(parts), params


def _has_description(meta: Sequence[Any], default: Any) -> bool:
    if isinstance(default, FieldInfo) and default.description:
        return True
    return any(isinstance(m, FieldInfo) and m.description for m in meta)


def arguments_model_name(name: str) -> str:
    """`web-search` -> `WebSearchArguments`: the class name of a tool's arguments model."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) + "Arguments"


@dataclass(frozen=True, slots=True)
class ArgumentParam:
    """One parameter of a tool function: its field in the arguments model (renamed when the name
    would clash with pydantic's own), its name in the signature, and whether it is positional-only."""

    field: str
    name: str
    positional_only: bool


def build_arguments_model(
    func: Callable[..., Any], name: str, param_docs: Mapping[str, str] | None = None
) -> tuple[type[BaseModel], tuple[ArgumentParam, ...]]:
    """The pydantic arguments model of `func`'s signature (see the module docstring)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {func!r}: {exc}") from exc
    target = func if inspect.isfunction(func) or inspect.ismethod(func) else type(func).__call__
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as exc:
        raise TypeError(f"cannot resolve the type hints of tool '{name}': {exc}") from exc
    docs = param_docs or {}
    fields: dict[str, Any] = {}
    params: list[ArgumentParam] = []
    taken = set(signature.parameters)
    for parameter in signature.parameters.values():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(f"tool '{name}' takes *{parameter.name}: tool arguments must be named parameters")
        if parameter.name not in hints:
            raise TypeError(f"parameter '{parameter.name}' of tool '{name}' has no type hint")
        hint = hints[parameter.name]
        if typing.get_origin(hint) is Annotated:
            base, *meta = typing.get_args(hint)
        else:
            base, meta = hint, []
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        extra: list[Any] = []
        doc = docs.get(parameter.name)
        if doc and not _has_description(meta, default):
            extra.append(Field(description=doc))
        field_name = parameter.name
        if field_name.startswith("_") or field_name.startswith("model_") or hasattr(BaseModel, field_name):
            field_name = parameter.name.lstrip("_") + "_arg"
            while field_name in taken:
                field_name += "_"
            taken.add(field_name)
            meta = [*meta, Field(alias=parameter.name)]
        annotation = Annotated[(base, *extra, *meta)] if (extra or meta) else base
        fields[field_name] = (annotation, default)
        params.append(
            ArgumentParam(field_name, parameter.name, parameter.kind is inspect.Parameter.POSITIONAL_ONLY)
        )
    config = ConfigDict(extra="forbid", protected_namespaces=(), title=name)
    try:
        model: type[BaseModel] = create_model(
            arguments_model_name(name),
            __config__=config,
            __module__=getattr(func, "__module__", __name__),
            **fields,
        )
        model.model_json_schema()  # surfaces unsupported types now, not when the model asks
    except Exception as exc:
        raise TypeError(
            f"cannot derive an argument schema for tool '{name}': {type(exc).__name__}: {exc}"
        ) from exc
    return model, tuple(params)
