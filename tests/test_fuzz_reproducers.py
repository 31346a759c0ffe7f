"""What the fuzzers found, one test each (issue 16).

Crashes: inputs that made `validate` end in an internal error (exit 3) instead of a located
diagnostic. Gaps: specs `validate` passed that `plan` or `run` then rejected, or passed without
checking what they say. Each test fails on the code before its fix."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_platform._compile import build_output_models, compile_specs
from agent_platform._compile.output_models import build_output_model
from agent_platform._diagnostics import Diagnostic, Severity
from agent_platform._load import load_text
from agent_platform._runtime.engine import Runtime
from agent_platform._runtime.outcomes import Outcome
from agent_platform._runtime.rendering import TemplateRenderError, render, render_value
from agent_platform._validate import ValidationOptions, validate_paths

API = "apiVersion: agents.platform/v1\n"
MODEL = f"{API}kind: Model\nmetadata: {{name: m}}\nspec: {{provider: scripted, on_script_exhausted: synthesize}}\n"


def _agent(spec: str, name: str = "a") -> str:
    return f"---\n{API}kind: Agent\nmetadata: {{name: {name}}}\nspec:\n  model: m\n{spec}"


def _validate(tmp_path: Path, text: str, *, import_plugins: bool = False) -> list[Diagnostic]:
    """The errors and warnings `platform validate` reports for `text` (raising nothing), after
    `plan`'s model building when validation passed (validate passing must mean plan passes)."""
    path = tmp_path / "specs.yaml"
    path.write_text(text, encoding="utf-8")
    report = validate_paths([path], ValidationOptions(plugin_paths=[tmp_path], import_plugins=import_plugins))
    if report.ok:
        build_output_models(compile_specs(report.specs), report.diagnostics)
        assert report.ok, [str(d) for d in report.diagnostics.errors]
    return [d for d in report.diagnostics.sorted() if d.severity is not Severity.HINT]


@pytest.fixture
def template_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The source of every template the sandbox parses while the test runs: the work validation
    does on templates, counted instead of timed."""
    from agent_platform._template_sandbox import BoundedEnvironment

    parsed: list[str] = []
    parse = BoundedEnvironment._parse

    def counting(self: BoundedEnvironment, source: str, name: str | None, filename: str | None) -> Any:
        parsed.append(source)
        return parse(self, source, name, filename)

    monkeypatch.setattr(BoundedEnvironment, "_parse", counting)
    return parsed


def _errors(tmp_path: Path, text: str, **options: Any) -> list[str]:
    """`line:column: message` of each error."""
    return [
        f"{d.location.line}:{d.location.column}: {d.message}"
        for d in _validate(tmp_path, text, **options)
        if d.severity is Severity.ERROR and d.location is not None
    ]


def _clean(tmp_path: Path, text: str) -> None:
    found = _validate(tmp_path, text)
    assert not [d for d in found if d.severity is Severity.ERROR], [str(d) for d in found]


# --- crashes: an internal error instead of a located diagnostic --------------------------------


def test_a_duration_too_large_for_a_float_is_a_located_error(tmp_path: Path) -> None:
    """`timeout: 1` followed by 400 zeros: OverflowError in parse_duration."""
    text = MODEL + _agent("  instructions: Hi.\n  limits: {timeout: 1" + "0" * 400 + "}\n")
    assert _errors(tmp_path, text) == [
        "12:21: spec.limits.timeout: a duration must be at most 100 years (3,153,600,000 s)"
    ]


def test_a_regex_repetition_past_the_c_limit_is_a_located_error(tmp_path: Path) -> None:
    """OverflowError from re.compile: only re.error was caught."""
    text = f"{API}kind: Guardrail\nmetadata: {{name: g}}\nspec:\n  type: regex\n  applies_to: [input]\n"
    text += "  patterns: ['a{0,18446744073709551617}']\n"
    assert _errors(tmp_path, text) == ["7:14: invalid regular expression: the repetition number is too large"]


def test_regex_groups_nested_past_the_parser_stack_are_a_located_error(tmp_path: Path) -> None:
    text = f"{API}kind: Guardrail\nmetadata: {{name: g}}\nspec:\n  type: regex\n  applies_to: [input]\n"
    text += "  patterns: ['" + "(" * 1000 + "a" + ")" * 1000 + "']\n"
    assert _errors(tmp_path, text) == ["7:14: invalid regular expression: groups nest more than 100 deep"]


def test_a_deeply_nested_template_expression_is_a_located_error(tmp_path: Path) -> None:
    """`{{ ((((...400 levels...1)))) }}`: RecursionError in the template analysis."""
    text = MODEL + _agent('  instructions: "{{ ' + "(" * 400 + "1" + ")" * 400 + ' }}"\n')
    assert _errors(tmp_path, text) == [
        "11:18: template syntax error: template nests too deeply (at most 32 levels of brackets and 64 "
        "levels of blocks, expressions, filters and attributes)"
    ]


@pytest.mark.parametrize(
    "template",
    [
        "{{ x" + "|upper" * 200 + " }}",  # parsed without recursion, but compiled with it
        "{{ x" + ".a" * 200 + " }}",
        "{{ " + "not " * 2000 + "x }}",
        "{% if x %}" * 300 + "{% endif %}" * 300,
    ],
    ids=["filters", "attributes", "nots", "blocks"],
)
def test_every_kind_of_deep_template_is_refused_the_same_way_at_validate_and_run_time(
    tmp_path: Path, template: str
) -> None:
    text = MODEL + _agent("  instructions: " + json.dumps(template) + "\n")
    [error] = _errors(tmp_path, text)
    assert "template nests too deeply" in error
    with pytest.raises(Exception, match="template nests too deeply"):
        render(template, {"x": "y"}, where="instructions")


def test_loops_nested_past_what_python_compiles_are_refused_by_validate(tmp_path: Path) -> None:
    """21 nested `for` loops parse, but the Python code Jinja generates for them does not compile
    ("too many statically nested blocks"): validate passed, every run failed."""
    template = "{% for a in inputs.x %}" * 21 + "{{ a }}" + "{% endfor %}" * 21
    text = MODEL + _agent(
        "  instructions: " + json.dumps(template) + "\n"
        "  inputs: {type: object, properties: {x: {type: array}}, required: [x]}\n"
    )
    assert _errors(tmp_path, text) == ["11:18: template syntax error: loops nest more than 16 deep"]


def test_a_script_path_too_long_for_the_os_is_a_located_error(tmp_path: Path) -> None:
    """A 300-character `script:`: OSError (File name too long) from Path.is_file."""
    text = (
        f"{API}kind: Model\nmetadata: {{name: m}}\nspec: {{provider: scripted, script: {'a' * 300}.jsonl}}\n"
    )
    [error] = _errors(tmp_path, text)
    assert error.startswith("4:36: script file 'aaaa") and "not found" in error


def test_required_not_a_list_in_a_schema_read_by_templates_is_a_located_error(tmp_path: Path) -> None:
    """`required: 1.5` in an inputs schema a template reads: TypeError."""
    text = MODEL + _agent(
        '  instructions: "{{ inputs.x }}"\n'
        "  inputs: {type: object, properties: {x: {type: string}}, required: 1.5}\n"
    )
    assert _errors(tmp_path, text) == ['12:69: invalid JSON Schema: 1.5 is not of type "array"']


def test_required_not_a_list_in_a_tool_schema_under_import_plugins_is_a_located_error(tmp_path: Path) -> None:
    """The same `required: 1.5`, read by the signature check of `--import-plugins`: TypeError."""
    (tmp_path / "tools.py").write_text("def count(text: str) -> int:\n    return len(text)\n")
    text = (
        f"{API}kind: Tool\nmetadata: {{name: count}}\nspec:\n  description: Count.\n  python: tools:count\n"
    )
    text += "  input_schema: {type: object, properties: {text: {type: string}}, required: 1.5}\n"
    assert _errors(tmp_path, text, import_plugins=True) == [
        '7:78: invalid JSON Schema: 1.5 is not of type "array"'
    ]


def test_an_integer_too_long_to_convert_is_a_located_error(tmp_path: Path) -> None:
    """5,000 digits: ValueError (Python's int-string conversion limit) in the loader."""
    text = MODEL + _agent("  instructions: Hi.\n  limits: {max_iterations: " + "1" * 5000 + "}\n")
    assert _errors(tmp_path, text) == [
        "12:28: integer of about 5,000 digits is too large (at most 4,300 digits); quote it if it is "
        "meant as text"
    ]


def test_a_float_tag_on_an_integer_beyond_the_float_range_is_a_located_error(tmp_path: Path) -> None:
    text = MODEL + _agent("  instructions: Hi.\n  limits: {max_cost_usd: !!float 1" + "0" * 400 + "}\n")
    assert _errors(tmp_path, text) == ["12:26: spec.limits.max_cost_usd: expected a finite number, got inf"]


# --- validate passed what it should not have -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (".nan", "a duration must be a number, not NaN"),
        (".inf", "a duration must be at most 100 years (3,153,600,000 s)"),
        ('"' + "9" * 300 + 's"', "a duration must be at most 100 years (3,153,600,000 s)"),
    ],
)
def test_durations_that_are_not_a_finite_number_of_seconds_are_errors(
    tmp_path: Path, value: str, message: str
) -> None:
    text = MODEL + _agent(f"  instructions: Hi.\n  limits: {{timeout: {value}}}\n")
    assert _errors(tmp_path, text) == [f"12:21: spec.limits.timeout: {message}"]


