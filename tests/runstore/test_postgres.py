"""PostgreSQL specifics: lost connections are replaced; concurrent first use creates the schema
once."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from tests.support.postgres import PostgresServer, fresh_schema_url

from agent_platform._runstore import RunRecord, RunStoreUnavailable
from agent_platform._runstore.postgres import PostgresRunStore


def _terminate_other_connections(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchone()
    return int(row[0]) if row else 0


async def test_a_connection_closed_by_the_server_is_replaced(postgres_server: PostgresServer) -> None:
    url = fresh_schema_url(postgres_server.url, "lost_connections")
    checked = PostgresRunStore(url, pool_size=1, idle_check_s=0)  # checks before every call
    unchecked = PostgresRunStore(url, pool_size=1, idle_check_s=3600)
    try:
        await checked.create_run(RunRecord("run-1", "Agent/a", None))
        assert await unchecked.get_run("run-1") is not None
        assert _terminate_other_connections(postgres_server.url) >= 2  # e.g. a server restart
        await asyncio.sleep(0.05)
        assert await checked.get_run("run-1") is not None  # reconnected transparently
        with pytest.raises(RunStoreUnavailable):  # not checked: the call fails, clearly
            await unchecked.get_run("run-1")
        assert await unchecked.get_run("run-1") is not None  # and the next call reconnects
    finally:
        await checked.close()
        await unchecked.close()


async def test_concurrent_first_use_creates_the_schema_once(postgres_server: PostgresServer) -> None:
    url = fresh_schema_url(postgres_server.url, "first_use")
    stores = [PostgresRunStore(url) for _ in range(6)]
    try:
        created = await asyncio.gather(
            *(s.create_run(RunRecord(f"run-{i}", "Agent/a", {"i": i})) for i, s in enumerate(stores))
        )
        assert [r.inputs for r in created] == [{"i": i} for i in range(6)]
        assert len(await stores[0].list_runs()) == 6
    finally:
        for store in stores:
            await store.close()
