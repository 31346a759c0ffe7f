"""Fixtures for the memory tests: one embedded pgvector server per test session (per xdist
worker), and the `store` fixture the contract suite runs on, parametrised over the backends.

- `pg_url` / `pg_state_dir`: the `memory` database of a session-wide embedded server whose state
  directory is a fresh temporary directory (not under pytest's tmp dir: as root the server runs as
  another user, who must be able to reach it). `PG_STATE_DIRS` maps each such URL to its state
  directory, for tests that stop and restart the server.
- `store`: a fresh store per test on `pgvector` (the session server), and on `weaviate` when
  `WEAVIATE_URL` is set (else those tests are skipped).
- `collection`: a fresh collection name per test, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agent_platform._memory.stores import VectorStore, VectorStoreError, open_vector_store
from agent_platform._memory.stores.embedded import ensure_embedded_server, stop_embedded_server
from agent_platform._memory.stores.pgvector import PgVectorStore

BACKENDS = ["pgvector", "weaviate"]
PG_STATE_DIRS: dict[str, Path] = {}


@pytest.fixture(scope="session")
def pg_state_dir() -> Iterator[Path]:
    state_dir = Path(tempfile.mkdtemp(prefix="memory-pg-"))
    try:
        yield state_dir
    finally:
        with contextlib.suppress(VectorStoreError):
            stop_embedded_server(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url(pg_state_dir: Path) -> str:
    url = ensure_embedded_server(pg_state_dir)
    PG_STATE_DIRS[url] = pg_state_dir
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
async def store(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[VectorStore]:
    if backend == "pgvector":
        opened: VectorStore = PgVectorStore(request.getfixturevalue("pg_url"))
    else:
        url = os.environ.get("WEAVIATE_URL")
        if not url:
            pytest.skip("WEAVIATE_URL is not set: the weaviate backend needs a running Weaviate server")
        opened = open_vector_store("weaviate", url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def collection(store: VectorStore) -> AsyncIterator[str]:
    name = f"contract-{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.suppress(VectorStoreError):
        await store.drop_collection(name)
