"""A document that fails its kind's model is still checked as far as its valid fields allow: a
mistake in one field must not hide unknown references, broken templates, invalid JSON Schemas or
missing plugins elsewhere in the same document — and must not add errors of its own beyond the
field's.

The property: take a spec set whose documents all pass their models but hold reference, template,
schema and plugin errors; break any choice of fields (one line each, replaced by a value of the
wrong type); then the errors are those of the unbroken set, plus errors on the broken lines only,
minus errors on the broken lines only."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_platform._diagnostics import Diagnostic, Diagnostics, Severity
from agent_platform._load import load_text
from agent_platform._spec.kinds import AgentDocument
from agent_platform._validate import PartialSpec, ValidationOptions, validate_documents, validate_paths
from agent_platform._validate.documents import validate_document

API = "apiVersion: agents.platform/v1\n"


def _errors(text: str, tmp_path: Path, name: str = "specs.yaml") -> list[str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    report = validate_paths([path], ValidationOptions(plugin_paths=[tmp_path]))
    return [
        f"{d.location.line}:{d.location.column}: {d.subject}: {d.message}" if d.location else d.message
        for d in report.diagnostics.sorted()
        if d.severity is Severity.ERROR
    ]


MODEL_M = f"---\n{API}kind: Model\nmetadata: {{name: m}}\nspec: {{provider: scripted, on_script_exhausted: synthesize}}\n"


# --- examples -----------------------------------------------------------------------------------


def test_a_field_error_does_not_hide_reference_and_template_errors(tmp_path: Path) -> None:
    spec = (
        f"{API}kind: Agent\nmetadata: {{name: a}}\nspec:\n  model: m\n"
        '  instructions: "{{ inputs.nope }}"\n'
        "  tools: [no-such-tool]\n"
        '  limits: {max_iterations: "x"}\n' + MODEL_M
    )
    assert _errors(spec, tmp_path) == [
        "6:21: Agent/a: 'inputs.nope' is not declared in the inputs schema (it declares no properties)",
        "7:11: Agent/a: unknown Tool 'no-such-tool' (no Tool is defined in the given files)",
        "8:28: Agent/a: spec.limits.max_iterations: expected an integer, got string 'x' (remove the quotes)",
    ]


def test_an_invalid_field_is_not_also_checked_for_references(tmp_path: Path) -> None:
    spec = f"{API}kind: Agent\nmetadata: {{name: a}}\nspec:\n  model: m\n  instructions: Go.\n"
    spec += "  tools: [no-such-tool, 5]\n  delegates: [Not_A_Name]\n" + MODEL_M
    assert _errors(spec, tmp_path) == [
        "7:25: Agent/a: spec.tools[1]: expected a string, got number 5 (quote it)",
        "8:15: Agent/a: spec.delegates[0]: invalid value string 'Not_A_Name': names use lowercase "
        "letters, digits and '-', start and end with a letter or digit, at most 63 characters",
    ]


def test_a_value_fitting_no_branch_of_a_union_does_not_hide_other_fields(tmp_path: Path) -> None:
    """`model` is a name or an inline model; a list fits neither. Its error used to be kept only
    when it was the document's only one."""
    spec = f"{API}kind: Agent\nmetadata: {{name: a}}\nspec:\n  model: [m]\n  instructions: [go]\n"
    assert _errors(spec, tmp_path) == [
        "5:10: Agent/a: spec.model: expected a string, got a list",
        "6:17: Agent/a: spec.instructions: expected a string, got a list",
    ]


def test_a_broken_inputs_schema_leaves_inputs_unchecked_but_the_rest_checked(tmp_path: Path) -> None:
    """Which inputs exist is unknown when their schema is broken: no guesses, but unknown filters
    are still errors."""
    spec = f"{API}kind: Agent\nmetadata: {{name: a}}\nspec:\n  model: m\n"
    spec += '  instructions: "{{ inputs.topic | loudly }}"\n  inputs: [topic]\n' + MODEL_M
    assert _errors(spec, tmp_path) == [
        "6:36: Agent/a: unknown filter 'loudly'",
        "7:11: Agent/a: spec.inputs: expected a mapping, got a list",
    ]


