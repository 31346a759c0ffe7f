"""The compiler: units and their execution modes, actors and placement, deploy order, step output
schemas, spec hashes, and structured-output models."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from agent_platform._compile import (
    AgentLoopUnit,
    ExecutionMode,
    PipelineUnit,
    Plan,
    SpecRef,
    SupervisorUnit,
    build_output_models,
    compile_specs,
    spec_hash,
)
from agent_platform._diagnostics import Diagnostics
from agent_platform._validate import ValidationOptions, ValidationReport, validate_paths

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: fast, description: Scripted.}
spec:
  provider: scripted
  on_script_exhausted: synthesize
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: search}
spec:
  description: Search.
  http: {url: 'https://example.invalid/search?q={{ args.query }}'}
  input_schema:
    type: object
    properties:
      query: {type: string}
  output_schema:
    type: object
    required: [hits]
    properties:
      hits: {type: array, items: {type: string}}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: helper, description: Answers questions.}
spec:
  model: fast
  instructions: "Answer {{ inputs.question }}{% if true %}.{% endif %}"
  inputs:
    type: object
    properties:
      question: {type: string}
  output:
    type: object
    required: [answer, confidence]
    properties:
      answer: {type: string}
      confidence: {type: number, minimum: 0, maximum: 1}
  tools: [search]
  limits: {max_iterations: 7, timeout: 90s}
  runtime:
    replicas: 3
    resources: {num_cpus: 0.5, num_gpus: 1, memory: 1Gi, custom: {accelerator: 2}}
    placement: {strategy: any, node_labels: {zone: a}}
    max_concurrency: 16
    max_restarts: -1
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: twin}
spec:
  model: {provider: scripted, on_script_exhausted: synthesize}
  instructions: Answer like helper.
  output:  # the same schema as helper's, written differently
    properties:
      confidence: {maximum: 1, minimum: 0, type: number}
      answer: {type: string}
    required: [answer, confidence]
    type: object
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: worker}
spec:
  model: fast
  instructions: Work.
  runtime: {replicas: 2, placement: pack}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: lead}
spec:
  model: fast
  instructions: Coordinate.
  delegates: [helper, worker]
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: inner}
spec:
  inputs:
    type: object
    properties:
      q: {type: string}
  steps:
    - name: find
      tool: search
      input: {query: '{{ inputs.q }}'}
  returns: '{{ steps.find.output }}'
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: outer}
spec:
  inputs:
    type: object
    properties:
      qs: {type: array, items: {type: string}}
  steps:
    - name: look
      tool: search
      map: {over: '{{ inputs.qs }}', as: q}
      input: {query: '{{ q }}'}
    - name: nested
      pipeline: inner
      input: {q: first}
    - name: ask
      agent: helper
      input: {question: why}
    - name: shape
      llm: {model: fast, prompt: 'Shape {{ steps.look.output }}'}
      output:
        type: object
        properties:
          text: {type: string}
    - name: own
      tool: search
      output: {type: object}
---
apiVersion: agents.platform/v1
kind: Supervisor
metadata: {name: desk}
spec:
  routes:
    help: {agent: helper}
    work: {agent: worker, priority_boost: 3}
    batch: {pipeline: outer, timeout: 2m}
  concurrency: 3
  distribution: spread
  runtime: {replicas: 1}
"""


def _validate(root: Path, text: str = SPECS) -> ValidationReport:
    root.mkdir(parents=True, exist_ok=True)
    (root / "specs.yaml").write_text(text)
    report = validate_paths([root], ValidationOptions(plugin_paths=[root]))
    assert report.ok, [str(d) for d in report.diagnostics]
    return report


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return compile_specs(_validate(tmp_path).specs)


def _unit(plan: Plan, kind: str, name: str):  # type: ignore[no-untyped-def]
    unit = plan.unit(kind, name)
    assert unit is not None, f"{kind}/{name}"
    return unit


# --- units and modes ------------------------------------------------------------------------------


