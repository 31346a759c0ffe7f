"""Durable runs: a run recorded in a run store, checkpointed after its steps, and resumable by
whoever opens the store next.

`DurableRunner` drives one run of a `Runtime` against a `RunStore`: `start` (a new attempt, the
run's fencing token, and the checkpoint to resume from), the run itself, and its end: `finish`,
or `await_approval` when a call waits for a person (the run pauses in `waiting_approval` with
the checkpoint that holds the undecided call, and resumes from it once every call it waits on
is decided; the decisions are loaded into the resumed run). A Ray replica hosts one per actor;
`platform run --local` uses one on the local SQLite store, so a local run survives the process
that started it (`platform resume`, `platform approve`).

A run that already finished returns its stored result (a retried hand-off never runs twice),
and a run that waits returns the answer so far.

Checkpoints are written behind the run by a `CheckpointWriter` (see there)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_platform._compile.plan import SpecRef
from agent_platform._faults import through_outage
from agent_platform._runstore.base import JsonText, RunRecord, RunStatus, RunStore, StaleAttempt
from agent_platform._runtime.approval import ApprovalRequest
from agent_platform._runtime.checkpoint import AgentCheckpoint, CheckpointEncoder
from agent_platform._runtime.engine import Runtime
from agent_platform._runtime.event_log import RunEventLog
from agent_platform._runtime.events import ApprovalRequested, CheckpointWritten, run_end_event
from agent_platform._runtime.inputs import InputError
from agent_platform._runtime.outcomes import Outcome, RunResult
from agent_platform._runtime.provenance import TaintState
from agent_platform._runtime.services import RunState
from agent_platform._runtime.supervisor import TaskError
from agent_platform._spec.policy import ContextPolicy

log = logging.getLogger(__name__)

# The error of a run whose replica lost it to a newer attempt (the caller waits for the real one).
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class RunRequest:
    """A run to start or resume: what a caller hands a `DurableRunner` (or a replica)."""

    run_id: str
    unit: str  # "Kind/name"
    inputs: Mapping[str, Any]
    parent_run_id: str | None = None
    trace_carrier: Mapping[str, str] = field(default_factory=dict)
    tenant: str | None = None  # the namespace of the run's long-term memory (RunState.tenant)
    # The caller's taint and untrusted-context policy (`ContextPolicy.to_json()`): a hand-off
    # to another actor never widens what the run may do, exactly as in-process.
    taint: tuple[str, ...] = ()
    policy: Mapping[str, Any] | None = None
    # Where a run started outside a deployment found its specs (`RunRecord.origin`).
    origin: Mapping[str, Any] | None = None


@dataclass
class Durable:
    """A run's place in the run store: its fencing attempt, the next checkpoint number, and the
    encoder of its checkpoints."""

    writer: CheckpointWriter
    attempt: int
    seq: int = 0
    encoder: CheckpointEncoder = field(default_factory=CheckpointEncoder)


class Superseded(Exception):
    """This replica's attempt was fenced out: another replica resumed the run."""


StateText = Callable[[], dict[str, Any] | JsonText]

CHECKPOINT_BATCH = 128  # runs per transaction: a run record's write never waits behind thousands
CHECKPOINT_PACE = 4.0  # after a batch that took t, wait PACE * t: the writer takes <= 1/5 of the time
MAX_REST_S = 0.5  # ...but never longer: how far a run's stored state may lag behind its last step
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0


