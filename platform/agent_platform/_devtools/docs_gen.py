"""Generate `docs/spec-reference.md` from the spec models.

    python -m agent_platform._devtools.docs_gen docs/spec-reference.md     # write it (`make docs`)
    python -m agent_platform._devtools.docs_gen --check docs/spec-reference.md

Field tables come from the same post-processed JSON Schemas as `schemas/` (types, constraints,
required) plus the pydantic field info (defaults, descriptions, docstrings), so the reference,
the schemas and the validator cannot drift apart. The output is deterministic.
"""

from __future__ import annotations

import inspect
import json
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from agent_platform import API_VERSION
from agent_platform._schema_export import (
    DOCUMENT_SCHEMA_FILE,
    KIND_DESCRIPTIONS,
    build_schemas,
    guardrail_classes,
    schema_filename,
    schema_id,
)
from agent_platform._spec import common, kinds
from agent_platform._spec.common import (
    DURATION_REGEX,
    ENV_VAR_PATTERN,
    NAME_PATTERN,
    PYTHON_REF_PATTERN,
    SIZE_REGEX,
    STEP_NAME_PATTERN,
    Metadata,
    parse_byte_size,
    parse_duration,
)
from agent_platform._spec.kinds import DOCUMENT_MODELS, KINDS

DEFAULT_OUTPUT = Path("docs/spec-reference.md")
JSON_SCHEMA_DESCRIPTION = "A JSON Schema (Draft 2020-12)."

# Named string formats, recognised by their pattern in the generated schema.
NAMED_PATTERNS: dict[str, str] = {
    NAME_PATTERN: "name",
    STEP_NAME_PATTERN: "step name",
    ENV_VAR_PATTERN: "env var name",
    PYTHON_REF_PATTERN: "python ref",
}

