"""The vector store contract (see `agent_platform/_memory/stores/base.py`): every backend passes
these tests. They run on the `store` fixture (parametrised over the backends in
tests/memory/conftest.py) with a fresh `collection` name each; `test_store_contract.py` collects
them. Vectors are small hand-made float32 arrays (8 dimensions), so no embedder is involved.

Times are whole milliseconds: a backend may store no finer, and items must round-trip exactly."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_platform._memory.items import MemoryItem, Namespace, Provenance
from agent_platform._memory.stores.base import DimensionMismatch, VectorStore, VectorStoreError

DIM = 8
NS = "tenant=acme/agent=support"
OTHER_NS = "tenant=globex/agent=support"


def now_ms() -> datetime:
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def axis(index: int) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[index] = 1.0
    return vector


def mix(*weights: float) -> np.ndarray:
    """A unit vector with these leading components."""
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(weights)] = weights
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def angled(degrees: float) -> np.ndarray:
    """A unit vector at this angle from axis 0, in the plane of axes 0 and 1."""
    radians = math.radians(degrees)
    return mix(math.cos(radians), math.sin(radians))


def rows(*vectors: np.ndarray) -> np.ndarray:
    return np.stack(vectors).astype(np.float32)


def item(namespace: str, content: str, *, id: str | None = None, **fields: Any) -> MemoryItem:
    fields.setdefault("created_at", now_ms())
    return MemoryItem.new(
        namespace=namespace,
        kind=fields.pop("kind", "fact"),
        content=content,
        provenance=Provenance(source="user", user="u-1", run_id="run-1"),
        id=id,
        **fields,
    )


async def ready(store: VectorStore, collection: str) -> None:
    await store.ensure_collection(collection, DIM)


def ids(hits: list[Any]) -> list[str]:
    return [hit.item.id for hit in hits]


# --- collections ------------------------------------------------------------------------------


async def test_ensure_collection_is_idempotent_and_refuses_other_dimensions(
    store: VectorStore, collection: str
) -> None:
    await store.ensure_collection(collection, DIM)
    await store.ensure_collection(collection, DIM)
    with pytest.raises(DimensionMismatch) as raised:
        await store.ensure_collection(collection, DIM * 2)
    assert raised.value.backend == store.backend
    assert raised.value.collection == collection
    assert raised.value.operation is not None
    infos = [info for info in await store.collections() if info.name == collection]
    assert [(info.dimensions, info.items, info.namespaces) for info in infos] == [(DIM, 0, 0)]


async def test_vectors_of_other_dimensions_are_refused(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    with pytest.raises(DimensionMismatch):
        await store.upsert(collection, [item(NS, "too long")], np.ones((1, DIM * 2), dtype=np.float32))
    with pytest.raises(DimensionMismatch):
        await store.search(collection, namespace=NS, vector=np.ones(DIM - 1, dtype=np.float32))
    assert await store.list_items(collection) == []


async def test_drop_collection(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    await store.upsert(collection, [item(NS, "soon gone")], rows(axis(0)))
    await store.drop_collection(collection)
    assert collection not in [info.name for info in await store.collections()]
    await store.ensure_collection(collection, 4)  # the name is free again, for other dimensions
    assert [info.dimensions for info in await store.collections() if info.name == collection] == [4]


async def test_collections_count_items_and_namespaces(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    await store.upsert(
        collection,
        [item(NS, "one"), item(NS, "two"), item(OTHER_NS, "three")],
        rows(axis(0), axis(1), axis(2)),
    )
    infos = [info for info in await store.collections() if info.name == collection]
    assert [(info.dimensions, info.items, info.namespaces) for info in infos] == [(DIM, 3, 2)]
    assert await store.namespaces(collection) == sorted([NS, OTHER_NS])


# --- writes ------------------------------------------------------------------------------------


async def test_upsert_acknowledges_the_items_and_get_returns_them(
    store: VectorStore, collection: str
) -> None:
    await ready(store, collection)
    items = [
        item(NS, "The customer prefers email over phone calls.", metadata={"channel": "email", "n": 1}),
        item(NS, "Refunds take five business days.", importance=0.9, trust="trusted", kind="document"),
        item(NS, "Ticket 4411 was escalated.", expires_at=now_ms() + timedelta(days=30)),
    ]
    ack = await store.upsert(collection, items, rows(axis(0), axis(1), axis(2)))
    assert ack.written == [i.id for i in items]
    assert ack.duplicates == {}
    assert await store.get(collection, [items[2].id, "no-such-id", items[0].id]) == [items[2], items[0]]
    assert await store.get(collection, []) == []


async def test_same_content_in_one_namespace_is_stored_once(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    first = item(NS, "Hello   World", id="one")
    again = item(NS, "hello world", id="two")  # equal after normalisation
    assert (await store.upsert(collection, [first], rows(axis(0)))).written == ["one"]
    ack = await store.upsert(collection, [again], rows(axis(1)))
    assert ack.written == []
    assert ack.duplicates == {"two": "one"}
    assert await store.get(collection, ["two"]) == []

    rewritten = await store.upsert(collection, [first], rows(axis(0)))  # the same item again
    assert rewritten.written == []
    assert rewritten.duplicates == {"one": "one"}

    elsewhere = item(OTHER_NS, "hello world", id="three")  # another namespace: its own copy
    assert (await store.upsert(collection, [elsewhere], rows(axis(1)))).written == ["three"]

    in_one_batch = [item(NS, "Spam and eggs", id="four"), item(NS, "spam AND  eggs", id="five")]
    ack = await store.upsert(collection, in_one_batch, rows(axis(2), axis(3)))
    assert ack.written == ["four"]
    assert ack.duplicates == {"five": "four"}
    assert sorted(i.id for i in await store.list_items(collection, namespace=NS)) == ["four", "one"]
    assert [i.id for i in await store.list_items(collection, namespace=OTHER_NS)] == ["three"]


async def test_an_item_with_an_existing_id_replaces_it(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    await store.upsert(collection, [item(NS, "The first version of the note", id="x")], rows(axis(1)))
    newer = item(NS, "A rewritten second draft", id="x", importance=0.8)
    ack = await store.upsert(collection, [newer], rows(axis(2)))
    assert ack.written == ["x"]
    assert await store.get(collection, ["x"]) == [newer]
    assert [i.id for i in await store.list_items(collection)] == ["x"]
    hits = await store.search(collection, namespace=NS, vector=axis(2), k=1)
    assert ids(hits) == ["x"]
    assert hits[0].item.content == "A rewritten second draft"
    assert await store.search(collection, namespace=NS, vector=None, text="first version", alpha=0.0) == []


async def test_one_id_in_two_namespaces_is_two_items(store: VectorStore, collection: str) -> None:
    """Ids are chosen by callers (document ids): reusing one in another namespace must neither
    overwrite nor reveal the first namespace's item."""
    await ready(store, collection)
    ours = item(NS, "Our private onboarding notes", id="doc-1")
    theirs = item(OTHER_NS, "Their replacement text", id="doc-1")
    await store.upsert(collection, [ours], rows(axis(0)))
    assert (await store.upsert(collection, [theirs], rows(axis(0)))).written == ["doc-1"]
    assert await store.list_items(collection, namespace=NS) == [ours]
    assert await store.list_items(collection, namespace=OTHER_NS) == [theirs]
    assert [hit.item for hit in await store.search(collection, namespace=NS, vector=axis(0))] == [ours]
    assert await store.delete(collection, namespace=OTHER_NS, ids=["doc-1"]) == 1
    assert await store.list_items(collection) == [ours]


