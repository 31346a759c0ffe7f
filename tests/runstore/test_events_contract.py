"""Run events in the run store, on SQLite and a real PostgreSQL server: one sequence per run
tree, handed out at commit, so a reader resuming after any event it saw misses nothing and sees
nothing twice, even with several processes writing one tree at once."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from tests.runstore import workers

from agent_platform._runstore import JsonText, RunRecord, RunStatus, RunStore
from agent_platform._runstore.events import NewEvent, StoredEvent


def event(run_id: str, kind: str, **data: object) -> NewEvent:
    return NewEvent(run_id, kind, dict(data), datetime.now(UTC))


async def read_all(store: RunStore, run_id: str, after: int = 0) -> list[StoredEvent]:
    found: list[StoredEvent] = []
    while True:
        batch = await store.read_events(run_id, after=after, limit=3)
        found += batch
        if len(batch) < 3:
            return found
        after = batch[-1].seq


async def test_events_are_numbered_per_tree_in_the_order_they_were_appended(store: RunStore) -> None:
    seqs = await store.append_events(
        [
            event("run-a", "run.started", unit="Agent/a"),
            event("run-b", "run.started", unit="Agent/b"),
            event("run-a/helper-1", "run.started", unit="Agent/helper"),
            event("run-a", "step.started", step="iteration 1"),
        ]
    )
    assert seqs == [1, 1, 2, 3]  # run-a's tree: 1, 2, 3; run-b's: 1
    assert await store.append_events([event("run-a", "run.finished", outcome="completed")]) == [4]
    assert await store.append_events([]) == []
    tree = await read_all(store, "run-a")
    assert [(e.seq, e.run_id, e.kind) for e in tree] == [
        (1, "run-a", "run.started"),
        (2, "run-a/helper-1", "run.started"),
        (3, "run-a", "step.started"),
        (4, "run-a", "run.finished"),
    ]
    assert tree[0].data == {"unit": "Agent/a"} and tree[0].root_run_id == "run-a"
    assert tree[0].at.tzinfo is not None and abs(tree[0].at - datetime.now(UTC)) < timedelta(minutes=5)
    # Resuming after any event gives exactly what came after it.
    for seen in range(5):
        assert [e.seq for e in await read_all(store, "run-a", after=seen)] == list(range(seen + 1, 5))
    # A sub-run's stream is its own subtree, numbered in the tree's sequence.
    assert [(e.seq, e.kind) for e in await read_all(store, "run-a/helper-1")] == [(2, "run.started")]
    assert [e.seq for e in await read_all(store, "run-b")] == [1]
    assert await store.read_events("run-none") == []


async def test_a_sub_runs_stream_does_not_take_a_sibling_whose_name_extends_it(store: RunStore) -> None:
    await store.append_events(
        [
            event("run-a/x-1", "run.started", unit="Agent/x"),
            event("run-a/x-10", "run.started", unit="Agent/x"),
            event("run-a/x-1/y-1", "run.started", unit="Agent/y"),
        ]
    )
    assert [e.run_id for e in await read_all(store, "run-a/x-1")] == ["run-a/x-1", "run-a/x-1/y-1"]


async def test_bodies_keep_their_values_and_text_bodies_are_stored_as_given(store: RunStore) -> None:
    await store.append_events(
        [
            event("run-a", "custom", text="ünïcode \u0000 nul", n=[1, 2.5, None, True]),
            NewEvent("run-a", "custom", JsonText('{"pre": "encoded"}'), datetime.now(UTC)),
        ]
    )
    first, second = await store.read_events("run-a")
    assert first.data == {"text": "ünïcode \u0000 nul", "n": [1, 2.5, None, True]}
    assert second.data == {"pre": "encoded"}
    with pytest.raises(ValueError):
        await store.append_events([event("run-a", "custom", bad=object())])
    assert len(await store.read_events("run-a")) == 2  # nothing of the refused batch
    with pytest.raises(ValueError, match="limit"):
        await store.read_events("run-a", limit=0)


async def test_concurrent_writers_of_one_tree_get_distinct_gapless_numbers(store: RunStore) -> None:
    async def writer(n: int) -> list[int]:
        seqs: list[int] = []
        for i in range(10):
            seqs += await store.append_events(
                [event("run-a", "w", writer=n, i=i), event(f"run-a/s-{n}", "w", writer=n, i=i)]
            )
        return seqs

    results = await asyncio.gather(*(writer(n) for n in range(5)))
    every = sorted(s for seqs in results for s in seqs)
    assert every == list(range(1, 101))
    for seqs in results:  # each writer's own events are numbered in the order it wrote them
        assert seqs == sorted(seqs)
    stored = await read_all(store, "run-a")
    assert [e.seq for e in stored] == list(range(1, 101))
    for n in range(5):
        mine = [(e.data["i"], e.run_id) for e in stored if e.data["writer"] == n]
        assert mine == [(i, r) for i in range(10) for r in ("run-a", f"run-a/s-{n}")]


async def test_writers_in_several_processes_lose_nothing_and_a_follower_sees_each_once(
    store: RunStore, store_url: str
) -> None:
    """While four processes append to one tree, a reader resuming after the last event it saw
    ends with every event exactly once, in sequence order."""
    await store.ping()
    loop = asyncio.get_running_loop()
    seen: list[int] = []
    with ProcessPoolExecutor(max_workers=4, mp_context=multiprocessing.get_context("spawn")) as pool:
        writing = [
            loop.run_in_executor(pool, workers.append_events, store_url, "run-p", n, 25) for n in range(4)
        ]
        done = asyncio.gather(*writing)
        while True:
            finished = done.done()
            for stored in await store.read_events("run-p", after=seen[-1] if seen else 0):
                seen.append(stored.seq)
            if finished:
                break
            await asyncio.sleep(0.01)
        await done
    assert seen == list(range(1, 4 * 25 * 2 + 1))


async def test_deleting_or_pruning_a_run_removes_its_trees_events(store: RunStore) -> None:
    for run_id in ("run-a", "run-b"):
        await store.create_run(RunRecord(run_id, "Agent/a", {}))
        attempt = await store.begin_attempt(run_id, "me")
        await store.append_events([event(run_id, "run.started"), event(f"{run_id}/s-1", "run.started")])
        await store.finish(run_id, attempt, RunStatus.COMPLETED, result={"ok": True})
    assert await store.delete_run("run-a")
    assert await store.read_events("run-a") == []
    assert len(await store.read_events("run-b")) == 2
    assert await store.prune_runs(datetime.now(UTC) + timedelta(days=1)) == 1
    assert await store.read_events("run-b") == []
