"""Semantic checks over the resolved spec set: templates in their scope, JSON Schemas, producer /
consumer agreement in pipelines, plugin references, and design hints."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent_platform._diagnostics import Diagnostics, did_you_mean
from agent_platform._load import file_exists
from agent_platform._regexes import InvalidRegex, compile_regex
from agent_platform._spec.kinds import (
    MEMORY_WRITE_INPUT_SCHEMA,
    MEMORY_WRITE_OUTPUT_SCHEMA,
    AgentDocument,
    AgentSpec,
    GuardrailDocument,
    InjectionClassifierGuardrail,
    MemoryDocument,
    ModelDocument,
    ModelSpec,
    OutputSchemaGuardrail,
    PipelineDocument,
    PipelineSpec,
    PromptInjectionGuardrail,
    PythonGuardrail,
    RegexGuardrail,
    RemoteAgentDocument,
    ToolDocument,
)
from agent_platform._validate.documents import CheckedSpec, TypedSpec
from agent_platform._validate.jsonschemas import (
    check_schema,
    check_structured_output,
    incompatibilities,
    property_schema,
    required_of,
)
from agent_platform._validate.plugins import PluginResolver
from agent_platform._validate.references import SpecSet
from agent_platform._validate.templates import (
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


def _error(diags: Diagnostics, code: str, spec: CheckedSpec, path: Path_, message: str) -> None:
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


def _check_templates_at(diags: Diagnostics, spec: CheckedSpec, path: Path_, value: Any, scope: Scope) -> None:
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


def _schema_field(specs: SpecSet, kind: str, name: str, field: str) -> dict[str, Any] | None:
    """A schema field of the spec `kind/name`. A partial spec counts when that field is valid: a
    target broken elsewhere still types the steps that use it, so their checks are not lost."""
    target = specs.lookup(kind, name)
    if target is None or not target.has(field):
        return None
    return getattr(target.model.spec, field)  # type: ignore[no-any-return]


def _target_output_schema(specs: SpecSet, step: Any) -> dict[str, Any] | None:
    if step.tool is not None:
        return _schema_field(specs, "Tool", step.tool, "output_schema")
    if step.agent is not None:
        return _schema_field(specs, "Agent", step.agent, "output")
    if step.pipeline is not None:
        return _schema_field(specs, "Pipeline", step.pipeline, "output")
    if step.memory is not None:
        return MEMORY_WRITE_OUTPUT_SCHEMA
    return None


def input_schema_of_step(specs: SpecSet, step: Any) -> dict[str, Any] | None:
    """The schema the step's target accepts as input."""
    if step.tool is not None:
        return _schema_field(specs, "Tool", step.tool, "input_schema")
    if step.agent is not None:
        return _schema_field(specs, "Agent", step.agent, "inputs")
    if step.pipeline is not None:
        return _schema_field(specs, "Pipeline", step.pipeline, "inputs")
    if step.memory is not None:
        return MEMORY_WRITE_INPUT_SCHEMA
    return None


def _inputs_binding(spec: CheckedSpec) -> Binding:
    """`inputs` as the spec's inputs schema declares it; unchecked when that schema is itself broken
    (its errors are reported: guessing would add false ones)."""
    assert isinstance(spec.model, AgentDocument | PipelineDocument)
    return _inputs_var(spec.model.spec.inputs) if spec.has("inputs") else OpaqueVar()


def check_agent_templates(specs: SpecSet, diags: Diagnostics) -> None:
    for spec in specs.checked("Agent"):
        assert isinstance(spec.model, AgentDocument)
        if not spec.has("instructions"):
            continue
        scope = Scope(
            {
                "inputs": _inputs_binding(spec),
                "agent": OpaqueVar(),
                "tools": OpaqueVar(),
                "delegates": OpaqueVar(),
            },
            "agent instructions",
        )
        _check_templates_at(diags, spec, ("spec", "instructions"), spec.model.spec.instructions, scope)


