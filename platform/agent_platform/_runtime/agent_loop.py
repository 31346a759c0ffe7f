"""The agent loop: the one place the platform lets a model decide.

    while not done:
        decision = await model(system, conversation, AgentDecision)   # the probabilistic step
        guard the action; execute it (tool, delegate) or finish (final_answer)
        append the tool_use / tool_result pair; account usage; check budgets

Everything but the model's decision is ordinary, deterministic engineering. Each way a run can
stop is a distinct Outcome. The model call is async (never blocks the event loop); conversation
state lives in the run, never in the executor, so one executor serves any number of runs.

Content the run did not write (tool outputs and errors, delegates' answers, recalled memory)
enters the conversation through `_admit`: capped, passed through the tool-output guardrails (the
agent's and the tool's own), wrapped in the unforgeable boundary that the system prompt explains
(`BOUNDARY_INSTRUCTIONS`), and recorded with its provenance; untrusted content taints the run,
and from then on the tool executor applies the agent's `untrusted_context` policy to every call
of a tool with side effects or network egress (also inside delegates, which inherit the taint
and the policy), and to every task for a RemoteAgent delegate (`Services.call_remote_agent`). A
call waiting for approval that nobody can give ends the run with `needs_approval`."""

from __future__ import annotations

import asyncio
import json
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from agent_platform._compile.compiler import build_output_model
from agent_platform._compile.plan import AgentLoopUnit, RemoteAgentPlan, SpecRef
from agent_platform._runtime.approval import ApprovalRequest, ApprovalRequired
from agent_platform._runtime.checkpoint import AgentCheckpoint
from agent_platform._runtime.decision import ActionChoice, action_of_dump, build_decision_model
from agent_platform._runtime.events import GuardrailVerdict, StepFinished, StepStarted
from agent_platform._runtime.guardrails import (
    BOUNDARY_INSTRUCTIONS,
    GuardContext,
    GuardrailSet,
    GuardResult,
    RunUsage,
    wrap_tool_output,
)
from agent_platform._runtime.intake import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_OUTPUT_TOKENS,
    OFFLOAD_CHARS,
    cap_output,
    guard_content,
    wrap_content,
)
from agent_platform._runtime.memory.working import CompactionError, WorkingMemory
from agent_platform._runtime.messages import Block, Message, TextBlock, ToolResultBlock, ToolUseBlock
from agent_platform._runtime.models.base import ModelError
from agent_platform._runtime.outcomes import Outcome, RunResult
from agent_platform._runtime.provenance import USER_INPUT, Origin, Provenance
from agent_platform._runtime.recall import TASK_INPUTS_PREFIX, AgentMemory
from agent_platform._runtime.rendering import TemplateRenderError, render
from agent_platform._runtime.services import RunState, Services
from agent_platform._runtime.tokens import CHARS_PER_TOKEN, TokenCounter
from agent_platform._spec.policy import ToolPolicy, Trust


@dataclass
class AgentRun:
    """The state of one run of an agent (nothing of it outlives the run)."""

    state: RunState
    guards: GuardrailSet
    memory: WorkingMemory | None = None
    plain_messages: list[Message] = field(default_factory=list)
    trajectory: list[dict[str, Any]] = field(default_factory=list)  # what was decided and what came of it
    memory_details: dict[str, Any] = field(default_factory=dict)  # long-term memory: recalled, written
    # The output guardrails a tool's own spec adds to the agent's, per tool (made on first use).
    tool_guards: dict[str, GuardrailSet] = field(default_factory=dict)

    @property
    def messages(self) -> list[Message]:
        return self.memory.messages if self.memory is not None else self.plain_messages

    def checkpoint(self) -> AgentCheckpoint:
        state = self.state
        return AgentCheckpoint(
            messages=list(self.messages),
            trajectory=list(self.trajectory),
            iterations=state.iterations,
            tool_calls=state.tool_calls,
            sub_runs=state.sub_runs,
            usage=state.usage,
            cost_usd=state.cost_usd,
            taint=list(state.taint.sources),
        )

    def append(self, message: Message) -> None:
        if self.memory is not None:
            self.memory.append(message)
        else:
            self.plain_messages.append(message)

    def usage(self) -> RunUsage:
        state = self.state
        return RunUsage(
            tokens=state.usage.total_tokens,
            cost_usd=state.cost_usd,
            tool_calls=state.tool_calls,
            input_tokens=state.usage.input_tokens,
            output_tokens=state.usage.output_tokens,
            model_calls=state.iterations,
        )


