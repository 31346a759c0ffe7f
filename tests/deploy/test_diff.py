"""The semantic diff `platform apply` prints for updated specs: snapshots are built from real YAML
through the loader and validator, and every category is checked with its exact sentences; property
tests check that nothing is ever silent, that the diff is symmetric in its paths, and deterministic."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_platform._deploy.diff import (
    CATEGORIES,
    Change,
    SpecDiff,
    diff_specs,
    format_path,
    render_text,
    snapshot_of,
    to_json,
)
from agent_platform._load import load_text
from agent_platform._validate import ValidationOptions, validate_documents

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: sonnet}
spec:
  provider: anthropic
  name: claude-sonnet-4-5
  pricing: {input_per_mtok: 3, output_per_mtok: 15}
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: haiku}
spec:
  provider: anthropic
  name: claude-haiku-4-5
  pricing: {input_per_mtok: 1, output_per_mtok: 5}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: web-search}
spec:
  description: Search the web.
  http: {url: 'https://example.invalid/search?q={{ args.query }}', method: GET}
  input_schema: {type: object, properties: {query: {type: string}}, required: [query]}
  output_schema: {type: object, properties: {hits: {type: array}}, required: [hits]}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: fetch}
spec:
  description: Fetch a page.
  http: {url: 'https://example.invalid/{{ args.path }}', method: GET}
  input_schema: {type: object, properties: {path: {type: string}}}
---
apiVersion: agents.platform/v1
kind: Memory
metadata: {name: research-memory}
spec:
  working: {max_tokens: 4000}
---
apiVersion: agents.platform/v1
kind: Guardrail
metadata: {name: pii}
spec: {type: pii_redaction, applies_to: [input, output]}
---
apiVersion: agents.platform/v1
kind: Guardrail
metadata: {name: loop-guard}
spec: {type: loop_detection}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: fact-checker}
spec:
  model: haiku
  instructions: Check the facts in {{ inputs.text }}.
  inputs: {type: object, properties: {text: {type: string}}, required: [text]}
  tools: [web-search, fetch]
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: researcher, labels: {team: search}}
spec:
  model: sonnet
  instructions: |
    Research {{ inputs.topic }}.
    Use web-search at most 3 times.
    Cite your sources.
  inputs: {type: object, properties: {topic: {type: string}}, required: [topic]}
  output:
    type: object
    properties: {summary: {type: string}, sources: {type: array, items: {type: string}}}
    required: [summary, sources]
  tools: [web-search]
  delegates: [fact-checker]
  memory: research-memory
  guardrails: [pii]
  limits: {max_iterations: 20, timeout: 300s, max_total_tokens: 200000, max_cost_usd: 2.0}
  runtime: {replicas: 2, resources: {num_cpus: 0.5}, placement: spread}
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: digest}
spec:
  inputs: {type: object, properties: {query: {type: string}}, required: [query]}
  steps:
    - name: search
      tool: web-search
      input: {query: '{{ inputs.query }}'}
    - name: summarise
      llm:
        model: haiku
        prompt: |
          Summarise these hits:
          {{ steps.search.output.hits }}
      output: {type: object, properties: {summary: {type: string}}, required: [summary]}
  timeout: 120s
---
apiVersion: agents.platform/v1
kind: Supervisor
metadata: {name: desk}
spec:
  routes:
    research: {agent: researcher}
    check: {agent: fact-checker}
  concurrency: 4
"""


