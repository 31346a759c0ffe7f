"""Semantic checks over the resolved spec set: templates in their scope, JSON Schemas, producer /
consumer agreement in pipelines, plugin references, and design hints."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent_platform.diagnostics import Diagnostics, did_you_mean
from agent_platform.spec.kinds import (
    MEMORY_WRITE_INPUT_SCHEMA,
    MEMORY_WRITE_OUTPUT_SCHEMA,
    AgentDocument,
    AgentSpec,
    GuardrailDocument,
    MemoryDocument,
    ModelDocument,
    ModelSpec,
    OutputSchemaGuardrail,
    PipelineDocument,
    PipelineSpec,
    PromptInjectionGuardrail,
    PythonGuardrail,
    RegexGuardrail,
    ToolDocument,
)
from agent_platform.validate.documents import TypedSpec
from agent_platform.validate.jsonschemas import (
    check_schema,
    check_structured_output,
    incompatibilities,
    property_schema,
    required_of,
)
from agent_platform.validate.plugins import PluginResolver
from agent_platform.validate.references import SpecSet
from agent_platform.validate.templates import (
    Binding,
    OpaqueVar,
    SchemaVar,
    Scope,
    StepsVar,
    check_template,
    is_template,
    single_expression,
)

Path_ = tuple[str | int, ...]


def _error(diags: Diagnostics, code: str, spec: TypedSpec, path: Path_, message: str) -> None:
    diags.error(code, message, spec.locate(*path), spec.kind, spec.name)


# --- templates --------------------------------------------------------------------------------


def _template_strings(value: Any, path: Path_) -> Iterator[tuple[Path_, str]]:
    if isinstance(value, str):
        if is_template(value):
            yield path, value
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _template_strings(sub, (*path, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _template_strings(sub, (*path, index))


def _check_templates_at(diags: Diagnostics, spec: TypedSpec, path: Path_, value: Any, scope: Scope) -> None:
    for where, text in _template_strings(value, path):
        for problem in check_template(text, scope):
            location = spec.document.text_location(where, problem.line, problem.column, problem.needle)
            report = diags.warning if problem.warning else diags.error
            report("template", problem.message, location, spec.kind, spec.name)


def _inputs_var(schema: dict[str, Any]) -> SchemaVar:
    return SchemaVar(schema, "the inputs schema", declared_only=True)


def output_schema_of_step(specs: SpecSet, step: Any) -> dict[str, Any] | None:
    """The declared output schema of a step: its own, else its target's."""
    if step.output is not None:
        return step.output  # type: ignore[no-any-return]
    produced = _target_output_schema(specs, step)
    if produced is not None and step.map is not None:
        return {"type": "array", "items": produced}  # a map step yields one result per item
    return produced


def _target_output_schema(specs: SpecSet, step: Any) -> dict[str, Any] | None:
    if step.tool is not None and (tool := specs.get("Tool", step.tool)) is not None:
        assert isinstance(tool.model, ToolDocument)
        return tool.model.spec.output_schema
    if step.agent is not None and (agent := specs.get("Agent", step.agent)) is not None:
        assert isinstance(agent.model, AgentDocument)
        return agent.model.spec.output
    if step.pipeline is not None and (pipe := specs.get("Pipeline", step.pipeline)) is not None:
        assert isinstance(pipe.model, PipelineDocument)
        return pipe.model.spec.output
    if step.memory is not None:
        return MEMORY_WRITE_OUTPUT_SCHEMA
    return None


def input_schema_of_step(specs: SpecSet, step: Any) -> dict[str, Any] | None:
    """The schema the step's target accepts as input."""
    if step.tool is not None and (tool := specs.get("Tool", step.tool)) is not None:
        assert isinstance(tool.model, ToolDocument)
        return tool.model.spec.input_schema
    if step.agent is not None and (agent := specs.get("Agent", step.agent)) is not None:
        assert isinstance(agent.model, AgentDocument)
        return agent.model.spec.inputs
    if step.pipeline is not None and (pipe := specs.get("Pipeline", step.pipeline)) is not None:
        assert isinstance(pipe.model, PipelineDocument)
        return pipe.model.spec.inputs
    if step.memory is not None:
        return MEMORY_WRITE_INPUT_SCHEMA
    return None


