"""Concurrent memory writers from several Ray actors, on the nodes of the simulated cluster,
sharing one embedded pgvector server: nothing is lost, nothing is stored twice."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_platform._memory.stores.base import VectorStoreError
from agent_platform._memory.stores.embedded import ensure_embedded_server, stop_embedded_server

pytestmark = pytest.mark.slow

WRITERS = 6
ITEMS_PER_WRITER = 60
BATCH = 5


@pytest.fixture(scope="module")
def memory_url() -> Iterator[str]:
    # Not under pytest's tmp dir: as root the server runs as its own user, who must reach it.
    state = Path(tempfile.mkdtemp(prefix="memory-ray-"))
    try:
        yield ensure_embedded_server(state)
    finally:
        with contextlib.suppress(VectorStoreError):
            stop_embedded_server(state)
        shutil.rmtree(state, ignore_errors=True)


def memory_spec(url: str, collection: str) -> Any:
    from agent_platform._spec.kinds import MemorySpec

    return MemorySpec.model_validate(
        {"episodic": {"store": {"backend": "pgvector", "url": url, "collection": collection}}}
    )


def test_writers_on_several_actors_and_nodes_lose_nothing(ray_cluster: Any, memory_url: str) -> None:
    import sys

    import ray
    from ray import cloudpickle

    # The actor class is defined here; ship it by value (workers cannot import the test module).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

    @ray.remote(num_cpus=0.1, max_concurrency=8)
    class Writer:
        """One process with its own MemoryRegistry (connection pool, embedder), like a UnitHost."""

        def __init__(self, url: str, collection: str) -> None:
            from agent_platform._memory.registry import MemoryRegistry

            self.registry = MemoryRegistry({"mem": memory_spec(url, collection)})

        async def write(self, writer: int) -> list[str]:
            from agent_platform._memory.items import Provenance
            from agent_platform._memory.manager import MemoryEntry

            manager = self.registry.manager("mem")

            async def batch(start: int) -> list[str]:
                entries = [
                    MemoryEntry(
                        f"writer {writer} remembers fact number {n} about tenant {writer % 3}",
                        "fact",
                        Provenance(source="agent", agent=f"w{writer}"),
                    )
                    for n in range(start, start + BATCH)
                ]
                ack = await manager.write("episodic", entries, agent=f"w{writer}", tenant=f"t{writer % 3}")
                return [*ack.written, *ack.duplicates.values()]

            # Batches of one writer race each other too, not only writers on other actors.
            done = await asyncio.gather(*(batch(s) for s in range(0, ITEMS_PER_WRITER, BATCH)))
            return [i for ids in done for i in ids]

        def node(self) -> str:
            return str(ray.get_runtime_context().get_node_id())

        async def close(self) -> None:
            await self.registry.close()

    collection = "ray-writers"
    writers = [
        Writer.options(scheduling_strategy="SPREAD").remote(memory_url, collection) for _ in range(WRITERS)
    ]
    nodes = set(ray.get([w.node.remote() for w in writers]))
    acknowledged = ray.get([w.write.remote(i) for i, w in enumerate(writers)], timeout=180)
    # Every writer writes again, all at once: the retry of a write stores nothing twice.
    again = ray.get([w.write.remote(i) for i, w in enumerate(writers)], timeout=180)
    ray.get([w.close.remote() for w in writers])
    assert len(nodes) >= 2, "the writers ran on several nodes"
    assert again == acknowledged

    from agent_platform._memory.registry import MemoryRegistry

    async def stored() -> list[Any]:
        registry = MemoryRegistry({"mem": memory_spec(memory_url, collection)})
        try:
            return await registry.manager("mem").list_items("episodic", limit=10_000)
        finally:
            await registry.close()

    items = asyncio.run(stored())
    assert len(items) == WRITERS * ITEMS_PER_WRITER
    assert {i.id for i in items} == {i for ids in acknowledged for i in ids}
    for item in items:  # each item in its writer's namespace
        writer = int(item.provenance.agent.removeprefix("w"))  # type: ignore[union-attr]
        assert item.namespace == f"tenant=t{writer % 3}/agent=w{writer}"
