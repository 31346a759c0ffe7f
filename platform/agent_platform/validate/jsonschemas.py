"""JSON Schema checks: validity (Draft 2020-12), support for structured output, and whether a
producer's output schema agrees with the consumer's input schema."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

# Keywords the structured-output model builder (json-schema-to-pydantic) turns into pydantic
# fields. Anything else in a schema that must become a pydantic model is reported by `validate`
# instead of failing at run time; tests/test_jsonschemas.py keeps this list honest.
STRUCTURED_OUTPUT_KEYWORDS = frozenset(
    {
        "$schema", "$id", "$comment", "$defs", "definitions", "$ref",
        "type", "properties", "required", "additionalProperties", "items",
        "enum", "const", "anyOf", "oneOf", "allOf",
        "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "minLength", "maxLength", "pattern", "format",
        "minItems", "maxItems", "uniqueItems",
    }
)  # fmt: skip
_DRAFT_2020_12 = frozenset(
    {"https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2020-12/schema#"}
)
_SUBSCHEMA_MAP_KEYWORDS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LIST_KEYWORDS = ("anyOf", "oneOf", "allOf")


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    path: tuple[str | int, ...]  # inside the schema
    message: str
    at_key: bool = False  # point at the key rather than its value


_ALL_KEYWORDS = STRUCTURED_OUTPUT_KEYWORDS | frozenset(
    [
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$vocabulary",
        "not",
        "if",
        "then",
        "else",
        "dependentSchemas",
        "prefixItems",
        "contains",
        "patternProperties",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "maxContains",
        "minContains",
        "maxProperties",
        "minProperties",
        "dependentRequired",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
        "dependencies",
    ]
)


def _structural_problems(schema: dict[str, Any]) -> list[SchemaProblem]:
    """One walk: text split off by an unquoted comma, and `$ref`s that are remote or dangle."""
    problems: list[SchemaProblem] = []
    for path, node in _walk(schema):
        for keyword, value in node.items():
            if value is None and keyword not in _ALL_KEYWORDS:
                # `{description: Tests it, and why.}` is valid YAML for a key 'and why.'
                problems.append(
                    SchemaProblem(
                        (*path, keyword),
                        f"'{keyword}' is not a JSON Schema keyword: in a flow mapping ({{...}}) an "
                        "unquoted comma ends the value, so the text after it became a key; quote the text",
                        at_key=True,
                    )
                )
            elif keyword == "$ref" and isinstance(value, str):
                problem = _ref_problem(schema, value)
                if problem is not None:
                    problems.append(SchemaProblem((*path, "$ref"), problem))
    return problems


def check_schema(schema: Any) -> list[SchemaProblem]:
    """Problems that make `schema` an invalid Draft 2020-12 JSON Schema."""
    if not isinstance(schema, dict):
        return [SchemaProblem((), "a JSON Schema must be a mapping")]
    dialect = schema.get("$schema")
    if dialect is not None and dialect not in _DRAFT_2020_12:
        # Never let the validator resolve an unknown dialect: that would be a network fetch.
        return [SchemaProblem(("$schema",), f"only JSON Schema Draft 2020-12 is supported, not {dialect!r}")]
    if not jsonschema_rs.meta.is_valid(schema):
        try:
            jsonschema_rs.meta.validate(schema)
        except jsonschema_rs.ValidationError as error:
            path = tuple(error.instance_path)
            if path and path[-1] == "type":
                return [
                    SchemaProblem(
                        path,
                        f"invalid JSON Schema: {error.instance!r} is not a type (expected one of: "
                        "string, number, integer, boolean, object, array, null)",
                    )
                ]
            return [SchemaProblem(path, f"invalid JSON Schema: {error.message.splitlines()[0]}")]
        except jsonschema_rs.ReferencingError as error:  # e.g. an unknown $schema dialect
            return [SchemaProblem(("$schema",), f"invalid JSON Schema: {error}")]
    return _structural_problems(schema)


def _walk(
    schema: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    if not isinstance(schema, dict):
        return
    yield path, schema
    for key in _SUBSCHEMA_MAP_KEYWORDS:
        sub = schema.get(key)
        if isinstance(sub, dict):
            for name, child in sub.items():
                yield from _walk(child, (*path, key, name))
    for key in _SUBSCHEMA_LIST_KEYWORDS:
        sub = schema.get(key)
        if isinstance(sub, list):
            for index, child in enumerate(sub):
                yield from _walk(child, (*path, key, index))
    for key in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
        sub = schema.get(key)
        if isinstance(sub, dict):
            yield from _walk(sub, (*path, key))


def _ref_problem(schema: dict[str, Any], ref: str) -> str | None:
    if not ref.startswith("#"):
        return f"only local references are allowed, not {ref!r}"
    target: Any = schema
    for part in ref.lstrip("#").strip("/").split("/") if ref not in ("#", "#/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        else:
            return f"reference {ref!r} points to nothing"
    return None


def check_structured_output(schema: dict[str, Any]) -> list[SchemaProblem]:
    """Problems that stop `schema` from becoming a pydantic model for structured output."""
    problems = []
    for path, node in _walk(schema):
        for keyword in node:
            if keyword not in STRUCTURED_OUTPUT_KEYWORDS and not (
                node[keyword] is None and keyword not in _ALL_KEYWORDS
            ):
                problems.append(
                    SchemaProblem(
                        (*path, keyword),
                        f"JSON Schema keyword '{keyword}' is not supported for structured output "
                        f"(supported: type, properties, required, items, enum, const, anyOf, oneOf, "
                        f"allOf, $ref/$defs, numeric/string/array bounds, pattern, format)",
                        at_key=True,
                    )
                )
    if schema.get("type", "object") != "object" and "$ref" not in schema:
        problems.append(SchemaProblem(("type",), "a structured output schema must have type: object"))
    return problems


# --- producer / consumer agreement ------------------------------------------------------------


def required_of(schema: dict[str, Any]) -> list[str]:
    """`required` as a list of names; an invalid value (reported elsewhere) counts as none."""
    required = schema.get("required", [])
    return [r for r in required if isinstance(r, str)] if isinstance(required, list) else []


def _types(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema admits, or None when it does not say."""
    if "const" in schema:
        return {_json_type(schema["const"])}
    if "enum" in schema and isinstance(schema["enum"], list):
        return {_json_type(v) for v in schema["enum"]}
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            union: set[str] = set()
            for option in options:
                sub = _types(option) if isinstance(option, dict) else None
                if sub is None:
                    return None
                union |= sub
            return union
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _accepts(consumer: set[str], producer_type: str) -> bool:
    return producer_type in consumer or (producer_type == "integer" and "number" in consumer)


