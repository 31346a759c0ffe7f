"""The SQLite run store: one file shared by every process on one machine (several Ray actors on
one host). WAL mode (readers never block the writer), a busy timeout, and every write in a
`BEGIN IMMEDIATE` transaction, which serialises writers across threads and processes; calls run
on one dedicated worker thread per store. A new database file (and so its -wal and -shm files) is
created readable by its user only (`state_files`)."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from agent_platform._faults import sqlite_transient
from agent_platform._runstore import approvals as approval_sql
from agent_platform._runstore import events as event_sql
from agent_platform._runstore._pool import ThreadConnections
from agent_platform._runstore.base import (
    Checkpoint,
    Decision,
    DecisionReport,
    JsonText,
    PendingApproval,
    RunAlreadyFinished,
    RunNotFound,
    RunRecord,
    RunStatus,
    RunStore,
    RunStoreError,
    RunStoreUnavailable,
    RunWaitingApproval,
    Started,
    check_checkpoint_write,
    check_finish_status,
    check_writer,
    checkpoint_of,
    checkpoint_query,
    dumps,
    list_runs_query,
    loads,
    prune_filter,
    state_text,
    utcnow,
)
from agent_platform._state_files import create_private_file

T = TypeVar("T")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller went away (cancelled): the write is committed all the same
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        _settle(future, result, error)


def _settle_threadsafe(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Settle futures from the store's thread: one wake-up per event loop, not one per write (a
    group commit of 1,000 runs' writes would otherwise write to the loop's self-pipe 1,000 times)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for item in settled:
        by_loop.setdefault(item[0].get_loop(), []).append(item)
    for loop, items in by_loop.items():
        loop.call_soon_threadsafe(_settle_all, items)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runstore_runs (
    run_id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    inputs TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({statuses})),
    parent_run_id TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    result TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    tenant TEXT,
    origin TEXT
);
CREATE INDEX IF NOT EXISTS runstore_runs_created ON runstore_runs (created_at);
CREATE INDEX IF NOT EXISTS runstore_runs_status ON runstore_runs (status, created_at);
CREATE INDEX IF NOT EXISTS runstore_runs_unit ON runstore_runs (unit, created_at);
CREATE INDEX IF NOT EXISTS runstore_runs_parent ON runstore_runs (parent_run_id);
CREATE TABLE IF NOT EXISTS runstore_checkpoints (
    run_id TEXT PRIMARY KEY,
    attempt INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    saved_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runstore_approvals ({approvals}) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runstore_events ({events}) WITHOUT ROWID;
""".format(
    statuses=", ".join(f"'{status.value}'" for status in RunStatus),
    approvals=approval_sql.TABLE_COLUMNS.format(time="REAL"),
    events=event_sql.TABLE_COLUMNS.format(integer="INTEGER", time="REAL"),
)
_RUNS_TABLE = _SCHEMA.split(";", 1)[0]

# A checkpoint write in one statement when it is allowed in the usual way: the run is running on
# this attempt, and the stored checkpoint is of an earlier attempt or not ahead of this one.
_SAVE_CHECKPOINT = """
INSERT INTO runstore_checkpoints (run_id, attempt, seq, state, saved_at)
SELECT run_id, ?, ?, ?, ? FROM runstore_runs
WHERE run_id = ? AND attempt = ? AND attempt > 0 AND status = 'running'
ON CONFLICT (run_id) DO UPDATE SET
    attempt = excluded.attempt, seq = excluded.seq, state = excluded.state, saved_at = excluded.saved_at
WHERE excluded.attempt <> runstore_checkpoints.attempt OR excluded.seq >= runstore_checkpoints.seq
"""

_CHECKPOINT = checkpoint_query("?")