def test_one_unit_per_agent_pipeline_and_supervisor(plan: Plan) -> None:
    expected = {
        SpecRef("Agent", "helper"): (AgentLoopUnit, ExecutionMode.AGENT_LOOP),
        SpecRef("Agent", "twin"): (AgentLoopUnit, ExecutionMode.AGENT_LOOP),
        SpecRef("Agent", "worker"): (AgentLoopUnit, ExecutionMode.AGENT_LOOP),
        SpecRef("Agent", "lead"): (AgentLoopUnit, ExecutionMode.AGENT_LOOP),
        SpecRef("Pipeline", "inner"): (PipelineUnit, ExecutionMode.PIPELINE),
        SpecRef("Pipeline", "outer"): (PipelineUnit, ExecutionMode.PIPELINE),
        SpecRef("Supervisor", "desk"): (SupervisorUnit, ExecutionMode.SUPERVISOR),
    }
    assert set(plan.units) == set(expected)
    for ref, (cls, mode) in expected.items():
        unit = plan.units[ref]
        assert isinstance(unit, cls)
        assert unit.mode is mode
        assert unit.ref == ref
        assert unit.name == ref.name
        assert isinstance(unit.reason, str) and unit.reason
        assert unit.source.line >= 1
        assert len(unit.spec_hash) == 16
    # Model, Tool and the others are resolved, not units
    assert set(plan.models) == {"fast"}
    assert set(plan.tools) == {"search"}


def test_reasons_explain_the_mode(plan: Plan) -> None:
    helper = _unit(plan, "Agent", "helper")
    assert helper.reason.startswith("agent loop")
    assert "1 tool" in helper.reason
    assert "7 iterations" in helper.reason
    assert "90s" in helper.reason
    assert "2 delegates" in _unit(plan, "Agent", "lead").reason
    outer = _unit(plan, "Pipeline", "outer")
    assert outer.reason.startswith("deterministic pipeline: 5 steps")
    assert "map fan-out in look" in outer.reason
    desk = _unit(plan, "Supervisor", "desk")
    assert desk.reason.startswith("supervisor: routes 3 task types")
    assert "3 concurrent workers" in desk.reason


def test_agent_unit_resolves_its_references(plan: Plan) -> None:
    helper = _unit(plan, "Agent", "helper")
    assert helper.model is not None
    assert helper.model.ref == "fast"
    assert helper.model.is_scripted
    assert [t.name for t in helper.tools] == ["search"]
    assert helper.tools[0].spec.output_schema is not None
    assert helper.limits.max_iterations == 7
    twin = _unit(plan, "Agent", "twin")
    assert twin.model is not None and twin.model.ref == "<inline>"
    assert _unit(plan, "Agent", "lead").delegates == ["helper", "worker"]
    assert plan.find("helper") == [helper]
    assert plan.find("nothing") == []


def test_supervisor_unit_routes(plan: Plan) -> None:
    desk = _unit(plan, "Supervisor", "desk")
    routes = {r.task_type: r for r in desk.routes}
    assert routes["help"].target == SpecRef("Agent", "helper")
    assert routes["work"].priority_boost == 3
    assert routes["batch"].target == SpecRef("Pipeline", "outer")
    assert routes["batch"].timeout == 120.0
    assert desk.concurrency == 3
    assert desk.distribution == "spread"


# --- actors and placement -------------------------------------------------------------------------


def test_actor_comes_from_runtime(plan: Plan) -> None:
    actor = _unit(plan, "Agent", "helper").actor
    assert actor.name == "agent-helper"
    assert actor.replicas == 3
    assert actor.resources.num_cpus == 0.5
    assert actor.resources.num_gpus == 1
    assert actor.resources.memory == 2**30
    assert actor.resources.custom == {"accelerator": 2}
    assert actor.max_concurrency == 16
    assert actor.max_restarts == -1
    worker = _unit(plan, "Agent", "worker").actor
    assert (worker.name, worker.replicas) == ("agent-worker", 2)
    assert _unit(plan, "Pipeline", "outer").actor.name == "pipeline-outer"
    assert _unit(plan, "Supervisor", "desk").actor.name == "supervisor-desk"
    defaults = _unit(plan, "Agent", "lead").actor
    assert (defaults.replicas, defaults.resources.num_cpus, defaults.max_concurrency) == (1, 1.0, 100)