def test_a_pipeline_with_a_broken_field_still_checks_its_steps_and_returns(tmp_path: Path) -> None:
    spec = (
        f"{API}kind: Pipeline\nmetadata: {{name: p}}\nspec:\n"
        "  timeout: soon\n"
        "  steps:\n"
        "    - name: first\n      tool: no-such-tool\n"
        '      input: {q: "{{ inputs.q }}"}\n'
        '  returns: "{{ steps.frist.output }}"\n'
    )
    errors = _errors(spec, tmp_path)
    assert errors[0].startswith("5:12: Pipeline/p: spec.timeout: invalid duration 'soon'")
    assert errors[1:] == [
        "8:13: Pipeline/p: unknown Tool 'no-such-tool' (no Tool is defined in the given files)",
        "9:22: Pipeline/p: 'inputs.q' is not declared in the inputs schema (it declares no properties)",
        "10:16: Pipeline/p: unknown step 'frist' (did you mean 'first'?)",
    ]


def test_a_step_target_broken_elsewhere_still_types_the_step(tmp_path: Path) -> None:
    """The tool's timeout is wrong, its output schema is not: the step reading an undeclared
    property of that output is still told so."""
    spec = (
        f"{API}kind: Tool\nmetadata: {{name: t}}\nspec:\n  description: T.\n"
        "  http: {url: 'https://example.com/t'}\n  timeout: never\n"
        "  output_schema: {type: object, additionalProperties: false, properties: {hits: {type: array}}}\n"
        f"---\n{API}kind: Pipeline\nmetadata: {{name: p}}\nspec:\n  steps:\n"
        "    - {name: first, tool: t}\n"
        '    - {name: second, tool: t, input: {q: "{{ steps.first.output.hist }}"}}\n'
    )
    errors = _errors(spec, tmp_path)
    assert len(errors) == 2, errors
    assert errors[0].startswith("7:12: Tool/t: spec.timeout: invalid duration 'never'")
    assert errors[1] == (
        "16:46: Pipeline/p: 'steps.first.output.hist' is not in the output schema of step 'first' "
        "(did you mean 'hits'?)"
    )


def test_a_reference_to_a_broken_spec_is_not_unknown_and_typos_still_get_a_suggestion(
    tmp_path: Path,
) -> None:
    spec = (
        f"{API}kind: Tool\nmetadata: {{name: search}}\nspec:\n  description: S.\n"
        "  http: {url: 'https://example.com/s'}\n  timeout: never\n"
        f"---\n{API}kind: Agent\nmetadata: {{name: a}}\nspec:\n  model: m\n  instructions: Go.\n"
        "  tools: [search, serch]\n  delegates: [search]\n" + MODEL_M
    )
    errors = _errors(spec, tmp_path)
    assert errors[1:] == [
        "15:19: Agent/a: unknown Tool 'serch' (did you mean 'search'?)",
        "16:15: Agent/a: unknown Agent 'search' ('search' is a Tool, not an Agent)",
    ]


def test_a_cross_field_rule_leaves_each_field_checked(tmp_path: Path) -> None:
    """Two implementations break a rule between fields; each field is valid on its own, so the
    python reference and the http template are checked too."""
    spec = (
        f"{API}kind: Tool\nmetadata: {{name: t}}\nspec:\n  description: T.\n"
        "  python: nosuchmod:run\n"
        '  http: {url: "https://x.test/{{ args.q | loudly }}"}\n'
    )
    errors = _errors(spec, tmp_path)
    assert len(errors) == 3, errors
    assert errors[0].startswith("6:11: Tool/t: python module 'nosuchmod' not found")
    assert errors[1] == (
        "7:3: Tool/t: spec.http: a tool needs exactly one implementation of python, http, mcp "
        "(found: python, http)"
    )
    assert errors[2] == "7:43: Tool/t: unknown filter 'loudly'"


def test_a_guardrail_of_unknown_type_has_nothing_partial(tmp_path: Path) -> None:
    spec = f"{API}kind: Guardrail\nmetadata: {{name: g}}\nspec: {{type: allowlist, tools: [nope]}}\n"
    errors = _errors(spec, tmp_path)
    assert len(errors) == 1 and "unknown type 'allowlist'" in errors[0], errors


def test_a_guardrail_with_a_bad_action_still_checks_its_tools(tmp_path: Path) -> None:
    spec = f"{API}kind: Guardrail\nmetadata: {{name: g}}\nspec: {{type: tool_allowlist, action: stop, tools: [nope]}}\n"
    errors = _errors(spec, tmp_path)
    assert len(errors) == 2, errors
    assert "invalid value 'stop'" in errors[0]
    assert errors[1].endswith("unknown Tool 'nope' (no Tool is defined in the given files)")