# One short, valid document per kind. tests/test_schema_export.py validates every one of them
# against the models and the JSON Schemas.
EXAMPLES: dict[str, str] = {
    "Model": """\
apiVersion: agents.platform/v1
kind: Model
metadata:
  name: claude-sonnet
  description: Main reasoning model.
spec:
  provider: anthropic
  name: claude-sonnet-4-5
  max_tokens: 8192
  timeout: 2m
  retry:
    max_attempts: 4
    backoff: {initial: 500ms, max: 20s}
  pricing: {input_per_mtok: 3.0, output_per_mtok: 15.0}
""",
    "Tool": """\
apiVersion: agents.platform/v1
kind: Tool
metadata:
  name: create-ticket
spec:
  description: Open a support ticket and return its id.
  http:
    url: https://tickets.example.com/api/tickets
    method: POST
    headers:
      Authorization: "Bearer {{ env.TICKETS_TOKEN }}"
  input_schema:
    type: object
    properties:
      title: {type: string}
      body: {type: string}
    required: [title, body]
  timeout: 10s
  side_effects: true
  idempotency: {mode: key, ttl: 7d}
  retry: {max_attempts: 3}
  circuit_breaker: {failure_threshold: 5, reset_after: 1m}
""",
    "McpServer": """\
apiVersion: agents.platform/v1
kind: McpServer
metadata:
  name: github
spec:
  http:
    url: https://api.githubcopilot.com/mcp/
    headers:
      Authorization: {env: GITHUB_TOKEN, prefix: "Bearer "}
    connect_timeout: 10s
  timeout: 30s
  circuit_breaker: {failure_threshold: 5, reset_after: 1m}
  guardrails: [injection-patterns]
""",
    "Endpoint": """\
apiVersion: agents.platform/v1
kind: Endpoint
metadata:
  name: api
spec:
  units: [support-agent, code-review-supervisor]
  auth: {token_env: PLATFORM_API_TOKEN}
  port: 8000
  max_body: 1Mi
  concurrency: 64
  wait_timeout: 5m
""",
    "RemoteAgent": """\
apiVersion: agents.platform/v1
kind: RemoteAgent
metadata:
  name: translator
  description: Translates a text into a language.
spec:
  url: https://agents.example.com/a2a/translator
  card: {name: translator, skills: [translator]}
  inputs:
    type: object
    properties: {text: {type: string}, language: {type: string}}
    required: [text, language]
  output: {type: object, properties: {translation: {type: string}}, required: [translation]}
  auth: {token_env: TRANSLATOR_TOKEN}
  timeout: 2m
  retry: {max_attempts: 3, backoff: {initial: 1s, max: 10s}}
""",
    "Memory": """\
apiVersion: agents.platform/v1
kind: Memory
metadata:
  name: support-memory
spec:
  working:
    max_tokens: 32000
    compaction:
      model: claude-haiku
      trigger_ratio: 0.8
      target_ratio: 0.5
  episodic:
    top_k: 5
    retention: 30d
  knowledge:
    store: {backend: weaviate, url_env: WEAVIATE_URL, collection: support-kb}
    trust: trusted
""",
    "Guardrail": """\
apiVersion: agents.platform/v1
kind: Guardrail
metadata:
  name: no-pii
spec:
  type: pii_redaction
  applies_to: [tool_output, output]
  entities: [email, phone, credit_card]
---
apiVersion: agents.platform/v1
kind: Guardrail
metadata:
  name: loop-guard
spec:
  type: loop_detection
  window: 12
  threshold: 3
""",
    "Agent": """\
apiVersion: agents.platform/v1
kind: Agent
metadata:
  name: support-agent
  labels: {team: support}
spec:
  model: claude-sonnet
  instructions: |
    You answer questions about {{ inputs.product }}. Search the docs first;
    open a ticket only when the docs do not answer the question.
  inputs:
    type: object
    properties:
      product: {type: string}
      question: {type: string}
    required: [question]
  tools: [search-docs, create-ticket]
  memory: support-memory
  guardrails: [no-pii, loop-guard]
  limits: {max_iterations: 15, timeout: 5m, max_cost_usd: 0.5}
  runtime:
    replicas: 2
    placement: spread
    resources: {num_cpus: 1, memory: 2Gi}
""",
    "Pipeline": """\
apiVersion: agents.platform/v1
kind: Pipeline
metadata:
  name: summarize-pages
spec:
  inputs:
    type: object
    properties:
      urls: {type: array, items: {type: string}}
    required: [urls]
  steps:
    - name: fetch
      tool: fetch-page
      map: {over: "{{ inputs.urls }}", as: url, concurrency: 8}
      input: {url: "{{ url }}"}
    - name: summarize
      llm:
        model: claude-haiku
        prompt: "Summarise these pages: {{ steps.fetch.output }}"
      output:
        type: object
        properties:
          summary: {type: string}
        required: [summary]
  returns: "{{ steps.summarize.output.summary }}"
  timeout: 10m
""",
    "Supervisor": """\
apiVersion: agents.platform/v1
kind: Supervisor
metadata:
  name: support-desk
spec:
  routes:
    question: {agent: support-agent}
    digest: {pipeline: summarize-pages, priority_boost: -1, timeout: 15m}
  concurrency: 8
  on_error: collect
  task_timeout: 30m
""",
    "Test": """\
apiVersion: agents.platform/v1
kind: Test
metadata:
  name: support-agent-opens-a-ticket
spec:
  unit: support-agent
  inputs: {question: "I lost my phone: how do I sign in?"}
  model:                                  # answers every model call of the run
    provider: scripted
    script: scripts/lost-phone.jsonl
  approve_all: true
  expect:
    outcome: completed
    output:
      - path: $.resolved
        equals: false
      - path: $.reply
        matches: (?i)ticket
    tools:
      called:
        - tool: search-docs
        - tool: create-ticket
          arguments:
            - path: $.title
              matches: phone
      only: true
      not_called: [delete-account]
    guardrails:
      triggered:
        - {guardrail: no-pii, verdict: redact, stage: tool_output}
      not_triggered: [loop-guard]
    iterations: {max: 4}
    usage:
      total_tokens: {max: 20000}
      cost_usd: {max: 0.05}
""",
}


# --- rendering helpers --------------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{text}`"