def _snapshots(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    loaded = load_text(text, "specs.yaml")
    report = validate_documents(loaded.documents, loaded.diagnostics, ValidationOptions(plugin_paths=[]))
    assert report.ok, [d.message for d in report.diagnostics.items]
    return {
        (spec.kind, spec.name): snapshot_of(spec)
        for kind in ("Model", "Tool", "Memory", "Guardrail", "Agent", "Pipeline", "Supervisor")
        for spec in report.specs.of_kind(kind)
    }


BASE = _snapshots(SPECS)


def _edit(text: str, *replacements: tuple[str, str]) -> str:
    for old, new in replacements:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


def _diff(kind: str, name: str, *replacements: tuple[str, str]) -> SpecDiff:
    after = _snapshots(_edit(SPECS, *replacements))
    return diff_specs(BASE[(kind, name)], after[(kind, name)])


def _summaries(diff: SpecDiff) -> list[str]:
    return [c.summary for c in diff.changes]


def _one(diff: SpecDiff) -> Change:
    assert len(diff.changes) == 1, _summaries(diff)
    return diff.changes[0]


# --- snapshots ----------------------------------------------------------------------------------


def test_snapshot_holds_kind_name_full_spec_and_labels() -> None:
    snap = BASE[("Agent", "researcher")]
    assert set(snap) == {"kind", "name", "spec", "labels"}
    assert snap["kind"] == "Agent" and snap["name"] == "researcher"
    assert snap["labels"] == {"team": "search"}
    assert snap["spec"]["limits"]["timeout"] == 300.0  # normalised, defaults included
    assert snap["spec"]["runtime"]["placement"] == {
        "strategy": "spread",
        "node_labels": {},
        "node_resources": [],
    }
    assert "labels" not in BASE[("Agent", "fact-checker")]
    assert json.loads(json.dumps(snap)) == snap


@pytest.mark.parametrize("key", sorted(BASE))
def test_identical_snapshots_have_no_changes(key: tuple[str, str]) -> None:
    diff = diff_specs(BASE[key], copy.deepcopy(BASE[key]))
    assert diff.empty and not diff.breaking
    assert render_text(diff) == f"~ {key[0]}/{key[1]}: no changes\n"


def test_unchanged_yaml_written_differently_has_no_changes() -> None:
    diff = _diff(
        "Agent",
        "researcher",
        ("timeout: 300s", "timeout: 5m"),
        ("placement: spread", "placement: {strategy: spread}"),
    )
    assert diff.empty


def test_different_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="two versions of one spec"):
        diff_specs(BASE[("Agent", "researcher")], BASE[("Agent", "fact-checker")])


# --- the headline example -----------------------------------------------------------------------

_HEADLINE = (
    ("Research {{ inputs.topic }}.\n", "Research {{ inputs.topic }} in depth.\n"),
    ("    Cite your sources.\n", "    Cite your sources.\n    Answer in English.\n"),
    ("  tools: [web-search]\n", "  tools: [fetch]\n"),
    ("  model: sonnet\n  instructions: |\n    Research", "  model: haiku\n  instructions: |\n    Research"),
    ("max_iterations: 20", "max_iterations: 30"),
    ("replicas: 2", "replicas: 4"),
)


def test_agent_headline_text() -> None:
    diff = _diff("Agent", "researcher", *_HEADLINE)
    assert render_text([diff]) == (
        "~ Agent/researcher (6 changes)\n"
        "    ~ instructions changed (+2 -1 lines)\n"
        "        @@ -1,3 +1,4 @@\n"
        "        -Research {{ inputs.topic }}.\n"
        "        +Research {{ inputs.topic }} in depth.\n"
        "         Use web-search at most 3 times.\n"
        "         Cite your sources.\n"
        "        +Answer in English.\n"
        "    ~ model changed from 'sonnet' to 'haiku'\n"
        "    + tool 'fetch' added\n"
        "    - tool 'web-search' removed\n"
        "    ~ limits.max_iterations raised from 20 to 30\n"
        "    ~ runtime.replicas scaled up from 2 to 4\n"
    )
    assert [(c.category, c.path, c.op) for c in diff.changes] == [
        ("instructions", "spec.instructions", "changed"),
        ("model", "spec.model", "changed"),
        ("tools", "spec.tools.fetch", "added"),
        ("tools", "spec.tools.web-search", "removed"),
        ("limits", "spec.limits.max_iterations", "changed"),
        ("runtime", "spec.runtime.replicas", "changed"),
    ]


def test_agent_headline_json() -> None:
    diff = _diff("Agent", "researcher", *_HEADLINE)
    data = to_json([diff])
    assert json.loads(json.dumps(data)) == data
    assert data[0]["kind"] == "Agent" and data[0]["name"] == "researcher" and data[0]["breaking"] is False
    instructions, model = data[0]["changes"][:2]
    assert instructions["diff"][0] == "@@ -1,3 +1,4 @@"
    assert instructions["new"].endswith("Answer in English.\n")
    assert model == {
        "category": "model",
        "path": "spec.model",
        "op": "changed",
        "old": "sonnet",
        "new": "haiku",
        "summary": "model changed from 'sonnet' to 'haiku'",
        "breaking": False,
    }
    assert diff.to_json() == data[0]


