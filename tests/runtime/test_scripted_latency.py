"""The scripted provider's simulated latency (load tests and concurrency demos)."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel, ValidationError

from agent_platform.runtime.messages import Message
from agent_platform.runtime.models.base import ModelRequest
from agent_platform.runtime.models.scripted import ScriptedProvider
from agent_platform.spec.kinds import ModelSpec


class Answer(BaseModel):
    text: str


def request() -> ModelRequest[Answer]:
    return ModelRequest(system="s", messages=[Message.user("hi")], response_model=Answer, key="a")


async def test_latency_delays_each_call_without_blocking_the_loop() -> None:
    spec = ModelSpec.model_validate(
        {"provider": "scripted", "on_script_exhausted": "synthesize", "latency": "50ms"}
    )
    provider = ScriptedProvider(spec)
    started = time.perf_counter()
    results = await asyncio.gather(*(provider.fork().complete(request()) for _ in range(20)))
    elapsed = time.perf_counter() - started
    assert all(isinstance(r.output, Answer) for r in results)
    # 20 concurrent calls of 50 ms each overlap: far less than 20 x 50 ms.
    assert 0.05 <= elapsed < 0.75


def test_latency_is_only_for_the_scripted_provider() -> None:
    with pytest.raises(ValidationError, match="'latency' applies only to provider 'scripted'"):
        ModelSpec.model_validate({"provider": "anthropic", "name": "claude", "latency": "50ms"})
