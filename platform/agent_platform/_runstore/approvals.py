"""Approval records: the SQL both run stores share, written once for their two dialects.

A run that needs a person's decision on a tool call pauses (`RunStore.await_approval`): one row
per call it waits on, under the top-level run of its tree (`root_run_id`), because that is the
run a person approves and the run that is resumed; hand-offs below it resume when it calls them
again. Rows are never updated except to record a decision, and go when their top-level run is
deleted or pruned.

Each function takes an open connection inside the caller's transaction (sqlite3 and psycopg
connections both have `execute(sql, params)`); `Dialect` carries the differences: the parameter
mark, how times are stored, and how a read locks rows for the rest of the transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent_platform._runstore.base import (
    AttemptNotStarted,
    Decision,
    DecisionReport,
    NoPendingApproval,
    PendingApproval,
    RunAlreadyFinished,
    RunNotFound,
    RunStatus,
    check_writer,
    dumps,
    loads,
)

TABLE_COLUMNS = """
    root_run_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    call_key TEXT NOT NULL,
    request TEXT NOT NULL,
    requested_at {time} NOT NULL,
    decision TEXT CHECK (decision IN ('approved', 'denied')),
    decided_by TEXT,
    decided_at {time},
    PRIMARY KEY (root_run_id, run_id, call_key)
