"""What an executor (pipeline, agent loop, supervisor) needs from the runtime around it.

Executors depend on this small protocol, not on the concrete tool executor, providers or Ray: the
in-process Runtime implements it, and so will a Ray actor (where `run_unit` becomes a call to
another actor). Run state is explicit and per run: nothing is kept between runs."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from agent_platform._compile.plan import RemoteAgentPlan, ResolvedModel, SpecRef
from agent_platform._runtime.messages import Message
from agent_platform._runtime.models.base import ModelProvider, ModelResult, Usage
from agent_platform._runtime.outcomes import RunResult
from agent_platform._runtime.provenance import TaintState
from agent_platform._runtime.tracing import Tracing
from agent_platform._spec.kinds import ModelSpec
from agent_platform._spec.policy import ContextPolicy

if TYPE_CHECKING:
    from agent_platform._memory.manager import MemoryManager
    from agent_platform._runtime.checkpoint import AgentCheckpoint
    from agent_platform._runtime.events import EventSink


_IDS = random.Random()


def new_run_id() -> str:
    """`run-` and 16 random hex digits (unique, not secret: see `new_call_id`)."""
    return f"run-{_IDS.getrandbits(64):016x}"


@dataclass
class RunState:
    """Accounting of one run (shared with the sub-runs it starts, which add to its budget)."""

    run_id: str
    unit: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    tool_calls: int = 0
    iterations: int = 0
    sub_runs: int = 0
    parent: RunState | None = None
    # Whose data the run works on: the namespace of its long-term memory (sub-runs inherit it).
    # Set by the caller that authenticated the request, never by the model.
    tenant: str | None = None
    # The untrusted sources in the run's context; a sub-run starts with a copy of its caller's.
    taint: TaintState = field(default_factory=TaintState)
    # What the run may do once tainted: its unit's policy tightened by every caller's (set by
    # the runtime when the run starts; a sub-run inherits it, so delegation never widens it).
    policy: ContextPolicy | None = None
    # What people decided about calls of this run's tree: call key (`ApprovalRequest.key`) ->
    # approved. Loaded when a paused run resumes; shared with its sub-runs.
    approvals: dict[str, bool] = field(default_factory=dict)
    # The checkpoint an agent run continues from (a resumed run; None: it starts afresh).
    resume_from: AgentCheckpoint | None = None
    # Objects that live exactly as long as this run (e.g. its forked scripted providers).
    resources: dict[Any, Any] = field(default_factory=dict)
    # Where the run's events go (`_runtime/events.py`): set where a run store records the run,
    # shared with its in-process sub-runs; None (the usual in-process run) emits nothing.
    events: EventSink | None = None

    def add_model_result(self, result: ModelResult[Any]) -> None:
        self.usage = self.usage + result.usage
        self.cost_usd += result.cost_usd

    def add_failed_call(self, usage: Usage, cost_usd: float) -> None:
        """What a model call that ended in an error still cost: the server counted (and bills) the
        tokens of every request it answered, re-asks included, so budgets count them too."""
        self.usage = self.usage + usage
        self.cost_usd += cost_usd

    def add_sub_run(self, result: RunResult) -> None:
        self.usage = self.usage + result.usage
        self.cost_usd += result.cost_usd
        self.tool_calls += result.tool_calls


@dataclass
class ToolOutcome:
    output: Any
    is_error: bool = False
    error: str | None = None
    cached: bool = False
    attempts: int = 1
    error_type: str | None = None  # the ToolError's class of a call that failed


class Services(Protocol):
    @property
    def tracing(self) -> Tracing: ...

    def resolve_model(self, ref: str | ModelSpec) -> ResolvedModel:
        """A Model by name, or an inline one."""
        ...

    def provider(self, model: ResolvedModel, *, run: RunState | None = None) -> ModelProvider:
        """The provider serving `model` (for components that call it directly, e.g. compaction)."""
        ...

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, run: RunState, allowed: frozenset[str] | None = None
    ) -> ToolOutcome:
        """Run a tool under `run`'s taint and policy. Errors come back as ToolOutcome(is_error=True):
        the agent loop shows them to the model, a pipeline fails its step. Raises
        `ApprovalRequired` when the call needs a person and none can be asked."""
        ...

    def tool_arguments_model(self, name: str) -> type[BaseModel]:
        """The pydantic model a tool's arguments must satisfy."""
        ...

    def unit_inputs_model(self, ref: SpecRef) -> type[BaseModel] | None:
        """The pydantic model of an agent's or pipeline's inputs (for delegation payloads)."""
        ...

    async def run_unit(self, ref: SpecRef, inputs: dict[str, Any], *, parent: RunState) -> RunResult:
        """Run an agent or pipeline as a sub-run (a delegate, a pipeline step)."""
        ...

    async def call_remote_agent(
        self, remote: RemoteAgentPlan, task: dict[str, Any], *, run: RunState
    ) -> RunResult:
        """Send `task` to a remote agent over A2A as a sub-run of `run`, once `run`'s taint and
        policy allow it as they would a tool call with side effects and egress. A refused or
        denied task is a failed result (nothing was sent); raises `ApprovalRequired` when the
        task needs a person and none can be asked."""
        ...

    def memory(self, name: str) -> MemoryManager:
        """The long-term layers of the Memory spec `name` (episodic, knowledge)."""
        ...

    async def checkpoint(
        self, state: RunState, snapshot: Callable[[], AgentCheckpoint], *, waiting: bool = False
    ) -> None:
        """Persist an agent run's state after a step (called only when `checkpoints_enabled`);
        `waiting`: the run is pausing on a call that needs approval, and this is the state it
        resumes from (its last message is the decision that made the call)."""
        ...

    async def complete(
        self,
        model: ResolvedModel,
        *,
        system: str,
        messages: list[Message],
        response_model: type[BaseModel],
        key: str,
        run: RunState,
    ) -> ModelResult[BaseModel]:
        """One structured model call (accounted to `run`)."""
        ...