def resolve_ref(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(target, dict) or part not in target:
            return schema
        target = target[part]
    return target if isinstance(target, dict) else schema


def incompatibilities(
    producer: dict[str, Any],
    consumer: dict[str, Any],
    where: str = "",
    producer_root: dict[str, Any] | None = None,
    consumer_root: dict[str, Any] | None = None,
    depth: int = 0,
) -> list[str]:
    """Reasons a value valid under `producer` may be rejected by `consumer` (structural, conservative:
    only what both schemas state explicitly is compared)."""
    producer_root = producer_root if producer_root is not None else producer
    consumer_root = consumer_root if consumer_root is not None else consumer
    producer = resolve_ref(producer, producer_root)
    consumer = resolve_ref(consumer, consumer_root)
    if depth > 16:
        return []
    label = where or "value"
    produced, accepted = _types(producer), _types(consumer)
    if produced is not None and accepted is not None:
        bad = sorted(t for t in produced if not _accepts(accepted, t))
        if bad:
            return [
                f"{label} is {' or '.join(sorted(produced))} but the consumer expects {' or '.join(sorted(accepted))}"
            ]
    problems: list[str] = []
    if "enum" in consumer and "enum" in producer:
        extra = [v for v in producer["enum"] if v not in consumer["enum"]]
        if extra:
            problems.append(f"{label} may be {extra[0]!r}, which the consumer's enum does not allow")
    p_props, c_props = producer.get("properties"), consumer.get("properties")
    if isinstance(c_props, dict):
        provided = set(p_props) if isinstance(p_props, dict) else None
        required_by_producer = set(required_of(producer))
        for name in required_of(consumer):
            if (
                provided is not None
                and name not in provided
                and producer.get("additionalProperties") is False
            ):
                problems.append(f"{label} has no property '{name}' that the consumer requires")
            elif provided is not None and name in provided and name not in required_by_producer:
                problems.append(f"{label}.{name} is optional in the producer but required by the consumer")
            elif provided is not None and name not in provided:
                problems.append(f"{label} does not declare property '{name}' that the consumer requires")
        if isinstance(p_props, dict):
            for name, sub in p_props.items():
                if name in c_props and isinstance(sub, dict) and isinstance(c_props[name], dict):
                    problems.extend(
                        incompatibilities(
                            sub, c_props[name], f"{label}.{name}", producer_root, consumer_root, depth + 1
                        )
                    )
                elif name not in c_props and consumer.get("additionalProperties") is False:
                    problems.append(
                        f"{label}.{name} is not accepted by the consumer (additionalProperties: false)"
                    )
    p_items, c_items = producer.get("items"), consumer.get("items")
    if isinstance(p_items, dict) and isinstance(c_items, dict):
        problems.extend(
            incompatibilities(p_items, c_items, f"{label}[]", producer_root, consumer_root, depth + 1)
        )
    return problems


def property_schema(
    schema: dict[str, Any] | None, path: list[str]
) -> tuple[dict[str, Any] | None, str | None]:
    """Follow `path` through `properties`; -> (sub-schema or None when unknown, error or None)."""
    node = schema
    root = schema
    for index, part in enumerate(path):
        if node is None or root is None:
            return None, None
        node = resolve_ref(node, root)
        props = node.get("properties")
        if not isinstance(props, dict):
            return None, None  # the schema does not say: nothing to check
        if part not in props:
            return None, ".".join(path[: index + 1])
        sub = props[part]
        node = sub if isinstance(sub, dict) else None
    return node, None
