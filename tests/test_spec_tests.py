"""Spec tests: the `Test` kind, its validation, `platform test`, and the tests shipped in specs/.

A small project (an agent with a delegate, a pipeline, a supervisor, a scripted model and three
plugin tools) is written to a temporary directory; its tests run in-process through the CLI. The
expectation evaluator is also tested alone, on hand-made observations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from agent_platform._cli import app
from agent_platform._spec.jsonpath import JsonPath, JsonPathError, format_path, parse_path, resolve
from agent_platform._spec.kinds import RunOutcome, TestDocument, TestSpec
from agent_platform._spectest.expect import GuardrailEvent, Observation, ToolCall, evaluate, json_equal
from agent_platform._validate import validate_paths

ROOT = Path(__file__).resolve().parents[1]

TOOLS = '''\
import asyncio


def lookup(query: str, limit: int = 3) -> dict:
    """Look something up."""
    return {"query": query, "hits": [f"{query}-{i}" for i in range(limit)]}


def note(text: str) -> dict:
    """Keep a note (a side effect)."""
    return {"saved": text}


async def wait(seconds: float) -> dict:
    """Wait a while."""
    await asyncio.sleep(seconds)
    return {"waited": seconds}
'''


def _entry(key: str, action: dict[str, Any]) -> str:
    return json.dumps({"key": key, "action": action, "usage": {"input_tokens": 100, "output_tokens": 10}})


SCRIPT = "\n".join(
    [
        _entry("helper", {"action": "lookup", "arguments": {"query": "retries", "limit": 2}}),
        _entry("helper", {"action": "delegate:checker", "task": {"claim": "retries are safe"}}),
        _entry("helper", {"action": "note", "arguments": {"text": "remember retries"}}),
        _entry(
            "helper",
            {
                "action": "final_answer",
                "answer": {"answer": "Retry with backoff.", "confidence": 0.75, "verdict": "yes"},
            },
        ),
        _entry("checker", {"action": "lookup", "arguments": {"query": "retries are safe"}}),
        _entry("checker", {"action": "final_answer", "answer": {"verdict": "yes"}}),
        _entry("sleeper", {"action": "wait", "arguments": {"seconds": 30}}),
    ]
)

UNITS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: fast}
spec:
  provider: scripted
  script: ../script.jsonl
  pricing: {input_per_mtok: 1.0, output_per_mtok: 2.0}
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: free}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: lookup}
spec:
  description: Look something up.
  python: ttools:lookup
  input_schema:
    type: object
    additionalProperties: false
    required: [query]
    properties:
      query: {type: string}
      limit: {type: integer, minimum: 1}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: note}
spec:
  description: Keep a note.
  python: ttools:note
  side_effects: true
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: wait}
spec:
  description: Wait a while.
  python: ttools:wait
---
apiVersion: agents.platform/v1
kind: Guardrail
metadata: {name: pii}
spec: {type: pii_redaction, applies_to: [input]}
---
apiVersion: agents.platform/v1
kind: Guardrail
metadata: {name: loop}
spec: {type: loop_detection}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: helper}
spec:
  model: fast
  instructions: "Answer {{ inputs.question }}."
  inputs:
    type: object
    required: [question]
    properties:
      question: {type: string, minLength: 1}
  output:
    type: object
    additionalProperties: false
    required: [answer, confidence]
    properties:
      answer: {type: string}
      confidence: {type: number, minimum: 0, maximum: 1}
      verdict: {type: string, enum: ["yes", "no"]}
  tools: [lookup, note]
  delegates: [checker]
  guardrails: [pii, loop]
  limits: {max_iterations: 6, max_tool_calls: 5}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: checker}
spec:
  model: fast
  instructions: "Check {{ inputs.claim }}."
  inputs: {type: object, required: [claim], properties: {claim: {type: string}}}
  output:
    type: object
    required: [verdict]
    properties:
      verdict: {type: string, enum: ["yes", "no"]}
  tools: [lookup]
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: sleeper}
spec:
  model: fast
  instructions: Wait.
  tools: [wait]
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: flow}
spec:
  inputs: {type: object, required: [query], properties: {query: {type: string}}}
  steps:
    - name: find
      tool: lookup
      input: {query: "{{ inputs.query }}"}
---
apiVersion: agents.platform/v1
kind: Supervisor
metadata: {name: desk}
spec:
  routes:
    ask: {agent: helper}
"""

