"""Checks of Test documents against the specs they test: the unit and model they name exist, the
inputs fit the unit's inputs schema, and every expectation could hold for some run of that unit
(a tool it can reach, an outcome it can end with, a path its output schema allows, a value the
schema admits). An expectation no run can meet is a bug in the test, found before anything runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import jsonschema_rs

from agent_platform._diagnostics import Diagnostics, did_you_mean
from agent_platform._load import file_exists
from agent_platform._spec.jsonpath import Segment, format_path
from agent_platform._spec.kinds import (
    UNIT_KINDS,
    AgentDocument,
    AgentSpec,
    CostBounds,
    CountBounds,
    Expectations,
    GuardrailDocument,
    McpServerDocument,
    MemoryDocument,
    ModelDocument,
    ModelSpec,
    PipelineDocument,
    PipelineSpec,
    RunOutcome,
    SupervisorDocument,
    TestDocument,
    TestSpec,
    ToolDocument,
    ValueCheck,
)
from agent_platform._validate.checks import output_schema_of_step
from agent_platform._validate.documents import CheckedSpec, TypedSpec
from agent_platform._validate.jsonschemas import check_schema, resolve_ref
from agent_platform._validate.references import SpecSet

Path_ = tuple[str | int, ...]
OUTCOMES: tuple[str, ...] = get_args(RunOutcome)
# The fields of each task's entry in a supervisor's output (runtime.supervisor.TaskResult.to_json;
# a test keeps the two in step).
SUPERVISOR_TASK_FIELDS: tuple[str, ...] = ("task_type", "target", "outcome", "output", "error", "start_order")


def check_tests(specs: SpecSet, diags: Diagnostics) -> None:
    for spec in specs.checked("Test"):
        _TestCheck(specs, spec, diags).run()


def resolve_unit(specs: SpecSet, ref: str) -> tuple[TypedSpec | None, str | None]:
    """The unit a Test names (`name` or `Kind/name`) -> (its spec, None), or (None, why not); (None,
    None) when it is a document that failed its own validation (already reported)."""
    kind, _, name = ref.rpartition("/")
    kinds = (kind,) if kind else UNIT_KINDS
    found = [spec for k in kinds if (spec := specs.get(k, name)) is not None]
    if len(found) == 1:
        return found[0], None
    if len(found) > 1:
        both = " and ".join(f"{s.kind}/{name}" for s in found)
        return None, f"'{name}' is ambiguous ({both}): name it as Kind/name"
    if any((k, name) in specs.invalid for k in kinds):
        return None, None
    elsewhere = [k for k in specs.kinds_named(name) if k not in kinds]
    if elsewhere:
        if elsewhere[0] in UNIT_KINDS:
            return (
                None,
                f"no {kind} named '{name}' ('{name}' is {_article(elsewhere[0])}: write {elsewhere[0]}/{name})",
            )
        return None, f"'{name}' is {_article(elsewhere[0])}: a test runs an Agent, Pipeline or Supervisor"
    candidates = [n for k in kinds for n in specs.defined_names(k)]
    what = f"{kind}" if kind else "agent, pipeline or supervisor"
    hint = did_you_mean(name, candidates) if candidates else f" (no {what} is defined in the given files)"
    return None, f"unknown {what} '{name}'{hint}"


def _article(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "AEIOU" else f"a {kind}"


@dataclass
class Reach:
    """What a run of a unit can reach: the units it runs (itself, its delegates, its pipeline
    steps' units, a supervisor's routes), their tools, guardrails and models."""

    units: dict[str, TypedSpec] = field(default_factory=dict)  # by "Kind/name"
    tools: set[str] = field(default_factory=set)
    guardrails: set[str] = field(default_factory=set)
    models: list[ModelSpec] = field(default_factory=list)

    @classmethod
    def of(cls, specs: SpecSet, unit: TypedSpec) -> Reach:
        reach = cls()
        stack = [unit]
        while stack:
            current = stack.pop()
            ref = f"{current.kind}/{current.name}"
            if ref in reach.units:
                continue
            reach.units[ref] = current
            for kind, name in reach._visit(specs, current):
                found = specs.get(kind, name)
                if found is not None:
                    stack.append(found)
        return reach

    def _visit(self, specs: SpecSet, unit: TypedSpec) -> Iterator[tuple[str, str]]:
        """Adds what `unit` uses itself; yields the units it hands work to."""
        model = unit.model
        if isinstance(model, AgentDocument):
            agent = model.spec
            self._model(specs, agent.model)
            self._tools(specs, agent.tools)
            self.guardrails.update(agent.guardrails)
            for selection in agent.mcp:  # the tools an attached MCP server offers are in its lock
                self.tools.add(f"mcp:{selection.server}")
                server = specs.get("McpServer", selection.server)
                if server is not None and isinstance(server.model, McpServerDocument):
                    self.guardrails.update(server.model.spec.guardrails)
            memory = specs.get("Memory", agent.memory) if agent.memory is not None else None
            if memory is not None and isinstance(memory.model, MemoryDocument):
                working = memory.model.spec.working
                if working is not None and working.compaction is not None:
                    self._model(specs, working.compaction.model)
            yield from (("Agent", d) for d in agent.delegates)
        elif isinstance(model, PipelineDocument):
            self.guardrails.update(model.spec.guardrails)
            for step in model.spec.steps:
                if step.tool is not None:
                    self._tools(specs, [step.tool])
                if step.llm is not None:
                    self._model(specs, step.llm.model)
                if step.agent is not None:
                    yield "Agent", step.agent
                if step.pipeline is not None:
                    yield "Pipeline", step.pipeline
        elif isinstance(model, SupervisorDocument):
            for route in model.spec.routes.values():
                yield route.target

    def _tools(self, specs: SpecSet, names: list[str]) -> None:
        for name in names:
            self.tools.add(name)
            tool = specs.get("Tool", name)
            if tool is not None and isinstance(tool.model, ToolDocument):
                self.guardrails.update(tool.model.spec.guardrails)

    def _model(self, specs: SpecSet, ref: str | ModelSpec) -> None:
        if isinstance(ref, ModelSpec):
            self.models.append(ref)
        elif (found := specs.get("Model", ref)) is not None and isinstance(found.model, ModelDocument):
            self.models.append(found.model.spec)

    def own_tools(self, unit: TypedSpec) -> list[str]:
        """The tools `unit` calls itself (not through the units it hands work to)."""
        if isinstance(unit.model, AgentDocument):
            return list(unit.model.spec.tools)
        if isinstance(unit.model, PipelineDocument):
            return [step.tool for step in unit.model.spec.steps if step.tool is not None]
        return []


def impossible_outcome(
    outcome: str, unit: TypedSpec, reach: Reach, specs: SpecSet, approve_all: bool
) -> str | None:
    """Why a run of `unit` can never end with `outcome`, or None when it can."""
    ref = f"{unit.kind}/{unit.name}"
    if outcome == "cancelled":
        return "a test's run is never cancelled (a run that outlasts the test's timeout fails the test)"
    if outcome == "needs_approval":
        if approve_all:
            return "approve_all: true approves every call that needs approval"
        if not any(_may_need_approval(specs, tool) for tool in reach.tools):
            return f"no tool {ref} can reach has side effects, needs approval or sends requests"
        return None
    model = unit.model
    if isinstance(model, SupervisorDocument):
        if outcome not in ("completed", "failed"):
            return (
                "a supervisor's run completes or fails as a whole (or waits for approval); each task's "
                "outcome is in its output, at $['<task_id>'].outcome"
            )
        return None
    if isinstance(model, PipelineDocument):
        if outcome in _AGENT_LIMITS:
            return (
                f"a pipeline has no {_AGENT_LIMITS[outcome]}: a step's agent that reaches its own fails "
                "the step, and the pipeline ends 'failed'"
            )
        if outcome == "guardrail_halt" and not _guarded_pipeline(specs, model.spec):
            return f"{ref} has no guardrail (on it or on its tools) that could halt it"
        return None
    assert isinstance(model, AgentDocument)
    agent = model.spec
    limits = agent.limits
    if (
        outcome == "token_budget"
        and limits.max_total_tokens is None
        and not _has_working_memory(specs, agent)
    ):
        return f"{ref} has no token budget (limits.max_total_tokens) and no working memory"
    if outcome == "cost_budget" and limits.max_cost_usd is None:
        return f"{ref} has no cost budget (limits.max_cost_usd)"
    if outcome == "tool_call_budget" and limits.max_tool_calls is None:
        return f"{ref} has no tool call budget (limits.max_tool_calls)"
    if (
        outcome == "guardrail_halt"
        and not agent.guardrails
        and not any(_tool_guardrails(specs, tool) for tool in agent.tools)
    ):
        return f"{ref} has no guardrail (on it or on its tools) that could halt it"
    return None


# The outcomes only an agent's own limits end a run with, and those limits.
_AGENT_LIMITS = {
    "max_iterations": "iteration limit",
    "token_budget": "token budget",
    "cost_budget": "cost budget",
    "tool_call_budget": "tool call budget",
}


def _may_need_approval(specs: SpecSet, name: str) -> bool:
    tool = specs.get("Tool", name)
    if tool is None or not isinstance(tool.model, ToolDocument):
        return True  # unknown here: do not claim it never asks
    spec = tool.model.spec
    # An MCP tool's side effects come from its server's annotations, pinned in the lock.
    return spec.side_effects or bool(spec.requires_approval) or spec.http is not None or spec.mcp is not None


def _tool_guardrails(specs: SpecSet, name: str) -> list[str]:
    tool = specs.get("Tool", name)
    return (
        list(tool.model.spec.guardrails) if tool is not None and isinstance(tool.model, ToolDocument) else []
    )


def _guarded_pipeline(specs: SpecSet, pipeline: PipelineSpec) -> bool:
    return bool(pipeline.guardrails) or any(
        _tool_guardrails(specs, step.tool) for step in pipeline.steps if step.tool is not None
    )


def _has_working_memory(specs: SpecSet, agent: AgentSpec) -> bool:
    memory = specs.get("Memory", agent.memory) if agent.memory is not None else None
    return (
        memory is not None
        and isinstance(memory.model, MemoryDocument)
        and memory.model.spec.working is not None
    )


# --- schemas along JSON paths ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaAt:
    """What a schema says about the value at a path: its sub-schema, or that no value can be
    there (`problem`), or nothing (both None: the schema does not say)."""

    schema: dict[str, Any] | None = None
    problem: str | None = None


def _declared_types(schema: dict[str, Any]) -> set[str] | None:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        # An invalid `type` (reported as such) names no type: the schema then does not say.
        return {t for t in declared if isinstance(t, str)} or None
    return None


def schema_at(schema: dict[str, Any] | None, segments: tuple[Segment, ...], label: str) -> SchemaAt:
    """Follow `segments` through `schema` (properties, additionalProperties, items)."""
    if schema is None:
        return SchemaAt()
    root = schema
    node = schema
    for depth, segment in enumerate(segments):
        node = resolve_ref(node, root)
        here = format_path(segments[:depth])
        types = _declared_types(node)
        if isinstance(segment, int):
            if types is not None and "array" not in types:
                return SchemaAt(problem=f"{here} is {_a(types)} in {label}, not a list")
            items = node.get("items")
            if not isinstance(items, dict):
                return SchemaAt()
            node = items
            continue
        if types is not None and "object" not in types:
            return SchemaAt(problem=f"{here} is {_a(types)} in {label}, not an object")
        props = node.get("properties")
        props = props if isinstance(props, dict) else {}
        if segment in props:
            if not isinstance(props[segment], dict):
                return SchemaAt()
            node = props[segment]
        elif node.get("additionalProperties") is False:
            members = ", ".join(props) or "none"
            return SchemaAt(
                problem=f"{here} has no member '{segment}' in {label}{did_you_mean(segment, props)} "
                f"(members: {members})"
            )
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return SchemaAt()
    return SchemaAt(schema=resolve_ref(node, root))


def _a(types: set[str]) -> str:
    words = sorted(types)
    text = " or ".join(words)
    return f"an {text}" if words[0][:1] in "aeiou" else f"a {text}"


def _check_value_against(check: ValueCheck, at: SchemaAt, label: str) -> tuple[str, str] | None:
    """(the key at fault, why) when no value the schema allows at the check's path passes it."""
    if at.problem is not None:
        return "path", at.problem
    sub = at.schema
    if sub is None:
        return None
    where = check.path
    if check.operator == "matches":
        types = _declared_types(sub)
        if types is not None and "string" not in types:
            return "matches", f"{where} is {_a(types)} in {label}: `matches` applies to strings"
    elif check.operator == "equals" and '"$ref"' not in json.dumps(sub, default=str):
        try:
            errors = list(jsonschema_rs.validator_for(sub).iter_errors(check.equals))
        except (ValueError, jsonschema_rs.ValidationError):  # an invalid schema is reported on its own
            return None
        if errors:
            hint = ""
            enum = sub.get("enum")
            if isinstance(check.equals, str) and isinstance(enum, list):
                hint = did_you_mean(check.equals, [v for v in enum if isinstance(v, str)])
            return (
                "equals",
                f"{where} can never equal {json.dumps(check.equals)}: {label} does not allow it "
                f"({errors[0].message}){hint}",
            )
    return None


