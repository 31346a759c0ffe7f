"""Functions run in other processes (multiprocessing, spawn) by the pgvector tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from agent_platform._memory.items import MemoryItem, Provenance
from agent_platform._memory.stores.embedded import ensure_embedded_server
from agent_platform._memory.stores.pgvector import PgVectorStore


def start_and_write(state_dir: str, collection: str, worker: int, count: int, batch: int) -> str:
    """Start (or find) the embedded server, create the collection (racing the other workers), and
    write `count` distinct items in batches. Returns the server URL this process got."""
    url = ensure_embedded_server(Path(state_dir))

    async def main() -> None:
        store = PgVectorStore(url, pool_size=2)
        try:
            await store.ensure_collection(collection, 8)
            rng = np.random.default_rng(worker)
            for start in range(0, count, batch):
                items = [
                    MemoryItem.new(
                        namespace=f"tenant=w{worker % 2}",
                        kind="episode",
                        content=f"worker {worker} item {n}",
                        provenance=Provenance(source="agent", agent=f"w{worker}"),
                    )
                    for n in range(start, min(start + batch, count))
                ]
                vectors = rng.normal(size=(len(items), 8)).astype(np.float32)
                ack = await store.upsert(collection, items, vectors)
                assert len(ack.written) == len(items), ack
        finally:
            await store.close()

    asyncio.run(main())
    return url