# --- instructions and prompts -------------------------------------------------------------------


def test_instructions_are_a_unified_line_diff() -> None:
    change = _one(_diff("Agent", "researcher", ("at most 3 times", "at most 5 times")))
    assert change.summary == "instructions changed (+1 -1 lines)"
    assert change.lines == (
        "@@ -1,3 +1,3 @@",
        " Research {{ inputs.topic }}.",
        "-Use web-search at most 3 times.",
        "+Use web-search at most 5 times.",
        " Cite your sources.",
    )


def test_single_line_instructions_still_diff_by_line() -> None:
    change = _one(_diff("Agent", "fact-checker", ("Check the facts in", "Verify every claim in")))
    assert change.summary == "instructions changed (+1 -1 lines)"
    assert change.lines[1:] == (
        "-Check the facts in {{ inputs.text }}.",
        "+Verify every claim in {{ inputs.text }}.",
    )


def test_pipeline_llm_prompt_is_an_instructions_change() -> None:
    change = _one(_diff("Pipeline", "digest", ("Summarise these hits:", "Summarise these hits in French:")))
    assert (change.category, change.path) == ("instructions", "spec.steps.summarise.llm.prompt")
    assert change.summary == "step 'summarise' llm.prompt changed (+1 -1 lines)"
    assert "+Summarise these hits in French:" in change.lines


def test_tool_description_is_diffed_as_text() -> None:
    change = _one(_diff("Tool", "fetch", ("Fetch a page.", "Fetch a web page.")))
    assert (change.category, change.summary) == ("instructions", "description changed (+1 -1 lines)")


# --- references by name -------------------------------------------------------------------------


def test_tools_delegates_guardrails_added_and_removed_by_name() -> None:
    diff = _diff(
        "Agent",
        "researcher",
        ("tools: [web-search]", "tools: [web-search, fetch]"),
        ("delegates: [fact-checker]", "delegates: []"),
        ("guardrails: [pii]", "guardrails: [pii, loop-guard]"),
    )
    assert [(c.category, c.path, c.marker, c.summary) for c in diff.changes] == [
        ("tools", "spec.tools.fetch", "+", "tool 'fetch' added"),
        ("delegates", "spec.delegates.fact-checker", "-", "delegate 'fact-checker' removed"),
        ("guardrails", "spec.guardrails.loop-guard", "+", "guardrail 'loop-guard' added"),
    ]


def test_reordered_tools_are_reported() -> None:
    change = _one(
        _diff("Agent", "fact-checker", ("tools: [web-search, fetch]", "tools: [fetch, web-search]"))
    )
    assert change.summary == "tools reordered: 'web-search', 'fetch' → 'fetch', 'web-search'"
    assert change.path == "spec.tools"


# --- models -------------------------------------------------------------------------------------


def test_model_reference_to_inline_model() -> None:
    diff = _diff(
        "Agent",
        "researcher",
        ("  model: sonnet\n", "  model: {provider: anthropic, name: claude-opus-4, temperature: 0.2}\n"),
        (", max_cost_usd: 2.0", ""),  # an inline model without pricing takes no cost budget
    )
    (change,) = diff.by_category("model")
    assert change.summary == "model changed from 'sonnet' to an inline anthropic model 'claude-opus-4'"
    assert change.path == "spec.model" and change.new["temperature"] == 0.2
    assert _summaries(diff)[1] == "limits.max_cost_usd unset (was 2.0; now unlimited)"


def test_inline_model_fields() -> None:
    before = _edit(
        SPECS,
        (
            "  model: haiku\n  instructions: Check",
            "  model: {provider: anthropic, name: a1}\n  instructions: Check",
        ),
    )
    after = _edit(
        before,
        (
            "{provider: anthropic, name: a1}",
            "{provider: openai, name: gpt-x, temperature: 0.7, max_tokens: 1024}",
        ),
    )
    diff = diff_specs(
        _snapshots(before)[("Agent", "fact-checker")], _snapshots(after)[("Agent", "fact-checker")]
    )
    assert _summaries(diff) == [
        "model.max_tokens lowered from 4096 to 1024",
        "model.name changed from 'a1' to 'gpt-x'",
        "model.provider changed from 'anthropic' to 'openai'",
        "model.temperature set to 0.7 (was unset)",
    ]
    assert {c.category for c in diff.changes} == {"model"}