def test_infinite_and_nan_numbers_are_errors_everywhere(tmp_path: Path) -> None:
    text = MODEL + _agent("  instructions: Hi.\n  limits: {max_cost_usd: .inf}\n")
    assert _errors(tmp_path, text) == ["12:26: spec.limits.max_cost_usd: expected a finite number, got inf"]


def test_an_aliased_string_counts_its_text_each_time_it_is_used() -> None:
    """A 280 kB file whose 200 kB anchored string is aliased 20,000 times passed the node limit
    and then took 4 GB of data into validation."""
    text = "a: &s " + "x" * 200_000 + "\nb: [" + ", ".join(["*s"] * 20_000) + "]\n"
    tracemalloc.start()
    result = load_text(text, "bomb.yaml")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [str(d) for d in result.diagnostics] == [
        "bomb.yaml:2:81: document expands to more than 4,194,304 characters of text (aliases are "
        "counted each time they are used); split it or remove aliases"
    ]
    assert peak < 20 * 2**20  # refused as it counted, before the text was built


def test_a_file_of_tens_of_thousands_of_template_tags_is_refused_unparsed(
    tmp_path: Path, template_parses: list[str]
) -> None:
    """80,000 `{{ x }}` in one instructions string (547 KiB, under the file limit) were all parsed
    and checked: far past the time bound of a file. Now the file is refused before any parse."""
    text = MODEL + _agent('  instructions: "' + "{{ x }} " * 80_000 + '"\n')
    errors = _errors(tmp_path, text)
    assert template_parses == []
    assert errors == [
        "11:17: the templates in this file add up to more than 262,144 characters (aliases counted "
        "each time they are used); split the file"
    ]