def check_tool_templates(specs: SpecSet, diags: Diagnostics) -> None:
    for spec in specs.checked("Tool"):
        assert isinstance(spec.model, ToolDocument)
        tool = spec.model.spec
        args: Binding = (
            SchemaVar(tool.input_schema, "the tool's input_schema")
            if spec.has("input_schema")
            else OpaqueVar()
        )
        if spec.has("http") and tool.http is not None:
            scope = Scope({"args": args, "env": OpaqueVar()}, "an http tool template")
            for field_name in ("url", "headers", "query", "body"):
                value = getattr(tool.http, field_name)
                _check_templates_at(diags, spec, ("spec", "http", field_name), value, scope)
        if spec.has("idempotency") and tool.idempotency.key is not None:
            scope = Scope({"args": args, "run": OpaqueVar(), "tool": OpaqueVar()}, "an idempotency key")
            _check_templates_at(diags, spec, ("spec", "idempotency", "key"), tool.idempotency.key, scope)


# The arguments schema a tool function's signature gives, by `module:function` (None when unknown).
SignatureSchemas = Callable[[str], dict[str, Any] | None]


def _no_signatures(ref: str) -> dict[str, Any] | None:
    return None


def check_pipeline(
    specs: SpecSet, spec: CheckedSpec, diags: Diagnostics, signatures: SignatureSchemas = _no_signatures
) -> None:
    """`signatures` types the steps of tools that declare no input_schema (`--import-plugins`)."""
    assert isinstance(spec.model, PipelineDocument)
    pipeline: PipelineSpec = spec.model.spec
    inputs = _inputs_binding(spec)
    steps: Binding = (
        _check_steps(specs, spec, pipeline, inputs, diags, signatures) if spec.has("steps") else OpaqueVar()
    )
    if spec.has("returns") and pipeline.returns is not None:
        scope = Scope({"inputs": inputs, "steps": steps, "pipeline": OpaqueVar()}, "the pipeline's returns")
        _check_templates_at(diags, spec, ("spec", "returns"), pipeline.returns, scope)


def _check_steps(
    specs: SpecSet,
    spec: CheckedSpec,
    pipeline: PipelineSpec,
    inputs: Binding,
    diags: Diagnostics,
    signatures: SignatureSchemas,
) -> StepsVar:
    """Check the steps in order; -> what `returns` sees of them."""
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
        _check_step_agreement(specs, spec, index, scope, diags, signatures)
        earlier[step.name] = output_schema_of_step(specs, step)
    return StepsVar(dict(earlier), frozenset())


def _signature_schema(
    specs: SpecSet, tool: str, signatures: SignatureSchemas
) -> tuple[dict[str, Any] | None, str | None]:
    """(the arguments schema of the tool's function, its `module:function`), where known."""
    target = specs.lookup("Tool", tool)
    if target is None or not target.has("python") or not isinstance(target.model, ToolDocument):
        return None, None
    ref = target.model.spec.python
    return (signatures(ref), ref) if ref is not None else (None, None)


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


