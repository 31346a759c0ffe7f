"""Broken specs, table-driven: every way a user can get a spec wrong must give exactly the located
errors listed here (`file:line:col: Kind/name: message`), never a traceback and never silence.

Each case writes its YAML to `case.yaml` (plus any `extra` files) in a fresh directory, validates
the YAML files written, and compares the full sorted list of ERROR diagnostics (hints ignored).
Expected errors are `(line, column, subject, message)` for `case.yaml`, or
`(file, line, column, subject, message)` for another file; `{dir}` in a message stands for the
case directory. Cases that document a validator bug are strict xfails whose expectation is the
correct output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent_platform._diagnostics import Severity
from agent_platform._validate import ValidationOptions, validate_paths

Content = str | bytes | Callable[[], bytes]
Expected = tuple[Any, ...]


@dataclass(frozen=True)
class Case:
    id: str
    content: Content
    errors: list[Expected]
    extra: dict[str, Content] = field(default_factory=dict)
    bug: str | None = None  # a validator bug: the case is a strict xfail until it is fixed


# --- supporting documents -----------------------------------------------------------------------

API = "apiVersion: agents.platform/v1\n"

MODEL_M = """\
---
apiVersion: agents.platform/v1
kind: Model
metadata:
  name: m
spec:
  provider: scripted
  on_script_exhausted: synthesize
"""

# Lines 1-7; cases append spec fields from line 8 on.
AGENT_A = """\
apiVersion: agents.platform/v1
kind: Agent
metadata:
  name: a
spec:
  model: m
  instructions: Do it.
"""

# Lines 1-6 (an agent without instructions); cases append from line 7 on.
AGENT_HEAD = """\
apiVersion: agents.platform/v1
kind: Agent
metadata:
  name: a
spec:
  model: m
"""

# Lines 1-11: an agent whose inputs declare `topic` and `items`; instructions from line 12 on.
AGENT_WITH_INPUTS = """\
apiVersion: agents.platform/v1
kind: Agent
metadata:
  name: a
spec:
  model: m
  inputs:
    type: object
    properties:
      topic: {type: string}
      items: {type: array, items: {type: string}}
"""

# Lines 1-7; cases append from line 8 on.
TOOL_T = """\
apiVersion: agents.platform/v1
kind: Tool
metadata:
  name: t
spec:
  description: A tool.
  http: {url: "https://example.com/t"}
"""

# Lines 1-5; cases append the guardrail's fields from line 6 on.
GUARDRAIL_HEAD = """\
apiVersion: agents.platform/v1
kind: Guardrail
metadata:
  name: g
spec:
"""


def agent(name: str, extra: str = "", model: str = "m") -> str:
    return (
        f"---\n{API}kind: Agent\nmetadata:\n  name: {name}\nspec:\n  model: {model}\n"
        f"  instructions: Do it.\n{extra}"
    )


def tool(name: str, extra: str = "") -> str:
    return (
        f"---\n{API}kind: Tool\nmetadata:\n  name: {name}\nspec:\n  description: A tool.\n"
        f"  http: {{url: 'https://example.com/{name}'}}\n{extra}"
    )


# A tool with declared input and output schemas, for pipeline template and agreement cases.
TOOL_SUMMARISE = tool(
    "summarise",
    """\
  input_schema:
    type: object
    required: [text]
    properties:
      text: {type: string}
  output_schema:
    type: object
    properties:
      summary: {type: string}
      count: {type: integer}
""",
)

# Pipeline header, lines 1-6; steps from line 7 on.
PIPELINE_HEAD = """\
apiVersion: agents.platform/v1
kind: Pipeline
metadata:
  name: p
spec:
  steps:
"""

PLUGIN_FILES: dict[str, Content] = {
    "plugs/__init__.py": "",
    "plugs/tools.py": "def search(query: str) -> str:\n    return query\n",
}


def billion_laughs() -> str:
    """9 levels of 9 aliases each: 9**9 (387 million) nodes if expanded."""
    lines = ["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 9):
        refs = ", ".join([f"*lol{level - 1}"] * 9)
        lines.append(f"lol{level}: &lol{level} [{refs}]")
    return "\n".join(lines) + "\n"


def deep_nesting(levels: int) -> str:
    return f"{API}kind: Agent\nmetadata: {{name: a}}\nspec:\n  inputs: {'[' * levels}{']' * levels}\n"


TEN_MB = 10 * 1024 * 1024


def ten_megabytes() -> bytes:
    """A valid agent padded with one long comment to exactly 10 MiB."""
    head = AGENT_A.encode() + b"# "
    return head + b"x" * (TEN_MB - len(head) - 1) + b"\n"


NAME_HINT = (
    "names use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters"
)
KINDS = "Model, Tool, McpServer, Memory, Guardrail, Agent, Pipeline, Supervisor, Endpoint, RemoteAgent, Test"
AGENT_VARS = "(available: agent, delegates, inputs, tools)"
TYPES = "(expected one of: string, number, integer, boolean, object, array, null)"
YAML11 = "(YAML 1.1 words like yes/no/on/off are strings here; write true or false)"


def case(
    id: str,
    content: Content,
    errors: list[Expected],
    *,
    extra: dict[str, Content] | None = None,
    bug: str | None = None,
) -> Case:
    return Case(id, content, errors, extra or {}, bug)


# --- the table ----------------------------------------------------------------------------------

YAML_CASES = [
    case(
        "yaml-unclosed-bracket",
        f"{API}kind: Agent\nmetadata: {{name: [a, b\nspec: {{}}\n",
        [
            (
                4,
                5,
                None,
                "invalid YAML: while parsing a flow sequence; did not find expected ',' or ']' "
                "(it started at line 3, column 18)",
            )
        ],
    ),
    case(
        "yaml-bad-indentation",
        f"{API}kind: Agent\nmetadata:\n    name: a\n  description: x\nspec: {{}}\n",
        [(5, 3, None, "invalid YAML: while parsing a block mapping; did not find expected key")],
    ),
    case(
        "yaml-over-indented-key",
        f"{API}kind: Agent\nmetadata:\n  name: a\n   description: x\nspec: {{}}\n",
        [(5, 15, None, "invalid YAML: mapping values are not allowed in this context")],
    ),
    case(
        "yaml-tab-indentation",
        f"{API}kind: Agent\nmetadata:\n\tname: a\nspec: {{}}\n",
        [(4, 1, None, "tab character in indentation; YAML requires spaces")],
    ),
    case(
        "yaml-duplicate-key",
        AGENT_A + "  model: other\n" + MODEL_M,
        [(8, 3, None, "duplicate key 'model' (first defined at line 6)")],
    ),
    case(
        "yaml-alias-bomb",
        billion_laughs,
        [
            (
                6,
                14,
                None,
                "document expands to more than 100,000 nodes (aliases are counted each time they are "
                "used); split it or remove aliases",
            )
        ],
    ),
    case(
        "yaml-recursive-alias",
        f"{API}kind: Agent\nmetadata: &meta\n  name: a\n  labels: *meta\n",
        [(5, 11, None, "alias '*meta' refers to itself")],
    ),
    case(
        "yaml-unknown-alias",
        AGENT_HEAD + "  instructions: *prompt\n" + MODEL_M,
        [(7, 17, None, "alias '*prompt' refers to no anchor")],
    ),
    case(
        "yaml-python-object-tag",
        f"{API}kind: Agent\nmetadata: !!python/object:__main__.Meta\n  name: a\n",
        [(3, 11, None, "tag '!!python/object:__main__.Meta' is not allowed in specs")],
    ),
    case(
        "yaml-merge-key",
        AGENT_A + "  limits: &limits {max_iterations: 5}\n  runtime:\n    <<: *limits\n" + MODEL_M,
        [(10, 5, None, "merge keys ('<<') are not supported in specs; write the fields out")],
    ),
    case(
        "yaml-nesting-70-levels",
        deep_nesting(70),
        [(5, 73, None, "nesting deeper than 64 levels is not allowed in specs")],
    ),
    case("yaml-empty-file", "", [(1, 1, None, "file contains no spec documents")]),
    case(
        "yaml-only-comments",
        "# The agents live in agents.yaml.\n# Nothing here yet.\n",
        [(1, 1, None, "file contains no spec documents")],
    ),
    case(
        "yaml-invalid-utf8",
        f"{API}kind: Agent\nmetadata:\n  name: a\n  description: Caf".encode() + b"\xe9\n",
        [(5, 19, None, "invalid UTF-8 byte 0xe9; specs must be UTF-8 text")],
    ),
    case(
        "yaml-nul-byte",
        f"{API}kind: Agent\nmetadata:\n  name: a".encode() + b"\x00\x01\x02\n",
        [(4, 10, None, "file looks binary (contains a NUL byte); specs must be UTF-8 text")],
    ),
    case(
        "yaml-utf16-bom",
        AGENT_A.encode("utf-16"),
        [(1, 1, None, "file is UTF-16 encoded; specs must be UTF-8")],
    ),
    case(
        "yaml-10-megabytes",
        ten_megabytes,
        [(1, 1, None, "file is 10,485,760 bytes; the limit for a spec file is 1,048,576 bytes")],
    ),
    case(
        "yaml-document-is-a-list",
        f"- {API}- kind: Agent\n",
        [(1, 1, None, "a spec document must be a mapping with apiVersion, kind, metadata and spec")],
    ),
    case(
        "yaml11-NO-for-bool",
        TOOL_T + "  side_effects: NO\n",
        [(8, 17, "Tool/t", f"spec.side_effects: expected true or false, got string 'NO' {YAML11}")],
    ),
    case(
        "yaml11-off-for-bool",
        TOOL_T + "  requires_approval: off\n",
        [(8, 22, "Tool/t", f"spec.requires_approval: expected true or false, got string 'off' {YAML11}")],
    ),
]

ENVELOPE_CASES = [
    case(
        "kind-typo",
        AGENT_A.replace("kind: Agent", "kind: Agnet") + MODEL_M,
        [(2, 7, None, f"unknown kind 'Agnet' (expected one of: {KINDS}) (did you mean 'Agent'?)")],
    ),
    case(
        "api-version-wrong",
        AGENT_A.replace("platform/v1", "platform/v2") + MODEL_M,
        [(1, 13, "Agent/a", "unknown apiVersion 'agents.platform/v2' (expected 'agents.platform/v1')")],
    ),
    case(
        "api-version-missing",
        AGENT_A.removeprefix(API) + MODEL_M,
        [(1, 1, "Agent/a", "missing required field 'apiVersion'")],
    ),
    case(
        "kind-missing",
        AGENT_A.replace("kind: Agent\n", "") + MODEL_M,
        [(1, 1, None, "missing required field 'kind'")],
    ),
    case(
        "metadata-name-missing",
        AGENT_A.replace("  name: a\n", "  description: Does it.\n") + MODEL_M,
        [(3, 1, "Agent", "missing required field 'name' in metadata")],
    ),
    case(
        "metadata-name-invalid",
        AGENT_A.replace("name: a", "name: Bad_Name") + MODEL_M,
        [(4, 9, "Agent/Bad_Name", f"metadata.name: invalid value string 'Bad_Name': {NAME_HINT}")],
    ),
    case(
        "duplicate-name-in-two-files",
        AGENT_A + MODEL_M,
        [
            (
                "other.yaml",
                5,
                9,
                "Agent/a",
                "duplicate Agent name 'a' (first defined at {dir}/case.yaml:4:9)",
            )
        ],
        extra={"other.yaml": agent("a")},
    ),
]

FIELD_CASES = [
    case(
        "unknown-field-typo",
        AGENT_HEAD + "  instrutions: Do it.\n" + MODEL_M,
        [(7, 3, "Agent/a", "unknown field 'instrutions' in spec (did you mean 'instructions'?)")],
    ),
    case(
        "unknown-nested-field",
        AGENT_A + "  limits:\n    max_iteration: 5\n" + MODEL_M,
        [(9, 5, "Agent/a", "unknown field 'max_iteration' in spec.limits (did you mean 'max_iterations'?)")],
    ),
    case(
        "quoted-integer",
        AGENT_A + '  limits:\n    max_iterations: "5"\n' + MODEL_M,
        [
            (
                9,
                21,
                "Agent/a",
                "spec.limits.max_iterations: expected an integer, got string '5' (remove the quotes)",
            )
        ],
    ),
    case(
        "list-for-string",
        AGENT_HEAD + "  instructions: [Do, it]\n" + MODEL_M,
        [(7, 17, "Agent/a", "spec.instructions: expected a string, got a list")],
    ),
    case(
        "mapping-for-list",
        AGENT_A + "  tools: {search: true}\n" + MODEL_M,
        [(8, 10, "Agent/a", "spec.tools: expected a list, got a mapping")],
    ),
    case(
        "bad-duration",
        AGENT_A + "  limits:\n    timeout: 5x\n" + MODEL_M,
        [
            (
                9,
                14,
                "Agent/a",
                "spec.limits.timeout: invalid duration '5x': use a number of seconds or units "
                "ms, s, m, h, d (e.g. '300s', '5m', '1h30m')",
            )
        ],
    ),
    case(
        "zero-replicas",
        AGENT_A + "  runtime:\n    replicas: 0\n" + MODEL_M,
        [(9, 15, "Agent/a", "spec.runtime.replicas: must be >= 1, got 0")],
    ),
    case(
        "negative-replicas",
        AGENT_A + "  runtime:\n    replicas: -2\n" + MODEL_M,
        [(9, 15, "Agent/a", "spec.runtime.replicas: must be >= 1, got -2")],
    ),
    case(
        "literal-typo",
        AGENT_A + "  runtime:\n    placement: spreed\n" + MODEL_M,
        [
            (
                9,
                16,
                "Agent/a",
                "spec.runtime.placement: invalid value 'spreed'; expected 'any', 'spread', 'pack' or "
                "'colocate' (did you mean 'spread'?)",
            )
        ],
    ),
    case(
        "missing-required-field",
        AGENT_HEAD + MODEL_M,
        [(5, 1, "Agent/a", "missing required field 'instructions' in spec")],
    ),
    case(
        "guardrail-unknown-type",
        GUARDRAIL_HEAD + "  type: pii_redact\n  applies_to: [output]\n",
        [
            (
                6,
                9,
                "Guardrail/g",
                "spec: unknown type 'pii_redact' (expected one of: prompt_injection, loop_detection, "
                "pii_redaction, tool_allowlist, budget, output_schema, regex, python, "
                "injection_classifier) "
                "(did you mean 'pii_redaction'?)",
            )
        ],
    ),
    case(
        "guardrail-stage-not-allowed",
        GUARDRAIL_HEAD + "  type: loop_detection\n  applies_to: [output]\n",
        [
            (
                7,
                16,
                "Guardrail/g",
                "spec.applies_to[0]: a loop_detection guardrail cannot apply to output (allowed: action)",
            )
        ],
    ),
    case(
        "tool-two-implementations",
        TOOL_T + "  mcp: {server: srv, tool: t}\n",
        [
            (
                8,
                3,
                "Tool/t",
                "spec.mcp: a tool needs exactly one implementation of python, http, mcp (found: http, mcp)",
            ),
            (8, 17, "Tool/t", "unknown McpServer 'srv' (no McpServer is defined in the given files)"),
        ],
    ),
    case(
        "tool-side-effects-retried-without-key",
        TOOL_T + "  side_effects: true\n  retry:\n    max_attempts: 3\n",
        [
            (
                10,
                5,
                "Tool/t",
                "spec.retry.max_attempts: a tool with side effects is never retried unless it is idempotent: "
                "set idempotency.mode: key, or retry.max_attempts: 1",
            )
        ],
    ),
    case(
        "tool-side-effects-cached",
        TOOL_T + "  side_effects: true\n  idempotency:\n    mode: cache\n",
        [
            (
                10,
                11,
                "Tool/t",
                "spec.idempotency.mode: idempotency mode 'cache' memoises results and is unsafe for a tool with side "
                "effects; use mode 'key' so results are stored durably under an idempotency key",
            )
        ],
    ),
    case(
        "llm-step-without-output",
        PIPELINE_HEAD + "    - name: ask\n      llm:\n        model: m\n        prompt: Hi\n" + MODEL_M,
        [(7, 7, "Pipeline/p", "spec.steps[0]: an llm step needs an 'output' schema (structured output)")],
    ),
    case(
        "scripted-model-without-script",
        f"{API}kind: Model\nmetadata:\n  name: m\nspec:\n  provider: scripted\n",
        [
            (
                6,
                3,
                "Model/m",
                "spec: a scripted model needs a 'script' file or on_script_exhausted: synthesize",
            )
        ],
    ),
    case(
        "anthropic-model-without-name",
        f"{API}kind: Model\nmetadata:\n  name: m\nspec:\n  provider: anthropic\n  max_tokens: 1000\n",
        [(6, 3, "Model/m", "spec.provider: provider 'anthropic' needs the model 'name'")],
    ),
    case(
        "model-reference-invalid-name",
        AGENT_A.replace("model: m", "model: Big_Model"),
        [(6, 10, "Agent/a", f"spec.model: invalid value string 'Big_Model': {NAME_HINT}")],
    ),
]

REFERENCE_CASES = [
    case(
        "unknown-references-did-you-mean",
        AGENT_A.replace("model: m", "model: mian")
        + "  tools: [serach]\n  delegates: [writter]\n  memory: note\n  guardrails: [pi]\n"
        + MODEL_M.replace("name: m", "name: main")
        + tool("search")
        + f"---\n{API}kind: Memory\nmetadata:\n  name: notes\nspec:\n  working: {{max_tokens: 1000}}\n"
        + f"---\n{API}kind: Guardrail\nmetadata:\n  name: pii\nspec:\n  type: pii_redaction\n"
        + "  applies_to: [output]\n"
        + agent("writer", model="main"),
        [
            (6, 10, "Agent/a", "unknown Model 'mian' (did you mean 'main'?)"),
            (8, 11, "Agent/a", "unknown Tool 'serach' (did you mean 'search'?)"),
            (9, 15, "Agent/a", "unknown Agent 'writter' (did you mean 'writer'?)"),
            (10, 11, "Agent/a", "unknown Memory 'note' (did you mean 'notes'?)"),
            (11, 16, "Agent/a", "unknown Guardrail 'pi' (did you mean 'pii'?)"),
        ],
    ),
    case(
        "unknown-tool-none-defined",
        AGENT_A + "  tools: [search]\n" + MODEL_M,
        [(8, 11, "Agent/a", "unknown Tool 'search' (no Tool is defined in the given files)")],
    ),
    case(
        "reference-to-other-kind",
        AGENT_A
        + "  delegates: [helper]\n"
        + MODEL_M
        + f"---\n{API}kind: Pipeline\nmetadata:\n  name: helper\nspec:\n  steps:\n"
        + "    - name: run\n      tool: t\n"
        + tool("t"),
        [(8, 15, "Agent/a", "unknown Agent 'helper' ('helper' is a Pipeline, not an Agent)")],
    ),
    case(
        "supervisor-route-to-missing-agent",
        f"{API}kind: Supervisor\nmetadata:\n  name: sup\nspec:\n  routes:\n    review: {{agent: reviewr}}\n"
        + agent("reviewer")
        + MODEL_M,
        [(7, 21, "Supervisor/sup", "unknown Agent 'reviewr' (did you mean 'reviewer'?)")],
    ),
    case(
        "pipeline-step-to-missing-tool",
        PIPELINE_HEAD + "    - name: first\n      tool: seach\n" + tool("search"),
        [(8, 13, "Pipeline/p", "unknown Tool 'seach' (did you mean 'search'?)")],
    ),
    case(
        "delegation-cycle",
        AGENT_A + "  delegates: [b]\n" + agent("b", "  delegates: [a]\n") + MODEL_M,
        [(8, 15, "Agent/a", "delegation cycle: a -> b -> a")],
    ),
    case(
        "self-delegation",
        AGENT_A + "  delegates: [a]\n" + MODEL_M,
        [(8, 15, "Agent/a", "delegation cycle: a -> a")],
    ),
    case(
        "pipeline-inclusion-cycle",
        f"{API}kind: Pipeline\nmetadata:\n  name: outer\nspec:\n  steps:\n"
        "    - name: run_inner\n      pipeline: inner\n"
        f"---\n{API}kind: Pipeline\nmetadata:\n  name: inner\nspec:\n  steps:\n"
        "    - name: run_outer\n      pipeline: outer\n",
        [(17, 17, "Pipeline/inner", "pipeline inclusion cycle: inner -> outer -> inner")],
    ),
]

TEMPLATE_CASES = [
    case(
        "template-syntax-error-in-block",
        AGENT_WITH_INPUTS
        + """\
  instructions: |
    You are helpful.
    Topic: {{ inputs.topic }}
    {% if inputs.topic %}
    Say {{ inputs.topic | upper }
    {% endif %}
"""
        + MODEL_M,
        [(16, 5, "Agent/a", "template syntax error: unexpected '}'")],
    ),
    case(
        "template-unclosed-if",
        AGENT_WITH_INPUTS
        + """\
  instructions: |
    You are helpful.
    {% if inputs.topic %}
    Topic: {{ inputs.topic }}
"""
        + MODEL_M,
        [
            (
                15,
                5,
                "Agent/a",
                "template syntax error: Unexpected end of template. Jinja was looking for the following "
                "tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.",
            )
        ],
    ),
    case(
        "template-unknown-variable",
        AGENT_WITH_INPUTS + "  instructions: |\n    Hello.\n    Write about {{ topic }}.\n" + MODEL_M,
        [
            (
                14,
                20,
                "Agent/a",
                f"unknown variable 'topic' in agent instructions {AGENT_VARS} (did you mean 'inputs.topic'?)",
            )
        ],
    ),
    case(
        "template-input-not-declared",
        AGENT_WITH_INPUTS + '  instructions: "Write about {{ inputs.topc }}."\n' + MODEL_M,
        [(12, 33, "Agent/a", "'inputs.topc' is not declared in the inputs schema (did you mean 'topic'?)")],
    ),
    case(
        "template-unknown-filter",
        AGENT_WITH_INPUTS + "  instructions: |\n    Write about {{ inputs.topic | uper }}.\n" + MODEL_M,
        [(13, 35, "Agent/a", "unknown filter 'uper' (did you mean 'upper'?)")],
    ),
    case(
        "template-later-step",
        PIPELINE_HEAD
        + """\
    - name: first
      tool: summarise
      input:
        text: "{{ steps.second.output }}"
    - name: second
      tool: summarise
      input:
        text: hi
"""
        + TOOL_SUMMARISE,
        [
            (
                10,
                19,
                "Pipeline/p",
                "'steps.second' runs after this point; only earlier steps' outputs are available",
            )
        ],
    ),
    case(
        "template-step-outpt",
        PIPELINE_HEAD
        + """\
    - name: first
      tool: summarise
      input:
        text: hi
    - name: second
      tool: summarise
      input:
        text: "{{ steps.first.outpt }}"
"""
        + TOOL_SUMMARISE,
        [(14, 19, "Pipeline/p", "'steps.first.outpt' is not available; use 'steps.first.output'")],
    ),
    case(
        "template-step-output-property",
        PIPELINE_HEAD
        + """\
    - name: first
      tool: summarise
      input:
        text: hi
    - name: second
      tool: summarise
      input:
        text: "Summary: {{ steps.first.output.sumary }}"
"""
        + TOOL_SUMMARISE,
        [
            (
                14,
                28,
                "Pipeline/p",
                "'steps.first.output.sumary' is not in the output schema of step 'first' "
                "(did you mean 'summary'?)",
            )
        ],
    ),
    case(
        "template-error-in-folded-block",
        AGENT_HEAD + "  instructions: >\n    You are helpful.\n    Write about {{ topic }}.\n" + MODEL_M,
        [(9, 20, "Agent/a", "unknown variable 'topic' in agent instructions " + AGENT_VARS)],
    ),
    case(
        "template-error-in-multiline-plain-scalar",
        AGENT_HEAD + "  instructions: You are helpful.\n    Write about {{ topic }}.\n" + MODEL_M,
        [(8, 20, "Agent/a", "unknown variable 'topic' in agent instructions " + AGENT_VARS)],
    ),
    case(
        "template-error-after-leading-blank-line",
        AGENT_HEAD + "  instructions: |\n\n    Write about {{ topic }}.\n" + MODEL_M,
        [(9, 20, "Agent/a", "unknown variable 'topic' in agent instructions " + AGENT_VARS)],
    ),
    case(
        "template-error-after-escape-in-quoted-string",
        AGENT_HEAD + '  instructions: "Hi\\tthere {{ topc }}"\n' + MODEL_M,
        [(7, 31, "Agent/a", "unknown variable 'topc' in agent instructions " + AGENT_VARS)],
    ),
]

SCHEMA_CASES = [
    case(
        "schema-invalid-type",
        AGENT_A + "  inputs:\n    type: objekt\n" + MODEL_M,
        [(9, 11, "Agent/a", f"invalid JSON Schema: 'objekt' is not a type {TYPES}")],
    ),
    case(
        "schema-dangling-ref",
        AGENT_A
        + "  output:\n    type: object\n    properties:\n      item: {$ref: '#/$defs/Item'}\n"
        + MODEL_M,
        [(11, 20, "Agent/a", "reference '#/$defs/Item' points to nothing")],
    ),
    case(
        "schema-unsupported-keyword-in-output",
        AGENT_A + "  output:\n    type: object\n    dependencies: {a: [b]}\n" + MODEL_M,
        [
            (
                10,
                5,
                "Agent/a",
                "JSON Schema keyword 'dependencies' is not supported for structured output: a Draft 7 "
                "keyword, which Draft 2020-12 ignores; use 'dependentRequired' or 'dependentSchemas'",
            )
        ],
    ),
    case(
        "schema-remote-dialect",
        AGENT_A
        + "  inputs:\n    $schema: http://json-schema.org/draft-07/schema#\n    type: object\n"
        + MODEL_M,
        [
            (
                9,
                14,
                "Agent/a",
                "only JSON Schema Draft 2020-12 is supported, not 'http://json-schema.org/draft-07/schema#'",
            )
        ],
    ),
    case(
        "schema-remote-ref",
        AGENT_A
        + "  inputs:\n    type: object\n    properties:\n      x: {$ref: 'https://example.com/x.json'}\n"
        + MODEL_M,
        [(11, 17, "Agent/a", "only local references are allowed, not 'https://example.com/x.json'")],
    ),
    case(
        "schema-producer-consumer-mismatch",
        PIPELINE_HEAD
        + """\
    - name: count
      tool: counter
    - name: show
      tool: summarise
      input:
        text: "{{ steps.count.output }}"
"""
        + tool("counter", "  output_schema: {type: integer}\n")
        + TOOL_SUMMARISE,
        [
            (
                12,
                15,
                "Pipeline/p",
                "input 'text' of step 'show': steps.count.output is integer but the consumer expects string",
            )
        ],
    ),
    case(
        "step-missing-required-tool-input",
        PIPELINE_HEAD
        + "    - name: show\n      tool: summarise\n      input:\n        colour: red\n"
        + TOOL_SUMMARISE,
        [(9, 7, "Pipeline/p", "step 'show' does not provide 'text', required by tool 'summarise'")],
    ),
]

TOOL_HEAD = TOOL_T.replace('  http: {url: "https://example.com/t"}\n', "")

PLUGIN_CASES = [
    case(
        "plugin-module-not-found",
        TOOL_HEAD + "  python: plugs.missing:run\n",
        [
            (
                7,
                11,
                "Tool/t",
                "python module 'plugs.missing' not found under the plugin paths ({dir}) nor installed: "
                "looked for plugs/missing.py and plugs/missing/__init__.py; to look elsewhere, pass "
                "--plugin-path DIR or add DIR to $PLATFORM_PLUGIN_PATH",
            )
        ],
        extra=PLUGIN_FILES,
    ),
    case(
        "plugin-attribute-typo",
        TOOL_HEAD + "  python: plugs.tools:serch\n",
        [
            (
                7,
                11,
                "Tool/t",
                "'plugs.tools' ({dir}/plugs/tools.py) has no top-level 'serch' (did you mean 'search'?)",
            )
        ],
        extra=PLUGIN_FILES,
    ),
]

OTHER_CASES = [
    case(
        "cost-budget-without-pricing",
        AGENT_A.replace("model: m", "model: paid")
        + "  limits:\n    max_cost_usd: 2.5\n"
        + f"---\n{API}kind: Model\nmetadata:\n  name: paid\nspec:\n  provider: anthropic\n"
        + "  name: claude-sonnet-4-5\n",
        [(9, 19, "Agent/a", "a cost budget needs the model's pricing (set pricing on the Model)")],
    ),
    case(
        "script-file-not-found",
        f"{API}kind: Model\nmetadata:\n  name: m\nspec:\n  provider: scripted\n  script: scripts/replay.yaml\n",
        [
            (
                7,
                11,
                "Model/m",
                "script file 'scripts/replay.yaml' not found (looked for {dir}/scripts/replay.yaml)",
            )
        ],
    ),
    case(
        "regex-guardrail-invalid-pattern",
        GUARDRAIL_HEAD
        + "  type: regex\n  applies_to: [output]\n  patterns:\n    - 'sk-[a-z]+'\n    - '(unclosed'\n",
        [
            (
                10,
                7,
                "Guardrail/g",
                "invalid regular expression: missing ), unterminated subpattern at position 0",
            )
        ],
    ),
]

CASES: list[Case] = [
    *YAML_CASES,
    *ENVELOPE_CASES,
    *FIELD_CASES,
    *REFERENCE_CASES,
    *TEMPLATE_CASES,
    *SCHEMA_CASES,
    *PLUGIN_CASES,
    *OTHER_CASES,
]

# Valid specs that look like traps: none of these may give an error.
CONTROL_CASES = [
    case(
        "yaml11-words-stay-strings",
        AGENT_A.replace("  name: a\n", "  name: a\n  labels: {country: no, enabled: off, ok: YES}\n")
        + MODEL_M,
        [],
    ),
    case(
        "template-loop-variable",
        AGENT_WITH_INPUTS + '  instructions: "{% for x in inputs.items %}{{ x }}{% endfor %}"\n' + MODEL_M,
        [],
    ),
    case("same-name-in-two-kinds", agent("search").removeprefix("---\n") + MODEL_M + tool("search"), []),
    case(
        "durations-sizes-and-shorthands",
        AGENT_A
        + "  limits: {timeout: 1h30m, max_iterations: 5}\n"
        + "  runtime: {placement: spread, resources: {memory: 512Mi, num_cpus: 0.5}}\n"
        + MODEL_M,
        [],
    ),
]


# --- running the cases --------------------------------------------------------------------------


def write_case(directory: Path, c: Case) -> list[Path]:
    """Write the case's files; -> the spec files (*.yaml), sorted."""
    specs: list[Path] = []
    for relative, content in {"case.yaml": c.content, **c.extra}.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content() if callable(content) else content
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            specs.append(path)
    return sorted(specs)


def expected_errors(c: Case, directory: Path) -> list[tuple[str, int, int, str | None, str]]:
    rows = []
    for row in c.errors:
        file, line, column, subject, message = row if len(row) == 5 else ("case.yaml", *row)
        rows.append((file, line, column, subject, message.replace("{dir}", str(directory))))
    return sorted(rows, key=lambda r: (r[0], r[1], r[2], r[4]))


def actual_errors(directory: Path, files: list[Path]) -> list[tuple[str, int, int, str | None, str]]:
    report = validate_paths(files, ValidationOptions(plugin_paths=[directory]))
    rows = []
    for d in report.diagnostics.sorted():
        if d.severity is not Severity.ERROR:
            continue
        assert d.location is not None, f"unlocated error: {d}"
        loc = d.location
        prefix = f"{loc.file}:{loc.line}:{loc.column}: "
        assert str(d) == prefix + (f"{d.subject}: " if d.subject else "") + d.message
        relative = Path(loc.file).relative_to(directory).as_posix()
        rows.append((relative, loc.line, loc.column, d.subject, d.message))
    return rows


def params(cases: list[Case]) -> list[Any]:
    return [
        pytest.param(
            c,
            id=c.id,
            marks=[pytest.mark.xfail(strict=True, reason=f"validator bug: {c.bug}")] if c.bug else [],
        )
        for c in cases
    ]


def test_the_table_is_well_formed() -> None:
    ids = [c.id for c in [*CASES, *CONTROL_CASES]]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CASES) >= 45
    assert all(c.errors for c in CASES), "every broken spec must produce at least one error"
    assert all(not c.errors and c.bug is None for c in CONTROL_CASES)