# --- one Test -----------------------------------------------------------------------------------------


class _TestCheck:
    def __init__(self, specs: SpecSet, spec: CheckedSpec, diags: Diagnostics) -> None:
        assert isinstance(spec.model, TestDocument)
        self.specs = specs
        self.spec = spec
        self.test: TestSpec = spec.model.spec
        self.diags = diags

    def error(self, path: Path_, message: str, code: str = "test") -> None:
        self.diags.error(code, message, self.spec.locate(*path), self.spec.kind, self.spec.name)

    def warning(self, path: Path_, message: str, code: str = "test") -> None:
        self.diags.warning(code, message, self.spec.locate(*path), self.spec.kind, self.spec.name)

    def run(self) -> None:
        has = self.spec.has
        if has("model") and self.test.model is not None:
            self._check_model(self.test.model)
        if not has("unit"):
            return
        unit, problem = resolve_unit(self.specs, self.test.unit)
        if problem is not None:
            self.error(("spec", "unit"), problem, "unresolved-reference")
        if unit is None:
            return
        if has("inputs"):
            self._check_inputs(unit)
        if has("expect"):
            approve_all = self.test.approve_all if has("approve_all") else False
            self._check_expectations(unit, self.test.expect, approve_all)

    # --- the model and the inputs ---------------------------------------------------------------

    def _check_model(self, model: str | ModelSpec) -> None:
        path: Path_ = ("spec", "model")
        if isinstance(model, ModelSpec):
            if model.script is not None:
                script = Path(self.spec.document.file).parent / model.script
                if not file_exists(script):
                    self.error(
                        (*path, "script"),
                        f"script file '{model.script}' not found (looked for {script})",
                        "script-not-found",
                    )
            return
        if self.specs.get("Model", model) is None and ("Model", model) not in self.specs.invalid:
            defined = self.specs.defined_names("Model")
            hint = did_you_mean(model, defined) if defined else " (no Model is defined in the given files)"
            self.error(path, f"unknown Model '{model}'{hint}", "unresolved-reference")

    def _check_inputs(self, unit: TypedSpec) -> None:
        inputs = self.test.inputs
        model = unit.model
        if isinstance(model, SupervisorDocument):
            self._check_tasks(model, inputs)
        elif isinstance(model, AgentDocument | PipelineDocument):
            self._check_against(model.spec.inputs, inputs, ("spec", "inputs"), f"{unit.kind}/{unit.name}")

    def _check_against(self, schema: dict[str, Any], value: Any, path: Path_, owner: str) -> None:
        from agent_platform._validate.jsonschemas import apply_defaults  # what a run fills in first

        try:
            validator = jsonschema_rs.validator_for(schema)
        except (ValueError, jsonschema_rs.ValidationError):
            return  # the unit's schema is invalid: reported at the unit
        for error in validator.iter_errors(apply_defaults(schema, value)):
            where = tuple(error.instance_path)
            shown = format_path(where)
            self.error(
                (*path, *where), f"inputs do not fit {owner}'s inputs schema: {shown}: {error.message}"
            )

    def _check_tasks(self, supervisor: SupervisorDocument, inputs: dict[str, Any]) -> None:
        path: Path_ = ("spec", "inputs")
        tasks = inputs.get("tasks")
        if set(inputs) != {"tasks"} or not isinstance(tasks, list):
            self.error(path, 'a supervisor takes {"tasks": [{task_id, task_type, payload, priority}, ...]}')
            return
        routes = supervisor.spec.routes
        seen: set[str] = set()
        for index, task in enumerate(tasks):
            here = (*path, "tasks", index)
            if not isinstance(task, dict):
                self.error(here, "a task is an object {task_id, task_type, payload, priority}")
                continue
            unknown = sorted(set(task) - {"task_id", "task_type", "payload", "priority"})
            for key in unknown:
                hint = did_you_mean(key, ["task_id", "task_type", "payload", "priority"])
                self.error((*here, key), f"unknown task field '{key}'{hint}")
            task_id, task_type, payload = task.get("task_id"), task.get("task_type"), task.get("payload", {})
            if not isinstance(task_id, str) or not task_id:
                self.error((*here, "task_id"), "task_id must be a non-empty string")
            elif task_id in seen:
                self.error((*here, "task_id"), f"duplicate task_id '{task_id}'")
            else:
                seen.add(task_id)
            priority = task.get("priority")
            if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
                self.error((*here, "priority"), "priority must be an integer")
            if not isinstance(task_type, str) or task_type not in routes:
                hint = did_you_mean(str(task_type), routes)
                self.error(
                    (*here, "task_type"),
                    f"unknown task_type {json.dumps(task_type)} (routes: {', '.join(routes)}){hint}",
                )
                continue
            if not isinstance(payload, dict):
                self.error((*here, "payload"), "payload must be an object")
                continue
            kind, name = routes[task_type].target
            target = self.specs.get(kind, name)
            if target is not None and isinstance(target.model, AgentDocument | PipelineDocument):
                self._check_against(target.model.spec.inputs, payload, (*here, "payload"), f"{kind}/{name}")

    # --- expectations -----------------------------------------------------------------------------

    def _check_expectations(self, unit: TypedSpec, expect: Expectations, approve_all: bool) -> None:
        reach = Reach.of(self.specs, unit)
        base: Path_ = ("spec", "expect")
        why = impossible_outcome(expect.outcome, unit, reach, self.specs, approve_all)
        if why is not None:
            self.error((*base, "outcome"), f"{unit.kind}/{unit.name} can never end '{expect.outcome}': {why}")
        output_schema, label = self._output_schema(unit)
        for index, check in enumerate(expect.output):
            self._check_value(check, (*base, "output", index), output_schema, label)
        if expect.tools is not None:
            self._check_tools(unit, reach, (*base, "tools"))
        if expect.guardrails is not None:
            self._check_guardrails(unit, reach, (*base, "guardrails"))
        if expect.iterations is not None:
            self._check_iterations(unit, expect.iterations, (*base, "iterations"))
        if expect.usage is not None and expect.usage.cost_usd is not None:
            self._check_cost(unit, reach, expect.usage.cost_usd, (*base, "usage", "cost_usd"))

    def _check_value(self, check: ValueCheck, path: Path_, schema: dict[str, Any] | None, label: str) -> None:
        if check.json_schema is not None:
            for problem in check_schema(check.json_schema):
                where = (*path, "schema", *problem.path)
                location = self.spec.key_location(*where) if problem.at_key else self.spec.locate(*where)
                self.diags.error("json-schema", problem.message, location, self.spec.kind, self.spec.name)
        found = _check_value_against(check, schema_at(schema, check.json_path.segments, label), label)
        if found is not None:
            key, message = found
            self.error((*path, key), message)

    def _output_schema(self, unit: TypedSpec) -> tuple[dict[str, Any] | None, str]:
        label = f"{unit.kind}/{unit.name}'s output schema"
        model = unit.model
        if isinstance(model, AgentDocument):
            if model.spec.output is None:
                return {
                    "type": "string"
                }, f"{unit.kind}/{unit.name}'s output (a string: it declares no output schema)"
            return model.spec.output, label
        if isinstance(model, PipelineDocument):
            pipeline = model.spec
            if pipeline.output is not None:
                return pipeline.output, label
            if pipeline.returns is None:
                return output_schema_of_step(self.specs, pipeline.steps[-1]), f"{label} (its last step's)"
            return None, label
        assert isinstance(model, SupervisorDocument)
        return self._supervisor_output_schema(model), f"{unit.kind}/{unit.name}'s output for these tasks"

    def _supervisor_output_schema(self, supervisor: SupervisorDocument) -> dict[str, Any] | None:
        """Each task of the test's inputs, by task_id, with the fields a task result has and its
        route's output schema."""
        tasks = self.test.inputs.get("tasks") if self.spec.has("inputs") else None
        if not isinstance(tasks, list):
            return None
        properties: dict[str, Any] = {}
        for task in tasks:
            if not isinstance(task, dict) or not isinstance(task.get("task_id"), str):
                return None
            route = supervisor.spec.routes.get(str(task.get("task_type")))
            output: dict[str, Any] = {}
            if route is not None:
                kind, name = route.target
                target = self.specs.get(kind, name)
                if target is not None:
                    declared = self._output_schema(target)[0]
                    output = declared if declared is not None else {}
            entry_properties: dict[str, Any] = {name: {} for name in SUPERVISOR_TASK_FIELDS}
            entry_properties["outcome"] = {"enum": list(OUTCOMES)}
            entry_properties["output"] = output
            properties[task["task_id"]] = {
                "type": "object",
                "properties": entry_properties,
                "additionalProperties": False,
            }
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def _check_tools(self, unit: TypedSpec, reach: Reach, base: Path_) -> None:
        tools = self.test.expect.tools
        assert tools is not None
        ref = f"{unit.kind}/{unit.name}"
        reachable = ", ".join(sorted(reach.tools)) or "none"
        for index, call in enumerate(tools.called):
            here = (*base, "called", index)
            if not self._known("Tool", call.tool, (*here, "tool")):
                continue
            if call.tool not in reach.tools:
                self.error(
                    (*here, "tool"), f"{ref} cannot call '{call.tool}' (the tools it can reach: {reachable})"
                )
                continue
            if call.by is not None:
                caller = self._reachable_unit(reach, call.by, (*here, "by"), ref)
                if caller is not None and call.tool not in (own := reach.own_tools(caller)):
                    self.error(
                        (*here, "tool"),
                        f"{caller.kind}/{caller.name} does not call '{call.tool}' itself (its tools: "
                        f"{', '.join(own) or 'none'})",
                    )
            tool = self.specs.get("Tool", call.tool)
            schema = (
                tool.model.spec.input_schema
                if tool is not None and isinstance(tool.model, ToolDocument)
                else None
            )
            for position, check in enumerate(call.arguments):
                self._check_value(
                    check, (*here, "arguments", position), schema, f"the input_schema of '{call.tool}'"
                )
        for index, name in enumerate(tools.not_called):
            here = (*base, "not_called", index)
            if self._known("Tool", name, here) and name not in reach.tools:
                self.warning(here, f"{ref} cannot call '{name}' at all: this expectation always holds")

    def _reachable_unit(self, reach: Reach, ref: str, path: Path_, tested: str) -> TypedSpec | None:
        kind, _, name = ref.rpartition("/")
        matches = [
            s for r, s in reach.units.items() if r.endswith(f"/{name}") and (not kind or s.kind == kind)
        ]
        callers = [s for s in matches if s.kind in ("Agent", "Pipeline")]
        if len(callers) == 1:
            return callers[0]
        if len(callers) > 1:
            self.error(
                path,
                f"'{name}' is ambiguous ({' and '.join(f'{s.kind}/{name}' for s in callers)}): name it as Kind/name",
            )
            return None
        if matches:
            self.error(path, f"{ref} calls no tool itself: its routes' agents and pipelines do")
            return None
        units = ", ".join(sorted(r for r, s in reach.units.items() if s.kind != "Supervisor"))
        self.error(
            path,
            f"{tested} never runs '{ref}'{did_you_mean(name, [r.rpartition('/')[2] for r in reach.units])} (it runs: {units})",
        )
        return None

    def _check_guardrails(self, unit: TypedSpec, reach: Reach, base: Path_) -> None:
        guardrails = self.test.expect.guardrails
        assert guardrails is not None
        ref = f"{unit.kind}/{unit.name}"
        reachable = ", ".join(sorted(reach.guardrails)) or "none"
        for index, event in enumerate(guardrails.triggered):
            here = (*base, "triggered", index)
            if not self._known("Guardrail", event.guardrail, (*here, "guardrail")):
                continue
            if event.guardrail not in reach.guardrails:
                self.error(
                    (*here, "guardrail"),
                    f"'{event.guardrail}' guards nothing {ref} runs, so it can never trigger (its guardrails: {reachable})",
                )
                continue
            found = self.specs.get("Guardrail", event.guardrail)
            if event.stage is not None and found is not None and isinstance(found.model, GuardrailDocument):
                stages = found.model.spec.applies_to
                if event.stage not in stages:
                    self.error(
                        (*here, "stage"),
                        f"'{event.guardrail}' runs at {', '.join(stages)}, never at {event.stage}",
                    )
        for index, name in enumerate(guardrails.not_triggered):
            here = (*base, "not_triggered", index)
            if self._known("Guardrail", name, here) and name not in reach.guardrails:
                self.warning(here, f"'{name}' guards nothing {ref} runs: this expectation always holds")

    def _check_iterations(self, unit: TypedSpec, bounds: CountBounds, path: Path_) -> None:
        if not isinstance(unit.model, AgentDocument):
            self.error(
                path,
                f"iterations count an agent's model decisions; {unit.kind}/{unit.name} makes none itself",
            )
            return
        ceiling = unit.model.spec.limits.max_iterations
        least = bounds.equals if bounds.equals is not None else bounds.min
        if least is not None and least > ceiling:
            key = "equals" if bounds.equals is not None else "min"
            self.error(
                (*path, key),
                f"{unit.kind}/{unit.name} stops after {ceiling} iterations (limits.max_iterations), never {least}",
            )

    def _check_cost(self, unit: TypedSpec, reach: Reach, bounds: CostBounds, path: Path_) -> None:
        least = bounds.equals if bounds.equals is not None else bounds.min
        if not least:
            return
        override = self.test.model if self.spec.has("model") else None
        if isinstance(override, str):
            found = self.specs.get("Model", override)
            models = (
                [found.model.spec] if found is not None and isinstance(found.model, ModelDocument) else None
            )
        elif isinstance(override, ModelSpec):
            models = [override]
        else:
            models = reach.models
        if models is not None and not any(model.pricing is not None for model in models):
            key = "equals" if bounds.equals is not None else "min"
            whose = (
                "the test's model has"
                if override is not None
                else f"no model {unit.kind}/{unit.name} uses has"
            )
            self.error((*path, key), f"the run costs $0: {whose} no pricing")

    def _known(self, kind: str, name: str, path: Path_) -> bool:
        """Whether `kind/name` is defined (a broken definition counts: it is reported already)."""
        if self.specs.get(kind, name) is not None:
            return True
        if (kind, name) in self.specs.invalid:
            return False
        defined = self.specs.defined_names(kind)
        hint = did_you_mean(name, defined) if defined else f" (no {kind} is defined in the given files)"
        self.error(path, f"unknown {kind} '{name}'{hint}", "unresolved-reference")
        return False


__all__ = [
    "OUTCOMES",
    "SUPERVISOR_TASK_FIELDS",
    "Reach",
    "check_tests",
    "impossible_outcome",
    "resolve_unit",
    "schema_at",
]
