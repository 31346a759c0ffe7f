"""JSON Schemas (Draft 2020-12) for the spec format, generated from the pydantic models.

One schema per kind (`agent.json`, `tool.json`, ...) and `document.json`, which accepts any one
document and dispatches on `kind`. Editors that speak JSON Schema (yaml-language-server, VS Code,
JetBrains) get completion and validation from them, e.g. with the modeline

    # yaml-language-server: $schema=../schemas/document.json

The models stay the source of truth; this module only post-processes pydantic's output where
the raw output would be wrong or unhelpful for JSON Schema tooling:

* discriminated unions (`kind` of a document, `type` of a guardrail) are emitted by pydantic as
  `oneOf` + the OpenAPI `discriminator` keyword, which JSON Schema validators ignore. They become
  an `enum` on the discriminator plus one `if`/`then` per value, so a validator or editor applies
  exactly the schema of the chosen kind (precise errors and completion, no best-match guessing).
* dicts with pattern-constrained keys (Supervisor `routes`) come out as `patternProperties`
  alone, which silently accepts keys that do not match the pattern; they become `propertyNames`
  + `additionalProperties`.
* duration and size strings that are zero ("0s", "0Mi") match the format's pattern but are
  rejected by the parsers (a duration or size must be greater than zero); they get a `not`.
* guardrail types narrow `applies_to` and `action` to their `allowed_stages` / `allowed_actions`
  (ClassVars enforced by a model validator, invisible to pydantic's schema generation).

Output is deterministic: same models, same bytes (`json.dumps(..., indent=2, sort_keys=True)`).
This module must stay light: no ray, anthropic or instructor imports.

Packaging: the wheel ships no schema files. An installed platform generates them from the models
it validates with, when asked (`platform schema --out DIR`, `platform schema --print KIND`,
`platform init`): generating is one cheap pass over the models, and a generated schema can never
disagree with the installed validator the way a copy shipped beside it could after an upgrade.
"""

from __future__ import annotations

import copy
import json
import sys
import typing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from agent_platform import API_VERSION
from agent_platform._spec.common import DURATION_REGEX, SIZE_REGEX
from agent_platform._spec.kinds import DOCUMENT_MODELS, KINDS, AnyDocument, GuardrailDocument

JSON_SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE_URL = "https://agents.platform/schemas/v1/"
DOCUMENT_SCHEMA_FILE = "document.json"

# Strings the duration / size patterns match but the parsers reject for being zero ("0s", "0Mi").
ZERO_PATTERNS: dict[str, str] = {
    DURATION_REGEX: r"^(0+(\.0+)?(ms|s|m|h|d))+$",
    SIZE_REGEX: r"^0+(\.0+)?\s*(Ki|Mi|Gi|Ti|K|M|G|T|B)?$",
}

KIND_DESCRIPTIONS: dict[str, str] = {
    "Model": "A language model endpoint: provider, model id, token and time limits, retries and "
    "pricing. Agents, LLM pipeline steps and memory compaction refer to it by name or inline it.",
    "Tool": "A capability agents and pipeline steps can call, implemented by exactly one of a Python "
    "function, an HTTP request or an MCP server tool, with its timeout, retry, idempotency, "
    "circuit-breaker, approval and isolation policies.",
    "McpServer": "An MCP server (a local process over stdio, or a remote one over streamable HTTP) "
    "whose tools Tool specs and Agents use; `platform plan` pins its tools' schemas in mcp.lock.yaml.",
    "Memory": "The memory an agent uses: a token-bounded working memory with optional compaction, and "
    "vector-backed episodic and knowledge layers ranked by relevance, recency and importance.",
    "Guardrail": "A check run at one or more stages (input, tool_output, action, output) that blocks, "
    "redacts, warns or halts; `spec.type` selects the guardrail and its fields.",
    "Agent": "A model-driven agent loop: a model, templated instructions, tools, delegate agents, "
    "memory, guardrails, limits and how its replicas run on the cluster.",
    "Pipeline": "A fixed graph of steps (tool, agent, nested pipeline or structured LLM call) whose "
    "inputs are templates over earlier outputs; a step can fan out over a list.",
    "Supervisor": "Routes typed tasks to agents or pipelines through a priority queue with bounded "
    "concurrency, and places the sub-agents on the cluster.",
    "Endpoint": "An HTTP API on Ray Serve for agents, pipelines and supervisors: start runs (waiting "
    "or detached), read, list and cancel them, decide approvals; bearer-token auth, bounded bodies, "
    "per-unit concurrency, an OpenAPI document from the units' schemas.",
    "RemoteAgent": "An agent served elsewhere over A2A (its URL and what its agent card must say), "
    "usable as a delegate like a local agent; `platform plan` fetches the card and checks it.",
    "Test": "A run of an agent, pipeline or supervisor with given inputs (and, optionally, a model "
    "that answers every model call), and the expectations its result must meet: outcome, output "
    "values, tool calls, guardrail decisions, iterations, tokens and cost. Run by `platform test`; "
    "never compiled or deployed.",
}
DOCUMENT_DESCRIPTION = (
    f"Any one {API_VERSION} spec document. `kind` selects the schema: " + ", ".join(KINDS) + "."
)


