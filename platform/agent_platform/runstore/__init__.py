"""The durable run store: run records and checkpoints that outlive the actor or node running a
run (SQLite on one machine, PostgreSQL for a cluster), plus the cluster-wide idempotency store
factory. See `base` for the interface and the fencing rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_platform.runstore.base import (
    FINISHED_STATUSES,
    RUN_STORE_URL_ENV,
    AttemptNotStarted,
    Checkpoint,
    CheckpointOutOfOrder,
    Decision,
    DecisionReport,
    InvalidRunStoreUrl,
    JsonText,
    NoPendingApproval,
    PendingApproval,
    RunAlreadyFinished,
    RunNotFound,
    RunRecord,
    RunStatus,
    RunStore,
    RunStoreError,
    RunStoreUnavailable,
    RunWaitingApproval,
    StaleAttempt,
    Started,
    default_run_store_url,
    open_run_store,
    run_store_url,
    sqlite_path,
    url_scheme,
)

if TYPE_CHECKING:
    from agent_platform.runstore.idempotency import IdempotencyStore


def open_idempotency_store(url: str) -> IdempotencyStore:
    """The `key`-mode idempotency store at `url`: `SqliteIdempotencyStore` for a sqlite URL (one
    machine), `PostgresIdempotencyStore` for a postgresql URL (a cluster sharing tool-call
    records). May share the run store's database: the tables do not collide."""
    if url_scheme(url) == "sqlite":
        from agent_platform.runstore.idempotency import SqliteIdempotencyStore

        return SqliteIdempotencyStore(sqlite_path(url))
    from agent_platform.runstore.postgres import PostgresIdempotencyStore

    return PostgresIdempotencyStore(url)


__all__ = [
    "FINISHED_STATUSES",
    "RUN_STORE_URL_ENV",
    "AttemptNotStarted",
    "Checkpoint",
    "CheckpointOutOfOrder",
    "Decision",
    "DecisionReport",
    "InvalidRunStoreUrl",
    "JsonText",
    "NoPendingApproval",
    "PendingApproval",
    "RunAlreadyFinished",
    "RunNotFound",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "RunStoreError",
    "RunStoreUnavailable",
    "RunWaitingApproval",
    "StaleAttempt",
    "Started",
    "default_run_store_url",
    "open_idempotency_store",
    "open_run_store",
    "run_store_url",
    "sqlite_path",
    "url_scheme",
]
