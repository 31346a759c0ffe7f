"""Idempotency: cache mode (canonical keys, single-flight, failures not cached, TTL, LRU) and key
mode (durable results surviving a restart, exactly one execution across concurrent processes)."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent_platform._compile.plan import ToolBinding
from agent_platform._runtime.clock import FakeClock
from agent_platform._runtime.tools import (
    SqliteIdempotencyStore,
    ToolExecutor,
    ToolFailed,
    ToolRegistry,
    current_idempotency_key,
)
from agent_platform._runtime.tools.errors import IdempotencyConflict
from agent_platform._runtime.tools.idempotency import ResultCache, run_once, sha256_hex
from agent_platform._spec.kinds import ToolSpec

REPO = Path(__file__).resolve().parents[2]


def spec(**fields: Any) -> ToolSpec:
    fields.setdefault("description", "A test tool.")
    fields.setdefault("python", "testing:registered")
    return ToolSpec.model_validate(fields)


def make(
    fn: Any,
    clock: FakeClock | None = None,
    store: SqliteIdempotencyStore | None = None,
    name: str = "t",
    **fields: Any,
) -> ToolExecutor:
    registry = ToolRegistry(plugin_paths=[])
    registry.register(fn, name=name)
    return ToolExecutor(
        [ToolBinding(name, spec(**fields))], registry, clock=clock or FakeClock(), idempotency_store=store
    )


# --- canonical keys ---------------------------------------------------------------------------


class Unit(enum.Enum):
    METRIC = "metric"
    IMPERIAL = "imperial"


class Place(BaseModel):
    name: str
    tags: dict[str, int] = {}


def measure(
    place: Place,
    unit: Unit,
    span: tuple[int, int],
    when: dt.datetime,
    amount: Decimal,
    options: dict[str, Any] | None = None,
) -> str:
    return "ok"


def test_canonical_keys_ignore_representation() -> None:
    t = ToolRegistry(plugin_paths=[]).register(measure)
    when = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)
    first = t.validate(
        {
            "place": {"name": "Oslo", "tags": {"b": 2, "a": 1}},
            "unit": "metric",
            "span": [1, 2],
            "when": "2025-05-01T12:00:00Z",
            "amount": "1.50",
            "options": {"z": [1, {"y": 1, "x": 2}], "a": None},
        }
    )
    second = t.validate(
        {
            "options": {"a": None, "z": [1, {"x": 2, "y": 1}]},
            "amount": Decimal("1.50"),
            "when": when,
            "span": (1, 2),
            "unit": Unit.METRIC,
            "place": Place(name="Oslo", tags={"a": 1, "b": 2}),
        }
    )
    assert first.canonical_json() == second.canonical_json()
    assert json.loads(first.canonical_json())["unit"] == "metric"
    different = t.validate({**first.jsonable(), "unit": "imperial"})
    assert different.canonical_json() != first.canonical_json()


async def test_arguments_without_a_json_form_are_not_cached_and_do_not_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[float] = []

    def scale(factor: float) -> float:
        calls.append(factor)
        return 1.0

    executor = make(scale, idempotency={"mode": "cache", "ttl": 60})
    for _ in range(2):
        result = await executor.call("t", {"factor": math.nan}, run_id="r")
        assert result.output == 1.0 and not result.cached
    assert len(calls) == 2
    assert "not cached" in caplog.text


# --- cache mode -------------------------------------------------------------------------------


async def test_single_flight_runs_100_identical_concurrent_calls_once() -> None:
    calls = 0

    async def lookup(city: str, days: int = 1) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"city": city, "days": days, "forecast": ["sun"] * days}

    executor = make(lookup, idempotency={"mode": "cache", "ttl": 60})
    arguments = [{"city": "Oslo", "days": 2} if i % 2 else {"days": 2, "city": "Oslo"} for i in range(100)]
    results = await asyncio.gather(*(executor.call("t", a, run_id=f"r{i}") for i, a in enumerate(arguments)))
    assert calls == 1
    assert all(r.output == {"city": "Oslo", "days": 2, "forecast": ["sun", "sun"]} for r in results)
    assert sum(not r.cached for r in results) == 1  # the one that ran
    results[1].output["forecast"].append("rain")  # callers get their own copies
    again = await executor.call("t", {"city": "Oslo", "days": 2}, run_id="r")
    assert again.cached and again.output["forecast"] == ["sun", "sun"] and calls == 1


async def test_a_failure_reaches_every_waiter_and_is_not_cached() -> None:
    calls = 0

    async def fragile(q: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        if calls == 1:
            raise RuntimeError("backend exploded")
        return "fine"

    executor = make(fragile, idempotency={"mode": "cache", "ttl": 60}, retry={"max_attempts": 1})
    results = await asyncio.gather(*(executor.call("t", {"q": "x"}, run_id="r") for _ in range(20)))
    assert calls == 1
    assert all(isinstance(r.error, ToolFailed) and "backend exploded" in r.error.message for r in results)
    cache = executor.cache("t")
    assert cache is not None and len(cache) == 0
    retried = await executor.call("t", {"q": "x"}, run_id="r")
    assert retried.output == "fine" and not retried.cached and calls == 2


async def test_cache_entries_expire_after_their_ttl_on_the_clock() -> None:
    clock = FakeClock()
    calls = 0

    def square(n: int) -> int:
        nonlocal calls
        calls += 1
        return n * n

    executor = make(square, clock, idempotency={"mode": "cache", "ttl": "10s"})
    assert (await executor.call("t", {"n": 3}, run_id="r")).output == 9
    clock.advance(9.9)
    assert (await executor.call("t", {"n": 3}, run_id="r")).cached
    clock.advance(0.2)
    fresh = await executor.call("t", {"n": 3}, run_id="r")
    assert fresh.output == 9 and not fresh.cached and calls == 2


async def test_cache_is_bounded_with_lru_eviction() -> None:
    cache = ResultCache(max_entries=2, ttl=None, clock=FakeClock())
    runs: list[str] = []

    def producer(key: str) -> Any:
        async def run() -> str:
            runs.append(key)
            return key.upper()

        return run

    for key in ("a", "b", "a", "c", "b", "a"):
        await cache.get_or_run(key, producer(key))
    # a, b miss; a hit (now most recent); c evicts b; b misses and evicts a; a misses
    assert runs == ["a", "b", "c", "b", "a"]
    assert len(cache) == 2 and "a" in cache and "b" in cache and "c" not in cache


# --- key mode, in process ---------------------------------------------------------------------


async def test_key_mode_returns_the_stored_result_instead_of_repeating(tmp_path: Path) -> None:
    sent: list[str] = []
    seen_keys: list[str | None] = []

    def send_email(to: str, body: str) -> dict[str, Any]:
        seen_keys.append(current_idempotency_key())  # visible in the worker thread too
        sent.append(to)
        return {"message_id": f"m{len(sent)}", "to": to}

    store = SqliteIdempotencyStore(tmp_path / "idem.sqlite3")
    executor = make(
        send_email,
        store=store,
        side_effects=True,
        requires_approval=False,
        idempotency={"mode": "key", "ttl": "1d"},
    )
    first = await executor.call("t", {"to": "a@example.org", "body": "hi"}, run_id="run-1")
    replay = await executor.call("t", {"body": "hi", "to": "a@example.org"}, run_id="run-1")
    assert first.output == replay.output == {"message_id": "m1", "to": "a@example.org"}
    assert not first.from_idempotency_store and replay.from_idempotency_store
    assert sent == ["a@example.org"]
    assert seen_keys[0] is not None and len(seen_keys[0]) == 64

    other_run = await executor.call("t", {"to": "a@example.org", "body": "hi"}, run_id="run-2")
    assert other_run.output["message_id"] == "m2" and not other_run.from_idempotency_store

    concurrent = await asyncio.gather(
        *(executor.call("t", {"to": "b@example.org", "body": "x"}, run_id="run-3") for _ in range(10))
    )
    assert sent.count("b@example.org") == 1
    assert len({json.dumps(r.output) for r in concurrent}) == 1
    await store.aclose()


async def test_key_template_and_retention(tmp_path: Path) -> None:
    clock = FakeClock()
    created: list[str] = []

    async def create_ticket(customer_id: str, subject: str) -> dict[str, str]:
        created.append(subject)
        return {"ticket": f"T{len(created)}"}

    store = SqliteIdempotencyStore(tmp_path / "idem.sqlite3")
    executor = make(
        create_ticket,
        clock,
        store,
        side_effects=True,
        requires_approval=False,
        idempotency={"mode": "key", "key": "{{ run.id }}:{{ args.customer_id }}", "ttl": "1h"},
    )
    one = await executor.call("t", {"customer_id": "c1", "subject": "Login broken"}, run_id="r")
    reworded = await executor.call("t", {"customer_id": "c1", "subject": "Cannot log in"}, run_id="r")
    assert reworded.from_idempotency_store and reworded.output == one.output == {"ticket": "T1"}
    record = await store.get("t", sha256_hex("r:c1"))
    assert record is not None and record.status == "succeeded" and record.executions == 1
    assert record.created_at.tzinfo is not None and record.expires_at is not None
    assert record.expires_at - record.created_at == dt.timedelta(hours=1)

    clock.advance(3601)  # retention over: the key may run again
    later = await executor.call("t", {"customer_id": "c1", "subject": "Still broken"}, run_id="r")
    assert later.output == {"ticket": "T2"} and not later.from_idempotency_store
    assert await store.purge_expired(clock.now() + dt.timedelta(hours=2)) == 1
    await store.aclose()


async def test_key_mode_failures_release_the_key_and_keyed_tools_may_retry(tmp_path: Path) -> None:
    clock = FakeClock()
    attempts: list[int] = []

    async def charge(amount: int) -> str:
        attempts.append(amount)
        if len(attempts) in (1, 3):
            raise ConnectionError("gateway reset")
        return f"charged {amount}"

    store = SqliteIdempotencyStore(tmp_path / "idem.sqlite3")
    no_retry = make(
        charge,
        clock,
        store,
        name="charge",
        side_effects=True,
        requires_approval=False,
        idempotency={"mode": "key"},
    )
    failed = await no_retry.call("charge", {"amount": 5}, run_id="r")
    assert isinstance(failed.error, ToolFailed) and attempts == [5]
    record = await store.get(
        "charge", sha256_hex(json.dumps(["r", "charge", '{"amount":5}'], separators=(",", ":")))
    )
    assert record is not None and record.status == "failed" and "gateway reset" in (record.error or "")
    ok = await no_retry.call("charge", {"amount": 5}, run_id="r")
    assert ok.output == "charged 5" and attempts == [5, 5]

    retrying = make(
        charge,
        clock,
        store,
        name="charge",
        side_effects=True,
        requires_approval=False,
        idempotency={"mode": "key"},
        retry={"max_attempts": 3, "backoff": {"initial": 1, "jitter": "none"}, "retry_on": ["connection"]},
    )
    result = await retrying.call("charge", {"amount": 7}, run_id="r")
    assert result.output == "charged 7" and result.attempts == 2 and clock.sleeps == [1.0]
    replay = await retrying.call("charge", {"amount": 7}, run_id="r")
    assert replay.from_idempotency_store and attempts == [5, 5, 7, 7]
    await store.aclose()


async def test_a_held_lease_makes_others_wait_until_it_expires(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteIdempotencyStore(tmp_path / "idem.sqlite3")
    claim = await store.claim("t", "k", owner="A", now=clock.now(), lease_s=30, ttl_s=None)
    assert claim.status == "claimed"
    busy = await store.claim("t", "k", owner="B", now=clock.now(), lease_s=30, ttl_s=None)
    assert busy.status == "busy" and busy.lease_expires_at == clock.now() + dt.timedelta(seconds=30)
    clock.advance(31)  # A died: its lease expired, B takes over
    taken = await store.claim("t", "k", owner="B", now=clock.now(), lease_s=30, ttl_s=None)
    assert taken.status == "claimed"
    assert not await store.complete("t", "k", owner="A", result_json="1", now=clock.now(), ttl_s=None)
    assert await store.complete("t", "k", owner="B", result_json="2", now=clock.now(), ttl_s=None)
    done = await store.claim("t", "k", owner="C", now=clock.now(), lease_s=30, ttl_s=None)
    assert done.status == "succeeded" and done.result_json == "2"
    record = await store.get("t", "k")
    assert record is not None and record.executions == 2
    await store.aclose()


async def test_waiting_on_a_lease_that_never_ends_is_a_conflict_not_a_second_run(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteIdempotencyStore(tmp_path / "idem.sqlite3")
    await store.claim("t", "k", owner="elsewhere", now=clock.now(), lease_s=3600, ttl_s=None)
    ran: list[int] = []

    async def side_effect() -> int:
        ran.append(1)
        return 1

    with pytest.raises(IdempotencyConflict) as caught:
        await run_once(store, "t", "k", side_effect, clock=clock, lease_s=60, ttl_s=None, max_wait_s=2)
    assert "still in progress elsewhere" in caught.value.message
    assert ran == [] and sum(clock.sleeps) >= 2
    await store.aclose()


async def test_a_cancelled_caller_does_not_abort_the_side_effect_in_flight(tmp_path: Path) -> None:
    started = asyncio.Event()
    runs: list[str] = []

    async def slow_write(item: str) -> str:
        runs.append(item)
        started.set()
        await asyncio.sleep(0.2)
        return f"wrote {item}"

    store = SqliteIdempotencyStore(tmp_path / "idem.sqlite3")
    executor = make(
        slow_write, store=store, side_effects=True, requires_approval=False, idempotency={"mode": "key"}
    )
    pending = asyncio.create_task(executor.call("t", {"item": "x"}, run_id="r"))
    await started.wait()
    pending.cancel()  # e.g. the run's own timeout
    with pytest.raises(asyncio.CancelledError):
        await pending
    # the write was not interrupted half-way: it finishes and its result is stored
    result = await executor.call("t", {"item": "x"}, run_id="r")
    assert result.output == "wrote x" and result.from_idempotency_store and runs == ["x"]
    await store.aclose()


async def test_cancelled_keyed_work_releases_its_key(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteIdempotencyStore(tmp_path / "idem.sqlite3")
    started = asyncio.Event()

    async def hang() -> int:
        started.set()
        await asyncio.sleep(60)
        return 1

    work = asyncio.create_task(run_once(store, "t", "k", hang, clock=clock, lease_s=60, ttl_s=None))
    await started.wait()
    work.cancel()
    with pytest.raises(asyncio.CancelledError):
        await work
    record = await store.get("t", "k")
    assert record is not None and record.status == "failed" and record.error == "cancelled"
    claim = await store.claim("t", "k", owner="next", now=clock.now(), lease_s=60, ttl_s=None)
    assert claim.status == "claimed"
    await store.aclose()


# --- key mode across processes ----------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from agent_platform._compile.plan import ToolBinding
    from agent_platform._runtime.tools import SqliteIdempotencyStore, ToolExecutor, ToolRegistry
    from agent_platform._spec.kinds import ToolSpec

    log_path, db_path, run_id, delay, barrier, hang = sys.argv[1:7]

    def create_ticket(customer_id: str, subject: str) -> dict:
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()} {customer_id}\\n")
        time.sleep(float(delay))
        return {"ticket": f"T-{os.getpid()}", "customer_id": customer_id}

    async def main() -> None:
        registry = ToolRegistry(plugin_paths=[])
        registry.register(create_ticket, name="create-ticket")
        spec = ToolSpec.model_validate({
            "description": "Open a ticket.", "python": "testing:registered", "timeout": "5s",
            "side_effects": True, "requires_approval": False, "idempotency": {"mode": "key", "ttl": "1d"},
        })
        store = SqliteIdempotencyStore(db_path)
        executor = ToolExecutor([ToolBinding("create-ticket", spec)], registry, idempotency_store=store)
        if barrier != "-":
            open(f"{barrier}.ready.{os.getpid()}", "w").close()
            while not os.path.exists(barrier):
                time.sleep(0.005)
        result = await executor.call(
            "create-ticket", {"customer_id": "c-42", "subject": "Broken"}, run_id=run_id
        )
        print(json.dumps({
            "output": result.output, "from_store": result.from_idempotency_store,
            "error": None if result.error is None else result.error.message,
        }), flush=True)
        if hang == "hang":
            time.sleep(60)

    asyncio.run(main())
    """
)