# Every test here passes against UNITS and SCRIPT.
PASSING = """\
apiVersion: agents.platform/v1
kind: Test
metadata: {name: helper-answers}
spec:
  unit: helper
  inputs: {question: "Are retries safe? Write to jane@example.com"}
  approve_all: true
  expect:
    output:
      - path: $.answer
        matches: ^Retry
      - path: $.confidence
        equals: 0.75
      - path: $
        schema: {required: [verdict]}
    tools:
      called:
        - tool: lookup
          by: helper
          arguments:
            - path: $.query
              equals: retries
        - {tool: lookup, by: checker}
        - tool: note
          arguments:
            - path: $.text
              matches: remember
      only: true
    guardrails:
      triggered:
        - {guardrail: pii, verdict: redact, stage: input}
      not_triggered: [loop]
    iterations: {equals: 4}
    usage:
      input_tokens: {equals: 600}
      total_tokens: {equals: 660}
      cost_usd: {min: 0.0007, max: 0.0008}
      tool_calls: {equals: 3}
---
apiVersion: agents.platform/v1
kind: Test
metadata: {name: helper-waits-for-approval}
spec:
  unit: helper
  inputs: {question: "Are retries safe?"}
  expect:
    outcome: needs_approval
    tools:
      called: [{tool: lookup}, {tool: lookup}, {tool: note}]
      only: true
---
apiVersion: agents.platform/v1
kind: Test
metadata: {name: flow-finds}
spec:
  unit: Pipeline/flow
  inputs: {query: x}
  expect:
    output:
      - path: $.hits[-1]
        equals: x-2
    tools: {called: [{tool: lookup}], only: true}
---
apiVersion: agents.platform/v1
kind: Test
metadata: {name: desk-routes}
spec:
  unit: desk
  approve_all: true
  inputs:
    tasks:
      - {task_id: q1, task_type: ask, payload: {question: "Are retries safe?"}}
  expect:
    output:
      - path: $.q1.output.verdict
        equals: "yes"
      - path: $.q1.outcome
        equals: completed
---
apiVersion: agents.platform/v1
kind: Test
metadata: {name: helper-with-another-model}
spec:
  unit: helper
  model: free
  inputs: {question: "Anything?"}
  expect:
    tools: {only: true}
    iterations: {equals: 1}
    usage:
      cost_usd: {equals: 0}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project, as the working directory (plugins are found there); its specs are in specs/."""
    (tmp_path / "ttools.py").write_text(TOOLS)
    (tmp_path / "script.jsonl").write_text(SCRIPT + "\n")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "units.yaml").write_text(UNITS)
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_tests(project: Path, text: str, name: str = "tests.yaml") -> Path:
    path = project / "specs" / name
    path.write_text(text)
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line containing `needle`."""
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    return lines[occurrence - 1]


def where(path: Path, needle: str, token: str) -> str:
    """`line:column` of `token` in the first line that contains `needle`."""
    line = line_of(path, needle)
    text = path.read_text().splitlines()[line - 1]
    return f"{line}:{text.index(token) + 1}"


def platform(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_test(name: str, unit: str, spec: str) -> str:
    """A Test document; `spec` is the YAML under `spec:` after `unit:`, indented by two."""
    return f"apiVersion: agents.platform/v1\nkind: Test\nmetadata: {{name: {name}}}\nspec:\n  unit: {unit}\n{spec}"


# --- the JSON path parser ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("$", ()),
        ("$.a", ("a",)),
        ("$.review-search.output", ("review-search", "output")),
        ("$.findings[0].line", ("findings", 0, "line")),
        ("$.items[-1]", ("items", -1)),
        ("$['a b']['it''s'][2]", None),  # '' is not an escape: malformed
        ('$[\'a b\']["c\\"d"]', ("a b", 'c"d')),
        ("$['x\\\\y']", ("x\\y",)),
    ],
)
def test_json_paths_parse(text: str, segments: tuple[Any, ...] | None) -> None:
    if segments is None:
        with pytest.raises(JsonPathError):
            parse_path(text)
    else:
        assert parse_path(text).segments == segments


@pytest.mark.parametrize(
    ("text", "column", "says"),
    [
        ("summary", 1, "starts with '$'"),
        ("$.", 3, "member name"),
        ("$.1x", 3, "member name"),
        ("$[*]", 3, "wildcards"),
        ("$[1:2]", 4, "expected ']'"),
        ("$['open", 3, "unclosed"),
        ("$.a b", 4, "unexpected ' '"),
        ("$['a\\n']", 5, "escapes only"),
    ],
)
def test_malformed_json_paths_say_what_and_where(text: str, column: int, says: str) -> None:
    with pytest.raises(JsonPathError) as raised:
        parse_path(text)
    assert raised.value.column == column
    assert says in str(raised.value)


segment = st.one_of(st.integers(min_value=-(10**6), max_value=10**6), st.text(max_size=12))


@given(st.lists(segment, max_size=8))
def test_formatted_paths_parse_back_to_their_segments(segments: list[str | int]) -> None:
    text = format_path(segments)
    assert parse_path(text).segments == tuple(segments)
    assert format_path(parse_path(text).segments) == text  # the canonical form is a fixed point


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_a_located_path_error(text: str) -> None:
    try:
        parsed = parse_path(text)
    except JsonPathError as error:
        assert 1 <= error.column <= len(text) + 2
    else:
        assert parse_path(format_path(parsed.segments)) == parsed


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=12,
    )
)
def test_resolving_every_path_of_a_value_finds_its_part(value: Any) -> None:
    def walk(node: Any, at: tuple[str | int, ...]) -> None:
        found = resolve(value, JsonPath(at))
        assert found.found and found.value == node
        if isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, (*at, index))
        elif isinstance(node, dict):
            for key, item in node.items():
                walk(item, (*at, key))

    walk(value, ())


def test_resolving_says_where_a_path_stops() -> None:
    document = {"findings": [{"line": 3}], "summary": "ok"}
    assert resolve(document, parse_path("$.findings[0].line")).value == 3
    assert resolve(document, parse_path("$.findings[-1].line")).value == 3
    assert resolve(document, parse_path("$.findings[5]")).missing == "$.findings has 1 items, no [5]"
    assert resolve(document, parse_path("$.summary.x")).missing == "$.summary is a string, not an object"
    assert (
        "no member 'sumary' (members: findings, summary)" in resolve(document, parse_path("$.sumary")).missing
    )


def test_json_equality_is_json_not_python() -> None:
    assert json_equal(1, 1.0) and json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal(True, 1) and not json_equal(0, False) and not json_equal("1", 1)
    assert not json_equal([1, 2], [2, 1]) and not json_equal({"a": 1}, {"a": 1, "b": 2})


# --- the model and the runtime agree ----------------------------------------------------------------


def test_test_outcomes_are_the_runtime_outcomes() -> None:
    from typing import get_args

    from agent_platform._runtime.outcomes import Outcome

    assert set(get_args(RunOutcome)) == {outcome.value for outcome in Outcome}


def test_supervisor_task_fields_are_those_of_a_task_result() -> None:
    from agent_platform._runtime.outcomes import Outcome
    from agent_platform._runtime.supervisor import TaskResult
    from agent_platform._validate.spec_tests import SUPERVISOR_TASK_FIELDS

    result = TaskResult("t", "ask", "Agent/helper", Outcome.COMPLETED)
    assert tuple(result.to_json()) == SUPERVISOR_TASK_FIELDS


# --- validation ---------------------------------------------------------------------------------------


def errors_of(project: Path) -> list[str]:
    report = validate_paths([project / "specs"])
    return [str(d) for d in report.diagnostics.sorted() if d.severity.value == "error"]


def warnings_of(project: Path) -> list[str]:
    report = validate_paths([project / "specs"])
    return [str(d) for d in report.diagnostics.sorted() if d.severity.value == "warning" and d.kind == "Test"]


def test_the_passing_tests_are_valid(project: Path) -> None:
    write_tests(project, PASSING)
    assert errors_of(project) == []
    assert warnings_of(project) == []


REFERENCES = """\
apiVersion: agents.platform/v1
kind: Test
metadata: {name: refs}
spec:
  unit: helpr
  model: fats