def _map_item(diags: Diagnostics, spec: CheckedSpec, base: Path_, over: str, scope: Scope) -> Binding:
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
    specs: SpecSet,
    spec: CheckedSpec,
    index: int,
    scope: Scope,
    diags: Diagnostics,
    signatures: SignatureSchemas,
) -> None:
    """A step must provide its target's required inputs, and where an input value is exactly a
    variable whose schema is declared (an earlier step's output, an input, the map item), that
    schema must fit what the target accepts. A tool that declares no input_schema accepts what its
    function's signature does, when that is known."""
    assert isinstance(spec.model, PipelineDocument)
    step = spec.model.spec.steps[index]
    consumer = input_schema_of_step(specs, step)
    function = None
    if consumer is None and step.tool is not None:
        consumer, function = _signature_schema(specs, step.tool, signatures)
    if consumer is None or step.llm is not None:
        return
    base: Path_ = ("spec", "steps", index)
    target = f"{step.target_kind} '{getattr(step, step.target_kind)}'"
    props = consumer.get("properties")
    if not isinstance(props, dict):
        return
    if function is not None:
        accepted = f"its function '{function}' takes {', '.join(props) or 'no arguments'}"
    else:
        accepted = f"accepted: {', '.join(props)}"
    for required in required_of(consumer):
        if required not in step.input:
            diags.error(
                "step-input-missing",
                f"step '{step.name}' does not provide '{required}', required by {target}"
                + (f" ({accepted})" if function is not None else ""),
                spec.key_location(*base, "input") if step.input else spec.locate(*base),
                spec.kind,
                spec.name,
            )
    if consumer.get("additionalProperties") is False:
        for key in step.input:
            if key not in props:
                diags.error(
                    "step-input-unknown",
                    f"step '{step.name}': '{key}' is not an input of {target}{did_you_mean(key, props)} "
                    f"({accepted})",
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


def _schemas_of(spec: CheckedSpec, delegates: set[str]) -> Iterator[tuple[Path_, dict[str, Any], bool]]:
    """(path, schema, used for structured output) for every JSON Schema in a spec's valid fields.
    A delegate's inputs schema is structured output too: the calling model writes its task."""
    model = spec.model
    has = spec.has
    if isinstance(model, AgentDocument):
        if has("inputs"):
            yield ("spec", "inputs"), model.spec.inputs, spec.name in delegates
        if has("output") and model.spec.output is not None:
            yield ("spec", "output"), model.spec.output, True
    elif isinstance(model, ToolDocument):
        if has("input_schema") and model.spec.input_schema is not None:
            yield ("spec", "input_schema"), model.spec.input_schema, True
        if has("output_schema") and model.spec.output_schema is not None:
            yield ("spec", "output_schema"), model.spec.output_schema, False
    elif isinstance(model, PipelineDocument):
        if has("inputs"):
            yield ("spec", "inputs"), model.spec.inputs, False
        if has("output") and model.spec.output is not None:
            yield ("spec", "output"), model.spec.output, False
        if has("steps"):
            for index, step in enumerate(model.spec.steps):
                if step.output is not None:
                    yield ("spec", "steps", index, "output"), step.output, step.llm is not None
    elif isinstance(model, RemoteAgentDocument):
        if has("inputs"):  # the calling model writes its task: structured output
            yield ("spec", "inputs"), model.spec.inputs, spec.name in delegates
        if has("output") and model.spec.output is not None:
            yield ("spec", "output"), model.spec.output, False
    elif isinstance(model, GuardrailDocument) and isinstance(model.spec, OutputSchemaGuardrail):
        if has("json_schema"):
            yield ("spec", "schema"), model.spec.json_schema, False


def check_schemas(specs: SpecSet, diags: Diagnostics) -> None:
    delegates = {
        name
        for agent in specs.checked("Agent")
        if agent.has("delegates") and isinstance(agent.model, AgentDocument)
        for name in agent.model.spec.delegates
    }
    for spec in specs.checked():
        for path, schema, structured in _schemas_of(spec, delegates):
            problems = check_schema(schema)
            if not problems and structured:
                problems = check_structured_output(schema)
            for problem in problems:
                where = (*path, *problem.path)
                location = spec.key_location(*where) if problem.at_key else spec.locate(*where)
                diags.error("json-schema", problem.message, location, spec.kind, spec.name)


# --- plugins, models, guardrails, hints -------------------------------------------------------


def _python_refs(spec: CheckedSpec) -> Iterator[tuple[Path_, str, str]]:
    """(path, reference, what it must be: tool | exception | callable) in a spec's valid fields."""
    model = spec.model
    if isinstance(model, ToolDocument):
        if spec.has("python") and model.spec.python is not None:
            yield ("spec", "python"), model.spec.python, "tool"
        if spec.has("retry") and model.spec.retry is not None:
            for index, entry in enumerate(model.spec.retry.retry_on):
                if ":" in entry:
                    yield ("spec", "retry", "retry_on", index), entry, "exception"
    elif isinstance(model, GuardrailDocument) and isinstance(model.spec, PythonGuardrail):
        if spec.has("function"):
            yield ("spec", "function"), model.spec.function, "callable"
    elif isinstance(model, GuardrailDocument) and isinstance(model.spec, InjectionClassifierGuardrail):
        if spec.has("function") and model.spec.function is not None:
            yield ("spec", "function"), model.spec.function, "callable"


def check_plugins(
    specs: SpecSet,
    resolver: PluginResolver,
    diags: Diagnostics,
    *,
    provided_tools: frozenset[str] = frozenset(),
) -> None:
    for spec in specs.checked():
        if spec.kind == "Tool" and spec.name in provided_tools:
            continue  # implemented in code by the caller
        for path, ref, expect in _python_refs(spec):
            schema = None
            if expect == "tool" and isinstance(spec.model, ToolDocument) and spec.has("input_schema"):
                schema = spec.model.spec.input_schema
            problem = resolver.check(ref, schema, expect=expect)
            if problem is not None:
                _error(diags, "python-ref", spec, path, problem)


def _check_fallback(spec: TypedSpec, specs: SpecSet, diags: Diagnostics) -> None:
    from agent_platform._diagnostics import did_you_mean

    assert isinstance(spec.model, ModelDocument)
    models = {s.name for s in specs.of_kind("Model")}
    for index, name in enumerate(spec.model.spec.fallback):
        path = ("spec", "fallback", index)
        if name == spec.name:
            _error(diags, "model-fallback", spec, path, "a Model cannot fall back to itself")
        elif name not in models:
            hint = did_you_mean(name, sorted(models - {spec.name}))
            _error(diags, "model-fallback", spec, path, f"unknown Model '{name}'{hint}")
    # A cycle would pass a failing call around for ever: follow each chain once.
    seen, chain = {spec.name}, list(spec.model.spec.fallback)
    while chain:
        name = chain.pop(0)
        if name == spec.name and name in seen and len(seen) > 1:
            _error(
                diags, "model-fallback", spec, ("spec", "fallback"), "the fallbacks lead back to this Model"
            )
            return
        found = specs.get("Model", name)
        if name in seen or found is None:
            continue
        seen.add(name)
        assert isinstance(found.model, ModelDocument)
        chain.extend(found.model.spec.fallback)


def _model_of(specs: SpecSet, ref: str | ModelSpec) -> ModelSpec | None:
    if isinstance(ref, ModelSpec):
        return ref
    found = specs.get("Model", ref)
    if found is None:
        return None
    assert isinstance(found.model, ModelDocument)
    return found.model.spec


def check_models(specs: SpecSet, diags: Diagnostics) -> None:
    """Scripts exist; fallbacks name other Models, without a cycle; cost budgets have prices to
    compute cost from."""
    for spec in specs.of_kind("Model"):
        assert isinstance(spec.model, ModelDocument)
        _check_script(spec, spec.model.spec, ("spec",), diags)
        _check_fallback(spec, specs, diags)
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
    if not file_exists(script):
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
            # The flags each guardrail compiles its patterns with at run time.
            flags = re.MULTILINE | re.IGNORECASE if isinstance(guard, PromptInjectionGuardrail) else 0
            for index, pattern in enumerate(guard.patterns):
                try:
                    compile_regex(pattern, flags)
                except InvalidRegex as exc:
                    _error(
                        diags,
                        "regex",
                        spec,
                        ("spec", "patterns", index),
                        f"invalid regular expression: {exc}",
                    )
        if isinstance(guard, InjectionClassifierGuardrail) and guard.model is not None:
            _check_classifier_model(spec, guard, diags)
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


def _check_classifier_model(spec: TypedSpec, guard: InjectionClassifierGuardrail, diags: Diagnostics) -> None:
    """An injection classifier's inline scripted Model has its script (a named Model is checked
    as a Model, and a dangling name as a reference)."""
    if isinstance(guard.model, ModelSpec):
        _check_script(spec, guard.model, ("spec", "model"), diags)


def check_untrusted_context(specs: SpecSet, diags: Diagnostics) -> None:
    """Approval is the default for side effects: say so wherever a spec turns it off, and point
    at http tools a tainted run will have to ask before calling."""
    from agent_platform._spec.policy import ContextPolicy, ToolPolicy

    for spec in specs.of_kind("Tool"):
        assert isinstance(spec.model, ToolDocument)
        tool = spec.model.spec
        if tool.side_effects and tool.requires_approval is False:
            diags.warning(
                "approval-opt-out",
                "tool has side effects and opts out of approval (requires_approval: false): a model "
                "may call it without a person's approval until untrusted content is in its run's "
                "context (then the agent's untrusted_context policy applies)",
                spec.locate("spec", "requires_approval"),
                spec.kind,
                spec.name,
            )
    for spec in [*specs.of_kind("Agent"), *specs.of_kind("Pipeline")]:
        assert isinstance(spec.model, AgentDocument | PipelineDocument)
        unit = spec.model.spec
        if isinstance(unit, AgentSpec):
            check_remote_egress(specs, spec, unit, diags)
        if unit.untrusted_context.side_effects == "allow":
            diags.warning(
                "untrusted-side-effects",
                "untrusted_context.side_effects: allow lets a model that read untrusted content call "
                "tools with side effects that do not require approval themselves, and send requests "
                "to any host (also through delegates): injected instructions can then act on the world",
                spec.locate("spec", "untrusted_context", "side_effects"),
                spec.kind,
                spec.name,
            )
            continue
        tools = unit.tools if isinstance(unit, AgentSpec) else [s.tool for s in unit.steps if s.tool]
        policy = ContextPolicy.resolve(f"{spec.kind}/{spec.name}", unit.untrusted_context)
        for name in tools:
            found = specs.get("Tool", name)
            if found is None or not isinstance(found.model, ToolDocument):
                continue
            tool_policy = ToolPolicy.of(found.model.spec)
            unlisted = policy.refused_egress(tool_policy.endpoints) if tool_policy.egress else None
            if unlisted is not None:
                host = unlisted[1] or "a host chosen at call time"
                then = "needs approval" if policy.side_effects.value == "require_approval" else "is refused"
                diags.hint(
                    "unlisted-egress",
                    f"tool '{name}' reaches {host}, which untrusted_context.egress does not list: once "
                    "untrusted content is in a run's context (the output of an http tool is untrusted "
                    f"unless it says otherwise), each call {then}; list the host if it may receive what "
                    "the run has read",
                    spec.locate("spec", "tools" if isinstance(unit, AgentSpec) else "steps"),
                    spec.kind,
                    spec.name,
                )


def check_remote_egress(specs: SpecSet, spec: TypedSpec, agent: AgentSpec, diags: Diagnostics) -> None:
    """A task sent to a RemoteAgent leaves the platform with whatever the run put in it: an agent
    may delegate to one only on hosts its `untrusted_context.egress` lists (its url's, and its
    card url's), whatever its `side_effects` rule. Unlike an http tool's host (a hint: such a
    request is only asked about once the run is tainted), an unlisted one is an error, because
    the egress list is the one place a reviewer sees where an agent's tasks may go."""
    from agent_platform._spec.policy import ContextPolicy, remote_agent_endpoints

    policy = ContextPolicy.resolve(f"{spec.kind}/{spec.name}", agent.untrusted_context)
    for index, name in enumerate(agent.delegates):
        if specs.get("Agent", name) is not None:  # an Agent of that name wins over a RemoteAgent
            continue
        found = specs.get("RemoteAgent", name)
        if found is None or not isinstance(found.model, RemoteAgentDocument):
            continue
        unlisted = policy.refused_egress(remote_agent_endpoints(found.model.spec))
        if unlisted is None:
            continue
        endpoint = unlisted[1]
        host = "its url's host" if endpoint is None else endpoint
        fix = "" if endpoint is None else f" (add '{endpoint.rsplit(':', 1)[0]}' or '{endpoint}')"
        _error(
            diags,
            "remote-egress",
            spec,
            ("spec", "delegates", index),
            f"delegate '{name}' is a RemoteAgent at {host}, which untrusted_context.egress does not "
            f"list{fix}: a task sent to a remote agent leaves the platform, so the agent may delegate "
            "to it only on a listed host",
        )


def hint_pipelines(specs: SpecSet, diags: Diagnostics) -> None:
    """Nudge toward a Pipeline when an agent's path is fixed at design time."""
    for spec in specs.of_kind("Agent"):
        assert isinstance(spec.model, AgentDocument)
        agent = spec.model.spec
        fixed_instructions = "{%" not in agent.instructions
        if len(agent.tools) == 1 and not agent.mcp and not agent.delegates and fixed_instructions:
            diags.hint(
                "consider-pipeline",
                f"agent has one tool ('{agent.tools[0]}'), no delegates and fixed instructions; "
                "consider a Pipeline (known steps, lower latency variance, full auditability)",
                spec.locate("spec", "tools"),
                spec.kind,
                spec.name,
            )
