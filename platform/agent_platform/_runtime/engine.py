"""The in-process runtime: runs any unit of a compiled Plan on plain asyncio.

It implements the executors' `Services` with the real components: model providers, the tool
executor, guardrails, working memory and tracing. No global state: a process may host several
runtimes (a Ray actor will host one). Scripted providers are forked per top-level run, so a
script replays from its start for every run; HTTP providers are shared and pooled."""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from opentelemetry.trace import Span
from pydantic import BaseModel

from agent_platform._compile.compiler import build_output_model
from agent_platform._compile.plan import (
    AgentLoopUnit,
    AnyUnit,
    PipelineUnit,
    Plan,
    RemoteAgentPlan,
    ResolvedModel,
    SpecRef,
    SupervisorUnit,
    ToolBinding,
)
from agent_platform._compile.privileges import context_policy_of
from agent_platform._faults import PlatformFault
from agent_platform._memory.manager import MemoryManager
from agent_platform._memory.registry import MemoryRegistry
from agent_platform._redaction import redact_secrets
from agent_platform._runstore.idempotency import IdempotencyStore
from agent_platform._runtime.agent_loop import AgentLoopExecutor
from agent_platform._runtime.approval import ApprovalRequest, ApprovalRequired
from agent_platform._runtime.checkpoint import AgentCheckpoint
from agent_platform._runtime.clock import Clock, SystemClock
from agent_platform._runtime.events import (
    EventSink,
    ModelCallFinished,
    ModelCallStarted,
    RunStarted,
    ToolCallFinished,
    ToolCallStarted,
    parent_of,
    run_end_event,
)
from agent_platform._runtime.inputs import InputError, check_inputs
from agent_platform._runtime.messages import Message
from agent_platform._runtime.model_guard import model_guards
from agent_platform._runtime.models.base import (
    RUN_SPEND,
    ModelError,
    ModelProvider,
    ModelRequest,
    ModelResult,
    cost_usd,
)
from agent_platform._runtime.models.custom import CustomProviders, ProviderFactory
from agent_platform._runtime.outcomes import Outcome, RunResult
from agent_platform._runtime.pipeline import PipelineExecutor
from agent_platform._runtime.services import RunState, ToolOutcome, new_run_id
from agent_platform._runtime.streaming import RunStream
from agent_platform._runtime.supervisor import SupervisorExecutor, Task, TaskError, check_tasks
from agent_platform._runtime.tools import ToolExecutor, ToolRegistry
from agent_platform._runtime.tools.interface import Tool
from agent_platform._runtime.tracing import Tracing
from agent_platform._spec.kinds import ModelSpec
from agent_platform._spec.policy import ContextPolicy


class UnknownUnit(LookupError):
    pass


