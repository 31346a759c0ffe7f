"""The `output_schema` guardrail: a tool output or the final answer must match a JSON Schema
(Draft 2020-12, validated by jsonschema_rs). The value checked is `context.data` when given, else
`context.content` parsed as JSON (text that is not JSON is checked as a string). The verdict
carries the first few validation errors with their JSON paths."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema_rs

from agent_platform._runtime.guardrails.base import (
    GuardContext,
    Guardrail,
    GuardrailConfigError,
    Stage,
    Verdict,
)
from agent_platform._spec.kinds import OutputSchemaGuardrail

MAX_REPORTED_ERRORS = 3


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    return jsonschema_rs.Draft202012Validator(json.loads(schema_json))


def _path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


class OutputSchemaGuard(Guardrail):
    type = "output_schema"

    __slots__ = ("_validator", "schema")

    def __init__(
        self,
        name: str,
        schema: dict[str, Any],
        *,
        stages: tuple[Stage, ...] = ("output",),
        action: str = "block",
    ) -> None:
        super().__init__(name, stages, action)
        self.schema = schema
        try:
            self._validator = _validator(json.dumps(schema, sort_keys=True))
        except (ValueError, TypeError, jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError) as exc:
            raise GuardrailConfigError(f"guardrail {name!r}: invalid JSON Schema: {exc}") from None

    @classmethod
    def from_spec(cls, name: str, spec: OutputSchemaGuardrail) -> OutputSchemaGuard:
        return cls(name, dict(spec.json_schema), stages=tuple(spec.applies_to), action=spec.action)

    def check(self, context: GuardContext) -> Verdict:
        value = context.value()
        errors = []
        for error in self._validator.iter_errors(value):
            errors.append(f"{_path(error.instance_path)}: {error.message}")
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
        if not errors:
            return self._allow
        what = "tool output" if context.stage == "tool_output" else "output"
        return self.violation(f"{what} does not match the schema: {'; '.join(errors)}", errors=len(errors))