def test_a_file_at_the_template_budget_validates_with_one_parse(
    tmp_path: Path, template_parses: list[str]
) -> None:
    """The most parser work a file may ask for: templates up to the per-file budget, each tag as
    deeply bracketed as allowed, parsed once (the budget bounds what that one parse costs)."""
    tag = "{{ " + "(" * 32 + "inputs.x" + ")" * 32 + " }}"
    text = MODEL + _agent(
        "  inputs: {type: object, properties: {x: {type: string}}, required: [x]}\n"
        '  instructions: "' + tag * (250_000 // len(tag)) + '"\n'
    )
    assert _errors(tmp_path, text) == []
    assert len(template_parses) == 1


def test_one_template_repeating_a_mistake_reports_it_once_and_counts_the_rest(
    tmp_path: Path, template_parses: list[str]
) -> None:
    template = " ".join(f"{{{{ x{i} }}}}" for i in range(3000))
    text = MODEL + _agent("  instructions: " + json.dumps(template) + "\n")
    errors = _errors(tmp_path, text)
    assert len(template_parses) == 1  # parsed and walked once, however many problems it has
    assert len(errors) == 21
    assert [e for e in errors if e.endswith(": ... and 2,980 more problems in this template")]


def test_a_template_variable_is_the_input_not_a_method_of_the_mapping() -> None:
    """`{{ inputs.items }}` resolved to `dict.items`: "map.over must yield a list, got
    builtin_function_or_method"."""
    inputs = {"items": [1, 2], "keys": "k", "values": {"v": 1}}
    context = {"inputs": inputs}
    assert render_value("{{ inputs.items }}", context, where="map.over") == [1, 2]
    assert render("{{ inputs.keys }} {{ inputs.values.v }}", context, where="prompt") == "k 1"
    # a key that is not there still leaves the mapping's methods usable
    assert render("{{ inputs.values.items() | list }}", context, where="prompt") == "[('v', 1)]"


class _ToolOutput(Mapping[str, Any]):
    """A mapping that is not a dict, as a Python tool may return one."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


MAPPING_METHODS = sorted(
    {name for name in dir(dict) + dir(Mapping) + dir(_ToolOutput) if not name.startswith("_")}
)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(MAPPING_METHODS) | st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True),
    value=st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3)),
    kind=st.sampled_from([dict, MappingProxyType, _ToolOutput]),
)
def test_a_key_of_any_mapping_wins_over_its_attributes(name: str, value: Any, kind: Any) -> None:
    """Only a `dict`'s keys won: a step output held in another mapping type still resolved
    `.items` or `.keys` to the method."""
    data = kind({name: value, "other": 0})
    context = {"steps": {"s": {"output": data}}}
    assert render_value("{{ steps.s.output." + name + " }}", context, where="returns") == value
    assert render_value("{{ steps.s.output['" + name + "'] }}", context, where="returns") == value
    assert render_value(
        "{{ [steps.s.output] | map(attribute='" + name + "') | list }}", context, where="r"
    ) == [value]


def test_a_subscript_of_a_mapping_never_reads_a_method() -> None:
    """`inputs['keys']` without such a key fell back to `dict.keys`; it is undefined, as
    `inputs.keys` would be for validate."""
    context = {"inputs": {"n": 1}}
    with pytest.raises(
        TemplateRenderError, match="undefined variable: 'dict object' has no attribute 'keys'"
    ):
        render("{{ inputs['keys'] }}", context, where="prompt")
    with pytest.raises(TemplateRenderError, match="undefined variable"):
        render_value("{{ [inputs] | map(attribute='items') | first }}", context, where="prompt")
    # the methods stay reachable by attribute where no key has their name
    assert render("{{ inputs.keys() | list }}", context, where="prompt") == "['n']"


def test_a_mapping_method_on_declared_data_is_an_undeclared_property_with_the_filter_to_use(
    tmp_path: Path,
) -> None:
    """`.items()` reads a key named `items` when the run's data has one, so validate does not
    take it for the method; it says what to write instead, and that renders."""
    inputs = "  inputs: {type: object, properties: {obj: {type: object, properties: {a: {type: string}}}}, required: [obj]}\n"
    template = "{% for k, v in inputs.obj.items() %}{{ k }}={{ v }}{% endfor %}"
    [error] = _errors(tmp_path, MODEL + _agent(f"  instructions: {json.dumps(template)}\n{inputs}"))
    assert error.endswith(
        "'inputs.obj.items' is not declared in the inputs schema ('.items' reads a key named 'items', "
        "not the method: for the key-value pairs, write `| items`)"
    )
    fixed = "{% for k, v in inputs.obj | items %}{{ k }}={{ v }}{% endfor %}"
    _clean(tmp_path, MODEL + _agent(f"  instructions: {json.dumps(fixed)}\n{inputs}"))
    assert render(fixed, {"inputs": {"obj": {"a": "x", "items": 1}}}, where="instructions") == "a=xitems=1"


@pytest.mark.parametrize("name", ["items", "keys", "values", "get", "pop", "update", "copy", "clear"])
def test_inputs_named_like_mapping_methods_validate_and_render_as_the_input(
    tmp_path: Path, name: str
) -> None:
    """validate's reading of `inputs.<name>` (the declared input) is what rendering does."""
    template = "{{ inputs." + name + " | length }} {% for x in inputs." + name + " %}{{ x }}{% endfor %}"
    text = MODEL + _agent(
        f"  instructions: {json.dumps(template)}\n"
        f"  inputs: {{type: object, properties: {{{name}: {{type: array}}}}, required: [{name}]}}\n"
    )
    _clean(tmp_path, text)
    assert render(template, {"inputs": {name: ["a", "b"]}}, where="instructions") == "2 ab"


async def test_a_pipeline_maps_over_an_input_named_items(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text("def double(n: int) -> int:\n    return 2 * n\n")
    text = (
        f"{API}kind: Tool\nmetadata: {{name: double}}\nspec: {{description: Double., python: tools:double}}\n"
        f"---\n{API}kind: Pipeline\nmetadata: {{name: p}}\nspec:\n"
        "  inputs: {type: object, properties: {items: {type: array, items: {type: integer}}}, required: [items]}\n"
        "  steps:\n"
        "    - name: each\n"
        "      tool: double\n"
        "      map: {over: '{{ inputs.items }}', as: n}\n"
        "      input: {n: '{{ n }}'}\n"
        "  returns: '{{ steps.each.output }}'\n"
    )
    path = tmp_path / "specs.yaml"
    path.write_text(text, encoding="utf-8")
    report = validate_paths([path], ValidationOptions(plugin_paths=[tmp_path]))
    assert report.ok, [str(d) for d in report.diagnostics]
    runtime = Runtime(compile_specs(report.specs), plugin_paths=[tmp_path])
    try:
        result = await runtime.run("p", {"items": [1, 2, 3]})
    finally:
        await runtime.aclose()
    assert result.outcome is Outcome.COMPLETED, result.error
    assert result.output == [2, 4, 6]


def test_an_invalid_pattern_in_an_output_schema_is_a_validate_error(tmp_path: Path) -> None:
    """Valid for the meta-schema (which does not assert `format: regex`), then `plan` failed."""
    text = MODEL + _agent(
        "  instructions: Hi.\n  output: {type: object, properties: {code: {type: string, pattern: '(['}}}\n"
    )
    assert _errors(tmp_path, text) == ['12:69: invalid JSON Schema: "([" is not a "regex"']


def test_an_invalid_pattern_in_any_schema_is_a_validate_error(tmp_path: Path) -> None:
    """An inputs schema is compiled at run time by the inputs check: the same error there."""
    text = MODEL + _agent(
        "  instructions: Hi.\n  inputs: {type: object, properties: {code: {type: string, pattern: '(['}}}\n"
    )
    assert _errors(tmp_path, text) == ['12:69: invalid JSON Schema: "([" is not a "regex"']


UNBUILDABLE = {
    # Each validated, then `plan` said "cannot build a structured-output model".
    "an untyped property": ({"details": {"description": "Anything."}}, [{"details": [1, {"a": None}]}], []),
    "an empty sub-schema": ({"x": {}}, [{"x": "anything"}], []),
    "boolean sub-schemas": ({"yes": True, "no": False}, [{"yes": 1}], [{"no": 1}]),
    "untyped anyOf branches": (
        {"x": {"anyOf": [{"minimum": 3}, {"maxLength": 2}]}},
        [{"x": 5}, {"x": "ab"}, {"x": "abc"}],  # a bound of another type holds vacuously
        [],
    ),
    "an empty enum": ({"x": {"enum": []}}, [{}], [{"x": None}]),
    "an array without items": ({"x": {"type": "array"}}, [{"x": [1, "a", None]}], [{"x": {}}]),
    "a property named __proto__": (
        {"__proto__": {"type": "integer"}},
        [{"__proto__": 1}],
        [{"__proto__": "1"}],
    ),
}


@pytest.mark.parametrize("case", list(UNBUILDABLE), ids=list(UNBUILDABLE))
def test_schemas_the_model_builder_could_not_build_validate_build_and_check(
    tmp_path: Path, case: str
) -> None:
    properties, accepted, refused = UNBUILDABLE[case]
    schema = {"type": "object", "properties": properties}
    _clean(tmp_path, MODEL + _agent(f"  instructions: Hi.\n  output: {json.dumps(schema)}\n"))
    model = build_output_model(schema, "Answer")
    for value in accepted:
        assert model.model_validate_json(json.dumps(value), strict=True).model_dump() == value
    for value in refused:
        with pytest.raises(ValidationError):
            model.model_validate_json(json.dumps(value), strict=True)


def test_a_ref_to_a_boolean_schema_builds(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"x": {"$ref": "#/$defs/never"}}, "$defs": {"never": False}}
    _clean(tmp_path, MODEL + _agent(f"  instructions: Hi.\n  output: {json.dumps(schema)}\n"))
    model = build_output_model(schema, "Answer")
    assert model.model_validate({}).model_dump() == {}
    with pytest.raises(ValidationError):
        model.model_validate({"x": 1})


# What the structured-output model accepted although the schema forbids it.
FORBIDDEN = [
    ({"type": "object", "required": ["id", "ok"], "properties": {"ok": {"type": "boolean"}}}, {"ok": True}),
    ({"type": "object", "additionalProperties": {"type": "boolean"}}, {"flag": "yes"}),
    ({"type": "object", "properties": {"ok": {"const": True}}}, {"ok": 1}),
    ({"type": "object", "properties": {"ok": {"type": "boolean"}}}, {"ok": 1}),
    ({"type": "object", "properties": {"n": {"type": "integer"}}}, {"n": "5"}),
    (
        {"type": "object", "properties": {"tags": {"type": "array", "enum": [["a", "b"]]}}},
        {"tags": ["b", "a"]},
    ),
    (
        {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}},
        {"at": "yesterday"},
    ),
]