def test_model_kind_changes() -> None:
    diff = _diff(
        "Model",
        "sonnet",
        ("name: claude-sonnet-4-5", "name: claude-sonnet-4-6\n  temperature: 0.3\n  timeout: 2m"),
        ("input_per_mtok: 3,", "input_per_mtok: 2.5,"),
    )
    assert [(c.category, c.summary) for c in diff.changes] == [
        ("model", "name changed from 'claude-sonnet-4-5' to 'claude-sonnet-4-6'"),
        ("model", "temperature set to 0.3 (was unset)"),
        ("limits", "timeout raised from 1m to 2m"),
        ("budget", "pricing.input_per_mtok lowered from 3.0 to 2.5"),
    ]


# --- limits, budgets, runtime -------------------------------------------------------------------


def test_limits_and_budgets_with_direction() -> None:
    diff = _diff(
        "Agent",
        "researcher",
        (
            "limits: {max_iterations: 20, timeout: 300s, max_total_tokens: 200000, max_cost_usd: 2.0}",
            "limits: {max_iterations: 10, timeout: 90s, max_cost_usd: 5, max_tool_calls: 40}",
        ),
    )
    assert [(c.category, c.summary) for c in diff.changes] == [
        ("limits", "limits.max_iterations lowered from 20 to 10"),
        ("limits", "limits.timeout lowered from 5m to 90s"),
        ("budget", "limits.max_cost_usd raised from 2.0 to 5.0"),
        ("budget", "limits.max_tool_calls set to 40 (was unlimited)"),
        ("budget", "limits.max_total_tokens unset (was 200000; now unlimited)"),
    ]
    assert [(c.old, c.new) for c in diff.changes][:2] == [(20, 10), (300.0, 90.0)]


def test_runtime_changes() -> None:
    diff = _diff(
        "Agent",
        "researcher",
        (
            "runtime: {replicas: 2, resources: {num_cpus: 0.5}, placement: spread}",
            "runtime:\n    replicas: 1\n    resources: {num_cpus: 0.5, num_gpus: 1, memory: 2Gi}\n"
            "    placement: {strategy: pack, node_labels: {zone: eu-1}}\n"
            "    max_concurrency: 8\n    max_restarts: -1",
        ),
    )
    assert [c.category for c in diff.changes] == ["runtime"] * 7
    assert _summaries(diff) == [
        "runtime.max_concurrency lowered from 100 to 8",
        "runtime.max_restarts lowered from 3 to -1",
        "runtime.placement.node_labels.zone added: 'eu-1'",
        "runtime.placement.strategy changed from 'spread' to 'pack'",
        "runtime.replicas scaled down from 2 to 1",
        "runtime.resources.memory set to 2Gi (was unset)",
        "runtime.resources.num_gpus raised from 0.0 to 1.0",
    ]


def test_memory_reference_and_labels() -> None:
    diff = _diff(
        "Agent",
        "researcher",
        ("  memory: research-memory\n", ""),
        ("labels: {team: search}", "labels: {team: research, tier: gold}"),
    )
    assert [(c.category, c.path, c.summary) for c in diff.changes] == [
        ("memory", "spec.memory", "memory unset (was 'research-memory')"),
        ("other", "labels.team", "label 'team' changed from 'search' to 'research'"),
        ("other", "labels.tier", "label 'tier' added: 'gold'"),
    ]


# --- schemas ------------------------------------------------------------------------------------


