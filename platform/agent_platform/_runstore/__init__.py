"""The durable run store: run records and checkpoints that outlive the actor or node running a
run (SQLite on one machine, PostgreSQL for a cluster), plus the cluster-wide idempotency store
factory. See `base` for the interface and the fencing rules."""

from __future__ import annotations

from agent_platform._runstore.base import (
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
    run_store_url,
    sqlite_path,
    url_scheme,
)
from agent_platform._runstore.factory import open_idempotency_store, open_run_store

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
