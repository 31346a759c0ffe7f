"""PostgreSQL (psycopg 3): the run store and the `key`-mode idempotency store for a cluster, where
every node reaches one database.

Blocking psycopg connections run on a few dedicated worker threads per store (one connection
each, autocommit with explicit transactions); `wait` uses LISTEN/NOTIFY on its own async
connection. The schema is created on first use (`CREATE TABLE IF NOT EXISTS` under a
transaction-scoped advisory lock, so processes starting together do not race on the catalog).
Tables are created in the connection's `search_path` schema: give `options=-csearch_path=...` in
the URL to put them elsewhere.

Fencing is row locking: every write locks the run's row (`SELECT ... FOR UPDATE`), checks the
attempt, and writes, in one transaction."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from agent_platform._redaction import redact_secrets
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
from agent_platform._runstore.idempotency import Claim, IdempotencyRecord, IdempotencyStore

T = TypeVar("T")

NOTIFY_CHANNEL = "runstore_finished"
_SCHEMA_LOCK = 7_216_305_114  # pg_advisory_xact_lock key: serialises schema creation
# The first key of the two-key advisory lock that serialises the event writers of one run tree.
_EVENTS_LOCK = 72_163

_STATUSES = ", ".join(f"'{status.value}'" for status in RunStatus)

_RUN_SCHEMA = """
CREATE TABLE IF NOT EXISTS runstore_runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    run_id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    inputs TEXT NOT NULL,
    status TEXT NOT NULL CONSTRAINT runstore_runs_status_check CHECK (status IN ({statuses})),
    parent_run_id TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    result TEXT,
    error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    tenant TEXT
);
-- Stores created before runs carried a tenant, or an origin.
ALTER TABLE runstore_runs ADD COLUMN IF NOT EXISTS tenant TEXT;
ALTER TABLE runstore_runs ADD COLUMN IF NOT EXISTS origin TEXT;
CREATE INDEX IF NOT EXISTS runstore_runs_created ON runstore_runs (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS runstore_runs_status ON runstore_runs (status, created_at DESC);
CREATE INDEX IF NOT EXISTS runstore_runs_unit ON runstore_runs (unit, created_at DESC);
CREATE INDEX IF NOT EXISTS runstore_runs_parent ON runstore_runs (parent_run_id);
CREATE TABLE IF NOT EXISTS runstore_checkpoints (
    run_id TEXT PRIMARY KEY REFERENCES runstore_runs (run_id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    saved_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS runstore_approvals ({approvals});
CREATE TABLE IF NOT EXISTS runstore_events ({events})
""".format(
    statuses=_STATUSES,
    approvals=approval_sql.TABLE_COLUMNS.format(time="TIMESTAMPTZ"),
    events=event_sql.TABLE_COLUMNS.format(integer="BIGINT", time="TIMESTAMPTZ"),
)
# A store made before runs could wait for approval: its status check is replaced (one statement
# of its own: the body has semicolons).
_STATUS_CHECK = f"""
DO $$ BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_constraint
    WHERE conrelid = 'runstore_runs'::regclass AND conname = 'runstore_runs_status_check'
      AND pg_get_constraintdef(oid) LIKE '%waiting_approval%'
  ) THEN
    ALTER TABLE runstore_runs DROP CONSTRAINT IF EXISTS runstore_runs_status_check;
    ALTER TABLE runstore_runs ADD CONSTRAINT runstore_runs_status_check CHECK (status IN ({_STATUSES}));
  END IF;
END $$
"""
_RUN_SCHEMA_STATEMENTS = (*filter(str.strip, _RUN_SCHEMA.split(";")), _STATUS_CHECK)

_IDEMPOTENCY_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    tool TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_progress', 'succeeded', 'failed')),
    owner TEXT,
    result TEXT,
    error TEXT,
    executions INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    lease_expires_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (tool, key_hash)
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
"""

_COLUMNS = (
    "run_id, unit, inputs, status, parent_run_id, attempt, owner, result, error, created_at, updated_at, "
    "tenant, origin"
)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


_FINISH_UPDATE = (
    "UPDATE runstore_runs SET status = %s, result = %s, error = %s, updated_at = %s "
    "WHERE run_id = %s AND attempt = %s AND status IN ('pending', 'running', 'waiting_approval') "
    f"RETURNING {_COLUMNS}"
)
_FINISH = _FINISH_UPDATE.encode()
_CHECKPOINT = checkpoint_query("%s").encode()
_FINISH_COMPLETED = (
    f"WITH done AS ({_FINISH_UPDATE}), "
    "dropped AS (DELETE FROM runstore_checkpoints WHERE run_id IN (SELECT run_id FROM done)) "
    f"SELECT {_COLUMNS} FROM done"
).encode()


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
        created_at=_utc(row[9]),
        updated_at=_utc(row[10]),
        tenant=row[11],
        origin=loads(row[12]),
    )


_DIALECT = approval_sql.Dialect("%s", lambda moment: moment, _utc, " FOR UPDATE")


def _broken(conn: psycopg.Connection[Any], exc: BaseException) -> bool:
    return bool(
        conn.closed or conn.broken or isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    )


def _alive(conn: psycopg.Connection[Any]) -> bool:
    if conn.closed or conn.broken:
        return False
    conn.execute("SELECT 1")
    return True


class _PgConnections:
    """Worker threads with one psycopg connection each, the schema created once, driver errors
    about the connection turned into RunStoreUnavailable (with the password removed)."""

    def __init__(
        self,
        url: str,
        schema: Sequence[str],
        *,
        pool_size: int,
        connect_timeout_s: float,
        idle_check_s: float,
        name: str,
    ) -> None:
        self.url = url
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._threads: ThreadConnections[psycopg.Connection[Any]] = ThreadConnections(
            connect=self._connect,
            close=lambda conn: conn.close(),
            broken=_broken,
            size=pool_size,
            name=name,
            alive=_alive,
            idle_check_s=idle_check_s,
        )

    def connect_kwargs(self) -> dict[str, Any]:
        return {"autocommit": True, "connect_timeout": max(1, round(self.connect_timeout_s))}

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, **self.connect_kwargs())
        except psycopg.Error as exc:
            raise RunStoreUnavailable(self.url, str(exc).strip()) from None
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            with self._schema_lock:
                if not self._schema_ready:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                        for statement in self.schema:
                            conn.execute(sql.SQL(statement))
                    self._schema_ready = True
        except psycopg.Error as exc:
            conn.close()
            raise RunStoreUnavailable(self.url, f"cannot set up the schema: {str(exc).strip()}") from None
        return conn

    async def run(self, body: Callable[[psycopg.Connection[Any]], T], *, write: bool) -> T:
        def call(conn: psycopg.Connection[Any]) -> T:
            try:
                if not write:
                    return body(conn)
                with conn.transaction():
                    return body(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise RunStoreUnavailable(self.url, str(exc).strip()) from None

        return await self._threads.run(call)

    async def aclose(self) -> None:
        await self._threads.aclose()


class PostgresRunStore(RunStore):
    """See the module docstring. `pool_size` connections (one per worker thread) serve concurrent
    calls; a connection idle for `idle_check_s` is checked (`SELECT 1`) before it is used again."""

    def __init__(
        self, url: str, *, pool_size: int = 4, connect_timeout_s: float = 5.0, idle_check_s: float = 5.0
    ) -> None:
        self.url = url
        self._db = _PgConnections(
            url,
            _RUN_SCHEMA_STATEMENTS,
            pool_size=pool_size,
            connect_timeout_s=connect_timeout_s,
            idle_check_s=idle_check_s,
            name="runstore-pg",
        )

    def __repr__(self) -> str:
        return f"PostgresRunStore({redact_secrets(self.url)!r})"

    async def ping(self) -> None:
        await self._db.run(lambda conn: conn.execute("SELECT 1").fetchone(), write=False)

    @staticmethod
    def _get(conn: psycopg.Connection[Any], run_id: str, *, lock: bool = False) -> RunRecord | None:
        query = f"SELECT {_COLUMNS} FROM runstore_runs WHERE run_id = %s" + (" FOR UPDATE" if lock else "")
        row = conn.execute(query.encode(), (run_id,)).fetchone()
        return None if row is None else _record(row)

    @staticmethod
    def _lock(conn: psycopg.Connection[Any], run_id: str) -> tuple[str, int]:
        row = conn.execute(
            "SELECT status, attempt FROM runstore_runs WHERE run_id = %s FOR UPDATE", (run_id,)
        ).fetchone()
        if row is None:
            raise RunNotFound(run_id)
        return row[0], row[1]

    @staticmethod
    def _insert(
        conn: psycopg.Connection[Any],
        record: RunRecord,
        inputs: str,
        *,
        status: RunStatus,
        attempt: int,
        owner: str | None,
        now: datetime,
    ) -> bool:
        """Insert the run unless it exists; whether it was inserted."""
        result = None if record.result is None else dumps(record.result, "run result")
        origin = None if record.origin is None else dumps(record.origin, "run origin")
        cursor = conn.execute(
            f"INSERT INTO runstore_runs ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id) DO NOTHING".encode(),
            (
                record.run_id,
                record.unit,
                inputs,
                status.value,
                record.parent_run_id,
                attempt,
                owner,
                result,
                record.error,
                now,
                now,
                record.tenant,
                origin,
            ),
        )
        return cursor.rowcount == 1

    async def create_run(self, record: RunRecord) -> RunRecord:
        inputs = dumps(record.inputs, "run inputs")
        status = RunStatus(record.status)
        now = utcnow()

        def body(conn: psycopg.Connection[Any]) -> RunRecord:
            self._insert(
                conn, record, inputs, status=status, attempt=record.attempt, owner=record.owner, now=now
            )
            stored = self._get(conn, record.run_id)
            assert stored is not None
            return stored

        return await self._db.run(body, write=True)

    async def start(self, record: RunRecord, owner: str) -> Started:
        """create_run + begin_attempt + load_checkpoint in one transaction (one round trip). A new
        run (the usual case) is inserted already on its first attempt: one statement, and no
        checkpoint to look for."""
        inputs = dumps(record.inputs, "run inputs")
        status = RunStatus(record.status)
        now = utcnow()
        fresh = status is RunStatus.PENDING and record.result is None

        def body(conn: psycopg.Connection[Any]) -> Started:
            if fresh and self._insert(
                conn,
                record,
                inputs,
                status=RunStatus.RUNNING,
                attempt=record.attempt + 1,
                owner=owner,
                now=now,
            ):
                created = replace(record, inputs=loads(inputs), created_at=now, updated_at=now)
                return Started(created, record.attempt + 1, None)
            if not fresh:
                self._insert(
                    conn, record, inputs, status=status, attempt=record.attempt, owner=record.owner, now=now
                )
            stored = self._get(conn, record.run_id, lock=True)
            assert stored is not None
            if stored.status.settled:
                return Started(stored, None, None)
            attempt = stored.attempt + 1
            conn.execute(
                "UPDATE runstore_runs SET attempt = %s, status = 'running', owner = %s, updated_at = %s "
                "WHERE run_id = %s",
                (attempt, owner, now, record.run_id),
            )
            return Started(stored, attempt, self._checkpoint(conn, record.run_id))

        return await self._db.run(body, write=True)

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._db.run(lambda conn: self._get(conn, run_id), write=False)

    async def list_runs(
        self,
        *,
        status: RunStatus | str | None = None,
        unit: str | None = None,
        limit: int = 100,
        top_level: bool = False,
    ) -> list[RunRecord]:
        query, params = list_runs_query(
            _COLUMNS, status, unit, limit, mark="%s", newest="id", top_level=top_level
        )

        def body(conn: psycopg.Connection[Any]) -> list[RunRecord]:
            return [_record(row) for row in conn.execute(query.encode(), params).fetchall()]

        return await self._db.run(body, write=False)

    async def begin_attempt(self, run_id: str, owner: str) -> int:
        now = utcnow()

        def body(conn: psycopg.Connection[Any]) -> int:
            status, attempt = self._lock(conn, run_id)
            if RunStatus(status).finished:
                raise RunAlreadyFinished(run_id, RunStatus(status), "begin_attempt")
            if status == RunStatus.WAITING_APPROVAL:
                raise RunWaitingApproval(run_id, "begin_attempt")
            conn.execute(
                "UPDATE runstore_runs SET attempt = %s, status = 'running', owner = %s, updated_at = %s "
                "WHERE run_id = %s",
                (attempt + 1, owner, now, run_id),
            )
            return attempt + 1

        return await self._db.run(body, write=True)

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
        now = utcnow()

        def body(conn: psycopg.Connection[Any]) -> RunRecord:
            # The usual case in one statement: the current attempt finishes its unfinished run
            # (and a completed run's checkpoint goes with it, see RunStore.finish).
            row = conn.execute(
                _FINISH_COMPLETED if final is RunStatus.COMPLETED else _FINISH,
                (final.value, result_text, error, now, run_id, attempt),
            ).fetchone()
            if row is not None:
                conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, run_id))  # sent on commit
                return _record(row)
            stored = self._get(conn, run_id, lock=True)
            if stored is None:
                raise RunNotFound(run_id)
            check_writer(run_id, attempt, stored.attempt, "finish")
            # The attempt is current, so the run has finished already.
            if stored.status == final and stored.result == loads(result_text) and stored.error == error:
                return stored  # a retried finish
            raise RunAlreadyFinished(run_id, stored.status, "finish")

        return await self._db.run(body, write=True)

    def _save_one(
        self,
        conn: psycopg.Connection[Any],
        run_id: str,
        attempt: int,
        seq: int,
        text: str,
        saved_at: datetime,
    ) -> None:
        status, current = self._lock(conn, run_id)
        stored = conn.execute(
            "SELECT attempt, seq FROM runstore_checkpoints WHERE run_id = %s", (run_id,)
        ).fetchone()
        check_checkpoint_write(run_id, attempt, seq, status, current, stored)
        conn.execute(
            "INSERT INTO runstore_checkpoints (run_id, attempt, seq, state, saved_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET "
            "attempt = EXCLUDED.attempt, seq = EXCLUDED.seq, state = EXCLUDED.state, "
            "saved_at = EXCLUDED.saved_at",
            (run_id, attempt, seq, text, saved_at),
        )

    async def save_checkpoint(
        self, run_id: str, attempt: int, seq: int, state: dict[str, Any] | JsonText
    ) -> Checkpoint:
        text = state_text(state)
        saved_at = utcnow()
        await self._db.run(
            lambda conn: self._save_one(conn, run_id, attempt, seq, text, saved_at), write=True
        )
        return Checkpoint(run_id=run_id, seq=seq, attempt=attempt, state=loads(text), saved_at=saved_at)

    async def save_checkpoints(
        self, items: Sequence[tuple[str, int, int, dict[str, Any] | JsonText]]
    ) -> list[RunStoreError | None]:
        """One transaction for many runs' checkpoints (group commit), each fenced on its own in a
        savepoint. Run rows are locked in run_id order, so two batches naming the same runs (a
        zombie's and its successor's) cannot deadlock."""
        prepared = sorted(
            (run_id, index, attempt, seq, state_text(state))
            for index, (run_id, attempt, seq, state) in enumerate(items)
        )
        saved_at = utcnow()

        def body(conn: psycopg.Connection[Any]) -> list[RunStoreError | None]:
            results: list[RunStoreError | None] = [None] * len(prepared)
            for run_id, index, attempt, seq, text in prepared:
                try:
                    with conn.transaction():
                        self._save_one(conn, run_id, attempt, seq, text, saved_at)
                except RunStoreError as exc:
                    results[index] = exc
            return results

        return await self._db.run(body, write=True)

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

        def body(conn: psycopg.Connection[Any]) -> RunRecord:
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
            conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, run_id))  # `wait` returns
            stored = self._get(conn, run_id)
            assert stored is not None
            return stored

        return await self._db.run(body, write=True)

    async def decide(
        self, run_id: str, decision: Decision | str, *, by: str, call_key: str | None = None
    ) -> DecisionReport:
        chosen, now = Decision(decision), utcnow()
        return await self._db.run(
            lambda conn: approval_sql.decide(
                conn, _DIALECT, run_id, chosen, by=by, call_key=call_key, now=now
            ),
            write=True,
        )

    async def approvals(self, run_id: str) -> list[PendingApproval]:
        return await self._db.run(lambda conn: approval_sql.approvals(conn, _DIALECT, run_id)[1], write=False)

    async def append_events(self, events: Sequence[event_sql.NewEvent]) -> list[int]:
        if not events:
            return []
        rows = event_sql.encode(events)

        def body(conn: psycopg.Connection[Any]) -> list[int]:
            def lock_tree(root: str) -> None:
                # Held until the transaction ends: the next writer of this tree numbers after us.
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_EVENTS_LOCK, root))

            return event_sql.append(conn, _DIALECT, rows, lock_tree=lock_tree)

        return await self._db.run(body, write=True)

    async def read_events(
        self, run_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[event_sql.StoredEvent]:
        return await self._db.run(
            lambda conn: event_sql.read(conn, _DIALECT, run_id, after=after, limit=limit), write=False
        )

    @staticmethod
    def _checkpoint(conn: psycopg.Connection[Any], run_id: str) -> Checkpoint | None:
        return checkpoint_of(run_id, conn.execute(_CHECKPOINT, (run_id,)).fetchone(), _utc)

    async def load_checkpoint(self, run_id: str) -> Checkpoint | None:
        return await self._db.run(lambda conn: self._checkpoint(conn, run_id), write=False)

    async def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """LISTEN on a connection of its own, then read the run, then wake on each NOTIFY for it
        (and re-read every 2 s regardless, as a safety net)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with await psycopg.AsyncConnection.connect(self.url, **self._db.connect_kwargs()) as conn:
                await conn.execute(f"LISTEN {NOTIFY_CHANNEL}".encode())
                while True:
                    record = await self.get_run(run_id)
                    if record is None:
                        raise RunNotFound(run_id)
                    if record.status.settled:
                        return record
                    slice_s = 2.0
                    if deadline is not None:
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            raise TimeoutError(
                                f"run {run_id!r} did not finish within {timeout}s (status {record.status})"
                            )
                        slice_s = min(slice_s, remaining)
                    async for notify in conn.notifies(timeout=slice_s):
                        if notify.payload == run_id:
                            break
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise RunStoreUnavailable(self.url, str(exc).strip()) from None

    async def delete_run(self, run_id: str) -> bool:
        def body(conn: psycopg.Connection[Any]) -> bool:
            conn.execute("DELETE FROM runstore_approvals WHERE root_run_id = %s", (run_id,))
            conn.execute("DELETE FROM runstore_events WHERE root_run_id = %s", (run_id,))
            cursor = conn.execute("DELETE FROM runstore_runs WHERE run_id = %s", (run_id,))
            if cursor.rowcount == 1:
                conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, run_id))  # wake waiters
                return True
            return False

        return await self._db.run(body, write=True)

    async def _count_prunable(self, finished_before: datetime, statuses: list[str]) -> int:
        where, params = prune_filter(statuses, finished_before, mark="%s")
        query = f"SELECT count(*) FROM runstore_runs WHERE {where}".encode()

        def body(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(query, params).fetchone()
            return int(row[0]) if row is not None else 0

        return await self._db.run(body, write=False)

    async def _prune_batch(self, finished_before: datetime, statuses: list[str], batch: int) -> int:
        where, params = prune_filter(statuses, finished_before, mark="%s")
        # Checkpoints go with their runs (ON DELETE CASCADE). SKIP LOCKED: a run some writer holds
        # now is left for the next batch or prune rather than waited for.
        delete = (
            "WITH gone AS (DELETE FROM runstore_runs WHERE run_id IN (SELECT run_id FROM runstore_runs "
            f"WHERE {where} LIMIT {int(batch)} FOR UPDATE SKIP LOCKED) RETURNING run_id), "
            "approvals AS (DELETE FROM runstore_approvals WHERE root_run_id IN (SELECT run_id FROM gone)), "
            "events AS (DELETE FROM runstore_events WHERE root_run_id IN (SELECT run_id FROM gone)) "
            "SELECT count(*) FROM gone"
        ).encode()

        def body(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(delete, params).fetchone()
            return int(row[0]) if row is not None else 0

        return await self._db.run(body, write=True)

    async def close(self) -> None:
        await self._db.aclose()


# --- the idempotency store --------------------------------------------------------------------


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("idempotency store times must be timezone-aware")
    return now.astimezone(UTC)


class PostgresIdempotencyStore(IdempotencyStore):
    """`key`-mode tool-call records shared by a cluster, with the semantics of
    `SqliteIdempotencyStore` (see `_runtime/tools/idempotency.py`): a claim inserts the key
    (`ON CONFLICT DO NOTHING`) or locks the existing row (`FOR UPDATE`) and decides under the
    lock, so concurrent claimers on any node serialise per key."""

    def __init__(
        self, url: str, *, pool_size: int = 4, connect_timeout_s: float = 5.0, idle_check_s: float = 5.0
    ) -> None:
        self.url = url
        self._db = _PgConnections(
            url,
            tuple(filter(str.strip, _IDEMPOTENCY_SCHEMA.split(";"))),
            pool_size=pool_size,
            connect_timeout_s=connect_timeout_s,
            idle_check_s=idle_check_s,
            name="idempotency-pg",
        )

    def __repr__(self) -> str:
        return f"PostgresIdempotencyStore({redact_secrets(self.url)!r})"

    async def claim(
        self, tool: str, key_hash: str, *, owner: str, now: datetime, lease_s: float, ttl_s: float | None
    ) -> Claim:
        t = _aware(now)
        lease = t + timedelta(seconds=lease_s)

        def body(conn: psycopg.Connection[Any]) -> Claim:
            while True:
                inserted = conn.execute(
                    "INSERT INTO idempotency (tool, key_hash, status, owner, executions, created_at, "
                    "updated_at, lease_expires_at, expires_at) "
                    "VALUES (%s, %s, 'in_progress', %s, 1, %s, %s, %s, %s) "
                    "ON CONFLICT (tool, key_hash) DO NOTHING RETURNING 1",
                    (
                        tool,
                        key_hash,
                        owner,
                        t,
                        t,
                        lease,
                        None if ttl_s is None else t + timedelta(seconds=ttl_s),
                    ),
                ).fetchone()
                if inserted is not None:
                    return Claim("claimed", lease_expires_at=lease)
                row = conn.execute(
                    "SELECT status, owner, result, lease_expires_at, expires_at, executions, created_at "
                    "FROM idempotency WHERE tool = %s AND key_hash = %s FOR UPDATE",
                    (tool, key_hash),
                ).fetchone()
                if row is not None:
                    break  # else: purged between the two statements; insert again
            status, holder, result, held_until, expires, executions, created = row
            live = expires is None or expires > t
            if live and status == "succeeded":
                return Claim("succeeded", result_json=result)
            if (
                live
                and status == "in_progress"
                and holder != owner
                and held_until is not None
                and held_until > t
            ):
                return Claim("busy", lease_expires_at=_utc(held_until))
            if not live:
                executions, created = 0, t
            expires_at = None if ttl_s is None else created + timedelta(seconds=ttl_s)
            conn.execute(
                "UPDATE idempotency SET status = 'in_progress', owner = %s, result = NULL, error = NULL, "
                "executions = %s, created_at = %s, updated_at = %s, lease_expires_at = %s, expires_at = %s "
                "WHERE tool = %s AND key_hash = %s",
                (owner, executions + 1, created, t, lease, expires_at, tool, key_hash),
            )
            return Claim("claimed", lease_expires_at=lease)

        return await self._db.run(body, write=True)

    async def complete(
        self, tool: str, key_hash: str, *, owner: str, result_json: str, now: datetime, ttl_s: float | None
    ) -> bool:
        t = _aware(now)
        expires_at = None if ttl_s is None else t + timedelta(seconds=ttl_s)

        def body(conn: psycopg.Connection[Any]) -> bool:
            cursor = conn.execute(
                "UPDATE idempotency SET status = 'succeeded', result = %s, error = NULL, "
                "updated_at = %s, lease_expires_at = NULL, expires_at = %s "
                "WHERE tool = %s AND key_hash = %s AND owner = %s AND status = 'in_progress'",
                (result_json, t, expires_at, tool, key_hash, owner),
            )
            return cursor.rowcount == 1

        return await self._db.run(body, write=True)

    async def fail(self, tool: str, key_hash: str, *, owner: str, error: str, now: datetime) -> None:
        t = _aware(now)

        def body(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "UPDATE idempotency SET status = 'failed', error = %s, updated_at = %s, lease_expires_at = NULL "
                "WHERE tool = %s AND key_hash = %s AND owner = %s AND status = 'in_progress'",
                (error[:2000], t, tool, key_hash, owner),
            )

        await self._db.run(body, write=True)

    async def get(self, tool: str, key_hash: str) -> IdempotencyRecord | None:
        def body(conn: psycopg.Connection[Any]) -> IdempotencyRecord | None:
            row = conn.execute(
                "SELECT tool, key_hash, status, owner, result, error, executions, created_at, updated_at, "
                "lease_expires_at, expires_at FROM idempotency WHERE tool = %s AND key_hash = %s",
                (tool, key_hash),
            ).fetchone()
            if row is None:
                return None
            return IdempotencyRecord(
                tool=row[0],
                key_hash=row[1],
                status=row[2],
                owner=row[3],
                result_json=row[4],
                error=row[5],
                executions=row[6],
                created_at=_utc(row[7]),
                updated_at=_utc(row[8]),
                lease_expires_at=_opt_utc(row[9]),
                expires_at=_opt_utc(row[10]),
            )

        return await self._db.run(body, write=False)

    async def purge_expired(self, now: datetime) -> int:
        t = _aware(now)

        def body(conn: psycopg.Connection[Any]) -> int:
            cursor = conn.execute(
                "DELETE FROM idempotency WHERE expires_at IS NOT NULL AND expires_at <= %s "
                "AND NOT (status = 'in_progress' AND lease_expires_at > %s)",
                (t, t),
            )
            return cursor.rowcount

        return await self._db.run(body, write=True)

    async def aclose(self) -> None:
        await self._db.aclose()