def test_a_partial_spec_holds_only_its_valid_fields_and_is_never_compiled() -> None:
    text = f"{API}kind: Agent\nmetadata: {{name: a}}\nspec:\n  model: m\n  instructions: Go.\n  limits: 5\n"
    (document,) = load_text(text.encode(), "a.yaml").documents
    report = validate_documents([document])
    (partial,) = report.specs.partial
    assert isinstance(partial, PartialSpec)
    assert report.specs.specs == [] and ("Agent", "a") in report.specs.invalid
    assert partial.has("model") and partial.has("tools") and not partial.has("limits")
    assert isinstance(partial.model, AgentDocument)
    assert partial.model.spec.tools == []  # absent and optional: its default
    with pytest.raises(AttributeError):
        partial.model.spec.limits  # noqa: B018 - broken: not there to be misread as the default


@pytest.mark.parametrize(
    "text",
    [
        f"{API}kind: Agent\nmetadata: {{name: a}}\nspec: [model, m]\n",
        f"{API}kind: Agent\nmetadata: {{name: a}}\n",
        f"{API}kind: Guardrail\nmetadata: {{name: g}}\nspec: {{applies_to: [input]}}\n",
    ],
)
def test_no_partial_spec_without_a_spec_of_a_known_type(text: str) -> None:
    (document,) = load_text(text.encode(), "a.yaml").documents
    diagnostics = Diagnostics()
    assert validate_document(document, diagnostics) is None
    assert diagnostics.has_errors


# --- the property ---------------------------------------------------------------------------------

# Every document passes its model; the comments mark the errors the set holds.
BASE = f"""\
{API}kind: Model
metadata: {{name: fast}}
spec:
  provider: scripted
  on_script_exhausted: synthesize
  max_tokens: 1000
  timeout: 30s
---
{API}kind: Tool
metadata: {{name: search}}
spec:
  description: Search the corpus.
  python: tools:serch
  input_schema:
    type: object
    required: [query]
    properties:
      query: {{type: string}}
  output_schema:
    type: object
    additionalProperties: false
    properties:
      hits: {{type: array, items: {{type: string}}}}
  timeout: 10s
  retry: {{max_attempts: 2, retry_on: [timeout, nosuchmod:Error]}}
  guardrails: [injection, no-such-guard]
  side_effects: false
---
{API}kind: Tool
metadata: {{name: fetch}}
spec:
  description: Fetch a page.
  http: {{url: "https://example.test/{{{{ args.url | loudly }}}}", method: GET}}
  input_schema:
    type: object
    properties:
      url: {{type: string}}
  output_schema: {{type: strng}}
  idempotency: {{mode: key, key: "{{{{ args.nope }}}}"}}
  timeout: 5s
  requires_approval: false
---
{API}kind: Guardrail
metadata: {{name: injection}}
spec:
  type: prompt_injection
  applies_to: [tool_output]
  action: redact
  patterns: ['(?i)ignore previous']
---
{API}kind: Guardrail
metadata: {{name: allow}}
spec:
  type: tool_allowlist
  tools: [search, ghost-tool]
  action: block
---
{API}kind: Memory
metadata: {{name: mem}}
spec:
  working: {{max_tokens: 4000, compaction: {{model: no-model}}}}
  context_tokens: 100
  ranking: {{relevance: 1.0}}
---
{API}kind: Agent
metadata: {{name: helper}}
spec:
  model: fast
  instructions: "Answer {{{{ inputs.question }}}} and {{{{ inputs.nope }}}}."
  inputs:
    type: object
    required: [question]
    properties:
      question: {{type: string}}
  output:
    type: object
    properties:
      answer: {{type: string}}
  tools: [search, serch-tool]
  delegates: [ghost]
  memory: mem
  guardrails: [allow, no-guard]
  limits: {{max_iterations: 5, timeout: 60s}}
  runtime: {{replicas: 2}}
---
{API}kind: Pipeline
metadata: {{name: flow}}
spec:
  inputs:
    type: object
    required: [text]
    properties:
      text: {{type: string}}
  steps:
    - name: first
      tool: search
      input:
        query: "{{{{ inputs.text }}}}"
    - name: second
      agent: helper
      input:
        question: "{{{{ steps.first.output.nope }}}}"
    - name: third
      tool: no-tool
    - name: fourth
      tool: search
      input:
        query: "{{{{ steps.first.output.hits }}}}"
  returns: "{{{{ steps.second.output.answer | loudly }}}}"
  timeout: 60s
  guardrails: [no-guard]
  runtime: {{replicas: 1}}
---
{API}kind: Supervisor
metadata: {{name: desk}}
spec:
  routes: {{write: {{agent: helper}}, digest: {{pipeline: flow}}, other: {{agent: nobody}}}}
  concurrency: 4
  on_error: collect
  distribution: spread
  max_queue: 100
"""

