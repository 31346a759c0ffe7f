"""Idempotency: `cache` mode (memoisation of pure tools) and `key` mode (durable exactly-once
results for side effects).

`cache` (`ResultCache`)
    A TTL cache with a bounded size (LRU eviction) per tool, keyed by the sha256 of the canonical
    JSON of the *validated* arguments (`model_dump(mode="json")`, sorted keys): dict order, enum
    members vs their values, tuples vs lists, datetimes, Decimals and nested models all give one
    key. Arguments without a JSON form are not cached (logged, never a crash). Concurrent
    identical calls are single-flight: one runs, the others await its result; a failure reaches
    every waiter and is not cached. Entries expire on the clock's monotonic time (an in-memory
    entry never leaves its process, so the time source that cannot jump is the right one).
    Results are stored as JSON text and decoded per hit, so callers cannot alter the cache.

`key` (`IdempotencyStore`, SQLite by default)
    The key is the spec's `key` template (Jinja2 over `args`, `run` with `run.id`, and `tool`) or,
    by default, run id + tool + canonical arguments; its sha256 is stored, never the key itself.
    A call *claims* its key before executing (status in_progress with a lease), so two processes
    cannot both run the side effect: the second polls until the first succeeds (and returns the
    stored result) or its lease expires (then takes over: the first process is presumed dead).
    A succeeded key returns its stored result instead of running again, across restarts; a failed
    call releases the key so a retry can run. Rows are kept for `ttl` when set, else until purged.
    The tool can read the key with `current_idempotency_key()` (HTTP tools: `{{ idempotency_key }}`)
    to pass it on to the remote service, which closes the remaining window (a crash after the side
    effect but before the result is stored).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from agent_platform.faults import PlatformFault, sqlite_transient, through_outage
from agent_platform.runtime.clock import Clock
from agent_platform.runtime.tools.errors import IdempotencyConflict
from agent_platform.state_files import create_private_file
from agent_platform.state_files import default_state_dir as default_state_dir  # imported from here

if TYPE_CHECKING:
    from jinja2 import Template

log = logging.getLogger(__name__)

T = TypeVar("T")

STORE_FILE = "idempotency.sqlite3"

_IDEMPOTENCY_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agent_platform_idempotency_key", default=None
)


def current_idempotency_key() -> str | None:
    """Inside a `key`-mode tool call: the call's idempotency key (a sha256 hex digest), to pass
    to a remote API's own idempotency mechanism. None elsewhere."""
    return _IDEMPOTENCY_KEY.get()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- single-flight ----------------------------------------------------------------------------


class SingleFlight(Generic[T]):
    """Concurrent `run(key, fn)` calls with the same key share one execution of `fn`.

    The execution runs in its own task (created from the first caller's context, so tracing
    parents stay right): a caller that is cancelled stops waiting without cancelling the work
    the others wait for."""

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """(result, shared): shared is False for the caller whose call ran `fn`."""
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight), True

        async def work() -> T:
            return await fn()

        task = asyncio.ensure_future(work())
        self._flights[key] = task

        def done(finished: asyncio.Future[T]) -> None:
            if self._flights.get(key) is finished:
                del self._flights[key]
            if not finished.cancelled():
                finished.exception()  # retrieved here: no "exception was never retrieved" noise

        task.add_done_callback(done)
        return await asyncio.shield(task), False


# --- cache mode -------------------------------------------------------------------------------

CacheOutcome = Literal["miss", "hit", "shared"]


