"""Retries (timing on a fake clock, only on declared errors, never for unkeyed side effects),
timeouts and the circuit breaker's transitions."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from agent_platform._compile.plan import ToolBinding
from agent_platform._runtime.clock import FakeClock
from agent_platform._runtime.tools import (
    CircuitOpen,
    ToolExecutor,
    ToolFailed,
    ToolRegistry,
    ToolTimeout,
)
from agent_platform._runtime.tools.errors import classify
from agent_platform._runtime.tools.resilience import (
    CircuitBreaker,
    CircuitState,
    effective_retry_policy,
)
from agent_platform._spec.common import CircuitBreakerPolicy
from agent_platform._spec.kinds import ToolSpec


def spec(**fields: Any) -> ToolSpec:
    fields.setdefault("description", "A test tool.")
    fields.setdefault("python", "testing:registered")
    return ToolSpec.model_validate(fields)


class Flaky:
    """Fails with the given errors in turn, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, x: int = 0) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def make(fn: Any, clock: FakeClock | None = None, name: str = "t", **fields: Any) -> ToolExecutor:
    registry = ToolRegistry(plugin_paths=[])
    registry.register(fn, name=name)
    return ToolExecutor([ToolBinding(name, spec(**fields))], registry, clock=clock or FakeClock())


NO_JITTER = {"initial": 0.5, "max": 1.5, "multiplier": 2.0, "jitter": "none"}


# --- retry timing -----------------------------------------------------------------------------


async def test_retry_waits_follow_exponential_backoff_exactly_without_jitter() -> None:
    clock = FakeClock()
    events: list[tuple[str, dict[str, Any]]] = []
    flaky = Flaky(ConnectionError("reset"), ConnectionError("reset"), ConnectionError("reset"))
    registry = ToolRegistry(plugin_paths=[])
    registry.register(flaky, name="t")
    policy = {"max_attempts": 4, "backoff": NO_JITTER, "retry_on": ["connection"]}
    executor = ToolExecutor(
        [ToolBinding("t", spec(retry=policy))],
        registry,
        clock=clock,
        on_event=lambda name, attrs: events.append((name, attrs)),
    )
    result = await executor.call("t", {}, run_id="r")
    assert result.output == "ok" and not result.is_error
    assert result.attempts == 4 and flaky.calls == 4
    assert clock.sleeps == [0.5, 1.0, 1.5]  # 0.5 * 2**n, capped at max
    retries = [attrs for name, attrs in events if name == "tool.retry"]
    assert [r["attempt"] for r in retries] == [1, 2, 3]
    assert [r["wait_s"] for r in retries] == [0.5, 1.0, 1.5]


@pytest.mark.parametrize(
    ("jitter", "low", "high"),
    [("full", lambda d: 0.0, lambda d: d), ("equal", lambda d: d / 2, lambda d: d)],
)
async def test_jittered_waits_stay_within_their_bounds(jitter: str, low: Any, high: Any) -> None:
    clock = FakeClock()
    backoff = {"initial": 0.5, "max": 3.0, "multiplier": 2.0, "jitter": jitter}
    policy = {"max_attempts": 5, "backoff": backoff, "retry_on": ["timeout"]}
    all_waits: list[float] = []
    for _ in range(20):
        clock.sleeps.clear()
        flaky = Flaky(*(TimeoutError() for _ in range(4)))
        result = await make(flaky, clock, retry=policy).call("t", {}, run_id="r")
        assert result.output == "ok"
        caps = [0.5, 1.0, 2.0, 3.0]
        assert len(clock.sleeps) == 4
        for wait, cap in zip(clock.sleeps, caps, strict=True):
            assert low(cap) <= wait <= high(cap)
        all_waits.extend(clock.sleeps)
    assert len(set(all_waits)) > 10  # really random


async def test_only_declared_errors_are_retried() -> None:
    policy = {"max_attempts": 3, "backoff": NO_JITTER, "retry_on": ["timeout"]}
    flaky = Flaky(ConnectionError("refused"))
    result = await make(flaky, retry=policy).call("t", {}, run_id="r")
    assert isinstance(result.error, ToolFailed)
    assert result.error.category == "connection"
    assert flaky.calls == 1 and result.attempts == 1

    plugin_error = Flaky(ValueError("bad query"))
    result = await make(plugin_error, retry=policy).call("t", {}, run_id="r")
    assert isinstance(result.error, ToolFailed) and result.error.category is None
    assert "ValueError: bad query" in result.error.message
    assert plugin_error.calls == 1