def check_agent_templates(specs: SpecSet, diags: Diagnostics) -> None:
    for spec in specs.of_kind("Agent"):
        assert isinstance(spec.model, AgentDocument)
        scope = Scope(
            {
                "inputs": _inputs_var(spec.model.spec.inputs),
                "agent": OpaqueVar(),
                "tools": OpaqueVar(),
                "delegates": OpaqueVar(),
            },
            "agent instructions",
        )
        _check_templates_at(diags, spec, ("spec", "instructions"), spec.model.spec.instructions, scope)


def check_tool_templates(specs: SpecSet, diags: Diagnostics) -> None:
    for spec in specs.of_kind("Tool"):
        assert isinstance(spec.model, ToolDocument)
        tool = spec.model.spec
        args = SchemaVar(tool.input_schema, "the tool's input_schema")
        if tool.http is not None:
            scope = Scope({"args": args, "env": OpaqueVar()}, "an http tool template")
            for field_name in ("url", "headers", "query", "body"):
                value = getattr(tool.http, field_name)
                _check_templates_at(diags, spec, ("spec", "http", field_name), value, scope)
        if tool.idempotency.key is not None:
            scope = Scope({"args": args, "run": OpaqueVar(), "tool": OpaqueVar()}, "an idempotency key")
            _check_templates_at(diags, spec, ("spec", "idempotency", "key"), tool.idempotency.key, scope)


def check_pipeline(specs: SpecSet, spec: TypedSpec, diags: Diagnostics) -> None:
    assert isinstance(spec.model, PipelineDocument)
    pipeline: PipelineSpec = spec.model.spec
    names = [step.name for step in pipeline.steps]
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            _error(
                diags,
                "duplicate-step",
                spec,
                ("spec", "steps", index, "name"),
                f"duplicate step name '{name}' (also step {seen[name] + 1})",
            )
        else:
            seen[name] = index
    inputs = _inputs_var(pipeline.inputs)
    earlier: dict[str, dict[str, Any] | None] = {}
    for index, step in enumerate(pipeline.steps):
        base: Path_ = ("spec", "steps", index)
        later = frozenset(names[index + 1 :])
        steps_var = StepsVar(dict(earlier), later, step.name)
        variables: dict[str, Binding] = {"inputs": inputs, "steps": steps_var, "pipeline": OpaqueVar()}
        if step.map is not None:
            over_scope = Scope(dict(variables), f"step '{step.name}'")
            if step.map.as_ in variables:
                _error(
                    diags,
                    "map-shadow",
                    spec,
                    (*base, "map", "as"),
                    f"map variable '{step.map.as_}' hides a built-in variable",
                )
            _check_templates_at(diags, spec, (*base, "map", "over"), step.map.over, over_scope)
            if not is_template(step.map.over):
                _error(
                    diags,
                    "map-over",
                    spec,
                    (*base, "map", "over"),
                    "map.over must be a template yielding a list, e.g. '{{ steps.x.output }}'",
                )
            variables[step.map.as_] = _map_item(diags, spec, base, step.map.over, over_scope)
        scope = Scope(variables, f"step '{step.name}'")
        _check_templates_at(diags, spec, (*base, "input"), step.input, scope)
        if step.llm is not None:
            _check_templates_at(diags, spec, (*base, "llm", "prompt"), step.llm.prompt, scope)
            if step.llm.system is not None:
                _check_templates_at(diags, spec, (*base, "llm", "system"), step.llm.system, scope)
        if step.memory is not None and step.memory.tenant is not None:
            _check_templates_at(diags, spec, (*base, "memory", "tenant"), step.memory.tenant, scope)
        _check_step_agreement(specs, spec, index, scope, diags)
        earlier[step.name] = output_schema_of_step(specs, step)
    if pipeline.returns is not None:
        scope = Scope(
            {"inputs": inputs, "steps": StepsVar(dict(earlier), frozenset()), "pipeline": OpaqueVar()},
            "the pipeline's returns",
        )
        _check_templates_at(diags, spec, ("spec", "returns"), pipeline.returns, scope)