def _start(tmp_path: Path, run_id: str, *, delay: float = 0.0, barrier: str = "-", hang: bool = False) -> Any:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), str(REPO)])}
    argv = [
        sys.executable,
        str(script),
        str(tmp_path / "executions.log"),
        str(tmp_path / "idem.sqlite3"),
        run_id,
        str(delay),
        barrier,
        "hang" if hang else "-",
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(process: Any) -> dict[str, Any]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_key_idempotency_survives_a_process_restart(tmp_path: Path) -> None:
    first = _start(tmp_path, "run-7", hang=True)
    assert first.stdout is not None
    line = first.stdout.readline()  # the result is stored before it is printed
    first.send_signal(signal.SIGKILL)  # then the process dies abruptly
    first.wait(timeout=10)
    original = json.loads(line)
    assert original["error"] is None and not original["from_store"]

    second = _finish(_start(tmp_path, "run-7"))
    assert second["from_store"] is True
    assert second["output"] == original["output"]
    assert (tmp_path / "executions.log").read_text().count("c-42") == 1

    third = _finish(_start(tmp_path, "run-8"))  # another run is another key
    assert not third["from_store"]
    assert (tmp_path / "executions.log").read_text().count("c-42") == 2


def test_two_concurrent_processes_with_one_key_run_the_side_effect_once(tmp_path: Path) -> None:
    barrier = tmp_path / "go"
    processes = [_start(tmp_path, "run-9", delay=0.4, barrier=str(barrier)) for _ in range(2)]
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("go.ready.*"))) < 2:  # both imported and waiting at the barrier
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
        time.sleep(0.01)
    barrier.touch()
    results = [_finish(p) for p in processes]
    assert all(r["error"] is None for r in results), results
    assert results[0]["output"] == results[1]["output"]
    assert sorted(r["from_store"] for r in results) == [False, True]
    assert (tmp_path / "executions.log").read_text().count("c-42") == 1


def test_concurrent_connections_to_one_file_claim_a_key_once(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def claim(index: int) -> None:
        store = SqliteIdempotencyStore(tmp_path / "idem.sqlite3")  # its own connection
        start.wait()
        claimed = asyncio.run(store.claim("t", "k", owner=f"owner-{index}", now=now, lease_s=30, ttl_s=None))
        outcomes.append(claimed.status)
        store.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["busy"] * 7 + ["claimed"]