async def test_exception_classes_named_in_retry_on_are_retried() -> None:
    clock = FakeClock()
    policy = {"max_attempts": 3, "backoff": NO_JITTER, "retry_on": ["json:JSONDecodeError"]}
    flaky = Flaky(json.JSONDecodeError("bad", "{", 0))
    result = await make(flaky, clock, retry=policy).call("t", {}, run_id="r")
    assert result.output == "ok" and flaky.calls == 2 and clock.sleeps == [0.5]


async def test_default_policy_retries_timeouts_and_connection_errors_three_times() -> None:
    assert effective_retry_policy(spec()).max_attempts == 3
    flaky = Flaky(ConnectionError(), TimeoutError(), ConnectionError())
    result = await make(flaky).call("t", {}, run_id="r")
    assert isinstance(result.error, ToolFailed) and flaky.calls == 3
    rate_limited = Flaky(type("RateLimited", (Exception,), {"retry_category": "rate_limit"})())
    result = await make(rate_limited).call("t", {}, run_id="r")
    assert result.error is not None and result.error.category == "rate_limit"
    assert rate_limited.calls == 1  # not among the defaults


async def test_a_side_effecting_tool_without_a_key_runs_exactly_once() -> None:
    flaky = Flaky(ConnectionError("reset"), ConnectionError("reset"))
    result = await make(flaky, side_effects=True, requires_approval=False).call("t", {}, run_id="r")
    assert isinstance(result.error, ToolFailed) and result.error.category == "connection"
    assert flaky.calls == 1

    # Enforced at runtime too: a spec that slipped past validation still gets one attempt.
    unsafe = spec(retry={"max_attempts": 5, "retry_on": ["connection"]}).model_copy(
        update={"side_effects": True, "requires_approval": False}
    )
    assert effective_retry_policy(unsafe).max_attempts == 1
    registry = ToolRegistry(plugin_paths=[])
    again = Flaky(ConnectionError("reset"))
    registry.register(again, name="t")
    executor = ToolExecutor([ToolBinding("t", unsafe)], registry, clock=FakeClock())
    result = await executor.call("t", {}, run_id="r")
    assert result.is_error and again.calls == 1


# --- timeouts ---------------------------------------------------------------------------------


async def test_async_and_threaded_calls_time_out() -> None:
    # Neither function can finish before the test lets it: each attempt can only end by the
    # tool's timeout, and the call returns while both attempts are still unfinished.
    release = threading.Event()
    finished: list[str] = []

    async def slow_async(x: int = 0) -> str:
        await asyncio.Event().wait()  # never set: only cancellation ends it
        finished.append("async")
        return "late"

    def slow_sync(x: int = 0) -> str:
        release.wait(30)
        finished.append("sync")
        return "late"

    try:
        for fn in (slow_async, slow_sync):
            clock = FakeClock()
            policy = {"max_attempts": 2, "backoff": NO_JITTER, "retry_on": ["timeout"]}
            result = await make(fn, clock, timeout=0.05, retry=policy).call("t", {}, run_id="r")
            assert isinstance(result.error, ToolTimeout), result.error
            assert result.error.timeout_s == 0.05
            assert result.attempts == 2 and clock.sleeps == [0.5]
            assert finished == []  # the timeouts ended the call, not the functions
    finally:
        release.set()  # the two abandoned threads finish now


def test_errors_are_classified_into_retry_categories() -> None:
    import httpx

    assert classify(TimeoutError()) == "timeout"
    assert classify(ConnectionRefusedError()) == "connection"
    assert classify(httpx.ConnectError("x")) == "connection"
    assert classify(httpx.ReadTimeout("x")) == "timeout"
    assert classify(ValueError()) is None


# --- circuit breaker --------------------------------------------------------------------------


