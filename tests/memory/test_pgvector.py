"""pgvector-specific behaviour: the embedded server's life cycle (start, reuse, stop, restart with
the data kept, several processes starting it together), concurrent writers (processes and
coroutines), and the errors: unreachable server (password never shown), invalid collection names,
statement timeouts, a server that cannot start."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from tests.memory.contract import DIM, axis, item, rows
from tests.memory.workers import start_and_write
from tests.support.dsn import DSN_FORMS, PASSWORDS, dsn_with

from agent_platform._memory.items import MemoryItem, Provenance
from agent_platform._memory.stores import (
    InvalidStoreUrl,
    StoreTimeout,
    StoreUnavailable,
    VectorStoreError,
    open_vector_store,
)
from agent_platform._memory.stores.embedded import (
    data_dir,
    embedded_server_url,
    ensure_embedded_server,
    stop_embedded_server,
)
from agent_platform._memory.stores.pgvector import PgVectorStore, table_name

NS = "tenant=acme"


def fresh_name() -> str:
    return f"pg-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def fresh_state_dir() -> Iterator[Path]:
    """A state directory of its own (its own server), stopped and removed afterwards."""
    state_dir = Path(tempfile.mkdtemp(prefix="memory-pg-own-"))
    try:
        yield state_dir
    finally:
        try:
            stop_embedded_server(state_dir)
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)


async def test_items_survive_a_restart_of_the_embedded_server(pg_url: str, pg_state_dir: Path) -> None:
    name = fresh_name()
    items = [item(NS, f"remember this {n}") for n in range(3)]
    async with PgVectorStore(pg_url) as store:
        await store.ensure_collection(name, DIM)
        await store.upsert(name, items, rows(axis(0), axis(1), axis(2)))
    survivor = PgVectorStore(pg_url)  # open across the restart: must reconnect by itself
    try:
        assert len(await survivor.get(name, [items[0].id])) == 1

        started = time.monotonic()
        assert stop_embedded_server(pg_state_dir) is True
        assert time.monotonic() - started < 10
        assert embedded_server_url(pg_state_dir) is None
        assert ensure_embedded_server(pg_state_dir) == pg_url  # same data, same socket: same URL

        async with PgVectorStore(pg_url) as store:
            assert await store.get(name, [i.id for i in items]) == items
            hits = await store.search(name, namespace=NS, vector=axis(1), k=1)
            assert [hit.item.id for hit in hits] == [items[1].id]
        assert await survivor.get(name, [items[2].id]) == [items[2]]
    finally:
        await survivor.close()


def test_processes_start_one_server_together_and_lose_no_writes(fresh_state_dir: Path) -> None:
    """4 processes race to start the server of a new state directory, to create one collection,
    and write 250 items each into it: one server, one URL, exactly 1000 items."""
    name = fresh_name()
    workers = 4
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        urls = list(
            pool.map(
                start_and_write,
                [str(fresh_state_dir)] * workers,
                [name] * workers,
                range(workers),
                [250] * workers,
                [50] * workers,
            )
        )
    assert len(set(urls)) == 1
    url = urls[0]
    assert embedded_server_url(fresh_state_dir) == url
    assert ensure_embedded_server(fresh_state_dir) == url  # reused, not started again

    async def count() -> tuple[int, int, int]:
        async with PgVectorStore(url) as store:
            [info] = [info for info in await store.collections() if info.name == name]
            listed = await store.list_items(name, limit=5000)
            return info.items, info.namespaces, len({i.id for i in listed})

    assert asyncio.run(count()) == (1000, 2, 1000)
    assert stop_embedded_server(fresh_state_dir) is True
    assert stop_embedded_server(fresh_state_dir) is False
    assert embedded_server_url(fresh_state_dir) is None


async def test_concurrent_upserts_in_one_process(pg_url: str) -> None:
    name = fresh_name()
    async with PgVectorStore(pg_url) as store:
        await store.ensure_collection(name, DIM)
        rng = np.random.default_rng(7)

        async def write(writer: int) -> list[str]:
            items = [item(f"tenant=t{writer}", f"writer {writer} note {n}") for n in range(10)]
            ack = await store.upsert(name, items, rng.normal(size=(10, DIM)).astype(np.float32))
            assert ack.duplicates == {}
            return ack.written

        written = await asyncio.gather(*(write(writer) for writer in range(20)))
        assert sum(len(ids) for ids in written) == 200
        [info] = [info for info in await store.collections() if info.name == name]
        assert (info.items, info.namespaces) == (200, 20)


async def test_the_same_content_written_concurrently_is_stored_once(pg_url: str) -> None:
    """Racing writers of one content under different ids: the unique index settles it, the
    losers are told which id holds the content."""
    name = fresh_name()
    async with PgVectorStore(pg_url, pool_size=4) as store:
        await store.ensure_collection(name, DIM)
        acks = await asyncio.gather(
            *(
                store.upsert(name, [item(NS, "one shared fact", id=f"writer-{n}")], rows(axis(0)))
                for n in range(8)
            )
        )
        winners = [ack.written[0] for ack in acks if ack.written]
        assert len(winners) == 1
        assert all(
            ack.duplicates == {f"writer-{n}": winners[0]} for n, ack in enumerate(acks) if not ack.written
        )
        assert [i.id for i in await store.list_items(name)] == winners


async def test_content_committed_by_another_writer_meanwhile_is_a_duplicate(pg_url: str) -> None:
    """Deterministic version of the race: another transaction holds an uncommitted row with the
    same content; our upsert waits on the unique index, fails when that commits, retries, and
    reports the committed row as the duplicate."""
    name = fresh_name()
    async with PgVectorStore(pg_url) as store:
        await store.ensure_collection(name, DIM)
        theirs = item(NS, "Raced content", id="theirs")
        with psycopg.connect(pg_url) as other:  # not autocommit: the insert stays uncommitted
            other.execute(
                f'INSERT INTO "{table_name(name)}" (id, namespace, kind, content, content_hash, importance, '
                "trust, provenance, metadata, created_at, embedding) "
                "VALUES (%s, %s, 'fact', %s, %s, 0.5, 'untrusted', %s, '{}', now(), %s)".encode(),
                (
                    theirs.id,
                    NS,
                    theirs.content,
                    theirs.content_hash,
                    '{"source": "user"}',
                    "[1,0,0,0,0,0,0,0]",
                ),
            )
            upsert = asyncio.create_task(
                store.upsert(name, [item(NS, "raced  CONTENT", id="ours")], rows(axis(1)))
            )
            await asyncio.sleep(0.3)
            assert not upsert.done()  # waiting for the other transaction
            other.commit()
            ack = await upsert
        assert ack.written == []
        assert ack.duplicates == {"ours": "theirs"}
        assert [i.id for i in await store.list_items(name)] == ["theirs"]


async def test_a_large_write_refreshes_the_planner_statistics(pg_url: str) -> None:
    """Without ANALYZE a freshly filled table looks empty to the planner, which then scans the
    namespace exactly instead of using the HNSW index."""
    name = fresh_name()
    async with PgVectorStore(pg_url) as store:
        await store.ensure_collection(name, DIM)
        items = [item(NS, f"bulk row {n}") for n in range(1000)]
        vectors = np.random.default_rng(3).normal(size=(1000, DIM)).astype(np.float32)
        await store.upsert(name, items, vectors)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT s.last_analyze IS NOT NULL, c.reltuples "
            "FROM pg_stat_user_tables s JOIN pg_class c ON s.relid = c.oid WHERE c.relname = %s",
            (table_name(name),),
        ).fetchone()
    assert row == (True, 1000.0)


async def test_a_collection_recreated_elsewhere_with_other_dimensions(pg_url: str) -> None:
    name = fresh_name()
    async with PgVectorStore(pg_url) as first, PgVectorStore(pg_url) as second:
        await first.ensure_collection(name, DIM)
        await first.upsert(name, [item(NS, "eight")], rows(axis(0)))
        await second.drop_collection(name)
        await second.ensure_collection(name, 4)
        four = np.array([[1, 0, 0, 0]], dtype=np.float32)
        assert (await first.upsert(name, [item(NS, "four")], four)).written  # its cache is refreshed
        assert [hit.item.content for hit in await first.search(name, namespace=NS, vector=four[0])] == [
            "four"
        ]


async def test_open_vector_store_without_url_uses_the_embedded_server(
    pg_url: str, pg_state_dir: Path
) -> None:
    store = open_vector_store("pgvector", None, state_dir=pg_state_dir)
    try:
        assert isinstance(store, PgVectorStore)
        assert store.location == pg_url
        assert store.backend == "pgvector"
        await store.collections()
    finally:
        await store.close()


async def test_an_unreachable_server_is_unavailable_quickly_without_the_password() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    store = PgVectorStore(f"postgresql://alice:s3cret-pw@127.0.0.1:{port}/memory")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as raised:
            await store.ensure_collection("notes", DIM)
        assert time.monotonic() - started < 5
        error = raised.value
        assert error.location == f"postgresql://alice:***@127.0.0.1:{port}/memory"
        assert (error.backend, error.collection, error.operation) == (
            "pgvector",
            "notes",
            "ensure_collection",
        )
        assert "s3cret-pw" not in str(error) and "s3cret-pw" not in repr(store)
        assert f"alice:***@127.0.0.1:{port}" in str(error)
        assert error.__cause__ is None and error.__suppress_context__  # no driver exception attached
        with pytest.raises(StoreUnavailable):
            await store.search("notes", namespace=NS, vector=axis(0))
    finally:
        await store.close()


@pytest.mark.parametrize("query", ["password=s3cret-pw", "sslmode=disable&sslpassword=s3cret-pw"])
async def test_a_password_in_the_query_is_never_shown(query: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    store = PgVectorStore(f"postgresql://alice@127.0.0.1:{port}/memory?{query}")
    try:
        assert "s3cret-pw" not in store.location and "s3cret-pw" not in repr(store)
        with pytest.raises(StoreUnavailable) as raised:
            await store.ensure_collection("notes", DIM)
        assert "s3cret-pw" not in str(raised.value) and "s3cret-pw" not in raised.value.location
    finally:
        await store.close()


@pytest.mark.parametrize(
    "dsn", ["host=db password=s3cret-pw user=alice", "host=db user=alice password='s3cret pw'"]
)
def test_a_key_value_connection_string_is_refused_without_its_password(dsn: str) -> None:
    with pytest.raises(InvalidStoreUrl, match="pgvector needs a postgresql:// URL") as raised:
        PgVectorStore(dsn)
    assert "s3cret" not in str(raised.value) and "host=db" in str(raised.value)


def store_errors(dsn: str, password: str) -> list[VectorStoreError]:
    """The store's errors for `dsn`: refused, or a driver message echoing it and its password."""
    try:
        store = PgVectorStore(dsn)
    except InvalidStoreUrl as refused:
        return [refused]
    echo = psycopg.OperationalError(f"connection to {dsn} failed: password {password} rejected")
    return [
        store._error(echo, "search", "notes"),
        InvalidStoreUrl("x", backend="pgvector", location=repr(store)),
    ]