async def test_delete_by_ids_by_namespace_and_neither(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    mine = [item(NS, f"note {n}", id=f"a{n}") for n in range(3)]
    theirs = item(OTHER_NS, "their note", id="b0")
    await store.upsert(collection, [*mine, theirs], rows(axis(0), axis(1), axis(2), axis(3)))
    assert await store.delete(collection, ids=["a0"]) == 1
    assert await store.delete(collection, ids=["a1"], namespace=OTHER_NS) == 0  # not in that namespace
    assert await store.delete(collection, ids=["missing"]) == 0
    assert await store.delete(collection, namespace=NS) == 2
    assert await store.list_items(collection, namespace=NS) == []
    assert [i.id for i in await store.list_items(collection)] == ["b0"]
    with pytest.raises(ValueError):
        await store.delete(collection)


# --- reads -------------------------------------------------------------------------------------


async def test_list_items_newest_first_then_by_id_and_paged(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    start = now_ms() - timedelta(hours=1)
    items = [item(NS, f"entry {n}", id=f"e{n}", created_at=start + timedelta(minutes=n)) for n in range(5)]
    tied = [
        item(NS, f"tied {name}", id=name, created_at=start + timedelta(minutes=2)) for name in ("t-b", "t-a")
    ]
    other = item(OTHER_NS, "elsewhere", id="o", created_at=start + timedelta(minutes=10))
    everything = [*items, *tied, other]
    await store.upsert(collection, everything, rows(*(angled(n * 10) for n in range(len(everything)))))

    expected = ["e4", "e3", "e2", "t-a", "t-b", "e1", "e0"]
    assert [i.id for i in await store.list_items(collection, namespace=NS)] == expected
    pages = [
        await store.list_items(collection, namespace=NS, limit=3, offset=offset) for offset in (0, 3, 6, 9)
    ]
    assert [[i.id for i in page] for page in pages] == [expected[:3], expected[3:6], expected[6:], []]
    assert [i.id for i in await store.list_items(collection)] == ["o", *expected]
    assert await store.namespaces(collection) == sorted([NS, OTHER_NS])


async def test_hits_come_best_first_and_at_most_k(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    angles = [50, 0, 30, 10, 40, 20]
    items = [item(NS, f"angle {a}", id=f"deg{a}") for a in angles]
    await store.upsert(collection, items, rows(*(angled(a) for a in angles)))

    hits = await store.search(collection, namespace=NS, vector=axis(0), k=3)
    assert ids(hits) == ["deg0", "deg10", "deg20"]
    hits = await store.search(collection, namespace=NS, vector=axis(0), k=10)
    assert ids(hits) == ["deg0", "deg10", "deg20", "deg30", "deg40", "deg50"]
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= score <= 1.0 for score in scores)
    for hit, degrees in zip(hits, [0, 10, 20, 30, 40, 50], strict=True):
        assert hit.vector_score == pytest.approx(math.cos(math.radians(degrees)), abs=1e-4)
        assert hit.score == pytest.approx(hit.vector_score, abs=1e-4)  # pure vector: the similarity
    assert ids(await store.search(collection, namespace=NS, vector=axis(0), k=1)) == ["deg0"]


async def test_hybrid_search_weighs_keywords_against_vectors(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    keyword = item(NS, "Invoice INV-7731 was refunded to the customer on Friday", id="keyword")
    semantic = item(NS, "A cheerful note about growing tomatoes in the garden", id="semantic")
    fillers = [item(NS, f"Unrelated filler number {n} about weather", id=f"filler{n}") for n in range(4)]
    vectors = rows(axis(5), mix(1.0, 0.05), *(mix(1.0, 0.5 + n, 0.3) for n in range(4)))
    await store.upsert(collection, [keyword, semantic, *fillers], vectors)
    query = axis(0)  # close to `semantic`, orthogonal to `keyword`

    text_only = await store.search(collection, namespace=NS, vector=None, text="refunded invoice", alpha=0.0)
    assert ids(text_only)[:1] == ["keyword"]
    assert "semantic" not in ids(text_only)
    text_only = await store.search(collection, namespace=NS, vector=query, text="refunded invoice", alpha=0.0)
    assert ids(text_only)[:1] == ["keyword"]

    hybrid = await store.search(
        collection, namespace=NS, vector=query, text="refunded invoice", alpha=0.5, k=3
    )
    assert "keyword" in ids(hybrid) and "semantic" in ids(hybrid)
    assert all(0.0 <= hit.score <= 1.0 for hit in hybrid)
    assert [hit.score for hit in hybrid] == sorted((hit.score for hit in hybrid), reverse=True)

    vector_only = await store.search(
        collection, namespace=NS, vector=query, text="refunded invoice", alpha=1.0, k=1
    )
    assert ids(vector_only) == ["semantic"]


async def test_metadata_filters_are_equality_on_top_level_keys(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    items = [
        item(NS, "billing in english", id="en-billing", metadata={"lang": "en", "topic": "billing"}),
        item(NS, "billing in german", id="de-billing", metadata={"lang": "de", "topic": "billing"}),
        item(
            NS, "shipping in english", id="en-shipping", metadata={"lang": "en", "topic": "shipping", "n": 3}
        ),
        item(NS, "no metadata", id="bare"),
    ]
    await store.upsert(collection, items, rows(mix(1, 0.1), mix(1, 0.2), mix(1, 0.3), mix(1, 0.4)))

    async def found(filters: dict[str, Any]) -> list[str]:
        return sorted(
            ids(await store.search(collection, namespace=NS, vector=axis(0), k=10, filters=filters))
        )

    assert await found({"lang": "en"}) == ["en-billing", "en-shipping"]
    assert await found({"lang": "en", "topic": "billing"}) == ["en-billing"]
    assert await found({"n": 3}) == ["en-shipping"]
    assert await found({"lang": "fr"}) == []
    assert await found({}) == ["bare", "de-billing", "en-billing", "en-shipping"]


async def test_expired_items_are_never_returned_and_are_purged(store: VectorStore, collection: str) -> None:
    await ready(store, collection)
    now = now_ms()
    expired = item(NS, "expired memo about the launch", id="expired", expires_at=now - timedelta(hours=1))
    at_now = item(NS, "memo expiring right now", id="at-now", expires_at=now)
    fresh = item(NS, "fresh memo about the launch", id="fresh", expires_at=now + timedelta(hours=1))
    lasting = item(NS, "lasting memo about the launch", id="lasting")
    await store.upsert(
        collection, [expired, at_now, fresh, lasting], rows(axis(0), mix(1, 0.1), axis(1), axis(2))
    )

    for alpha in (1.0, 0.5, 0.0):
        hits = await store.search(
            collection, namespace=NS, vector=axis(0), text="memo launch", k=10, alpha=alpha, now=now
        )
        assert sorted(ids(hits)) == ["fresh", "lasting"], alpha
    earlier = await store.search(collection, namespace=NS, vector=axis(0), k=10, now=now - timedelta(hours=2))
    assert sorted(ids(earlier)) == ["at-now", "expired", "fresh", "lasting"]
    later = await store.search(collection, namespace=NS, vector=axis(0), k=10, now=now + timedelta(hours=2))
    assert ids(later) == ["lasting"]

    assert await store.purge_expired(collection, now) == 2
    assert await store.get(collection, ["expired", "at-now", "fresh", "lasting"]) == [fresh, lasting]
    assert await store.purge_expired(collection, now) == 0


# --- tenant isolation (property) -----------------------------------------------------------------

ADVERSARIAL_NAMESPACES = [
    NS,
    "tenant=acme",
    "tenant=acme/agent=support/",
    "tenant=Acme/agent=support",
    "tenant=acme/agent=support ",
    " tenant=acme/agent=support",
    "tenant=acme/agent=suppor",
    "tenant=acme/agent=support%",
    "tenant=%/agent=%",
    "%",
    "_",
    "*",
    "_shared",
    "tenant=acme' OR '1'='1",
    "tenant=acme\\",
    "tenant=acmé/agent=support",
]
_part = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.@:-]{0,12}\Z")
namespaces = (
    st.sampled_from(ADVERSARIAL_NAMESPACES)
    | st.builds(lambda tenant, agent: Namespace(tenant=tenant, agent=agent).key(), _part, st.none() | _part)
    | st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=24)
)
contents = st.sampled_from(
    ["The customer's card ends in 4242", "password reset link sent", "refund", "%", "' OR 1=1 --"]
) | st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=60).filter(str.strip)
directions = st.lists(st.floats(-1.0, 1.0, width=32), min_size=DIM, max_size=DIM).filter(
    lambda values: float(np.linalg.norm(values)) > 0.1
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    pair=st.tuples(namespaces, namespaces).filter(lambda pair: pair[0] != pair[1]),
    content=contents,
    direction=directions,
    attacker_writes=st.booleans(),
)
async def test_a_search_never_returns_another_namespaces_items(
    store: VectorStore,
    collection: str,
    pair: tuple[str, str],
    content: str,
    direction: list[float],
    attacker_writes: bool,
) -> None:
    victim, attacker = pair
    await ready(store, collection)
    secret = np.asarray(direction, dtype=np.float32)
    secret /= np.linalg.norm(secret)
    stored = item(victim, content)
    await store.upsert(collection, [stored], rows(secret))
    if attacker_writes:
        own = item(attacker, f"attacker note {uuid.uuid4().hex}")
        await store.upsert(collection, [own], rows(-secret))
    probe = (secret + np.float32(1e-3) * axis(0)).astype(np.float32)  # near-identical vector

    for alpha in (1.0, 0.5, 0.0):
        hits = await store.search(
            collection, namespace=attacker, vector=probe, text=content, k=50, alpha=alpha
        )
        assert all(hit.item.namespace == attacker for hit in hits), (victim, attacker, alpha)
        assert stored.id not in ids(hits)
    # The same query in the victim's namespace does find it: the isolation, not the query, hid it.
    assert stored.id in ids(await store.search(collection, namespace=victim, vector=probe, k=50))


# --- errors ------------------------------------------------------------------------------------


async def test_failures_are_store_errors_naming_backend_collection_and_operation(
    store: VectorStore, collection: str
) -> None:
    await ready(store, collection)
    with pytest.raises(VectorStoreError) as raised:
        await store.search(collection, namespace=NS, vector=np.ones(DIM + 3, dtype=np.float32))
    error = raised.value
    assert (error.backend, error.collection, error.operation) == (store.backend, collection, "search")
    assert store.backend in str(error) and collection in str(error)