def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__) if cls.__doc__ else ""


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _anchor(title: str) -> str:
    """GitHub's heading anchor for simple ASCII headings."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def _non_null(schema: dict[str, Any]) -> list[dict[str, Any]]:
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return [schema]
    return [branch for branch in branches if branch.get("type") != "null"]


def _is_nullable(schema: dict[str, Any]) -> bool:
    return any(branch.get("type") == "null" for branch in schema.get("anyOf", []))


def _special(schema: dict[str, Any]) -> str | None:
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        patterns = {b.get("pattern") for b in branches}
        if DURATION_REGEX in patterns:
            return "duration"
        if SIZE_REGEX in patterns:
            return "size"
    if schema.get("type") == "object" and schema.get("description") == JSON_SCHEMA_DESCRIPTION:
        return "JSON Schema"
    pattern = schema.get("pattern")
    if schema.get("type") == "string" and isinstance(pattern, str) and pattern in NAMED_PATTERNS:
        return NAMED_PATTERNS[pattern]
    return None


def _format(schema: dict[str, Any]) -> str | None:
    """The named format of a field's schema, looking through `X | None`."""
    special = _special(schema)
    if special is None and _is_nullable(schema):
        branches = _non_null(schema)
        if len(branches) == 1:
            special = _special(branches[0])
    return special


