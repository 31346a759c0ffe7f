"""A tool call's arguments once validated, and the checks shared by every kind of tool: a
declared JSON Schema (compiled once), pydantic's errors as messages a model can act on, and the
model a declared schema gives the arguments.

Arguments are validated before any call: `Tool.validate(raw)` returns `ToolArguments` or raises
`ToolArgumentsInvalid` with the validator's messages, for the model to fix. When a Tool spec also
declares `input_schema`, the raw arguments must satisfy *both* that schema (checked with
`jsonschema_rs`) and the model derived from the function's signature.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import PydanticSerializationError

from agent_platform._tool_functions import arguments_model_name

log = logging.getLogger(__name__)

_MAX_ERROR_INPUT = 80


class ArgumentsNotSerializable(ValueError):
    """The validated arguments have no canonical JSON form (arbitrary objects, NaN, ...)."""


class ToolArguments:
    """Arguments that passed validation: the call's keyword arguments, the validated model (for
    Python tools) and, on demand, their canonical JSON form (for cache and idempotency keys)."""

    __slots__ = ("_jsonable", "args", "kwargs", "model")

    def __init__(
        self,
        kwargs: dict[str, Any],
        *,
        args: tuple[Any, ...] = (),
        model: BaseModel | None = None,
        jsonable: dict[str, Any] | None = None,
    ) -> None:
        self.kwargs = kwargs
        self.args = args
        self.model = model
        self._jsonable = jsonable

    def jsonable(self) -> dict[str, Any]:
        """The arguments as JSON data (`model_dump(mode="json")` of the validated model): enums
        become values, tuples lists, datetimes ISO strings, nested models dicts. Raises
        `ArgumentsNotSerializable` when that is impossible."""
        if self._jsonable is None:
            if self.model is None:
                raise ArgumentsNotSerializable("no arguments model")
            try:
                data = self.model.model_dump(mode="json", by_alias=True)
            except (PydanticSerializationError, ValueError, TypeError) as exc:
                raise ArgumentsNotSerializable(str(exc)) from exc
            self._jsonable = data
        return self._jsonable

    def canonical_json(self) -> str:
        """Canonical JSON text: sorted keys, no whitespace, no NaN/Infinity."""
        return canonical_json(self.jsonable())

    def __repr__(self) -> str:
        return f"ToolArguments({self.kwargs!r})"


def canonical_json(data: Any) -> str:
    try:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ArgumentsNotSerializable(str(exc)) from exc


def format_validation_errors(exc: ValidationError) -> list[str]:
    """pydantic's errors as `path: message (got value)` lines, for the model to fix its call."""
    messages = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        text = f"{loc}: {error['msg']}"
        if error["type"] not in ("missing", "extra_forbidden"):
            shown = repr(error.get("input"))
            if len(shown) > _MAX_ERROR_INPUT:
                shown = shown[: _MAX_ERROR_INPUT - 1] + "…"
            text += f" (got {shown})"
        messages.append(text)
    return messages


class SchemaCheck:
    """A declared JSON Schema, compiled once with jsonschema_rs."""

    __slots__ = ("schema", "validator")

    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema_rs

        self.schema = schema
        try:
            self.validator = jsonschema_rs.validator_for(schema)
        except Exception as exc:  # jsonschema_rs raises ValueError/ValidationError subclasses
            raise ValueError(f"invalid JSON Schema: {exc}") from exc

    def errors(self, instance: Any) -> list[str]:
        return [
            f"{'.'.join(str(p) for p in error.instance_path) or '(arguments)'}: {error.message}"
            for error in self.validator.iter_errors(instance)
        ]


def model_from_schema(name: str, schema: dict[str, Any]) -> type[BaseModel]:
    """The model a declared JSON Schema gives the arguments (what the model is shown, and the
    schema itself checks every answer: see `compile.output_models`); permissive for a schema that
    skipped validation and cannot be used (the call's own check still applies the schema)."""
    from agent_platform._compile.output_models import SchemaMismatch, build_output_model

    try:
        return build_output_model(schema, arguments_model_name(name))
    except SchemaMismatch as exc:
        log.debug("tool %s: no model for its input_schema: %s", name, exc)
    permissive: type[BaseModel] = create_model(
        arguments_model_name(name), __config__=ConfigDict(extra="allow")
    )
    return permissive
