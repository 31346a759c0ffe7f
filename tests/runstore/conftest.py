"""Fixtures: every contract test runs against SQLite and a real PostgreSQL server (one per test
session); each test gets a store of its own (a fresh file, or a fresh schema)."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.postgres import PostgresServer, fresh_schema_url, postgres_server

from agent_platform._runstore import RunStore, open_run_store

__all__ = ["postgres_server"]

BACKENDS = ["sqlite", "postgres"]
_schemas = itertools.count()


def make_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite://{tmp_path / 'runs.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return fresh_schema_url(server.url, f"t{os.getpid()}_{next(_schemas)}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return make_url(backend, request, tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[RunStore]:
    opened = open_run_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()