class Runtime:
    def __init__(
        self,
        plan: Plan,
        *,
        plugin_paths: list[Path] | None = None,
        tracing: Tracing | None = None,
        clock: Clock | None = None,
        approve_all: bool = False,
        idempotency_store: IdempotencyStore | None = None,
        wrap_tool: Callable[[ToolBinding, Tool], Tool] | None = None,
        memories: MemoryRegistry | None = None,
        durable: bool = False,
        tools: Iterable[Callable[..., Any] | Tool] = (),
        models: Mapping[str, ModelProvider] | None = None,
        providers: Mapping[str, ProviderFactory] | None = None,
    ) -> None:
        """`tools`: functions (or `Tool`s) that implement Tool specs of the same name (`@tool(name=
        "web-search")`), in place of what the specs' `python:` references name. `models`: providers
        that serve the Model specs of those names (a `FunctionModel` in tests) in place of the
        declared provider. `providers`: custom providers by name (`provider: mycorp` in a Model
        spec), each a factory called with the Model spec that returns its provider."""
        self.plan = plan
        # Agent runs hand their state to `checkpoint` after every step (a `DurableRunner` drives
        # the runs and gives each a place in the run store).
        self.checkpoints_enabled = durable
        self._tracing = tracing or Tracing.disabled()
        self.clock = clock or SystemClock()
        self.registry = ToolRegistry(plugin_paths)
        self._custom_providers = CustomProviders(providers, self.registry.plugin_paths)
        for given in tools:  # before the executor binds the specs' tools: these win
            self.registry.register(given, replace=True)
        self.approve_all = approve_all
        approver = self._auto_approve if approve_all else None
        self.tools = ToolExecutor(
            plan.tools,
            self.registry,
            clock=self.clock,
            on_event=self._tool_event,
            approver=approver,
            idempotency_store=idempotency_store,
            wrap_tool=wrap_tool,
        )
        self.memories = memories if memories is not None else MemoryRegistry(plan.memories)
        # Captured content never shows an API key, even one whose variable is not named like one.
        self._tracing.mask_secret_variables(model.spec.api_key_env for model in plan.models.values())
        self._shared_providers: dict[int, ModelProvider] = {}
        for model_name, provider in (models or {}).items():
            if model_name not in plan.models:
                known = ", ".join(sorted(plan.models)) or "none"
                raise UnknownUnit(f"models: no Model named {model_name!r} in the plan (known: {known})")
            spec = plan.models[model_name].spec
            bind = getattr(provider, "bind", None)
            self._shared_providers[id(spec)] = bind(spec) if callable(bind) else provider
        self._model_names = {id(m.spec): name for name, m in plan.models.items()}
        self._model_guards = model_guards(plan.models, self.clock, self._tracing)
        meter_provider = getattr(self._tracing, "meter_provider", None)
        if meter_provider is not None:  # breaker states: read when metrics are collected, not per call
            from agent_platform._runtime.metrics import observe_breakers

            observe_breakers(meter_provider, self.tools, self._model_guards)
        self._executors: dict[SpecRef, Any] = {}
        self._input_models: dict[SpecRef, type[BaseModel] | None] = {}
        self._model_call_ids = itertools.count(1)  # tells a followed run's model calls apart

    # --- public API ---------------------------------------------------------------------------

    def unit(self, name: str) -> AnyUnit:
        """A unit by `Kind/name` or bare name."""
        return find_unit(self.plan, name)

    async def run(
        self,
        name: str,
        inputs: Mapping[str, Any],
        *,
        run_id: str | None = None,
        tenant: str | None = None,
    ) -> RunResult:
        """Run a unit to completion. Raises InputError / TaskError before anything runs when the
        inputs are wrong; every other failure is a RunResult with a typed outcome. `tenant` scopes
        long-term memory (see `RunState.tenant`)."""
        unit = self.unit(name)
        checked = self.prepare_inputs(unit, inputs)
        state = RunState(run_id or new_run_id(), str(unit.ref), tenant=tenant)
        return await self._run(unit, checked, state=state)

    def stream(
        self,
        name: str,
        inputs: Mapping[str, Any],
        *,
        run_id: str | None = None,
        tenant: str | None = None,
    ) -> RunStream:
        """Run a unit and follow it: a `RunStream` of its events (its sub-runs' too) as they
        happen, then its `result`. Raises InputError / UnknownUnit here, before anything runs.

            async with runtime.stream("researcher", {"topic": "tides"}) as run:
                async for item in run:
                    print(item.run_id, item.kind)
            print(run.result.outcome)

        Leaving the block before the run ends cancels the run."""
        unit = self.unit(name)
        checked = self.prepare_inputs(unit, inputs)
        state = RunState(run_id or new_run_id(), str(unit.ref), tenant=tenant)
        return RunStream(state, lambda prepared: self._run(unit, checked, prepared))

    async def run_state(self, unit: AnyUnit, inputs: dict[str, Any], state: RunState) -> RunResult:
        """Run `unit` with a run state the caller prepared (a durable runner's: its run id, taint,
        policy, the checkpoint to resume from, the decisions of a paused run). `inputs` are
        already checked (`prepare_inputs`)."""
        return await self._run(unit, inputs, state)

    def memory(self, name: str) -> MemoryManager:
        return self.memories.manager(name)

    async def warm_up(self, name: str) -> list[str]:
        """Prepares the long-term memory a unit's runs will recall (model loaded, stores connected),
        so its first run does not pay for that. Returns what could not be prepared; a run would
        meet the same problem and report it itself."""
        unit = self.unit(name)
        if not isinstance(unit, AgentLoopUnit) or unit.memory is None:
            return []
        memory_name, spec = unit.memory
        if spec.episodic is None and spec.knowledge is None:
            return []
        try:
            await self.memory(memory_name).warm_up()
        except Exception as exc:
            return [f"memory '{memory_name}': {type(exc).__name__}: {exc}"]
        return []

    @staticmethod
    def prepare_inputs(unit: AnyUnit, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The inputs a unit runs with (schema defaults applied; a supervisor's task list parsed
        and checked against its routes). Raises InputError / TaskError: nothing has run."""
        if isinstance(unit, SupervisorUnit):
            tasks = _tasks_of(inputs)
            check_tasks(unit, tasks)
            return {"tasks": tasks}
        return check_inputs(_input_schema(unit), dict(inputs), unit=str(unit.ref))

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for executor in self._executors.values():
            await executor.aclose()  # their guardrails' classifier connections
        await self.tools.aclose()
        for provider in self._shared_providers.values():
            await provider.aclose()
        await self.memories.close()

    # --- Services -----------------------------------------------------------------------------

    async def checkpoint(
        self, state: RunState, snapshot: Callable[[], AgentCheckpoint], *, waiting: bool = False
    ) -> None:
        from agent_platform._runtime.durable import WAITING_CHECKPOINT, Durable, encoded

        durable: Durable | None = state.resources.get(Durable)
        if durable is None:  # a run no DurableRunner drives (an in-process hand-off, a test)
            return
        checkpoint = snapshot()  # copies of the run's lists: the run goes on while it is written
        for key, provider in state.resources.items():
            cursors = getattr(provider, "cursors", None)
            if callable(cursors) and key in self._model_names:
                checkpoint.model_cursors[self._model_names[key]] = cursors()
        if waiting:  # written with the pause itself, in one transaction (DurableRunner)
            state.resources[WAITING_CHECKPOINT] = checkpoint
            return
        durable.seq += 1
        durable.writer.submit(
            state.run_id,
            durable.attempt,
            durable.seq,
            functools.partial(encoded, durable.encoder, checkpoint),
        )

    def restore_models(self, state: RunState, checkpoint: AgentCheckpoint) -> None:
        """Put each scripted model of the run back where the checkpoint left it."""
        for name, cursors in checkpoint.model_cursors.items():
            model = self.plan.models.get(name)
            if model is not None:
                provider = self.provider(model, run=state)
                restore = getattr(provider, "restore", None)
                if callable(restore):
                    restore(cursors)

    @property
    def tracing(self) -> Tracing:
        return self._tracing

    def resolve_model(self, ref: str | ModelSpec) -> ResolvedModel:
        if isinstance(ref, ModelSpec):
            return ResolvedModel("<inline>", ref)
        return self.plan.models[ref]

    def provider(self, model: ResolvedModel, *, run: RunState | None = None) -> ModelProvider:
        # A scripted provider replays its script from the start for every run (sub-runs included),
        # so concurrent runs of one agent never race for entries: deterministic whatever the timing.
        if run is not None:
            spec = model.spec
            cached = run.resources.get(id(spec))  # only scripted providers are kept there
            if cached is not None:
                return cached  # type: ignore[no-any-return]
            if spec.provider == "scripted":
                shared = self._shared(model)
                fork = getattr(shared, "fork", None)  # a provider given in code may keep no script
                if not callable(fork):
                    return shared
                cached = run.resources[id(spec)] = fork()
                return cached  # type: ignore[no-any-return]
        return self._shared(model)

    def _shared(self, model: ResolvedModel) -> ModelProvider:
        key = id(model.spec)
        if key not in self._shared_providers:
            from agent_platform._runtime.models.factory import create_provider

            self._shared_providers[key] = create_provider(
                model.spec,
                base_dir=Path(model.base_dir),
                on_retry=self._tracing.model_retry_event,
                custom=self._custom_providers,
            )
        return self._shared_providers[key]

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
        guard = self._model_guards.get(id(model.spec))
        # A run someone may follow (`RunState.events`) reports the call's start and end.
        call = self._complete if run.events is None else self._complete_followed
        if guard is None:  # the usual case: no breaker, no fallback
            return await call(model, system, messages, response_model, key, run)
        return await guard.complete(lambda chosen: call(chosen, system, messages, response_model, key, run))

    async def _complete_followed(
        self,
        model: ResolvedModel,
        system: str,
        messages: list[Message],
        response_model: type[BaseModel],
        key: str,
        run: RunState,
    ) -> ModelResult[BaseModel]:
        events = run.events
        assert events is not None
        spec = model.spec
        name = spec.name or model.ref
        call_id = f"{run.run_id}:{key}:{next(self._model_call_ids)}"
        events.emit(run.run_id, ModelCallStarted(call_id=call_id, model=name, provider=spec.provider))
        usage_before, cost_before = run.usage, run.cost_usd
        try:
            result = await self._complete(model, system, messages, response_model, key, run)
        except BaseException as exc:  # what a failed call spent is in the run's accounts now
            events.emit(
                run.run_id,
                ModelCallFinished(
                    call_id=call_id,
                    model=name,
                    provider=spec.provider,
                    ok=False,
                    input_tokens=run.usage.input_tokens - usage_before.input_tokens,
                    output_tokens=run.usage.output_tokens - usage_before.output_tokens,
                    cost_usd=run.cost_usd - cost_before,
                    error_type=type(exc).__name__,
                ),
            )
            raise
        events.emit(
            run.run_id,
            ModelCallFinished(
                call_id=call_id,
                model=name,
                provider=spec.provider,
                input_tokens=result.usage.input_tokens,
                output_tokens=result.usage.output_tokens,
                cost_usd=result.cost_usd,
            ),
        )
        return result

    async def _complete(
        self,
        model: ResolvedModel,
        system: str,
        messages: list[Message],
        response_model: type[BaseModel],
        key: str,
        run: RunState,
    ) -> ModelResult[BaseModel]:
        provider = self.provider(model, run=run)
        request = ModelRequest(system, messages, response_model, key)
        tracing = self._tracing
        try:
            if tracing.enabled:
                spec = model.spec
                with tracing.model_span(
                    spec.provider, spec.name or model.ref, key, max_tokens=spec.max_tokens
                ) as span:
                    try:
                        if tracing.capture_content:  # opt-in: what the model was sent and answered
                            result = await self._complete_capturing(provider, request, span)
                        else:
                            result = await provider.complete(request)
                    except ModelError as exc:
                        spent = getattr(exc, "usage", None)
                        if spent:
                            tracing.record_failed_call_usage(span, spent)
                        raise
                    tracing.record_model_result(span, result)
            else:  # nothing to record: no span attributes computed
                result = await provider.complete(request)
        except ModelError as exc:
            spent = getattr(exc, "usage", None)
            if spent:
                run.add_failed_call(spent, cost_usd(model.spec, spent))
            raise
        run.add_model_result(result)
        return result

    async def _complete_capturing(
        self, provider: ModelProvider, request: ModelRequest[BaseModel], span: Span
    ) -> ModelResult[BaseModel]:
        result: ModelResult[BaseModel] | None = None
        try:
            result = await provider.complete(request)
            return result
        finally:  # a call that failed is recorded too: what it was sent is what explains it
            self._tracing.capture_model_call(span, request.system, request.messages, result)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, run: RunState, allowed: frozenset[str] | None = None
    ) -> ToolOutcome:
        events = run.events
        if events is not None:  # a run someone may follow: the call's start and end as events
            return await self._call_tool_followed(name, arguments, run, allowed, events)
        return await self._call_tool(name, arguments, run, allowed)

    async def _call_tool_followed(
        self,
        name: str,
        arguments: dict[str, Any],
        run: RunState,
        allowed: frozenset[str] | None,
        events: EventSink,
    ) -> ToolOutcome:
        call_id = f"{run.run_id}:{run.tool_calls + 1}"
        events.emit(run.run_id, ToolCallStarted(call_id=call_id, tool=name))
        try:
            outcome = await self._call_tool(name, arguments, run, allowed)
        except ApprovalRequired:  # the call was not made: the run pauses on it
            events.emit(run.run_id, ToolCallFinished(call_id=call_id, tool=name, outcome="needs_approval"))
            raise
        except BaseException as exc:
            events.emit(
                run.run_id,
                ToolCallFinished(call_id=call_id, tool=name, outcome="error", error_type=type(exc).__name__),
            )
            raise
        events.emit(
            run.run_id,
            ToolCallFinished(
                call_id=call_id,
                tool=name,
                outcome="error" if outcome.is_error else "ok",
                error_type=outcome.error_type,
                attempts=outcome.attempts,
                cached=outcome.cached,
            ),
        )
        return outcome

    async def _call_tool(
        self, name: str, arguments: dict[str, Any], run: RunState, allowed: frozenset[str] | None
    ) -> ToolOutcome:
        run.tool_calls += 1
        tracing = self._tracing
        if tracing.enabled:
            with tracing.tool_span(name, f"{run.run_id}:{run.tool_calls}") as span:
                capture = tracing.capture_content
                if capture:  # opt-in: what the tool was given and returned
                    tracing.capture_tool_arguments(span, arguments)
                result = await self.tools.call(
                    name,
                    arguments,
                    run_id=run.run_id,
                    allowed=allowed,
                    taint=run.taint,
                    policy=run.policy,
                    approvals=run.approvals,
                )
                error = result.error
                if error is None:
                    tracing.record_tool_result(
                        span,
                        attempts=result.attempts,
                        cached=result.cached,
                        idempotent_replay=result.from_idempotency_store,
                    )
                    if capture:
                        tracing.capture_tool_result(span, result.output)
                else:
                    tracing.record_tool_result(
                        span,
                        attempts=result.attempts,
                        cached=result.cached,
                        idempotent_replay=result.from_idempotency_store,
                        error=error.for_model(),
                        error_type=type(error).__qualname__,
                    )
        else:  # nothing to record: no span attributes computed
            result = await self.tools.call(
                name,
                arguments,
                run_id=run.run_id,
                allowed=allowed,
                taint=run.taint,
                policy=run.policy,
                approvals=run.approvals,
            )
        if result.error is not None:
            return ToolOutcome(
                None,
                True,
                result.content(),
                attempts=result.attempts,
                error_type=type(result.error).__qualname__,
            )
        return ToolOutcome(result.output, cached=result.cached, attempts=result.attempts)

    def tool_arguments_model(self, name: str) -> type[BaseModel]:
        return self.tools.arguments_model(name)

    def unit_inputs_model(self, ref: SpecRef) -> type[BaseModel] | None:
        if ref not in self._input_models:
            unit = self.plan.units.get(ref)
            schema = (
                _input_schema(unit) if unit is not None and not isinstance(unit, SupervisorUnit) else None
            )
            has_fields = bool(schema and schema.get("properties"))
            self._input_models[ref] = (
                build_output_model(schema, f"{ref.name.title().replace('-', '')}Inputs")
                if has_fields and schema
                else None
            )
        return self._input_models[ref]

    async def call_remote_agent(
        self, remote: RemoteAgentPlan, task: dict[str, Any], *, run: RunState
    ) -> RunResult:
        """See `Services.call_remote_agent`. The task is decided by the tool executor, the one place
        calls are authorised, as a call named `RemoteAgent/<name>` whose arguments are the task."""
        from agent_platform._runtime.remote_agent import call_remote_agent
        from agent_platform._runtime.tools.errors import ToolNotAllowed

        try:
            await self.tools.authorise_remote_task(
                remote.label,
                remote.description or f"the remote agent {remote.name}",
                remote.policy,
                task,
                run_id=run.run_id,
                taint=run.taint,
                policy=run.policy,
                approvals=run.approvals,
            )
        except ToolNotAllowed as exc:  # nothing left the platform: the caller is told why
            return RunResult(f"{run.run_id}/{remote.name}", remote.label, Outcome.FAILED, error=exc.message)
        run.sub_runs += 1  # numbered like a local hand-off
        sub_id = f"{run.run_id}/{remote.name}-{run.sub_runs}"
        return await call_remote_agent(remote, task, run_id=sub_id, policy=run.policy)

    async def run_unit(self, ref: SpecRef, inputs: dict[str, Any], *, parent: RunState) -> RunResult:
        unit = self.plan.units.get(ref)
        if unit is None or isinstance(unit, SupervisorUnit):
            return RunResult(
                parent.run_id, str(ref), Outcome.FAILED, error=f"{ref} is not a runnable agent or pipeline"
            )
        parent.sub_runs += 1  # sibling sub-runs get distinct ids (idempotency keys build on them)
        # The sub-run starts with what its caller has read and under its caller's policy: a
        # delegate never has more authority than the run that hands it work.
        state = RunState(
            f"{parent.run_id}/{ref.name}-{parent.sub_runs}",
            str(ref),
            parent=parent,
            tenant=parent.tenant,
            taint=parent.taint.copy(),
            policy=parent.policy,
            approvals=parent.approvals,
            events=parent.events,
        )
        try:
            checked = check_inputs(_input_schema(unit), inputs, unit=str(ref))
        except InputError as exc:
            return RunResult(state.run_id, str(ref), Outcome.FAILED, error=str(exc))
        result = await self._run(unit, checked, state)
        parent.add_sub_run(result)
        return result

    # --- execution ----------------------------------------------------------------------------

    async def _run(self, unit: AnyUnit, inputs: dict[str, Any], state: RunState) -> RunResult:
        import_model_sdks(unit)
        started = time.perf_counter()
        if not isinstance(unit, SupervisorUnit):
            state.policy = _policy_of(unit, state.policy)
        spending = RUN_SPEND.set(state.add_model_result)
        events = state.events
        if events is not None:
            events.emit(state.run_id, RunStarted(unit=str(unit.ref), parent_run_id=parent_of(state.run_id)))
        try:
            with self._tracing.run_span(unit.ref.kind.lower(), unit.name, state.run_id) as span:
                if self.approve_all:  # every approval in this run is automatic: say so on the run
                    span.set_attribute(AP_APPROVE_ALL, True)
                unexpected: Exception | None = None
                try:
                    if isinstance(unit, SupervisorUnit):
                        result = await self._run_supervisor(unit, inputs["tasks"], state)
                    else:
                        result = await self._executor(unit).run(inputs, state)
                except ApprovalRequired as exc:  # the executors report it themselves; never a failure
                    result = RunResult(
                        state.run_id,
                        str(unit.ref),
                        Outcome.NEEDS_APPROVAL,
                        error=str(exc),
                        details={"approval": exc.request.to_json()},
                    )
                    result.usage, result.cost_usd = state.usage, state.cost_usd
                except Exception as exc:  # a bug or an unexpected failure: the run fails, located
                    unexpected = exc
                    fault = _platform_fault(exc)
                    error = (
                        f"platform fault (not the unit's): {fault}"
                        if fault is not None
                        else f"{type(exc).__name__}: {exc}"
                    )
                    result = RunResult(state.run_id, str(unit.ref), Outcome.FAILED, error=error)
                    if fault is not None:
                        result.details["platform_fault"] = type(fault).__name__
                    result.usage, result.cost_usd = state.usage, state.cost_usd
                result.taint = state.taint.sources
                if result.error is not None:
                    # It may quote a connection string or a server's error body, and is shown and stored.
                    result.error = redact_secrets(result.error)
                self._tracing.record_run_result(
                    span,
                    result.outcome.value,
                    usage=result.usage,
                    cost_usd=result.cost_usd,
                    # The executors return every way a run can end as an outcome, without raising.
                    error=None if result.ok else result.error or result.outcome.value,
                    exception=unexpected,
                )
                context = getattr(span, "get_span_context", None)
                if context is not None and context().trace_id:
                    result.trace_id = f"{context().trace_id:032x}"
        finally:
            RUN_SPEND.reset(spending)
        result.duration_s = time.perf_counter() - started
        if events is not None:
            events.emit(state.run_id, run_end_event(str(unit.ref), result.outcome.value, result))
        return result

    def _executor(self, unit: AgentLoopUnit | PipelineUnit) -> Any:
        executor = self._executors.get(unit.ref)
        if executor is None:
            executor = (
                AgentLoopExecutor(unit, self)
                if isinstance(unit, AgentLoopUnit)
                else PipelineExecutor(unit, self)
            )
            self._executors[unit.ref] = executor
        return executor

    async def _run_supervisor(self, unit: SupervisorUnit, tasks: list[Task], state: RunState) -> RunResult:
        tracing = self._tracing

        async def dispatch(target: SpecRef, payload: Mapping[str, Any], task: Task) -> RunResult:
            with tracing.task_span(unit.name, task.task_id, task.task_type, task.priority or 0) as span:
                remote = self.plan.remote_agents.get(target.name) if target.kind == "RemoteAgent" else None
                if remote is not None:  # over A2A, from this process, decided as an agent's task is
                    try:
                        result = await self.call_remote_agent(remote, dict(payload), run=state)
                    except ApprovalRequired as exc:  # the task waits for a person, as a unit's would
                        result = RunResult(
                            f"{state.run_id}/{target.name}",
                            remote.label,
                            Outcome.NEEDS_APPROVAL,
                            error=str(exc),
                            details={"approval": exc.request.to_json()},
                        )
                else:
                    result = await self.run_unit(target, dict(payload), parent=state)
                if not result.ok:  # the task's run ended without completing: so did the task
                    tracing.record_error(span, result.outcome.value, result.error or result.outcome.value)
                return result

        outcome = await SupervisorExecutor(unit, dispatch).run(tasks)
        unfinished = {r.outcome for r in outcome.results.values() if not r.outcome.ok}
        overall = (
            Outcome.NEEDS_APPROVAL if unfinished == {Outcome.NEEDS_APPROVAL} else outcome.outcome
        )  # tasks that only wait for a person have not failed
        waiting = [
            ApprovalRequest.from_json(r.run.details["approval"]).handed_through(f"task {task_id}").to_json()
            for task_id, r in outcome.results.items()
            if r.run is not None
            and r.outcome is Outcome.NEEDS_APPROVAL
            and isinstance(r.run.details.get("approval"), dict)
        ]
        return RunResult(
            state.run_id,
            str(unit.ref),
            overall,
            output={task_id: r.to_json() for task_id, r in outcome.results.items()},
            error=None if outcome.outcome.ok else "one or more tasks did not complete",
            usage=state.usage,
            cost_usd=state.cost_usd,
            tool_calls=state.tool_calls,
            details={"start_order": outcome.start_order, **({"approvals": waiting} if waiting else {})},
        )

    async def _auto_approve(self, request: ApprovalRequest) -> bool:
        """Approve every call (`--approve-all`): for offline demos and tests, never the default.
        Each approval is an event on the tool's span, so the trace shows who allowed what."""
        self._tracing.event(
            "tool.approval", {"tool": request.tool, "run_id": request.run_id, "approved_by": "--approve-all"}
        )
        return True

    def _tool_event(self, name: str, attributes: Mapping[str, Any]) -> None:
        self._tracing.event(name, dict(attributes))


def _platform_fault(exc: BaseException) -> PlatformFault | None:
    """The platform fault behind a run's failure (inside an exception group: parallel steps)."""
    if isinstance(exc, PlatformFault):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _platform_fault(inner)
            if found is not None:
                return found
    return None


def find_unit(plan: Plan, name: str) -> AnyUnit:
    """A unit of `plan` by `Kind/name` or bare name. Raises UnknownUnit."""
    kind, _, bare = name.rpartition("/")
    if kind:
        found = plan.unit(kind, bare)
    else:
        matches = plan.find(bare)
        if len(matches) > 1:
            refs = " and ".join(sorted(str(u.ref) for u in matches))
            raise UnknownUnit(f"{name!r} is ambiguous ({refs}); name it as Kind/name")
        found = matches[0] if matches else None
    if found is None:
        names = ", ".join(sorted(str(ref) for ref in plan.units))
        raise UnknownUnit(f"no agent, pipeline or supervisor named {name!r} (known: {names})")
    return found


def tune_gc_for_runs() -> None:
    """Garbage-collector settings for a process hosting many concurrent runs (CLI, actors).

    Runs leave no reference cycles behind (tests/runtime/test_engine.py checks agent runs with
    tool calls, failing tools and delegation, pipelines and supervisors; only exceptions caught
    across task groups, as in a failed pipeline map, make a few), so the cycle collector mostly
    re-walks live runs. Each young-generation pass walks every object
    allocated since the last one that is still alive: the run state added since, plus everything
    in flight at that moment (suspended coroutines, futures, requests: ~8 per concurrent run). So
    the fewer passes, the less of that in-flight set is walked again and again (the figures for
    10,000 concurrent runs are in bench/README.md). Objects alive after start-up (modules, the
    plan) are frozen out of collection."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 20, 100)


# On a run span: every approval the run asks for is granted by `--approve-all`, not by a person.
AP_APPROVE_ALL = "agent_platform.approval.approve_all"


def _policy_of(unit: AgentLoopUnit | PipelineUnit, inherited: ContextPolicy | None) -> ContextPolicy:
    """The policy a run of `unit` runs under: the caller's (if any) tightened by the unit's own."""
    own = context_policy_of(unit)
    return inherited.tighten(own) if inherited is not None else own


def _input_schema(unit: AnyUnit | None) -> dict[str, Any]:
    if isinstance(unit, AgentLoopUnit | PipelineUnit):
        return unit.input_schema
    return {"type": "object"}


def _tasks_of(inputs: Mapping[str, Any]) -> list[Task]:
    raw = inputs.get("tasks") if isinstance(inputs, Mapping) else None
    if not isinstance(raw, list):
        raise TaskError('a supervisor\'s input is {"tasks": [{task_id, task_type, payload, priority}, ...]}')
    return [Task.from_json(item, index) for index, item in enumerate(raw)]


def result_json(result: RunResult) -> str:
    return json.dumps(result.to_json(), indent=2, default=str, ensure_ascii=False)


# The SDKs each provider needs. They take seconds to import the first time: imported inside a
# run, that time would sit in its first model call with no span accounting for it.
_PROVIDER_MODULES = {"anthropic": ("anthropic", "instructor"), "openai": ("openai", "instructor")}


def import_model_sdks(unit: AnyUnit) -> None:
    """Import the SDKs of the unit's models before its run span opens (a no-op once imported)."""
    models = [unit.model] if isinstance(unit, AgentLoopUnit) else []
    if isinstance(unit, PipelineUnit):
        models = [step.model for step in unit.steps]
    for model in models:
        if model is None:
            continue
        for module in _PROVIDER_MODULES.get(model.spec.provider, ()):
            if module not in sys.modules:
                importlib.import_module(module)