# What every other check of a spec or of the set reads besides the field it checks: the schemas
# that type templates and step inputs, the steps `returns` sees, the type choosing a guardrail's
# model. Breaking one silences checks elsewhere on purpose (no guessing), so they are not broken
# here; nor is `returns`, which accepts any value.
CONTEXT_FIELDS = {"inputs", "output", "input_schema", "output_schema", "steps", "returns", "type"}
SPEC_FIELD_LINE = re.compile(r"^  (?P<key>[a-z_]+): (?P<value>\S.*)$")
# Values no spec field accepts (other than Any and JSON Schemas, excluded above).
WRONG_VALUES = ("[{}]", "{bogus: [1]}", "[[1]]")
# Codes of the checks that run on what is valid of a document that failed its model.
FIELD_LEVEL_CODES = {
    "unresolved-reference",
    "template",
    "json-schema",
    "python-ref",
    "schema-mismatch",
    "step-input-missing",
    "step-input-unknown",
    "map-over",
    "map-shadow",
    "duplicate-step",
}

LINES = BASE.splitlines(keepends=True)
INJECTABLE = [
    index
    for index, line in enumerate(LINES)
    if (match := SPEC_FIELD_LINE.match(line)) and match["key"] not in CONTEXT_FIELDS
]
PLUGIN = 'def search(query: str) -> dict:\n    """Search."""\n    return {"hits": []}\n'

Key = tuple[int, int, str | None, str, str, str]


def _report(text: str, directory: Path) -> list[Diagnostic]:
    (directory / "tools.py").write_text(PLUGIN, encoding="utf-8")
    (directory / "specs.yaml").write_text(text, encoding="utf-8")
    options = ValidationOptions(plugin_paths=[directory])
    report = validate_paths([directory / "specs.yaml"], options)
    return [d for d in report.diagnostics if d.severity is not Severity.HINT]


def _key(d: Diagnostic) -> Key:
    assert d.location is not None
    return (d.location.line, d.location.column, d.subject, d.severity.value, d.code, d.message)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the base and every variant: messages name the plugin path."""
    return tmp_path_factory.mktemp("partial")


@pytest.fixture(scope="module")
def base_keys(workdir: Path) -> set[Key]:
    return {_key(d) for d in _report(BASE, workdir)}


def test_the_base_set_passes_every_model_and_holds_errors_of_every_field_level_check(
    base_keys: set[Key],
) -> None:
    codes = Counter(code for _, _, _, _, code, _ in base_keys)
    assert not [code for code in codes if code.startswith("invalid-")], codes
    assert {"unresolved-reference", "template", "json-schema", "python-ref"} <= set(codes), codes
    assert codes["unresolved-reference"] >= 9 and codes["template"] >= 5, codes
    assert len(INJECTABLE) >= 30


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    broken=st.dictionaries(st.sampled_from(INJECTABLE), st.sampled_from(WRONG_VALUES), min_size=1, max_size=6)
)
def test_breaking_fields_changes_errors_only_on_the_broken_lines(
    workdir: Path, base_keys: set[Key], broken: dict[int, str]
) -> None:
    lines = list(LINES)
    for index, value in broken.items():
        key = SPEC_FIELD_LINE.match(lines[index])["key"]  # type: ignore[index]
        lines[index] = f"  {key}: {value}\n"
    broken_lines = {index + 1 for index in broken}
    keys = [_key(d) for d in _report("".join(lines), workdir)]

    assert len(keys) == len(set(keys)), "a diagnostic is reported twice"
    for line in broken_lines:
        assert any(k[0] == line and k[4].startswith("invalid-") for k in keys), f"line {line} not reported"
    spurious = sorted(k for k in set(keys) - base_keys if k[0] not in broken_lines)
    assert not spurious, "errors that breaking other fields added"
    lost = sorted(k for k in base_keys - set(keys) if k[0] not in broken_lines and k[4] in FIELD_LEVEL_CODES)
    assert not lost, "errors that breaking other fields hid"