def test_schema_fields_with_breaking_hints() -> None:
    diff = _diff(
        "Agent",
        "researcher",
        (
            "inputs: {type: object, properties: {topic: {type: string}}, required: [topic]}",
            "inputs: {type: object, properties: {topic: {type: string}, depth: {type: integer}}, "
            "required: [topic, depth]}",
        ),
        (
            "properties: {summary: {type: string}, sources: {type: array, items: {type: string}}}\n"
            "    required: [summary, sources]",
            "properties: {summary: {type: object}, confidence: {type: number}}\n    required: [summary]",
        ),
    )
    assert [(c.path, c.marker, c.summary, c.breaking) for c in diff.changes] == [
        (
            "spec.inputs.properties.depth",
            "+",
            "inputs field 'depth' added (integer, required; breaking: callers must now send it)",
            True,
        ),
        ("spec.output.properties.confidence", "+", "output field 'confidence' added (number)", False),
        (
            "spec.output.properties.sources",
            "-",
            "output field 'sources' removed (breaking: it was required)",
            True,
        ),
        (
            "spec.output.properties.summary.type",
            "~",
            "output field 'summary' type changed from string to object (breaking)",
            True,
        ),
    ]
    assert {c.category for c in diff.changes} == {"schema"}
    assert render_text(diff).startswith("~ Agent/researcher (4 changes, 3 breaking)\n")


def test_required_flags_change() -> None:
    diff = _diff(
        "Agent",
        "researcher",
        ("required: [summary, sources]", "required: [summary]"),
        ("properties: {text: {type: string}}, required: [text]}", "properties: {text: {type: string}}}"),
    )
    assert [(c.summary, c.breaking) for c in diff.changes] == [
        ("output field 'sources' is no longer required (breaking: consumers may rely on it)", True),
    ]
    reverse = diff_specs(
        _snapshots(
            _edit(
                SPECS,
                (
                    "properties: {topic: {type: string}}, required: [topic]",
                    "properties: {topic: {type: string}}",
                ),
            )
        )[("Agent", "researcher")],
        BASE[("Agent", "researcher")],
    )
    assert [(c.path, c.summary, c.breaking) for c in reverse.changes] == [
        (
            "spec.inputs.required.topic",
            "inputs field 'topic' is now required (breaking: callers must now send it)",
            True,
        )
    ]


def test_nested_schema_keywords_use_the_generic_diff() -> None:
    change = _one(
        _diff("Agent", "researcher", ("items: {type: string}", "items: {type: string, maxLength: 80}"))
    )
    assert change.summary == "output field 'sources' items.maxLength added: 80"
    assert change.path == "spec.output.properties.sources.items.maxLength"


def test_tool_schema_and_policies() -> None:
    diff = _diff(
        "Tool",
        "web-search",
        (
            "  output_schema: {type: object, properties: {hits: {type: array}}, required: [hits]}\n",
            "  timeout: 10s\n  side_effects: true\n  guardrails: [pii]\n",
        ),
        ("applies_to: [input, output]", "applies_to: [input, output, tool_output]"),
    )
    assert [(c.category, c.summary) for c in diff.changes] == [
        ("guardrails", "guardrail 'pii' added"),
        ("schema", "output_schema schema removed"),
        ("limits", "timeout lowered from 30s to 10s"),
        ("other", "side_effects changed from false to true"),
    ]


# --- pipelines and supervisors ------------------------------------------------------------------


def test_pipeline_steps_by_id() -> None:
    diff = _diff(
        "Pipeline",
        "digest",
        ("    - name: search\n      tool: web-search\n", "    - name: search\n      agent: fact-checker\n"),
        ("input: {query: '{{ inputs.query }}'}", "input: {text: '{{ inputs.query }}'}"),
        (
            "      output: {type: object, properties: {summary: {type: string}}, required: [summary]}\n",
            "      output: {type: object, properties: {summary: {type: string}}, required: [summary]}\n"
            "      timeout: 45s\n"
            "    - name: publish\n      tool: fetch\n      input: {path: '{{ steps.summarise.output.summary }}'}\n",
        ),
        ("  timeout: 120s", "  timeout: 180s"),
    )
    assert [(c.category, c.path, c.summary) for c in diff.changes] == [
        ("steps", "spec.steps.publish", "step 'publish' added (calls tool 'fetch')"),
        (
            "steps",
            "spec.steps.search",
            "step 'search' retargeted from tool 'web-search' to agent 'fact-checker'",
        ),
        (
            "steps",
            "spec.steps.search.input.query",
            "step 'search' input.query removed (was '{{ inputs.query }}')",
        ),
        ("steps", "spec.steps.search.input.text", "step 'search' input.text added: '{{ inputs.query }}'"),
        ("limits", "spec.steps.summarise.timeout", "step 'summarise' timeout set to 45s (was unset)"),
        ("limits", "spec.timeout", "timeout raised from 2m to 3m"),
    ]


