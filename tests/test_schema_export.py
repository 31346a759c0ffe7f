"""The generated JSON Schemas and spec reference: up to date, valid, and in agreement with the models."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from agent_platform import _schema_export as schema_export
from agent_platform._devtools import docs_gen
from agent_platform._load import NOT_SPEC_FILES
from agent_platform._spec import DOCUMENT_MODELS, KINDS, AnyDocument
from agent_platform._spec.kinds import GUARDRAIL_TYPES

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS_DIR = ROOT / "schemas"
DOCS_FILE = ROOT / "docs" / "spec-reference.md"
SPECS_DIR = ROOT / "specs"

DOCUMENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyDocument)


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "agents.platform/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


# One small valid document per kind, exercising the aliases (`as`, `schema`), duration strings and
# numbers, sizes, and the placement shorthand.
VALID: dict[str, dict[str, Any]] = {
    "Model": _doc(
        "Model",
        "fast",
        {
            "provider": "anthropic",
            "name": "claude-haiku-4-5",
            "timeout": "1m30s",
            "retry": {"max_attempts": 2},
        },
    ),
    "Tool": _doc(
        "Tool",
        "search",
        {"description": "Search the docs.", "python": "plugins.tools:search", "timeout": 12.5},
    ),
    "Memory": _doc("Memory", "mem", {"working": {"max_tokens": 4000}, "episodic": {"retention": "30d"}}),
    "Guardrail": _doc(
        "Guardrail",
        "answer-shape",
        {"type": "output_schema", "applies_to": ["output"], "schema": {"type": "object"}},
    ),
    "Agent": _doc(
        "Agent",
        "helper",
        {
            "model": "fast",
            "instructions": "Help with {{ inputs.q }}.",
            "tools": ["search"],
            "runtime": {"placement": "spread", "resources": {"memory": "512Mi"}},
            "limits": {"timeout": "5m"},
        },
    ),
    "McpServer": _doc(
        "McpServer",
        "files",
        {
            "stdio": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."]},
            "timeout": "10s",
        },
    ),
    "Pipeline": _doc(
        "Pipeline",
        "batch",
        {
            "steps": [
                {
                    "name": "each",
                    "tool": "search",
                    "map": {"over": "{{ inputs.items }}", "as": "query"},
                    "input": {"q": "{{ query }}"},
                    "timeout": "300s",
                }
            ],
            "runtime": {"placement": {"strategy": "pack", "node_labels": {"zone": "a"}}},
        },
    ),
    "Supervisor": _doc(
        "Supervisor",
        "desk",
        {"routes": {"question": {"agent": "helper"}, "bulk": {"pipeline": "batch", "timeout": "1h"}}},
    ),
    "Endpoint": _doc(
        "Endpoint",
        "api",
        {"units": ["a"], "auth": {"token_env": "API_TOKEN"}, "max_body": "1Mi", "wait_timeout": "2m"},
    ),
    "RemoteAgent": _doc(
        "RemoteAgent",
        "translator",
        {
            "url": "https://agents.example.com/a2a/translator",
            "card": {"name": "translator", "skills": ["translate"]},
            "inputs": {"type": "object", "properties": {"text": {"type": "string"}}},
            "auth": {"token_env": "TRANSLATOR_TOKEN"},
            "timeout": "2m",
            "retry": {"max_attempts": 2, "backoff": {"initial": "1s"}},
        },
    ),
    "Test": _doc(
        "Test",
        "helper-searches",
        {
            "unit": "Agent/helper",
            "inputs": {"q": "retries"},
            "timeout": "1m",
            "expect": {
                "output": [{"path": "$.answer", "matches": "retr"}, {"path": "$['n']", "equals": None}],
                "tools": {"called": [{"tool": "search", "arguments": [{"path": "$.q", "schema": {}}]}]},
                "iterations": {"max": 3},
            },
        },
    ),
}


@pytest.fixture(scope="module")
def schemas() -> dict[str, dict[str, Any]]:
    return schema_export.build_schemas()


@pytest.fixture(scope="module")
def document_validator(schemas: dict[str, dict[str, Any]]) -> Any:
    return jsonschema_rs.Draft202012Validator(schemas[schema_export.DOCUMENT_SCHEMA_FILE])


def _validator(schemas: dict[str, dict[str, Any]], kind: str) -> Any:
    return jsonschema_rs.Draft202012Validator(schemas[schema_export.schema_filename(kind)])


def _errors(validator: Any, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.instance_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


# --- (a), (b) staleness ---------------------------------------------------------------------------


def test_schemas_are_up_to_date() -> None:
    stale = schema_export.stale_schemas(SCHEMAS_DIR)
    assert not stale, f"schemas/ is out of date ({', '.join(stale)}): run `make schemas`"


def test_no_unexpected_schema_files() -> None:
    expected = set(schema_export.build_schemas())
    extra = sorted(p.name for p in SCHEMAS_DIR.glob("*.json") if p.name not in expected)
    assert not extra, f"schemas/ holds files the models no longer generate: {extra}; delete them"


def test_spec_reference_is_up_to_date() -> None:
    assert not docs_gen.is_stale(DOCS_FILE), "docs/spec-reference.md is out of date: run `make docs`"


def test_generation_is_deterministic() -> None:
    assert schema_export.render_schemas() == schema_export.render_schemas()
    assert docs_gen.render() == docs_gen.render()


def test_expected_files_and_ids(schemas: dict[str, dict[str, Any]]) -> None:
    assert sorted(schemas) == sorted([f"{k.lower()}.json" for k in KINDS] + ["document.json"])
    for name, schema in schemas.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://agents.platform/schemas/v1/{name}"
        assert schema["title"] and schema["description"]


def test_write_schemas_round_trip(tmp_path: Path) -> None:
    written = schema_export.write_schemas(tmp_path)
    assert sorted(p.name for p in written) == sorted(schema_export.build_schemas())
    assert schema_export.stale_schemas(tmp_path) == []
    (tmp_path / "agent.json").write_text("{}\n")
    (tmp_path / "tool.json").unlink()
    assert schema_export.stale_schemas(tmp_path) == ["tool.json", "agent.json"]


def test_outdated_schemas_tell_missing_from_stale(tmp_path: Path) -> None:
    schema_export.write_schemas(tmp_path)
    assert schema_export.outdated_schemas(tmp_path) == []
    (tmp_path / "agent.json").write_text("{}\n")
    (tmp_path / "tool.json").unlink()
    problems = {o.name: o.problem for o in schema_export.outdated_schemas(tmp_path)}
    assert problems == {
        "agent.json": schema_export.SchemaFileProblem.STALE,
        "tool.json": schema_export.SchemaFileProblem.MISSING,
    }
    assert {o.problem for o in schema_export.outdated_schemas(tmp_path / "nowhere")} == {
        schema_export.SchemaFileProblem.MISSING
    }


def test_schema_export_check_says_missing_or_out_of_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema_export.write_schemas(tmp_path)
    (tmp_path / "agent.json").write_text("{}\n")
    (tmp_path / "tool.json").unlink()
    assert schema_export.main([str(tmp_path), "--check"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{tmp_path / 'tool.json'} is missing; run `make schemas`",
        f"{tmp_path / 'agent.json'} is out of date; run `make schemas`",
    ]


def test_docs_cli_writes_and_checks(tmp_path: Path) -> None:
    out = tmp_path / "ref.md"
    assert docs_gen.main([str(out)]) == 0
    assert out.read_text() == docs_gen.render()
    assert docs_gen.main(["--check", str(out)]) == 0
    out.write_text("stale\n")
    assert docs_gen.main(["--check", str(out)]) == 1


def test_schema_export_imports_no_heavy_dependencies() -> None:
    code = (
        "import sys, agent_platform._schema_export, agent_platform._devtools.docs_gen\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'anthropic', 'instructor'})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


# --- (c) the schemas are valid Draft 2020-12 ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(schema_export.build_schemas()))
def test_schema_is_valid_draft_2020_12(name: str, schemas: dict[str, dict[str, Any]]) -> None:
    jsonschema_rs.meta.validate(schemas[name])
    jsonschema_rs.Draft202012Validator(schemas[name])  # compiles: every $ref resolves


def test_committed_schemas_are_valid_json_schemas() -> None:
    for path in sorted(SCHEMAS_DIR.glob("*.json")):
        assert jsonschema_rs.meta.is_valid(json.loads(path.read_text())), path.name


def test_schemas_use_aliases_and_no_openapi_keywords(schemas: dict[str, dict[str, Any]]) -> None:
    defs = schemas["document.json"]["$defs"]
    assert "as" in defs["MapSpec"]["properties"] and "as_" not in defs["MapSpec"]["properties"]
    guard = defs["OutputSchemaGuardrail"]["properties"]
    assert "schema" in guard and "json_schema" not in guard
    text = json.dumps(schemas)
    assert '"discriminator"' not in text  # OpenAPI keyword, ignored by JSON Schema validators
    assert '"patternProperties"' not in text  # would let non-matching keys through unchecked


# --- (d) valid and invalid documents ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_valid_document_passes_models_and_schemas(
    kind: str, schemas: dict[str, dict[str, Any]], document_validator: Any
) -> None:
    document = VALID[kind]
    DOCUMENT_MODELS[kind].model_validate(document)  # the examples are really valid
    assert _errors(_validator(schemas, kind), document) == []
    assert _errors(document_validator, document) == []


@pytest.mark.parametrize("kind", KINDS)
def test_kind_schema_rejects_other_kinds(kind: str, schemas: dict[str, dict[str, Any]]) -> None:
    validator = _validator(schemas, kind)
    for other in KINDS:
        if other != kind:
            assert not validator.is_valid(VALID[other]), f"{kind} schema accepted a {other}"


def _mutate(kind: str, path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID[kind])
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


INVALID: dict[str, tuple[str, dict[str, Any]]] = {
    "unknown top-level field": ("Agent", _mutate("Agent", ("extra",), 1)),
    "unknown spec field": ("Agent", _mutate("Agent", ("spec", "instruction"), "typo")),
    "unknown nested field": ("Model", _mutate("Model", ("spec", "retry", "max_atempts"), 2)),
    "unknown metadata field": ("Tool", _mutate("Tool", ("metadata", "nmae"), "x")),
    "python name instead of alias": (
        "Pipeline",
        _mutate("Pipeline", ("spec", "steps", 0, "map"), {"over": "{{ x }}", "as_": "q"}),
    ),
    "bad duration string": ("Agent", _mutate("Agent", ("spec", "limits", "timeout"), "5 minutes")),
    "bad duration unit": ("Tool", _mutate("Tool", ("spec", "timeout"), "10w")),
    "zero duration": ("Model", _mutate("Model", ("spec", "timeout"), 0)),
    "zero duration string": ("Model", _mutate("Model", ("spec", "timeout"), "0m0s")),
    "zero size": ("Agent", _mutate("Agent", ("spec", "runtime", "resources", "memory"), "0Gi")),
    "negative duration": ("Pipeline", _mutate("Pipeline", ("spec", "timeout"), -1)),
    "bad size": ("Agent", _mutate("Agent", ("spec", "runtime", "resources", "memory"), "lots")),
    "bad placement shorthand": ("Agent", _mutate("Agent", ("spec", "runtime", "placement"), "everywhere")),
    "bad resource name": ("Agent", _mutate("Agent", ("metadata", "name"), "Helper_Agent")),
    "wrong apiVersion": ("Model", _mutate("Model", ("apiVersion",), "agents.platform/v2")),
    "string for integer": ("Model", _mutate("Model", ("spec", "max_tokens"), "5")),
    "string for boolean": ("Tool", _mutate("Tool", ("spec", "side_effects"), "off")),
    "unknown guardrail type": ("Guardrail", _mutate("Guardrail", ("spec", "type"), "profanity")),
    "guardrail stage not allowed for its type": (
        "Guardrail",
        _mutate("Guardrail", ("spec", "applies_to"), ["input"]),
    ),
    "guardrail action not allowed for its type": (
        "Guardrail",
        _mutate("Guardrail", ("spec", "action"), "redact"),
    ),
    "guardrail field from another type": ("Guardrail", _mutate("Guardrail", ("spec", "entities"), ["email"])),
    "bad route key": (
        "Supervisor",
        _mutate("Supervisor", ("spec", "routes", "Bad Key"), {"agent": "helper"}),
    ),
    "empty routes": ("Supervisor", _mutate("Supervisor", ("spec", "routes"), {})),
    "missing spec": ("Memory", {k: v for k, v in VALID["Memory"].items() if k != "spec"}),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_document_is_rejected(
    case: str, schemas: dict[str, dict[str, Any]], document_validator: Any
) -> None:
    kind, document = INVALID[case]
    with pytest.raises(ValidationError):  # the models agree that it is invalid
        DOCUMENT_ADAPTER.validate_python(document)
    assert not _validator(schemas, kind).is_valid(document)
    assert _errors(document_validator, document), f"document.json accepted: {case}"


@pytest.mark.parametrize("kind", ["Agnet", "agent", None, 3])
def test_wrong_kind_is_rejected(kind: Any, document_validator: Any) -> None:
    document = {**VALID["Agent"], "kind": kind}
    assert not document_validator.is_valid(document)


def test_missing_kind_is_rejected(document_validator: Any) -> None:
    document = {k: v for k, v in VALID["Agent"].items() if k != "kind"}
    assert not document_validator.is_valid(document)


def test_kind_mismatch_with_spec_is_rejected(document_validator: Any) -> None:
    """An Agent body under kind: Tool is checked against the Tool schema, not any schema."""
    document = {**VALID["Agent"], "kind": "Tool"}
    errors = _errors(document_validator, document)
    assert errors and any("instructions" in e or "description" in e for e in errors)


def test_errors_point_at_the_field(document_validator: Any) -> None:
    errors = _errors(document_validator, INVALID["bad duration string"][1])
    assert any(e.startswith("spec/limits/timeout") for e in errors), errors


@pytest.mark.parametrize("duration", ["300s", "5m", "1h30m", "250ms", "7d", "1.5h", "0m30s", 90, 0.5])
def test_duration_forms_accepted(duration: Any, document_validator: Any) -> None:
    document = _mutate("Tool", ("spec", "timeout"), duration)
    DOCUMENT_ADAPTER.validate_python(document)
    assert _errors(document_validator, document) == []


@pytest.mark.parametrize("size", ["512Mi", "2Gi", "1G", "1.5K", "0.5Ki", "4096", 4096])
def test_size_forms_accepted(size: Any, document_validator: Any) -> None:
    document = _mutate("Agent", ("spec", "runtime", "resources", "memory"), size)
    DOCUMENT_ADAPTER.validate_python(document)
    assert _errors(document_validator, document) == []


def test_guardrail_types_match_schema(schemas: dict[str, dict[str, Any]]) -> None:
    spec = schemas["guardrail.json"]["properties"]["spec"]
    assert spec["properties"]["type"]["enum"] == list(GUARDRAIL_TYPES)


def test_spec_reference_tables_are_well_formed() -> None:
    """Every table row has as many cells as its header (a stray `|` would shift the columns)."""
    width = 0
    for number, line in enumerate(docs_gen.render().splitlines(), start=1):
        if not line.startswith("|"):
            width = 0
            continue
        cells = len(re.split(r"(?<!\\)\|", line)) - 2
        if width == 0:
            width = cells
        assert cells == width, f"line {number}: {cells} cells, header has {width}: {line}"


# --- the documentation's examples ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_docs_examples_are_valid(
    kind: str, schemas: dict[str, dict[str, Any]], document_validator: Any
) -> None:
    documents = [d for d in yaml.safe_load_all(docs_gen.EXAMPLES[kind]) if d is not None]
    assert documents
    for document in documents:
        assert document["kind"] == kind
        DOCUMENT_MODELS[kind].model_validate(document)
        assert _errors(_validator(schemas, kind), document) == []
        assert _errors(document_validator, document) == []


# --- (e) the repository's specs -------------------------------------------------------------------


def _spec_documents() -> list[Any]:
    cases = []
    for path in sorted(SPECS_DIR.rglob("*.yaml")) + sorted(SPECS_DIR.rglob("*.yml")):
        if path.name in NOT_SPEC_FILES:  # mcp.lock.yaml: written by `platform plan`, not a spec
            continue
        with path.open(encoding="utf-8") as handle:
            documents = [d for d in yaml.safe_load_all(handle) if d is not None]
        for index, document in enumerate(documents):
            rel = path.relative_to(ROOT)
            cases.append(pytest.param(document, id=f"{rel}#{index}"))
    return cases


SPEC_DOCUMENTS = _spec_documents()


@pytest.mark.skipif(not SPEC_DOCUMENTS, reason="no specs/*.yaml yet")
@pytest.mark.parametrize("document", SPEC_DOCUMENTS)
def test_repository_specs_match_document_schema(document: Any, document_validator: Any) -> None:
    assert _errors(document_validator, document) == []


# --- pre-commit hook manifest ---------------------------------------------------------------------


def test_pre_commit_hooks_manifest() -> None:
    hooks = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"platform-validate", "platform-validate-all"}
    for hook in hooks.values():
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["entry"] == "platform validate" and hook["language"] == "python"
    assert hooks["platform-validate"]["pass_filenames"] is True
    assert hooks["platform-validate-all"]["pass_filenames"] is False
    assert hooks["platform-validate-all"]["args"] == ["specs/"]
    for hook in hooks.values():  # spec directories only: other YAML files are not specs
        pattern = re.compile(hook["files"])
        assert pattern.search("specs/agent.yaml") and pattern.search("team/specs/sub/b.yml")
        assert not pattern.search(".pre-commit-config.yaml") and not pattern.search(
            ".github/workflows/ci.yml"
        )
        assert not pattern.search("schemas/agent.json") and not pattern.search("myspecs/a.yaml")