@pytest.mark.parametrize(("schema", "answer"), FORBIDDEN)
def test_the_structured_output_model_refuses_what_its_schema_forbids(
    schema: dict[str, Any], answer: dict[str, Any]
) -> None:
    model = build_output_model(schema, "Answer")
    with pytest.raises(ValidationError, match="does not match its JSON Schema"):
        model.model_validate_json(json.dumps(answer), strict=True)
    with pytest.raises(ValidationError, match="does not match its JSON Schema"):
        model.model_validate(answer)


def test_the_model_holds_the_answer_exactly_as_given() -> None:
    """Integers stay integers where the schema says number, 1.0 is an integer, nothing is filled
    in or dropped: what the run gets is the JSON that was checked."""
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "number"},
            "i": {"type": "integer"},
            "opt": {"type": "string", "default": "x"},
        },
        "additionalProperties": True,
    }
    model = build_output_model(schema, "Answer")
    answer = {"n": 3, "i": 1.0, "extra": {"deep": [1, 2]}}
    held = model.model_validate_json(json.dumps(answer), strict=True)
    assert held.model_dump(mode="json") == answer
    assert held.model_dump(mode="json", exclude_unset=True) == answer


async def test_an_agent_final_answer_the_schema_forbids_never_completes_a_run(tmp_path: Path) -> None:
    """The agent loop's final answer goes through the output model (the loop is unchanged): a
    scripted answer with `ok: 1` for `const: true` fails the run instead of completing it."""
    script = {"responses": {"a": [{"action": {"action": "final_answer", "answer": {"ok": 1}}}]}}
    (tmp_path / "script.yaml").write_text(json.dumps(script))
    text = (
        f"{API}kind: Model\nmetadata: {{name: m}}\nspec: {{provider: scripted, script: script.yaml, "
        "on_script_exhausted: error}\n"
        + _agent(
            "  instructions: Answer.\n  output: {type: object, properties: {ok: {const: true}}, required: [ok]}\n"
        )
    )
    path = tmp_path / "specs.yaml"
    path.write_text(text, encoding="utf-8")
    report = validate_paths([path], ValidationOptions(plugin_paths=[tmp_path]))
    assert report.ok, [str(d) for d in report.diagnostics]
    runtime = Runtime(compile_specs(report.specs), plugin_paths=[tmp_path])
    try:
        result = await runtime.run("a", {})
    finally:
        await runtime.aclose()
    assert result.outcome is not Outcome.COMPLETED
    assert "does not match its JSON Schema" in (result.error or ""), result.error


@pytest.mark.parametrize(
    "annotation",
    [
        "nullable: true",
        "example: 42",
        "x-order: 3",
        "contentMediaType: text/plain",
        "optional: true",
        "deprecated: true",
        "examples: [1]",
    ],
)
def test_annotation_keywords_in_tool_schemas_are_accepted_and_ignored(
    tmp_path: Path, annotation: str
) -> None:
    """Tool schemas taken from OpenAPI documents and public function-calling sets carry them."""
    text = (
        f"{API}kind: Tool\nmetadata: {{name: t}}\nspec:\n  description: T.\n"
        "  http: {url: 'https://example.invalid/t', method: POST, body: {n: '{{ args.n }}'}}\n"
        f"  input_schema: {{type: object, properties: {{n: {{type: integer, {annotation}}}}}}}\n"
    )
    _clean(tmp_path, text)
    model = build_output_model(
        {"type": "object", "properties": {"n": {"type": "integer", **_yaml_pair(annotation)}}}, "T"
    )
    assert model.model_validate({"n": 1}).model_dump() == {"n": 1}
    shown = model.model_json_schema()["properties"]["n"]
    assert not any(key.startswith("x-") or key in ("nullable", "example", "optional") for key in shown)


