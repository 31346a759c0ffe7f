"""Which vector store a Memory spec's `store` names: the backends are imported only when chosen
(their drivers are optional extras), and the interface module knows none of them."""

from __future__ import annotations

from pathlib import Path

from agent_platform._memory.stores.base import InvalidStoreUrl, VectorStore


def open_vector_store(
    backend: str, url: str | None, *, state_dir: Path | None = None, api_key_env: str | None = None
) -> VectorStore:
    """The store a Memory spec's `store` names. pgvector with no URL is the embedded PostgreSQL
    server under `state_dir` (started on first use). Imports the backend's driver lazily."""
    if backend == "pgvector":
        from agent_platform._memory.stores.pgvector import PgVectorStore

        if url is None:
            from agent_platform._memory.stores.embedded import ensure_embedded_server

            url = ensure_embedded_server(state_dir)
        return PgVectorStore(url)
    if backend == "weaviate":
        if url is None:
            raise InvalidStoreUrl(
                "the weaviate backend needs a URL (it has no embedded mode)", backend="weaviate", location="?"
            )
        from agent_platform._memory.stores.weaviate import WeaviateStore

        return WeaviateStore(url, api_key_env=api_key_env)
    raise InvalidStoreUrl(f"unknown backend {backend!r}", backend=backend, location=url or "?")