class CheckpointWriter:
    """Write-behind, group-committed checkpoints for all the runs of one replica.

    A step hands over its snapshot and goes on; the writer keeps only the latest snapshot per
    run and commits what is pending (up to `CHECKPOINT_BATCH` runs, those waiting longest first)
    in one transaction, then rests `pace` times as long as that took before the next batch. With
    few runs a batch takes a millisecond and every step is checkpointed; under load the
    checkpoints of a run thin out instead of queueing, and encoding and writing them take at
    most a fifth of the replica's time, not as much as the runs leave over (a replica hosting
    1,000 runs does not do 10,000 writes a second). This is safe because a checkpoint is an
    optimisation of resume: a replica that dies before its last snapshot is committed resumes
    from an earlier step, and those steps' side effects replay from the idempotency store.

    A write refused because a newer attempt owns the run marks it superseded; the run stops at
    its next step. When the store itself fails, the batch is logged and tried again (with
    backoff) unless a newer snapshot of the run replaced it or the run finished meanwhile."""

    def __init__(
        self,
        store: Any,
        *,
        pace: float = CHECKPOINT_PACE,
        batch: int = CHECKPOINT_BATCH,
        on_written: Callable[[str, int], None] | None = None,
    ) -> None:
        self.store = store
        self.pace = pace
        self.batch = batch
        self.on_written = on_written  # (run id, seq) of each checkpoint committed
        self._pending: dict[str, tuple[int, int, StateText]] = {}
        self._active: set[str] = set()
        self._superseded: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.written = 0
        self.failures = 0

    def submit(self, run_id: str, attempt: int, seq: int, state: StateText) -> None:
        if run_id in self._superseded:
            raise Superseded(f"run {run_id} was resumed elsewhere (attempt {attempt} is stale)")
        self._pending[run_id] = (attempt, seq, state)
        self._active.add(run_id)
        if self._task is None or self._task.done():
            # (Re)started on the running loop; its event belongs to that loop.
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        self._wake.set()

    def discard(self, run_id: str) -> None:
        """The run is finishing: its last snapshot is moot."""
        self._pending.pop(run_id, None)
        self._active.discard(run_id)
        self._superseded.discard(run_id)

    def rest_after(self, batch_s: float) -> float:
        """The pause after a batch that took `batch_s`: `pace` times as long, at most MAX_REST_S."""
        return min(batch_s * self.pace, MAX_REST_S)

    def _take(self) -> dict[str, tuple[int, int, StateText]]:
        if len(self._pending) <= self.batch:
            batch, self._pending = self._pending, {}
            return batch
        batch = {}
        for run_id in list(itertools.islice(self._pending, self.batch)):
            batch[run_id] = self._pending.pop(run_id)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay = RETRY_FIRST_S
        while True:
            await self._wake.wait()
            self._wake.clear()
            started = loop.time()
            batch = self._take()
            if not batch:
                continue
            if self._pending:
                self._wake.set()
            try:
                await self._write(batch)
            except Exception as exc:
                self.failures += 1
                log.warning("checkpoints of %d run(s) not saved (trying again): %s", len(batch), exc)
                for run_id, pending in batch.items():
                    if run_id in self._active and run_id not in self._pending:
                        self._pending[run_id] = pending
                self._wake.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            await asyncio.sleep(self.rest_after(loop.time() - started))

    async def _write(self, batch: dict[str, tuple[int, int, StateText]]) -> None:
        items: list[tuple[str, int, int, dict[str, Any] | JsonText]] = []
        for run_id, (attempt, seq, state) in batch.items():
            try:
                items.append((run_id, attempt, seq, state()))
            except (TypeError, ValueError) as exc:  # a state with no JSON form: a bug, not the store's
                log.error("checkpoint of %s not saved: %s", run_id, exc)
        if not items:
            return
        results = await self.store.save_checkpoints(items)
        self.batches += 1
        for (run_id, _, seq, _), outcome in zip(items, results, strict=True):
            if isinstance(outcome, StaleAttempt):
                self._superseded.add(run_id)
            elif outcome is not None:
                log.warning("checkpoint of %s not saved: %s", run_id, outcome)
            else:
                self.written += 1
                # A run that finished while its batch was in flight has announced its end: the
                # checkpoint is stored, but announcing it now would follow the run's end event.
                if self.on_written is not None and run_id in self._active:
                    self.on_written(run_id, seq)


def encoded(encoder: CheckpointEncoder, checkpoint: AgentCheckpoint) -> JsonText:
    return JsonText(encoder.encode(checkpoint))