ANNOTATIONS = (
    "nullable: true, example: {a: [1]}, examples: [1, 2], x-order: 3, x-vendor: {deep: [null]}, "
    "contentMediaType: text/plain, contentEncoding: base64, optional: true, deprecated: true, "
    "readOnly: true, writeOnly: false, $comment: why, title: T, description: D, default: 1"
)
# Annotations on the schema, on a property, and inside items, anyOf branches and $defs.
ANNOTATED = (
    f"{{type: object, {ANNOTATIONS}, required: [n, l, u, d], $defs: {{i: {{type: integer, {ANNOTATIONS}}}}}, "
    f"properties: {{n: {{type: integer, {ANNOTATIONS}}}, "
    f"l: {{type: array, {ANNOTATIONS}, items: {{type: integer, {ANNOTATIONS}}}}}, "
    f"u: {{{ANNOTATIONS}, anyOf: [{{type: integer, {ANNOTATIONS}}}, {{type: string, {ANNOTATIONS}}}]}}, "
    f"d: {{$ref: '#/$defs/i', {ANNOTATIONS}}}}}}}"
)
ANNOTATED_PLACES = {
    "agent output and inputs": MODEL
    + _agent(f"  instructions: 'Hi {{{{ inputs.n }}}}'\n  inputs: {ANNOTATED}\n  output: {ANNOTATED}\n"),
    "http tool": f"{API}kind: Tool\nmetadata: {{name: t}}\nspec:\n  description: T.\n"
    "  http: {url: 'https://example.invalid/t', method: POST, body: {n: '{{ args.n }}'}}\n"
    f"  input_schema: {ANNOTATED}\n  output_schema: {ANNOTATED}\n",
    "python tool and pipeline": f"{API}kind: Tool\nmetadata: {{name: t}}\nspec:\n  description: T.\n"
    f"  python: tools:f\n  input_schema: {ANNOTATED}\n  output_schema: {ANNOTATED}\n"
    f"---\n{API}kind: Pipeline\nmetadata: {{name: p}}\nspec:\n  inputs: {ANNOTATED}\n  steps:\n"
    "    - {name: s, tool: t, input: {n: '{{ inputs.n }}', l: '{{ inputs.l }}', u: '{{ inputs.u }}', "
    "d: '{{ inputs.d }}'}}\n"
    f"  output: {ANNOTATED}\n  returns: '{{{{ steps.s.output }}}}'\n",
}


@pytest.mark.parametrize("import_plugins", [False, True])
@pytest.mark.parametrize("place", list(ANNOTATED_PLACES))
def test_every_annotation_keyword_is_accepted_wherever_a_schema_is(
    tmp_path: Path, place: str, import_plugins: bool
) -> None:
    (tmp_path / "tools.py").write_text(
        "from typing import Any\n\ndef f(n: int, l: list[int], u: int | str, d: int) -> dict[str, Any]:\n"
        "    return {'n': n, 'l': l, 'u': u, 'd': d}\n"
    )
    found = _validate(tmp_path, ANNOTATED_PLACES[place], import_plugins=import_plugins)
    assert not [d for d in found if d.severity is Severity.ERROR], [str(d) for d in found]


def test_annotations_constrain_nothing_in_the_structured_output_check() -> None:
    """`nullable`, `readOnly`, `default`... do not change what an answer may be."""
    schema = load_text(ANNOTATED, "schema.yaml").documents[0].data
    assert isinstance(schema, dict)
    model = build_output_model(schema, "Answer")
    answer = {"n": 1, "l": [2], "u": "x", "d": 3}
    assert model.model_validate(answer).model_dump() == answer
    for wrong in ({**answer, "n": None}, {**answer, "l": ["a"]}, {"n": 1, "l": [], "u": 1}):
        with pytest.raises(ValidationError):
            model.model_validate(wrong)


def test_the_spec_reference_lists_the_annotation_keywords_as_accepted_and_ignored() -> None:
    from agent_platform._devtools import docs_gen

    [line] = [
        line for line in docs_gen.render().splitlines() if line.startswith("- **accepted and ignored**")
    ]
    for keyword in (
        "nullable", "example", "examples", "contentMediaType", "contentEncoding", "optional", "deprecated",
        "readOnly", "writeOnly", "$comment", "title", "description", "default",
    ):  # fmt: skip
        assert f"`{keyword}`" in line, keyword
    assert "`x-...`" in line


def _yaml_pair(text: str) -> dict[str, Any]:
    loaded = load_text(f"{{{text}}}", "pair.yaml").documents[0].data
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize(
    ("keyword", "message"),
    [
        (
            "maxLenght: 3",
            "unknown JSON Schema keyword 'maxLenght' (did you mean 'maxLength'?): structured output "
            "enforces every keyword of Draft 2020-12 and ignores annotations (such as 'description', "
            "'example' or 'x-...'), so an unknown one would check nothing",
        ),
        (
            "format: colour",
            "format 'colour' is not one the validator checks (known: date, date-time, duration, "
            "email, hostname, idn-email, idn-hostname, ipv4, ipv6, iri, iri-reference, json-pointer, "
            "regex, relative-json-pointer, time, uri, uri-reference, uri-template, uuid); remove it "
            "or describe it in 'description'",
        ),
    ],
)
def test_keywords_structured_output_cannot_enforce_are_errors(
    tmp_path: Path, keyword: str, message: str
) -> None:
    text = MODEL + _agent(
        f"  instructions: Hi.\n  output:\n    type: object\n    properties:\n      x: {{type: string, {keyword}}}\n"
    )
    [error] = _errors(tmp_path, text)
    assert error.split(": ", 1)[1] == message


def test_a_recursive_ref_in_an_output_schema_is_an_error_at_the_ref(tmp_path: Path) -> None:
    text = MODEL + _agent(
        "  instructions: Hi.\n"
        "  output:\n"
        "    type: object\n"
        "    properties: {root: {$ref: '#/$defs/node'}}\n"
        "    $defs:\n"
        "      node: {type: object, properties: {children: {type: array, items: {$ref: '#/$defs/node'}}}}\n"
    )
    assert _errors(tmp_path, text) == [
        "16:79: reference '#/$defs/node' is recursive: a recursive schema cannot be written out for a "
        "model to read, so structured output does not support it"
    ]


