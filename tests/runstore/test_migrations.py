"""A run store file created by an earlier version (before runs carried a tenant) is upgraded in
place when opened: its runs are kept and new runs store their tenant."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent_platform.runstore import RunRecord
from agent_platform.runstore.sqlite import SqliteRunStore

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
