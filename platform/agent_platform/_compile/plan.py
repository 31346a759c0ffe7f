"""The Plan: what the compiler hands to deploy and run. Executable units with resolved
references, templates, output schemas and placement. Nothing here imports Ray or an LLM SDK."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent_platform._diagnostics import SourceLocation
from agent_platform._spec.common import Limits, Placement, Resources
from agent_platform._spec.kinds import (
    GuardrailSpec,
    MapSpec,
    McpServerSpec,
    MemorySpec,
    MemoryWrite,
    ModelSpec,
    RemoteAgentSpec,
    ToolSpec,
)
from agent_platform._spec.mcp_lock import PinnedTool
from agent_platform._spec.policy import ContextPolicy, ToolPolicy


class ExecutionMode(StrEnum):
    PIPELINE = "pipeline"
    AGENT_LOOP = "agent_loop"
    SUPERVISOR = "supervisor"


@dataclass(frozen=True, slots=True)
class SpecRef:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class ActorPlan:
    """The Ray actors a unit needs; the Ray backend turns this into actor options."""

    name: str
    replicas: int
    resources: Resources
    placement: Placement
    placement_reason: str
    max_concurrency: int
    max_restarts: int


@dataclass(frozen=True)
class ResolvedModel:
    ref: str  # the Model's name, or "<inline>"
    spec: ModelSpec
    base_dir: str = "."  # directory of the spec file that declares it (scripts are relative to it)

    @property
    def is_scripted(self) -> bool:
        return self.spec.provider == "scripted"

    def describe(self) -> str:
        if self.is_scripted:
            return f"{self.ref} (scripted: deterministic test/offline provider)"
        return f"{self.ref} ({self.spec.provider}:{self.spec.name})"


@dataclass(frozen=True)
class McpServerBinding:
    """An McpServer spec and the tools its lock pins (see `_spec/mcp_lock.py`)."""

    name: str
    spec: McpServerSpec
    base_dir: str  # directory of the spec file: a stdio server's working directory is relative to it
    lock_path: str
    pinned: dict[str, PinnedTool] = field(compare=False)


@dataclass(frozen=True)
class ToolBinding:
    name: str
    spec: ToolSpec
    # The Guardrails its spec lists (applied to its output wherever it is called), resolved.
    guardrails: tuple[GuardrailBinding, ...] = ()
    # The server of an `mcp:` tool (its spec's or an Agent's attached one); `spec.mcp.tool` names it there.
    mcp_server: McpServerBinding | None = field(default=None, compare=False)
    # Approval, trust, egress and output caps as the runtime applies them (derived from `spec`).
    policy: ToolPolicy = field(init=False, compare=False)

    def __post_init__(self) -> None:
        server = self.mcp_server
        url = server.spec.http.url if server is not None and server.spec.http is not None else None
        object.__setattr__(self, "policy", ToolPolicy.of(self.spec, mcp_url=url))

    @property
    def mcp_tool(self) -> PinnedTool | None:
        """The pinned tool an `mcp:` binding calls (None when the lock does not pin it)."""
        if self.mcp_server is None or self.spec.mcp is None:
            return None
        return self.mcp_server.pinned.get(self.spec.mcp.tool)

    @property
    def isolated(self) -> bool:
        return self.spec.isolation.mode == "task"


@dataclass(frozen=True)
class GuardrailBinding:
    name: str
    spec: GuardrailSpec
    # The classifying Model of an `injection_classifier` guardrail, resolved like an agent's.
    model: ResolvedModel | None = None


@dataclass
class Unit:
    ref: SpecRef
    mode: ExecutionMode
    reason: str
    actor: ActorPlan
    source: SourceLocation
    depends_on: list[SpecRef] = field(default_factory=list)
    spec_hash: str = ""

    @property
    def name(self) -> str:
        return self.ref.name


@dataclass(frozen=True)
class RemoteAgentPlan:
    """A RemoteAgent spec as a delegate calls it (_runtime/remote_agent.py)."""

    name: str
    spec: RemoteAgentSpec
    description: str = ""

    @property
    def label(self) -> str:
        """How approvals, privileges and messages name it (no tool name holds a '/')."""
        return f"RemoteAgent/{self.name}"

    @functools.cached_property
    def policy(self) -> ToolPolicy:
        """Sending it a task as the tool executor judges a call (`ToolPolicy.of_remote_agent`)."""
        return ToolPolicy.of_remote_agent(self.spec)


@dataclass
class AgentLoopUnit(Unit):
    model: ResolvedModel | None = None
    instructions: str = ""
    input_schema: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    tools: list[ToolBinding] = field(default_factory=list)
    delegates: list[str] = field(default_factory=list)
    # The delegates that are RemoteAgents (called over A2A, not run by the platform), by name.
    remote_delegates: dict[str, RemoteAgentPlan] = field(default_factory=dict)
    memory: tuple[str, MemorySpec] | None = None
    remember: frozenset[str] = frozenset()  # tools whose results go to episodic memory
    guardrails: list[GuardrailBinding] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    # What a run may do once untrusted content is in its context (None: nothing restricts it,
    # for units built by hand in tests; the compiler always sets it).
    untrusted_context: ContextPolicy | None = None


@dataclass(frozen=True)
class StepPlan:
    name: str
    target_kind: str  # tool | agent | pipeline | llm | memory
    target: str  # the referenced name, or the model's ref for llm steps
    input: dict[str, Any]
    map: MapSpec | None
    output_schema: dict[str, Any] | None
    timeout: float | None
    tool: ToolBinding | None = None
    model: ResolvedModel | None = None
    prompt: str | None = None
    system: str | None = None
    memory: MemoryWrite | None = None


@dataclass
class PipelineUnit(Unit):
    input_schema: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    steps: list[StepPlan] = field(default_factory=list)
    returns: Any = None
    timeout: float = 600.0
    guardrails: list[GuardrailBinding] = field(default_factory=list)
    untrusted_context: ContextPolicy | None = None


@dataclass(frozen=True)
class RoutePlan:
    task_type: str
    target: SpecRef
    priority_boost: int
    timeout: float | None


@dataclass
class SupervisorUnit(Unit):
    routes: list[RoutePlan] = field(default_factory=list)
    concurrency: int = 4
    on_error: str = "collect"
    default_priority: int = 0
    max_queue: int = 10_000
    task_timeout: float | None = None
    distribution: str = "spread"


AnyUnit = AgentLoopUnit | PipelineUnit | SupervisorUnit


@dataclass
class Plan:
    units: dict[SpecRef, AnyUnit] = field(default_factory=dict)
    tools: dict[str, ToolBinding] = field(default_factory=dict)
    models: dict[str, ResolvedModel] = field(default_factory=dict)
    memories: dict[str, MemorySpec] = field(default_factory=dict)
    mcp_servers: dict[str, McpServerBinding] = field(default_factory=dict)
    remote_agents: dict[str, RemoteAgentPlan] = field(default_factory=dict)
    # Every spec's dependencies (including non-unit kinds), for `plan` and for deploy order.
    graph: dict[SpecRef, list[SpecRef]] = field(default_factory=dict)

    def deploy_order(self) -> list[AnyUnit]:
        """Units with their dependencies first (the graph is acyclic after validation)."""
        order: list[AnyUnit] = []
        done: set[SpecRef] = set()

        def visit(ref: SpecRef, trail: tuple[SpecRef, ...]) -> None:
            if ref in done or ref in trail:
                return
            for dep in self.graph.get(ref, []):
                visit(dep, (*trail, ref))
            done.add(ref)
            if ref in self.units:
                order.append(self.units[ref])

        for ref in sorted(self.units, key=str):
            visit(ref, ())
        return order

    def unit(self, kind: str, name: str) -> AnyUnit | None:
        return self.units.get(SpecRef(kind, name))

    def find(self, name: str) -> list[AnyUnit]:
        """The units with this bare name (an Agent and a Pipeline may share one)."""
        return [u for ref, u in self.units.items() if ref.name == name]