def test_refs_are_written_out_for_the_model_and_checked_as_declared() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/pos"}, "b": {"$ref": "#/$defs/pos", "maximum": 9}},
        "$defs": {"pos": {"type": "integer", "minimum": 1}},
    }
    model = build_output_model(schema, "Answer")
    shown = model.model_json_schema()
    assert shown["properties"] == {
        "a": {"type": "integer", "minimum": 1},
        "b": {"maximum": 9, "allOf": [{"type": "integer", "minimum": 1}]},
    }
    assert "$defs" not in shown
    assert model.model_validate({"a": 1, "b": 9}).model_dump() == {"a": 1, "b": 9}
    with pytest.raises(ValidationError):
        model.model_validate({"b": 10})


# --- templates that parse but cannot run ------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{% include 'other' %}",
            "'{% include %}' loads another template, and spec templates have none to load: write the "
            "text inline, or use a macro defined in this template",
        ),
        (
            "{% block a %}{% endblock %}{% block a %}{% endblock %}",
            "block 'a' defined twice (first at line 1)",
        ),
        (
            "{% for loop in inputs.x %}{% endfor %}",
            "a for loop cannot assign to 'loop' (Jinja's loop variable)",
        ),
        (
            "{% macro m(caller) %}{{ caller() }}{% endmacro %}",
            "the 'caller' argument of a macro or call block must have a default",
        ),
    ],
)
def test_templates_jinja_refuses_to_compile_are_validate_errors(
    tmp_path: Path, template: str, message: str
) -> None:
    text = MODEL + _agent(
        "  instructions: " + json.dumps(template) + "\n"
        "  inputs: {type: object, properties: {x: {type: array}}, required: [x]}\n"
    )
    [error] = _errors(tmp_path, text)
    assert error.split(": ", 1)[1] == message
    with pytest.raises(Exception):  # noqa: B017 - each is its own Jinja error
        render(template, {"inputs": {"x": []}}, where="instructions")


# --- YAML libyaml reads differently from the YAML spec ------------------------------------------


def test_a_tab_after_a_block_indicator_is_named_as_separation_not_indentation() -> None:
    result = load_text("items:\n  - \tx\n", "tabs.yaml")
    assert [str(d) for d in result.diagnostics] == [
        "tabs.yaml:2:5: tab character after '-': YAML allows a tab to separate it from what follows, "
        "but the parser does not accept one here; use a space"
    ]
    indented = load_text("items:\n\t- x\n", "tabs.yaml")
    assert [str(d) for d in indented.diagnostics] == [
        "tabs.yaml:2:1: tab character in indentation; YAML requires spaces"
    ]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("a: 1\n\t\nb: 2\n", "2:1", "tab character on a line holding only whitespace: YAML allows it"),
        (" \t\na: 1\n", "1:2", "tab character on a line holding only whitespace: YAML allows it"),
        ("a: 1\n\t# note\nb: 2\n", "2:1", "tab character on a line holding only a comment: YAML allows it"),
        ("a: |\n  \tindented text\n", "2:3", "tab character at the start of a block scalar's text, after"),
        ("- >\n  \tx\n", "2:3", "tab character at the start of a block scalar's text, after"),
        # invalid YAML: the indentation itself holds the tab
        ("a:\n\tb: 1\n", "2:1", "tab character in indentation; YAML requires spaces"),
        ("a: |\n\ttext\n", "2:1", "tab character in indentation; YAML requires spaces"),
        ("a: |4\n  \ttext\n", "2:3", "tab character in indentation; YAML requires spaces"),
    ],
)
def test_tabs_libyaml_refuses_are_named_for_what_they_are(text: str, where: str, message: str) -> None:
    """Each was "tab character in indentation", also where YAML allows the tab."""
    [diagnostic] = load_text(text, "tabs.yaml").diagnostics
    assert str(diagnostic).startswith(f"tabs.yaml:{where}: {message}"), str(diagnostic)


def test_a_block_scalar_given_its_indentation_keeps_a_leading_tab() -> None:
    """The fix the message proposes works."""
    assert load_text("a: |2\n  \ttext\n", "tabs.yaml").documents[0].data == {"a": "\ttext\n"}


_SEPARATION = st.sampled_from([" ", "\t", " \t", "\t ", "  "])
_BETWEEN = st.sampled_from(["", "\n", " \n", "\t\n", " \t \n", "# c\n", "\t# c\n", "  # c\n"])


@settings(max_examples=300, deadline=None)
@given(
    entries=st.lists(
        st.tuples(
            st.from_regex(r"k[a-z]{0,5}", fullmatch=True),
            st.from_regex(r"v[a-z0-9]{0,5}", fullmatch=True),
            _SEPARATION,
            _BETWEEN,
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda entry: entry[0],
    )
)
def test_tabs_where_yaml_allows_them_load_or_are_named_never_as_indentation(
    entries: list[tuple[str, str, str, str, bool]],
) -> None:
    """Tabs only where YAML 1.2 allows them (separating a key's `:` or a `-` from the value, on
    blank and comment lines; no line is indented with one): the file loads as written, or the error
    points at one of those tabs and does not call it indentation."""
    lines, expected = [], {}
    for key, value, separation, between, as_list in entries:
        lines.append(f"{key}:{separation}{value}\n" if not as_list else f"{key}:\n  -{separation}{value}\n")
        lines.append(between)
        expected[key] = [value] if as_list else value
    text = "".join(lines)
    result = load_text(text, "tabs.yaml")
    if not result.diagnostics:
        assert [d.data for d in result.documents] == [expected]
        return
    [diagnostic] = result.diagnostics
    location = diagnostic.location
    assert location is not None
    assert text.splitlines()[location.line - 1][location.column - 1] == "\t", str(diagnostic)
    assert "in indentation" not in diagnostic.message, (text, str(diagnostic))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("key: &a.b value\n", "1:6: anchor '&a.b': YAML allows '.' in anchor names, but the parser does not"),
        ("key: &é value\n", "1:6: anchor '&é': YAML allows 'é' in anchor names, but the parser does not"),
        ("key: &0% value\n", "1:6: anchor '&0%': YAML allows '%' in anchor names, but the parser does not"),
        ("[&a, *b.c]\n", "1:6: alias '*b.c': YAML allows '.' in alias names, but the parser does not"),
    ],
)
def test_an_anchor_name_libyaml_refuses_is_named_as_valid_yaml_it_cannot_read(
    text: str, message: str
) -> None:
    """Each was "invalid YAML: ... did not find expected alphabetic or numeric character" (or
    "found character that cannot start any token"), for a name YAML 1.2 allows."""
    [diagnostic] = load_text(text, "anchor.yaml").diagnostics
    assert str(diagnostic).startswith(f"anchor.yaml:{message}; use only letters, digits, '-' and '_'")


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(
        # YAML 1.2 anchor characters: printable, no whitespace, no flow indicator
        st.characters(
            blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp", "Co", "Cn"),
            blacklist_characters=",[]{}\ufeff",
        ),
        min_size=1,
        max_size=8,
    ),
    flow=st.booleans(),
)
def test_an_anchor_and_its_alias_load_as_written_or_are_a_located_error(name: str, flow: bool) -> None:
    """Whatever the anchor's name, the file never loads as another value, and a name libyaml
    refuses (`&é`, `&a.b`: "did not find expected alphabetic or numeric character") is named as
    valid YAML the parser does not read."""
    text = f"{{key: &{name} value, other: *{name}}}\n" if flow else f"key: &{name} value\nother: *{name}\n"
    result = load_text(text, "anchor.yaml")
    if not result.diagnostics:
        assert [d.data for d in result.documents] == [{"key": "value", "other": "value"}]
        return
    assert result.documents == []
    [diagnostic] = result.diagnostics
    assert diagnostic.code == "yaml-anchor", str(diagnostic)
    assert (
        " in anchor names, but the parser " in diagnostic.message or " in alias names" in diagnostic.message
    )
    location = diagnostic.location
    assert location is not None and location.file == "anchor.yaml"
    assert text.splitlines()[location.line - 1][location.column - 1] in "&*", str(diagnostic)