def test_pipeline_steps_removed_and_reordered() -> None:
    before = BASE[("Pipeline", "digest")]
    after = copy.deepcopy(before)
    search, summarise = after["spec"]["steps"]
    after["spec"]["steps"] = [summarise, search]
    assert _summaries(diff_specs(before, after)) == ["steps reordered: search, summarise → summarise, search"]
    after["spec"]["steps"] = [summarise]
    change = _one(diff_specs(before, after))
    assert (change.marker, change.summary) == ("-", "step 'search' removed (calls tool 'web-search')")


def test_a_memory_step_is_described_by_its_memory_and_layer() -> None:
    before = BASE[("Pipeline", "digest")]
    after = copy.deepcopy(before)
    after["spec"]["steps"].append(
        {"name": "keep", "memory": {"name": "kb", "layer": "knowledge"}, "input": {"items": "{{ x }}"}}
    )
    change = _one(diff_specs(before, after))
    assert change.summary == "step 'keep' added (calls memory 'kb' (knowledge layer))"
    retargeted = copy.deepcopy(after)
    retargeted["spec"]["steps"][-1]["memory"]["layer"] = "episodic"
    assert _summaries(diff_specs(after, retargeted)) == [
        "step 'keep' retargeted from memory 'kb' (knowledge layer) to memory 'kb' (episodic layer)"
    ]


def test_supervisor_routes() -> None:
    diff = _diff(
        "Supervisor",
        "desk",
        ("    research: {agent: researcher}\n", "    research: {pipeline: digest, priority_boost: 5}\n"),
        ("    check: {agent: fact-checker}\n", "    verify: {agent: fact-checker}\n"),
        ("  concurrency: 4", "  concurrency: 8\n  distribution: pack"),
    )
    assert [(c.category, c.path, c.marker, c.summary) for c in diff.changes] == [
        ("routes", "spec.routes.check", "-", "route 'check' removed (was → agent 'fact-checker')"),
        (
            "routes",
            "spec.routes.research",
            "~",
            "route 'research' retargeted from agent 'researcher' to pipeline 'digest'",
        ),
        (
            "routes",
            "spec.routes.research.priority_boost",
            "~",
            "route 'research' priority_boost raised from 0 to 5",
        ),
        ("routes", "spec.routes.verify", "+", "route 'verify' added → agent 'fact-checker'"),
        ("limits", "spec.concurrency", "~", "concurrency raised from 4 to 8"),
        ("runtime", "spec.distribution", "~", "distribution changed from 'spread' to 'pack'"),
    ]


# --- other kinds use the generic diff -----------------------------------------------------------


def test_guardrail_and_memory_generic() -> None:
    guard = _diff(
        "Guardrail",
        "pii",
        ("applies_to: [input, output]", "applies_to: [input, tool_output], entities: [email]"),
    )
    assert [(c.category, c.summary) for c in guard.changes] == [
        ("guardrails", "applies_to: 'output' removed"),
        ("guardrails", "applies_to: 'tool_output' added"),
        ("guardrails", "entities: 'credit_card' removed"),
        ("guardrails", "entities: 'iban' removed"),
        ("guardrails", "entities: 'phone' removed"),
        ("guardrails", "entities: 'ssn' removed"),
    ]
    memory = _diff(
        "Memory",
        "research-memory",
        ("working: {max_tokens: 4000}", "working: {max_tokens: 8000}\n  episodic: {top_k: 3}"),
    )
    assert [(c.category, c.path, c.summary) for c in memory.changes][1] == (
        "memory",
        "spec.working.max_tokens",
        "working.max_tokens raised from 4000 to 8000",
    )
    assert memory.changes[0].summary.startswith("episodic set to {")


def test_render_orders_specs_by_kind_then_name() -> None:
    agent = _diff("Agent", "researcher", ("replicas: 2", "replicas: 3"))
    model = _diff("Model", "haiku", ("output_per_mtok: 5}", "output_per_mtok: 4}"))
    text = render_text([agent, model])
    assert text == (
        "~ Model/haiku (1 change)\n"
        "    ~ pricing.output_per_mtok lowered from 5.0 to 4.0\n"
        "~ Agent/researcher (1 change)\n"
        "    ~ runtime.replicas scaled up from 2 to 3\n"
    )
    assert [d["kind"] for d in to_json([agent, model])] == ["Model", "Agent"]


