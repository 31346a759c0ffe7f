"""`ToolExecutor`: calls tools with every policy of their spec applied, in this order:

1. allow-list: a tool outside `allowed` -> `ToolNotAllowed` (never called);
2. argument validation -> `ToolArgumentsInvalid` (never called, never retried);
3. authority (`authorise`, the one place this is decided, also for tasks sent to remote agents
   through `authorise_remote_task`): once untrusted content is in the run's context (`taint`),
   the run's `ContextPolicy` may refuse a side effect or a host (`ToolNotAllowed`, shown to the
   model) or ask for approval; a tool that requires approval always asks. Approval goes through
   the `approver` hook; with none configured the call is not made and `ApprovalRequired` is
   raised: the one exception that leaves `call()`, because the run must stop rather than let the
   model work around a call waiting for a person;
4. idempotency: `cache` (memoised, single-flight) or `key` (durable store: a stored result is
   returned instead of running again);
5. per attempt: circuit breaker -> timeout (`asyncio.timeout`) -> the call -> output to JSON ->
   `output_schema` check; attempts retried per the retry policy (tenacity, clock-driven sleeps);
6. the result (or the typed error) as a `ToolResult`. Errors never raise out of `call()` (except
   cancellation and `ApprovalRequired`): the agent loop shows them to the model.

The breaker is consulted per attempt (inside the retry loop), so a breaker that opens during a
retry sequence ends it with `CircuitOpen`.

In `cache` and `key` mode identical concurrent calls share one execution (single-flight), which
runs in its own task: cancelling one caller (say, on its run's timeout) stops it waiting but does
not interrupt the shared call, which finishes within the tool's timeout and stores its result (a
side effect is never abandoned half-way by a caller's cancellation). In mode `none` cancelling
the caller cancels the call.

One executor per runtime: it owns the per-tool breakers, caches and in-flight maps, nothing is
global. Sync functions run in a worker thread; `@tool(inline=True)` ones run on the loop (see
`registry`). A sync function still running when its timeout fires keeps running in its thread
(threads cannot be killed): another reason side effects are retried only with idempotency keys.

Tracing hook: pass `on_event(name, attributes)` and the executor reports `tool.retry`
(attempt, wait_s, error), `tool.circuit` (from, to), `tool.cache` (outcome: hit/shared/miss),
`tool.idempotency` (outcome: replayed/executed) and `tool.error` (category, message). It is
called synchronously in the caller's context, so the tracing layer can attach the events to the
current OpenTelemetry span (`trace.get_current_span().add_event(name, attributes)`) without this
module importing OpenTelemetry. Keep it cheap: it runs on the hot path.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

from agent_platform._compile.plan import ToolBinding
from agent_platform._faults import PlatformFault
from agent_platform._runstore.idempotency import IdempotencyStore, SqliteIdempotencyStore
from agent_platform._runtime.approval import ApprovalRequest, ApprovalRequired, Approver
from agent_platform._runtime.clock import Clock, SystemClock
from agent_platform._runtime.tools.arguments import ArgumentsNotSerializable, SchemaCheck, ToolArguments
from agent_platform._runtime.tools.errors import (
    IdempotencyConflict,
    ToolError,
    ToolFailed,
    ToolNotAllowed,
    ToolOutputInvalid,
    ToolTimeout,
    ToolUnavailable,
    classify,
)
from agent_platform._runtime.tools.idempotency import (
    ResultCache,
    SingleFlight,
    default_key,
    render_key,
    run_once,
    sha256_hex,
)
from agent_platform._runtime.tools.interface import Tool
from agent_platform._runtime.tools.python_tool import PythonTool
from agent_platform._runtime.tools.registry import ToolRegistry
from agent_platform._runtime.tools.resilience import (
    CircuitBreaker,
    CircuitState,
    RetryRunner,
    effective_retry_policy,
    max_total_backoff,
)
from agent_platform._spec.policy import ContextPolicy, SideEffectRule, ToolPolicy

if TYPE_CHECKING:
    from jinja2 import Template

    from agent_platform._runtime.provenance import TaintState
    from agent_platform._spec.kinds import ToolSpec

log = logging.getLogger(__name__)

EventHook = Callable[[str, dict[str, Any]], None]


@dataclass(slots=True)
class ToolResult:
    """The outcome of one `call()`. `output` is JSON data (None on error)."""

    tool: str
    output: Any = None
    error: ToolError | None = None
    duration_s: float = 0.0
    attempts: int = 0
    cached: bool = False
    from_idempotency_store: bool = False

    @property
    def is_error(self) -> bool:
        return self.error is not None

    def content(self) -> str:
        """The result as text for the model: the output (strings as they are, anything else as
        JSON), or the error's message for the model."""
        if self.error is not None:
            return self.error.for_model()
        if isinstance(self.output, str):
            return self.output
        return json.dumps(self.output, ensure_ascii=False, default=str)