@given(PASSWORDS, st.sampled_from(sorted(DSN_FORMS)))
def test_a_random_password_is_in_no_store_error(password: str, form: str) -> None:
    shown_for_another = " ".join(map(str, store_errors(DSN_FORMS[form]("zzzzzz"), "zzzzzz")))
    assume(password not in shown_for_another)  # else it is in the messages' own words
    for error in store_errors(dsn_with(password, form), password):
        assert password not in str(error), str(error)


def test_a_driver_message_echoing_the_password_is_redacted() -> None:
    store = PgVectorStore("postgresql://alice:s3cret-pw@127.0.0.1:1/memory")
    echoed = psycopg.OperationalError('connection to "alice:s3cret-pw@127.0.0.1" failed (s3cret-pw)')
    error = store._error(echoed, "search", "notes")
    assert isinstance(error, StoreUnavailable) and "s3cret-pw" not in str(error)


def test_only_postgresql_urls_are_accepted() -> None:
    with pytest.raises(InvalidStoreUrl):
        PgVectorStore("mysql://alice:pw@localhost/memory")


@pytest.mark.parametrize(
    "bad", ["Notes", "notes_v2", "", "a" * 64, "with space", "../etc", 'quo"te', "ünïcode"]
)
async def test_invalid_collection_names_are_refused(pg_url: str, bad: str) -> None:
    async with PgVectorStore(pg_url) as store:
        with pytest.raises(VectorStoreError, match="collection names are 1-63 characters"):
            await store.ensure_collection(bad, DIM)
        with pytest.raises(VectorStoreError):
            await store.search(bad, namespace=NS, vector=axis(0))
        with pytest.raises(VectorStoreError):
            await store.delete(bad, namespace=NS)


