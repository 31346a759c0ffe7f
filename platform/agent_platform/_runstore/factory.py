"""Which store a URL names: the backends are imported only when chosen (PostgreSQL's driver is
an optional extra), and the interface module (`base.py`) knows none of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_platform._runstore.base import RunStore, run_store_url, sqlite_path, url_scheme

if TYPE_CHECKING:  # imported when a store is opened, not by `platform validate`'s imports
    from agent_platform._runstore.idempotency import IdempotencyStore


def open_run_store(url: str | None = None) -> RunStore:
    """A run store for `url` (see `run_store_url` for the default): `sqlite:///abs/path.db`,
    `sqlite:relative.db`, `postgresql://user:pass@host:port/db` (or `postgres://`). Connects
    lazily: an unreachable database raises RunStoreUnavailable on first use."""
    resolved = run_store_url(url)
    if url_scheme(resolved) == "sqlite":
        from agent_platform._runstore.sqlite import SqliteRunStore

        return SqliteRunStore(sqlite_path(resolved), url=resolved)
    from agent_platform._runstore.postgres import PostgresRunStore

    return PostgresRunStore(resolved)


def open_idempotency_store(url: str) -> IdempotencyStore:
    """The `key`-mode idempotency store at `url`: `SqliteIdempotencyStore` for a sqlite URL (one
    machine), `PostgresIdempotencyStore` for a postgresql URL (a cluster sharing tool-call
    records). May share the run store's database: the tables do not collide."""
    if url_scheme(url) == "sqlite":
        from agent_platform._runstore.idempotency import SqliteIdempotencyStore

        return SqliteIdempotencyStore(sqlite_path(url))
    from agent_platform._runstore.postgres import PostgresIdempotencyStore

    return PostgresIdempotencyStore(url)
