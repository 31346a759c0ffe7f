"""The official JSON Schema Test Suite (Draft 2020-12, vendored under tests/data with its MIT
licence) through the structured-output check.

Each test group's schema becomes the schema of one property of an object, as it would be in an
agent's `output` (`{type: object, properties: {value: S}, required: [value]}`, with S's local
`$ref`s re-pointed), and each test instance is the answer `{value: instance}`:

- either `validate` rejects the schema, with every problem located at a key of it (a keyword
  structured output does not support, a remote reference, ...);
- or the model builds, and accepts exactly the instances the suite says are valid (through JSON,
  strictly, as the providers validate answers), holding each as it was given.

Every keyword of Draft 2020-12 is classified (enforced, an annotation, or unsupported), and the
table of keywords is printed (`pytest -s`). Disagreements on a supported keyword: none allowed."""

from __future__ import annotations

import copy
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent_platform._compile.output_models import build_output_model
from agent_platform._load import walk_existing
from agent_platform._validate.jsonschemas import (
    ANNOTATION_KEYWORDS,
    DEFINITION_KEYWORDS,
    ENFORCED_KEYWORDS,
    UNSUPPORTED_KEYWORDS,
    structured_schema,
    walk_schemas,
)

SUITE = Path(__file__).parent / "data" / "json-schema-test-suite" / "tests" / "draft2020-12"
# `format.json` treats format as an annotation; structured output asserts it, as
# `optional/format/*.json` expects.
FILES = sorted(p for p in SUITE.rglob("*.json") if p.relative_to(SUITE).as_posix() != "format.json")

# Every keyword of the Draft 2020-12 vocabularies (core, applicator, unevaluated, validation,
# format-annotation, content, meta-data).
DRAFT_2020_12 = frozenset(
    {
        "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
        "$comment", "$defs",
        "prefixItems", "items", "contains", "additionalProperties", "properties",
        "patternProperties", "dependentSchemas", "propertyNames", "if", "then", "else", "allOf",
        "anyOf", "oneOf", "not", "unevaluatedItems", "unevaluatedProperties",
        "type", "const", "enum", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
        "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
        "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties", "required",
        "dependentRequired", "format", "contentEncoding", "contentMediaType", "contentSchema",
        "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
    }
)  # fmt: skip


def status(keyword: str) -> str:
    if keyword in ENFORCED_KEYWORDS:
        return "supported"
    if keyword in ANNOTATION_KEYWORDS:
        return "annotation"
    if keyword in DEFINITION_KEYWORDS:
        return "supported"
    if keyword in UNSUPPORTED_KEYWORDS:
        return "rejected"
    return "unclassified"


def _repoint(schema: Any) -> Any:
    """S as the schema of property `value`: its local `$ref`s now start at that property."""
    moved = copy.deepcopy(schema)
    for _, node in walk_schemas(moved):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            node["$ref"] = "#/properties/value" + ref[1:]
    return moved


def wrapped(schema: Any) -> dict[str, Any]:
    outer: dict[str, Any] = {"type": "object", "required": ["value"]}
    inner = _repoint(schema)
    if isinstance(inner, dict):
        for keyword in ("$schema", "$id"):  # the dialect and the base URI belong to the root
            if keyword in inner:
                outer[keyword] = inner.pop(keyword)
    outer["properties"] = {"value": inner}
    return outer


@dataclass
class Tally:
    groups_built: int = 0
    groups_rejected: int = 0
    instances_agreeing: int = 0
    disagreements: list[str] = field(default_factory=list)
    unlocated: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)


def _accepts(model: Any, instance: Any) -> tuple[bool, Any]:
    answer = {"value": instance}
    try:
        held = model.__pydantic_validator__.validate_json(json.dumps(answer), strict=True)
    except ValidationError:
        by_json = False
    else:
        by_json = True
        assert held.model_dump(mode="json") == answer or answer != answer  # NaN never equals itself
    try:
        model.model_validate(answer, strict=True)
    except ValidationError:
        by_python = False
    else:
        by_python = True
    return by_json, by_python