def schema_filename(kind: str) -> str:
    """'Agent' -> 'agent.json'."""
    return f"{kind.lower()}.json"


def schema_id(filename: str) -> str:
    return SCHEMA_BASE_URL + filename


# --- post-processing ----------------------------------------------------------------------------


def _dispatch(prop: str, one_of: list[dict[str, Any]], mapping: dict[str, str]) -> dict[str, Any]:
    """`oneOf` + `discriminator` -> enum on `prop` and one if/then per value (in declaration order)."""
    refs = [branch["$ref"] for branch in one_of]
    values = sorted(mapping, key=lambda value: (refs.index(mapping[value]), value))
    return {
        "type": "object",
        "required": [prop],
        "properties": {prop: {"enum": values}},
        "allOf": [
            {
                "if": {"type": "object", "properties": {prop: {"const": value}}, "required": [prop]},
                "then": {"$ref": mapping[value]},
            }
            for value in values
        ],
    }


def _rewrite(node: Any) -> Any:
    if isinstance(node, list):
        return [_rewrite(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _rewrite(value) for key, value in node.items()}
    discriminator = node.get("discriminator")
    if isinstance(discriminator, dict) and "oneOf" in node:
        rest = {k: v for k, v in node.items() if k not in ("discriminator", "oneOf")}
        rest.update(_dispatch(discriminator["propertyName"], node["oneOf"], discriminator["mapping"]))
        node = rest
    zero = ZERO_PATTERNS.get(node.get("pattern", "")) if node.get("type") == "string" else None
    if zero is not None and "not" not in node:
        node["not"] = {"pattern": zero}
    pattern_props = node.get("patternProperties")
    if (
        isinstance(pattern_props, dict)
        and len(pattern_props) == 1
        and "properties" not in node
        and "additionalProperties" not in node
        and "propertyNames" not in node
    ):
        ((pattern, value_schema),) = pattern_props.items()
        del node["patternProperties"]
        node["propertyNames"] = {"pattern": pattern}
        node["additionalProperties"] = value_schema
    return node


def guardrail_classes() -> list[type[BaseModel]]:
    """The guardrail models of the `type`-discriminated union, in declaration order."""
    annotation = GuardrailDocument.model_fields["spec"].annotation
    return [
        cls for cls in typing.get_args(annotation) if isinstance(cls, type) and issubclass(cls, BaseModel)
    ]


def _narrow_guardrails(defs: dict[str, Any]) -> None:
    for cls in guardrail_classes():
        definition = defs.get(cls.__name__)
        if definition is None:
            continue
        stages: frozenset[str] = getattr(cls, "allowed_stages")  # noqa: B009 - ClassVar
        actions: frozenset[str] = getattr(cls, "allowed_actions")  # noqa: B009 - ClassVar
        props = definition["properties"]
        items = props["applies_to"]["items"]
        items["enum"] = [stage for stage in items["enum"] if stage in stages]
        props["action"]["enum"] = [action for action in props["action"]["enum"] if action in actions]


def _finish(schema: dict[str, Any], filename: str, title: str, description: str) -> dict[str, Any]:
    schema = _rewrite(copy.deepcopy(schema))
    _narrow_guardrails(schema.get("$defs", {}))
    schema["$schema"] = JSON_SCHEMA_DRAFT
    schema["$id"] = schema_id(filename)
    schema["title"] = title
    schema["description"] = description
    # Canonical form: key order does not matter to JSON Schema and is sorted on output anyway.
    result: dict[str, Any] = json.loads(json.dumps(schema, sort_keys=True))
    return result


def _kind_schema(kind: str) -> dict[str, Any]:
    raw = DOCUMENT_MODELS[kind].model_json_schema(mode="validation", by_alias=True)
    return _finish(raw, schema_filename(kind), f"{API_VERSION} {kind}", KIND_DESCRIPTIONS[kind])


def _document_schema() -> dict[str, Any]:
    raw = TypeAdapter(AnyDocument).json_schema(mode="validation", by_alias=True)
    schema = _finish(raw, DOCUMENT_SCHEMA_FILE, f"{API_VERSION} document", DOCUMENT_DESCRIPTION)
    # Only `kind` is checked here; the `then` branch of the chosen kind checks everything else,
    # once (checking the envelope here too would report each of its errors twice). The other
    # envelope properties are annotations only, so editors still complete them before `kind`.
    schema["properties"] = {
        "apiVersion": {"description": "The spec format version.", "examples": [API_VERSION]},
        "kind": {
            **schema["properties"]["kind"],
            "type": "string",
            "description": "The document's kind; selects the schema of `spec`.",
        },
        "metadata": {"description": "Name (unique per kind), description, labels and annotations."},
        "spec": {"description": "The kind-specific body."},
    }
    schema["required"] = ["kind"]
    result: dict[str, Any] = json.loads(json.dumps(schema, sort_keys=True))
    return result


# --- public API ---------------------------------------------------------------------------------


def build_schemas() -> dict[str, dict[str, Any]]:
    """Filename -> JSON Schema: one per kind plus `document.json`."""
    schemas = {schema_filename(kind): _kind_schema(kind) for kind in KINDS}
    schemas[DOCUMENT_SCHEMA_FILE] = _document_schema()
    return schemas


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_schemas() -> dict[str, str]:
    """Filename -> the exact file contents `write_schemas` writes."""
    return {name: dumps(schema) for name, schema in build_schemas().items()}


class UnknownSchema(ValueError):
    """A schema name that is neither a kind nor `document`."""


def schema_names() -> list[str]:
    """The names `render_schema` accepts, as users type them: each kind in lower case, then
    `document`."""
    return [kind.lower() for kind in KINDS] + [DOCUMENT_SCHEMA_FILE.removesuffix(".json")]


def schema_file_for(name: str) -> str:
    """The schema file a user means: 'Agent', 'agent' or 'agent.json' -> 'agent.json';
    'document' -> 'document.json'. `UnknownSchema` (listing the choices) for anything else."""
    stem = name.strip().lower().removesuffix(".json")
    if stem in schema_names():
        return stem + ".json"
    from agent_platform._diagnostics import did_you_mean

    raise UnknownSchema(
        f"no schema named {name!r}{did_you_mean(stem, schema_names())}; "
        f"choose a kind ({', '.join(KINDS)}) or 'document'"
    )


def render_schema(name: str) -> str:
    """The contents of one schema file (see `schema_file_for` for the names), exactly as
    `write_schemas` writes it; only that schema is generated."""
    filename = schema_file_for(name)
    if filename == DOCUMENT_SCHEMA_FILE:
        return dumps(_document_schema())
    (kind,) = (kind for kind in KINDS if schema_filename(kind) == filename)
    return dumps(_kind_schema(kind))


def write_schemas(out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


class SchemaFileProblem(StrEnum):
    MISSING = "missing"  # not in the directory: never generated there, or deleted
    STALE = "stale"  # differs from what the models generate now


@dataclass(frozen=True, slots=True)
class OutdatedSchema:
    """A schema file that `write_schemas` would create or change, and which of the two."""

    name: str
    problem: SchemaFileProblem


def outdated_schemas(out_dir: Path) -> list[OutdatedSchema]:
    """The schema files in `out_dir` that are missing or differ from what would be generated."""
    out_dir = Path(out_dir)
    outdated = []
    for name, text in render_schemas().items():
        path = out_dir / name
        if not path.is_file():
            outdated.append(OutdatedSchema(name, SchemaFileProblem.MISSING))
        elif path.read_bytes() != text.encode("utf-8"):
            outdated.append(OutdatedSchema(name, SchemaFileProblem.STALE))
    return outdated


def stale_schemas(out_dir: Path) -> list[str]:
    """Names of the schema files in `out_dir` to regenerate, missing or stale alike; see
    `outdated_schemas` to tell which."""
    return [outdated.name for outdated in outdated_schemas(out_dir)]


def main(argv: list[str] | None = None) -> int:
    """`python -m agent_platform._schema_export [OUT_DIR] [--check]` (default OUT_DIR: schemas)."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [arg for arg in args if arg != "--check"]
    out_dir = Path(paths[0] if paths else "schemas")
    if check:
        outdated = outdated_schemas(out_dir)
        for schema in outdated:
            state = "is missing" if schema.problem is SchemaFileProblem.MISSING else "is out of date"
            print(f"{out_dir / schema.name} {state}; run `make schemas`", file=sys.stderr)
        return 1 if outdated else 0
    for path in write_schemas(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
