"""Runs that wait for a person: the run store half of `waiting_approval`, on SQLite and a real
PostgreSQL server. A paused run keeps its checkpoint and what it waits on; no replica can take
it until every call is decided; deciding the last call makes its whole tree resumable, once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from agent_platform._runstore import (
    Decision,
    NoPendingApproval,
    RunAlreadyFinished,
    RunNotFound,
    RunRecord,
    RunStatus,
    RunStore,
    RunWaitingApproval,
    StaleAttempt,
)
from agent_platform._runstore.base import utcnow

SEND = {"tool": "send-email", "arguments": {"to": "a@example.com"}}
WIPE = {"tool": "wipe", "arguments": {}}
NEEDS = {"outcome": "needs_approval", "run_id": "run-1", "unit": "Agent/a"}


async def paused(store: RunStore, *asked: tuple[str, str, dict[str, Any]], run_id: str = "run-1") -> int:
    await store.create_run(RunRecord(run_id, "Agent/a", {"q": "hi"}, origin={"paths": ["/s"]}))
    attempt = await store.begin_attempt(run_id, "replica-a")
    await store.await_approval(
        run_id,
        attempt,
        asked or ((run_id, "k-send", SEND),),
        result=NEEDS,
        error="send-email needs approval",
        checkpoint=(3, {"messages": ["pending"]}),
    )
    return attempt


async def test_a_paused_run_keeps_its_checkpoint_and_no_replica_can_take_it(store: RunStore) -> None:
    await paused(store)
    record = await store.get_run("run-1")
    assert record is not None
    assert record.status is RunStatus.WAITING_APPROVAL and not record.finished and record.status.settled
    assert record.owner is None and record.result == NEEDS and record.origin == {"paths": ["/s"]}
    checkpoint = await store.load_checkpoint("run-1")
    assert checkpoint is not None and checkpoint.seq == 3 and checkpoint.state == {"messages": ["pending"]}
    with pytest.raises(RunWaitingApproval, match="platform approve run-1"):
        await store.begin_attempt("run-1", "replica-b")
    started = await store.start(RunRecord("run-1", "Agent/a", {"q": "hi"}), "replica-b")
    assert started.attempt is None and started.record.result == NEEDS  # the answer so far
    assert (await store.wait("run-1", timeout=5)).status is RunStatus.WAITING_APPROVAL
    [pending] = await store.approvals("run-1")
    assert (pending.run_id, pending.call_key, pending.request, pending.decision) == (
        "run-1",
        "k-send",
        SEND,
        None,
    )


async def test_deciding_the_last_call_makes_the_run_resumable(store: RunStore) -> None:
    await paused(store, ("run-1", "k-send", SEND), ("run-1", "k-wipe", WIPE))
    first = await store.decide("run-1", Decision.APPROVED, by="ana", call_key="k-se")  # a unique prefix
    assert [a.call_key for a in first.decided] == ["k-send"] and not first.resumable
    assert [a.call_key for a in first.undecided] == ["k-wipe"]
    assert (await store.get_run("run-1")).status is RunStatus.WAITING_APPROVAL  # type: ignore[union-attr]
    last = await store.decide("run-1", "denied", by="bo")
    assert [a.call_key for a in last.decided] == ["k-wipe"] and last.resumable
    record = await store.get_run("run-1")
    assert record is not None and record.status is RunStatus.PENDING
    assert await store.decisions("run-1") == {"k-send": True, "k-wipe": False}
    by = {a.call_key: (a.decision, a.decided_by) for a in await store.approvals("run-1")}
    assert by == {"k-send": (Decision.APPROVED, "ana"), "k-wipe": (Decision.DENIED, "bo")}
    attempt = await store.begin_attempt("run-1", "replica-b")  # resumable now: from its checkpoint
    assert attempt == 2 and (await store.load_checkpoint("run-1")).seq == 3  # type: ignore[union-attr]
    with pytest.raises(NoPendingApproval, match="no tool call is waiting"):
        await store.decide("run-1", Decision.APPROVED, by="ana")


async def test_a_call_key_that_names_nothing_or_several_calls_is_refused(store: RunStore) -> None:
    await paused(store, ("run-1", "k-send", SEND), ("run-1", "k-wipe", WIPE))
    with pytest.raises(NoPendingApproval, match=r"no call 'zzz' is waiting \(waiting: k-send \(send-email\)"):
        await store.decide("run-1", Decision.APPROVED, by="ana", call_key="zzz")
    with pytest.raises(NoPendingApproval, match="more than one"):
        await store.decide("run-1", Decision.APPROVED, by="ana", call_key="k-")
    assert all(a.decision is None for a in await store.approvals("run-1"))  # nothing decided


async def test_a_tree_is_decided_from_any_of_its_runs_and_resumes_together(store: RunStore) -> None:
    """A hand-off that waits pauses its caller too; a person approves the top-level run (or the
    hand-off: the same tree), and every waiting run of the tree becomes pending at once."""
    await store.create_run(RunRecord("root", "Agent/boss", {}))
    root_attempt = await store.begin_attempt("root", "r0")
    await store.create_run(RunRecord("root/mail-1", "Agent/mailer", {}, parent_run_id="root"))
    child_attempt = await store.begin_attempt("root/mail-1", "r1")
    asked = [("root/mail-1", "k-send", SEND)]
    await store.await_approval("root/mail-1", child_attempt, asked, result=NEEDS, error="waits")
    await store.await_approval("root", root_attempt, asked, result=NEEDS, error="waits")  # the same call
    assert len(await store.approvals("root")) == 1 and len(await store.approvals("root/mail-1")) == 1
    report = await store.decide("root/mail-1", Decision.APPROVED, by="ana")
    assert report.root_run_id == "root" and report.resumable
    for run_id in ("root", "root/mail-1"):
        assert (await store.get_run(run_id)).status is RunStatus.PENDING  # type: ignore[union-attr]
    assert await store.decisions("root/mail-1") == {"k-send": True}


async def test_pausing_is_fenced_like_finishing(store: RunStore) -> None:
    await store.create_run(RunRecord("run-1", "Agent/a", {}))
    old = await store.begin_attempt("run-1", "zombie")
    await store.begin_attempt("run-1", "successor")
    with pytest.raises(StaleAttempt):
        await store.await_approval("run-1", old, [("run-1", "k", SEND)], result=NEEDS, error=None)
    assert await store.approvals("run-1") == []  # a refused pause recorded nothing
    with pytest.raises(RunNotFound):
        await store.await_approval("run-missing", 1, [], result=None, error=None)
    with pytest.raises(RunNotFound):
        await store.decide("run-missing", Decision.APPROVED, by="ana")


async def test_a_waiting_run_can_be_cancelled_and_then_not_decided(store: RunStore) -> None:
    attempt = await paused(store)
    cancelled = await store.finish("run-1", attempt, RunStatus.CANCELLED, error="cancelled by a person")
    assert cancelled.status is RunStatus.CANCELLED
    with pytest.raises(RunAlreadyFinished):
        await store.decide("run-1", Decision.APPROVED, by="ana")


async def test_waiters_wake_when_a_run_starts_to_wait(store: RunStore) -> None:
    await store.create_run(RunRecord("run-1", "Agent/a", {}))
    attempt = await store.begin_attempt("run-1", "r")
    waiter = asyncio.ensure_future(store.wait("run-1", timeout=30))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await store.await_approval("run-1", attempt, [("run-1", "k", SEND)], result=NEEDS, error="waits")
    record = await asyncio.wait_for(waiter, timeout=10)
    assert record.status is RunStatus.WAITING_APPROVAL


async def test_approvals_go_with_their_run(store: RunStore) -> None:
    attempt = await paused(store)
    await store.decide("run-1", Decision.DENIED, by="ana")
    attempt = await store.begin_attempt("run-1", "r")
    await store.finish("run-1", attempt, RunStatus.COMPLETED, result={"ok": True})
    assert await store.prune_runs(utcnow() + timedelta(seconds=1)) == 1
    await paused(store, run_id="run-2")
    assert await store.delete_run("run-2")
    await store.create_run(RunRecord("run-2", "Agent/a", {}))  # the same ids again: nothing left over
    await store.create_run(RunRecord("run-1", "Agent/a", {}))
    assert await store.approvals("run-1") == [] and await store.approvals("run-2") == []
