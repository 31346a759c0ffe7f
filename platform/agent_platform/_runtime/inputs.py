"""Run inputs: validated against the unit's JSON Schema, with the schema's defaults applied first
(templates may use an optional input that has a default)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from agent_platform._validate.jsonschemas import apply_defaults as apply_defaults


class InputError(ValueError):
    """The inputs of a run do not match the unit's schema; nothing has run. `problems` are
    (JSON pointer into the inputs, message) pairs, for callers that report them located (the HTTP
    API's 422)."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


_VALIDATORS: dict[int, tuple[dict[str, Any], Any]] = {}


def _validator(schema: dict[str, Any]) -> Any:
    """A compiled validator per schema object (units' schemas live as long as their plan)."""
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        cached = _VALIDATORS[id(schema)] = (schema, jsonschema_rs.validator_for(schema))
    return cached[1]


def check_inputs(schema: dict[str, Any], value: Any, *, unit: str) -> dict[str, Any]:
    """Defaults applied, then validated; every problem is reported, each with its JSON path."""
    if not isinstance(value, dict):
        raise InputError(f"{unit}: inputs must be a JSON object, got {type(value).__name__}")
    filled = apply_defaults(schema, value)
    validator = _validator(schema)
    if validator.is_valid(filled):
        return filled  # type: ignore[no-any-return]
    located = [
        ("".join(f"/{p}" for p in error.instance_path), error.message)
        for error in validator.iter_errors(filled)
    ]
    if located:
        problems = [f"{pointer[1:] or '(root)'}: {message}" for pointer, message in located]
        raise InputError(f"{unit}: invalid inputs: " + "; ".join(problems), located)
    return filled  # type: ignore[no-any-return]
