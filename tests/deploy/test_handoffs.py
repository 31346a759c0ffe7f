"""The Router's hand-offs, without Ray: replicas and the control plane are fakes with the same
call shapes. Routes are fetched once however many calls need them; the calls for one replica
made together go in one batch whose results stream back; a stream cut short is asked again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from agent_platform._deploy.host import RunRequest
from agent_platform._deploy.router import Router
from agent_platform._runtime.outcomes import Outcome, RunResult


class FakeControlPlane:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.requests = 0

    @property
    def routes(self) -> FakeControlPlane:
        return self

    async def remote(self, unit: str) -> list[str]:
        self.requests += 1
        await asyncio.sleep(0.01)  # every caller arrives while the first request is out
        return self.names


class FakeReplica:
    """`run_batch.options(num_returns="streaming").remote(requests)`: answers in two chunks; the
    first batch of a cut replica is answered only in part (as a stream re-run by Ray may be)."""

    def __init__(self, name: str, *, cut: bool = False) -> None:
        self.name = name
        self.cut = cut
        self.batches: list[list[str]] = []
        self.singles: list[str] = []

    @property
    def run_batch(self) -> FakeReplica:
        return self

    @property
    def run(self) -> FakeSingleCall:
        return FakeSingleCall(self)

    def options(self, **options: Any) -> FakeReplica:
        assert options == {"num_returns": "streaming"}
        return self

    def remote(self, requests: list[RunRequest]) -> AsyncIterator[Any]:
        self.batches.append([r.run_id for r in requests])
        return self._stream(requests)

    async def _stream(self, requests: list[RunRequest]) -> AsyncIterator[Any]:
        answers = [
            (i, RunResult(r.run_id, r.unit, Outcome.COMPLETED, output={"by": self.name}))
            for i, r in enumerate(requests)
        ]
        if self.cut:
            self.cut = False
            answers = answers[::2]
        for chunk in (answers[:1], answers[1:]):
            await asyncio.sleep(0)
            yield self._ref(chunk)

    @staticmethod
    async def _ref(chunk: Any) -> Any:
        return chunk


class FakeSingleCall:
    """`run.remote(request)`: what a batch of one is sent as."""

    def __init__(self, replica: FakeReplica) -> None:
        self.replica = replica

    async def remote(self, request: RunRequest) -> RunResult:
        self.replica.singles.append(request.run_id)
        return RunResult(request.run_id, request.unit, Outcome.COMPLETED, output={"by": self.replica.name})


def router_with(replicas: list[FakeReplica]) -> tuple[Router, FakeControlPlane]:
    router = Router("test")
    control = FakeControlPlane([r.name for r in replicas])
    router._control = control
    router._handles = {r.name: r for r in replicas}
    return router, control


async def test_concurrent_calls_share_one_route_request_and_one_batch_per_replica() -> None:
    replicas = [FakeReplica("r0"), FakeReplica("r1")]
    router, control = router_with(replicas)
    requests = [RunRequest(f"run-{i}", "Agent/worker", {}) for i in range(200)]
    results = await asyncio.gather(*(router.call(r) for r in requests))
    assert control.requests == router.route_requests == 1
    assert [len(r.batches) for r in replicas] == [1, 1] and [len(r.batches[0]) for r in replicas] == [
        100,
        100,
    ]
    assert [r.run_id for r in results] == [r.run_id for r in requests], "each caller gets its own result"
    by = {r.output["by"] for r in results}
    assert by == {"r0", "r1"}
    again = await router.call(RunRequest("run-again", "Agent/worker", {}))
    assert again.ok and control.requests == 1, "routes are cached"
    assert [r.singles for r in replicas] in (
        [["run-again"], []],
        [[], ["run-again"]],
    ), "a call alone is a plain call"


async def test_runs_a_cut_stream_did_not_answer_are_asked_again() -> None:
    replica = FakeReplica("r0", cut=True)
    router, _ = router_with([replica])
    requests = [RunRequest(f"run-{i}", "Agent/worker", {}) for i in range(10)]
    results = await asyncio.gather(*(router.call(r) for r in requests))
    assert all(r.ok for r in results) and [r.run_id for r in results] == [r.run_id for r in requests]
    assert replica.batches[1] == [f"run-{i}" for i in range(1, 10, 2)], "only the unanswered, once more"


async def test_a_caller_that_stops_waiting_does_not_disturb_the_others() -> None:
    router, _ = router_with([FakeReplica("r0")])
    impatient = asyncio.create_task(router.call(RunRequest("run-0", "Agent/worker", {})))
    patient = asyncio.create_task(router.call(RunRequest("run-1", "Agent/worker", {})))
    await asyncio.sleep(0)
    impatient.cancel()
    assert (await patient).ok and impatient.cancelled()
