"""Retries (tenacity) and a per-tool circuit breaker, both driven by an injected `Clock`.

Retries
    `RetryRunner` retries an attempt function on the error categories / exception classes the
    policy declares, with exponential backoff `initial * multiplier**(n-1)` capped at `max`:
    jitter `none` waits exactly that; `full` waits uniform(0, d) (`wait_random_exponential`);
    `equal` waits d/2 + uniform(0, d/2). Waits are slept with the clock's `sleep`, so a
    `FakeClock` records the exact sequence. The first attempt runs outside tenacity (its machinery
    costs more than a fast tool's call even when nothing fails); only after a retryable failure does tenacity
    take over, replaying that failure as its attempt 1, so waits and stop counts are unchanged.

    Policy (`effective_retry_policy`): the spec's `retry`, else 3 attempts on timeout/connection
    for tools without side effects and 1 attempt for tools with side effects. A tool with
    `side_effects: true` is never retried unless its idempotency mode is `key`: enforced here at
    runtime, whatever the spec says (validation rejects it too).

Circuit breaker
    closed -> open after `failure_threshold` consecutive failures -> half-open once `reset_after`
    has passed on the clock -> closed after a successful trial call, or open again after a failed
    one. At most `half_open_max_calls` trial calls run at once; other calls fail fast with
    `CircuitOpen` (carrying the time until the next trial). The breaker sees every attempt, so a
    breaker that opens during a retry sequence stops it. Errors that show the dependency is up
    but refused *this* call (a plugin's ValueError/TypeError/LookupError, an HTTP 4xx other than
    408/429) count as successes for the breaker, so a model sending bad input cannot open it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from agent_platform._runtime.clock import Clock
from agent_platform._runtime.tools.errors import (
    RETRY_CATEGORIES,
    CircuitOpen,
    HttpStatusError,
    IdempotencyConflict,
    ToolArgumentsInvalid,
    ToolNotAllowed,
    ToolUnavailable,
    classify,
)
from agent_platform._spec.common import Backoff, CircuitBreakerPolicy, RetryPolicy
from agent_platform._spec.kinds import ToolSpec

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RETRY_ON: tuple[str, ...] = ("timeout", "connection")
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    ToolArgumentsInvalid,
    CircuitOpen,
    ToolNotAllowed,
    ToolUnavailable,
    IdempotencyConflict,
)


def effective_retry_policy(spec: ToolSpec) -> RetryPolicy:
    """The retry policy a tool really gets (see the module docstring)."""
    if spec.retry is not None:
        policy = spec.retry
    elif spec.side_effects:
        policy = RetryPolicy(max_attempts=1, retry_on=list(DEFAULT_RETRY_ON))
    else:
        policy = RetryPolicy(max_attempts=3, retry_on=list(DEFAULT_RETRY_ON))
    if spec.side_effects and spec.idempotency.mode != "key" and policy.max_attempts > 1:
        log.warning(
            "tool with side effects and no idempotency key: retries disabled (spec asked for %d attempts)",
            policy.max_attempts,
        )
        policy = policy.model_copy(update={"max_attempts": 1})
    return policy


def backoff_wait(backoff: Backoff) -> wait_base:
    """The tenacity wait strategy for a backoff policy."""
    if backoff.jitter == "none":
        return wait_exponential(multiplier=backoff.initial, exp_base=backoff.multiplier, max=backoff.max)
    if backoff.jitter == "full":
        return wait_random_exponential(
            multiplier=backoff.initial, exp_base=backoff.multiplier, max=backoff.max
        )
    half_fixed = wait_exponential(
        multiplier=backoff.initial / 2, exp_base=backoff.multiplier, max=backoff.max / 2
    )
    half_random = wait_random_exponential(
        multiplier=backoff.initial / 2, exp_base=backoff.multiplier, max=backoff.max / 2
    )
    return half_fixed + half_random


def max_total_backoff(policy: RetryPolicy) -> float:
    """Upper bound of all waits of one call (for idempotency leases)."""
    b = policy.backoff
    return sum(min(b.initial * b.multiplier**n, b.max) for n in range(policy.max_attempts - 1))


RetryHook = Callable[[int, float, BaseException], None]


class RetryRunner:
    """Runs an attempt function under a retry policy. Stateless between calls: share one per tool."""

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Clock,
        *,
        resolve: Callable[[str], Any] | None = None,
        on_retry: RetryHook | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.max_attempts = policy.max_attempts
        self.categories = frozenset(c for c in policy.retry_on if c in RETRY_CATEGORIES)
        classes: list[type[BaseException]] = []
        for ref in policy.retry_on:
            if ref in RETRY_CATEGORIES:
                continue
            if resolve is None:
                raise ValueError(f"retry_on names the exception class '{ref}' but nothing can import it")
            found = resolve(ref)
            if not (isinstance(found, type) and issubclass(found, BaseException)):
                raise TypeError(f"retry_on: '{ref}' is not an exception class")
            classes.append(found)
        self.exception_classes = tuple(classes)
        self.on_retry = on_retry
        self._wait = backoff_wait(policy.backoff)

    def should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, Exception) or isinstance(exc, NEVER_RETRIED):
            return False  # CancelledError, KeyboardInterrupt, and errors a retry cannot fix
        if self.exception_classes and isinstance(exc, self.exception_classes):
            return True
        return classify(exc) in self.categories

    def _before_sleep(self, state: RetryCallState) -> None:
        if self.on_retry is None or state.outcome is None or state.next_action is None:
            return
        error = state.outcome.exception()
        if error is not None:
            self.on_retry(state.attempt_number, state.next_action.sleep, error)

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`await attempt()`, retried per the policy; the last error is re-raised as it is."""
        try:
            return await attempt()
        except Exception as exc:
            if self.max_attempts <= 1 or not self.should_retry(exc):
                raise
            first = exc
        return await self._retry(first, attempt)

    async def run_after(self, first: Exception, attempt: Callable[[], Awaitable[T]]) -> T:
        """`run` for a caller that made the first attempt itself and saw it fail with `first`:
        re-raises it when it is not retried, else retries with `attempt` exactly as `run` would."""
        if self.max_attempts <= 1 or not self.should_retry(first):
            raise first
        return await self._retry(first, attempt)

    async def _retry(self, failed: Exception, attempt: Callable[[], Awaitable[T]]) -> T:
        first: BaseException | None = failed

        async def replay_then_attempt() -> T:
            nonlocal first
            if first is not None:
                error, first = first, None
                raise error
            return await attempt()

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(self.should_retry),
            sleep=self.clock.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return await retrying(replay_then_attempt)