@dataclass(slots=True)
class _Attempts:
    count: int = 0


@dataclass(slots=True)
class _Entry:
    name: str
    tool: Tool
    spec: ToolSpec
    policy: ToolPolicy
    retry: RetryRunner | None = None
    breaker: CircuitBreaker | None = None
    cache: ResultCache | None = None
    key_template: Template | None = None
    output_check: SchemaCheck | None = None
    lease_s: float = 60.0
    flights: SingleFlight[Any] = field(default_factory=SingleFlight)
    unavailable: ToolUnavailable | None = None
    keyed: bool = False
    warned_uncacheable: bool = False
    # Set for an inline sync Python tool with no breaker, cache, idempotency key or approval: its
    # first attempt is a plain call (see `ToolExecutor.call`).
    direct_func: Callable[..., Any] | None = None
    # What a tainted run's policy governs: side effects or network egress (checked per call).
    governed_when_tainted: bool = False


_PLAIN_TYPES: frozenset[type] = frozenset({dict, list, str, int, float, bool, type(None)})


def _json_output(entry: _Entry, result: Any) -> Any:
    """A tool's result as JSON data, checked against its output schema."""
    try:
        output = to_jsonable_python(result)
    except PydanticSerializationError as exc:
        raise ToolOutputInvalid(entry.name, [f"the result has no JSON form: {exc}"]) from None
    output_check = entry.output_check
    if output_check is not None:
        errors = output_check.errors(output)
        if errors:
            raise ToolOutputInvalid(entry.name, errors)
    return output


# How `authorise` words a task for a remote agent (a tool call's wording is its default).
REMOTE_TASK_ACT = "the task leaves the platform for a remote agent, which may act on it"
REMOTE_TASK_NOT_SENT = "the task was not sent"


def authorise(
    name: str,
    tool: ToolPolicy,
    taint: TaintState | None,
    policy: ContextPolicy | None,
    *,
    acting: str = "the tool has side effects",
    not_done: str = "it was not called",
) -> tuple[str, ...]:
    """Why a call of `name` needs a person's approval (empty: it does not). Raises
    `ToolNotAllowed` when the policy of a run with untrusted content in its context refuses it.
    `taint` is given only when the run is tainted. Decided from where the run's content came
    from, never from what it says: once untrusted content is in the context, a call with side
    effects (`acting` says which), or a request to a host the policy does not list (it can carry
    out what the run has read), follows the policy's `side_effects` rule."""
    reasons: list[str] = []
    if tool.requires_approval:
        reasons.append("the tool requires approval")
    if taint is None or not (tool.side_effects or tool.egress):
        return tuple(reasons)
    if policy is None:  # a caller that states no policy gets the default rule, and no host list
        rule, owners, unlisted = SideEffectRule.REQUIRE_APPROVAL, "the default policy", None
    else:
        rule, owners = policy.side_effects, " and ".join(policy.owners)
        unlisted = policy.refused_egress(tool.endpoints) if tool.egress else None
    acts: list[str] = []
    if tool.side_effects:
        acts.append(acting)
    if unlisted is not None:
        egress_rule, endpoint = unlisted
        where = endpoint or "a host chosen at call time"
        acts.append(
            f"it sends a request to {where}, which {egress_rule.owner} does not list in untrusted_context.egress"
        )
    if not acts:
        return tuple(reasons)
    context = f"untrusted content ({taint.describe()}) is in this run's context"
    if rule is SideEffectRule.DENY:
        raise ToolNotAllowed(
            name,
            f"refused: {context}, {' and '.join(acts)}, and the untrusted_context policy of {owners} "
            f"denies that then; {not_done}",
        )
    if rule is SideEffectRule.REQUIRE_APPROVAL and (unlisted is not None or not tool.requires_approval):
        reasons.append(f"{context} and {' and '.join(acts)} ({owners}: require_approval)")
    return tuple(reasons)


