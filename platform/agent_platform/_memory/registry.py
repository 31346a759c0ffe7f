"""The memories of one runtime (one process, or one Ray actor): a `MemoryManager` per Memory
spec, built on first use, sharing stores (one connection pool per backend and URL) and embedders
(one loaded model per embedder spec) between memories."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from agent_platform._memory.manager import MemoryManager, MemoryUsageError

if TYPE_CHECKING:
    from agent_platform._memory.embedders import Embedder
    from agent_platform._memory.stores.base import VectorStore
    from agent_platform._spec.kinds import Embedder as EmbedderSpec
    from agent_platform._spec.kinds import MemorySpec
    from agent_platform._spec.kinds import VectorStore as VectorStoreSpec


def store_url(spec: VectorStoreSpec) -> str | None:
    """The store's URL: `url`, else the variable `url_env` names (which must then be set), else
    None (pgvector: the embedded server)."""
    if spec.url is not None:
        return spec.url
    if spec.url_env is not None:
        value = os.environ.get(spec.url_env)
        if not value:
            raise MemoryUsageError(
                f"the {spec.backend} store's URL comes from ${spec.url_env}, which is not set"
            )
        return value
    return None


class MemoryRegistry:
    def __init__(
        self,
        specs: Mapping[str, MemorySpec],
        *,
        state_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.specs = dict(specs)
        self._state_dir = state_dir
        self._clock = clock
        self._managers: dict[str, MemoryManager] = {}
        self._stores: dict[tuple[str, str | None, str | None], VectorStore] = {}
        self._embedders: dict[str, Embedder] = {}

    def manager(self, name: str) -> MemoryManager:
        found = self._managers.get(name)
        if found is None:
            spec = self.specs.get(name)
            if spec is None:
                known = ", ".join(sorted(self.specs)) or "none"
                raise MemoryUsageError(f"no memory named '{name}' (known: {known})")
            found = MemoryManager(
                name, spec, store_for=self._store, embedder_for=self._embedder, clock=self._clock
            )
            self._managers[name] = found
        return found

    def _store(self, spec: VectorStoreSpec) -> VectorStore:
        from agent_platform._memory.stores.factory import open_vector_store

        url = store_url(spec)
        key = (spec.backend, url, spec.api_key_env)
        store = self._stores.get(key)
        if store is None:
            store = open_vector_store(
                spec.backend, url, state_dir=self._state_dir, api_key_env=spec.api_key_env
            )
            self._stores[key] = store
        return store

    def _embedder(self, spec: EmbedderSpec) -> Embedder:
        from agent_platform._memory.embedders import build_embedder

        key = spec.model_dump_json()
        embedder = self._embedders.get(key)
        if embedder is None:
            embedder = build_embedder(spec)
            self._embedders[key] = embedder
        return embedder

    async def close(self) -> None:
        stores, self._stores = list(self._stores.values()), {}
        embedders, self._embedders = list(self._embedders.values()), {}
        self._managers.clear()
        for store in stores:
            await store.close()
        for embedder in embedders:
            await embedder.aclose()