class ResultCache:
    """One tool's memoised results: TTL, LRU bound, single-flight (see the module docstring)."""

    def __init__(self, max_entries: int, ttl: float | None, clock: Clock) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float | None, str]] = OrderedDict()
        self._flight: SingleFlight[tuple[Any, str | None]] = SingleFlight()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._lookup(key) is not None

    def _lookup(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, text = entry
        if expires is not None and expires <= self.clock.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return text

    def _store(self, key: str, text: str) -> None:
        expires = None if self.ttl is None else self.clock.monotonic() + self.ttl
        self._entries[key] = (expires, text)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    async def get_or_run(self, key: str, fn: Callable[[], Awaitable[Any]]) -> tuple[Any, CacheOutcome]:
        """The cached result for `key`, or `fn()`'s (stored when it succeeds and is JSON)."""
        text = self._lookup(key)
        if text is not None:
            return json.loads(text), "hit"

        async def run_and_store() -> tuple[Any, str | None]:
            value = await fn()
            try:
                encoded: str | None = json.dumps(value, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                log.info("result not cached: it has no JSON form (%s)", exc)
                encoded = None
            if encoded is not None:
                self._store(key, encoded)
            return value, encoded

        (value, encoded), shared = await self._flight.run(key, run_and_store)
        if shared:
            return (json.loads(encoded) if encoded is not None else value), "shared"
        return value, "miss"


# --- key mode: keys ---------------------------------------------------------------------------


def default_key(run_id: str, tool: str, canonical_arguments: str) -> str:
    """run id + tool + canonical arguments."""
    return json.dumps([run_id, tool, canonical_arguments], ensure_ascii=False, separators=(",", ":"))


def render_key(template: Template, *, run_id: str, tool: str, args: Any) -> str:
    key = template.render(args=args, run={"id": run_id}, tool=tool).strip()
    if not key:
        raise ValueError("the idempotency key template rendered an empty key")
    return key


# --- key mode: the store ----------------------------------------------------------------------

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


# --- key mode: claim, run, store --------------------------------------------------------------


async def _release(
    store: IdempotencyStore, tool: str, key_hash: str, owner: str, error: str, clock: Clock
) -> None:
    """Mark a call that failed, so the next caller need not wait for its lease; should the store
    be down, the lease lapses by itself, which is all this saves."""
    try:
        await store.fail(tool, key_hash, owner=owner, error=error, now=clock.now())
    except PlatformFault as exc:
        log.warning("tool %s: could not record a failed call (its lease lapses instead): %s", tool, exc)


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass(slots=True)
class KeyedOutcome:
    output: Any
    from_store: bool


async def run_once(
    store: IdempotencyStore,
    tool: str,
    key_hash: str,
    fn: Callable[[], Awaitable[Any]],
    *,
    clock: Clock,
    lease_s: float,
    ttl_s: float | None,
    max_wait_s: float | None = None,
    poll_initial_s: float = 0.05,
    poll_max_s: float = 0.5,
) -> KeyedOutcome:
    """Claim `key_hash`, run `fn` once and store its (JSON) result; or return the stored result;
    or wait for another owner's call to finish (or its lease to expire)."""
    owner = new_owner()
    wait_limit = max_wait_s if max_wait_s is not None else lease_s * 2 + 1.0
    deadline = clock.monotonic() + wait_limit
    delay = poll_initial_s
    while True:
        # Through an outage of the store: nothing runs before its claim is recorded.
        claim = await through_outage(
            lambda: store.claim(tool, key_hash, owner=owner, now=clock.now(), lease_s=lease_s, ttl_s=ttl_s),
            f"tool {tool}: claiming its idempotency key",
            sleep=clock.sleep,
        )
        if claim.status == "succeeded":
            return KeyedOutcome(json.loads(claim.result_json or "null"), True)
        if claim.status == "claimed":
            break
        if clock.monotonic() >= deadline:
            raise IdempotencyConflict(
                tool,
                key_hash[:12],
                f"a call with the same idempotency key is still in progress elsewhere "
                f"(waited {wait_limit:.0f}s); the side effect was not repeated",
            )
        await clock.sleep(delay)
        delay = min(delay * 2, poll_max_s)

    token = _IDEMPOTENCY_KEY.set(key_hash)
    try:
        output = await fn()
    except asyncio.CancelledError:
        await asyncio.shield(_release(store, tool, key_hash, owner, "cancelled", clock))
        raise
    except Exception as exc:
        await _release(store, tool, key_hash, owner, f"{type(exc).__name__}: {exc}", clock)
        raise
    finally:
        _IDEMPOTENCY_KEY.reset(token)
    text = json.dumps(output, ensure_ascii=False)
    # The side effect has happened: its record must be written before anything else happens, or a
    # resume would run it again. Tried through an outage of the store, for as long as the run
    # may last (its own timeout stops it).
    completed = await through_outage(
        lambda: store.complete(tool, key_hash, owner=owner, result_json=text, now=clock.now(), ttl_s=ttl_s),
        f"tool {tool}: recording the result of a call that ran",
        sleep=clock.sleep,
    )
    if not completed:
        log.warning(
            "tool %s: the idempotency lease for key %s expired before the call finished; another "
            "process may have run it too",
            tool,
            key_hash[:12],
        )
    return KeyedOutcome(output, False)