def schema_of_expression(text: str, scope: Scope) -> tuple[dict[str, Any] | None, str | None]:
    """For a value that is exactly `{{ var.a.b }}`: (the schema it has, a label), where known."""
    chain = single_expression(text)
    if chain is None:
        return None, None
    root, attrs = chain
    binding = scope.variables.get(root)
    label = ".".join([root, *attrs])
    if isinstance(binding, SchemaVar):
        if binding.schema is None:
            return None, None
        if not attrs:
            return binding.schema, label
        return property_schema(binding.schema, attrs)[0], label
    if isinstance(binding, StepsVar):
        if len(attrs) < 2 or attrs[1] != "output":
            return None, None
        produced = binding.earlier.get(attrs[0])
        if produced is None or len(attrs) == 2:
            return produced, label
        return property_schema(produced, attrs[2:])[0], label
    return None, None


def _map_item(diags: Diagnostics, spec: TypedSpec, base: Path_, over: str, scope: Scope) -> Binding:
    """The map variable: described by the `items` of what `over` yields, when that is declared."""
    listed, label = schema_of_expression(over, scope)
    if listed is None:
        return OpaqueVar()
    declared = listed.get("type")
    if isinstance(declared, str) and declared != "array":
        _error(
            diags,
            "map-over",
            spec,
            (*base, "map", "over"),
            f"map.over yields {label}, a {declared}, not a list",
        )
        return OpaqueVar()
    items = listed.get("items")
    return SchemaVar(items, f"the items of {label}") if isinstance(items, dict) else OpaqueVar()


def _check_step_agreement(
    specs: SpecSet, spec: TypedSpec, index: int, scope: Scope, diags: Diagnostics
) -> None:
    """A step must provide its target's required inputs, and where an input value is exactly a
    variable whose schema is declared (an earlier step's output, an input, the map item), that
    schema must fit what the target accepts."""
    assert isinstance(spec.model, PipelineDocument)
    step = spec.model.spec.steps[index]
    consumer = input_schema_of_step(specs, step)
    if consumer is None or step.llm is not None:
        return
    base: Path_ = ("spec", "steps", index)
    target = f"{step.target_kind} '{getattr(step, step.target_kind)}'"
    props = consumer.get("properties")
    if not isinstance(props, dict):
        return
    for required in required_of(consumer):
        if required not in step.input:
            diags.error(
                "step-input-missing",
                f"step '{step.name}' does not provide '{required}', required by {target}",
                spec.key_location(*base, "input") if step.input else spec.locate(*base),
                spec.kind,
                spec.name,
            )
    if consumer.get("additionalProperties") is False:
        for key in step.input:
            if key not in props:
                diags.error(
                    "step-input-unknown",
                    f"'{key}' is not an input of {target}{did_you_mean(key, props)} (accepted: {', '.join(props)})",
                    spec.key_location(*base, "input", key),
                    spec.kind,
                    spec.name,
                )
    for key, value in step.input.items():
        expected = props.get(key)
        if not isinstance(value, str) or not isinstance(expected, dict):
            continue
        produced, label = schema_of_expression(value, scope)
        if produced is None or label is None:
            continue
        for reason in incompatibilities(produced, expected, label):
            _error(
                diags,
                "schema-mismatch",
                spec,
                (*base, "input", key),
                f"input '{key}' of step '{step.name}': {reason}",
            )


# --- JSON Schemas -----------------------------------------------------------------------------


def _schemas_of(spec: TypedSpec) -> Iterator[tuple[Path_, dict[str, Any], bool]]:
    """(path, schema, used for structured output) for every JSON Schema in a spec."""
    model = spec.model
    if isinstance(model, AgentDocument):
        yield ("spec", "inputs"), model.spec.inputs, False
        if model.spec.output is not None:
            yield ("spec", "output"), model.spec.output, True
    elif isinstance(model, ToolDocument):
        if model.spec.input_schema is not None:
            yield ("spec", "input_schema"), model.spec.input_schema, True
        if model.spec.output_schema is not None:
            yield ("spec", "output_schema"), model.spec.output_schema, False
    elif isinstance(model, PipelineDocument):
        yield ("spec", "inputs"), model.spec.inputs, False
        if model.spec.output is not None:
            yield ("spec", "output"), model.spec.output, False
        for index, step in enumerate(model.spec.steps):
            if step.output is not None:
                yield ("spec", "steps", index, "output"), step.output, step.llm is not None
    elif isinstance(model, GuardrailDocument) and isinstance(model.spec, OutputSchemaGuardrail):
        yield ("spec", "schema"), model.spec.json_schema, False


