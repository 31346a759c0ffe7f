"""Run events in the run store: the SQL both run stores share, written once for their dialects.

Events are kept per run tree: every event of a top-level run, its hand-offs and sub-runs has
one row under the tree's top-level run (`root_run_id`) with a sequence number `seq` that the
store hands out as it commits (1, 2, 3… per tree). Writers of one tree commit one at a time
(SQLite's write lock; PostgreSQL: a transaction-scoped advisory lock per tree, taken in a fixed
order), so a reader that has seen `seq` n has seen every event numbered below it: resuming a
stream after n loses nothing and repeats nothing. Rows are never updated, and go when their
top-level run is deleted or pruned.

Each function takes an open connection inside the caller's transaction; `Dialect` (from
`approvals`) carries the parameter mark and how times are stored."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent_platform._runstore.approvals import Dialect
from agent_platform._runstore.base import JsonText, dumps, loads

TABLE_COLUMNS = """
    root_run_id TEXT NOT NULL,
    seq {integer} NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    at {time} NOT NULL,
    PRIMARY KEY (root_run_id, seq)
"""

READ_LIMIT_MAX = 10_000


def root_of(run_id: str) -> str:
    """The top-level run of `run_id`'s tree: a hand-off's or sub-run's id extends its caller's
    (`run-…/mailer-1`)."""
    return run_id.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: the run that made it, its kind, its JSON body and when it happened."""

    run_id: str
    kind: str
    data: dict[str, Any] | JsonText
    at: datetime


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: `seq` orders it among the events of its run's tree."""

    seq: int
    root_run_id: str
    run_id: str
    kind: str
    data: dict[str, Any]
    at: datetime


def encode(events: Sequence[NewEvent]) -> list[tuple[str, str, str, str, datetime]]:
    """(root, run id, kind, JSON text, time) for each event, in order, before any SQL runs (a
    value with no JSON form is the caller's bug: it raises ValueError and nothing is written)."""
    rows = []
    for event in events:
        data = event.data if isinstance(event.data, str) else dumps(event.data, "run event")
        rows.append((root_of(event.run_id), event.run_id, event.kind, data, event.at))
    return rows


def append(
    conn: Any,
    dialect: Dialect,
    rows: Sequence[tuple[str, str, str, str, datetime]],
    *,
    lock_tree: Callable[[str], None] = lambda root: None,
) -> list[int]:
    """Insert `encode`d rows, numbering each tree's events after its last one; returns the
    sequence numbers in the order of `rows`. `lock_tree` makes other writers of a tree wait until
    this transaction ends (called once per tree, trees in sorted order: no deadlock)."""
    roots = sorted({row[0] for row in rows})
    last: dict[str, int] = {}
    for root in roots:
        lock_tree(root)
        found = conn.execute(
            dialect.q("SELECT max(seq) FROM runstore_events WHERE root_run_id = {m}"), (root,)
        ).fetchone()
        last[root] = int(found[0]) if found is not None and found[0] is not None else 0
    numbered: list[int] = []
    values = []
    for root, run_id, kind, data, at in rows:
        last[root] += 1
        values.append((root, last[root], run_id, kind, data, dialect.to_db(at)))
        numbered.append(last[root])
    insert = dialect.q(
        "INSERT INTO runstore_events (root_run_id, seq, run_id, kind, data, at) "
        "VALUES ({m}, {m}, {m}, {m}, {m}, {m})"
    )
    conn.cursor().executemany(insert, values)
    return numbered


def read(conn: Any, dialect: Dialect, run_id: str, *, after: int, limit: int) -> list[StoredEvent]:
    """The events of `run_id` and the runs under it numbered after `after`, in order, at most
    `limit` (a top-level run's stream holds its whole tree; a sub-run's, its own subtree)."""
    if limit < 1 or limit > READ_LIMIT_MAX:
        raise ValueError(f"limit must be between 1 and {READ_LIMIT_MAX}")
    root = root_of(run_id)
    query = "SELECT seq, run_id, kind, data, at FROM runstore_events WHERE root_run_id = {m} AND seq > {m}"
    params: list[Any] = [root, after]
    if run_id != root:
        query += " AND (run_id = {m} OR substr(run_id, 1, {m}) = {m})"
        params += [run_id, len(run_id) + 1, run_id + "/"]
    query += " ORDER BY seq LIMIT {m}"
    params.append(limit)
    return [
        StoredEvent(
            seq=int(seq), root_run_id=root, run_id=rid, kind=kind, data=loads(data), at=dialect.from_db(at)
        )
        for seq, rid, kind, data, at in conn.execute(dialect.q(query), params).fetchall()
    ]