---
apiVersion: agents.platform/v1
kind: Test
metadata: {name: not-a-unit}
spec:
  unit: lookup
---
apiVersion: agents.platform/v1
kind: Test
metadata: {name: wrong-kind}
spec:
  unit: Pipeline/helper
---
apiVersion: agents.platform/v1
kind: Test
metadata: {name: inline-model}
spec:
  unit: flow
  inputs: {query: x}
  model: {provider: scripted, script: nowhere.jsonl}
"""


def test_unknown_units_and_models_are_located_with_did_you_mean(project: Path) -> None:
    path = write_tests(project, REFERENCES)
    f = "specs/tests.yaml"
    errors = [e.replace(str(project) + "/", "") for e in errors_of(project)]
    assert errors == [
        f"{f}:{line_of(path, 'helpr')}:9: Test/refs: unknown agent, pipeline or supervisor 'helpr' (did you mean 'helper'?)",
        f"{f}:{line_of(path, 'fats')}:10: Test/refs: unknown Model 'fats' (did you mean 'fast'?)",
        f"{f}:{line_of(path, 'unit: lookup')}:9: Test/not-a-unit: 'lookup' is a Tool: a test runs an Agent, "
        "Pipeline or Supervisor",
        f"{f}:{line_of(path, 'Pipeline/helper')}:9: Test/wrong-kind: no Pipeline named 'helper' ('helper' is an "
        "Agent: write Agent/helper)",
        f"{f}:{line_of(path, 'nowhere')}:39: Test/inline-model: script file 'nowhere.jsonl' not found "
        "(looked for specs/nowhere.jsonl)",
    ]


INPUTS = """\
apiVersion: agents.platform/v1
kind: Test
metadata: {name: bad-inputs}
spec:
  unit: helper
  inputs: {question: 5}
---
apiVersion: agents.platform/v1
kind: Test
metadata: {name: bad-tasks}
spec:
  unit: desk
  inputs:
    tasks:
      - {task_id: q1, task_type: asks, payload: {question: "x"}}
      - {task_id: q1, task_type: ask, payload: {}}
