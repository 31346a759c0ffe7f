"""Compile a validated spec set into a Plan: choose the execution mode of each unit (and say
why), resolve every reference, and work out the actors each unit needs and where they may go."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

# The structured-output models live in output_models; the runtime imports them from here.
from agent_platform._compile.output_models import build_output_model as build_output_model
from agent_platform._compile.output_models import build_output_models as build_output_models
from agent_platform._compile.plan import (
    ActorPlan,
    AgentLoopUnit,
    ExecutionMode,
    GuardrailBinding,
    McpServerBinding,
    PipelineUnit,
    Plan,
    RemoteAgentPlan,
    ResolvedModel,
    RoutePlan,
    SpecRef,
    StepPlan,
    SupervisorUnit,
    ToolBinding,
)
from agent_platform._spec.common import Placement, RuntimeSpec
from agent_platform._spec.kinds import (
    AgentDocument,
    GuardrailDocument,
    InjectionClassifierGuardrail,
    McpServerDocument,
    McpToolSelection,
    MemoryDocument,
    ModelDocument,
    ModelSpec,
    PipelineDocument,
    RemoteAgentDocument,
    SupervisorDocument,
    ToolDocument,
)
from agent_platform._spec.mcp_lock import (
    LockError,
    attached_tool_spec,
    effective_tool_spec,
    lock_path_for,
    model_tool_name,
    read_lock,
    select_tools,
)
from agent_platform._spec.policy import ContextPolicy
from agent_platform._validate.checks import output_schema_of_step
from agent_platform._validate.documents import TypedSpec
from agent_platform._validate.references import SpecSet, references


class CompileError(Exception):
    """Raised only for programming errors: compile runs on a spec set that validated clean."""


def spec_hash(spec: TypedSpec) -> str:
    """Stable content hash of a spec (used by apply to see what changed)."""
    payload = spec.model.model_dump(mode="json", by_alias=True, exclude={"metadata": {"description"}})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _actor_name(kind: str, name: str) -> str:
    return f"{kind.lower()}-{name}"


class Compiler:
    def __init__(self, specs: SpecSet) -> None:
        self.specs = specs
        self.plan = Plan()
        # unit -> supervisors that route to it (sub-agent placement follows the supervisor)
        self.routed_by: dict[SpecRef, list[SupervisorDocument]] = {}

    # --- resolution -------------------------------------------------------------------------

    def _model(self, ref: str | ModelSpec, declared_in: TypedSpec | None = None) -> ResolvedModel:
        if isinstance(ref, ModelSpec):
            base = str(Path(declared_in.document.file).parent) if declared_in is not None else "."
            return ResolvedModel("<inline>", ref, base)
        if ref not in self.plan.models:
            found = self.specs.get("Model", ref)
            if found is None:
                raise CompileError(f"unresolved Model {ref!r}")
            assert isinstance(found.model, ModelDocument)
            self.plan.models[ref] = ResolvedModel(
                ref, found.model.spec, str(Path(found.document.file).parent)
            )
        return self.plan.models[ref]

    def _tool(self, name: str) -> ToolBinding:
        if name not in self.plan.tools:
            found = self.specs.get("Tool", name)
            if found is None:
                raise CompileError(f"unresolved Tool {name!r}")
            assert isinstance(found.model, ToolDocument)
            spec = found.model.spec
            guardrails = tuple(self._guardrail(g) for g in spec.guardrails)
            server = None
            if spec.mcp is not None:
                server = self._mcp_server(spec.mcp.server)
                spec = effective_tool_spec(spec, server.pinned.get(spec.mcp.tool))
            self.plan.tools[name] = ToolBinding(name, spec, guardrails, server)
        return self.plan.tools[name]

    def _mcp_server(self, name: str) -> McpServerBinding:
        if name not in self.plan.mcp_servers:
            found = self.specs.get("McpServer", name)
            if found is None:
                raise CompileError(f"unresolved McpServer {name!r}")
            assert isinstance(found.model, McpServerDocument)
            path = lock_path_for(found.document.file)
            try:
                pinned = read_lock(path).servers.get(name)
            except LockError as exc:  # validate reports it; a plan built regardless pins nothing
                raise CompileError(str(exc)) from None
            self.plan.mcp_servers[name] = McpServerBinding(
                name,
                found.model.spec,
                str(Path(found.document.file).resolve().parent),
                str(path),
                dict(pinned.tools) if pinned is not None else {},
            )
        return self.plan.mcp_servers[name]

    def _attached_tools(self, selection: McpToolSelection) -> list[ToolBinding]:
        """The tools of an Agent's attached MCP server its allow-list selects among the pinned ones."""
        server = self._mcp_server(selection.server)
        guardrails = tuple(self._guardrail(g) for g in server.spec.guardrails)
        names, _ = select_tools(selection.tools, server.pinned)
        bindings = []
        for tool in names:
            name = model_tool_name(server.name, tool)
            if name not in self.plan.tools:
                spec = attached_tool_spec(server.spec, server.pinned[tool], server.name)
                self.plan.tools[name] = ToolBinding(name, spec, guardrails, server)
            bindings.append(self.plan.tools[name])
        return bindings

    def _guardrail(self, name: str) -> GuardrailBinding:
        found = self.specs.get("Guardrail", name)
        if found is None:
            raise CompileError(f"unresolved Guardrail {name!r}")
        assert isinstance(found.model, GuardrailDocument)
        spec = found.model.spec
        if isinstance(spec, InjectionClassifierGuardrail) and spec.model is not None:
            return GuardrailBinding(name, spec, self._model(spec.model, found))
        return GuardrailBinding(name, spec)

    # --- placement --------------------------------------------------------------------------

    def _actor(self, spec: TypedSpec, runtime: RuntimeSpec) -> ActorPlan:
        placement = runtime.placement
        reason = f"declared: {placement.strategy}"
        ref = SpecRef(spec.kind, spec.name)
        if placement.strategy == "any":
            supervisors = self.routed_by.get(ref, [])
            if supervisors:
                sup = supervisors[0]
                distribution = sup.spec.distribution
                if distribution != "any":
                    placement = Placement(
                        strategy=distribution,
                        node_labels=placement.node_labels,
                        node_resources=placement.node_resources,
                    )
                    reason = f"from Supervisor/{sup.metadata.name} distribution: {distribution}"
            else:
                reason = "any node (no placement declared)"
        if placement.node_labels or placement.node_resources:
            pins = [f"{k}={v}" for k, v in placement.node_labels.items()] + list(placement.node_resources)
            reason += f"; pinned to nodes with {', '.join(pins)}"
        return ActorPlan(
            name=_actor_name(spec.kind, spec.name),
            replicas=runtime.replicas,
            resources=runtime.resources,
            placement=placement,
            placement_reason=reason,
            max_concurrency=runtime.max_concurrency,
            max_restarts=runtime.max_restarts,
        )

    # --- units ------------------------------------------------------------------------------

    def compile(self) -> Plan:
        for spec in self.specs.of_kind("Supervisor"):
            assert isinstance(spec.model, SupervisorDocument)
            for route in spec.model.spec.routes.values():
                kind, name = route.target
                self.routed_by.setdefault(SpecRef(kind, name), []).append(spec.model)
        for spec in self.specs.specs:
            ref = SpecRef(spec.kind, spec.name)
            self.plan.graph[ref] = [SpecRef(r.resolved_kind(self.specs), r.name) for r in references(spec)]
        for spec in self.specs.of_kind("Endpoint"):
            # An endpoint depends on what it serves: a unit's new schemas change its OpenAPI.
            from agent_platform._validate.endpoints import served_units

            served = served_units(self.specs, spec)
            self.plan.graph[SpecRef(spec.kind, spec.name)] = [SpecRef(u.kind, u.name) for u in served]
        for spec in self.specs.of_kind("Agent"):
            self._agent(spec)
        for spec in self.specs.of_kind("Pipeline"):
            self._pipeline(spec)
        for spec in self.specs.of_kind("Supervisor"):
            self._supervisor(spec)
        for spec in self.specs.of_kind("Model"):
            self._model(spec.name)
        for spec in self.specs.of_kind("Tool"):
            self._tool(spec.name)
        for spec in self.specs.of_kind("McpServer"):
            self._mcp_server(spec.name)
        for spec in self.specs.of_kind("Memory"):
            assert isinstance(spec.model, MemoryDocument)
            self.plan.memories[spec.name] = spec.model.spec
        for spec in self.specs.of_kind("RemoteAgent"):
            self._remote_agent(spec.name)
        return self.plan

    def _unit_deps(self, spec: TypedSpec) -> list[SpecRef]:
        return self.plan.graph.get(SpecRef(spec.kind, spec.name), [])

    def _agent(self, spec: TypedSpec) -> None:
        assert isinstance(spec.model, AgentDocument)
        agent = spec.model.spec
        memory = None
        if agent.memory is not None:
            found = self.specs.get("Memory", agent.memory)
            assert found is not None and isinstance(found.model, MemoryDocument)
            memory = (agent.memory, found.model.spec)
        tools = [self._tool(t) for t in agent.tools] + [
            b for selection in agent.mcp for b in self._attached_tools(selection)
        ]
        choices = [f"{len(tools)} tool{'s' if len(tools) != 1 else ''}"]
        if agent.delegates:
            choices.append(f"{len(agent.delegates)} delegate{'s' if len(agent.delegates) != 1 else ''}")
        reason = (
            f"agent loop: the model chooses among {' and '.join(choices)} and final_answer at each step "
            f"(at most {agent.limits.max_iterations} iterations, {agent.limits.timeout:g}s)"
        )
        ref = SpecRef("Agent", spec.name)
        self.plan.units[ref] = AgentLoopUnit(
            ref=ref,
            mode=ExecutionMode.AGENT_LOOP,
            reason=reason,
            actor=self._actor(spec, agent.runtime),
            source=spec.locate("metadata", "name"),
            depends_on=self._unit_deps(spec),
            spec_hash=spec_hash(spec),
            model=self._model(agent.model, spec),
            instructions=agent.instructions,
            input_schema=agent.inputs,
            output_schema=agent.output,
            tools=tools,
            delegates=list(agent.delegates),
            remote_delegates=self._remote_delegates(agent.delegates),
            memory=memory,
            remember=frozenset(agent.remember),
            guardrails=[self._guardrail(g) for g in agent.guardrails],
            limits=agent.limits,
            untrusted_context=ContextPolicy.resolve(str(ref), agent.untrusted_context),
        )

    def _remote_agent(self, name: str) -> RemoteAgentPlan | None:
        remote = self.specs.get("RemoteAgent", name)
        if remote is None or not isinstance(remote.model, RemoteAgentDocument):
            return None
        plan = RemoteAgentPlan(name, remote.model.spec, remote.model.metadata.description)
        self.plan.remote_agents[name] = plan
        return plan

    def _remote_delegates(self, delegates: list[str]) -> dict[str, RemoteAgentPlan]:
        """The delegates no Agent defines that are RemoteAgents (an Agent's name wins)."""
        found = {}
        for name in delegates:
            remote = self._remote_agent(name) if self.specs.get("Agent", name) is None else None
            if remote is not None:
                found[name] = remote
        return found

    def _pipeline(self, spec: TypedSpec) -> None:
        assert isinstance(spec.model, PipelineDocument)
        pipeline = spec.model.spec
        steps: list[StepPlan] = []
        for step in pipeline.steps:
            kind = step.target_kind
            steps.append(
                StepPlan(
                    name=step.name,
                    target_kind=kind,
                    target=(
                        self._model(step.llm.model, spec).ref
                        if step.llm is not None
                        else step.memory.name
                        if step.memory is not None
                        else str(getattr(step, kind))
                    ),
                    input=step.input,
                    map=step.map,
                    output_schema=output_schema_of_step(self.specs, step),
                    timeout=step.timeout,
                    tool=self._tool(step.tool) if step.tool is not None else None,
                    model=self._model(step.llm.model, spec) if step.llm is not None else None,
                    prompt=step.llm.prompt if step.llm is not None else None,
                    system=step.llm.system if step.llm is not None else None,
                    memory=step.memory,
                )
            )
        kinds = Counter(s.target_kind for s in steps)
        parts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        fan_out = [s.name for s in steps if s.map is not None]
        reason = f"deterministic pipeline: {len(steps)} steps fixed at design time ({parts})"
        if fan_out:
            reason += f"; map fan-out in {', '.join(fan_out)}"
        ref = SpecRef("Pipeline", spec.name)
        self.plan.units[ref] = PipelineUnit(
            ref=ref,
            mode=ExecutionMode.PIPELINE,
            reason=reason,
            actor=self._actor(spec, pipeline.runtime),
            source=spec.locate("metadata", "name"),
            depends_on=self._unit_deps(spec),
            spec_hash=spec_hash(spec),
            input_schema=pipeline.inputs,
            output_schema=pipeline.output,
            steps=steps,
            returns=pipeline.returns,
            timeout=pipeline.timeout,
            guardrails=[self._guardrail(g) for g in pipeline.guardrails],
            untrusted_context=ContextPolicy.resolve(str(ref), pipeline.untrusted_context),
        )

    def _supervisor(self, spec: TypedSpec) -> None:
        assert isinstance(spec.model, SupervisorDocument)
        sup = spec.model.spec
        routes = [
            RoutePlan(task_type, SpecRef(*route.target), route.priority_boost, route.timeout)
            for task_type, route in sup.routes.items()
        ]
        reason = (
            f"supervisor: routes {len(routes)} task type{'s' if len(routes) != 1 else ''} by type; "
            f"a priority queue feeds {sup.concurrency} concurrent workers; on_error: {sup.on_error}"
        )
        ref = SpecRef("Supervisor", spec.name)
        self.plan.units[ref] = SupervisorUnit(
            ref=ref,
            mode=ExecutionMode.SUPERVISOR,
            reason=reason,
            actor=self._actor(spec, sup.runtime),
            source=spec.locate("metadata", "name"),
            depends_on=self._unit_deps(spec),
            spec_hash=spec_hash(spec),
            routes=routes,
            concurrency=sup.concurrency,
            on_error=sup.on_error,
            default_priority=sup.default_priority,
            max_queue=sup.max_queue,
            task_timeout=sup.task_timeout,
            distribution=sup.distribution,
        )


def compile_specs(specs: SpecSet) -> Plan:
    """Compile a spec set that validated without errors."""
    return Compiler(specs).compile()
