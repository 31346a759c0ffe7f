"""A Python function as a tool (sync or async), its arguments validated with the model its
signature gives (`agent_platform._tool_functions`).

Sync functions run on the tool threads (`threads.run_sync_tool`) so they never block the event loop.
A thread hop costs more than a trivial function, so a function marked `@tool(inline=True)` runs
directly on the event loop instead: only for trivial, non-blocking, CPU-only functions (no I/O, no
locks, no sleeps). An inline function cannot be interrupted by the tool's timeout. Async functions
always run on the loop.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from agent_platform._runtime.tools.arguments import SchemaCheck, ToolArguments, format_validation_errors
from agent_platform._runtime.tools.errors import ToolArgumentsInvalid
from agent_platform._runtime.tools.interface import Tool
from agent_platform._runtime.tools.threads import run_sync_tool
from agent_platform._spec.kinds import ToolSpec
from agent_platform._tool_functions import (
    build_arguments_model,
    docstring_parts,
    is_async_callable,
    tool_options,
)

TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what the Messages / OpenAI APIs accept


class PythonTool(Tool):
    """A Python function as a tool (sync or async)."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        inline: bool | None = None,
        input_schema: dict[str, Any] | None = None,
        ref: str | None = None,
    ) -> None:
        options = tool_options(func)
        self.func = func
        self.name = name or options.name or getattr(func, "__name__", "") or ""
        if not TOOL_NAME_PATTERN.match(self.name):
            raise ValueError(f"invalid tool name {self.name!r}: use 1-64 letters, digits, '_' or '-'")
        doc_description, param_docs = docstring_parts(func)
        self.description = description or options.description or doc_description
        self.is_async = is_async_callable(func)
        self.inline = options.inline if inline is None else inline
        if self.inline and self.is_async:
            raise TypeError(f"tool '{self.name}': inline applies to sync functions only")
        self.runs_inline = self.inline
        self.ref = ref or f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', repr(func))}"
        self._model, self._params = build_arguments_model(func, self.name, param_docs)
        self._validate_python = self._model.__pydantic_validator__.validate_python
        self._positional = any(p.positional_only for p in self._params)
        self._plain_names = all(p.field == p.name for p in self._params)
        self._schema: dict[str, Any] | None = None
        self._spec_check: SchemaCheck | None = None
        if input_schema is not None:
            self._spec_check = SchemaCheck(input_schema)

    @property
    def arguments_model(self) -> type[BaseModel]:
        return self._model

    def json_schema(self) -> dict[str, Any]:
        if self._spec_check is not None:
            return self._spec_check.schema
        if self._schema is None:
            self._schema = self._model.model_json_schema()
        return self._schema

    def derived_json_schema(self) -> dict[str, Any]:
        """The schema derived from the signature (even when a spec declares its own)."""
        return self._model.model_json_schema()

    def with_spec(self, name: str, spec: ToolSpec) -> PythonTool:
        clone = copy.copy(self)
        clone.name = name
        clone.description = spec.description
        clone._schema = None
        clone._spec_check = SchemaCheck(spec.input_schema) if spec.input_schema is not None else None
        return clone

    def validate(self, raw: Mapping[str, Any]) -> ToolArguments:
        if type(raw) is not dict and not isinstance(raw, Mapping):
            raise ToolArgumentsInvalid(self.name, [f"arguments must be an object, got {type(raw).__name__}"])
        if self._spec_check is not None:
            return self._validate_with_spec(raw, self._spec_check)
        try:
            model = self._validate_python(raw)  # = model_validate, unwrapped (looked up once)
        except ValidationError as exc:
            raise ToolArgumentsInvalid(self.name, format_validation_errors(exc)) from None
        return self._arguments(model)

    def _validate_with_spec(self, raw: Mapping[str, Any], spec_check: SchemaCheck) -> ToolArguments:
        """Both the declared `input_schema` and the signature's model, every error reported."""
        errors: list[str] = []
        deferred = False
        try:
            errors.extend(spec_check.errors(raw))
        except ValueError:  # Python values jsonschema_rs cannot read (enums, datetimes...):
            deferred = True  # checked below on the validated arguments' JSON form instead
        try:
            model = self._validate_python(raw)
        except ValidationError as exc:
            errors.extend(format_validation_errors(exc))
            raise ToolArgumentsInvalid(self.name, errors) from None
        if deferred:
            try:
                errors.extend(spec_check.errors(model.model_dump(mode="json", by_alias=True)))
            except (ValueError, PydanticSerializationError) as exc:
                errors.append(f"(arguments): cannot be checked against input_schema: {exc}")
        if errors:
            raise ToolArgumentsInvalid(self.name, errors)
        return self._arguments(model)

    def _arguments(self, model: BaseModel) -> ToolArguments:
        values = model.__dict__
        if self._positional:
            args = tuple(values[p.field] for p in self._params if p.positional_only)
            kwargs = {p.name: values[p.field] for p in self._params if not p.positional_only}
            return ToolArguments(kwargs, args=args, model=model)
        if self._plain_names:
            return ToolArguments(dict(values), model=model)
        return ToolArguments({p.name: values[p.field] for p in self._params}, model=model)

    async def invoke(self, arguments: ToolArguments) -> Any:
        if self.is_async:
            result = await self.func(*arguments.args, **arguments.kwargs)
        elif self.inline:
            result = self.func(*arguments.args, **arguments.kwargs)
        else:
            result = await run_sync_tool(self.func, *arguments.args, **arguments.kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def __repr__(self) -> str:
        return f"PythonTool({self.name!r}, {self.ref})"