def test_text_set_and_unset_and_huge_durations() -> None:
    before = BASE[("Pipeline", "digest")]
    after = copy.deepcopy(before)
    after["spec"]["steps"][1]["llm"]["system"] = "Be brief."
    change = _one(diff_specs(before, after))
    assert (change.category, change.summary) == ("instructions", "step 'summarise' llm.system set (1 line)")
    assert change.lines == ("@@ -0,0 +1 @@", "+Be brief.")
    assert _one(diff_specs(after, before)).summary == "step 'summarise' llm.system unset (was 1 line)"
    after = copy.deepcopy(before)
    after["spec"]["timeout"] = 10**400
    assert _one(diff_specs(before, after)).summary.startswith("timeout raised from 2m to 1000000000")


def test_format_path() -> None:
    assert format_path(("spec", "steps", "a", "input", 0)) == "spec.steps.a.input[0]"
    assert format_path(("labels", "app.kubernetes.io/name")) == 'labels["app.kubernetes.io/name"]'


def test_imports_no_ray_and_no_llm_sdk() -> None:
    code = "import sys, agent_platform._deploy.diff; print(' '.join(sorted(sys.modules)))"
    modules = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    heavy = {"ray", "anthropic", "openai", "instructor", "weaviate", "opentelemetry"}
    assert not {m.split(".")[0] for m in modules} & heavy


# --- properties ---------------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "tools",
        "steps",
        "name",
        "routes",
        "agent",
        "pipeline",
        "tool",
        "llm",
        "prompt",
        "model",
        "properties",
        "required",
        "type",
        "instructions",
        "runtime",
        "replicas",
        "limits",
        "timeout",
        "memory",
        "output",
        "inputs",
        "schema",
        "a",
        "b",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=12)
    | st.sampled_from(["x", "y", "line\nnext", "fetch", "web-search"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
Path = tuple[str | int, ...]


def _leaves(value: Any, path: Path = ()) -> list[Path]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list) and value:
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    return [path]


def _containers(value: Any, path: Path = ()) -> list[Path]:
    found: list[Path] = []
    if isinstance(value, dict):
        found.append(path)
        for k, v in value.items():
            found.extend(_containers(v, (*path, k)))
    elif isinstance(value, list):
        found.append(path)
        for i, v in enumerate(value):
            found.extend(_containers(v, (*path, i)))
    return found


def _get(root: Any, path: Path) -> Any:
    for part in path:
        root = root[part]
    return root


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@st.composite
def _mutated(draw: st.DrawFn, snapshot: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """One random change inside spec or labels: a leaf replaced, a key added or deleted, an item
    appended or removed. Returns the new snapshot and the path of the changed value."""
    result = copy.deepcopy(snapshot)
    body = {k: v for k, v in result.items() if k not in ("kind", "name")}
    how = draw(st.sampled_from(["leaf", "container"]))
    if how == "leaf":
        path = draw(st.sampled_from(_leaves(body)))
        old = _get(body, path)
        new = draw(_JSON.filter(lambda v: _canon(v) != _canon(old)))
        _get(result, path[:-1])[path[-1]] = new
        return result, path
    path = draw(st.sampled_from(_containers(body)[1:]))
    container = _get(result, path)
    if isinstance(container, dict):
        key = draw(_KEYS | st.sampled_from(sorted(container) or ["a"]))
        if key in container and draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(
                _JSON.filter(lambda v: key not in container or _canon(v) != _canon(container[key]))
            )
        return result, (*path, key)
    if container and draw(st.booleans()):
        del container[draw(st.integers(0, len(container) - 1))]
    else:
        container.append(draw(_JSON))
    return result, path


_BASES = st.sampled_from(sorted(BASE)).map(lambda key: BASE[key])


@st.composite
def _generated(draw: st.DrawFn) -> dict[str, Any]:
    snapshot = draw(_BASES)
    for _ in range(draw(st.integers(0, 3))):
        snapshot, _path = draw(_mutated(snapshot))
    return snapshot


def _related(reported: str, changed: str) -> bool:
    def within(inner: str, outer: str) -> bool:
        return inner == outer or inner.startswith((outer + ".", outer + "["))

    return within(reported, changed) or within(changed, reported)


# Enough examples per run to catch a regression in the ordinary suite; `make fuzz` runs the deep
# profile (PROPERTY_EXAMPLES, 2,000 each there).
_EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "60"))
_SETTINGS = settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_generated())
def test_property_diff_with_itself_is_empty(snapshot: dict[str, Any]) -> None:
    assert diff_specs(snapshot, copy.deepcopy(snapshot)).empty


