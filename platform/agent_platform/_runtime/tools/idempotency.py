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

`key` (`IdempotencyStore`, SQLite by default; the stores live in `_runstore/idempotency.py`)
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
import socket
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from agent_platform._faults import PlatformFault, through_outage
from agent_platform._runstore.idempotency import (
    IdempotencyStore,
)
from agent_platform._runtime.clock import Clock
from agent_platform._runtime.tools.errors import IdempotencyConflict

if TYPE_CHECKING:
    from jinja2 import Template

log = logging.getLogger(__name__)

T = TypeVar("T")

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
