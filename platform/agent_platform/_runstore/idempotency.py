"""The durable half of `key` idempotency: where a tool call's claim and result are kept so that a
side effect runs once across retries, resumes and processes.

A call *claims* its key before executing (status in_progress with a lease), so two processes
cannot both run the side effect: the second polls until the first succeeds (and returns the
stored result) or its lease expires (then takes over: the first process is presumed dead). A
succeeded key returns its stored result instead of running again, across restarts; a failed call
releases the key so a retry can run. Rows are kept for `ttl` when set, else until purged.

`SqliteIdempotencyStore` serves one machine (the state directory's file); the PostgreSQL store in
`postgres.py` serves a cluster. The runtime's `run_once` (`_runtime/tools/idempotency.py`) drives
them."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from agent_platform._faults import PlatformFault, sqlite_transient
from agent_platform._state_files import create_private_file, default_state_dir

T = TypeVar("T")

STORE_FILE = "idempotency.sqlite3"

ClaimStatus = Literal["claimed", "succeeded", "busy"]
RecordStatus = Literal["in_progress", "succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class Claim:
    status: ClaimStatus
    result_json: str | None = None
    lease_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    tool: str
    key_hash: str
    status: RecordStatus
    result_json: str | None
    error: str | None
    executions: int
    owner: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    lease_expires_at: datetime | None


class IdempotencyStore(ABC):
    """Durable results under (tool, key hash). Times are passed in (timezone-aware UTC) so the
    store needs no clock of its own."""

    @abstractmethod
    async def claim(
        self, tool: str, key_hash: str, *, owner: str, now: datetime, lease_s: float, ttl_s: float | None
    ) -> Claim:
        """Atomically: a live succeeded record -> `succeeded` with its result; an in-progress
        record whose lease has not expired (another owner) -> `busy`; otherwise the key becomes
        in_progress for `owner` until now + lease_s -> `claimed`."""

    @abstractmethod
    async def complete(
        self, tool: str, key_hash: str, *, owner: str, result_json: str, now: datetime, ttl_s: float | None
    ) -> bool:
        """Store the result. False when `owner` no longer holds the claim (lease lost)."""

    @abstractmethod
    async def fail(self, tool: str, key_hash: str, *, owner: str, error: str, now: datetime) -> None:
        """Release the claim after a failure (a later call may run again)."""

    @abstractmethod
    async def get(self, tool: str, key_hash: str) -> IdempotencyRecord | None: ...

    @abstractmethod
    async def purge_expired(self, now: datetime) -> int: ...

    async def aclose(self) -> None:
        return None


def default_store_path() -> Path:
    return default_state_dir() / STORE_FILE


_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    tool TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_progress', 'succeeded', 'failed')),
    owner TEXT,
    result TEXT,
    error TEXT,
    executions INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    lease_expires_at REAL,
    expires_at REAL,
    PRIMARY KEY (tool, key_hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
"""

_COLUMNS = (
    "tool, key_hash, status, owner, result, error, executions, created_at, updated_at, "
    "lease_expires_at, expires_at"
)


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _epoch(now: datetime) -> float:
    if now.tzinfo is None:
        raise ValueError("idempotency store times must be timezone-aware")
    return now.timestamp()


class IdempotencyStoreUnavailable(PlatformFault):
    """The tool-call records cannot be read or written: a platform fault, never the tool's."""

    def __init__(self, where: str, reason: str, *, transient: bool) -> None:
        self.where = where
        self.transient = transient
        super().__init__(f"the idempotency store {where} is unavailable: {reason}")


