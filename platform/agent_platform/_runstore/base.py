"""The durable run store: the interface, its types and errors, and URL handling.

A run store keeps one `RunRecord` per run and the latest `Checkpoint` of each run, where every
replica of a deployment can reach them (SQLite for one machine, PostgreSQL for a cluster). A Ray
actor hosting a run calls `begin_attempt` (which returns a new *attempt number*, the run's fencing
token), saves a checkpoint after every step with that number, and `finish`es the run. When the
actor or its node dies, another replica calls `begin_attempt` again, resumes from
`load_checkpoint`, and carries on; the dead replica, should it still be alive after all (a
"zombie" cut off by a network partition), can no longer write: every write carrying an attempt
lower than the stored one raises `StaleAttempt`.

Everything is async (called from asyncio code inside actors); implementations run their blocking
database calls on their own worker threads, never on the event loop. Values (inputs, results,
checkpoint state) are JSON.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agent_platform._faults import PlatformFault
from agent_platform._redaction import dsn_secrets, redact_secrets
from agent_platform._state_files import default_state_dir

if TYPE_CHECKING:
    from agent_platform._runstore.events import NewEvent, StoredEvent

RUN_STORE_URL_ENV = "PLATFORM_RUN_STORE"
RUN_STORE_FILE = "runs.sqlite3"


def utcnow() -> datetime:
    return datetime.now(UTC)


class RunStatus(StrEnum):
    """Where a run is in its life. How a finished run ended (max_iterations, timeout, ...) is in
    its `result` (a `RunResult.to_json()`), not here."""

    PENDING = "pending"
    RUNNING = "running"
    # Paused on a tool call that needs a person's decision (`platform approve` / `deny`): no
    # replica holds it, nothing resumes it until every call it waits on is decided.
    WAITING_APPROVAL = "waiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED

    @property
    def settled(self) -> bool:
        """Nothing will change it without a person: finished, or waiting for approval."""
        return self in _FINISHED or self is RunStatus.WAITING_APPROVAL


_FINISHED = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
FINISHED_STATUSES: frozenset[RunStatus] = _FINISHED


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run. `attempt` is 0 until the first `begin_attempt`; `owner` names the actor/node
    running the current attempt; `result` is the finished run's `RunResult.to_json()`."""

    run_id: str
    unit: str  # "Kind/name"
    inputs: Any = None  # JSON
    status: RunStatus = RunStatus.PENDING
    parent_run_id: str | None = None
    attempt: int = 0
    owner: str | None = None
    result: Any = None  # JSON
    error: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    tenant: str | None = None  # whose data the run works on (RunState.tenant): kept for resumes
    # Where a run started outside a deployment (`platform run --local`) found its specs
    # (`{"paths": [...], "plugin_paths": [...], "cwd": ...}`), so `platform resume` and
    # `platform approve` can rebuild its runtime; None for deployed runs (their replicas hold it).
    origin: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status.finished