# --- circuit breaker --------------------------------------------------------------------------


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def dependency_answered(exc: BaseException) -> bool:
    """True for errors that show the dependency is up but refused this particular call."""
    if classify(exc) is not None:
        return False
    if isinstance(exc, HttpStatusError):
        return 400 <= exc.status < 500
    return isinstance(exc, ValueError | TypeError | LookupError)


StateHook = Callable[[str, CircuitState, CircuitState], None]


class CircuitBreaker:
    """One tool's breaker. Used from one event loop only (no locks needed: no awaits inside)."""

    def __init__(
        self, tool: str, policy: CircuitBreakerPolicy, clock: Clock, *, on_change: StateHook | None = None
    ) -> None:
        self.tool = tool
        self.policy = policy
        self.clock = clock
        self.on_change = on_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._remaining() <= 0:
            self._set(CircuitState.HALF_OPEN)
        return self._state

    def observed_state(self) -> CircuitState:
        """The state as the next call would find it, without moving the breaker there: metrics
        read it from their exporter's thread, while the breaker belongs to its event loop."""
        if self._state is CircuitState.OPEN and self._remaining() <= 0:
            return CircuitState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def _remaining(self) -> float:
        return self._opened_at + self.policy.reset_after - self.clock.monotonic()

    def _set(self, state: CircuitState) -> None:
        old, self._state = self._state, state
        if state is CircuitState.OPEN:
            self._opened_at = self.clock.monotonic()
        if state is not CircuitState.HALF_OPEN:
            self._trials = 0
        if state is CircuitState.CLOSED:
            self._failures = 0
        if old is not state:
            log.info("circuit of tool %s: %s -> %s", self.tool, old, state)
            if self.on_change is not None:
                self.on_change(self.tool, old, state)

    def acquire(self) -> bool:
        """Admit a call, or raise `CircuitOpen`. Returns True when the call is a half-open trial
        (pass it back to `record_*`)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return False
        if state is CircuitState.OPEN:
            raise CircuitOpen(self.tool, self._remaining())
        if self._trials >= self.policy.half_open_max_calls:
            raise CircuitOpen(self.tool, 0.0, half_open=True)
        self._trials += 1
        return True

    def record_success(self, trial: bool) -> None:
        if trial:
            self._trials = max(0, self._trials - 1)
            if self._state is CircuitState.HALF_OPEN:
                self._set(CircuitState.CLOSED)
        elif self._state is CircuitState.CLOSED:
            self._failures = 0

    def record_failure(self, trial: bool) -> None:
        if trial:
            self._trials = max(0, self._trials - 1)
            if self._state is CircuitState.HALF_OPEN:
                self._set(CircuitState.OPEN)
            return
        if self._state is CircuitState.CLOSED:  # late results of calls admitted earlier are ignored
            self._failures += 1
            if self._failures >= self.policy.failure_threshold:
                self._set(CircuitState.OPEN)

    def release(self, trial: bool) -> None:
        """The call ended without telling us anything (cancelled)."""
        if trial:
            self._trials = max(0, self._trials - 1)

    def record(self, trial: bool, error: BaseException | None) -> None:
        """Record an attempt's outcome: success, a failure of the dependency, or neither (the
        call was cancelled, or never reached the dependency: `ToolUnavailable`)."""
        if isinstance(error, ToolUnavailable):
            self.release(trial)
        elif error is None or (isinstance(error, Exception) and dependency_answered(error)):
            self.record_success(trial)
        elif isinstance(error, Exception):
            self.record_failure(trial)
        else:
            self.release(trial)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.tool!r}, {self.state}, failures={self._failures})"