def check_schemas(specs: SpecSet, diags: Diagnostics) -> None:
    for spec in specs.specs:
        for path, schema, structured in _schemas_of(spec):
            problems = check_schema(schema)
            if not problems and structured:
                problems = check_structured_output(schema)
            for problem in problems:
                where = (*path, *problem.path)
                location = spec.key_location(*where) if problem.at_key else spec.locate(*where)
                diags.error("json-schema", problem.message, location, spec.kind, spec.name)


# --- plugins, models, guardrails, hints -------------------------------------------------------


def _python_refs(spec: TypedSpec) -> Iterator[tuple[Path_, str, str]]:
    """(path, reference, what it must be: tool | exception | callable)."""
    model = spec.model
    if isinstance(model, ToolDocument):
        if model.spec.python is not None:
            yield ("spec", "python"), model.spec.python, "tool"
        if model.spec.retry is not None:
            for index, entry in enumerate(model.spec.retry.retry_on):
                if ":" in entry:
                    yield ("spec", "retry", "retry_on", index), entry, "exception"
    elif isinstance(model, GuardrailDocument) and isinstance(model.spec, PythonGuardrail):
        yield ("spec", "function"), model.spec.function, "callable"


def check_plugins(specs: SpecSet, resolver: PluginResolver, diags: Diagnostics) -> None:
    for spec in specs.specs:
        for path, ref, expect in _python_refs(spec):
            schema = None
            if expect == "tool" and isinstance(spec.model, ToolDocument):
                schema = spec.model.spec.input_schema
            problem = resolver.check(ref, schema, expect=expect)
            if problem is not None:
                _error(diags, "python-ref", spec, path, problem)


def _model_of(specs: SpecSet, ref: str | ModelSpec) -> ModelSpec | None:
    if isinstance(ref, ModelSpec):
        return ref
    found = specs.get("Model", ref)
    if found is None:
        return None
    assert isinstance(found.model, ModelDocument)
    return found.model.spec


def check_models(specs: SpecSet, diags: Diagnostics) -> None:
    """Scripts exist; cost budgets have prices to compute cost from."""
    for spec in specs.of_kind("Model"):
        assert isinstance(spec.model, ModelDocument)
        _check_script(spec, spec.model.spec, ("spec",), diags)
    for spec in specs.of_kind("Agent"):
        assert isinstance(spec.model, AgentDocument)
        agent = spec.model.spec
        if isinstance(agent.model, ModelSpec):
            _check_script(spec, agent.model, ("spec", "model"), diags)
        model = _model_of(specs, agent.model)
        if agent.limits.max_cost_usd is not None and model is not None and model.pricing is None:
            if model.provider != "scripted":
                _error(
                    diags,
                    "budget-without-pricing",
                    spec,
                    ("spec", "limits", "max_cost_usd"),
                    "a cost budget needs the model's pricing (set pricing on the Model)",
                )
        _check_remember(spec, agent, specs, diags)
        if agent.memory is not None and (memory := specs.get("Memory", agent.memory)) is not None:
            assert isinstance(memory.model, MemoryDocument)
            working = memory.model.spec.working
            if working is not None and model is not None and model.context_window is not None:
                if working.max_tokens > model.context_window:
                    _error(
                        diags,
                        "memory-over-context",
                        spec,
                        ("spec", "memory"),
                        f"memory '{agent.memory}' keeps up to {working.max_tokens} tokens but the model's "
                        f"context window is {model.context_window}",
                    )