@_SETTINGS
@given(st.data())
def test_property_every_change_is_reported_where_it_happened(data: st.DataObject) -> None:
    before = data.draw(_generated())
    after, path = data.draw(_mutated(before))
    diff = diff_specs(before, after)
    assert not diff.empty
    # Named list items are addressed by name, so the raw path is matched up to the first index.
    cut = next((i for i, part in enumerate(path) if isinstance(part, int)), len(path))
    anchor = format_path(path[:cut])
    assert any(_related(c.path, anchor) for c in diff.changes), (anchor, diff.paths())
    assert all(c.category in CATEGORIES and c.summary for c in diff.changes)


@_SETTINGS
@given(_generated(), _generated())
def test_property_symmetric_paths(a: dict[str, Any], b: dict[str, Any]) -> None:
    b = {**b, "kind": a["kind"], "name": a["name"]}
    forward, backward = diff_specs(a, b), diff_specs(b, a)
    assert sorted(forward.paths()) == sorted(backward.paths())
    swap = {"added": "removed", "removed": "added", "changed": "changed"}
    assert sorted((c.path, swap[c.op]) for c in forward.changes) == sorted(
        (c.path, c.op) for c in backward.changes
    )


@_SETTINGS
@given(
    st.sampled_from(["Model", "Tool", "Memory", "Guardrail", "Agent", "Pipeline", "Supervisor"]),
    st.dictionaries(_KEYS, _JSON, max_size=6),
    st.dictionaries(_KEYS, _JSON, max_size=6),
)
def test_property_arbitrary_shapes_never_crash_and_never_hide(
    kind: str, a: dict[str, Any], b: dict[str, Any]
) -> None:
    old = {"kind": kind, "name": "x", "spec": a}
    new = {"kind": kind, "name": "x", "spec": b}
    diff = diff_specs(old, new)
    assert diff.empty == (_canon(old) == _canon(new))
    assert sorted(diff.paths()) == sorted(diff_specs(new, old).paths())
    render_text(diff)
    json.dumps(to_json(diff))


@_SETTINGS
@given(_generated(), _generated())
def test_property_deterministic_whatever_the_key_order(a: dict[str, Any], b: dict[str, Any]) -> None:
    b = {**b, "kind": a["kind"], "name": a["name"]}

    def reversed_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reversed_keys(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reversed_keys(v) for v in value]
        return value

    first = diff_specs(a, b)
    assert to_json(first) == to_json(diff_specs(reversed_keys(a), reversed_keys(b)))
    assert render_text(first) == render_text(diff_specs(copy.deepcopy(a), copy.deepcopy(b)))


@pytest.mark.parametrize(
    ("key", "value", "summary"),
    [
        ("properties", {}, "output field 'summary' properties"),
        ("required", [], "output field 'summary' required"),
    ],
)
def test_an_empty_properties_or_required_that_appears_is_still_reported(
    key: str, value: Any, summary: str
) -> None:
    # Found by the property test: `{}` and an absent key read the same, but the spec (and its hash,
    # so apply replaces the actors) changed, and an update must never show an empty diff.
    before = {
        "kind": "Agent",
        "name": "x",
        "spec": {"output": {"type": "object", "properties": {"summary": {"type": "string"}}}},
    }
    after = copy.deepcopy(before)
    after["spec"]["output"]["properties"]["summary"][key] = value
    diff = diff_specs(before, after)
    assert [c.summary for c in diff.changes] == [f"{summary} added: {json.dumps(value)}"]
    assert [c.summary for c in diff_specs(after, before).changes] == [
        f"{summary} removed (was {json.dumps(value)})"
    ]
