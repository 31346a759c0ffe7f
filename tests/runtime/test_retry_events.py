"""Each retry the policy makes is reported once (`on_retry`, a span event), and no retry it does not
make: tenacity computes the wait before it decides to stop, which reported one retry too many."""

from __future__ import annotations

import asyncio

import pytest

from agent_platform._runtime.models.base import ModelConnectionError
from agent_platform._runtime.models.factory import RetryRunner
from agent_platform._spec.common import RetryPolicy


@pytest.mark.parametrize("max_attempts", [2, 3, 4])
def test_only_the_retries_made_are_reported(max_attempts: int) -> None:
    reported: list[int] = []
    slept: list[float] = []
    calls = 0

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        raise ModelConnectionError("refused", provider="openai", model="m")

    policy = RetryPolicy.model_validate(
        {"max_attempts": max_attempts, "backoff": {"initial": 0.01, "max": 0.1, "jitter": "none"}}
    )
    runner = RetryRunner(
        policy,
        provider="openai",
        model="m",
        sleep=sleep,
        on_retry=lambda number, error, delay: reported.append(number),
    )
    with pytest.raises(ModelConnectionError):
        asyncio.run(runner.call(attempt))
    assert calls == max_attempts
    assert reported == list(range(1, max_attempts)) and len(slept) == max_attempts - 1