async def test_circuit_breaker_opens_half_opens_and_closes() -> None:
    clock = FakeClock()
    failing = [True]
    calls: list[int] = []

    async def dependency(x: int = 0) -> str:
        calls.append(x)
        if failing[0]:
            raise ConnectionError("down")
        return "up"

    breaker_policy = {"failure_threshold": 2, "reset_after": 10, "half_open_max_calls": 1}
    executor = make(dependency, clock, circuit_breaker=breaker_policy, retry={"max_attempts": 1})
    breaker = executor.breaker("t")
    assert breaker is not None and breaker.state is CircuitState.CLOSED

    for _ in range(2):
        assert isinstance((await executor.call("t", {}, run_id="r")).error, ToolFailed)
    assert breaker.state is CircuitState.OPEN and len(calls) == 2

    blocked = await executor.call("t", {}, run_id="r")
    assert isinstance(blocked.error, CircuitOpen)
    assert blocked.error.retry_after_s == pytest.approx(10.0)
    clock.advance(4)
    blocked = await executor.call("t", {}, run_id="r")
    assert isinstance(blocked.error, CircuitOpen)
    assert blocked.error.retry_after_s == pytest.approx(6.0)
    assert len(calls) == 2  # an open circuit calls nothing

    clock.advance(6)
    assert breaker.state is CircuitState.HALF_OPEN
    failing[0] = False
    ok = await executor.call("t", {}, run_id="r")
    assert ok.output == "up" and breaker.state is CircuitState.CLOSED

    # half-open -> open again after a failed trial
    failing[0] = True
    for _ in range(2):
        await executor.call("t", {}, run_id="r")
    assert breaker.state is CircuitState.OPEN
    clock.advance(10)
    assert breaker.state is CircuitState.HALF_OPEN
    trial = await executor.call("t", {}, run_id="r")
    assert isinstance(trial.error, ToolFailed)
    assert breaker.state is CircuitState.OPEN
    blocked = await executor.call("t", {}, run_id="r")
    assert isinstance(blocked.error, CircuitOpen) and blocked.error.retry_after_s == pytest.approx(10.0)


async def test_half_open_admits_at_most_the_configured_trial_calls() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "t", CircuitBreakerPolicy(failure_threshold=1, reset_after=5, half_open_max_calls=1), clock
    )
    assert breaker.acquire() is False
    breaker.record_failure(False)
    assert breaker.state is CircuitState.OPEN
    clock.advance(5)
    assert breaker.acquire() is True  # the one trial
    with pytest.raises(CircuitOpen) as caught:
        breaker.acquire()
    assert caught.value.retry_after_s == 0.0 and "half-open" in caught.value.message
    breaker.record_success(True)
    assert breaker.state is CircuitState.CLOSED


async def test_concurrent_half_open_calls_get_circuit_open_while_the_trial_runs() -> None:
    clock = FakeClock()
    release = asyncio.Event()
    fail = [True]

    async def dependency(x: int = 0) -> str:
        if fail[0]:
            raise ConnectionError("down")
        await release.wait()
        return "up"

    executor = make(
        dependency,
        clock,
        circuit_breaker={"failure_threshold": 1, "reset_after": 1},
        retry={"max_attempts": 1},
    )
    await executor.call("t", {}, run_id="r")
    clock.advance(1)
    fail[0] = False
    trial = asyncio.create_task(executor.call("t", {}, run_id="r"))
    await asyncio.sleep(0.01)
    other = await executor.call("t", {"x": 1}, run_id="r")
    assert isinstance(other.error, CircuitOpen)
    release.set()
    assert (await trial).output == "up"


async def test_bad_input_errors_do_not_open_the_breaker_but_failures_stop_retries() -> None:
    clock = FakeClock()
    refusing = Flaky(*(ValueError("no") for _ in range(5)))
    executor = make(refusing, clock, circuit_breaker={"failure_threshold": 2}, retry={"max_attempts": 1})
    for _ in range(5):
        await executor.call("t", {}, run_id="r")
    breaker = executor.breaker("t")
    assert breaker is not None and breaker.state is CircuitState.CLOSED

    down = Flaky(*(ConnectionError() for _ in range(5)))
    policy = {"max_attempts": 5, "backoff": NO_JITTER, "retry_on": ["connection"]}
    executor = make(down, clock, circuit_breaker={"failure_threshold": 2}, retry=policy)
    result = await executor.call("t", {}, run_id="r")
    assert isinstance(result.error, CircuitOpen)  # opened during the retries, which then stopped
    assert down.calls == 2