def _check_remember(spec: TypedSpec, agent: AgentSpec, specs: SpecSet, diags: Diagnostics) -> None:
    """`remember` names tools of the agent and needs a memory with an episodic layer."""
    for index, tool in enumerate(agent.remember):
        if tool not in agent.tools:
            _error(
                diags,
                "remember-unknown-tool",
                spec,
                ("spec", "remember", index),
                f"'{tool}' is not one of the agent's tools ({', '.join(agent.tools) or 'none'})",
            )
    if not agent.remember:
        return
    memory = specs.get("Memory", agent.memory) if agent.memory is not None else None
    if agent.memory is None or (
        memory is not None and isinstance(memory.model, MemoryDocument) and memory.model.spec.episodic is None
    ):
        _error(
            diags,
            "remember-without-episodic",
            spec,
            ("spec", "remember"),
            "remembering tool results needs a memory with an episodic layer"
            + (f" ('{agent.memory}' has none)" if agent.memory is not None else " (the agent has no memory)"),
        )


def check_memory_steps(specs: SpecSet, diags: Diagnostics) -> None:
    """A memory step names a layer its memory has, and an agent where the layer is per agent."""
    for spec in specs.of_kind("Pipeline"):
        assert isinstance(spec.model, PipelineDocument)
        for index, step in enumerate(spec.model.spec.steps):
            write = step.memory
            if write is None or (memory := specs.get("Memory", write.name)) is None:
                continue
            assert isinstance(memory.model, MemoryDocument)
            layer = getattr(memory.model.spec, write.layer)
            path: Path_ = ("spec", "steps", index, "memory")
            if layer is None:
                _error(
                    diags, "memory-layer-missing", spec, (*path, "layer"),
                    f"memory '{write.name}' has no {write.layer} layer",
                )  # fmt: skip
            elif "agent" in layer.namespace_by and write.agent is None:
                _error(
                    diags, "memory-namespace-agent", spec, path,
                    f"memory '{write.name}' {write.layer} is namespaced by agent: name the agent "
                    "whose namespace this step writes (memory.agent)",
                )  # fmt: skip


def _check_script(spec: TypedSpec, model: ModelSpec, path: Path_, diags: Diagnostics) -> None:
    if model.script is None:
        return
    script = Path(spec.document.file).parent / model.script
    if not script.is_file():
        _error(
            diags,
            "script-not-found",
            spec,
            (*path, "script"),
            f"script file '{model.script}' not found (looked for {script})",
        )


def check_guardrails(specs: SpecSet, diags: Diagnostics) -> None:
    for spec in specs.of_kind("Guardrail"):
        assert isinstance(spec.model, GuardrailDocument)
        guard = spec.model.spec
        if isinstance(guard, RegexGuardrail | PromptInjectionGuardrail):
            for index, pattern in enumerate(guard.patterns):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    _error(
                        diags,
                        "regex",
                        spec,
                        ("spec", "patterns", index),
                        f"invalid regular expression: {exc}",
                    )
    for spec in specs.of_kind("Tool"):
        assert isinstance(spec.model, ToolDocument)
        for index, name in enumerate(spec.model.spec.guardrails):
            found = specs.get("Guardrail", name)
            if found is not None:
                assert isinstance(found.model, GuardrailDocument)
                if "tool_output" not in found.model.spec.applies_to:
                    _error(
                        diags,
                        "guardrail-stage",
                        spec,
                        ("spec", "guardrails", index),
                        f"guardrail '{name}' does not apply to tool_output, so it cannot guard a tool's output",
                    )


def hint_pipelines(specs: SpecSet, diags: Diagnostics) -> None:
    """Nudge toward a Pipeline when an agent's path is fixed at design time."""
    for spec in specs.of_kind("Agent"):
        assert isinstance(spec.model, AgentDocument)
        agent = spec.model.spec
        fixed_instructions = "{%" not in agent.instructions
        if len(agent.tools) == 1 and not agent.delegates and fixed_instructions:
            diags.hint(
                "consider-pipeline",
                f"agent has one tool ('{agent.tools[0]}'), no delegates and fixed instructions; "
                "consider a Pipeline (known steps, lower latency variance, full auditability)",
                spec.locate("spec", "tools"),
                spec.kind,
                spec.name,
            )