def test_supervisor_distribution_spreads_route_targets_without_placement(plan: Plan) -> None:
    helper = _unit(plan, "Agent", "helper").actor
    assert helper.placement.strategy == "spread"
    assert "Supervisor/desk" in helper.placement_reason
    assert "spread" in helper.placement_reason
    # its own node pins survive
    assert helper.placement.node_labels == {"zone": "a"}
    assert "zone=a" in helper.placement_reason
    outer = _unit(plan, "Pipeline", "outer").actor
    assert outer.placement.strategy == "spread"
    assert "Supervisor/desk" in outer.placement_reason


def test_declared_placement_wins_over_the_supervisor(plan: Plan) -> None:
    worker = _unit(plan, "Agent", "worker").actor
    assert worker.placement.strategy == "pack"
    assert worker.placement_reason == "declared: pack"
    assert "Supervisor" not in worker.placement_reason


def test_units_not_routed_by_a_supervisor_keep_any(plan: Plan) -> None:
    for name in ("lead", "twin"):
        actor = _unit(plan, "Agent", name).actor
        assert actor.placement.strategy == "any"
        assert "Supervisor" not in actor.placement_reason
    # routed only indirectly (inner is included by outer): the supervisor does not reach it
    assert _unit(plan, "Pipeline", "inner").actor.placement.strategy == "any"


def test_supervisor_distribution_any_does_not_propagate(tmp_path: Path) -> None:
    plan = compile_specs(
        _validate(tmp_path, SPECS.replace("distribution: spread", "distribution: any")).specs
    )
    helper = _unit(plan, "Agent", "helper").actor
    assert helper.placement.strategy == "any"
    assert "Supervisor" not in helper.placement_reason


def test_supervisor_distribution_pack_propagates(tmp_path: Path) -> None:
    plan = compile_specs(
        _validate(tmp_path, SPECS.replace("distribution: spread", "distribution: pack")).specs
    )
    helper = _unit(plan, "Agent", "helper").actor
    assert helper.placement.strategy == "pack"
    assert "Supervisor/desk" in helper.placement_reason


# --- deploy order ---------------------------------------------------------------------------------


def test_deploy_order_puts_dependencies_first(plan: Plan) -> None:
    order = [str(u.ref) for u in plan.deploy_order()]
    assert sorted(order) == sorted(str(r) for r in plan.units)
    at = {name: i for i, name in enumerate(order)}
    # delegates before delegating agents
    assert at["Agent/helper"] < at["Agent/lead"]
    assert at["Agent/worker"] < at["Agent/lead"]
    # route targets before supervisors
    for target in ("Agent/helper", "Agent/worker", "Pipeline/outer"):
        assert at[target] < at["Supervisor/desk"]
    # included pipelines (and step agents) before including ones
    assert at["Pipeline/inner"] < at["Pipeline/outer"]
    assert at["Agent/helper"] < at["Pipeline/outer"]
    # and in general: every unit after all of its unit dependencies
    for unit in plan.deploy_order():
        for dep in unit.depends_on:
            if dep in plan.units:
                assert at[str(dep)] < at[str(unit.ref)]


def test_deploy_order_is_deterministic(tmp_path: Path) -> None:
    first = [str(u.ref) for u in compile_specs(_validate(tmp_path / "a").specs).deploy_order()]
    second = [str(u.ref) for u in compile_specs(_validate(tmp_path / "b").specs).deploy_order()]
    assert first == second


def test_dependencies_include_non_unit_kinds(plan: Plan) -> None:
    helper = _unit(plan, "Agent", "helper")
    assert SpecRef("Model", "fast") in helper.depends_on
    assert SpecRef("Tool", "search") in helper.depends_on
    assert plan.graph[SpecRef("Supervisor", "desk")] == [
        SpecRef("Agent", "helper"),
        SpecRef("Agent", "worker"),
        SpecRef("Pipeline", "outer"),
    ]


# --- pipeline steps -------------------------------------------------------------------------------


