"""A run store created by an earlier version is upgraded in place when opened: its runs are kept,
new runs store their tenant, and runs can wait for approval."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from agent_platform._runstore import RunRecord, RunStatus, RunStore, open_run_store
from agent_platform._runstore.sqlite import SqliteRunStore

OLD_SCHEMA = """
CREATE TABLE runstore_runs (
    run_id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    inputs TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    parent_run_id TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    result TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO runstore_runs VALUES ('run-old', 'Agent/a', '{}', 'completed', NULL, 1, NULL, NULL, NULL, 1.0, 2.0);
"""


async def test_a_store_without_the_tenant_column_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    store = SqliteRunStore(path)
    try:
        old = await store.get_run("run-old")
        assert old is not None and old.tenant is None and old.status.finished
        await store.create_run(RunRecord(run_id="run-new", unit="Agent/a", tenant="acme"))
        assert (await store.get_run("run-new")).tenant == "acme"  # type: ignore[union-attr]
    finally:
        await store.close()
    reopened = SqliteRunStore(path)  # upgrading twice is a no-op
    try:
        assert {r.run_id for r in await reopened.list_runs()} == {"run-old", "run-new"}
    finally:
        await reopened.close()


async def test_an_old_store_learns_the_waiting_approval_status(tmp_path: Path) -> None:
    """Its status check predates waiting_approval: the table is rebuilt, runs and indexes kept."""
    path = tmp_path / "runs.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.execute("CREATE INDEX runstore_runs_status ON runstore_runs (status, created_at)")
    store = SqliteRunStore(path)
    try:
        await _pause_a_run(store)
        assert (await store.get_run("run-old")).status.finished  # type: ignore[union-attr]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"runstore_runs_status", "runstore_runs_parent"} <= indexes


async def test_an_old_postgres_store_learns_the_waiting_approval_status(postgres_server: Any) -> None:
    import psycopg
    from tests.support.postgres import fresh_schema_url

    url = fresh_schema_url(postgres_server.url, f"old_{os.getpid()}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE runstore_runs (id BIGINT GENERATED ALWAYS AS IDENTITY, run_id TEXT PRIMARY KEY, "
            "unit TEXT NOT NULL, inputs TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN "
            "('pending', 'running', 'completed', 'failed', 'cancelled')), parent_run_id TEXT, "
            "attempt INTEGER NOT NULL DEFAULT 0, owner TEXT, result TEXT, error TEXT, "
            "created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)"
        )
    store = open_run_store(url)
    try:
        await _pause_a_run(store)
    finally:
        await store.close()


async def _pause_a_run(store: RunStore) -> None:
    await store.create_run(RunRecord(run_id="run-new", unit="Agent/a"))
    attempt = await store.begin_attempt("run-new", "r")
    await store.await_approval(
        "run-new", attempt, [("run-new", "k", {"tool": "t"})], result=None, error="waits"
    )
    assert (await store.get_run("run-new")).status is RunStatus.WAITING_APPROVAL  # type: ignore[union-attr]