def _reason(message: str) -> str:
    if "is not supported for structured output" in message:
        return message.split("'")[1]
    if "only local references" in message:
        return "remote $ref"
    if "is recursive" in message:
        return "recursive $ref"
    if "points to nothing" in message:
        return "$ref to an anchor or $id"
    if "only JSON Schema Draft 2020-12" in message:
        return "other $schema"
    if "format" in message and "not one the validator checks" in message:
        return "unknown format"
    if "unknown JSON Schema keyword" in message:
        return "unknown keyword"
    return message[:40]


def run_file(path: Path) -> Tally:
    tally = Tally()
    for group in json.loads(path.read_text(encoding="utf-8")):
        schema = wrapped(group["schema"])
        prepared = structured_schema(schema)
        where = f"{path.relative_to(SUITE)}: {group['description']}"
        if isinstance(prepared, list):
            tally.groups_rejected += 1
            for problem in prepared:
                tally.reasons[_reason(problem.message)] += 1
                _, followed = walk_existing(schema, problem.path)
                if followed != tuple(problem.path) or not problem.path:
                    tally.unlocated.append(f"{where}: {problem.message} at {problem.path}")
            continue
        tally.groups_built += 1
        model = build_output_model(schema, "SuiteCase")
        for test in group["tests"]:
            by_json, by_python = _accepts(model, test["data"])
            if by_json == by_python == test["valid"]:
                tally.instances_agreeing += 1
            else:
                tally.disagreements.append(
                    f"{where}: {test['description']}: expected {'valid' if test['valid'] else 'invalid'}, "
                    f"JSON said {by_json}, Python said {by_python}"
                )
    return tally


def test_every_draft_2020_12_keyword_is_supported_an_annotation_or_rejected() -> None:
    assert {k: status(k) for k in DRAFT_2020_12 if status(k) == "unclassified"} == {}
    # `$id` and `$anchor` are refused below the root (see UNSUPPORTED_KEYWORDS), `$id` allowed at it
    assert {"$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary"} <= set(UNSUPPORTED_KEYWORDS)


def test_the_suite_through_the_structured_output_check() -> None:
    tallies = {path.relative_to(SUITE).as_posix(): run_file(path) for path in FILES}
    rows = []
    for name, tally in tallies.items():
        keyword = name.removesuffix(".json")
        if keyword.startswith("optional/format/"):
            keyword = "format"
        rows.append(
            (
                name,
                status(keyword) if keyword in DRAFT_2020_12 else "-",
                tally.groups_built,
                tally.groups_rejected,
                tally.instances_agreeing,
                len(tally.disagreements),
                ", ".join(f"{reason} x{n}" for reason, n in tally.reasons.most_common(3)),
            )
        )
    header = ("file", "keyword", "built", "rejected", "agree", "disagree", "rejected for")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    totals = defaultdict(int)
    for tally in tallies.values():
        totals["built"] += tally.groups_built
        totals["rejected"] += tally.groups_rejected
        totals["agree"] += tally.instances_agreeing
        totals["disagree"] += len(tally.disagreements)
    lines.append(
        f"total: {totals['built']} schemas built, {totals['rejected']} rejected at validate time, "
        f"{totals['agree']} instances agreeing, {totals['disagree']} disagreeing"
    )
    keywords = sorted(DRAFT_2020_12, key=lambda k: (status(k), k))
    lines.append(
        "keywords: "
        + "; ".join(
            f"{group}: {', '.join(k for k in keywords if status(k) == group)}"
            for group in ("supported", "annotation", "rejected")
        )
    )
    print("\n" + "\n".join(lines))

    assert [d for t in tallies.values() for d in t.disagreements] == []
    assert [u for t in tallies.values() for u in t.unlocated] == []
    # What the suite exercises of each supported keyword is mostly built, not refused.
    for name, tally in tallies.items():
        keyword = name.removesuffix(".json")
        if status(keyword) == "supported":
            assert tally.groups_built > 0, name