def test_an_anchor_name_libyaml_would_cut_short_is_an_error_not_another_value() -> None:
    """`key: &an:chor value` loaded as the string ':chor value'."""
    result = load_text("key: &an:chor value\n", "anchor.yaml")
    assert result.documents == []
    assert [str(d) for d in result.diagnostics] == [
        "anchor.yaml:1:6: anchor '&an:chor': YAML allows ':' in anchor names, but the parser ends the "
        "name before it and would read the rest as the value; use only letters, digits, '-' and '_' "
        "in anchor names"
    ]
    plain = load_text("key: &an-chor_1 value\nother: *an-chor_1\n", "anchor.yaml")
    assert plain.documents[0].data == {"key": "value", "other": "value"}


# --- pipeline steps against the tool function's signature -------------------------------------

WORD_COUNT = "def word_count(text: str, minimum: int = 1) -> int:\n    return len(text.split())\n"
STEP_CALLS_WORD_COUNT = (
    f"{API}kind: Tool\nmetadata: {{name: word-count}}\nspec: {{description: Count., python: tools:word_count}}\n"
    f"---\n{API}kind: Pipeline\nmetadata: {{name: p}}\nspec:\n"
    "  inputs: {type: object, properties: {doc: {type: string}, n: {type: string}}, required: [doc, n]}\n"
    "  steps:\n"
    "    - name: count\n"
    "      tool: word-count\n"
    "      input: {txt: '{{ inputs.doc }}', minimum: '{{ inputs.n }}'}\n"
)


def test_import_plugins_checks_step_arguments_against_the_tool_signature(tmp_path: Path) -> None:
    """`txt:` given to `word_count(text)` validated, even with --import-plugins: only a declared
    input_schema was compared with the step."""
    (tmp_path / "tools.py").write_text(WORD_COUNT)
    assert _errors(tmp_path, STEP_CALLS_WORD_COUNT, import_plugins=True) == [
        "14:7: step 'count' does not provide 'text', required by tool 'word-count' (its function "
        "'tools:word_count' takes text, minimum)",
        "14:15: step 'count': 'txt' is not an input of tool 'word-count' (did you mean 'text'?) (its "
        "function 'tools:word_count' takes text, minimum)",
        "14:49: input 'minimum' of step 'count': inputs.n is string but the consumer expects integer",
    ]


def test_without_import_plugins_the_parameters_are_read_from_the_source(tmp_path: Path) -> None:
    """Nothing is imported: the names come from the `def`, the types only with --import-plugins."""
    (tmp_path / "tools.py").write_text(WORD_COUNT)
    assert _errors(tmp_path, STEP_CALLS_WORD_COUNT) == [
        "14:7: step 'count' does not provide 'text', required by tool 'word-count' (its function "
        "'tools:word_count' takes text, minimum)",
        "14:15: step 'count': 'txt' is not an input of tool 'word-count' (did you mean 'text'?) (its "
        "function 'tools:word_count' takes text, minimum)",
    ]


def _pipeline_calling(function: str, arguments: str) -> str:
    return (
        f"{API}kind: Tool\nmetadata: {{name: t}}\nspec: {{description: T., python: 'tools:{function}'}}\n"
        f"---\n{API}kind: Pipeline\nmetadata: {{name: p}}\nspec:\n"
        "  inputs: {type: object, properties: {s: {type: string}}, required: [s]}\n"
        f"  steps:\n    - name: call\n      tool: t\n      input: {arguments}\n"
    )


SIGNATURES = (
    "import functools\n\n"
    "def keyword_only(a: str, *, b: int, c: int = 0) -> str:\n    return a\n\n"
    "def positional_only(a: str, /, b: str = '') -> str:\n    return a\n\n"
    "async def later(a: str) -> str:\n    return a\n\n"
    "def keywords(a: str, **rest: str) -> str:\n    return a\n\n"
    "def untyped(a) -> str:\n    return a\n\n"
    "def _wrap(f):\n    return f\n\n"
    "@_wrap\ndef decorated(a: str) -> str:\n    return a\n\n"
    "def rebound(a: str) -> str:\n    return a\n\n"
    "rebound = functools.partial(rebound, 'x')\n"
)


@pytest.mark.parametrize(
    ("function", "arguments", "errors"),
    [
        ("keyword_only", "{a: '{{ inputs.s }}', b: 1}", []),
        ("keyword_only", "{a: x, b: 1, c: 2, d: 3}", ["14:33: step 'call': 'd' is not an input of tool 't'"]),
        ("keyword_only", "{a: x}", ["14:7: step 'call' does not provide 'b', required by tool 't'"]),
        ("positional_only", "{a: x}", []),
        ("positional_only", "{b: x}", ["14:7: step 'call' does not provide 'a', required by tool 't'"]),
        ("later", "{a: x, z: 1}", ["14:21: step 'call': 'z' is not an input of tool 't'"]),
        # the runtime refuses the tool itself: that is the one error, not one per argument
        (
            "keywords",
            "{a: x, z: 1}",
            ["4:33: 'tools:keywords' takes **rest; tool arguments must be named parameters"],
        ),
        (
            "untyped",
            "{a: x}",
            ["4:33: parameter 'a' of 'tools:untyped' has no type hint; tool arguments need one"],
        ),
        # their signature once imported may be another: left to --import-plugins
        ("decorated", "{z: 1}", []),
        ("rebound", "{z: 1}", []),
    ],
)
def test_step_arguments_are_checked_against_the_parameters_the_source_shows(
    tmp_path: Path, function: str, arguments: str, errors: list[str]
) -> None:
    (tmp_path / "tools.py").write_text(SIGNATURES)
    found = _errors(tmp_path, _pipeline_calling(function, arguments))
    assert [e.split(" (")[0] for e in found] == errors


