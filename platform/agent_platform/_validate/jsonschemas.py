"""JSON Schema checks: validity (Draft 2020-12), fitness for structured output, and whether a
producer's output schema agrees with the consumer's input schema.

Structured output (an agent's final answer, an `llm` step's output, a tool's arguments, a
delegate's task) is checked against the declared schema itself, by jsonschema-rs, on every answer
(see `agent_platform._compile.output_models`). What `validate` checks here is that this can be done
faithfully: every keyword is one the validator enforces, an annotation it ignores, or an error;
the validator compiles with the options used at run time (formats asserted, unknown formats
refused); and the schema can be written out for a model to read (its `$ref`s inlined, so none may
be recursive). `StructuredSchema` is what both `validate` and the model builder get from
`structured_schema()`: validate passes exactly when the model can be built."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

import jsonschema_rs

from agent_platform._diagnostics import did_you_mean

_DRAFT_2020_12 = frozenset(
    {"https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2020-12/schema#"}
)

# --- the keywords of Draft 2020-12, by what they do ----------------------------------------------

# Subschemas, by how a keyword holds them.
SCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SCHEMA_LIST_KEYWORDS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_KEYWORDS = (
    "items",
    "contains",
    "additionalProperties",
    "propertyNames",
    "if",
    "then",
    "else",
    "not",
    "unevaluatedItems",
    "unevaluatedProperties",
)
# Keywords the validator enforces on a value (assertions and the applicators that combine them).
ENFORCED_KEYWORDS = frozenset(
    {
        "type", "enum", "const",
        "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
        "maxLength", "minLength", "pattern", "format",
        "maxItems", "minItems", "uniqueItems", "maxContains", "minContains",
        "maxProperties", "minProperties", "required", "dependentRequired",
        "$ref", *SCHEMA_LIST_KEYWORDS, *SCHEMA_KEYWORDS,
        "properties", "patternProperties", "dependentSchemas",
    }
)  # fmt: skip
# Where `$ref`s point: containers of subschemas that apply nowhere by themselves.
DEFINITION_KEYWORDS = frozenset({"$defs", "definitions"})
# Draft 2020-12 annotations: they describe a value and constrain nothing (`format` is asserted
# here, so it is not one of them; `content*` are annotations in 2020-12).
ANNOTATION_KEYWORDS = frozenset(
    {
        "$schema", "$comment", "title", "description", "default", "examples", "deprecated",
        "readOnly", "writeOnly", "contentEncoding", "contentMediaType", "contentSchema",
    }
)  # fmt: skip
# Keywords of other vocabularies that tool schemas taken from OpenAPI documents and public
# function-calling sets carry. JSON Schema gives them no meaning, and neither does the platform:
# `nullable: true` does not admit null (list "null" in `type` for that).
FOREIGN_ANNOTATIONS = frozenset({"nullable", "example", "optional", "discriminator", "externalDocs", "xml"})
FOREIGN_ANNOTATION_PREFIX = "x-"
# Keywords whose meaning structured output cannot keep, and why.
UNSUPPORTED_KEYWORDS: dict[str, str] = {
    "$id": "a schema with its own '$id' changes what its references resolve against; refer to "
    "'#/$defs/...' from the root instead",
    "$anchor": "named anchors are not supported; refer to '#/$defs/...' instead",
    "$dynamicRef": "dynamic references are not supported; use '$ref'",
    "$dynamicAnchor": "dynamic anchors are not supported; use '$defs' and '$ref'",
    "$vocabulary": "custom vocabularies are not supported",
    "$recursiveRef": "a Draft 2019-09 keyword, not part of Draft 2020-12; use '$ref'",
    "$recursiveAnchor": "a Draft 2019-09 keyword, not part of Draft 2020-12",
    "dependencies": "a Draft 7 keyword, which Draft 2020-12 ignores; use 'dependentRequired' or "
    "'dependentSchemas'",
    "additionalItems": "a Draft 7 keyword, which Draft 2020-12 ignores; use 'prefixItems' and 'items'",
}
# The formats the validator checks (asserted: a value that does not match is refused).
KNOWN_FORMATS = frozenset(
    {
        "date", "date-time", "time", "duration", "email", "idn-email", "hostname", "idn-hostname",
        "ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uri-template", "uuid",
        "json-pointer", "relative-json-pointer", "regex",
    }
)  # fmt: skip
ALL_KEYWORDS = (
    ENFORCED_KEYWORDS
    | DEFINITION_KEYWORDS
    | ANNOTATION_KEYWORDS
    | FOREIGN_ANNOTATIONS
    | set(UNSUPPORTED_KEYWORDS)
)

# How far a schema may grow when its `$ref`s are written out for a model to read: references
# that each use the next twice double the text at every level.
MAX_INLINED_SUBSCHEMAS = 10_000


def is_annotation(keyword: str) -> bool:
    """Whether `keyword` only describes (a Draft 2020-12 annotation, or one of another vocabulary
    such as OpenAPI's `nullable` or an `x-` extension): accepted, and ignored by every check."""
    return (
        keyword in ANNOTATION_KEYWORDS
        or keyword in FOREIGN_ANNOTATIONS
        or keyword.startswith(FOREIGN_ANNOTATION_PREFIX)
    )


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    path: tuple[str | int, ...]  # inside the schema
    message: str
    at_key: bool = False  # point at the key rather than its value


# --- walking a schema ------------------------------------------------------------------------


class _Holds(Enum):
    """How a keyword holds subschemas."""

    MAP = "a mapping of names to subschemas"
    LIST = "a list of subschemas"
    ONE = "one subschema"


_SUBSCHEMAS = {
    **dict.fromkeys(SCHEMA_MAP_KEYWORDS, _Holds.MAP),
    **dict.fromkeys(SCHEMA_LIST_KEYWORDS, _Holds.LIST),
    **dict.fromkeys(SCHEMA_KEYWORDS, _Holds.ONE),
}


def walk_schemas(
    schema: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every subschema that is a mapping, with its path, in document order (the schema itself
    first). Looks only at the keys each node has: most nodes are a type and a description."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [(path, schema)]
    while stack:
        where, node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield where, node
        children: list[tuple[tuple[str | int, ...], Any]] = []
        for key, sub in node.items():
            holds = _SUBSCHEMAS.get(key)
            if holds is None:
                continue
            if holds is _Holds.ONE:
                children.append(((*where, key), sub))
            elif holds is _Holds.MAP and isinstance(sub, dict):
                children.extend(((*where, key, name), child) for name, child in sub.items())
            elif holds is _Holds.LIST and isinstance(sub, list):
                children.extend(((*where, key, index), child) for index, child in enumerate(sub))
        stack.extend(reversed(children))


def _pointer_target(root: Any, ref: str) -> tuple[bool, Any, tuple[str | int, ...]]:
    """Follow a local `$ref` ('#', '#/a/b', JSON pointer escapes) -> (found, target, its path)."""
    if ref in ("#", "#/"):
        return True, root, ()
    if not ref.startswith("#/"):
        return False, None, ()
    target: Any = root
    path: list[str | int] = []
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
            path.append(part)
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
            path.append(int(part))
        else:
            return False, None, ()
    return True, target, tuple(path)


def _ref_problem(schema: dict[str, Any], ref: str) -> str | None:
    if not ref.startswith("#"):
        return f"only local references are allowed, not {ref!r}"
    found, _, _ = _pointer_target(schema, ref)
    return None if found else f"reference {ref!r} points to nothing"


def _structural_problems(schema: dict[str, Any]) -> list[SchemaProblem]:
    """One walk: text split off by an unquoted comma, and `$ref`s that are remote or dangle."""
    problems: list[SchemaProblem] = []
    for path, node in walk_schemas(schema):
        for keyword, value in node.items():
            if value is None and keyword not in ALL_KEYWORDS and not is_annotation(keyword):
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


def _compile_problem(schema: dict[str, Any], error: BaseException) -> SchemaProblem:
    """A schema jsonschema-rs refuses to compile (an invalid regex, an unknown format, a reference
    it cannot resolve), located at what it names."""
    text = error.message if isinstance(error, jsonschema_rs.ValidationError) else str(error)
    message = f"invalid JSON Schema: {text.splitlines()[0] if text else type(error).__name__}"
    path: tuple[str | int, ...] = ()
    if isinstance(error, jsonschema_rs.ValidationError):
        path = tuple(error.instance_path)
    if not path:  # a reference error names the reference, not where it is
        path = next(
            (
                (*where, keyword)
                for where, node in walk_schemas(schema)
                for keyword in ("$ref", "$dynamicRef")
                if isinstance(node.get(keyword), str)
                and (fragment := node[keyword].partition("#")[2])
                and fragment in text
            ),
            (),
        )
    return SchemaProblem(path, message)


def check_schema(schema: Any) -> list[SchemaProblem]:
    """Problems that make `schema` an invalid Draft 2020-12 JSON Schema, or one the run-time
    validator (jsonschema-rs, default options) cannot compile."""
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
    problems = _structural_problems(schema)
    if problems:
        return problems
    try:  # what the run-time checks of inputs, tool arguments and step outputs build
        jsonschema_rs.validator_for(schema, offline=True)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as error:
        return [_compile_problem(schema, error)]
    return []


# --- structured output -------------------------------------------------------------------------


def canonical_text(schema: Any) -> str:
    """One text per distinct schema: the key models and checks are shared by."""
    return json.dumps(schema, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class StructuredSchema:
    """A JSON Schema fit for structured output: the validator every answer is checked with, and
    the same schema as a model is shown it (references written out, annotations of other
    vocabularies left out)."""

    schema: dict[str, Any]
    validator: Any  # a jsonschema_rs validator, compiled once per distinct schema
    for_model: dict[str, Any]

    def problems(self, value: Any, limit: int = 5) -> list[str]:
        """Why `value` does not match the schema (at most `limit` reasons), or nothing."""
        try:
            errors = self.validator.iter_errors(value)
            found = []
            for error in errors:
                where = "/".join(str(part) for part in error.instance_path)
                found.append(f"{where or '(root)'}: {error.message}")
                if len(found) >= limit:
                    break
            return found
        except ValueError as exc:  # a value that is not JSON data
            return [f"(root): not JSON data: {exc}"]


def structured_schema(schema: dict[str, Any]) -> StructuredSchema | list[SchemaProblem]:
    """`schema` prepared for structured output, or why it cannot be: what `validate` reports and
    the model builder needs, from one function (cached per distinct schema)."""
    return _structured_schema(canonical_text(schema))


@lru_cache(maxsize=512)
def _structured_schema(text: str) -> StructuredSchema | list[SchemaProblem]:
    schema = json.loads(text)
    problems = check_schema(schema)
    if problems:
        return problems
    problems = _keyword_problems(schema)
    if schema.get("type", "object") != "object" and "$ref" not in schema:
        problems.append(SchemaProblem(("type",), "a structured output schema must have type: object"))
    inliner = _Inliner(schema)
    for_model = inliner.inline(schema, ())
    problems.extend(inliner.problems)
    if problems:
        return problems
    try:
        validator = jsonschema_rs.Draft202012Validator(
            schema, validate_formats=True, ignore_unknown_formats=False, offline=True
        )
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as error:
        return [_compile_problem(schema, error)]
    assert isinstance(for_model, dict)
    return StructuredSchema(schema, validator, for_model)


def check_structured_output(schema: dict[str, Any]) -> list[SchemaProblem]:
    """Problems that stop `schema` from being used for structured output (none: it can be)."""
    prepared = structured_schema(schema)
    return prepared if isinstance(prepared, list) else []


# At most this many keyword problems are reported per schema, then how many more there are.
MAX_PROBLEMS_PER_SCHEMA = 20


def _keyword_problems(schema: dict[str, Any]) -> list[SchemaProblem]:
    """Keywords structured output refuses: unsupported ones, unknown ones (a misspelt keyword would
    otherwise constrain nothing, silently), formats the validator does not know, and `$id` or
    `$schema` below the root. The first MAX_PROBLEMS_PER_SCHEMA are described, the rest counted."""
    problems: list[SchemaProblem] = []
    left_out = 0
    for path, node in walk_schemas(schema):
        for keyword, value in node.items():
            described = len(problems) < MAX_PROBLEMS_PER_SCHEMA
            message = _refusal(path, keyword, value, suggest=did_you_mean if described else _no_suggestion)
            if message is None:
                continue
            if described:
                problems.append(SchemaProblem((*path, keyword), message, at_key=keyword != "format"))
            else:
                left_out += 1
    if left_out:
        last = problems[-1]
        more = f"... and {left_out:,} more keyword problems in this schema"
        problems.append(SchemaProblem(last.path, more, last.at_key))
    return problems


def _no_suggestion(word: str, candidates: Any) -> str:
    return ""


def _refusal(
    path: tuple[str | int, ...], keyword: str, value: Any, suggest: Callable[[str, Any], str]
) -> str | None:
    """Why structured output refuses `keyword` where it is, or None when it does not."""
    if keyword == "format":
        if isinstance(value, str) and value not in KNOWN_FORMATS:
            return (
                f"format {value!r} is not one the validator checks{suggest(value, KNOWN_FORMATS)} "
                f"(known: {', '.join(sorted(KNOWN_FORMATS))}); remove it or describe it in 'description'"
            )
        return None
    if keyword in ("$schema", "$id") and not path:
        return None  # the root's dialect and identifier (nothing resolves against the `$id` but '#')
    if keyword == "$schema":
        return "'$schema' belongs at the root of a schema only"
    if keyword in ENFORCED_KEYWORDS or keyword in DEFINITION_KEYWORDS or is_annotation(keyword):
        return None
    if keyword in UNSUPPORTED_KEYWORDS:
        return f"JSON Schema keyword '{keyword}' is not supported for structured output: {UNSUPPORTED_KEYWORDS[keyword]}"
    if value is None:
        return None  # reported by check_schema: text split off by a comma
    return (
        f"unknown JSON Schema keyword '{keyword}'{suggest(keyword, ENFORCED_KEYWORDS | ANNOTATION_KEYWORDS)}: "
        "structured output enforces every keyword of Draft 2020-12 and ignores annotations (such as "
        "'description', 'example' or 'x-...'), so an unknown one would check nothing"
    )


class _Inliner:
    """The schema with its `$ref`s written out where they are used (a model reads one schema, not
    a document of definitions), `$defs` and other vocabularies' annotations left out. A recursive
    reference cannot be written out, and neither can one that grows past MAX_INLINED_SUBSCHEMAS."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.problems: list[SchemaProblem] = []
        self.following: list[tuple[str | int, ...]] = []  # targets of the `$ref`s being inlined
        self.size = 0

    def inline(self, schema: Any, path: tuple[str | int, ...]) -> Any:
        if not isinstance(schema, dict) or self.problems:
            return schema
        self.size += 1
        if self.size > MAX_INLINED_SUBSCHEMAS:
            self.problems.append(
                SchemaProblem(
                    path,
                    f"with its $refs written out, the schema grows past {MAX_INLINED_SUBSCHEMAS:,} "
                    "subschemas; a model cannot be shown it",
                )
            )
            return schema
        out: dict[str, Any] = {}
        for keyword, value in schema.items():
            if keyword in DEFINITION_KEYWORDS or keyword in ("$schema", "$id", "$comment", "$ref"):
                continue
            if keyword in FOREIGN_ANNOTATIONS or keyword.startswith(FOREIGN_ANNOTATION_PREFIX):
                continue
            if keyword in SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
                out[keyword] = {name: self.inline(sub, (*path, keyword, name)) for name, sub in value.items()}
            elif keyword in SCHEMA_LIST_KEYWORDS and isinstance(value, list):
                out[keyword] = [self.inline(sub, (*path, keyword, i)) for i, sub in enumerate(value)]
            elif keyword in SCHEMA_KEYWORDS:
                out[keyword] = self.inline(value, (*path, keyword))
            else:
                out[keyword] = value
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return out
        found, target, target_path = _pointer_target(self.root, ref)
        if not found:  # reported by check_schema
            return out
        if target_path in self.following:
            self.problems.append(
                SchemaProblem(
                    (*path, "$ref"),
                    f"reference {ref!r} is recursive: a recursive schema cannot be written out for a "
                    "model to read, so structured output does not support it",
                )
            )
            return out
        self.following.append(target_path)
        written = self.inline(target, target_path)
        self.following.pop()
        if not out:
            return written
        # `$ref` beside other keywords applies both, as `allOf` does.
        out["allOf"] = [*out.get("allOf", []), written]
        return out


# --- producer / consumer agreement ------------------------------------------------------------


# These read schemas that may be invalid (each problem is reported by check_schema, and the checks
# that read them run anyway so one mistake does not hide others): a value of the wrong shape counts
# as not saying anything.


def required_of(schema: dict[str, Any]) -> list[str]:
    """`required` as a list of names; an invalid value (reported elsewhere) counts as none."""
    required = schema.get("required", [])
    return [r for r in required if isinstance(r, str)] if isinstance(required, list) else []


def properties_of(schema: Any) -> dict[str, Any]:
    """`properties` as a mapping; an invalid value (reported elsewhere) counts as none."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return properties if isinstance(properties, dict) else {}


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


_NOTHING: Any = object()


def _enum_key(value: Any) -> tuple[str, Any]:
    """A key under which JSON Schema's equality holds: 1 and 1.0 are one number, true is not 1."""
    kind = _json_type(value)
    if kind == "number" and float(value).is_integer():
        return "integer", int(value)
    if kind in ("array", "object"):
        return kind, canonical_text(value)
    return kind, value


def _shown_value(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _accepts(consumer: set[str], producer_type: str) -> bool:
    return producer_type in consumer or (producer_type == "integer" and "number" in consumer)


def resolve_ref(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """The subschema a local `$ref` points to (one step), or `schema` itself."""
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    found, target, _ = _pointer_target(root, ref)
    return target if found and isinstance(target, dict) else schema


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
    if isinstance(consumer.get("enum"), list) and isinstance(producer.get("enum"), list):
        allowed = {_enum_key(v) for v in consumer["enum"]}
        extra = next((v for v in producer["enum"] if _enum_key(v) not in allowed), _NOTHING)
        if extra is not _NOTHING:
            problems.append(f"{label} may be {_shown_value(extra)}, which the consumer's enum does not allow")
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


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill `default`s of declared properties (recursively through objects and array items)."""
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        filled = dict(value)
        for name, sub in schema["properties"].items():
            if not isinstance(sub, dict):
                continue
            if name not in filled and "default" in sub:
                filled[name] = copy.deepcopy(sub["default"])
            if name in filled:
                filled[name] = apply_defaults(sub, filled[name])
        return filled
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value