async def test_a_collection_never_created_is_a_clear_error(pg_url: str) -> None:
    async with PgVectorStore(pg_url) as store:
        name = fresh_name()
        with pytest.raises(VectorStoreError, match="does not exist") as raised:
            await store.search(name, namespace=NS, vector=axis(0))
        assert raised.value.collection == name
        with pytest.raises(VectorStoreError, match="does not exist"):
            await store.list_items(name)
        with pytest.raises(VectorStoreError, match="does not exist"):
            await store.upsert(name, [item(NS, "x")], rows(axis(0)))


async def test_a_statement_timeout_is_a_store_timeout(pg_url: str) -> None:
    name = fresh_name()
    async with PgVectorStore(pg_url, statement_timeout_s=0.3) as store:
        await store.ensure_collection(name, DIM)
        await store.upsert(name, [item(NS, "locked away")], rows(axis(0)))
        with psycopg.connect(pg_url, autocommit=True) as blocker, blocker.transaction():
            blocker.execute(f'LOCK TABLE "{table_name(name)}" IN ACCESS EXCLUSIVE MODE'.encode())
            with pytest.raises(StoreTimeout) as raised:
                await store.search(name, namespace=NS, vector=axis(0))
            assert raised.value.operation == "search"
            assert "statement timeout" in str(raised.value)
            with pytest.raises(StoreTimeout):
                await store.upsert(name, [item(NS, "another")], rows(axis(1)))
        # the lock is gone: the same store (and its connections) work again
        assert len(await store.search(name, namespace=NS, vector=axis(0))) == 1


