"""The agent loop: the one place the platform lets a model decide.

    while not done:
        decision = await model(system, conversation, AgentDecision)   # the probabilistic step
        guard the action; execute it (tool, delegate) or finish (final_answer)
        append the tool_use / tool_result pair; account usage; check budgets

Everything but the model's decision is ordinary, deterministic engineering. Each way a run can
stop is a distinct Outcome. The model call is async (never blocks the event loop); conversation
state lives in the run, never in the executor, so one executor serves any number of runs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from agent_platform.compile.compiler import build_output_model
from agent_platform.compile.plan import AgentLoopUnit, SpecRef
from agent_platform.runtime.decision import ActionChoice, action_of, build_decision_model
from agent_platform.runtime.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from agent_platform.runtime.models.base import ModelError
from agent_platform.runtime.outcomes import Outcome, RunResult
from agent_platform.runtime.rendering import TemplateRenderError, render
from agent_platform.runtime.services import RunState, Services


@dataclass
class AgentRun:
    """The state of one run of an agent (nothing of it outlives the run)."""

    state: RunState
    messages: list[Message] = field(default_factory=list)
    trajectory: list[dict[str, Any]] = field(default_factory=list)  # what was decided and what came of it


class BudgetExceeded(Exception):
    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class AgentLoopExecutor:
    def __init__(self, unit: AgentLoopUnit, services: Services) -> None:
        self.unit = unit
        self.services = services
        self.allowed = frozenset(t.name for t in unit.tools)
        self._decision_model: type[BaseModel] | None = None

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

    # --- the loop -------------------------------------------------------------------------------

    async def run(self, inputs: dict[str, Any], state: RunState) -> RunResult:
        started = time.perf_counter()
        run = AgentRun(state)
        result = RunResult(state.run_id, str(self.unit.ref), Outcome.MAX_ITERATIONS)
        try:
            async with asyncio.timeout(self.unit.limits.timeout):
                system = self._system_prompt(inputs)
                run.messages.append(Message.user(self._task_message(inputs)))
                await self._loop(run, system, result)
        except TimeoutError:
            result.outcome = Outcome.TIMEOUT
            result.error = f"the run exceeded its timeout of {self.unit.limits.timeout:g}s"
        except BudgetExceeded as exc:
            result.outcome, result.error = exc.outcome, str(exc)
        except TemplateRenderError as exc:
            result.outcome, result.error = Outcome.FAILED, str(exc)
        except ModelError as exc:
            result.outcome, result.error = Outcome.FAILED, f"model call failed: {exc}"
        result.usage, result.cost_usd = state.usage, state.cost_usd
        result.iterations, result.tool_calls = state.iterations, state.tool_calls
        result.duration_s = time.perf_counter() - started
        result.details["trajectory"] = run.trajectory
        if result.outcome is Outcome.MAX_ITERATIONS and result.error is None:
            result.error = f"no final answer within max_iterations ({self.unit.limits.max_iterations})"
        return result

    async def _loop(self, run: AgentRun, system: str, result: RunResult) -> None:
        limits = self.unit.limits
        decision_model = self.decision_model()
        assert self.unit.model is not None
        for _ in range(limits.max_iterations):
            self._check_budgets(run.state)
            run.state.iterations += 1
            await self._before_model_call(run)
            answer = await self.services.complete(
                self.unit.model,
                system=system,
                messages=run.messages,
                response_model=decision_model,
                key=self.unit.name,
                run=run.state,
            )
            decision = answer.output
            kind, name, payload = action_of(decision)
            thought: str = getattr(decision, "thought", "")
            call_id = answer.response_id or f"toolu_{uuid.uuid4().hex[:24]}"
            # The model called the decision tool: record exactly that, then answer it.
            run.messages.append(
                Message(
                    "assistant",
                    [
                        *([TextBlock(thought)] if thought else []),
                        ToolUseBlock(call_id, decision_model.__name__, decision.model_dump(mode="json")),
                    ],
                )
            )
            step: dict[str, Any] = {"iteration": run.state.iterations, "action": kind, "name": name}
            run.trajectory.append(step)
            verdict = await self._guard_action(run, kind, name, payload, call_id)
            if verdict is not None:  # blocked: the model is told why and may choose again
                step["blocked"] = verdict
                run.messages.append(Message("user", [ToolResultBlock(call_id, verdict, is_error=True)]))
                continue
            if kind == "final_answer":
                output = await self._guard_output(run, payload)
                result.outcome, result.output = Outcome.COMPLETED, output
                return
            if kind == "tool":
                content, is_error = await self._call_tool(run, name, payload, call_id)
            else:
                content, is_error = await self._delegate(run, name, payload)
            step["error" if is_error else "ok"] = True
            run.messages.append(Message("user", [ToolResultBlock(call_id, content, is_error=is_error)]))
            self._check_budgets(run.state)

    # --- actions ----------------------------------------------------------------------------

    async def _call_tool(
        self, run: AgentRun, name: str, arguments: dict[str, Any], call_id: str
    ) -> tuple[str, bool]:
        limit = self.unit.limits.max_tool_calls
        if limit is not None and run.state.tool_calls >= limit:
            raise BudgetExceeded(Outcome.TOOL_CALL_BUDGET, f"tool call budget of {limit} exhausted")
        outcome = await self.services.call_tool(name, arguments, run=run.state, allowed=self.allowed)
        if outcome.is_error:
            return outcome.error or "the tool failed", True
        text = outcome.output if isinstance(outcome.output, str) else json.dumps(outcome.output, default=str)
        return await self._guard_tool_output(run, name, text, call_id), False

    async def _delegate(self, run: AgentRun, agent: str, task: dict[str, Any]) -> tuple[str, bool]:
        sub = await self.services.run_unit(SpecRef("Agent", agent), task, parent=run.state)
        if not sub.ok:
            return f"agent {agent} ended {sub.outcome.value}: {sub.error}", True
        return json.dumps(sub.output, default=str), False

    # --- prompts ----------------------------------------------------------------------------

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
        return instructions + self._protocol_note()

    def _protocol_note(self) -> str:
        return (
            "\n\nAt each step, answer with one action: call one of your tools, delegate to one of your"
            " delegates, or give the final answer. Tool results come back as the result of your action."
        )

    def _task_message(self, inputs: dict[str, Any]) -> str:
        return "Task inputs:\n" + json.dumps(inputs, indent=2, default=str, ensure_ascii=False)

    # --- budgets ----------------------------------------------------------------------------

    def _check_budgets(self, state: RunState) -> None:
        limits = self.unit.limits
        if limits.max_total_tokens is not None and state.usage.total_tokens >= limits.max_total_tokens:
            raise BudgetExceeded(
                Outcome.TOKEN_BUDGET,
                f"token budget exhausted: {state.usage.total_tokens} of {limits.max_total_tokens} tokens used",
            )
        if limits.max_cost_usd is not None and state.cost_usd >= limits.max_cost_usd:
            raise BudgetExceeded(
                Outcome.COST_BUDGET,
                f"cost budget exhausted: ${state.cost_usd:.4f} of ${limits.max_cost_usd:.4f}",
            )

    # --- guardrails and memory: integration points ----------------------------------------------

    async def _before_model_call(self, run: AgentRun) -> None:
        """Working memory: compact the conversation when it nears its token budget."""

    async def _guard_action(
        self, run: AgentRun, kind: str, name: str, payload: Any, call_id: str
    ) -> str | None:
        """Guardrails on the decided action; returns why it is blocked, or None. Raises to halt."""
        if kind == "tool" and name not in self.allowed:  # defence in depth: the executor checks too
            return f"tool '{name}' is not allowed for agent {self.unit.name}"
        return None

    async def _guard_tool_output(self, run: AgentRun, name: str, text: str, call_id: str) -> str:
        """Guardrails on a tool's output before the model sees it."""
        return text

    async def _guard_output(self, run: AgentRun, output: Any) -> Any:
        """Guardrails on the final answer."""
        return output
