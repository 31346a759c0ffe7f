"""Pipeline data-flow checks: map items, map outputs, producer/consumer agreement, plugin signatures."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent_platform._diagnostics import Severity
from agent_platform._validate import ValidationOptions, validate_paths

TOOL = """\
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: count}
spec:
  description: Counts words.
  python: pl.tools:count
  input_schema:
    type: object
    additionalProperties: false
    properties: {text: {type: string}, limit: {type: integer}}
    required: [text]
  output_schema: {type: object, properties: {words: {type: integer}}, required: [words]}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: total}
spec:
  description: Adds numbers.
  python: pl.tools:total
  input_schema:
    type: object
    properties: {values: {type: array, items: {type: object}}}
    required: [values]
"""

PLUGIN = """\
def count(text: str, limit: int = 100) -> dict[str, int]:
    return {"words": min(len(text.split()), limit)}


def total(values: list[dict[str, int]]) -> int:
    return sum(v["words"] for v in values)
"""


def _validate(tmp_path: Path, pipeline: str, plugin: str = PLUGIN, import_plugins: bool = False) -> list[str]:
    (tmp_path / "pl").mkdir(exist_ok=True)
    (tmp_path / "pl" / "__init__.py").write_text("")
    (tmp_path / "pl" / "tools.py").write_text(plugin)
    spec = tmp_path / "specs.yaml"
    spec.write_text(TOOL + "---\n" + textwrap.dedent(pipeline))
    report = validate_paths([spec], ValidationOptions(plugin_paths=[tmp_path], import_plugins=import_plugins))
    return [
        f"{d.location.line}:{d.location.column}: {d.message}"
        for d in report.diagnostics.sorted()
        if d.severity is Severity.ERROR and d.location is not None
    ]


HEADER = """\
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: words}
spec:
  inputs:
    type: object
    properties:
      docs: {type: array, items: {type: object, properties: {body: {type: string}, n: {type: integer}}}}
      title: {type: string}
  steps:
"""


def test_valid_map_pipeline_has_no_errors(tmp_path: Path) -> None:
    errors = _validate(
        tmp_path,
        HEADER
        + """\
    - name: each
      tool: count
      map: {over: "{{ inputs.docs }}", as: doc, concurrency: 2}
      input: {text: "{{ doc.body }}"}
    - name: sum
      tool: total
      input: {values: "{{ steps.each.output }}"}
""",
    )
    assert errors == []


def test_map_item_attributes_are_checked_against_the_items_schema(tmp_path: Path) -> None:
    errors = _validate(
        tmp_path,
        HEADER
        + """\
    - name: each
      tool: count
      map: {over: "{{ inputs.docs }}", as: doc}
      input: {text: "{{ doc.bdy }}"}
""",
    )
    assert errors == ["38:25: 'doc.bdy' is not declared in the items of inputs.docs (did you mean 'body'?)"]


def test_map_item_type_must_fit_the_consumer(tmp_path: Path) -> None:
    errors = _validate(
        tmp_path,
        HEADER
        + """\
    - name: each
      tool: count
      map: {over: "{{ inputs.docs }}", as: doc}
      input: {text: "{{ doc.n }}"}
""",
    )
    assert errors == ["38:21: input 'text' of step 'each': doc.n is integer but the consumer expects string"]


def test_map_over_a_declared_non_list_is_an_error(tmp_path: Path) -> None:
    errors = _validate(
        tmp_path,
        HEADER
        + """\
    - name: each
      tool: count
      map: {over: "{{ inputs.title }}"}
      input: {text: "{{ item }}"}
""",
    )
    assert errors == ["37:19: map.over yields inputs.title, a string, not a list"]


def test_a_map_step_yields_a_list_of_its_targets_output(tmp_path: Path) -> None:
    # `each` declares no output: it is a list of count's outputs, which `count` cannot take as text.
    errors = _validate(
        tmp_path,
        HEADER
        + """\
    - name: each
      tool: count
      map: {over: "{{ inputs.docs }}", as: doc}
      input: {text: "{{ doc.body }}"}
    - name: again
      tool: count
      input: {text: "{{ steps.each.output }}"}
""",
    )
    assert errors == [
        "41:21: input 'text' of step 'again': steps.each.output is array but the consumer expects string"
    ]


def test_required_and_unknown_inputs_of_the_target(tmp_path: Path) -> None:
    errors = _validate(
        tmp_path,
        HEADER
        + """\
    - name: one
      tool: count
      input: {limit: 3, txt: "{{ inputs.title }}"}
""",
    )
    assert errors == [
        "37:7: step 'one' does not provide 'text', required by tool 'count'",
        "37:25: step 'one': 'txt' is not an input of tool 'count' (did you mean 'text'?) (accepted: text, limit)",
    ]


def test_import_plugins_compares_signature_with_input_schema(tmp_path: Path) -> None:
    pipeline = (
        HEADER
        + """\
    - name: one
      tool: count
      input: {text: "{{ inputs.title }}"}
"""
    )
    drifted = PLUGIN.replace("def count(text: str, limit: int = 100)", "def count(txt: str, limit: int)")
    assert _validate(tmp_path, pipeline, drifted) == []  # static check: the function exists
    errors = _validate(tmp_path, pipeline, drifted, import_plugins=True)
    assert errors == [
        "6:11: input_schema declares 'text' but 'pl.tools:count' has no such parameter (did you mean 'txt'?)"
    ]


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (
            "def count(text: str, limit: int)",
            "parameter 'limit' of 'pl.tools:count' has no default but input_schema does not require it",
        ),
        (
            "def count(text: str, limit: int = 1, *, extra: int)",
            "parameter 'extra' of 'pl.tools:count' is required but not declared in input_schema",
        ),
        (
            "def count(text, limit: int = 1)",
            "parameter 'text' of 'pl.tools:count' has no type hint; tool arguments need one",
        ),
        ("def count(*args: str)", "'pl.tools:count' takes *args; tool arguments must be named parameters"),
    ],
)
def test_import_plugins_signature_problems(tmp_path: Path, signature: str, message: str) -> None:
    pipeline = (
        HEADER
        + """\
    - name: one
      tool: count
      input: {text: "{{ inputs.title }}"}
"""
    )
    plugin = PLUGIN.replace("def count(text: str, limit: int = 100)", signature)
    assert _validate(tmp_path, pipeline, plugin, import_plugins=True) == [f"6:11: {message}"]


def test_import_plugins_reports_import_errors_located(tmp_path: Path) -> None:
    pipeline = (
        HEADER
        + """\
    - name: one
      tool: count
      input: {text: "{{ inputs.title }}"}
"""
    )
    plugin = "import not_a_module_anywhere\n" + PLUGIN
    errors = _validate(tmp_path, pipeline, plugin, import_plugins=True)
    assert errors[0].startswith("6:11: importing python module 'pl.tools' failed: ModuleNotFoundError")