@pytest.mark.parametrize("c", params(CASES))
def test_broken_spec(c: Case, tmp_path: Path) -> None:
    files = write_case(tmp_path, c)
    assert actual_errors(tmp_path, files) == expected_errors(c, tmp_path)


@pytest.mark.parametrize("c", params(CONTROL_CASES))
def test_valid_control(c: Case, tmp_path: Path) -> None:
    files = write_case(tmp_path, c)
    assert actual_errors(tmp_path, files) == []


# --- the CLI ------------------------------------------------------------------------------------

LOCATED_LINE = re.compile(r"^[^:]+:\d+:\d+: ")


def platform(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("platform")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "agent_platform"]
    return subprocess.run(
        [*command, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def write_cases(root: Path, cases: list[Case]) -> tuple[list[Path], list[str]]:
    """Each case in its own directory -> (the directories, --plugin-path options)."""
    directories, options = [], []
    for c in cases:
        directory = root / c.id
        directory.mkdir()
        write_case(directory, c)
        directories.append(directory)
        if any(name.endswith(".py") for name in c.extra):
            options += ["--plugin-path", str(directory)]
    return directories, options


def test_cli_reports_every_case_located_and_without_traceback(tmp_path: Path) -> None:
    directories, options = write_cases(tmp_path, CASES)
    result = platform("validate", *options, *directories, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"\d+ errors in \d+ files( \(.*\))?", lines[-1]), lines[-1]
    bad = [line for line in lines[:-1] if not LOCATED_LINE.match(line)]
    assert not bad, "unlocated output lines:\n" + "\n".join(bad)
    # every case directory shows up in the output: nothing was silently skipped
    for directory in directories:
        assert f"{directory}/" in result.stdout, f"no error reported for {directory.name}"


def test_cli_json_format(tmp_path: Path) -> None:
    chosen = [c for c in CASES if c.id in ("kind-typo", "pipeline-step-to-missing-tool")]
    directories, _ = write_cases(tmp_path, chosen)
    result = platform("validate", "--format", "json", "--no-hints", *directories, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["errors"] == 2
    assert sorted(report["files"]) == sorted(str(d / "case.yaml") for d in directories)
    assert report["diagnostics"] == [
        {
            "severity": "error",
            "code": "unknown-kind",
            "message": f"unknown kind 'Agnet' (expected one of: {KINDS}) (did you mean 'Agent'?)",
            "file": str(tmp_path / "kind-typo" / "case.yaml"),
            "line": 2,
            "column": 7,
            "kind": None,
            "name": "a",
        },
        {
            "severity": "error",
            "code": "unresolved-reference",
            "message": "unknown Tool 'seach' (did you mean 'search'?)",
            "file": str(tmp_path / "pipeline-step-to-missing-tool" / "case.yaml"),
            "line": 8,
            "column": 13,
            "kind": "Pipeline",
            "name": "p",
        },
    ]


def test_cli_github_format(tmp_path: Path) -> None:
    chosen = [c for c in CASES if c.id in ("kind-typo", "pipeline-step-to-missing-tool")]
    directories, _ = write_cases(tmp_path, chosen)
    result = platform("validate", "--format", "github", "--no-hints", *directories, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    first = str(tmp_path / "kind-typo" / "case.yaml")
    second = str(tmp_path / "pipeline-step-to-missing-tool" / "case.yaml")
    assert result.stdout.splitlines() == [
        f"::error file={first},line=2,col=7::unknown kind 'Agnet' (expected one of: {KINDS}) "
        "(did you mean 'Agent'?)",
        f"::error file={second},line=8,col=13,title=Pipeline/p::unknown Tool 'seach' "
        "(did you mean 'search'?)",
    ]
    assert "2 errors in 2 files" in result.stderr


VALID_SET = (
    MODEL_M.removeprefix("---\n")
    + TOOL_SUMMARISE
    + agent("writer", "  tools: [summarise]\n  delegates: [helper]\n")
    + agent("helper")
    + "---\n"
    + PIPELINE_HEAD
    + """\
    - name: first
      tool: summarise
      input:
        text: "{{ inputs.text }}"
    - name: second
      tool: summarise
      input:
        text: "{{ steps.first.output.summary }}"
  inputs:
    type: object
    required: [text]
    properties:
      text: {type: string}
"""
    + f"---\n{API}kind: Supervisor\nmetadata:\n  name: desk\nspec:\n  routes:\n"
    + "    write: {agent: writer}\n    digest: {pipeline: p}\n"
)


def test_cli_valid_specs_exit_zero(tmp_path: Path) -> None:
    (tmp_path / "specs.yaml").write_text(VALID_SET, encoding="utf-8")
    result = platform("validate", "specs.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("6 specs in 1 file valid"), result.stdout


def test_cli_without_paths_is_a_usage_error(tmp_path: Path) -> None:
    result = platform("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = platform("validate", "missing.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr and result.stdout == ""
    assert "Traceback" not in result.stdout + result.stderr


def test_ten_megabyte_case_is_really_ten_megabytes() -> None:
    assert len(ten_megabytes()) == TEN_MB