# Tool-use ids need to be unique within a conversation, not secret: a PRNG seeded once from the
# OS is enough, and a getrandom() syscall per step is slow on a loaded VM.
_IDS = random.Random()


def _undecided_action(run: AgentRun, decision_tool: str) -> tuple[dict[str, Any], str] | None:
    """The decision a resumed run was carrying out when it paused for approval: the conversation
    ends with it, unanswered ((the decision, its call id); None when it ends otherwise)."""
    messages = run.messages
    if not messages or messages[-1].role != "assistant":
        return None
    last = messages[-1].content[-1] if messages[-1].content else None
    if isinstance(last, ToolUseBlock) and last.name == decision_tool:
        return dict(last.input), last.id
    return None


def new_call_id() -> str:
    """An id for a tool_use block when the provider gave none (`toolu_` + 24 random hex digits)."""
    return f"toolu_{_IDS.getrandbits(96):024x}"


def _json(value: Any) -> str:
    """Compact JSON of tool results and answers (pydantic-core: several times faster than json)."""
    return to_json(value, fallback=str).decode()


_PLAIN_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})
# Method calls a template may make that read their object and nothing else.
_PURE_METHODS = frozenset(
    {
        "items", "keys", "values", "get", "upper", "lower", "strip", "lstrip", "rstrip", "title",
        "capitalize", "startswith", "endswith", "split", "replace", "join", "count",
    }
)  # fmt: skip