"""


def test_inputs_are_checked_against_the_units_schema(project: Path) -> None:
    path = write_tests(project, INPUTS)
    report = validate_paths([project / "specs"])
    errors = [(f"{d.location.line}:{d.location.column}", d.message) for d in report.diagnostics.sorted()
              if d.location is not None and d.kind == "Test"]  # fmt: skip
    assert errors == [
        (
            where(path, "question: 5", "5"),
            'inputs do not fit Agent/helper\'s inputs schema: $.question: 5 is not of type "string"',
        ),
        (
            where(path, "task_type: asks", "asks"),
            "unknown task_type \"asks\" (routes: ask) (did you mean 'ask'?)",
        ),
        (where(path, "task_type: ask,", "q1"), "duplicate task_id 'q1'"),
        (
            where(path, "task_type: ask,", "{}"),
            'inputs do not fit Agent/helper\'s inputs schema: $: "question" is a required property',
        ),
    ]


def expectation_errors(project: Path, unit: str, spec: str) -> list[tuple[int, str]]:
    """(line, message) of each error of one Test whose spec (after `unit:`) is `spec`."""
    path = write_tests(project, one_test("t", unit, spec))
    found = []
    for error in errors_of(project):
        location, _, message = error.partition(": Test/t: ")
        assert location.startswith(str(path)), error
        found.append((int(location.rsplit(":", 2)[1]), message))
    return found


INPUTS_OF = {
    "helper": "  inputs: {question: x}\n",
    "checker": "  inputs: {claim: x}\n",
    "flow": "  inputs: {query: x}\n",
    "desk": "  inputs: {tasks: []}\n",
}


@pytest.mark.parametrize(
    ("unit", "spec", "at", "message"),
    [
        (
            "helper",
            "  approve_all: true\n  expect:\n    outcome: needs_approval\n",
            "outcome:",
            "Agent/helper can never end 'needs_approval': approve_all: true approves every call that needs approval",
        ),
        (
            "checker",
            "  expect:\n    outcome: cost_budget\n",
            "outcome:",
            "Agent/checker can never end 'cost_budget': Agent/checker has no cost budget (limits.max_cost_usd)",
        ),
        (
            "checker",
            "  expect:\n    outcome: needs_approval\n",
            "outcome:",
            "no tool Agent/checker can reach has side effects",
        ),
        (
            "flow",
            "  expect:\n    outcome: max_iterations\n",
            "outcome:",
            "a pipeline has no iteration limit: a step's agent that reaches its own fails the step",
        ),
        (
            "desk",
            "  expect:\n    outcome: timeout\n",
            "outcome:",
            "a supervisor's run completes or fails as a whole",
        ),
        ("helper", "  expect:\n    outcome: cancelled\n", "outcome:", "a test's run is never cancelled"),
        ("helper", "  expect:\n    outcome: complete\n", "outcome:", "(did you mean 'completed'?)"),
        (
            "helper",
            "  expect:\n    output:\n      - path: $.verdikt\n        equals: 'yes'\n",
            "path:",
            "$ has no member 'verdikt' in Agent/helper's output schema (did you mean 'verdict'?) "
            "(members: answer, confidence, verdict)",
        ),
        (
            "helper",
            "  expect:\n    output:\n      - path: $.verdict\n        equals: yse\n",
            "equals:",
            "(did you mean 'yes'?)",
        ),
        (
            "helper",
            "  expect:\n    output:\n      - path: $.confidence\n        matches: '0.7'\n",
            "matches:",
            "$.confidence is a number in Agent/helper's output schema: `matches` applies to strings",
        ),
        (
            "helper",
            "  expect:\n    output:\n      - path: $.answer[0]\n        equals: x\n",
            "path:",
            "$.answer is a string in Agent/helper's output schema, not a list",
        ),
        (
            "helper",
            "  expect:\n    output:\n      - path: $.answer\n        schema: {type: strng}\n",
            "schema:",
            "invalid JSON Schema: 'strng' is not a type",
        ),
        (
            "helper",
            "  expect:\n    output:\n      - path: $.answer[\n        equals: 1\n",
            "path:",
            "invalid JSON path",
        ),
        (
            "helper",
            "  expect:\n    output:\n      - path: $.answer\n        matches: '(x'\n",
            "matches:",
            "invalid regular expression",
        ),
        (
            "helper",
            "  expect:\n    output:\n      - path: $.answer\n        equals: x\n        matches: x\n",
            "matches:",
            "a check needs exactly one of equals, matches, schema (found: equals, matches)",
        ),
        ("helper", "  expect:\n    output:\n      - path: $.answer\n", "path:", "(found: none)"),
        (
            "helper",
            "  expect:\n    tools:\n      called: [{tool: wait}]\n",
            "called:",
            "Agent/helper cannot call 'wait' (the tools it can reach: lookup, note)",
        ),
        (
            "helper",
            "  expect:\n    tools:\n      called: [{tool: lookp}]\n",
            "called:",
            "unknown Tool 'lookp' (did you mean 'lookup'?)",
        ),
        (
            "helper",
            "  expect:\n    tools:\n      called: [{tool: note, by: checker}]\n",
            "called:",
            "Agent/checker does not call 'note' itself (its tools: lookup)",
        ),
        (
            "helper",
            "  expect:\n    tools:\n      called: [{tool: lookup, by: flow}]\n",
            "called:",
            "Agent/helper never runs 'flow'",
        ),
        (
            "helper",
            "  expect:\n    tools:\n      called:\n        - tool: lookup\n          arguments:\n"
            "            - path: $.querry\n              equals: x\n",
            "path:",
            "$ has no member 'querry' in the input_schema of 'lookup' (did you mean 'query'?)",
        ),
        (
            "helper",
            "  expect:\n    tools:\n      called: [{tool: lookup}]\n      not_called: [lookup]\n",
            "not_called:",
            "'lookup' is both in called and in not_called: no run can do both",
        ),
        (
            "helper",
            "  expect:\n    guardrails:\n      triggered: [{guardrail: pii, stage: output}]\n",
            "triggered:",
            "'pii' runs at input, never at output",
        ),
        (
            "flow",
            "  expect:\n    guardrails:\n      triggered: [{guardrail: loop}]\n",
            "triggered:",
            "'loop' guards nothing Pipeline/flow runs, so it can never trigger (its guardrails: none)",
        ),
        (
            "flow",
            "  expect:\n    iterations: {equals: 1}\n",
            "iterations:",
            "iterations count an agent's model decisions",
        ),
        (
            "helper",
            "  expect:\n    iterations: {min: 7}\n",
            "iterations:",
            "Agent/helper stops after 6 iterations (limits.max_iterations), never 7",
        ),
        (
            "helper",
            "  expect:\n    iterations: {min: 3, max: 2}\n",
            "iterations:",
            "min (3) is above max (2)",
        ),
        (
            "helper",
            "  model: free\n  expect:\n    usage:\n      cost_usd: {min: 0.01}\n",
            "cost_usd:",
            "the run costs $0: the test's model has no pricing",
        ),
        (
            "agent/helper",
            "",
            "unit:",
            "'agent' is not a kind that runs: write Agent/, Pipeline/ or Supervisor/ (did you mean 'Agent/helper'?)",
        ),
    ],
)
def test_impossible_expectations_are_located(
    project: Path, unit: str, spec: str, at: str, message: str
) -> None:
    """Each error is at the line that says what cannot hold (the first line containing `at`)."""
    text = one_test("t", unit, INPUTS_OF.get(unit, "") + spec)
    path = write_tests(project, text)
    errors = expectation_errors(project, unit, INPUTS_OF.get(unit, "") + spec)
    assert any(line == line_of(path, at) and message in found for line, found in errors), errors


def test_expectations_that_always_hold_are_warned_about(project: Path) -> None:
    path = write_tests(
        project,
        one_test(
            "t",
            "flow",
            "  inputs: {query: x}\n  expect:\n    tools: {not_called: [note]}\n    guardrails: {not_triggered: [pii]}\n",
        ),
    )
    assert errors_of(project) == []
    assert warnings_of(project) == [
        f"{path}:{where(path, 'not_called', 'note')}: Test/t: Pipeline/flow cannot call 'note' at all: "
        "this expectation always holds",
        f"{path}:{where(path, 'not_triggered', 'pii')}: Test/t: 'pii' guards nothing Pipeline/flow runs: "
        "this expectation always holds",
    ]


def test_validate_reports_test_errors_like_any_other(project: Path) -> None:
    write_tests(project, REFERENCES)
    code, out, _ = platform("validate", "specs/")
    assert code == 1
    assert "specs/tests.yaml:5:9: Test/refs: unknown agent, pipeline or supervisor 'helpr'" in out


# --- tests are not units ---------------------------------------------------------------------------------


def test_tests_are_validated_but_never_compiled_or_deployed(project: Path) -> None:
    from agent_platform._compile import compile_specs
    from agent_platform._deploy.reconcile import desired_state

    write_tests(project, PASSING)
    report = validate_paths([project / "specs"])
    assert report.ok
    assert len(report.specs.of_kind("Test")) == 5
    assert all(spec.kind != "Test" for spec in report.specs.specs)
    plan = compile_specs(report.specs)
    assert not [ref for ref in plan.graph if ref.kind == "Test"]
    assert not [ref for ref in desired_state(report.specs, plan) if ref.startswith("Test/")]


def test_plan_and_apply_dry_run_ignore_tests(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tests(project, PASSING)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code, out, _ = platform("plan", "specs/", "-o", "json")
    assert code == 0 and "Test/" not in out and '"Test"' not in out
    code, out, err = platform("apply", "specs/", "--dry-run", "-o", "json")
    assert code == 1, err  # everything would be created, tests excepted
    refs = [action["ref"] for action in json.loads(out)["actions"]]
    assert "Agent/helper" in refs and not [ref for ref in refs if ref.startswith("Test/")]


def test_a_directory_of_only_tests_holds_nothing_to_deploy(project: Path) -> None:
    """What `apply` refuses ("no specs found"): a tests-only path must never apply an empty set,
    which with --prune would delete every deployed spec."""
    (project / "specs" / "units.yaml").rename(project / "units.yaml")
    write_tests(project, one_test("t", "helper", "  model: free\n"))
    report = validate_paths([project / "specs"])
    assert report.specs.specs == []


def test_platform_run_cannot_run_a_test(project: Path) -> None:
    write_tests(project, PASSING)
    for name in ("helper-answers", "Test/helper-answers"):
        code, _, err = platform("run", name, "--local", "-s", "specs/")
        assert code == 2
        assert f"no agent, pipeline or supervisor named '{name}'" in err


# --- expectations against observations --------------------------------------------------------------------


def spec_of(expect: dict[str, Any], unit: str = "helper") -> TestSpec:
    document = {
        "apiVersion": "agents.platform/v1",
        "kind": "Test",
        "metadata": {"name": "t"},
        "spec": {"unit": unit, "expect": expect},
    }
    return TestDocument.model_validate(document).spec


def observed(
    output: Any = None,
    outcome: str = "completed",
    calls: list[ToolCall] | None = None,
    events: list[GuardrailEvent] | None = None,
    **result: Any,
) -> Observation:
    data = {"outcome": outcome, "output": output, "error": None, "iterations": 0, "tool_calls": 0}
    data.update(result)
    return Observation(data, calls or [], events or [])


def messages(expect: dict[str, Any], observation: Observation) -> list[tuple[tuple[str | int, ...], str]]:
    return [(failure.path, failure.message) for failure in evaluate(spec_of(expect), observation)]


def test_outcome() -> None:
    assert messages({}, observed()) == []
    assert messages({}, observed(outcome="failed", error="model call failed: boom")) == [
        (
            ("spec", "expect", "outcome"),
            "outcome: expected 'completed', got 'failed' (model call failed: boom)",
        )
    ]
    assert messages({"outcome": "failed"}, observed(outcome="failed")) == []


def test_output_checks() -> None:
    output = {"verdict": "comment", "findings": [{"line": 115}], "score": 0.7}
    expect = {
        "output": [
            {"path": "$.verdict", "equals": "comment"},
            {"path": "$.findings[0].line", "equals": 115.0},
            {"path": "$.verdict", "matches": "^comm"},
            {"path": "$.findings", "schema": {"type": "array", "minItems": 1}},
        ]
    }
    assert messages(expect, observed(output)) == []
    failing = {
        "output": [
            {"path": "$.verdict", "equals": "approve"},
            {"path": "$.score", "matches": "0.7"},
            {"path": "$.verdict", "matches": "^approve$"},
            {"path": "$.findings", "schema": {"type": "array", "minItems": 2}},
            {"path": "$.summary", "equals": None},
            {"path": "$.findings[0].line", "equals": True},
        ]
    }
    base = ("spec", "expect", "output")
    assert messages(failing, observed(output)) == [
        ((*base, 0, "equals"), 'output $.verdict: expected "approve", got "comment"'),
        ((*base, 1, "matches"), "output $.score: expected a string matching '0.7', got a number 0.7"),
        ((*base, 2, "matches"), "output $.verdict: expected a string matching '^approve$', got \"comment\""),
        (
            (*base, 3, "schema"),
            'output $.findings: expected a value that satisfies the schema, got [{"line": 115}], which does '
            'not: (the value): [{"line":115}] has less than 2 items',
        ),
        (
            (*base, 4, "equals"),
            "output $.summary: expected null, got nothing: $ has no member 'summary' (members: findings, score, verdict)",
        ),
        ((*base, 5, "equals"), "output $.findings[0].line: expected true, got 115"),
    ]


CALLS = [
    ToolCall("read-file", {"path": "a.py"}, "Agent/reviewer", "ok"),
    ToolCall("search", {"query": "x"}, "Agent/checker", "ok"),
    ToolCall("run-linter", {"path": "a.py"}, "Agent/reviewer", "error"),
]


def test_tool_calls_in_order() -> None:
    called = [
        {"tool": "read-file", "arguments": [{"path": "$.path", "equals": "a.py"}]},
        {"tool": "run-linter", "by": "reviewer"},
    ]
    assert messages({"tools": {"called": called}}, observed(calls=CALLS)) == []
    assert messages({"tools": {"called": list(reversed(called))}}, observed(calls=CALLS)) == [
        (
            ("spec", "expect", "tools", "called", 1),
            'tool call 2 of `called`: expected a call of read-file with $.path = "a.py" after call 3 (run-linter), '
            'got the calls made: 1. read-file {"path": "a.py"} by Agent/reviewer; 2. search {"query": "x"} by '
            'Agent/checker; 3. run-linter {"path": "a.py"} by Agent/reviewer (error)',
        )
    ]
    wrong_argument = [{"tool": "read-file", "arguments": [{"path": "$.path", "matches": "b"}]}]
    (failure,) = messages({"tools": {"called": wrong_argument}}, observed(calls=CALLS))
    assert failure[1].startswith(
        "tool call 1 of `called`: expected a call of read-file with $.path matching 'b', got"
    )


def test_only_means_no_other_calls() -> None:
    exact = [{"tool": "read-file"}, {"tool": "search"}, {"tool": "run-linter"}]
    assert messages({"tools": {"called": exact, "only": True}}, observed(calls=CALLS)) == []
    assert messages({"tools": {"only": True}}, observed()) == []
    (extra,) = messages({"tools": {"called": exact[:2], "only": True}}, observed(calls=CALLS))
    assert extra[0] == ("spec", "expect", "tools", "only")
    assert extra[1].startswith("tools called: expected exactly 2 calls, in the order of `called`, got 3:")
    (missing,) = messages(
        {"tools": {"called": [*exact, {"tool": "search"}], "only": True}}, observed(calls=CALLS)
    )
    assert missing[0] == ("spec", "expect", "tools", "called", 3)
    assert "expected a call of search, got no more calls" in missing[1]
    (any_order,) = messages(
        {"tools": {"called": [{"tool": "search"}], "in_order": False, "only": True}}, observed(calls=CALLS)
    )
    assert any_order == (
        ("spec", "expect", "tools", "only"),
        'tools called: expected no calls besides those in `called`, got also 1. read-file {"path": "a.py"} by '
        'Agent/reviewer; 2. run-linter {"path": "a.py"} by Agent/reviewer (error)',
    )


def test_tool_calls_as_a_set_match_each_expectation_to_a_different_call() -> None:
    calls = [
        ToolCall("search", {"query": "a"}, "Agent/x", "ok"),
        ToolCall("search", {"query": "b"}, "Agent/x", "ok"),
    ]
    # A greedy match gives the first call to the general expectation and leaves the specific one
    # without a call; a matching finds the assignment that works.
    called = [{"tool": "search"}, {"tool": "search", "arguments": [{"path": "$.query", "equals": "a"}]}]
    assert messages({"tools": {"called": called, "in_order": False}}, observed(calls=calls)) == []
    three = [*called, {"tool": "search"}]
    (failure,) = messages({"tools": {"called": three, "in_order": False}}, observed(calls=calls))
    assert failure[0] == ("spec", "expect", "tools", "called", 2)
    assert "(each expected call matched by a different call)" in failure[1]


def test_tools_not_called_and_by() -> None:
    assert messages({"tools": {"not_called": ["create-ticket"]}}, observed(calls=CALLS)) == []
    assert messages({"tools": {"not_called": ["search"]}}, observed(calls=CALLS)) == [
        (
            ("spec", "expect", "tools", "not_called", 0),
            'tools not called: expected no call of search, got once, first search {"query": "x"} by Agent/checker',
        )
    ]
    assert (
        messages({"tools": {"called": [{"tool": "search", "by": "Agent/checker"}]}}, observed(calls=CALLS))
        == []
    )
    (failure,) = messages(
        {"tools": {"called": [{"tool": "search", "by": "reviewer"}]}}, observed(calls=CALLS)
    )
    assert "expected a call of search by reviewer" in failure[1]


def test_guardrail_events() -> None:
    events = [GuardrailEvent("pii", "redact", "input"), GuardrailEvent("loop-guard", "halt", "action")]
    expect = {
        "guardrails": {
            "triggered": [
                {"guardrail": "pii"},
                {"guardrail": "loop-guard", "verdict": "halt", "stage": "action"},
            ]
        }
    }
    assert messages(expect, observed(events=events)) == []
    failing = {
        "guardrails": {
            "triggered": [{"guardrail": "pii", "stage": "output"}, {"guardrail": "budget"}],
            "not_triggered": ["loop-guard"],
        }
    }
    base = ("spec", "expect", "guardrails")
    assert messages(failing, observed(events=events)) == [
        (
            (*base, "triggered", 0),
            "guardrail triggered: expected pii to trigger at output, got pii redact at input; loop-guard halt at action",
        ),
        (
            (*base, "triggered", 1),
            "guardrail triggered: expected budget to trigger, got pii redact at input; loop-guard halt at action",
        ),
        (
            (*base, "not_triggered", 0),
            "guardrail not triggered: expected loop-guard never to trigger, got loop-guard halt at action",
        ),
    ]
    (none,) = messages({"guardrails": {"triggered": [{"guardrail": "pii", "verdict": "block"}]}}, observed())
    assert none[1] == "guardrail triggered: expected pii to block, got no guardrail triggered"


def test_iterations_and_usage() -> None:
    run = observed(
        iterations=4, usage={"input_tokens": 600, "output_tokens": 60}, cost_usd=0.00072, tool_calls=3
    )
    expect = {
        "iterations": {"equals": 4},
        "usage": {
            "input_tokens": {"min": 600},
            "total_tokens": {"equals": 660},
            "cost_usd": {"max": 0.001},
            "tool_calls": {"min": 1, "max": 3},
        },
    }
    assert messages(expect, run) == []
    failing = {
        "iterations": {"max": 3},
        "usage": {"output_tokens": {"min": 100}, "cost_usd": {"max": 0.0005}, "tool_calls": {"equals": 2}},
    }
    base = ("spec", "expect")
    assert messages(failing, run) == [
        ((*base, "iterations", "max"), "iterations: expected at most 3, got 4"),
        ((*base, "usage", "output_tokens", "min"), "usage output_tokens: expected at least 100, got 60"),
        ((*base, "usage", "cost_usd", "max"), "usage cost_usd: expected at most 0.0005, got 0.00072"),
        ((*base, "usage", "tool_calls", "equals"), "usage tool_calls: expected exactly 2, got 3"),
    ]


# --- platform test ------------------------------------------------------------------------------------------


def test_passing_tests_exit_0_with_a_summary(project: Path) -> None:
    write_tests(project, PASSING)
    code, out, err = platform("test")
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "PASS  helper-answers  (helper, " + lines[0].split(", ")[1]
    assert [line.split()[:2] for line in lines[:5]] == [
        ["PASS", "helper-answers"],
        ["PASS", "helper-waits-for-approval"],
        ["PASS", "flow-finds"],
        ["PASS", "desk-routes"],
        ["PASS", "helper-with-another-model"],
    ]
    assert lines[-1].startswith("5 tests: 5 passed in ")
    assert "5/5" in err  # the progress bar, on stderr


FAILING = """\
apiVersion: agents.platform/v1
kind: Test
metadata: {name: helper-is-wrong}
spec:
  unit: helper
  inputs: {question: "Are retries safe?"}
  approve_all: true
  expect:
    output:
      - path: $.confidence
        equals: 0.9
    tools:
      called: [{tool: note}, {tool: lookup}]
    iterations: {max: 3}