def _type(schema: dict[str, Any], spec_links: dict[str, str]) -> str:
    """A short human type for a schema fragment."""
    special = _special(schema)
    if special:
        return f"[{special}](#formats)"
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return spec_links.get(name, "object")
    if "const" in schema:
        return _code(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(_code(v) for v in schema["enum"])
    if "anyOf" in schema:
        parts = [_type(branch, spec_links) for branch in schema["anyOf"]]
        return " or ".join(dict.fromkeys(parts))
    kind = schema.get("type")
    if kind == "array":
        return "list of " + _type(schema.get("items", {}), spec_links)
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            return "map of " + _type(values, spec_links)
        return "object"
    if kind == "null":
        return "null"
    if isinstance(kind, str):
        return {"number": "number", "integer": "integer", "string": "string", "boolean": "boolean"}[kind]
    return "any"


def _constraints(schema: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if _special(schema):
        return found
    for branch in _non_null(schema):
        if "anyOf" in branch or _special(branch):
            continue
        if "minimum" in branch:
            found.append(f"≥ {branch['minimum']}")
        if "exclusiveMinimum" in branch:
            found.append(f"> {branch['exclusiveMinimum']}")
        if "maximum" in branch:
            found.append(f"≤ {branch['maximum']}")
        if "exclusiveMaximum" in branch:
            found.append(f"< {branch['exclusiveMaximum']}")
        if branch.get("minLength") == 1:
            found.append("non-empty")
        elif "minLength" in branch:
            found.append(f"at least {branch['minLength']} characters")
        if branch.get("minItems") == 1:
            found.append("non-empty")
        elif "minItems" in branch:
            found.append(f"at least {branch['minItems']} items")
        if branch.get("minProperties") == 1:
            found.append("non-empty")
        elif "minProperties" in branch:
            found.append(f"at least {branch['minProperties']} entries")
        if "pattern" in branch:
            found.append(f"matches {_code(branch['pattern'])}")
        if isinstance(branch.get("propertyNames"), dict) and "pattern" in branch["propertyNames"]:
            found.append(f"keys match {_code(branch['propertyNames']['pattern'])}")
        items = branch.get("items")
        if isinstance(items, dict) and "$ref" not in items:
            found.extend(f"each item {c}" for c in _constraints(items))
        values = branch.get("additionalProperties")
        if isinstance(values, dict) and "$ref" not in values:
            found.extend(f"each value {c}" for c in _constraints(values))
    return found


def _format_seconds(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    if float(seconds * 1000).is_integer():
        return f"{int(seconds * 1000)}ms"
    return f"{seconds}s"


def _default(field: FieldInfo, schema: dict[str, Any]) -> str:
    if field.default_factory is not None:
        value = field.get_default(call_default_factory=True, validated_data={})
    elif field.default is PydanticUndefined:
        return "—"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "`{}`"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and _format(schema) == "duration":
        return _code(_format_seconds(value))
    if isinstance(value, float) and value.is_integer():
        return _code(str(value))
    if isinstance(value, str):
        return _code(json.dumps(value)) if value == "" else _code(value)
    return _code(value)


# --- walking the models ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    required: bool
    constraints: str
    description: str


def _model_classes(root: Any, out: dict[str, type[BaseModel]]) -> None:
    if isinstance(root, type) and issubclass(root, BaseModel):
        if root.__name__ in out:
            return
        out[root.__name__] = root
        for field in root.model_fields.values():
            _model_classes(field.annotation, out)
        return
    for arg in typing.get_args(root):
        _model_classes(arg, out)


def _nested(schema: dict[str, Any], suffix: str = "") -> list[tuple[str, str]]:
    """(def name, path suffix) of the models a field's schema contains: '', '[]' or '.<key>'."""
    found: list[tuple[str, str]] = []
    if "$ref" in schema:
        found.append((_ref_name(schema["$ref"]), suffix))
    for branch in schema.get("anyOf", []):
        found.extend(_nested(branch, suffix))
    if isinstance(schema.get("items"), dict):
        found.extend(_nested(schema["items"], suffix + "[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        found.extend(_nested(schema["additionalProperties"], suffix + ".<key>"))
    return found


class _Walker:
    def __init__(self) -> None:
        self.schemas = build_schemas()
        self.defs: dict[str, Any] = self.schemas[DOCUMENT_SCHEMA_FILE]["$defs"]
        self.classes: dict[str, type[BaseModel]] = {}
        for model in DOCUMENT_MODELS.values():
            _model_classes(model, self.classes)
        # The body model of each kind (ModelSpec, ToolSpec, ...), linked rather than repeated.
        self.spec_models: dict[str, str] = {}
        for kind, model in DOCUMENT_MODELS.items():
            annotation = model.model_fields["spec"].annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                self.spec_models[annotation.__name__] = kind

    def spec_links(self, current_kind: str) -> dict[str, str]:
        return {
            name: f"inline {kind} spec (see [{kind}](#{_anchor(kind)}))"
            for name, kind in self.spec_models.items()
            if kind != current_kind
        }

    def rows(self, model: type[BaseModel], prefix: str, kind: str) -> list[Row]:
        definition = self.defs[model.__name__]
        required = set(definition.get("required", []))
        links = self.spec_links(kind)
        rows: list[Row] = []
        for name, field in model.model_fields.items():
            key = field.alias or name
            path = f"{prefix}.{key}" if prefix else key
            schema = definition["properties"][key]
            nested = [(n, s) for n, s in _nested(schema) if n in self.classes and n not in links]
            description = field.description or schema.get("description") or ""
            if not description and len(nested) == 1:
                description = _doc(self.classes[nested[0][0]])
            if _format(schema) and not field.description:
                description = ""  # the format's own description; see the Formats section
            type_text = _type(schema, links)
            if _is_nullable(schema) and type_text != "null":
                type_text = type_text.removesuffix(" or null")
            rows.append(
                Row(
                    path=path,
                    type=type_text,
                    default=_default(field, schema),
                    required=key in required,
                    constraints="; ".join(_constraints(schema)),
                    description=description,
                )
            )
            for def_name, suffix in nested:
                rows.extend(self.rows(self.classes[def_name], path + suffix, kind))
        return rows


def _table(rows: list[Row]) -> list[str]:
    lines = [
        "| Field | Type | Default | Required | Constraints | Description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = [
            f"`{row.path}`",
            row.type,
            row.default,
            "yes" if row.required else "no",
            row.constraints,
            row.description,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _literal_values(alias: Any) -> list[str]:
    """The values of a `Literal[...]` alias (or of a plain tuple of values)."""
    values = alias if isinstance(alias, tuple) else typing.get_args(alias)
    return [str(value) for value in values]


# --- sections -------------------------------------------------------------------------------------


def _header() -> list[str]:
    return [
        "# Spec reference",
        "",
        "<!-- GENERATED FILE: do not edit by hand. -->",
        "",
        "> **Generated** by `agent_platform._devtools.docs_gen` from the pydantic models in "
        "`platform/agent_platform/_spec/`. Do not edit it by hand: change the models, then run "
        "`make docs` (`python -m agent_platform._devtools.docs_gen docs/spec-reference.md`) and `make schemas`. "
        "A test fails when this file or `schemas/` is out of date.",
        "",
        f"API version: `{API_VERSION}`. Kinds: "
        + ", ".join(f"[{kind}](#{_anchor(kind)})" for kind in KINDS)
        + ".",
        "",
    ]


def _contents() -> list[str]:
    sections = [
        "Documents",
        "Formats",
        "Enumerations",
        *KINDS,
        "JSON Schemas and editor support",
    ]
    return ["## Contents", "", *[f"- [{title}](#{_anchor(title)})" for title in sections], ""]


def _documents(walker: _Walker) -> list[str]:
    rows = [
        Row("apiVersion", _code(API_VERSION), "—", True, "", "The spec format version."),
        Row(
            "kind",
            "one of " + ", ".join(_code(k) for k in KINDS),
            "—",
            True,
            "",
            "Selects the schema of `spec`.",
        ),
        Row("metadata", "object", "—", True, "", ""),
        *walker.rows(Metadata, "metadata", ""),
        Row("spec", "object", "—", True, "", "The kind-specific body; see each kind below."),
    ]
    return [
        "## Documents",
        "",
        "A spec file is YAML holding one or more documents separated by `---`. Every document has the "
        "same envelope; `kind` selects what `spec` holds. Unknown fields are errors everywhere, and "
        'values are not coerced: `"5"` is not an integer and `"off"` is not a boolean.',
        "",
        *_table(rows),
        "",
        "Names (`metadata.name`) are unique per kind; other documents refer to them by name, "
        "e.g. an Agent's `spec.tools: [search-docs]`.",
        "",
    ]


def _formats() -> list[str]:
    durations = ["300s", "5m", "1h30m", "250ms", "7d", "1.5h"]
    sizes = ["512Mi", "2Gi", "1G", "1.5K", "4096"]
    rows = [
        (
            "name",
            "A resource name: 1-63 lowercase letters, digits and `-`, starting and ending with a letter "
            "or digit.",
            _code(NAME_PATTERN),
            "`support-agent`, `gpt4o`",
        ),
        (
            "step name",
            "A pipeline step name, usable in templates as `steps.<name>`.",
            _code(STEP_NAME_PATTERN),
            "`fetch`, `summarize_pages`",
        ),
        (
            "env var name",
            "The name of an environment variable (secrets never live in YAML).",
            _code(ENV_VAR_PATTERN),
            "`ANTHROPIC_API_KEY`",
        ),
        (
            "python ref",
            "A Python object as `package.module:attribute`, importable from the plugin paths.",
            _code(PYTHON_REF_PATTERN),
            "`plugins.tools:search_docs`",
        ),
        (
            "duration",
            "A number of seconds, or a string of one or more `<number><unit>` parts with units `ms`, "
            "`s`, `m`, `h`, `d`; must be greater than zero and at most 100 years.",
            _code(DURATION_REGEX),
            ", ".join(f"`{ex}` = {parse_duration(ex):g} s" for ex in durations) + ", `90` = 90 s",
        ),
        (
            "size",
            "A number of bytes, or a number with a unit: `B`, `K`, `M`, `G`, `T` (powers of 1000) or "
            "`Ki`, `Mi`, `Gi`, `Ti` (powers of 1024); must be greater than zero and at most 1 PiB.",
            _code(SIZE_REGEX),
            ", ".join(f"`{ex}` = {parse_byte_size(ex)} bytes" for ex in sizes),
        ),
        (
            "JSON Schema",
            "An inline JSON Schema (Draft 2020-12) object, written in YAML; checked as a whole by the "
            "validator. See [JSON Schemas in specs](#json-schemas-in-specs) for the keywords.",
            "",
            "`{type: object, properties: {q: {type: string}}}`",
        ),
        (
            "template",
            "A Jinja2 template string (sandboxed, strict undefined); the variables available are given "
            "in each field's description.",
            "",
            '`"{{ steps.fetch.output }}"`',
        ),
    ]
    return [
        "## Formats",
        "",
        "| Format | Meaning | Pattern | Examples |",
        "| --- | --- | --- | --- |",
        *["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows],
        "",
        "`runtime.placement` accepts a strategy name as shorthand: `placement: spread` means "
        "`placement: {strategy: spread}`.",
        "",
        *_json_schema_keywords(),
    ]


def _json_schema_keywords() -> list[str]:
    from agent_platform._validate import jsonschemas

    def listed(keywords: Any) -> str:
        return ", ".join(_code(k) for k in sorted(keywords))

    refused = "; ".join(f"{_code(k)}: {why}" for k, why in sorted(jsonschemas.UNSUPPORTED_KEYWORDS.items()))
    return [
        "### JSON Schemas in specs",
        "",
        "Every schema (inputs, outputs, tool schemas, `output_schema` guardrails, Test checks) must be a "
        "valid Draft 2020-12 schema with local `$ref`s only, and compile as the run-time checks compile "
        "it (an invalid `pattern` is a validate error).",
        "",
        "Schemas used for **structured output** (an Agent's `output`, an `llm` step's `output`, a "
        "Tool's `input_schema`, and the `inputs` of an Agent that is a delegate) check every answer "
        'against the schema itself, strictly (`1` is not `true`, `"5"` is not `5`), and hold it as '
        "given. Their keywords are:",
        "",
        f"- **enforced**: {listed(jsonschemas.ENFORCED_KEYWORDS | jsonschemas.DEFINITION_KEYWORDS)}; "
        f"`format` is asserted, and must be one of {listed(jsonschemas.KNOWN_FORMATS)};",
        f"- **accepted and ignored** (annotations): {listed(jsonschemas.ANNOTATION_KEYWORDS)}, and "
        f"those of other vocabularies found in OpenAPI documents and function-calling sets: "
        f"{listed(jsonschemas.FOREIGN_ANNOTATIONS)} and any `{jsonschemas.FOREIGN_ANNOTATION_PREFIX}...` "
        "extension (`nullable: true` does not admit null: list `null` in `type`);",
        f"- **refused** (a validate error at the keyword): {refused}; `$id` and `$schema` are allowed at "
        "the root only; an unknown keyword (a misspelling would check nothing); a recursive `$ref`; `$ref`s "
        f"that write out to more than {jsonschemas.MAX_INLINED_SUBSCHEMAS:,} subschemas (the model is "
        "shown the schema with its references written out).",
        "",
    ]


def _enumerations() -> list[str]:
    enums: list[tuple[str, Any, str]] = [
        ("Guardrail stage", kinds.Stage, "Where a guardrail runs (`applies_to`)."),
        ("Guardrail action", kinds.GuardAction, "What a guardrail does when it trips (`action`)."),
        ("Guardrail type", kinds.GUARDRAIL_TYPES, "See [Guardrail types](#guardrail-types)."),
        ("Retry category", common.RetryCategory, "Error categories for `retry.retry_on`."),
        ("Placement strategy", common.PlacementStrategy, "`runtime.placement.strategy`."),
        ("PII entity", kinds.PiiEntity, "`pii_redaction` guardrail `entities`."),
        ("Run outcome", kinds.RunOutcome, "How a run ends: a Test's `expect.outcome`."),
    ]
    lines = [
        "## Enumerations",
        "",
        "Enumerations used by several fields. Field-specific value sets are listed in the field tables.",
        "",
        "| Enumeration | Values | Used by |",
        "| --- | --- | --- |",
    ]
    for title, alias, used_by in enums:
        values = ", ".join(_code(v) for v in _literal_values(alias))
        lines.append(f"| {title} | {values} | {used_by} |")
    lines.append("")
    return lines


def _kind_section(walker: _Walker, kind: str) -> list[str]:
    model = DOCUMENT_MODELS[kind]
    filename = schema_filename(kind)
    lines = [f"## {kind}", "", KIND_DESCRIPTIONS[kind], ""]
    spec_annotation = model.model_fields["spec"].annotation
    if isinstance(spec_annotation, type) and issubclass(spec_annotation, BaseModel):
        if _doc(spec_annotation):
            lines += [_doc(spec_annotation), ""]
        lines += [
            f"JSON Schema: [`schemas/{filename}`](../schemas/{filename}) (`{schema_id(filename)}`).",
            "",
            "### Fields",
            "",
            *_table(walker.rows(spec_annotation, "spec", kind)),
            "",
        ]
    else:
        lines += [
            f"JSON Schema: [`schemas/{filename}`](../schemas/{filename}) (`{schema_id(filename)}`).",
            "",
            "`spec.type` selects the guardrail; the fields of each type follow.",
            "",
            *_guardrail_types(walker),
        ]
    lines += ["### Example", "", "```yaml", EXAMPLES[kind].rstrip("\n"), "```", ""]
    return lines


def _guardrail_types(walker: _Walker) -> list[str]:
    lines = [
        "### Guardrail types",
        "",
        "Every guardrail has `type`, `applies_to` (the stages it runs at) and `action`. Each type "
        "may only run at some stages and take some actions:",
        "",
        "| Type | Allowed stages | Default `applies_to` | Allowed actions | Default `action` |",
        "| --- | --- | --- | --- | --- |",
    ]
    stage_order = _literal_values(kinds.Stage)
    action_order = _literal_values(kinds.GuardAction)
    classes = guardrail_classes()
    for cls in classes:
        fields = cls.model_fields
        guard_type = _literal_values(fields["type"].annotation)[0]
        stages: frozenset[str] = getattr(cls, "allowed_stages")  # noqa: B009 - ClassVar
        actions: frozenset[str] = getattr(cls, "allowed_actions")  # noqa: B009 - ClassVar
        applies = fields["applies_to"]
        default_applies = (
            ", ".join(_code(s) for s in applies.get_default(call_default_factory=True, validated_data={}))
            if applies.default_factory is not None
            else "— (required)"
        )
        lines.append(
            f"| [`{guard_type}`](#guardrail-type-{_anchor(guard_type)}) | "
            + ", ".join(_code(s) for s in stage_order if s in stages)
            + f" | {default_applies} | "
            + ", ".join(_code(a) for a in action_order if a in actions)
            + f" | {_code(fields['action'].default)} |"
        )
    lines.append("")
    for cls in classes:
        guard_type = _literal_values(cls.model_fields["type"].annotation)[0]
        lines += [f"#### Guardrail type: {guard_type}", ""]
        if _doc(cls):
            lines += [_doc(cls), ""]
        lines += [*_table(walker.rows(cls, "spec", "Guardrail")), ""]
    return lines


def _editor_support() -> list[str]:
    return [
        "## JSON Schemas and editor support",
        "",
        "`schemas/` holds one JSON Schema (Draft 2020-12) per kind and `schemas/document.json`, which "
        "accepts any document and applies the schema of its `kind`. Point an editor at it, e.g. with "
        "the yaml-language-server modeline at the top of a spec file:",
        "",
        "```yaml",
        "# yaml-language-server: $schema=../schemas/document.json",
        "```",
        "",
        "| File | `$id` |",
        "| --- | --- |",
        *[
            f"| [`schemas/{name}`](../schemas/{name}) | `{schema_id(name)}` |"
            for name in [*map(schema_filename, KINDS), DOCUMENT_SCHEMA_FILE]
        ],
        "",
        "The JSON Schemas check structure, types, formats and enumerations. Rules that span several "
        "fields (a tool has exactly one implementation; a pipeline step exactly one target; "
        "`backoff.initial` ≤ `backoff.max`; references between documents resolve; templates "
        "compile) are checked by `platform validate`, which is the authority.",
        "",
    ]


def render() -> str:
    walker = _Walker()
    lines = [
        *_header(),
        *_contents(),
        *_documents(walker),
        *_formats(),
        *_enumerations(),
    ]
    for kind in KINDS:
        lines += _kind_section(walker, kind)
    lines += _editor_support()
    return "\n".join(lines).rstrip("\n") + "\n"


def write(path: Path = DEFAULT_OUTPUT) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path


def is_stale(path: Path = DEFAULT_OUTPUT) -> bool:
    path = Path(path)
    return not path.is_file() or path.read_text(encoding="utf-8") != render()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [arg for arg in args if arg != "--check"]
    path = Path(paths[0]) if paths else DEFAULT_OUTPUT
    if check:
        if is_stale(path):
            print(f"{path} is out of date; run `make docs`", file=sys.stderr)
            return 1
        return 0
    print(write(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