async def test_get_of_an_id_used_in_several_namespaces_gives_the_newest(pg_url: str) -> None:
    name = fresh_name()
    async with PgVectorStore(pg_url) as store:
        await store.ensure_collection(name, DIM)
        older = item("tenant=acme", "acme's copy", id="doc-1", created_at=datetime(2030, 1, 1, tzinfo=UTC))
        newer = item(
            "tenant=globex", "globex's copy", id="doc-1", created_at=datetime(2030, 1, 2, tzinfo=UTC)
        )
        await store.upsert(name, [older, newer], rows(axis(0), axis(1)))
        assert await store.get(name, ["doc-1"]) == [newer]
        assert await store.delete(name, ids=["doc-1"]) == 2  # no namespace: every namespace


async def test_upsert_validates_its_input(pg_url: str) -> None:
    name = fresh_name()
    async with PgVectorStore(pg_url) as store:
        await store.ensure_collection(name, DIM)
        assert (await store.upsert(name, [], np.zeros((0, DIM), dtype=np.float32))).written == []
        with pytest.raises(ValueError, match="shape"):
            await store.upsert(name, [item(NS, "a"), item(NS, "b")], rows(axis(0)))
        with pytest.raises(VectorStoreError, match="finite"):
            await store.upsert(name, [item(NS, "nan")], np.full((1, DIM), np.nan, dtype=np.float32))
        odd = MemoryItem.new(
            namespace=NS,
            kind="fact",
            content="odd",
            provenance=Provenance(source="tool"),
            metadata={"x": {1, 2}},
        )
        with pytest.raises(VectorStoreError, match="not JSON"):
            await store.upsert(name, [odd], rows(axis(0)))
        with pytest.raises(VectorStoreError, match="at most 2000"):
            await store.ensure_collection(fresh_name(), 3072)


async def test_a_closed_store_refuses_calls(pg_url: str) -> None:
    store = PgVectorStore(pg_url)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(VectorStoreError, match="closed"):
        await store.collections()


def test_a_server_that_cannot_start_reports_its_log(fresh_state_dir: Path) -> None:
    ensure_embedded_server(fresh_state_dir)
    assert stop_embedded_server(fresh_state_dir) is True
    pgdata = data_dir(fresh_state_dir)
    with open(pgdata / "postgresql.conf", "a") as config:
        config.write("\nthis is not a setting\n")
    with pytest.raises(StoreUnavailable) as raised:
        ensure_embedded_server(fresh_state_dir)
    error = raised.value
    assert error.location == str(pgdata)
    assert error.operation == "start"
    assert "last lines of" in str(error) and "syntax error" in str(error)


def test_a_data_directory_that_is_not_a_cluster_is_refused(fresh_state_dir: Path) -> None:
    pgdata = data_dir(fresh_state_dir)
    pgdata.mkdir(parents=True)
    (pgdata / "stray.txt").write_text("not a database")
    with pytest.raises(StoreUnavailable, match="not empty") as raised:
        ensure_embedded_server(fresh_state_dir)
    assert raised.value.location == str(pgdata)
