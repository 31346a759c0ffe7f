"""The `key`-mode idempotency store contract, on SQLite (`SqliteIdempotencyStore`) and a real
PostgreSQL server (`PostgresIdempotencyStore`): the same cases as
tests/runtime/test_tools_idempotency.py's store tests, so both stores behave alike."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.runstore import workers
from tests.runstore.conftest import make_url

from agent_platform._compile.plan import ToolBinding
from agent_platform._runstore import open_idempotency_store
from agent_platform._runstore.idempotency import IdempotencyStore
from agent_platform._runstore.postgres import PostgresIdempotencyStore
from agent_platform._runtime.clock import FakeClock
from agent_platform._runtime.tools import SqliteIdempotencyStore, ToolExecutor, ToolRegistry
from agent_platform._runtime.tools.errors import IdempotencyConflict
from agent_platform._runtime.tools.idempotency import run_once
from agent_platform._spec.kinds import ToolSpec


@pytest.fixture
def idem_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite://{tmp_path / 'idempotency.sqlite3'}"
    return make_url(backend, request, tmp_path)


@pytest.fixture
async def idem(idem_url: str) -> AsyncIterator[IdempotencyStore]:
    store = open_idempotency_store(idem_url)
    try:
        yield store
    finally:
        await store.aclose()


def test_the_factory_picks_the_store_by_url(idem_url: str, backend: str) -> None:
    store = open_idempotency_store(idem_url)
    expected = SqliteIdempotencyStore if backend == "sqlite" else PostgresIdempotencyStore
    assert isinstance(store, expected)
    if isinstance(store, SqliteIdempotencyStore):
        store.close()


async def test_claim_succeed_replay(idem: IdempotencyStore) -> None:
    clock = FakeClock()
    runs: list[int] = []

    async def side_effect() -> dict[str, Any]:
        runs.append(1)
        return {"message_id": "m1", "to": "ä@example.org"}

    first = await run_once(idem, "send", "k1", side_effect, clock=clock, lease_s=30, ttl_s=86400)
    replay = await run_once(idem, "send", "k1", side_effect, clock=clock, lease_s=30, ttl_s=86400)
    assert first.output == replay.output == {"message_id": "m1", "to": "ä@example.org"}
    assert not first.from_store and replay.from_store and runs == [1]
    record = await idem.get("send", "k1")
    assert record is not None and record.status == "succeeded" and record.executions == 1
    assert record.created_at.tzinfo is not None and record.expires_at is not None
    assert record.expires_at - record.created_at == dt.timedelta(days=1)
    assert json.loads(record.result_json or "null") == first.output
    assert await idem.get("send", "other") is None
    other_tool = await run_once(idem, "other-tool", "k1", side_effect, clock=clock, lease_s=30, ttl_s=None)
    assert not other_tool.from_store and runs == [1, 1]


async def test_a_held_lease_makes_others_wait_until_it_expires(idem: IdempotencyStore) -> None:
    clock = FakeClock()
    claim = await idem.claim("t", "k", owner="A", now=clock.now(), lease_s=30, ttl_s=None)
    assert claim.status == "claimed"
    busy = await idem.claim("t", "k", owner="B", now=clock.now(), lease_s=30, ttl_s=None)
    assert busy.status == "busy" and busy.lease_expires_at == clock.now() + dt.timedelta(seconds=30)
    again = await idem.claim("t", "k", owner="A", now=clock.now(), lease_s=30, ttl_s=None)
    assert again.status == "claimed"  # the holder may re-claim
    clock.advance(31)  # A died: its lease expired, B takes over
    taken = await idem.claim("t", "k", owner="B", now=clock.now(), lease_s=30, ttl_s=None)
    assert taken.status == "claimed"
    assert not await idem.complete("t", "k", owner="A", result_json="1", now=clock.now(), ttl_s=None)
    assert await idem.complete("t", "k", owner="B", result_json="2", now=clock.now(), ttl_s=None)
    done = await idem.claim("t", "k", owner="C", now=clock.now(), lease_s=30, ttl_s=None)
    assert done.status == "succeeded" and done.result_json == "2"
    record = await idem.get("t", "k")
    assert record is not None and record.executions == 3 and record.owner == "B"


async def test_a_failure_releases_the_key(idem: IdempotencyStore) -> None:
    clock = FakeClock()
    attempts: list[int] = []

    async def charge() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("gateway reset")
        return "charged"

    with pytest.raises(ConnectionError):
        await run_once(idem, "charge", "k", charge, clock=clock, lease_s=30, ttl_s=None)
    record = await idem.get("charge", "k")
    assert record is not None and record.status == "failed" and "gateway reset" in (record.error or "")
    assert record.lease_expires_at is None
    retried = await run_once(idem, "charge", "k", charge, clock=clock, lease_s=30, ttl_s=None)
    assert retried.output == "charged" and not retried.from_store and len(attempts) == 2
    record = await idem.get("charge", "k")
    assert record is not None and record.status == "succeeded" and record.error is None


async def test_waiting_on_a_lease_that_never_ends_is_a_conflict(idem: IdempotencyStore) -> None:
    clock = FakeClock()
    await idem.claim("t", "k", owner="elsewhere", now=clock.now(), lease_s=3600, ttl_s=None)

    async def side_effect() -> int:
        raise AssertionError("must not run")

    with pytest.raises(IdempotencyConflict, match="still in progress elsewhere"):
        await run_once(idem, "t", "k", side_effect, clock=clock, lease_s=60, ttl_s=None, max_wait_s=2)


async def test_retention_and_purge(idem: IdempotencyStore) -> None:
    clock = FakeClock()
    count = 0

    async def create() -> int:
        nonlocal count
        count += 1
        return count

    assert (await run_once(idem, "t", "k", create, clock=clock, lease_s=30, ttl_s=3600)).output == 1
    clock.advance(3599)
    assert (await run_once(idem, "t", "k", create, clock=clock, lease_s=30, ttl_s=3600)).from_store
    clock.advance(2)  # retention over: the key may run again, counted afresh
    later = await run_once(idem, "t", "k", create, clock=clock, lease_s=30, ttl_s=3600)
    assert later.output == 2 and not later.from_store
    record = await idem.get("t", "k")
    assert record is not None and record.executions == 1
    await idem.claim("t", "live-lease", owner="x", now=clock.now(), lease_s=10**6, ttl_s=1)
    assert await idem.purge_expired(clock.now() + dt.timedelta(hours=2)) == 1  # not the leased one
    assert await idem.get("t", "k") is None and await idem.get("t", "live-lease") is not None
    with pytest.raises(ValueError, match="timezone-aware"):
        await idem.purge_expired(dt.datetime(2025, 1, 1))


async def test_the_tool_executor_replays_from_the_store(idem: IdempotencyStore) -> None:
    sent: list[str] = []

    def send_email(to: str, body: str) -> dict[str, Any]:
        sent.append(to)
        return {"message_id": f"m{len(sent)}"}

    registry = ToolRegistry(plugin_paths=[])
    registry.register(send_email, name="send")
    spec = ToolSpec.model_validate(
        {
            "description": "Send.",
            "python": "testing:registered",
            "side_effects": True,
            "requires_approval": False,
            "idempotency": {"mode": "key", "ttl": "1d"},
        }
    )
    executor = ToolExecutor([ToolBinding("send", spec)], registry, clock=FakeClock(), idempotency_store=idem)
    first = await executor.call("send", {"to": "a@example.org", "body": "hi"}, run_id="run-1")
    calls = [executor.call("send", {"body": "hi", "to": "a@example.org"}, run_id="run-1") for _ in range(5)]
    replays = await asyncio.gather(*calls)
    assert all(r.output == first.output and r.from_idempotency_store for r in replays)
    assert sent == ["a@example.org"]


def test_concurrent_connections_claim_a_key_once(idem_url: str) -> None:
    now = dt.datetime.now(dt.UTC)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def claim(index: int) -> None:
        async def go() -> None:
            store = open_idempotency_store(idem_url)  # its own connection
            start.wait()
            claimed = await store.claim("t", "k", owner=f"owner-{index}", now=now, lease_s=30, ttl_s=None)
            outcomes.append(claimed.status)
            await store.aclose()

        asyncio.run(go())

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["busy"] * 7 + ["claimed"]


def test_concurrent_processes_run_the_side_effect_once(idem_url: str, tmp_path: Path) -> None:
    log_path, barrier = tmp_path / "executions.log", tmp_path / "go"
    with ProcessPoolExecutor(max_workers=3, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(workers.run_keyed_side_effect, idem_url, str(log_path), str(barrier), 0.3)
            for _ in range(3)
        ]
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("go.ready.*"))) < 3:  # all three connected and waiting
            assert time.monotonic() < deadline and not any(f.done() for f in futures)
            time.sleep(0.01)
        barrier.touch()
        results = [f.result(timeout=60) for f in futures]
    assert len({json.dumps(r["output"]) for r in results}) == 1
    assert sorted(r["from_store"] for r in results) == [False, True, True]
    assert len(log_path.read_text().splitlines()) == 1
    assert os.path.exists(barrier)