class ToolExecutor:
    """Calls the tools of a plan (see the module docstring)."""

    def __init__(
        self,
        bindings: Mapping[str, ToolBinding] | Iterable[ToolBinding],
        registry: ToolRegistry,
        *,
        clock: Clock | None = None,
        idempotency_store: IdempotencyStore | None = None,
        on_event: EventHook | None = None,
        approver: Approver | None = None,
        wrap_tool: Callable[[ToolBinding, Tool], Tool] | None = None,
    ) -> None:
        self.registry = registry
        # A host may run some tools elsewhere (the Ray backend: `isolation: task` tools as Ray
        # tasks); the executor's policies (timeout, retries, breaker, idempotency) still apply.
        self.wrap_tool = wrap_tool
        self.clock: Clock = clock or SystemClock()
        # The real clock's reading without its wrapper method (two readings per call).
        self._monotonic: Callable[[], float] = (
            time.monotonic if type(self.clock) is SystemClock else self.clock.monotonic
        )
        self._store = idempotency_store
        self._owns_store = False
        self.on_event = on_event
        self.approver = approver
        items = bindings.values() if isinstance(bindings, Mapping) else bindings
        self._entries: dict[str, _Entry] = {}
        for binding in items:
            self._entries[binding.name] = self._build(binding)

    # setup

    def _build(self, binding: ToolBinding) -> _Entry:
        spec = binding.spec
        tool = self.registry.load_binding(binding)
        if self.wrap_tool is not None:
            tool = self.wrap_tool(binding, tool)
        entry = _Entry(binding.name, tool, spec, binding.policy)
        entry.governed_when_tainted = binding.policy.side_effects or binding.policy.egress
        try:
            policy = effective_retry_policy(spec)
            entry.retry = RetryRunner(
                policy,
                self.clock,
                resolve=self.registry.import_object,
                on_retry=self._retry_hook(binding.name),
            )
            if spec.circuit_breaker is not None:
                entry.breaker = CircuitBreaker(
                    binding.name, spec.circuit_breaker, self.clock, on_change=self._circuit_hook
                )
            idempotency = spec.idempotency
            if idempotency.mode == "cache" and spec.side_effects:
                log.warning(
                    "tool %s has side effects: cache mode ignored (it is not idempotency)", binding.name
                )
            elif idempotency.mode == "cache":
                entry.cache = ResultCache(idempotency.max_entries, idempotency.ttl, self.clock)
            elif idempotency.mode == "key":
                entry.keyed = True
                if idempotency.key is not None:
                    from agent_platform._runtime.rendering import compile_template

                    entry.key_template = compile_template(idempotency.key)
                entry.lease_s = spec.timeout * policy.max_attempts + max_total_backoff(policy) + 10.0
            if spec.output_schema is not None:
                entry.output_check = SchemaCheck(spec.output_schema)
            if (
                type(tool) is PythonTool
                and tool.runs_inline
                and not tool.is_async
                and entry.breaker is None
                and entry.cache is None
                and not entry.keyed
                and not binding.policy.requires_approval
            ):
                entry.direct_func = tool.func
        except Exception as exc:
            reason = f"invalid policy: {type(exc).__name__}: {exc}"
            log.warning("tool %s unavailable: %s", binding.name, reason)
            entry.unavailable = ToolUnavailable(binding.name, reason)
        return entry

    def _retry_hook(self, name: str) -> Callable[[int, float, BaseException], None]:
        def hook(attempt: int, wait_s: float, error: BaseException) -> None:
            log.info("tool %s: attempt %d failed (%s); retrying in %.3fs", name, attempt, error, wait_s)
            if self.on_event is not None:
                self.on_event(
                    "tool.retry",
                    {"tool": name, "attempt": attempt, "wait_s": wait_s, "error": type(error).__name__},
                )

        return hook

    def _circuit_hook(self, tool: str, old: CircuitState, new: CircuitState) -> None:
        if self.on_event is not None:
            self.on_event("tool.circuit", {"tool": tool, "from": str(old), "to": str(new)})

    @property
    def idempotency_store(self) -> IdempotencyStore:
        """The durable store (the default SQLite file is opened on first use)."""
        if self._store is None:
            self._store = SqliteIdempotencyStore()
            self._owns_store = True
        return self._store

    # introspection

    def names(self) -> list[str]:
        return sorted(self._entries)

    def tool(self, name: str) -> Tool:
        return self._entry(name).tool

    def arguments_model(self, name: str) -> type[BaseModel]:
        return self._entry(name).tool.arguments_model

    def describe(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """`{name, description, input_schema}` of the given tools (default: all), in order."""
        chosen = self.names() if names is None else list(names)
        return [self._entry(n).tool.describe() for n in chosen]

    def breaker(self, name: str) -> CircuitBreaker | None:
        return self._entry(name).breaker

    def cache(self, name: str) -> ResultCache | None:
        return self._entry(name).cache

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            from agent_platform._diagnostics import did_you_mean

            raise ToolUnavailable(name, f"no tool named '{name}'{did_you_mean(name, list(self._entries))}")
        return entry

    # calling

    async def call(
        self,
        tool_name: str,
        raw_arguments: Mapping[str, Any],
        *,
        run_id: str,
        allowed: AbstractSet[str] | None = None,
        taint: TaintState | None = None,
        policy: ContextPolicy | None = None,
        approvals: Mapping[str, bool] | None = None,
    ) -> ToolResult:
        """Call a tool; errors come back in the result (see the module docstring). `taint` and
        `policy` are the calling run's: what is in its context, and what it may then do;
        `approvals` what people decided about its calls (`ApprovalRequest.key` -> approved)."""
        monotonic = self._monotonic
        started = monotonic()
        if allowed is not None and tool_name not in allowed:
            listing = ", ".join(sorted(allowed)) or "none"
            reason = f"'{tool_name}' is not one of your tools (allowed: {listing}); it was not called"
            return self._failed(ToolNotAllowed(tool_name, reason), started, 0)
        entry = self._entries.get(tool_name)
        if entry is None:
            try:
                self._entry(tool_name)
            except ToolUnavailable as exc:
                return self._failed(exc, started, 0)
            raise AssertionError("unreachable")
        if entry.unavailable is not None:
            return self._failed(entry.unavailable, started, 0)
        attempts = _Attempts()
        try:
            arguments = entry.tool.validate(raw_arguments)
            direct = entry.direct_func
            tainted = taint is not None and taint.tainted
            if direct is not None and not (tainted and entry.governed_when_tainted):
                # What `_execute` does for this tool, minus the machinery it does not need: the
                # first attempt is a plain call on the loop; only a failure enters the retry policy.
                attempts.count = 1
                try:
                    result = direct(*arguments.args, **arguments.kwargs)
                    if type(result) not in _PLAIN_TYPES and inspect.isawaitable(result):
                        result = await result
                    output = _json_output(entry, result)
                except Exception as exc:
                    output = await self._retry_after(entry, arguments, attempts, exc)
                # Positional: the hot path (ToolResult(tool, output, error, duration_s, attempts)).
                return ToolResult(tool_name, output, None, monotonic() - started, attempts.count)
            reasons = self._authorise(entry, taint if tainted else None, policy)
            if entry.keyed:
                output, replayed = await self._call_keyed(
                    entry, arguments, run_id, attempts, reasons, taint, approvals
                )
                return ToolResult(
                    tool_name,
                    output,
                    duration_s=monotonic() - started,
                    attempts=attempts.count,
                    from_idempotency_store=replayed,
                )
            if reasons:
                await self._approve(entry, arguments, run_id, reasons, taint, approvals)
            if entry.cache is not None:
                key = self._cache_key(entry, arguments)
                if key is not None:
                    output, outcome = await entry.cache.get_or_run(
                        key, lambda: self._execute(entry, arguments, attempts)
                    )
                    if self.on_event is not None:
                        self.on_event("tool.cache", {"tool": tool_name, "outcome": outcome})
                    return ToolResult(
                        tool_name,
                        output,
                        duration_s=monotonic() - started,
                        attempts=attempts.count,
                        cached=outcome != "miss",
                    )
            output = await self._execute(entry, arguments, attempts)
            return ToolResult(tool_name, output, duration_s=monotonic() - started, attempts=attempts.count)
        except ToolError as exc:
            return self._failed(exc, started, attempts.count)
        except (ApprovalRequired, PlatformFault):
            raise  # a person's decision, or the platform's own failure: never the tool's error
        except Exception as exc:  # a hook's failure: still a result, never a crash
            log.exception("tool %s: unexpected error", tool_name)
            return self._failed(ToolFailed(tool_name, exc, classify(exc)), started, attempts.count)

    def _failed(self, error: ToolError, started: float, attempts: int) -> ToolResult:
        error.attempts = attempts
        if self.on_event is not None:
            self.on_event(
                "tool.error", {"tool": error.tool, "category": error.category or "", "message": error.message}
            )
        return ToolResult(error.tool, error=error, duration_s=self._monotonic() - started, attempts=attempts)

    def _cache_key(self, entry: _Entry, arguments: ToolArguments) -> str | None:
        try:
            return sha256_hex(arguments.canonical_json())
        except ArgumentsNotSerializable as exc:
            if not entry.warned_uncacheable:
                entry.warned_uncacheable = True
                log.warning("tool %s: call not cached, its arguments have no JSON form: %s", entry.name, exc)
            return None

    @staticmethod
    def _authorise(entry: _Entry, taint: TaintState | None, policy: ContextPolicy | None) -> tuple[str, ...]:
        """Why this call needs a person's approval (empty: it does not); see `authorise`."""
        return authorise(entry.name, entry.policy, taint, policy)

    async def authorise_remote_task(
        self,
        label: str,
        description: str,
        tool_policy: ToolPolicy,
        task: Mapping[str, Any],
        *,
        run_id: str,
        taint: TaintState | None,
        policy: ContextPolicy | None,
        approvals: Mapping[str, bool] | None = None,
    ) -> None:
        """Decide a task for a remote agent (`label`, e.g. `RemoteAgent/x`) as a tool call with
        `tool_policy` is decided: the same rules and the same approvals (`approvals`, then the
        approver), so a run cannot send out over A2A what it could not send through a tool.
        Returns when it may be sent; raises `ToolNotAllowed` (refused, or denied by a person) or
        `ApprovalRequired` (nobody to ask)."""
        reasons = authorise(
            label,
            tool_policy,
            taint if taint is not None and taint.tainted else None,
            policy,
            acting=REMOTE_TASK_ACT,
            not_done=REMOTE_TASK_NOT_SENT,
        )
        if reasons:
            request = ApprovalRequest(
                label, description, dict(task), run_id, reasons, taint.sources if taint is not None else ()
            )
            await self._decide(request, approvals, not_done=REMOTE_TASK_NOT_SENT)

    async def _approve(
        self,
        entry: _Entry,
        arguments: ToolArguments,
        run_id: str,
        reasons: tuple[str, ...],
        taint: TaintState | None,
        approvals: Mapping[str, bool] | None = None,
    ) -> None:
        try:
            shown = arguments.jsonable()
        except ArgumentsNotSerializable:
            shown = {k: repr(v) for k, v in arguments.kwargs.items()}
        request = ApprovalRequest(
            entry.name,
            entry.tool.description,
            shown,
            run_id,
            reasons,
            taint.sources if taint is not None else (),
        )
        await self._decide(request, approvals)

    async def _decide(
        self,
        request: ApprovalRequest,
        approvals: Mapping[str, bool] | None,
        *,
        not_done: str = "it was not called",
    ) -> None:
        """A person's decision about this exact call, else the approver's; `ApprovalRequired`
        with neither. Returns when approved, raises `ToolNotAllowed` when not."""
        decided = approvals.get(request.key) if approvals else None
        if decided is not None:  # a person decided about this exact call while the run was paused
            if self.on_event is not None:
                self.on_event(
                    "tool.approval",
                    {
                        "tool": request.tool,
                        "run_id": request.run_id,
                        "call_key": request.key,
                        "decision": "approved" if decided else "denied",
                    },
                )
            if decided:
                return
            raise ToolNotAllowed(request.tool, f"a person denied this call when asked; {not_done}")
        if self.approver is None:
            raise ApprovalRequired(request)
        if not await self.approver(request):
            raise ToolNotAllowed(request.tool, f"the call was not approved; {not_done}")

    async def _call_keyed(
        self,
        entry: _Entry,
        arguments: ToolArguments,
        run_id: str,
        attempts: _Attempts,
        reasons: tuple[str, ...] = (),
        taint: TaintState | None = None,
        approvals: Mapping[str, bool] | None = None,
    ) -> tuple[Any, bool]:
        try:
            data = arguments.jsonable()
            if entry.key_template is not None:
                key = render_key(entry.key_template, run_id=run_id, tool=entry.name, args=data)
            else:
                key = default_key(run_id, entry.name, arguments.canonical_json())
        except Exception as exc:
            raise IdempotencyConflict(
                entry.name, "", f"cannot derive the idempotency key ({type(exc).__name__}: {exc}); not called"
            ) from exc
        key_hash = sha256_hex(key)
        store = self.idempotency_store
        if reasons:  # a stored result needs no new approval: replaying it repeats no side effect
            record = await store.get(entry.name, key_hash)
            now = self.clock.now()
            live = record is not None and (record.expires_at is None or record.expires_at > now)
            if record is None or not live or record.status != "succeeded":
                await self._approve(entry, arguments, run_id, reasons, taint, approvals)

        async def execute() -> Any:
            return await self._execute(entry, arguments, attempts)

        async def keyed() -> Any:
            return await run_once(
                store,
                entry.name,
                key_hash,
                execute,
                clock=self.clock,
                lease_s=entry.lease_s,
                ttl_s=entry.spec.idempotency.ttl,
            )

        outcome, shared = await entry.flights.run(key_hash, keyed)
        replayed = outcome.from_store or shared
        if self.on_event is not None:
            self.on_event(
                "tool.idempotency", {"tool": entry.name, "outcome": "replayed" if replayed else "executed"}
            )
        return outcome.output, replayed

    def _attempt(
        self, entry: _Entry, arguments: ToolArguments, attempts: _Attempts
    ) -> Callable[[], Awaitable[Any]]:
        """One attempt: breaker -> timeout -> call -> JSON output -> output schema."""
        tool = entry.tool
        breaker = entry.breaker
        timeout = entry.spec.timeout
        name = entry.name

        async def attempt() -> Any:
            attempts.count += 1
            trial = breaker.acquire() if breaker is not None else False
            try:
                if tool.runs_inline:
                    result = await tool.invoke(arguments)
                else:
                    try:
                        async with asyncio.timeout(timeout) as scope:
                            result = await tool.invoke(arguments)
                    except TimeoutError:
                        if scope.expired():
                            raise ToolTimeout(name, timeout) from None
                        raise
                output = _json_output(entry, result)
            except BaseException as exc:
                if breaker is not None:
                    breaker.record(trial, exc)
                raise
            if breaker is not None:
                breaker.record_success(trial)
            return output

        return attempt

    async def _execute(self, entry: _Entry, arguments: ToolArguments, attempts: _Attempts) -> Any:
        """Breaker -> timeout -> call -> JSON output -> output schema, retried per the policy."""
        attempt = self._attempt(entry, arguments, attempts)
        retry = entry.retry
        assert retry is not None
        try:
            if retry.max_attempts == 1:
                return await attempt()
            return await retry.run(attempt)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolFailed(entry.name, exc, classify(exc)) from exc

    async def _retry_after(
        self, entry: _Entry, arguments: ToolArguments, attempts: _Attempts, first: Exception
    ) -> Any:
        """`_execute` after a first attempt the caller made itself failed with `first`."""
        retry = entry.retry
        assert retry is not None
        try:
            return await retry.run_after(first, self._attempt(entry, arguments, attempts))
        except ToolError:
            raise
        except Exception as exc:
            raise ToolFailed(entry.name, exc, classify(exc)) from exc

    async def aclose(self) -> None:
        """Close HTTP clients and the store this executor opened."""
        await self.registry.aclose()
        if self._owns_store and self._store is not None:
            await self._store.aclose()
