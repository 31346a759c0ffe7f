"""The scripted provider's simulated latency (load tests and concurrency demos)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel, ValidationError

from agent_platform._runtime.messages import Message
from agent_platform._runtime.models.base import ModelRequest
from agent_platform._runtime.models.scripted import ScriptedProvider
from agent_platform._spec.kinds import ModelSpec


class Answer(BaseModel):
    text: str


def request() -> ModelRequest[Answer]:
    return ModelRequest(system="s", messages=[Message.user("hi")], response_model=Answer, key="a")


async def test_latency_delays_each_call_without_blocking_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each call awaits its latency on the event loop: 20 concurrent calls are all asleep at
    once (counted, not timed)."""
    spec = ModelSpec.model_validate(
        {"provider": "scripted", "on_script_exhausted": "synthesize", "latency": "50ms"}
    )
    real_sleep = asyncio.sleep
    asleep: list[float] = []
    asked: list[float] = []
    most = 0

    async def sleep(seconds: float) -> None:
        nonlocal most
        asleep.append(seconds)
        asked.append(seconds)
        most = max(most, len(asleep))
        await real_sleep(0)
        await real_sleep(0)
        asleep.remove(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    provider = ScriptedProvider(spec)
    results = await asyncio.gather(*(provider.fork().complete(request()) for _ in range(20)))
    assert all(isinstance(r.output, Answer) for r in results)
    assert asked == [0.05] * 20  # each call waits its latency, once
    assert most == 20, "the calls overlap: none blocks the loop while it waits"


def test_latency_is_only_for_the_scripted_provider() -> None:
    with pytest.raises(ValidationError, match="'latency' applies only to provider 'scripted'"):
        ModelSpec.model_validate({"provider": "anthropic", "name": "claude", "latency": "50ms"})
