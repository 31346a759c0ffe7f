"""Structured-output models: pydantic models that hold exactly what a declared JSON Schema admits.

A model's answer (an agent's final answer, an `llm` step's output, a delegate's task, an HTTP
tool's arguments) reaches the run through one of these models, and that model is the only check
before the run uses it. So the model does not translate the schema into pydantic types (every
translation found so far loses something: `required` names missing from `properties`,
`additionalProperties` schemas, `const: true` against `1`, `enum` on arrays). Instead:

- validation is the schema's own: the raw answer goes to the jsonschema-rs validator that
  `validate` compiled (formats asserted), before pydantic sees it. Strict JSON types come with it:
  `1` is not `true`, `"5"` is not `5`;
- the model then holds the answer as it is (`extra="allow"`, no declared fields), so
  `model_dump()` gives back exactly the JSON that was checked: no defaults filled in, nothing
  coerced, no property dropped or renamed;
- its JSON Schema, which the providers send to the model and `synthesize` builds answers from, is
  the declared schema with its `$ref`s written out (`StructuredSchema.for_model`).

Whether a schema can become such a model is decided by `structured_schema()`, the function
`validate` reports from: validate passes exactly when `build_output_model` succeeds.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ModelWrapValidatorHandler, model_validator
from pydantic_core import PydanticCustomError

from agent_platform._compile.plan import AgentLoopUnit, PipelineUnit, Plan
from agent_platform._diagnostics import Diagnostics
from agent_platform._validate.jsonschemas import StructuredSchema, canonical_text, structured_schema

if TYPE_CHECKING:  # `validate` imports this module: only what it runs, not what it annotates
    from pydantic import GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema


class SchemaMismatch(ValueError):
    """`build_output_model` was given a schema structured output cannot use (validate reports
    these; reaching here means the schema skipped validation)."""


class StructuredOutput(BaseModel):
    """An answer that matches its declared JSON Schema, held as the JSON it was.

    Subclasses are made by `build_output_model`, one per schema and name."""

    # Built when first used, not when defined (each subclass is one schema's model).
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    declared: ClassVar[StructuredSchema]

    @model_validator(mode="wrap")
    @classmethod
    def _matches_schema(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if isinstance(data, cls):
            return data  # checked when it was made
        problems = cls.declared.problems(data)
        if problems:
            raise PydanticCustomError(
                "json_schema_mismatch",
                "does not match its JSON Schema: {problems}",
                {"problems": "; ".join(problems)},
            )
        return handler(data)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        shown: dict[str, Any] = copy.deepcopy(cls.declared.for_model)  # callers may edit theirs
        shown["title"] = cls.__name__
        return shown


def build_output_model(schema: dict[str, Any], name: str) -> type[StructuredOutput]:
    """A model for structured output that admits exactly what `schema` does (see the module
    docstring). Raises SchemaMismatch for a schema `validate` would have refused."""
    prepared = structured_schema(schema)
    if isinstance(prepared, list):
        raise SchemaMismatch("; ".join(f"{_pointer(p.path)}: {p.message}" for p in prepared))
    model: type[StructuredOutput] = type(
        name, (StructuredOutput,), {"__module__": __name__, "declared": prepared}
    )
    return model


def _pointer(path: tuple[str | int, ...]) -> str:
    return "/".join(str(part) for part in path) or "(root)"


def _model_name(key: str) -> str:
    return "".join(part.capitalize() for part in key.replace("-", "_").replace(".", "_").split("_"))


def build_output_models(plan: Plan, diags: Diagnostics) -> dict[str, type[StructuredOutput]]:
    """Build every structured-output model of the plan (what `plan` and `run` need), one per
    distinct schema. A schema that validated always builds; one that did not is reported."""
    built: dict[str, type[StructuredOutput]] = {}
    shared: dict[str, type[StructuredOutput]] = {}
    for unit in plan.units.values():
        schemas: list[tuple[str, dict[str, Any]]] = []
        if isinstance(unit, AgentLoopUnit) and unit.output_schema is not None:
            schemas.append((f"{unit.name}.output", unit.output_schema))
        if isinstance(unit, PipelineUnit):
            schemas.extend(
                (f"{unit.name}.{s.name}.output", s.output_schema)
                for s in unit.steps
                if s.target_kind == "llm" and s.output_schema is not None
            )
        for key, schema in schemas:
            canonical = canonical_text(schema)
            try:
                if canonical not in shared:
                    shared[canonical] = build_output_model(schema, _model_name(key))
                built[key] = shared[canonical]
            except SchemaMismatch as exc:
                diags.error(
                    "output-model",
                    f"cannot build a structured-output model for {key}: {exc}",
                    unit.source,
                    unit.ref.kind,
                    unit.name,
                )
    return built