"""

_ROW = "run_id, call_key, request, requested_at, decision, decided_by, decided_at"

# Every run of a tree, by the parent links (hand-off ids are not parsed).
_TREE = (
    "WITH RECURSIVE tree(run_id) AS (SELECT run_id FROM runstore_runs WHERE run_id = {m} "
    "UNION ALL SELECT r.run_id FROM runstore_runs r JOIN tree t ON r.parent_run_id = t.run_id) "
)


@dataclass(frozen=True)
class Dialect:
    mark: str  # the parameter placeholder
    to_db: Callable[[datetime], Any]
    from_db: Callable[[Any], datetime]
    lock: str = ""  # appended to a SELECT that must hold its rows until the transaction ends

    def q(self, sql: str) -> str:
        return sql.replace("{m}", self.mark)


def root_of(conn: Any, dialect: Dialect, run_id: str) -> tuple[str, str]:
    """(the top-level run of `run_id`'s tree, that run's status). Raises RunNotFound."""
    current, seen = run_id, set()
    while True:
        row = conn.execute(
            dialect.q("SELECT parent_run_id, status FROM runstore_runs WHERE run_id = {m}"), (current,)
        ).fetchone()
        if row is None:
            raise RunNotFound(current)
        parent, status = row
        if parent is None or parent in seen:  # a cycle cannot be made through the API: stop anyway
            return current, status
        seen.add(current)
        current = parent


def await_approval(
    conn: Any,
    dialect: Dialect,
    run_id: str,
    attempt: int,
    asked: Sequence[tuple[str, str, dict[str, Any]]],
    *,
    result_text: str | None,
    error: str | None,
    checkpoint: tuple[int, str] | None,
    now: datetime,
) -> None:
    row = conn.execute(
        dialect.q("SELECT status, attempt FROM runstore_runs WHERE run_id = {m}") + dialect.lock, (run_id,)
    ).fetchone()
    if row is None:
        raise RunNotFound(run_id)
    status, current = RunStatus(row[0]), row[1]
    check_writer(run_id, attempt, current, "await_approval")
    if status.finished:
        raise RunAlreadyFinished(run_id, status, "await_approval")
    if current == 0:
        raise AttemptNotStarted(run_id, attempt, current, "await_approval")
    root, _ = root_of(conn, dialect, run_id)
    stamp = dialect.to_db(now)
    for asking, key, request in asked:
        conn.execute(
            dialect.q(
                "INSERT INTO runstore_approvals (root_run_id, run_id, call_key, request, requested_at) "
                "VALUES ({m}, {m}, {m}, {m}, {m}) ON CONFLICT (root_run_id, run_id, call_key) DO NOTHING"
            ),
            (root, asking, key, dumps(request, "approval request"), stamp),
        )
    if checkpoint is not None:
        seq, text = checkpoint
        conn.execute(
            dialect.q(
                "INSERT INTO runstore_checkpoints (run_id, attempt, seq, state, saved_at) "
                "VALUES ({m}, {m}, {m}, {m}, {m}) ON CONFLICT (run_id) DO UPDATE SET "
                "attempt = excluded.attempt, seq = excluded.seq, state = excluded.state, "
                "saved_at = excluded.saved_at"
            ),
            (run_id, attempt, seq, text, stamp),
        )
    conn.execute(
        dialect.q(
            "UPDATE runstore_runs SET status = 'waiting_approval', owner = NULL, result = {m}, "
            "error = {m}, updated_at = {m} WHERE run_id = {m}"
        ),
        (result_text, error, stamp, run_id),
    )


def approvals(
    conn: Any, dialect: Dialect, run_id: str, *, lock: bool = False
) -> tuple[str, list[PendingApproval]]:
    """(the tree's top-level run, every call recorded for the tree, oldest first)."""
    root, _ = root_of(conn, dialect, run_id)
    rows = conn.execute(
        dialect.q(
            f"SELECT {_ROW} FROM runstore_approvals WHERE root_run_id = {{m}} "
            "ORDER BY requested_at, run_id, call_key"
        )
        + (dialect.lock if lock else ""),
        (root,),
    ).fetchall()
    return root, [_approval(row, dialect) for row in rows]


def decide(
    conn: Any,
    dialect: Dialect,
    run_id: str,
    decision: Decision,
    *,
    by: str,
    call_key: str | None,
    now: datetime,
) -> DecisionReport:
    root, status = root_of(conn, dialect, run_id)
    if RunStatus(status).finished:
        raise RunAlreadyFinished(root, RunStatus(status), "decide")
    _, recorded = approvals(conn, dialect, root, lock=True)
    undecided = [a for a in recorded if a.decision is None]
    if not undecided:
        raise NoPendingApproval(root, "no tool call is waiting for approval")
    if call_key is None:
        keys = {a.call_key for a in undecided}
    else:
        keys = {a.call_key for a in undecided if a.call_key.startswith(call_key)}
        listing = ", ".join(sorted({f"{a.call_key} ({a.request.get('tool', '?')})" for a in undecided}))
        if not keys:
            raise NoPendingApproval(root, f"no call {call_key!r} is waiting (waiting: {listing})")
        if len(keys) > 1:
            raise NoPendingApproval(root, f"{call_key!r} names more than one waiting call ({listing})")
    stamp = dialect.to_db(now)
    for key in sorted(keys):
        conn.execute(
            dialect.q(
                "UPDATE runstore_approvals SET decision = {m}, decided_by = {m}, decided_at = {m} "
                "WHERE root_run_id = {m} AND call_key = {m} AND decision IS NULL"
            ),
            (decision.value, by, stamp, root, key),
        )
    decided = [
        PendingApproval(a.run_id, a.call_key, a.request, a.requested_at, decision, by, now)
        for a in undecided
        if a.call_key in keys
    ]
    left = [a for a in undecided if a.call_key not in keys]
    if not left:
        conn.execute(
            dialect.q(
                _TREE + "UPDATE runstore_runs SET status = 'pending', owner = NULL, updated_at = {m} "
                "WHERE status = 'waiting_approval' AND run_id IN (SELECT run_id FROM tree)"
            ),
            (root, stamp),
        )
    return DecisionReport(root, decided, resumable=not left, undecided=left)


def _approval(row: Sequence[Any], dialect: Dialect) -> PendingApproval:
    request = loads(row[2])
    return PendingApproval(
        run_id=row[0],
        call_key=row[1],
        request=request if isinstance(request, dict) else {"request": json.dumps(request)},
        requested_at=dialect.from_db(row[3]),
        decision=None if row[4] is None else Decision(row[4]),
        decided_by=row[5],
        decided_at=None if row[6] is None else dialect.from_db(row[6]),
    )