class DurableRunner:
    """Runs of one runtime, recorded in `store` as `owner` (see the module docstring).
    `cancel_requested(run_id)` tells a cancellation by a person (the run ends `cancelled`)
    from one of the process going away (the run is left for another owner to resume)."""

    def __init__(
        self,
        runtime: Runtime,
        store: RunStore,
        owner: str,
        *,
        cancel_requested: Callable[[str], bool] = lambda run_id: False,
        cancelled_error: str = "cancelled",
        events: bool = True,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.owner = owner
        # The runs' events, for whoever follows them (`platform run --follow`, the SSE route).
        self.events: RunEventLog | None = RunEventLog(store) if events else None
        self.checkpoints = CheckpointWriter(
            store, on_written=self._checkpoint_written if self.events is not None else None
        )
        self.cancel_requested = cancel_requested
        self.cancelled_error = cancelled_error

    def _checkpoint_written(self, run_id: str, seq: int) -> None:
        if self.events is not None:
            self.events.emit(run_id, CheckpointWritten(seq=seq))

    async def aclose(self) -> None:
        """Store the events still buffered (boundedly) and stop writing them."""
        if self.events is not None:
            await self.events.aclose()

    def _patience(self, unit: Any) -> Callable[[], float]:
        """The deadline of one of the run's writes through an outage: as long as the run itself
        may last (its timeout), and at least MIN_PATIENCE_S, from when the write begins."""
        limits = getattr(unit, "limits", None)
        span = max(float(getattr(limits, "timeout", 0.0) or 0.0), MIN_PATIENCE_S)
        return lambda: asyncio.get_running_loop().time() + span

    async def run(self, request: RunRequest) -> RunResult:
        unit = self.runtime.plan.units.get(_ref(request.unit))
        if unit is None:
            return RunResult(
                request.run_id,
                request.unit,
                Outcome.FAILED,
                error=f"{request.unit} is not in this deployment",
            )
        store = self.store
        record = RunRecord(
            run_id=request.run_id,
            unit=request.unit,
            inputs=dict(request.inputs),
            parent_run_id=request.parent_run_id,
            tenant=request.tenant,
            origin=dict(request.origin) if request.origin is not None else None,
        )
        patience = self._patience(unit)
        started = await through_outage(
            lambda: store.start(record, self.owner), f"run {request.run_id}: starting", deadline=patience()
        )
        if started.attempt is None:  # finished (a retried hand-off), or waiting: its stored answer
            return stored_result(started.record)
        attempt = started.attempt
        # The tenant the run was started for is authoritative (a recovered request may lack it).
        tenant = started.record.tenant if started.record.tenant is not None else request.tenant
        state = RunState(
            request.run_id,
            request.unit,
            tenant=tenant,
            taint=TaintState(request.taint),
            policy=ContextPolicy.from_json(request.policy),
            events=self.events,
        )
        durable = state.resources[Durable] = Durable(self.checkpoints, attempt)
        saved = started.checkpoint
        if saved is not None:  # part of this run ran before: continue from its last step
            checkpoint = AgentCheckpoint.from_json(saved.state)
            durable.seq = saved.seq
            state.resume_from = checkpoint
            self.runtime.restore_models(state, checkpoint)
        if attempt > 1:  # a resumed run asks no one again about a call a person has decided
            state.approvals = await through_outage(
                lambda: store.decisions(request.run_id),
                f"run {request.run_id}: reading its approvals",
                deadline=patience(),
            )
        try:
            inputs = self.runtime.prepare_inputs(unit, request.inputs)
        except (InputError, TaskError) as exc:
            result = RunResult(request.run_id, request.unit, Outcome.FAILED, error=str(exc))
        else:
            try:
                result = await self.runtime.run_state(unit, inputs, state)
            except asyncio.CancelledError:
                if not self.cancel_requested(request.run_id):
                    raise  # the process is going away: the run resumes elsewhere
                result = RunResult(
                    request.run_id, request.unit, Outcome.CANCELLED, error=self.cancelled_error
                )
                if self.events is not None:
                    self.events.emit(request.run_id, run_end_event(request.unit, "cancelled", result))
        if self.cancel_requested(request.run_id):  # the runtime turned the cancellation into a result
            result.outcome, result.error = Outcome.CANCELLED, result.error or self.cancelled_error
        placements = state.resources.get("placements")
        if placements:
            result.details["placements"] = placements
        self.checkpoints.discard(request.run_id)
        asked = _approvals_asked(result)
        waiting: AgentCheckpoint | None = state.resources.get(WAITING_CHECKPOINT)
        outcome = result.to_json()
        if self.events is not None:
            # The top-level run reports every call its tree waits on (a hand-off's replica pauses
            # its own run with the same calls: reported once), in the stream of the run that asked.
            for request_asked in asked if request.parent_run_id is None else ():
                self.events.emit(
                    request_asked.run_id,
                    ApprovalRequested(
                        call_key=request_asked.key,
                        tool=request_asked.tool,
                        asking_run_id=request_asked.run_id,
                        reasons=list(request_asked.reasons),
                    ),
                )
            # Stored before the run's end is: whoever sees the run settled has all its events.
            await self.events.flush()

        async def settle() -> Any:
            if asked:
                return await store.await_approval(
                    request.run_id,
                    attempt,
                    [(a.run_id, a.key, a.to_json()) for a in asked],
                    result=outcome,
                    error=result.error,
                    checkpoint=None
                    if waiting is None
                    else (durable.seq + 1, encoded(durable.encoder, waiting)),
                )
            return await store.finish(
                request.run_id, attempt, _status_of(result), result=outcome, error=result.error
            )

        try:
            # How the run ended is written through an outage of the store (the same write again
            # is a no-op); should the store stay down past the patience, the fault is raised and
            # the run, still `running` in the store, is resumed later (recovery, `platform resume`).
            await through_outage(settle, f"run {request.run_id}: recording its end", deadline=patience())
        except StaleAttempt as exc:  # a zombie: the run belongs to a newer attempt now
            return RunResult(request.run_id, request.unit, Outcome.CANCELLED, error=f"{SUPERSEDED}: {exc}")
        return result


# `RunState.resources` key: the checkpoint of an agent run paused on a call that needs approval
# (its conversation ends with the decision that made the call), set by the runtime.
WAITING_CHECKPOINT = "waiting_checkpoint"


# How long a run's own writes (start, end) keep trying through an outage of the store, at least.
MIN_PATIENCE_S = 60.0


async def fail_run(store: RunStore, request: RunRequest, error: str, *, owner: str) -> RunRecord | None:
    """Record that a run could not be carried out (no replica could take it, it could not be
    dispatched): it ends `failed` with `error`, so nobody waits for it forever. A run that has
    settled meanwhile (finished, or waiting for approval) is left as it is (None is returned)."""
    from agent_platform._runstore.base import RunAlreadyFinished, RunWaitingApproval

    await store.create_run(
        RunRecord(
            run_id=request.run_id,
            unit=request.unit,
            inputs=dict(request.inputs),
            parent_run_id=request.parent_run_id,
            tenant=request.tenant,
        )
    )
    try:
        attempt = await store.begin_attempt(request.run_id, owner)
        return await store.finish(request.run_id, attempt, RunStatus.FAILED, error=error)
    except (RunAlreadyFinished, RunWaitingApproval, StaleAttempt):
        return None


def stored_result(record: RunRecord) -> RunResult:
    """The answer a settled run's record holds."""
    if record.result is not None:
        return RunResult.from_json(record.result)
    return RunResult(record.run_id, record.unit, Outcome.FAILED, error=record.error or "the run ended")


def _approvals_asked(result: RunResult) -> list[ApprovalRequest]:
    if result.outcome is not Outcome.NEEDS_APPROVAL:
        return []
    raw = result.details.get("approvals") or [result.details.get("approval")]
    return [ApprovalRequest.from_json(item) for item in raw if isinstance(item, Mapping)]


def _status_of(result: RunResult) -> RunStatus:
    if result.ok:
        return RunStatus.COMPLETED
    return RunStatus.CANCELLED if result.outcome is Outcome.CANCELLED else RunStatus.FAILED


def _ref(unit: str) -> SpecRef:
    kind, _, name = unit.partition("/")
    return SpecRef(kind, name)