class SqliteIdempotencyStore(IdempotencyStore):
    """SQLite (stdlib `sqlite3`) in WAL mode with `synchronous=FULL`; every operation runs in a
    worker thread of the store's own inside a `BEGIN IMMEDIATE` transaction, which serialises
    claims across threads and processes sharing the file. Default file:
    `$PLATFORM_STATE_DIR/idempotency.sqlite3`, else `.platform/idempotency.sqlite3`; a new one is
    created readable by its user only (`state_files`)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # A thread of its own: never queued behind tools holding the default executor's threads
        # (a call's result must be recorded the moment the call returns).
        self._thread: ThreadPoolExecutor | None = None

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        if self._thread is None:  # closed, and used again
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="idempotency")
        return await asyncio.get_running_loop().run_in_executor(self._thread, func, *args)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            create_private_file(self.path)  # 0600 before SQLite opens it: its -wal/-shm follow
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            self._set_up(conn)
            self._conn = conn
        return self._conn

    def _set_up(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the schema. Switching a fresh file to WAL needs a moment of exclusive
        access, and SQLite answers SQLITE_BUSY at once (its busy timeout does not cover it) when
        another process opens the file at the same time: retry with jittered backoff until the
        busy timeout (measured: two processes starting together failed with 'database is locked')."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                transient = "locked" in str(exc) or "busy" in str(exc)
                if not transient or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.25)

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        try:
            with self._lock:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = body(conn)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
        except (OSError, sqlite3.DatabaseError) as exc:
            if self._conn is not None and not sqlite_transient(exc):
                self.close()  # opened again on the next call, should the file come back
            raise IdempotencyStoreUnavailable(
                str(self.path), str(exc), transient=sqlite_transient(exc)
            ) from exc

    async def claim(
        self, tool: str, key_hash: str, *, owner: str, now: datetime, lease_s: float, ttl_s: float | None
    ) -> Claim:
        t = _epoch(now)

        def body(conn: sqlite3.Connection) -> Claim:
            row = conn.execute(
                "SELECT status, owner, result, lease_expires_at, expires_at, executions, created_at "
                "FROM idempotency WHERE tool = ? AND key_hash = ?",
                (tool, key_hash),
            ).fetchone()
            executions, created = 0, t
            if row is not None:
                status, holder, result, lease, expires, executions, created = row
                live = expires is None or expires > t
                if live and status == "succeeded":
                    return Claim("succeeded", result_json=result)
                if live and status == "in_progress" and holder != owner and lease is not None and lease > t:
                    return Claim("busy", lease_expires_at=_ts(lease))
                if not live:
                    executions, created = 0, t
            expires_at = None if ttl_s is None else created + ttl_s
            conn.execute(
                f"INSERT OR REPLACE INTO idempotency ({_COLUMNS}) "
                "VALUES (?, ?, 'in_progress', ?, NULL, NULL, ?, ?, ?, ?, ?)",
                (tool, key_hash, owner, executions + 1, created, t, t + lease_s, expires_at),
            )
            return Claim("claimed", lease_expires_at=_ts(t + lease_s))

        return await self._in_thread(self._transaction, body)

    async def complete(
        self, tool: str, key_hash: str, *, owner: str, result_json: str, now: datetime, ttl_s: float | None
    ) -> bool:
        t = _epoch(now)
        expires_at = None if ttl_s is None else t + ttl_s

        def body(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE idempotency SET status = 'succeeded', result = ?, error = NULL, "
                "updated_at = ?, lease_expires_at = NULL, expires_at = ? "
                "WHERE tool = ? AND key_hash = ? AND owner = ? AND status = 'in_progress'",
                (result_json, t, expires_at, tool, key_hash, owner),
            )
            return cursor.rowcount == 1

        return await self._in_thread(self._transaction, body)

    async def fail(self, tool: str, key_hash: str, *, owner: str, error: str, now: datetime) -> None:
        t = _epoch(now)

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE idempotency SET status = 'failed', error = ?, updated_at = ?, lease_expires_at = NULL "
                "WHERE tool = ? AND key_hash = ? AND owner = ? AND status = 'in_progress'",
                (error[:2000], t, tool, key_hash, owner),
            )

        await self._in_thread(self._transaction, body)

    async def get(self, tool: str, key_hash: str) -> IdempotencyRecord | None:
        def body(conn: sqlite3.Connection) -> IdempotencyRecord | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM idempotency WHERE tool = ? AND key_hash = ?", (tool, key_hash)
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
                created_at=datetime.fromtimestamp(row[7], UTC),
                updated_at=datetime.fromtimestamp(row[8], UTC),
                lease_expires_at=_ts(row[9]),
                expires_at=_ts(row[10]),
            )

        return await self._in_thread(self._transaction, body)

    async def purge_expired(self, now: datetime) -> int:
        t = _epoch(now)

        def body(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM idempotency WHERE expires_at IS NOT NULL AND expires_at <= ? "
                "AND NOT (status = 'in_progress' AND lease_expires_at > ?)",
                (t, t),
            )
            return cursor.rowcount

        return await self._in_thread(self._transaction, body)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def aclose(self) -> None:
        await self._in_thread(self.close)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=False)