---
apiVersion: agents.platform/v1
kind: Test
metadata: {name: sleeper-is-too-slow}
spec:
  unit: sleeper
  timeout: 200ms
"""


def test_failing_expectations_print_expected_actual_and_file_line(project: Path) -> None:
    path = write_tests(project, PASSING + "---\n" + FAILING)
    code, out, _ = platform("test")
    assert code == 1
    f = "specs/tests.yaml"
    assert out.splitlines()[-1].startswith("7 tests: 5 passed, 1 failed, 1 error in ")
    failure_lines = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert failure_lines == [
        f"{f}:{line_of(path, 'equals: 0.9')}:17: Test/helper-is-wrong: output $.confidence: expected 0.9, got 0.75",
        f"{f}:{where(path, 'called: [{tool: note}', '{tool: lookup}')}: Test/helper-is-wrong: tool call 2 of `called`: expected "
        'a call of lookup after call 3 (note), got the calls made: 1. lookup {"query": "retries", "limit": 2} by '
        'Agent/helper; 2. lookup {"query": "retries are safe"} by Agent/checker; 3. note {"text": "remember '
        'retries"} by Agent/helper',
        f"{f}:{where(path, 'iterations: {max: 3}', '3')}: Test/helper-is-wrong: iterations: expected at most 3, got 4",
        f"{f}:{line_of(path, 'timeout: 200ms')}:12: Test/sleeper-is-too-slow: the run did not end within the "
        "test's timeout of 0.2s",
    ]
    assert "FAIL  helper-is-wrong" in out and "ERROR sleeper-is-too-slow" in out


def test_select_with_k(project: Path) -> None:
    write_tests(project, PASSING + "---\n" + FAILING)
    code, out, _ = platform("test", "specs/", "-k", "helper-")
    assert code == 1  # helper-is-wrong is selected
    assert [line.split()[1] for line in out.splitlines()[:-1] if not line.startswith(" ")] == [
        "helper-answers",
        "helper-waits-for-approval",
        "helper-with-another-model",
        "helper-is-wrong",
    ]
    code, out, _ = platform("test", "-k", "flow")
    assert code == 0 and out.splitlines()[-1].startswith("1 test: 1 passed")


def test_nothing_to_run_and_usage_errors(project: Path) -> None:
    code, _, err = platform("test")
    assert code == 1 and "no Test in specs" in err
    write_tests(project, PASSING)
    code, _, err = platform("test", "-k", "nothing-like-this")
    assert code == 1 and "no Test named like 'nothing-like-this' in specs" in err
    code, _, err = platform("test", "no-such-dir/")
    assert code == 2 and "no-such-dir: no such file or directory" in err
    code, _, _ = platform("test", "--jobs", "0")
    assert code == 2
    code, _, _ = platform("test", "-o", "xml")
    assert code == 2


def test_invalid_specs_are_reported_and_nothing_runs(project: Path) -> None:
    write_tests(project, REFERENCES)
    code, out, err = platform("test")
    assert code == 1 and out == ""
    assert "specs/tests.yaml:5:9: Test/refs: unknown agent, pipeline or supervisor 'helpr'" in err


def test_json_and_yaml_output(project: Path) -> None:
    import yaml

    write_tests(project, PASSING + "---\n" + FAILING)
    code, out, _ = platform("test", "-o", "json")
    assert code == 1
    data = json.loads(out)
    assert data["summary"]["total"] == 7
    assert (data["summary"]["passed"], data["summary"]["failed"], data["summary"]["errors"]) == (5, 1, 1)
    by_name = {test["name"]: test for test in data["tests"]}
    wrong = by_name["helper-is-wrong"]
    assert wrong["status"] == "failed" and wrong["run"]["outcome"] == "completed"
    assert wrong["problems"][0] == {
        "file": "specs/tests.yaml",
        "line": line_of(project / "specs" / "tests.yaml", "equals: 0.9"),
        "column": 17,
        "message": "output $.confidence: expected 0.9, got 0.75",
        "expectation": "output $.confidence",
        "expected": "0.9",
        "actual": "0.75",
    }
    assert (
        by_name["sleeper-is-too-slow"]["status"] == "error" and by_name["sleeper-is-too-slow"]["run"] is None
    )
    code, out, _ = platform("test", "-o", "yaml")
    assert yaml.safe_load(out)["summary"] == data["summary"] | {
        "duration_s": yaml.safe_load(out)["summary"]["duration_s"]
    }


def test_junit_xml_is_well_formed(project: Path) -> None:
    write_tests(project, PASSING + "---\n" + FAILING)
    write_tests(project, one_test("in-another-file", "flow", "  inputs: {query: y}\n"), "more.yaml")
    report = project / "out" / "junit.xml"
    report.parent.mkdir()
    code, _, _ = platform("test", "--junit-xml", str(report))
    assert code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("8", "1", "1")
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert set(suites) == {"specs/tests.yaml", "specs/more.yaml"}
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert len(cases) == 8
    assert cases["in-another-file"].get("classname") == "specs.more"
    assert list(cases["helper-answers"]) == []
    (failure,) = cases["helper-is-wrong"].findall("failure")
    assert failure.get("message", "").startswith(
        f"specs/tests.yaml:{line_of(project / 'specs' / 'tests.yaml', 'equals: 0.9')}:17:"
    )
    assert len((failure.text or "").splitlines()) == 3
    (error,) = cases["sleeper-is-too-slow"].findall("error")
    assert "timeout of 0.2s" in error.get("message", "")
    assert float(cases["flow-finds"].get("time", "-1")) >= 0
    code, _, err = platform("test", "--junit-xml", str(project / "missing-dir" / "junit.xml"))
    assert code == 2 and "cannot write" in err


def test_a_tests_model_answers_every_model_call_of_the_run(project: Path) -> None:
    """Delegates included: the checker's decision comes from the test's script, not from `fast`'s."""
    usage = {"input_tokens": 7, "output_tokens": 1}
    other = [
        {"key": "helper", "action": {"action": "delegate:checker", "task": {"claim": "c"}}, "usage": usage},
        {"key": "checker", "action": {"action": "final_answer", "answer": {"verdict": "no"}}, "usage": usage},
        {
            "key": "helper",
            "action": {"action": "final_answer", "answer": {"answer": "No.", "confidence": 0.1}},
            "usage": usage,
        },
    ]
    (project / "specs" / "other.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in other))
    spec = (
        "  inputs: {question: q}\n"
        "  model: {provider: scripted, script: other.jsonl}\n"
        "  expect:\n"
        "    output:\n"
        "      - {path: $.answer, equals: No.}\n"
        "    tools: {only: true}\n"
        "    iterations: {equals: 2}\n"
        "    usage: {total_tokens: {equals: 24}, cost_usd: {equals: 0}}\n"
    )
    write_tests(project, one_test("other-model", "helper", spec))
    code, out, err = platform("test")
    assert code == 0, out + err


# --- the tests shipped with the examples --------------------------------------------------------------------


def test_every_example_unit_has_a_test() -> None:
    report = validate_paths([ROOT / "specs"])
    assert report.ok, [str(d) for d in report.diagnostics.errors]
    units = {
        f"{s.kind}/{s.name}" for s in report.specs.specs if s.kind in ("Agent", "Pipeline", "Supervisor")
    }
    tested = set()
    for spec in report.specs.of_kind("Test"):
        assert isinstance(spec.model, TestDocument)
        from agent_platform._validate.spec_tests import resolve_unit

        unit, _ = resolve_unit(report.specs, spec.model.spec.unit)
        assert unit is not None
        tested.add(f"{unit.kind}/{unit.name}")
    assert units and tested == units


def test_make_demo_runs_the_spec_tests_after_plan() -> None:
    recipe = (ROOT / "Makefile").read_text().split("\ndemo: $(STAMP)\n", 1)[1].split("\n\n", 1)[0]
    commands = [line.strip() for line in recipe.splitlines() if "/platform " in line]
    assert commands[:3] == [
        "$(BIN)/platform validate specs/",
        "$(BIN)/platform plan specs/",
        "$(BIN)/platform test specs/",
    ]


def test_the_shipped_spec_tests_pass() -> None:
    """`platform test specs/` as `make demo` runs it: the real command, the scripted models, the
    bundled plugins, the embedded pgvector server in a fresh state directory (not under pytest's
    tmp dir: as root, that server runs as its own user, who must reach its data directory)."""
    from agent_platform._memory.stores.embedded import stop_embedded_server

    executable = Path(sys.executable).parent / "platform"
    if not executable.exists():
        pytest.skip("the `platform` console script is not installed")
    state_dir = Path(tempfile.mkdtemp(prefix="spec-tests-state-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PLATFORM_STATE_DIR=str(state_dir), PLATFORM_WORKSPACE=str(ROOT))
    junit = state_dir / "junit.xml"
    try:
        proc = subprocess.run(
            [str(executable), "test", "specs/", "-o", "json", "--junit-xml", str(junit)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        data = json.loads(proc.stdout)
        assert data["summary"]["failed"] == data["summary"]["errors"] == 0
        assert data["summary"]["passed"] == data["summary"]["total"] >= 7
        assert ET.parse(junit).getroot().get("failures") == "0"
    finally:
        stop_embedded_server(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def test_the_readme_example_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tour's Test, against the example specs (without their own tests)."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### 6. Test your specs") :]
    example = re.findall(r"^```yaml\n(.*?)^```", section, re.MULTILINE | re.DOTALL)[0]
    specs = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", specs, ignore=shutil.ignore_patterns("tests"))
    (specs / "readme-test.yaml").write_text(example)
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(ROOT)  # the example tools' plugins
    code, out, err = platform("test", str(specs))
    assert code == 0, out + err
    assert out.splitlines()[-1].startswith("1 test: 1 passed")


def test_validate_with_tests_imports_nothing_heavy(project: Path) -> None:
    write_tests(project, PASSING)
    runner = (
        "import json, sys\n"
        "from agent_platform._cli import app\n"
        "try:\n    app(['validate', 'specs/'], standalone_mode=False)\n"
        "except SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", runner], cwd=project, capture_output=True, text=True, timeout=120
    )
    modules = json.loads(proc.stdout.splitlines()[-1])
    heavy = ("ray", "anthropic", "instructor", "openai", "opentelemetry", "numpy", "onnxruntime", "psycopg")
    assert "agent_platform._validate.spec_tests" in modules
    assert [m for m in modules if m.split(".")[0] in heavy] == []
    assert "agent_platform._spectest.runner" not in modules
