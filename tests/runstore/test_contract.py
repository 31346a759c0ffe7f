"""The run store contract: every test runs against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from tests.runstore import workers

from agent_platform._runstore import (
    AttemptNotStarted,
    CheckpointOutOfOrder,
    RunAlreadyFinished,
    RunNotFound,
    RunRecord,
    RunStatus,
    RunStore,
    RunStoreUnavailable,
    StaleAttempt,
    open_run_store,
)
from agent_platform._runstore import base as runstore_base
from agent_platform._runstore.base import utcnow


def spawn_pool(processes: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))


async def new_run(store: RunStore, run_id: str = "run-1", unit: str = "Agent/a", **fields: Any) -> RunRecord:
    return await store.create_run(RunRecord(run_id, unit, fields.pop("inputs", {"q": "hi"}), **fields))


# --- create / get ----------------------------------------------------------------------------


async def test_create_is_idempotent_and_returns_the_stored_run(store: RunStore) -> None:
    created = await new_run(store, inputs={"q": "ünïcode", "n": [1, 2.5, None, True]}, parent_run_id="run-0")
    assert created.status is RunStatus.PENDING and created.attempt == 0 and created.owner is None
    assert created.inputs == {"q": "ünïcode", "n": [1, 2.5, None, True]} and created.parent_run_id == "run-0"
    assert created.created_at.tzinfo is not None and created.created_at == created.updated_at
    again = await store.create_run(RunRecord("run-1", "Agent/other", {"different": True}))
    assert again == created
    assert await store.get_run("run-1") == created
    assert await store.get_run("run-missing") is None


async def test_the_tenant_a_run_was_started_for_is_kept(store: RunStore) -> None:
    """A recovered run resumes for its tenant (its long-term memory namespace), not the default."""
    await new_run(store, "run-t", tenant="acme")
    await new_run(store, "run-none")
    assert (await store.get_run("run-t")).tenant == "acme"  # type: ignore[union-attr]
    assert (await store.get_run("run-none")).tenant is None  # type: ignore[union-attr]
    started = await store.start(RunRecord(run_id="run-s", unit="Agent/a", tenant="initech"), "actor-1")
    assert started.record.tenant == "initech"
    assert {r.run_id: r.tenant for r in await store.list_runs()}["run-t"] == "acme"


async def test_values_must_be_json(store: RunStore) -> None:
    with pytest.raises(ValueError, match="run inputs is not JSON"):
        await store.create_run(RunRecord("r", "Agent/a", {"x": object()}))
    with pytest.raises(ValueError, match="not JSON"):
        await store.create_run(RunRecord("r", "Agent/a", {"x": float("nan")}))
    assert await store.get_run("r") is None


# --- attempts and fencing --------------------------------------------------------------------


async def test_begin_attempt_hands_out_increasing_fencing_tokens(store: RunStore) -> None:
    await new_run(store)
    assert await store.begin_attempt("run-1", "node-a/actor-1") == 1
    record = await store.get_run("run-1")
    assert record is not None and record.status is RunStatus.RUNNING and record.owner == "node-a/actor-1"
    assert await store.begin_attempt("run-1", "node-b/actor-7") == 2  # resumed elsewhere
    record = await store.get_run("run-1")
    assert record is not None and record.attempt == 2 and record.owner == "node-b/actor-7"
    assert record.updated_at >= record.created_at
    with pytest.raises(RunNotFound, match="run-nope"):
        await store.begin_attempt("run-nope", "x")


async def test_a_stale_attempt_cannot_write(store: RunStore) -> None:
    await new_run(store)
    zombie = await store.begin_attempt("run-1", "replica-a")
    await store.save_checkpoint("run-1", zombie, 1, {"step": 1})
    current = await store.begin_attempt("run-1", "replica-b")  # replica-a was presumed dead

    with pytest.raises(StaleAttempt) as caught:
        await store.save_checkpoint("run-1", zombie, 2, {"step": "zombie"})
    assert caught.value.attempt == 1 and caught.value.current == 2
    assert "attempt 1 is stale" in str(caught.value) and "attempt 2" in str(caught.value)
    with pytest.raises(StaleAttempt):
        await store.finish("run-1", zombie, RunStatus.FAILED, error="zombie")
    with pytest.raises(AttemptNotStarted, match="attempt 3 was never begun"):
        await store.save_checkpoint("run-1", current + 1, 1, {})

    checkpoint = await store.load_checkpoint("run-1")
    assert checkpoint is not None and checkpoint.state == {"step": 1} and checkpoint.attempt == 1
    record = await store.get_run("run-1")
    assert record is not None and record.status is RunStatus.RUNNING and record.owner == "replica-b"

    await store.save_checkpoint("run-1", current, 2, {"step": 2})
    done = await store.finish("run-1", current, RunStatus.COMPLETED, {"outcome": "completed", "output": 42})
    assert done.status is RunStatus.COMPLETED and done.result == {"outcome": "completed", "output": 42}
    with pytest.raises(StaleAttempt):  # still fenced after the run finished
        await store.finish("run-1", zombie, RunStatus.COMPLETED, {"output": "zombie"})
    final = await store.get_run("run-1")
    assert final is not None and final.result == {"outcome": "completed", "output": 42}


async def test_finish_rules(store: RunStore) -> None:
    await new_run(store)
    attempt = await store.begin_attempt("run-1", "a")
    with pytest.raises(ValueError, match="final status"):
        await store.finish("run-1", attempt, RunStatus.RUNNING)
    with pytest.raises(ValueError, match="unknown run status"):
        await store.finish("run-1", attempt, "exploded")
    failed = await store.finish("run-1", attempt, "failed", {"outcome": "max_iterations"}, error="gave up")
    assert failed.status is RunStatus.FAILED and failed.error == "gave up" and failed.finished
    retried = await store.finish("run-1", attempt, RunStatus.FAILED, {"outcome": "max_iterations"}, "gave up")
    assert retried == failed  # a retried finish is harmless
    with pytest.raises(RunAlreadyFinished, match="already finished"):
        await store.finish("run-1", attempt, RunStatus.COMPLETED, {"outcome": "completed"})
    with pytest.raises(RunAlreadyFinished):
        await store.begin_attempt("run-1", "b")
    with pytest.raises(RunAlreadyFinished):
        await store.save_checkpoint("run-1", attempt, 9, {})
    with pytest.raises(RunNotFound):
        await store.finish("run-nope", 1, RunStatus.COMPLETED)

    await new_run(store, "run-2")  # a pending run can be cancelled before any attempt
    cancelled = await store.finish("run-2", 0, RunStatus.CANCELLED)
    assert cancelled.status is RunStatus.CANCELLED and cancelled.attempt == 0


# --- checkpoints -----------------------------------------------------------------------------


async def test_checkpoint_round_trip_and_overwrite(store: RunStore) -> None:
    await new_run(store)
    assert await store.load_checkpoint("run-1") is None
    with pytest.raises(AttemptNotStarted):
        await store.save_checkpoint("run-1", 0, 1, {})  # no attempt begun yet
    with pytest.raises(RunNotFound):
        await store.load_checkpoint("run-nope")
    with pytest.raises(RunNotFound):
        await store.save_checkpoint("run-nope", 1, 1, {})

    attempt = await store.begin_attempt("run-1", "a")
    state = {"messages": [{"role": "user", "content": "hé \x00 \n"}], "usage": {"in": 10**18}, "x": -0.5}
    saved = await store.save_checkpoint("run-1", attempt, 1, state)
    loaded = await store.load_checkpoint("run-1")
    assert loaded is not None and loaded.state == state and loaded.seq == 1 and loaded.attempt == attempt
    assert loaded.saved_at.tzinfo is not None
    assert abs((loaded.saved_at - saved.saved_at).total_seconds()) < 0.001

    await store.save_checkpoint("run-1", attempt, 2, {"step": 2})
    await store.save_checkpoint("run-1", attempt, 2, {"step": "2 again"})  # same seq: a retried write
    loaded = await store.load_checkpoint("run-1")
    assert loaded is not None and loaded.seq == 2 and loaded.state == {"step": "2 again"}

    with pytest.raises(CheckpointOutOfOrder, match="seq 1 is behind the stored seq 2"):
        await store.save_checkpoint("run-1", attempt, 1, {"step": 1})
    resumed = await store.begin_attempt("run-1", "b")
    await store.save_checkpoint("run-1", resumed, 1, {"replayed": True})  # a new attempt may restart seq
    loaded = await store.load_checkpoint("run-1")
    assert loaded is not None and (loaded.seq, loaded.attempt, loaded.state) == (1, 2, {"replayed": True})

    with pytest.raises(TypeError, match="must be a dict"):
        await store.save_checkpoint("run-1", resumed, 3, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="checkpoint state is not JSON"):
        await store.save_checkpoint("run-1", resumed, 3, {"x": {1, 2}})


async def test_a_completed_run_drops_its_checkpoint_a_failed_or_cancelled_one_keeps_it(
    store: RunStore,
) -> None:
    """A completed run's result is what remains of it; a run that failed or was cancelled keeps
    the state it ended in, for a post-mortem (until `prune_runs`)."""
    for run_id in ("done", "failed", "cancelled"):
        await new_run(store, run_id)
        attempt = await store.begin_attempt(run_id, "replica-0")
        await store.save_checkpoint(run_id, attempt, 3, {"messages": [run_id]})
    done = await store.finish("done", 1, RunStatus.COMPLETED, {"outcome": "completed", "output": 1})
    await store.finish("failed", 1, RunStatus.FAILED, {"outcome": "failed"}, error="tool broke")
    await store.finish("cancelled", 1, RunStatus.CANCELLED)

    assert await store.load_checkpoint("done") is None
    assert (await store.get_run("done")).result == {"outcome": "completed", "output": 1}  # type: ignore[union-attr]
    kept = {r: await store.load_checkpoint(r) for r in ("failed", "cancelled")}
    assert {r: (c.seq, c.state) for r, c in kept.items() if c is not None} == {
        "failed": (3, {"messages": ["failed"]}),
        "cancelled": (3, {"messages": ["cancelled"]}),
    }
    assert await store.finish("done", 1, RunStatus.COMPLETED, {"outcome": "completed", "output": 1}) == done
    with pytest.raises(RunAlreadyFinished):  # and no late checkpoint brings it back
        await store.save_checkpoint("done", 1, 4, {"late": True})
    assert await store.load_checkpoint("done") is None


# --- list -------------------------------------------------------------------------------------


async def test_list_runs_newest_first_with_filters(store: RunStore) -> None:
    units = ["Agent/a", "Agent/b", "Agent/a", "Pipeline/p", "Agent/a"]
    for index, unit in enumerate(units):
        await new_run(store, f"run-{index}", unit)
    attempt = await store.begin_attempt("run-2", "x")
    await store.finish("run-2", attempt, RunStatus.COMPLETED, {"ok": True})
    await store.begin_attempt("run-4", "x")

    assert [r.run_id for r in await store.list_runs()] == ["run-4", "run-3", "run-2", "run-1", "run-0"]
    assert [r.run_id for r in await store.list_runs(unit="Agent/a")] == ["run-4", "run-2", "run-0"]
    assert [r.run_id for r in await store.list_runs(status=RunStatus.PENDING)] == ["run-3", "run-1", "run-0"]
    assert [r.run_id for r in await store.list_runs(status="completed")] == ["run-2"]
    assert [r.run_id for r in await store.list_runs(status="running", unit="Agent/a")] == ["run-4"]
    assert await store.list_runs(unit="Agent/none") == []
    assert [r.run_id for r in await store.list_runs(limit=2)] == ["run-4", "run-3"]
    with pytest.raises(ValueError):
        await store.list_runs(limit=0)
    with pytest.raises(ValueError):
        await store.list_runs(status="bogus")


async def test_list_runs_top_level_leaves_sub_runs_out_before_the_limit(store: RunStore) -> None:
    """`platform runs` shows the newest top-level runs even when a supervisor has just made a
    thousand hand-off sub-runs, all newer than them."""
    await new_run(store, "run-a")
    await new_run(store, "run-b")
    for index in range(5):
        await new_run(store, f"run-b/sub-{index}", parent_run_id="run-b")
    assert [r.run_id for r in await store.list_runs(limit=2)] == ["run-b/sub-4", "run-b/sub-3"]
    assert [r.run_id for r in await store.list_runs(limit=2, top_level=True)] == ["run-b", "run-a"]
    assert [r.run_id for r in await store.list_runs(status="pending", top_level=True)] == ["run-b", "run-a"]


# --- wait -------------------------------------------------------------------------------------


async def test_wait_returns_when_another_task_finishes_the_run(store: RunStore) -> None:
    await new_run(store)
    attempt = await store.begin_attempt("run-1", "a")

    waiter = asyncio.ensure_future(store.wait("run-1", timeout=10))
    await asyncio.sleep(0.15)
    assert not waiter.done(), "wait returned before the run finished"
    await store.finish("run-1", attempt, RunStatus.COMPLETED, {"output": "done"})
    record = await asyncio.wait_for(waiter, timeout=5)  # a liveness bound: woken, not polled forever
    assert record.status is RunStatus.COMPLETED and record.result == {"output": "done"}
    assert (await store.wait("run-1", timeout=0)).status is RunStatus.COMPLETED  # already finished


async def test_wait_times_out_and_reports_missing_runs(store: RunStore) -> None:
    await new_run(store)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.3s"):
        await store.wait("run-1", timeout=0.3)
    assert time.monotonic() - started >= 0.3  # it waited as long as it was told, not less
    with pytest.raises(RunNotFound):
        await store.wait("run-nope", timeout=1)

    async def delete_soon() -> None:
        await asyncio.sleep(0.1)
        await store.delete_run("run-1")

    deleter = asyncio.create_task(delete_soon())
    with pytest.raises(RunNotFound):
        await store.wait("run-1", timeout=10)
    await deleter


async def test_wait_returns_when_another_process_finishes_the_run(store: RunStore, store_url: str) -> None:
    await new_run(store)
    loop = asyncio.get_running_loop()
    with spawn_pool(1) as pool:
        done = loop.run_in_executor(pool, workers.finish_later, store_url, "run-1", 0.3)
        record = await store.wait("run-1", timeout=60)
        await done
    assert record.status is RunStatus.COMPLETED and record.result == {"by": "another process"}
    assert record.owner is not None and record.owner.startswith("pid-")


# --- delete -----------------------------------------------------------------------------------


async def test_delete_removes_the_run_and_its_checkpoint(store: RunStore) -> None:
    await new_run(store)
    await new_run(store, "run-2")
    attempt = await store.begin_attempt("run-1", "a")
    await store.save_checkpoint("run-1", attempt, 1, {"x": 1})
    assert await store.delete_run("run-1") is True
    assert await store.delete_run("run-1") is False
    assert await store.get_run("run-1") is None
    with pytest.raises(RunNotFound):
        await store.load_checkpoint("run-1")
    assert [r.run_id for r in await store.list_runs()] == ["run-2"]
    recreated = await new_run(store)  # the id is free again, with no old checkpoint
    assert recreated.attempt == 0 and await store.load_checkpoint("run-1") is None


async def finished_run(store: RunStore, run_id: str, status: RunStatus, *, checkpoint: bool = True) -> None:
    await new_run(store, run_id)
    attempt = await store.begin_attempt(run_id, "replica-0")
    if checkpoint:
        await store.save_checkpoint(run_id, attempt, 1, {"run": run_id})
    await store.finish(run_id, attempt, status, {"outcome": status.value})


async def past(moment: datetime) -> None:
    """Sleep until the store's clock (this machine's) is certainly past `moment`."""
    while utcnow() <= moment:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.005)


async def test_prune_runs_deletes_old_finished_runs_and_nothing_else(store: RunStore) -> None:
    for status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
        await finished_run(store, f"old-{status.value}", status)
    await new_run(store, "old-pending")
    await new_run(store, "old-running")
    await store.begin_attempt("old-running", "replica-0")
    cutoff = utcnow()
    await past(cutoff)
    await finished_run(store, "new-failed", RunStatus.FAILED)

    assert await store.prune_runs(cutoff, dry_run=True) == 3
    assert await store.prune_runs(cutoff, ["failed"], dry_run=True) == 1
    assert len(await store.list_runs()) == 6, "a dry run deletes nothing"

    assert await store.prune_runs(cutoff, [RunStatus.FAILED]) == 1
    assert await store.get_run("old-failed") is None
    with pytest.raises(RunNotFound):  # its checkpoint went with it
        await store.load_checkpoint("old-failed")
    assert await store.prune_runs(cutoff) == 2
    assert {r.run_id for r in await store.list_runs()} == {"old-pending", "old-running", "new-failed"}
    assert await store.load_checkpoint("new-failed") is not None
    assert await store.prune_runs(cutoff) == 0

    with pytest.raises(ValueError, match="only finished runs can be pruned"):
        await store.prune_runs(utcnow(), ["running"])
    with pytest.raises(ValueError, match="at least one status"):
        await store.prune_runs(utcnow(), [])
    assert await store.prune_runs(utcnow()) == 1  # now the newer one is old enough too


async def test_prune_runs_works_through_more_runs_than_one_batch(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runstore_base, "PRUNE_BATCH", 3)
    for index in range(9):  # three full batches, then an empty one
        await finished_run(store, f"run-{index}", RunStatus.FAILED, checkpoint=index % 2 == 0)
    await new_run(store, "still-pending")
    cutoff = utcnow()
    await past(cutoff)
    batches: list[int] = []
    delete_batch = store._prune_batch

    async def counted(*args: Any) -> int:
        batches.append(await delete_batch(*args))
        return batches[-1]

    monkeypatch.setattr(store, "_prune_batch", counted)
    assert await store.prune_runs(cutoff) == 9
    assert batches == [3, 3, 3, 0]
    assert [r.run_id for r in await store.list_runs()] == ["still-pending"]


# --- failures ---------------------------------------------------------------------------------


async def test_an_unreachable_store_is_unavailable_without_leaking_the_password(
    backend: str, tmp_path: Path
) -> None:
    password = "s3cr3t-Pa55"
    if backend == "sqlite":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        url = f"sqlite://{blocker}/runs.sqlite3"
    else:
        import socket

        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = f"postgresql://platform:{password}@127.0.0.1:{port}/runs"
    store = open_run_store(url)
    with pytest.raises(RunStoreUnavailable) as caught:
        await store.get_run("run-1")
    message = str(caught.value)
    assert password not in message and "is unavailable" in message
    if backend == "postgres":
        assert f"postgresql://platform:***@127.0.0.1:{port}/runs" in message
    with pytest.raises(RunStoreUnavailable):  # still unavailable, still a clear error
        await store.ping()
    await store.close()


# --- several processes, restarts --------------------------------------------------------------


async def test_concurrent_writers_in_several_processes_lose_nothing(store: RunStore, store_url: str) -> None:
    # nothing touched the database yet: the workers also race to create the schema and the shared run
    processes, runs, steps, bumps = 4, 6, 4, 3
    loop = asyncio.get_running_loop()
    with spawn_pool(processes) as pool:
        results = await asyncio.gather(
            *(
                loop.run_in_executor(pool, workers.write_runs, store_url, w, runs, steps, "shared", bumps)
                for w in range(processes)
            )
        )
    handed_out = sorted(a for got in results for a in got)
    total = processes * bumps * steps
    assert handed_out == list(range(1, total + 1))  # every increment kept, no token handed out twice
    shared = await store.get_run("shared")
    assert shared is not None and shared.attempt == total

    finished = await store.list_runs(unit="Agent/writer", limit=1000)
    assert len(finished) == processes * runs
    for record in finished:
        worker, index = record.inputs["worker"], record.inputs["index"]
        assert record.result == {"sum": worker * 1000 + index} and record.attempt == 1
        checkpoint = await store.load_checkpoint(record.run_id)
        if index % 2 == 0:  # completed: its checkpoint went when it finished
            assert record.status is RunStatus.COMPLETED and checkpoint is None
        else:  # failed: the last checkpoint it saved is kept
            assert record.status is RunStatus.FAILED
            assert checkpoint is not None and checkpoint.seq == steps
            assert checkpoint.state == {"worker": worker, "seq": steps}


async def test_everything_survives_reopening_the_store(store_url: str) -> None:
    first = open_run_store(store_url)
    await first.create_run(RunRecord("run-1", "Agent/a", {"q": 1}))
    attempt = await first.begin_attempt("run-1", "a")
    await first.save_checkpoint("run-1", attempt, 3, {"history": ["x", "y", "z"]})
    await first.create_run(RunRecord("run-2", "Agent/a", {"q": 2}))
    await first.close()

    second = open_run_store(store_url)  # a restarted process
    try:
        record = await second.get_run("run-1")
        assert record is not None and record.attempt == 1 and record.status is RunStatus.RUNNING
        checkpoint = await second.load_checkpoint("run-1")
        assert (
            checkpoint is not None
            and checkpoint.seq == 3
            and checkpoint.state == {"history": ["x", "y", "z"]}
        )
        assert [r.run_id for r in await second.list_runs()] == ["run-2", "run-1"]
        resumed = await second.begin_attempt("run-1", "b")
        assert resumed == 2
    finally:
        await second.close()


async def test_a_run_resumes_from_its_last_checkpoint_after_its_process_is_killed(
    store: RunStore, store_url: str, tmp_path: Path
) -> None:
    await new_run(store)
    marker = tmp_path / "crashed.json"
    process = multiprocessing.get_context("spawn").Process(
        target=workers.crash_mid_run, args=(store_url, "run-1", 3, str(marker))
    )
    process.start()
    await asyncio.to_thread(process.join, 60)
    assert process.exitcode == -9 and json.loads(marker.read_text()) == {"attempt": 1}

    record = await store.get_run("run-1")
    assert record is not None and record.status is RunStatus.RUNNING and record.attempt == 1  # presumed dead
    attempt = await store.begin_attempt("run-1", "replica-2")
    checkpoint = await store.load_checkpoint("run-1")
    assert attempt == 2 and checkpoint is not None and checkpoint.seq == 3
    assert checkpoint.state == {"done": [1, 2, 3]}
    await store.save_checkpoint("run-1", attempt, 4, {"done": [1, 2, 3, 4]})
    final = await store.finish("run-1", attempt, RunStatus.COMPLETED, {"outcome": "completed"})
    assert final.attempt == 2 and final.owner == "replica-2"


# --- start: create + attempt + checkpoint in one call -------------------------------------------


async def test_start_creates_takes_an_attempt_and_returns_the_checkpoint(store: RunStore) -> None:
    first = await store.start(RunRecord("run-s", "Agent/a", {"q": 1}), "replica-0")
    assert first.attempt == 1 and first.checkpoint is None and first.record.unit == "Agent/a"
    await store.save_checkpoint("run-s", 1, 3, {"step": 3})
    resumed = await store.start(RunRecord("run-s", "Agent/a", {"q": 1}), "replica-1")
    assert resumed.attempt == 2 and resumed.checkpoint is not None and resumed.checkpoint.state == {"step": 3}
    with pytest.raises(StaleAttempt):
        await store.save_checkpoint("run-s", 1, 4, {"step": 4})  # the first replica is fenced out
    await store.finish("run-s", 2, RunStatus.COMPLETED, result={"ok": True})
    done = await store.start(RunRecord("run-s", "Agent/a", {"q": 1}), "replica-2")
    assert done.attempt is None and done.record.result == {"ok": True}
    record = await store.get_run("run-s")
    assert record is not None and record.attempt == 2 and record.owner == "replica-1"


async def test_start_of_a_new_run_returns_it_as_created_and_stores_it_running(store: RunStore) -> None:
    record = RunRecord("run-n", "Agent/a", {"q": [1, 2]}, parent_run_id="parent-1", tenant="acme")
    started = await store.start(record, "replica-0")
    stored = await store.get_run("run-n")
    assert stored is not None and started.attempt == 1 and started.checkpoint is None
    created = started.record
    assert (created.status, created.attempt, created.owner) == (RunStatus.PENDING, 0, None), "as created"
    assert (created.inputs, created.parent_run_id, created.tenant) == ({"q": [1, 2]}, "parent-1", "acme")
    assert created.created_at == stored.created_at
    assert (stored.status, stored.attempt, stored.owner) == (RunStatus.RUNNING, 1, "replica-0")
    assert (stored.inputs, stored.parent_run_id, stored.tenant) == ({"q": [1, 2]}, "parent-1", "acme")
    finished = await store.finish("run-n", 1, RunStatus.COMPLETED, {"output": 1})
    assert finished == await store.get_run("run-n"), "finish returns the record as stored"
    assert (finished.inputs, finished.owner, finished.tenant, finished.result) == (
        {"q": [1, 2]},
        "replica-0",
        "acme",
        {"output": 1},
    )


async def test_save_checkpoints_fences_each_run_on_its_own(store: RunStore) -> None:
    from agent_platform._runstore import JsonText

    for run_id in ("ok", "stale", "behind", "done"):
        await new_run(store, run_id)
        await store.begin_attempt(run_id, "replica-0")
    await store.begin_attempt("stale", "replica-1")  # attempt 2 took it over
    await store.save_checkpoint("behind", 1, 5, {"step": 5})
    await store.finish("done", 1, RunStatus.COMPLETED)
    results = await store.save_checkpoints(
        [
            ("ok", 1, 1, JsonText('{"step":1,"text":"é"}')),  # already serialised: stored as is
            ("stale", 1, 1, {"step": 1}),
            ("behind", 1, 4, {"step": 4}),
            ("done", 1, 1, {"step": 1}),
            ("missing", 1, 1, {"step": 1}),
            ("behind", 1, 5, {"step": "5 again"}),  # an equal seq overwrites (a retried write)
        ]
    )
    assert [type(r).__name__ for r in results] == [
        "NoneType",
        "StaleAttempt",
        "CheckpointOutOfOrder",
        "RunAlreadyFinished",
        "RunNotFound",
        "NoneType",
    ]
    saved = await store.load_checkpoint("ok")
    assert saved is not None and saved.state == {"step": 1, "text": "é"} and saved.seq == 1
    assert await store.load_checkpoint("stale") is None
    behind = await store.load_checkpoint("behind")
    assert behind is not None and behind.state == {"step": "5 again"}
    assert await store.save_checkpoints([("stale", 2, 1, {"step": 1})]) == [None], (
        "a new attempt restarts seq"
    )
    with pytest.raises(TypeError):
        await store.save_checkpoints([("ok", 1, 2, ["not", "a", "dict"])])  # type: ignore[list-item]


async def test_a_failed_group_commit_is_reported_to_every_write_in_it(tmp_path: Path) -> None:
    """SQLite commits the writes queued together in one transaction: when it fails, each of them
    fails (none is acknowledged without being stored)."""
    import sqlite3

    from agent_platform._runstore.sqlite import SqliteRunStore

    path = tmp_path / "runs.sqlite3"
    store = SqliteRunStore(path, busy_timeout_s=0.05)
    try:
        await store.start(RunRecord("old", "Agent/a", {}), "replica-0")
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock, longer than the timeout
        try:
            outcomes = await asyncio.gather(
                store.start(RunRecord("new", "Agent/a", {}), "replica-0"),
                store.finish("old", 1, RunStatus.COMPLETED),
                store.save_checkpoints([("old", 1, 1, {"step": 1})]),
                return_exceptions=True,
            )
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert [type(o) for o in outcomes] == [RunStoreUnavailable] * 3, outcomes
        assert await store.get_run("new") is None
        old = await store.get_run("old")
        assert (
            old is not None and old.status is RunStatus.RUNNING and await store.load_checkpoint("old") is None
        )
        await store.finish("old", 1, RunStatus.COMPLETED)  # and the store works again
    finally:
        await store.close()