class Decision(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A tool call a run waits on. `run_id` is the run that made the call (the waiting run, or
    one of its hand-offs); `call_key` identifies the call by its tool and exact arguments
    (`ApprovalRequest.key`), so a decision applies to that call and no other; `request` is the
    `ApprovalRequest.to_json()` shown to the person deciding."""

    run_id: str
    call_key: str
    request: dict[str, Any]
    requested_at: datetime
    decision: Decision | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DecisionReport:
    """What `decide` did: the calls it decided, and whether the run may now resume (no call in
    its tree is left undecided: its waiting runs are pending again)."""

    root_run_id: str
    decided: list[PendingApproval]
    resumable: bool
    undecided: list[PendingApproval] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The latest saved state of a run: `seq` (the writer's step counter) and the attempt that
    saved it."""

    run_id: str
    seq: int
    attempt: int
    state: dict[str, Any]
    saved_at: datetime


# --- errors -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """What a replica needs to run a run: its record, the attempt it now holds (None when the run
    had already finished, or waits for approval: `record.result` is the answer so far) and the
    checkpoint to resume from."""

    record: RunRecord
    attempt: int | None
    checkpoint: Checkpoint | None


class RunStoreError(Exception):
    """Base of every run store error. Subclasses whose text quotes a URL or a driver's message
    pass it through `redact_secrets` first."""


class InvalidRunStoreUrl(RunStoreError, ValueError):
    def __init__(self, url: str, reason: str) -> None:
        self.url = redact_secrets(url)
        # The reason may quote a piece of the URL (its "scheme", when a key=value DSN was given).
        super().__init__(f"invalid run store URL {self.url!r}: {redact_secrets(reason, dsn_secrets(url))}")


class RunNotFound(RunStoreError, LookupError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r} is not in the run store")


class StaleAttempt(RunStoreError):
    """A write from an attempt that is no longer the run's current one: another replica has taken
    the run over (this one was presumed dead). The writer must stop working on the run."""

    def __init__(self, run_id: str, attempt: int, current: int, operation: str) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.current = current
        super().__init__(
            f"{operation} for run {run_id!r} rejected: attempt {attempt} is stale, the run is now on "
            f"attempt {current} (another replica took it over; stop working on this run)"
        )


class AttemptNotStarted(RunStoreError):
    """A write carrying an attempt number that `begin_attempt` never handed out."""

    def __init__(self, run_id: str, attempt: int, current: int, operation: str) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.current = current
        super().__init__(
            f"{operation} for run {run_id!r} rejected: attempt {attempt} was never begun "
            f"(the run is on attempt {current}; call begin_attempt first)"
        )


class RunAlreadyFinished(RunStoreError):
    """`begin_attempt`, `save_checkpoint` or a conflicting `finish` on a finished run."""

    def __init__(self, run_id: str, status: RunStatus, operation: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"{operation} for run {run_id!r} rejected: the run has already finished ({status})")


class RunWaitingApproval(RunStoreError):
    """`begin_attempt` on a run that waits for a person's decision: it resumes once `decide` has
    decided every call it waits on."""

    def __init__(self, run_id: str, operation: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"{operation} for run {run_id!r} rejected: the run is waiting for approval "
            f"(`platform approve {run_id}` or `platform deny {run_id}` resumes it)"
        )


class NoPendingApproval(RunStoreError, LookupError):
    """`decide` found no undecided call to decide (none at all, or none matching the key)."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r}: {reason}")


class CheckpointOutOfOrder(RunStoreError):
    """A checkpoint whose seq is lower than the stored one within the same attempt."""

    def __init__(self, run_id: str, attempt: int, seq: int, stored: int) -> None:
        self.run_id = run_id
        self.seq = seq
        self.stored = stored
        super().__init__(
            f"checkpoint for run {run_id!r} rejected: seq {seq} is behind the stored seq {stored} "
            f"of the same attempt {attempt} (seq must not go backwards within an attempt)"
        )


class RunStoreUnavailable(RunStoreError, PlatformFault):
    """The database cannot be reached or opened. `url` has its password removed, and `reason` (a
    driver's message, which may echo the connection string or its password) too. `transient`:
    False when waiting cannot help (a file that cannot be opened or is not a database)."""

    def __init__(self, url: str, reason: str, *, transient: bool = True) -> None:
        self.url = redact_secrets(url)
        self.reason = redact_secrets(reason, dsn_secrets(url))
        self.transient = transient
        super().__init__(f"run store {self.url} is unavailable: {self.reason}")


# --- JSON -------------------------------------------------------------------------------------