@pytest.mark.parametrize("import_plugins", [False, True])
def test_a_tool_taking_keyword_arguments_is_refused_as_the_registry_refuses_it(
    tmp_path: Path, import_plugins: bool
) -> None:
    """`**kwargs` would accept any argument, but the runtime's registry cannot build an arguments
    model for it and refuses the tool: validate says so, read from the source or imported."""
    (tmp_path / "tools.py").write_text(SIGNATURES)
    assert _errors(
        tmp_path, _pipeline_calling("keywords", "{a: x, z: 1}"), import_plugins=import_plugins
    ) == ["4:33: 'tools:keywords' takes **rest; tool arguments must be named parameters"]


@pytest.mark.parametrize("import_plugins", [False, True])
def test_the_error_names_what_the_function_takes(tmp_path: Path, import_plugins: bool) -> None:
    (tmp_path / "tools.py").write_text(SIGNATURES)
    [error] = _errors(
        tmp_path, _pipeline_calling("keyword_only", "{a: x, b: 1, cc: 2}"), import_plugins=import_plugins
    )
    assert error == (
        "14:27: step 'call': 'cc' is not an input of tool 't' (did you mean 'c'?) (its function "
        "'tools:keyword_only' takes a, b, c)"
    )


def test_a_test_reading_an_output_schema_with_an_invalid_type_is_a_located_error(tmp_path: Path) -> None:
    """Found by the mutation fuzzer: `type: [[string]]` in the output schema a Test's `matches`
    reads named no type, and describing "a list of no types" raised IndexError."""
    text = MODEL + _agent(
        "  instructions: Hi.\n  output: {type: object, properties: {x: {type: [[string]]}}}\n"
    )
    text += f"---\n{API}kind: Test\nmetadata: {{name: t}}\nspec:\n  unit: a\n"
    text += "  expect:\n    output:\n      - {path: $.x.y, matches: a}\n"
    [error] = _errors(tmp_path, text)
    assert error.startswith("12:49: invalid JSON Schema: [['string']] is not a type")


def test_import_plugins_builds_the_arguments_model_the_runtime_would(tmp_path: Path) -> None:
    """Every parameter annotated was all `--import-plugins` checked; the registry then failed to
    build the arguments model (an unresolvable hint, a type with no JSON Schema) at run time."""
    (tmp_path / "tools.py").write_text(
        "from typing import Callable\n\n"
        "def call(fn: Callable[[int], int]) -> int:\n    return fn(1)\n\n"
        "def typo(x: 'NoSuchType') -> int:\n    return 1\n"
    )
    text = f"{API}kind: Tool\nmetadata: {{name: call}}\nspec: {{description: C., python: tools:call}}\n"
    text += f"---\n{API}kind: Tool\nmetadata: {{name: typo}}\nspec: {{description: T., python: tools:typo}}\n"
    assert _errors(tmp_path, text, import_plugins=True) == [
        "4:33: the arguments of 'tools:call' cannot be built from its signature: cannot derive an "
        "argument schema for tool 'tools:call': PydanticInvalidForJsonSchema: Cannot generate a "
        "JsonSchema for core_schema.CallableSchema",
        "9:33: the arguments of 'tools:typo' cannot be built from its signature: cannot resolve the "
        "type hints of tool 'tools:typo': name 'NoSuchType' is not defined",
    ]


def test_a_test_model_script_path_too_long_for_the_os_is_a_located_error(tmp_path: Path) -> None:
    """Found by the mutation fuzzer: the same OSError as a Model's `script:`, in a Test's model."""
    text = MODEL + _agent("  instructions: Hi.\n")
    text += f"---\n{API}kind: Test\nmetadata: {{name: t}}\nspec:\n  unit: a\n"
    text += f"  model: {{provider: scripted, script: {'s' * 300}.jsonl}}\n"
    [error] = _errors(tmp_path, text)
    assert error.startswith("18:39: script file 'ssss") and "not found" in error


def test_an_mcp_server_working_directory_too_long_for_the_os_is_a_located_error(tmp_path: Path) -> None:
    """Found by the mutation fuzzer: `stdio.cwd` of 300 characters raised `OSError: File name too
    long` from the check that the directory exists."""
    text = f"{API}kind: McpServer\nmetadata: {{name: notes}}\nspec:\n  stdio:\n    command: python\n"
    text += f"    cwd: '{'.' * 300}'\n"
    errors = _errors(tmp_path, text)
    assert any(
        e.startswith("7:10: the working directory ") and e.endswith(" does not exist") for e in errors
    ), errors


def test_a_document_of_an_unknown_kind_is_not_offered_as_what_a_reference_meant(tmp_path: Path) -> None:
    """Found by `test_mutated_specs_give_located_diagnostics_and_never_raise`: a document whose
    kind is a newline, named like the Tool an agent uses, turned the unresolved reference into
    "unknown Tool 'search' ('search' is a \\n, not a Tool)", a message of two lines."""
    text = (
        MODEL
        + f'---\n{API}kind: "\\n"\nmetadata: {{name: search}}\nspec: {{}}\n'
        + _agent("  instructions: go\n  tools: [search]\n")
    )
    messages = [d.message for d in _validate(tmp_path, text)]
    unresolved = [m for m in messages if m.startswith("unknown Tool 'search'")]
    assert unresolved and "is a" not in unresolved[0], messages
    assert all("\n" not in str(d) for d in _validate(tmp_path, text))


@pytest.mark.parametrize("text", ["two\nlines", "cr\rhere", "nul\x00", "esc\x1b[31m", "tab\tstays escaped"])
def test_a_diagnostic_is_one_line_whatever_the_specs_put_in_it(text: str) -> None:
    diagnostic = Diagnostic(Severity.ERROR, "x", f"bad {text}", None, f"Kind{text}", f"name{text}")
    printed = diagnostic.format(with_severity=True)
    assert printed.isprintable(), printed
    assert repr(text)[1:-1] in diagnostic.message