def test_step_plans(plan: Plan) -> None:
    outer = _unit(plan, "Pipeline", "outer")
    steps = {s.name: s for s in outer.steps}
    assert [s.name for s in outer.steps] == ["look", "nested", "ask", "shape", "own"]
    search_output = plan.tools["search"].spec.output_schema
    # no output of its own: the tool's output_schema
    (find,) = _unit(plan, "Pipeline", "inner").steps
    assert find.output_schema == search_output
    assert find.tool is not None and find.tool.spec.output_schema == search_output
    # ... and a map step yields a list of them
    assert steps["look"].output_schema == {"type": "array", "items": search_output}
    assert steps["look"].target_kind == "tool"
    assert steps["look"].tool is not None and steps["look"].tool.name == "search"
    assert steps["look"].map is not None and steps["look"].map.as_ == "q"
    # its own output wins
    assert steps["own"].output_schema == {"type": "object"}
    # an agent step: the agent's output
    assert steps["ask"].output_schema == _unit(plan, "Agent", "helper").output_schema
    # a pipeline step: the pipeline's (undeclared) output
    assert steps["nested"].target_kind == "pipeline"
    assert steps["nested"].target == "inner"
    assert steps["nested"].output_schema is None
    # an llm step
    assert steps["shape"].target_kind == "llm"
    assert steps["shape"].target == "fast"
    assert steps["shape"].model is not None and steps["shape"].model.ref == "fast"
    assert steps["shape"].prompt == "Shape {{ steps.look.output }}"


# --- spec hashes ----------------------------------------------------------------------------------


def _hashes(root: Path, text: str = SPECS) -> dict[str, str]:
    report = _validate(root, text)
    return {f"{s.kind}/{s.name}": spec_hash(s) for s in report.specs.specs}


def test_spec_hash_is_stable_across_reloads(tmp_path: Path) -> None:
    first = _hashes(tmp_path / "a")
    assert first == _hashes(tmp_path / "b")
    assert first == _hashes(tmp_path / "a")
    assert len(set(first.values())) == len(first)  # different specs, different hashes
    plan = compile_specs(_validate(tmp_path / "c").specs)
    assert _unit(plan, "Agent", "helper").spec_hash == first["Agent/helper"]


def test_spec_hash_ignores_formatting(tmp_path: Path) -> None:
    reformatted = SPECS.replace(
        "limits: {max_iterations: 7, timeout: 90s}", "limits:\n    max_iterations: 7\n    timeout: 1m30s"
    )
    assert reformatted != SPECS
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b", reformatted)


def test_spec_hash_changes_with_a_field_but_not_with_the_description(tmp_path: Path) -> None:
    base = _hashes(tmp_path / "base")
    changed = _hashes(tmp_path / "field", SPECS.replace("max_iterations: 7", "max_iterations: 8"))
    assert changed["Agent/helper"] != base["Agent/helper"]
    assert {k: v for k, v in changed.items() if k != "Agent/helper"} == {
        k: v for k, v in base.items() if k != "Agent/helper"
    }
    described = _hashes(
        tmp_path / "description",
        SPECS.replace("description: Answers questions.", "description: Something else."),
    )
    assert described == base
    labelled = _hashes(
        tmp_path / "labels",
        SPECS.replace("{name: helper, description: Answers questions.}", "{name: helper, labels: {team: x}}"),
    )
    assert labelled["Agent/helper"] != base["Agent/helper"]


# --- structured-output models -----------------------------------------------------------------------


def test_build_output_models(plan: Plan) -> None:
    diags = Diagnostics()
    models = build_output_models(plan, diags)
    assert not diags.items, [str(d) for d in diags]
    assert set(models) == {"helper.output", "twin.output", "outer.shape.output"}
    model = models["helper.output"]
    assert issubclass(model, BaseModel)
    good = model.model_validate({"answer": "yes", "confidence": 0.75})
    assert good.model_dump()["confidence"] == 0.75
    for bad in ({"answer": "yes", "confidence": 1.5}, {"answer": "yes"}, {"answer": 3, "confidence": 0.5}):
        with pytest.raises(ValidationError):
            model.model_validate(bad)
    # identical schemas share one model
    assert models["twin.output"] is model
    assert models["outer.shape.output"] is not model
    assert models["outer.shape.output"].model_validate({"text": "x"})