_COLUMNS = (
    "run_id, unit, inputs, status, parent_run_id, attempt, owner, result, error, created_at, updated_at, "
    "tenant, origin"
)


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        unit=row[1],
        inputs=loads(row[2]),
        status=RunStatus(row[3]),
        parent_run_id=row[4],
        attempt=row[5],
        owner=row[6],
        result=loads(row[7]),
        error=row[8],
        created_at=_time(row[9]),
        updated_at=_time(row[10]),
        tenant=row[11],
        origin=loads(row[12]),
    )


_DIALECT = approval_sql.Dialect("?", _epoch, _time)


def _store_failure(exc: sqlite3.DatabaseError) -> bool:
    """The database failed (busy, unreadable, corrupted), not one statement (a constraint)."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


def _transient(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


class SqliteRunStore(RunStore):
    """See the module docstring. `synchronous=NORMAL` by default (in WAL mode: durable across
    process crashes, which is what losing an actor is; a power loss may drop the last commits
    but never corrupts the file); pass `synchronous="FULL"` for durability across power loss."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        url: str | None = None,
        busy_timeout_s: float = 30.0,
        synchronous: str = "NORMAL",
    ) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown synchronous setting {synchronous!r}")
        self.path = Path(path)
        self.url = url or f"sqlite://{self.path.resolve()}"
        self.busy_timeout_s = busy_timeout_s
        self.synchronous = synchronous.upper()
        self._pool: ThreadConnections[sqlite3.Connection] = ThreadConnections(
            connect=self._connect,
            close=lambda conn: conn.close(),
            broken=lambda conn, exc: False,
            size=1,
            name=f"runstore-sqlite:{self.path.name}",
        )
        # Group commit: writes queued while one transaction commits go in the next one together
        # (one lock acquisition and one commit for many runs' writes).
        self._writes: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._writes_lock = threading.Lock()
        self._draining = False
        self.commits = 0

    def __repr__(self) -> str:
        return f"SqliteRunStore({str(self.path)!r})"

    # --- connection ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            create_private_file(self.path)  # 0600 before SQLite opens it: its -wal/-shm follow
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise RunStoreUnavailable(
                self.url, f"cannot open {self.path}: {exc}", transient=sqlite_transient(exc)
            ) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            self._set_up(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise RunStoreUnavailable(
                self.url, f"cannot set up {self.path}: {exc}", transient=sqlite_transient(exc)
            ) from exc
        return conn

    def _set_up(self, conn: sqlite3.Connection) -> None:
        """WAL and the schema. Switching a fresh file to WAL needs a moment of exclusive access and
        SQLite answers SQLITE_BUSY at once (the busy timeout does not cover it) when another process
        opens the file at the same moment: retry with jittered backoff."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
                conn.executescript(_SCHEMA)
                self._upgrade(conn)
                return
            except sqlite3.OperationalError as exc:
                if not _transient(exc) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)

    @staticmethod
    def _upgrade(conn: sqlite3.Connection) -> None:
        """Bring a store made by an earlier version up to date, in one transaction (a process
        opening it at the same moment waits, then finds it done): runs without a tenant or an
        origin column gain them; a status check that predates waiting_approval is replaced by
        rebuilding the table (SQLite cannot alter a check)."""
        current = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runstore_runs'").fetchone()[0]
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runstore_runs)")}
        if "waiting_approval" in current and {"tenant", "origin"} <= columns:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(runstore_runs)")}
            for column in ("tenant", "origin"):
                if column not in columns:
                    conn.execute(f"ALTER TABLE runstore_runs ADD COLUMN {column} TEXT")
            current = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runstore_runs'").fetchone()[0]
            if "waiting_approval" not in current:
                conn.execute("ALTER TABLE runstore_runs RENAME TO runstore_runs_old")
                conn.execute(_RUNS_TABLE)
                conn.execute(
                    f"INSERT INTO runstore_runs ({_COLUMNS}) SELECT {_COLUMNS} FROM runstore_runs_old"
                )
                conn.execute("DROP TABLE runstore_runs_old")
                # The indexes went with the old table.
                for statement in _SCHEMA.split(";"):
                    if "CREATE INDEX" in statement and "runstore_runs" in statement:
                        conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def _run(self, body: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        if not write:

            def read(conn: sqlite3.Connection) -> T:
                try:
                    return body(conn)
                except sqlite3.DatabaseError as exc:
                    if not _store_failure(exc):
                        raise
                    raise RunStoreUnavailable(self.url, str(exc), transient=sqlite_transient(exc)) from exc

            return await self._pool.run(read)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._writes_lock:
            self._writes.append((body, future))
            start = not self._draining
            self._draining = True
        if start:
            drain = asyncio.ensure_future(self._pool.run(self._drain))
            drain.add_done_callback(self._drain_failed)
        return await future

    def _drain_failed(self, drain: asyncio.Future[None]) -> None:
        error = None if drain.cancelled() else drain.exception()
        if error is None:
            return
        with self._writes_lock:  # the store is closed or the thread could not connect
            pending, self._writes, self._draining = self._writes, [], False
        _settle_threadsafe([(future, None, error) for _, future in pending])

    def _drain(self, conn: sqlite3.Connection) -> None:
        """On the store's thread: commit queued writes, each in a savepoint of one transaction
        (a body that raises is rolled back alone and gets its error), until none are queued."""
        while True:
            with self._writes_lock:
                batch, self._writes = self._writes, []
                if not batch:
                    self._draining = False
                    return
            outcomes: list[tuple[Any, BaseException | None]] = []
            try:
                conn.execute("BEGIN IMMEDIATE")
                for body, _ in batch:
                    conn.execute("SAVEPOINT write")
                    try:
                        outcomes.append((body(conn), None))
                    except sqlite3.DatabaseError as exc:
                        if _store_failure(exc):
                            raise  # the database itself failed: the whole batch fails
                        conn.execute("ROLLBACK TO write")
                        outcomes.append((None, exc))
                    except Exception as exc:
                        conn.execute("ROLLBACK TO write")
                        outcomes.append((None, exc))
                    conn.execute("RELEASE write")
                conn.execute("COMMIT")
                self.commits += 1
            except sqlite3.DatabaseError as exc:  # BEGIN, SAVEPOINT or COMMIT: the store failed
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                failure = RunStoreUnavailable(self.url, str(exc), transient=sqlite_transient(exc))
                outcomes = [(None, failure)] * len(batch)
            _settle_threadsafe(
                [
                    (future, result, error)
                    for (_, future), (result, error) in zip(batch, outcomes, strict=True)
                ]
            )

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone(), write=False)

    # --- runs ---------------------------------------------------------------------------------

    @staticmethod
    def _get(conn: sqlite3.Connection, run_id: str) -> RunRecord | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM runstore_runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else _record(row)

    @staticmethod
    def _require(conn: sqlite3.Connection, run_id: str) -> tuple[str, int]:
        row = conn.execute("SELECT status, attempt FROM runstore_runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(run_id)
        return row[0], row[1]

    async def create_run(self, record: RunRecord) -> RunRecord:
        return await self._run(self._create_body(record), write=True)

    async def start(self, record: RunRecord, owner: str) -> Started:
        """create_run + begin_attempt + load_checkpoint in one transaction (one round trip). A new
        run (the usual case) is inserted already on its first attempt: one statement, and no
        checkpoint to look for."""
        inputs = dumps(record.inputs, "run inputs")
        origin = None if record.origin is None else dumps(record.origin, "run origin")
        create = self._create_body(record, inputs)
        now = _epoch(utcnow())
        fresh = record.status is RunStatus.PENDING and record.result is None

        def body(conn: sqlite3.Connection) -> Started:
            if fresh:
                inserted = conn.execute(
                    f"INSERT OR IGNORE INTO runstore_runs ({_COLUMNS}) "
                    "VALUES (?, ?, ?, 'running', ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
                    (
                        record.run_id,
                        record.unit,
                        inputs,
                        record.parent_run_id,
                        record.attempt + 1,
                        owner,
                        record.error,
                        now,
                        now,
                        record.tenant,
                        origin,
                    ),
                ).rowcount
                if inserted:
                    created = RunRecord(
                        run_id=record.run_id,
                        unit=record.unit,
                        inputs=loads(inputs),
                        parent_run_id=record.parent_run_id,
                        attempt=record.attempt,
                        owner=record.owner,
                        error=record.error,
                        created_at=_time(now),
                        updated_at=_time(now),
                        tenant=record.tenant,
                        origin=record.origin,
                    )
                    return Started(created, record.attempt + 1, None)
            stored = create(conn)
            if stored.status.settled:
                return Started(stored, None, None)
            attempt = self._begin(conn, record.run_id, owner, now)
            row = conn.execute(
                "SELECT attempt, seq, state, saved_at FROM runstore_checkpoints WHERE run_id = ?",
                (record.run_id,),
            ).fetchone()
            checkpoint = (
                None
                if row is None
                else Checkpoint(
                    run_id=record.run_id,
                    attempt=row[0],
                    seq=row[1],
                    state=loads(row[2]),
                    saved_at=_time(row[3]),
                )
            )
            return Started(stored, attempt, checkpoint)

        return await self._run(body, write=True)

    def _create_body(
        self, record: RunRecord, inputs: str | None = None
    ) -> Callable[[sqlite3.Connection], RunRecord]:
        if inputs is None:
            inputs = dumps(record.inputs, "run inputs")
        result = None if record.result is None else dumps(record.result, "run result")
        origin = None if record.origin is None else dumps(record.origin, "run origin")
        status = RunStatus(record.status)
        now = _epoch(utcnow())

        def body(conn: sqlite3.Connection) -> RunRecord:
            conn.execute(
                f"INSERT OR IGNORE INTO runstore_runs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.run_id,
                    record.unit,
                    inputs,
                    status.value,
                    record.parent_run_id,
                    record.attempt,
                    record.owner,
                    result,
                    record.error,
                    now,
                    now,
                    record.tenant,
                    origin,
                ),
            )
            stored = self._get(conn, record.run_id)
            assert stored is not None
            return stored

        return body

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._run(lambda conn: self._get(conn, run_id), write=False)

    async def list_runs(
        self,
        *,
        status: RunStatus | str | None = None,
        unit: str | None = None,
        limit: int = 100,
        top_level: bool = False,
    ) -> list[RunRecord]:
        sql, params = list_runs_query(
            _COLUMNS, status, unit, limit, mark="?", newest="rowid", top_level=top_level
        )

        def body(conn: sqlite3.Connection) -> list[RunRecord]:
            return [_record(row) for row in conn.execute(sql, params).fetchall()]

        return await self._run(body, write=False)

    def _begin(self, conn: sqlite3.Connection, run_id: str, owner: str, now: float) -> int:
        status, attempt = self._require(conn, run_id)
        if RunStatus(status).finished:
            raise RunAlreadyFinished(run_id, RunStatus(status), "begin_attempt")
        if status == RunStatus.WAITING_APPROVAL:
            raise RunWaitingApproval(run_id, "begin_attempt")
        conn.execute(
            "UPDATE runstore_runs SET attempt = ?, status = 'running', owner = ?, updated_at = ? WHERE run_id = ?",
            (attempt + 1, owner, now, run_id),
        )
        return attempt + 1

    async def begin_attempt(self, run_id: str, owner: str) -> int:
        now = _epoch(utcnow())
        return await self._run(lambda conn: self._begin(conn, run_id, owner, now), write=True)

    async def finish(
        self,
        run_id: str,
        attempt: int,
        status: RunStatus | str,
        result: Any = None,
        error: str | None = None,
    ) -> RunRecord:
        final = check_finish_status(status)
        result_text = None if result is None else dumps(result, "run result")
        now = _epoch(utcnow())

        def body(conn: sqlite3.Connection) -> RunRecord:
            # The usual case in one statement: the current attempt finishes its unfinished run.
            row = conn.execute(
                "UPDATE runstore_runs SET status = ?, result = ?, error = ?, updated_at = ? "
                "WHERE run_id = ? AND attempt = ? AND status IN ('pending', 'running', 'waiting_approval') "
                f"RETURNING {_COLUMNS}",
                (final.value, result_text, error, now, run_id, attempt),
            ).fetchone()
            if row is not None:
                if final is RunStatus.COMPLETED:  # its result is what remains of it
                    conn.execute("DELETE FROM runstore_checkpoints WHERE run_id = ?", (run_id,))
                return _record(row)
            stored = self._get(conn, run_id)
            if stored is None:
                raise RunNotFound(run_id)
            check_writer(run_id, attempt, stored.attempt, "finish")
            # The attempt is current, so the run has finished already.
            if stored.status == final and stored.result == loads(result_text) and stored.error == error:
                return stored  # a retried finish
            raise RunAlreadyFinished(run_id, stored.status, "finish")

        return await self._run(body, write=True)

    def _save_one(
        self, conn: sqlite3.Connection, run_id: str, attempt: int, seq: int, text: str, saved_at: float
    ) -> None:
        if conn.execute(_SAVE_CHECKPOINT, (attempt, seq, text, saved_at, run_id, attempt)).rowcount:
            return
        status, current = self._require(conn, run_id)  # why not: raise the error that says so
        stored = conn.execute(
            "SELECT attempt, seq FROM runstore_checkpoints WHERE run_id = ?", (run_id,)
        ).fetchone()
        check_checkpoint_write(run_id, attempt, seq, status, current, stored)
        conn.execute(  # allowed all the same (a pending run created with an attempt of its own)
            "INSERT OR REPLACE INTO runstore_checkpoints (run_id, attempt, seq, state, saved_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (run_id, attempt, seq, text, saved_at),
        )

    async def save_checkpoint(
        self, run_id: str, attempt: int, seq: int, state: dict[str, Any] | JsonText
    ) -> Checkpoint:
        text = state_text(state)
        saved_at = utcnow()
        await self._run(
            lambda conn: self._save_one(conn, run_id, attempt, seq, text, _epoch(saved_at)), write=True
        )
        return Checkpoint(run_id=run_id, seq=seq, attempt=attempt, state=loads(text), saved_at=saved_at)

    async def save_checkpoints(
        self, items: Sequence[tuple[str, int, int, dict[str, Any] | JsonText]]
    ) -> list[RunStoreError | None]:
        """One transaction for many runs' checkpoints (group commit); each is fenced on its own (a
        refused one has written nothing, the others are written)."""
        prepared = [(run_id, attempt, seq, state_text(state)) for run_id, attempt, seq, state in items]
        saved_at = _epoch(utcnow())

        def body(conn: sqlite3.Connection) -> list[RunStoreError | None]:
            results: list[RunStoreError | None] = []
            for run_id, attempt, seq, text in prepared:
                try:
                    self._save_one(conn, run_id, attempt, seq, text, saved_at)
                except RunStoreError as exc:
                    results.append(exc)
                else:
                    results.append(None)
            return results

        return await self._run(body, write=True)

    async def await_approval(
        self,
        run_id: str,
        attempt: int,
        asked: Sequence[tuple[str, str, dict[str, Any]]],
        *,
        result: Any,
        error: str | None,
        checkpoint: tuple[int, dict[str, Any] | JsonText] | None = None,
    ) -> RunRecord:
        result_text = None if result is None else dumps(result, "run result")
        saved = None if checkpoint is None else (checkpoint[0], state_text(checkpoint[1]))
        now = utcnow()

        def body(conn: sqlite3.Connection) -> RunRecord:
            approval_sql.await_approval(
                conn,
                _DIALECT,
                run_id,
                attempt,
                asked,
                result_text=result_text,
                error=error,
                checkpoint=saved,
                now=now,
            )
            stored = self._get(conn, run_id)
            assert stored is not None
            return stored

        return await self._run(body, write=True)

    async def decide(
        self, run_id: str, decision: Decision | str, *, by: str, call_key: str | None = None
    ) -> DecisionReport:
        chosen, now = Decision(decision), utcnow()
        return await self._run(
            lambda conn: approval_sql.decide(
                conn, _DIALECT, run_id, chosen, by=by, call_key=call_key, now=now
            ),
            write=True,
        )

    async def approvals(self, run_id: str) -> list[PendingApproval]:
        return await self._run(lambda conn: approval_sql.approvals(conn, _DIALECT, run_id)[1], write=False)

    async def append_events(self, events: Sequence[event_sql.NewEvent]) -> list[int]:
        if not events:
            return []
        rows = event_sql.encode(events)
        # The write lock (BEGIN IMMEDIATE) keeps every other writer out until this commits.
        return await self._run(lambda conn: event_sql.append(conn, _DIALECT, rows), write=True)

    async def read_events(
        self, run_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[event_sql.StoredEvent]:
        return await self._run(
            lambda conn: event_sql.read(conn, _DIALECT, run_id, after=after, limit=limit), write=False
        )

    async def load_checkpoint(self, run_id: str) -> Checkpoint | None:
        def body(conn: sqlite3.Connection) -> Checkpoint | None:
            return checkpoint_of(run_id, conn.execute(_CHECKPOINT, (run_id,)).fetchone(), _time)

        return await self._run(body, write=False)

    async def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Polls with bounded backoff (5 ms doubling to 250 ms)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delay = 0.005
        while True:
            record = await self.get_run(run_id)
            if record is None:
                raise RunNotFound(run_id)
            if record.status.settled:
                return record
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(
                        f"run {run_id!r} did not finish within {timeout}s (status {record.status})"
                    )
                await asyncio.sleep(min(delay, remaining))
            else:
                await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def delete_run(self, run_id: str) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM runstore_checkpoints WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runstore_approvals WHERE root_run_id = ?", (run_id,))
            conn.execute("DELETE FROM runstore_events WHERE root_run_id = ?", (run_id,))
            return conn.execute("DELETE FROM runstore_runs WHERE run_id = ?", (run_id,)).rowcount == 1

        return await self._run(body, write=True)

    async def _count_prunable(self, finished_before: datetime, statuses: list[str]) -> int:
        where, params = prune_filter(statuses, _epoch(finished_before), mark="?")
        query = f"SELECT count(*) FROM runstore_runs WHERE {where}"
        return await self._run(lambda conn: int(conn.execute(query, params).fetchone()[0]), write=False)

    async def _prune_batch(self, finished_before: datetime, statuses: list[str], batch: int) -> int:
        where, params = prune_filter(statuses, _epoch(finished_before), mark="?")

        def body(conn: sqlite3.Connection) -> int:
            select = f"SELECT run_id FROM runstore_runs WHERE {where} LIMIT {int(batch)}"
            ids = [row[0] for row in conn.execute(select, params)]
            if ids:
                marks = ", ".join("?" * len(ids))
                conn.execute(f"DELETE FROM runstore_checkpoints WHERE run_id IN ({marks})", ids)
                conn.execute(f"DELETE FROM runstore_approvals WHERE root_run_id IN ({marks})", ids)
                conn.execute(f"DELETE FROM runstore_events WHERE root_run_id IN ({marks})", ids)
                conn.execute(f"DELETE FROM runstore_runs WHERE run_id IN ({marks})", ids)
            return len(ids)

        return await self._run(body, write=True)

    async def close(self) -> None:
        await self._pool.aclose()