def dumps(value: Any, what: str) -> str:
    """Compact JSON text; a clear error for values without a JSON form."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")  # lone surrogates cannot be stored
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from exc
    return text


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class JsonText(str):
    """A checkpoint state already serialised as compact JSON text by its producer (which encodes
    a run's successive checkpoints incrementally, see `runtime.checkpoint.CheckpointEncoder`):
    stored as it is, not encoded again."""


def state_text(state: dict[str, Any] | JsonText) -> str:
    """The stored text of a checkpoint state."""
    if isinstance(state, JsonText):
        return state
    if not isinstance(state, dict):
        raise TypeError(f"checkpoint state must be a dict, not {type(state).__name__}")
    return dumps(state, "checkpoint state")


# --- URLs -------------------------------------------------------------------------------------

# The name this module's own URL redaction had; it is now the shared one (modules written
# against the old name keep working).
redact_url = redact_secrets


def default_run_store_url(state_dir: str | os.PathLike[str] | None = None) -> str:
    """`sqlite:///<abs state dir>/runs.sqlite3`; the state dir defaults to `$PLATFORM_STATE_DIR`,
    else `.platform`. Fine for one machine (several actors on one host share the file); a
    cluster needs a PostgreSQL URL."""
    base = Path(state_dir) if state_dir is not None else default_state_dir()
    return f"sqlite://{(base / RUN_STORE_FILE).resolve()}"


def run_store_url(explicit: str | None = None) -> str:
    """The URL to use: `explicit`, else `$PLATFORM_RUN_STORE`, else `default_run_store_url()`."""
    return explicit or os.environ.get(RUN_STORE_URL_ENV) or default_run_store_url()


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///abs/path.db` or `sqlite:relative.db` URL."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        if not rest.startswith("/"):
            raise InvalidRunStoreUrl(
                url, "use sqlite:///absolute/path.db or sqlite:relative/path.db (no host part)"
            )
    elif url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
    else:
        raise InvalidRunStoreUrl(url, "not a sqlite: URL")
    rest = rest.split("?", 1)[0]
    if not rest or rest.endswith("/") or rest == ":memory:":
        raise InvalidRunStoreUrl(url, "it names no database file (an in-memory database cannot be shared)")
    return Path(rest)


def url_scheme(url: str) -> str:
    scheme, sep, _ = url.partition(":")
    if not sep:
        raise InvalidRunStoreUrl(url, "expected sqlite:... or postgresql://...")
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "sqlite":
        return "sqlite"
    raise InvalidRunStoreUrl(url, f"unsupported scheme {scheme!r} (expected sqlite or postgresql)")


# --- the interface ----------------------------------------------------------------------------


class RunStore(ABC):
    """Durable run records and checkpoints (see the module docstring).

    Fencing: `save_checkpoint` and `finish` carry the attempt number `begin_attempt` returned; one
    lower than the stored attempt raises `StaleAttempt`, one never handed out raises
    `AttemptNotStarted`. Every write is one transaction."""

    url: str

    @abstractmethod
    async def ping(self) -> None:
        """Connect (and create the schema) now. Raises RunStoreUnavailable."""

    @abstractmethod
    async def create_run(self, record: RunRecord) -> RunRecord:
        """Store a new run and return it as stored (created_at/updated_at are the store's time).
        Idempotent: when `record.run_id` exists, the stored record is returned unchanged."""

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None when there is none."""

    @abstractmethod
    async def list_runs(
        self,
        *,
        status: RunStatus | str | None = None,
        unit: str | None = None,
        limit: int = 100,
        top_level: bool = False,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally only those with `status` and/or `unit`; with
        `top_level`, no hand-off sub-runs (runs with a parent), filtered before the limit."""

    @abstractmethod
    async def begin_attempt(self, run_id: str, owner: str) -> int:
        """Start a new attempt at a pending or running run: increments `attempt`, sets the status
        to running and the owner. Returns the new attempt number (the fencing token for this
        attempt's writes). Raises RunNotFound, RunAlreadyFinished."""

    @abstractmethod
    async def finish(
        self,
        run_id: str,
        attempt: int,
        status: RunStatus | str,
        result: Any = None,
        error: str | None = None,
    ) -> RunRecord:
        """Record the end of the run (`status` completed, failed or cancelled) and wake `wait`ers.
        A run waiting for approval may be finished too (cancelled, or failed) by its last attempt.
        Repeating the same finish of the same attempt is a no-op (safe to retry); finishing a
        finished run otherwise raises RunAlreadyFinished. Raises StaleAttempt for an old
        attempt. A pending run (attempt 0) may be finished with attempt 0, e.g. cancelled.

        A completed run's checkpoint is deleted in the same transaction: its result is what
        remains of it. A failed or cancelled run keeps its last checkpoint (the state it ended
        in, for a post-mortem) until `prune_runs` removes the run."""

    @abstractmethod
    async def save_checkpoint(
        self, run_id: str, attempt: int, seq: int, state: dict[str, Any] | JsonText
    ) -> Checkpoint:
        """Replace the run's checkpoint, atomically. Raises StaleAttempt (old attempt),
        AttemptNotStarted, RunAlreadyFinished, CheckpointOutOfOrder (seq lower than the stored
        seq of the same attempt; an equal seq overwrites, so a retried write is harmless)."""

    async def start(self, record: RunRecord, owner: str) -> Started:
        """Create the run if new, take a new attempt unless it has finished, and load its last
        checkpoint. Stores may do this in one transaction."""
        stored = await self.create_run(record)
        if stored.finished:
            return Started(stored, None, None)
        attempt = await self.begin_attempt(record.run_id, owner)
        return Started(stored, attempt, await self.load_checkpoint(record.run_id))

    async def save_checkpoints(
        self, items: Sequence[tuple[str, int, int, dict[str, Any] | JsonText]]
    ) -> list[RunStoreError | None]:
        """Many runs' checkpoints (run_id, attempt, seq, state) at once, each fenced on its own;
        per item, None when it was saved or the error that refused it (the same rules as
        `save_checkpoint`). Stores may commit them together. A failure of the store itself
        (RunStoreUnavailable) is raised: then none of them may have been saved."""
        results: list[RunStoreError | None] = []
        for run_id, attempt, seq, state in items:
            try:
                await self.save_checkpoint(run_id, attempt, seq, state)
            except RunStoreUnavailable:
                raise
            except RunStoreError as exc:
                results.append(exc)
            else:
                results.append(None)
        return results

    @abstractmethod
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
        """Pause the run on the calls in `asked` ((asking run id, call key, request) each; a call
        already recorded keeps its state), in one transaction: the run becomes waiting_approval
        with no owner, `result` (the RunResult so far, outcome needs_approval) and `error` say
        why, and `checkpoint` (seq, state), when given, replaces its checkpoint: the state to
        resume from, the undecided call included. Fenced like `finish` (StaleAttempt,
        AttemptNotStarted); RunAlreadyFinished on a finished run."""

    @abstractmethod
    async def decide(
        self, run_id: str, decision: Decision | str, *, by: str, call_key: str | None = None
    ) -> DecisionReport:
        """Decide the undecided calls of the tree `run_id` belongs to (its top-level run and every
        hand-off under it): all of them, or with `call_key` (or a unique prefix of one) that call
        wherever it waits. When none is left undecided, every waiting run of the tree becomes
        pending in the same transaction (whoever resumes the top-level run resumes them). Raises
        RunNotFound, RunAlreadyFinished (the top-level run ended), NoPendingApproval."""

    @abstractmethod
    async def approvals(self, run_id: str) -> list[PendingApproval]:
        """Every call recorded for the tree `run_id` belongs to, decided or not, oldest first.
        Raises RunNotFound."""

    async def decisions(self, run_id: str) -> dict[str, bool]:
        """The decided calls of the tree `run_id` belongs to: call key -> approved. What a resumed
        run (or a hand-off of it) consults before asking again."""
        return {
            a.call_key: a.decision is Decision.APPROVED for a in await self.approvals(run_id) if a.decision
        }

    @abstractmethod
    async def append_events(self, events: Sequence[NewEvent]) -> list[int]:
        """Append run events (any runs, any trees) in one transaction; returns each event's
        sequence number in its tree, in order (see `_runstore/events.py`). Raises ValueError for
        a body with no JSON form (nothing is written), RunStoreUnavailable."""

    @abstractmethod
    async def read_events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """The events of `run_id`'s tree below it (itself, its hand-offs and sub-runs) numbered
        after `after`, oldest first, at most `limit`. A run with no events (or none) gives []."""

    @abstractmethod
    async def load_checkpoint(self, run_id: str) -> Checkpoint | None:
        """The latest checkpoint, or None when none was saved. Raises RunNotFound."""

    @abstractmethod
    async def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Return the run once it has finished or waits for approval (`RunStatus.settled`).
        Raises TimeoutError after `timeout` seconds (None: wait forever) and RunNotFound when the
        run does not exist (or is deleted)."""

    @abstractmethod
    async def delete_run(self, run_id: str) -> bool:
        """Delete the run and its checkpoint. False when there was no such run."""

    async def prune_runs(
        self,
        finished_before: datetime,
        statuses: Collection[RunStatus | str] = FINISHED_STATUSES,
        *,
        dry_run: bool = False,
    ) -> int:
        """Delete the finished runs (in `statuses`: completed, failed and/or cancelled) last
        updated before `finished_before`, with their checkpoints; return how many (with
        `dry_run`, how many would be, deleting nothing). Pending and running runs are never
        touched. Deletes in batches of `PRUNE_BATCH` runs, one transaction each, so the
        replicas' own writes are not held up behind one long delete."""
        chosen = sorted({check_prunable(s) for s in statuses})
        if not chosen:
            raise ValueError("prune_runs needs at least one status")
        if dry_run:
            return await self._count_prunable(finished_before, chosen)
        total = 0
        while True:
            deleted = await self._prune_batch(finished_before, chosen, PRUNE_BATCH)
            total += deleted
            if deleted < PRUNE_BATCH:
                return total

    @abstractmethod
    async def _count_prunable(self, finished_before: datetime, statuses: list[str]) -> int:
        """How many runs `prune_runs` would delete (`statuses` already checked)."""

    @abstractmethod
    async def _prune_batch(self, finished_before: datetime, statuses: list[str], batch: int) -> int:
        """Delete up to `batch` of them, with their checkpoints, in one transaction."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads. The store cannot be used afterwards."""

    async def __aenter__(self) -> RunStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


# --- shared checks (both backends apply the same rules) ---------------------------------------


def check_finish_status(status: RunStatus | str) -> RunStatus:
    try:
        value = RunStatus(status)
    except ValueError:
        raise ValueError(f"unknown run status {status!r}") from None
    if not value.finished:
        raise ValueError(f"finish needs a final status (completed, failed or cancelled), not {value}")
    return value


def check_writer(run_id: str, attempt: int, current: int, operation: str) -> None:
    if attempt < current:
        raise StaleAttempt(run_id, attempt, current, operation)
    if attempt > current:
        raise AttemptNotStarted(run_id, attempt, current, operation)


def check_checkpoint_write(
    run_id: str, attempt: int, seq: int, status: str, current: int, stored: Sequence[int] | None
) -> None:
    """May `attempt` save checkpoint `seq` of a run in `status` whose current attempt is `current`,
    given the (attempt, seq) of the checkpoint stored now (None when there is none)?"""
    check_writer(run_id, attempt, current, "save_checkpoint")
    if RunStatus(status).finished:
        raise RunAlreadyFinished(run_id, RunStatus(status), "save_checkpoint")
    if status == RunStatus.WAITING_APPROVAL:
        raise RunWaitingApproval(run_id, "save_checkpoint")
    if current == 0:
        raise AttemptNotStarted(run_id, attempt, current, "save_checkpoint")
    if stored is not None and stored[0] == attempt and seq < stored[1]:
        raise CheckpointOutOfOrder(run_id, attempt, seq, stored[1])


def checkpoint_query(mark: str) -> str:
    """`load_checkpoint`'s SELECT for a dialect (placeholder `mark`): the run joined with its
    checkpoint, so a missing run and a run without a checkpoint tell apart."""
    return (
        "SELECT r.run_id, c.attempt, c.seq, c.state, c.saved_at FROM runstore_runs r "
        f"LEFT JOIN runstore_checkpoints c ON c.run_id = r.run_id WHERE r.run_id = {mark}"
    )


def checkpoint_of(
    run_id: str, row: Sequence[Any] | None, saved_at: Callable[[Any], datetime]
) -> Checkpoint | None:
    """The Checkpoint in a `checkpoint_query` row (`saved_at` converts the store's time). Raises
    RunNotFound when there is no row; None when the run has no checkpoint."""
    if row is None:
        raise RunNotFound(run_id)
    if row[1] is None:
        return None
    return Checkpoint(
        run_id=run_id, attempt=row[1], seq=row[2], state=loads(row[3]), saved_at=saved_at(row[4])
    )


PRUNE_BATCH = 500


def prune_filter(statuses: list[str], finished_before: Any, *, mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of the runs `prune_runs` deletes, for a dialect
    whose placeholder is `mark` (`finished_before` already in the store's time format). A run
    finished before the cutoff was created before it too, so `created_at` narrows the search on
    the (status, created_at) index before `updated_at` decides."""
    marks = ", ".join([mark] * len(statuses))
    where = f"status IN ({marks}) AND created_at < {mark} AND updated_at < {mark}"
    return where, [*statuses, finished_before, finished_before]


def check_prunable(status: RunStatus | str) -> str:
    value = RunStatus(status)
    if not value.finished:
        raise ValueError(f"only finished runs can be pruned (completed, failed, cancelled), not {value}")
    return value.value


def check_limit(limit: int) -> int:
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return limit


def list_runs_query(
    columns: str,
    status: RunStatus | str | None,
    unit: str | None,
    limit: int,
    *,
    mark: str,
    newest: str,
    top_level: bool = False,
) -> tuple[str, list[Any]]:
    """The `list_runs` SELECT for a dialect: `mark` is its parameter placeholder, `newest` the
    column that orders runs created in the same instant."""
    check_limit(limit)
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append(f"status = {mark}")
        params.append(RunStatus(status).value)
    if unit is not None:
        where.append(f"unit = {mark}")
        params.append(unit)
    if top_level:
        where.append("parent_run_id IS NULL")
    query = f"SELECT {columns} FROM runstore_runs"
    if where:
        query += " WHERE " + " AND ".join(where)
    query += f" ORDER BY created_at DESC, {newest} DESC LIMIT {mark}"
    return query, [*params, limit]