def _plain(value: Any) -> bool:
    """JSON-like data of exactly the builtin types (no subclasses, tuples or objects): its repr
    identifies it, types included, so equal reprs render equally."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list:
        return all(_plain(v) for v in value)
    return False


class _PromptCache:
    """Rendered (system prompt, task message) per distinct inputs, for instructions whose output
    depends on nothing but the inputs: no call but `range()` and read-only methods, no `random`
    filter, no `lipsum` (checked on the template's syntax tree, and the words must not occur at
    all). Keyed on `repr(inputs)` for inputs of plain builtin types only, so e.g. a tuple and a
    list, or 1 and 1.0 and True, never share an entry. Bounded (oldest entry dropped)."""

    __slots__ = ("_entries",)
    MAX_ENTRIES = 256

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, str]] = {}

    @staticmethod
    def safe_for(source: str) -> bool:
        if "random" in source or "lipsum" in source:
            return False
        try:
            from jinja2 import nodes

            from agent_platform._validate.templates import template_environment

            tree = template_environment().parse(source)
        except Exception:  # a template that does not parse fails at render time, every time
            return False
        for call in tree.find_all(nodes.Call):
            target = call.node
            if isinstance(target, nodes.Name) and target.name == "range":
                continue
            if isinstance(target, nodes.Getattr) and target.attr in _PURE_METHODS:
                continue
            return False
        return True

    @staticmethod
    def key(inputs: dict[str, Any]) -> str | None:
        return repr(inputs) if _plain(inputs) else None

    def get(self, key: str) -> tuple[str, str] | None:
        return self._entries.get(key)

    def put(self, key: str, prompts: tuple[str, str]) -> None:
        entries = self._entries
        if len(entries) >= self.MAX_ENTRIES:
            del entries[next(iter(entries))]
        entries[key] = prompts


@dataclass(frozen=True, slots=True)
class _Intake:
    """How content from one source enters the conversation (see `AgentLoopExecutor._admit`)."""

    provenance: Provenance
    source: str  # the name shown in the boundary marker
    label: str  # the taint label
    untrusted: bool
    max_bytes: int
    max_tokens: int
    uncut_chars: int  # text of at most this many characters is under both caps, whatever it holds
    guarded: bool  # tool-output guardrails apply
    inline_chars: int  # unguarded text up to this long needs no cap and is wrapped on the loop

    @classmethod
    def of(cls, provenance: Provenance, caps: ToolPolicy | None = None, *, guarded: bool = True) -> _Intake:
        max_bytes = caps.max_output_bytes if caps is not None else DEFAULT_MAX_OUTPUT_BYTES
        max_tokens = caps.max_output_tokens if caps is not None else DEFAULT_MAX_OUTPUT_TOKENS
        source = provenance.source if provenance.origin is Origin.TOOL else provenance.label
        uncut = min(max_bytes, int(max_tokens * CHARS_PER_TOKEN)) // 4
        inline = min(uncut, OFFLOAD_CHARS)
        return cls(
            provenance,
            source,
            provenance.label,
            provenance.untrusted,
            max_bytes,
            max_tokens,
            uncut,
            guarded,
            inline,
        )


def _recall_provenance(details: dict[str, Any]) -> Provenance:
    """The memory section of a task message is as trusted as its least trusted item."""
    trusted = all(item.get("trust") == "trusted" for item in details.get("recalled", ()))
    return Provenance(Origin.MEMORY, Trust.TRUSTED if trusted else Trust.UNTRUSTED, "recall")


class StopRun(Exception):
    """Ends the run with a typed outcome (a budget, a guardrail halt)."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class AgentLoopExecutor:
    def __init__(self, unit: AgentLoopUnit, services: Services) -> None:
        self.unit = unit
        self.services = services
        self.allowed = frozenset(t.name for t in unit.tools)
        self._decision_model: type[BaseModel] | None = None
        self.guards = GuardrailSet.from_bindings(unit.guardrails)
        # Which stages have guardrails is fixed by the spec (a run's fresh set has the same ones).
        self._guard_actions = self.guards.applies("action")
        self._guard_tool_output = self.guards.applies("tool_output")
        self._guard_output = self.guards.applies("output")
        self._name = unit.name
        self._max_tool_calls = unit.limits.max_tool_calls  # read once: limits is a pydantic model
        self._prompt_cache = _PromptCache() if _PromptCache.safe_for(unit.instructions) else None
        self._budgeted = unit.limits.max_total_tokens is not None or unit.limits.max_cost_usd is not None
        # Hosts with a run store (the Ray backend) checkpoint every step; in-process runs do not.
        self._checkpoints = bool(getattr(services, "checkpoints_enabled", False))
        memory = unit.memory[1] if unit.memory is not None else None
        self._long_term = (
            AgentMemory(unit, services)
            if memory is not None and (memory.episodic is not None or memory.knowledge is not None)
            else None
        )
        # Guardrails a tool's spec lists that the agent does not: applied after the agent's.
        own = {g.name for g in unit.guardrails}
        self._tool_guard_sets = {
            t.name: GuardrailSet.from_bindings([g for g in t.guardrails if g.name not in own])
            for t in unit.tools
            if any(g.name not in own for g in t.guardrails)
        }
        # How each tool's output enters the conversation, worked out once (read at every step).
        self._tool_intake = {
            t.name: _Intake.of(
                Provenance(Origin.TOOL, t.policy.trust, t.name),
                t.policy,
                guarded=self._guard_tool_output or t.name in self._tool_guard_sets,
            )
            for t in unit.tools
        }
        # Whether anything from outside can reach the conversation, so the prompt must explain
        # the boundary it arrives in.
        self._shows_outside_content = bool(unit.tools or unit.delegates or self._long_term)

    # --- the decision model (built once per executor, shared by its runs) ---------------------

    def decision_model(self) -> type[BaseModel]:
        if self._decision_model is None:
            choices = [
                ActionChoice(t.name, "tool", t.spec.description, self.services.tool_arguments_model(t.name))
                for t in self.unit.tools
            ]
            choices += [
                ActionChoice(
                    d,
                    "delegate",
                    f"Hand a sub-task to agent {d}.",
                    self.services.unit_inputs_model(SpecRef("Agent", d)),
                )
                if d not in self.unit.remote_delegates
                else _remote_choice(self.unit.remote_delegates[d])
                for d in self.unit.delegates
            ]
            output = (
                build_output_model(
                    self.unit.output_schema, f"{self.unit.name.title().replace('-', '')}Answer"
                )
                if self.unit.output_schema is not None
                else None
            )
            choices.append(
                ActionChoice("final_answer", "final_answer", "Finish with the final answer.", output)
            )
            self._decision_model = build_decision_model(self.unit.name, choices)
        return self._decision_model

    async def aclose(self) -> None:
        await self.guards.aclose()
        for guards in self._tool_guard_sets.values():
            await guards.aclose()

    # --- the loop -------------------------------------------------------------------------------

    async def run(self, inputs: dict[str, Any], state: RunState) -> RunResult:
        started = time.perf_counter()
        run = AgentRun(state, self.guards.fresh(), self._working_memory(state))
        result = RunResult(state.run_id, str(self.unit.ref), Outcome.MAX_ITERATIONS)
        episode_task: str | None = None
        try:
            async with asyncio.timeout(self.unit.limits.timeout):
                system, task = self._prompts(inputs)
                resume = state.resume_from
                if resume is not None:  # another replica ran part of this run: continue from it
                    self._restore(run, resume)
                    if self._long_term is not None:  # the episode records the task as guarded
                        episode_task = await self._guarded_task(run, task, inputs)
                else:
                    task = episode_task = await self._guarded_task(run, task, inputs)
                    blocks: list[Block] = [TextBlock(task, USER_INPUT)]
                    if self._long_term is not None:  # untrusted items it shows taint the run
                        recalled = await self._long_term.recall(state, task, run.guards, run.memory_details)
                        if recalled:
                            blocks.append(TextBlock(f"\n{recalled}", _recall_provenance(run.memory_details)))
                    run.append(Message("user", blocks))
                await self._loop(run, system, result)
        except ApprovalRequired as exc:
            result.outcome, result.error = Outcome.NEEDS_APPROVAL, str(exc)
            result.details["approval"] = exc.request.to_json()
        except TimeoutError:
            result.outcome = Outcome.TIMEOUT
            result.error = f"the run exceeded its timeout of {self.unit.limits.timeout:g}s"
        except StopRun as exc:
            result.outcome, result.error = exc.outcome, str(exc)
        except CompactionError as exc:
            result.outcome, result.error = Outcome.FAILED, f"working memory compaction failed: {exc}"
        except TemplateRenderError as exc:
            result.outcome, result.error = Outcome.FAILED, str(exc)
        except ModelError as exc:
            result.outcome, result.error = Outcome.FAILED, f"model call failed: {exc}"
            if self._budgeted:  # the failed call's tokens may be what exhausted the budget
                try:
                    self._check_budgets(state)
                except StopRun as stop:
                    result.outcome, result.error = stop.outcome, f"{stop} (the last model call failed: {exc})"
        result.usage, result.cost_usd = state.usage, state.cost_usd
        result.iterations, result.tool_calls = state.iterations, state.tool_calls
        result.duration_s = time.perf_counter() - started
        result.details["trajectory"] = run.trajectory
        if result.outcome is Outcome.MAX_ITERATIONS and result.error is None:
            result.error = f"no final answer within max_iterations ({self.unit.limits.max_iterations})"
        if self._long_term is not None:
            # Not for a run its input guardrail stopped: what it was asked must not be stored.
            if episode_task is not None:
                await self._long_term.record_episode(state, episode_task, result, run.memory_details)
            result.details["memory"] = run.memory_details
        return result

    async def _guarded_task(self, run: AgentRun, task: str, inputs: dict[str, Any]) -> str:
        """The task message after the input guardrails (redacted); StopRun when they block it."""
        if not run.guards.applies("input"):
            return task
        checked = await self._guard(run, "input", GuardContext("input", task, data=inputs))
        if checked.blocked:
            raise StopRun(Outcome.GUARDRAIL_HALT, checked.message_for_model())
        return checked.content if checked.content is not None else task

    async def _loop(self, run: AgentRun, system: str, result: RunResult) -> None:
        limits = self.unit.limits
        decision_model = self.decision_model()
        tracing = self.services.tracing
        state = run.state
        durable = self._checkpoints
        budgeted = self._budgeted
        pending = _undecided_action(run, decision_model.__name__)
        if pending is not None:  # resumed after a person decided about the call it was making
            with tracing.iteration_span(state.iterations) if tracing.enabled else nullcontext():
                if await self._act(run, *pending, result):
                    return
            if durable:
                await self.services.checkpoint(state, run.checkpoint)
        for _ in range(limits.max_iterations - state.iterations):
            if budgeted:
                self._check_budgets(state)
            state.iterations += 1
            if state.events is not None:  # a run someone may follow
                if await self._step_followed(run, system, decision_model, result):
                    return
            elif tracing.enabled:
                with tracing.iteration_span(state.iterations):
                    if await self._step(run, system, decision_model, result):
                        return
            elif await self._step(run, system, decision_model, result):
                return
            if durable:  # after every step (the host may thin them out under load, see CheckpointWriter)
                await self.services.checkpoint(state, run.checkpoint)

    async def _step_followed(
        self, run: AgentRun, system: str, decision_model: type[BaseModel], result: RunResult
    ) -> bool:
        """One iteration, its start and end as events (`RunState.events` is set)."""
        state = run.state
        events = state.events
        assert events is not None
        n = state.iterations
        events.emit(state.run_id, StepStarted(step=f"iteration {n}", iteration=n))
        ok = paused = False
        try:
            tracing = self.services.tracing
            if tracing.enabled:
                with tracing.iteration_span(n):
                    done = await self._step(run, system, decision_model, result)
            else:
                done = await self._step(run, system, decision_model, result)
            ok = True
            return done
        except ApprovalRequired:
            ok = paused = True
            raise
        finally:
            events.emit(state.run_id, StepFinished(step=f"iteration {n}", iteration=n, ok=ok, paused=paused))

    @staticmethod
    def _restore(run: AgentRun, checkpoint: AgentCheckpoint) -> None:
        state = run.state
        state.taint.absorb(checkpoint.taint)  # what it had read before stays read
        for message in checkpoint.messages:
            run.append(message)
        run.trajectory = list(checkpoint.trajectory)
        run.trajectory.append({"iteration": checkpoint.iterations, "action": "resumed"})
        state.iterations, state.tool_calls = checkpoint.iterations, checkpoint.tool_calls
        state.sub_runs = checkpoint.sub_runs
        state.usage, state.cost_usd = checkpoint.usage, checkpoint.cost_usd

    async def _step(
        self, run: AgentRun, system: str, decision_model: type[BaseModel], result: RunResult
    ) -> bool:
        """One iteration: decide, guard, act. True when the run has its final answer."""
        model = self.unit.model
        assert model is not None
        state = run.state
        memory = run.memory
        if memory is not None:
            await self._before_model_call(run, system)
        answer = await self.services.complete(
            model,
            system=system,
            messages=run.messages,
            response_model=decision_model,
            key=self._name,
            run=state,
        )
        if memory is not None:
            memory.record_usage(answer.usage.input_tokens, system=system)
        decision = answer.output
        # = decision.model_dump(mode="json", exclude_unset=True), minus its wrapper (a hot path)
        dumped = decision.__pydantic_serializer__.to_python(decision, mode="json", exclude_unset=True)
        thought: str = dumped.get("thought", "")
        call_id = answer.response_id or new_call_id()
        # The model called the decision tool: record exactly that, then answer it.
        tool_use = ToolUseBlock(call_id, decision_model.__name__, dumped)
        append = run.append if memory is not None else run.plain_messages.append
        append(Message("assistant", [TextBlock(thought), tool_use] if thought else [tool_use]))
        return await self._act(run, dumped, call_id, result)

    async def _act(self, run: AgentRun, dumped: dict[str, Any], call_id: str, result: RunResult) -> bool:
        """Carry out a decision the conversation already holds. True when it is the final answer."""
        state = run.state
        kind, name, payload = action_of_dump(dumped)
        append = run.append if run.memory is not None else run.plain_messages.append
        step: dict[str, Any] = {"iteration": state.iterations, "action": kind, "name": name}
        run.trajectory.append(step)
        if (kind == "tool" and name not in self.allowed) or self._guard_actions:
            verdict = await self._guard_action(run, kind, name, payload, call_id)
            if verdict is not None:  # blocked: the model is told why and may choose again
                step["blocked"] = verdict
                append(Message("user", [ToolResultBlock(call_id, verdict, is_error=True)]))
                return False
        if kind == "final_answer":
            if self._guard_output:
                output, rejection = await self._guard_output_of(run, payload)
            else:
                output, rejection = payload, None
            if rejection is None:
                result.outcome, result.output = Outcome.COMPLETED, output
                return True
            step["blocked"] = rejection
            append(Message("user", [ToolResultBlock(call_id, rejection, is_error=True)]))
            return False
        counters = state.tool_calls, state.sub_runs
        try:
            if kind == "tool":
                content, is_error, provenance = await self._call_tool(run, name, payload, call_id)
            else:
                content, is_error, provenance = await self._delegate(run, name, payload)
        except ApprovalRequired:
            step["needs_approval"] = True
            # The call was not made: a resumed run makes it again, under the same counters (so the
            # same sub-run id and idempotency keys), from the state that holds the decision.
            state.tool_calls, state.sub_runs = counters
            if self._checkpoints:
                await self.services.checkpoint(state, run.checkpoint, waiting=True)
            raise
        step["error" if is_error else "ok"] = True
        append(Message("user", [ToolResultBlock(call_id, content, is_error, provenance)]))
        if self._budgeted:
            self._check_budgets(state)
        return False

    # --- actions ----------------------------------------------------------------------------

    async def _call_tool(
        self, run: AgentRun, name: str, arguments: dict[str, Any], call_id: str
    ) -> tuple[str, bool, Provenance | None]:
        """The tool's result as the model will see it: (content, is_error, its provenance)."""
        limit = self._max_tool_calls
        if limit is not None and run.state.tool_calls >= limit:
            raise StopRun(Outcome.TOOL_CALL_BUDGET, f"tool call budget of {limit} exhausted")
        outcome = await self.services.call_tool(name, arguments, run=run.state, allowed=self.allowed)
        # A tool outside the agent's list cannot succeed (the executor refuses it): be safe anyway.
        intake = self._tool_intake.get(name) or _Intake.of(Provenance(Origin.TOOL, Trust.UNTRUSTED, name))
        if outcome.is_error:
            error = outcome.error or "the tool failed"
            if outcome.attempts and intake.untrusted:
                # The tool ran: its error may quote what it returned (an HTTP error body).
                run.state.taint.mark(intake.label)
                return wrap_tool_output(error, tool_name=name), True, intake.provenance
            return error, True, None
        output = outcome.output
        text = output if isinstance(output, str) else _json(output)
        if not intake.guarded and len(text) <= intake.inline_chars:  # `_admit`, minus what it skips
            if intake.untrusted:
                run.state.taint.mark(intake.label)
            admitted, blocked, shown = wrap_tool_output(text, tool_name=intake.source), False, text
        else:
            admitted, blocked, shown = await self._admit(run, text, intake)
        if not blocked and self._long_term is not None and name in self.unit.remember:
            # Remembered as the guardrails left it (before the boundary, which is per display).
            await self._long_term.remember_tool_result(
                run.state, name, arguments, shown, run.guards, run.memory_details
            )
        return admitted, blocked, intake.provenance

    async def _delegate(
        self, run: AgentRun, agent: str, task: dict[str, Any]
    ) -> tuple[str, bool, Provenance | None]:
        """The delegate's answer as the model will see it. The delegate inherits this run's taint
        and policy; its answer is untrusted when its own run was tainted."""
        remote = self.unit.remote_delegates.get(agent)
        if remote is not None:  # over A2A, from this process, under this run's taint and policy
            sub = await self.services.call_remote_agent(remote, task, run=run.state)
        else:
            sub = await self.services.run_unit(SpecRef("Agent", agent), task, parent=run.state)
        if sub.outcome is Outcome.NEEDS_APPROVAL:  # the delegate's call waits for a person: so does this run
            pending = sub.details.get("approval")
            request = (
                ApprovalRequest.from_json(pending)
                if isinstance(pending, dict)
                else ApprovalRequest("(unknown)", "", {}, sub.run_id, (sub.error or "",))
            )
            raise ApprovalRequired(request.handed_through(f"Agent/{agent}")) from None
        provenance = Provenance(Origin.DELEGATE, Trust.UNTRUSTED if sub.taint else Trust.TRUSTED, agent)
        if not sub.ok:
            error = f"agent {agent} ended {sub.outcome.value}: {sub.error}"
            if provenance.untrusted:
                run.state.taint.mark(provenance.label)
                return wrap_tool_output(error, tool_name=provenance.label), True, provenance
            return error, True, provenance
        intake = _Intake.of(provenance, guarded=self._guard_tool_output)
        admitted, blocked, _ = await self._admit(run, _json(sub.output), intake)
        return admitted, blocked, provenance

    async def _admit(self, run: AgentRun, text: str, intake: _Intake) -> tuple[str, bool, str]:
        """Content from outside the run on its way into the conversation: capped, checked by the
        tool-output guardrails (the agent's, then those only the tool declares), wrapped in the
        boundary, and recorded in the run's taint. Returns (what the model sees, whether the
        guardrails withheld it, the text as they left it)."""
        cut = None
        if len(text) > intake.uncut_chars:  # may be over a cap: measure it
            text, cut = cap_output(text, intake.max_bytes, intake.max_tokens)
        source = intake.source
        if intake.guarded:
            tool = intake.provenance.source if intake.provenance.origin is Origin.TOOL else None
            for guards in (run.guards if self._guard_tool_output else None, self._tool_guards(run, tool)):
                if guards is None:
                    continue
                checked = await self._guard(
                    run, "tool_output", GuardContext("tool_output", text, tool_name=source), guards
                )
                if checked.blocked:  # the model sees the platform's message, not the content
                    return checked.message_for_model(), True, text
                text = checked.content if checked.content is not None else text
        if intake.untrusted:
            run.state.taint.mark(intake.label)
        wrapped = (
            wrap_tool_output(text, tool_name=source)
            if len(text) <= OFFLOAD_CHARS
            else await wrap_content(text, source)
        )
        if cut is not None:
            run.trajectory[-1]["truncated"] = {"bytes": cut.original_bytes, "shown": cut.kept_bytes}
            return f"{wrapped}\n{cut.marker(source)}", False, text
        return wrapped, False, text

    def _tool_guards(self, run: AgentRun, tool: str | None) -> GuardrailSet | None:
        """The guardrails only `tool`'s spec lists, with this run's state (made once per run)."""
        if tool is None or tool not in self._tool_guard_sets:
            return None
        fresh = run.tool_guards.get(tool)
        if fresh is None:
            fresh = run.tool_guards[tool] = self._tool_guard_sets[tool].fresh()
        return fresh

    # --- prompts ----------------------------------------------------------------------------

    def _prompts(self, inputs: dict[str, Any]) -> tuple[str, str]:
        """(system prompt, task message) for `inputs`. Both are pure functions of the inputs when
        the instructions template is (`_PromptCache`), so they are rendered once per distinct
        inputs and reused; otherwise rendered every run."""
        cache = self._prompt_cache
        key = cache.key(inputs) if cache is not None else None
        if key is not None:
            assert cache is not None
            hit = cache.get(key)
            if hit is not None:
                return hit
        prompts = self._system_prompt(inputs), self._task_message(inputs)
        if key is not None:
            assert cache is not None
            cache.put(key, prompts)
        return prompts

    def _system_prompt(self, inputs: dict[str, Any]) -> str:
        context = {
            "inputs": inputs,
            "agent": {"name": self.unit.name},
            "tools": [{"name": t.name, "description": t.spec.description} for t in self.unit.tools],
            "delegates": list(self.unit.delegates),
        }
        instructions = render(
            self.unit.instructions, context, where=f"Agent/{self.unit.name}: spec.instructions"
        )
        if self._shows_outside_content:
            return f"{instructions}{self._protocol_note()}\n\n{BOUNDARY_INSTRUCTIONS}"
        return instructions + self._protocol_note()

    def _protocol_note(self) -> str:
        return (
            "\n\nAt each step, answer with one action: call one of your tools, delegate to one of your"
            " delegates, or give the final answer. Tool results come back as the result of your action."
        )

    def _task_message(self, inputs: dict[str, Any]) -> str:
        # pydantic-core, not json.dumps: with `indent`, json falls back to its pure-Python encoder,
        # whose recursive closures leave reference cycles behind for the collector at every run.
        return TASK_INPUTS_PREFIX + to_json(inputs, indent=2, fallback=str).decode()

    # --- budgets ----------------------------------------------------------------------------

    def _check_budgets(self, state: RunState) -> None:
        """Called only when the unit has a token or cost budget (`_budgeted`)."""
        limits = self.unit.limits
        if limits.max_total_tokens is not None and state.usage.total_tokens >= limits.max_total_tokens:
            raise StopRun(
                Outcome.TOKEN_BUDGET,
                f"token budget exhausted: {state.usage.total_tokens} of {limits.max_total_tokens} tokens used",
            )
        if limits.max_cost_usd is not None and state.cost_usd >= limits.max_cost_usd:
            raise StopRun(
                Outcome.COST_BUDGET,
                f"cost budget exhausted: ${state.cost_usd:.4f} of ${limits.max_cost_usd:.4f}",
            )

    # --- working memory -------------------------------------------------------------------------

    def _working_memory(self, state: RunState) -> WorkingMemory | None:
        if self.unit.memory is None or self.unit.memory[1].working is None:
            return None
        working = self.unit.memory[1].working
        provider = None
        if working.compaction is not None:
            provider = self.services.provider(
                self.services.resolve_model(working.compaction.model), run=state
            )
        return WorkingMemory(working, TokenCounter(), provider)

    async def _before_model_call(self, run: AgentRun, system: str) -> None:
        """Compact the conversation when it nears its token budget (never splitting a tool pair)."""
        memory = run.memory
        if memory is None:
            return
        if not memory.needs_compaction():
            if memory.over_budget() and memory.spec.compaction is None:
                # Without a compaction policy there is no safe way to shrink the conversation.
                raise StopRun(
                    Outcome.TOKEN_BUDGET,
                    f"the conversation ({memory.tokens()} tokens) exceeds working memory max_tokens "
                    f"({memory.spec.max_tokens}) and the memory declares no compaction",
                )
            return
        tracing = self.services.tracing
        with tracing.compaction_span(memory.tokens(), messages_before=len(memory.messages)) as span:
            report = await memory.compact()
            tracing.record_compaction(span, report.tokens_after, messages_after=len(memory.messages))
        run.state.usage = run.state.usage + report.usage
        run.state.cost_usd += report.cost_usd
        run.trajectory.append(
            {
                "iteration": run.state.iterations,
                "action": "compaction",
                "tokens_before": report.tokens_before,
                "tokens_after": report.tokens_after,
            }
        )

    # --- guardrails ----------------------------------------------------------------------------

    async def _guard(
        self, run: AgentRun, stage: Any, context: GuardContext, guards: GuardrailSet | None = None
    ) -> GuardResult:
        guards = guards if guards is not None else run.guards
        content = context.content
        if content is not None and len(content) > OFFLOAD_CHARS:  # large: may be checked off the loop
            result = await guard_content(guards, stage, context)
        else:
            result = await guards.check(stage, context)
        tracing = self.services.tracing
        events = run.state.events
        for verdict in result.hits:
            tracing.guardrail_event(
                verdict.guardrail, verdict.type, verdict.decision.label, verdict.reason, stage=stage
            )
            if events is not None:
                events.emit(
                    run.state.run_id,
                    GuardrailVerdict(
                        guardrail=verdict.guardrail,
                        type=verdict.type,
                        verdict=verdict.decision.label,
                        stage=str(stage),
                        reason=verdict.reason or "",
                    ),
                )
            if verdict.type == "loop_detection":
                details = verdict.details
                tracing.loop_detected(
                    str(context.tool_name),
                    pattern=tuple(details.get("steps", ())),
                    repeats=int(details.get("occurrences", 0)),
                    action=verdict.decision.label,
                )
        if result.halted:
            stopping = result.stopping
            raise StopRun(
                Outcome.GUARDRAIL_HALT,
                f"halted by guardrail '{stopping.guardrail}' ({stopping.type}): {stopping.reason}"
                if stopping
                else "halted by a guardrail",
            )
        return result

    async def _guard_action(
        self, run: AgentRun, kind: str, name: str, payload: Any, call_id: str
    ) -> str | None:
        """Guardrails on the decided action; returns why it is blocked, or None (raises to halt)."""
        if kind == "tool" and name not in self.allowed:  # least privilege; the tool executor checks too
            return f"tool '{name}' is not allowed for agent {self.unit.name}"
        if not run.guards.applies("action"):
            return None
        context = GuardContext.for_action(
            name,
            payload if isinstance(payload, dict) else {"answer": payload},
            action_kind=kind,  # type: ignore[arg-type]
            tool_use_id=call_id,
            usage=run.usage(),
            agent=self.unit.name,
            run_id=run.state.run_id,
        )
        result = await self._guard(run, "action", context)
        return result.message_for_model() if result.blocked else None

    async def _guard_output_of(self, run: AgentRun, output: Any) -> tuple[Any, str | None]:
        """Guardrails on the final answer -> (the answer, possibly redacted; why it was rejected)."""
        if not self._guard_output:
            return output, None
        text = output if isinstance(output, str) else _json(output)
        result = await self._guard(run, "output", GuardContext("output", text, data=output))
        if result.blocked:
            return output, result.message_for_model()
        if result.redacted and result.content is not None:
            if isinstance(output, str):
                return result.content, None
            try:
                return json.loads(result.content), None
            except json.JSONDecodeError:
                return (
                    output,
                    "the answer could not be redacted into valid JSON; answer without the redacted content",
                )
        return output, None


def _remote_choice(remote: RemoteAgentPlan) -> ActionChoice:
    """A RemoteAgent as a delegate action: its declared inputs are the task the model writes."""
    schema = remote.spec.inputs
    model = (
        build_output_model(schema, f"{remote.name.title().replace('-', '')}Inputs")
        if schema.get("properties")
        else None
    )
    about = remote.description or f"the remote agent {remote.name}"
    return ActionChoice(remote.name, "delegate", f"Hand a sub-task to {about} (over A2A).", model)
