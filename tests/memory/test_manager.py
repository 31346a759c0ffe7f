"""The memory manager on a real embedded pgvector server and the real local embedder:
ranking (recall@5 on a hand-labelled set), de-duplication, budget fitting, namespaces and tenant
isolation, retention, forgetting, and persistence across a restart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.memory.labelled import DOCUMENTS, QUERIES

from agent_platform._memory.items import Provenance
from agent_platform._memory.manager import MemoryEntry, MemoryManager, MemoryUsageError
from agent_platform._memory.registry import MemoryRegistry
from agent_platform._spec.kinds import MemorySpec

DAY = 86400.0


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def memory_spec(url: str, **overrides: Any) -> MemorySpec:
    """A Memory spec with both layers, each in a fresh collection of the test server."""
    tag = uuid.uuid4().hex[:10]
    layer = {"store": {"backend": "pgvector", "url": url}, "min_score": 0.0}
    spec: dict[str, Any] = {
        "knowledge": {
            **layer,
            "store": {**layer["store"], "collection": f"k-{tag}"},
            "namespace_by": ["tenant"],
        },
        "episodic": {**layer, "store": {**layer["store"], "collection": f"e-{tag}"}},
    }
    for key, value in overrides.items():
        if key in ("knowledge", "episodic") and value is not None:
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return MemorySpec.model_validate({k: v for k, v in spec.items() if v is not None})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def registry(pg_url: str, clock: FakeClock) -> Iterator[MemoryRegistry]:  # type: ignore[misc]
    registry = MemoryRegistry({}, clock=clock)
    yield registry
    await registry.close()


def manager_for(registry: MemoryRegistry, spec: MemorySpec, name: str = "mem") -> MemoryManager:
    registry.specs[name] = spec
    return registry.manager(name)


def doc(content: str, id: str | None = None, **fields: Any) -> MemoryEntry:
    return MemoryEntry(
        content=content,
        kind="document",
        provenance=Provenance(source="pipeline", pipeline="ingest"),
        id=id,
        **fields,
    )


async def test_ranking_recall_at_5_on_the_hand_labelled_set(pg_url: str, registry: MemoryRegistry) -> None:
    manager = manager_for(
        registry, memory_spec(pg_url, episodic=None, ranking={"recency": 0, "importance": 0})
    )
    await manager.write("knowledge", [doc(text, id=key) for key, text in DOCUMENTS.items()])
    recalls = []
    for query, relevant in QUERIES.items():
        context = await manager.get_context(query, 10_000, layers=["knowledge"])
        found = {c.item.id for c in context.items[:5]}
        recalls.append(len(found & relevant) / len(relevant))
        assert context.items[0].item.id in relevant, (query, [c.item.id for c in context.items])
    recall_at_5 = sum(recalls) / len(recalls)
    print(f"recall@5 on {len(QUERIES)} hand-labelled queries: {recall_at_5:.2f}")
    assert recall_at_5 >= 0.9


async def test_scores_multiply_relevance_recency_and_importance(
    pg_url: str, registry: MemoryRegistry, clock: FakeClock
) -> None:
    spec = memory_spec(
        pg_url,
        episodic=None,
        ranking={"relevance": 1, "recency": 1, "importance": 1, "recency_half_life": "1d"},
    )
    manager = manager_for(registry, spec)
    old = doc("Retry transient errors with exponential backoff.", id="old", importance=0.5)
    await manager.write("knowledge", [old])
    clock.now += 2 * DAY  # two half-lives later
    new = doc("Retry transient failures using exponential backoff and jitter.", id="new", importance=0.5)
    await manager.write("knowledge", [new])
    context = await manager.get_context("exponential backoff retries", 10_000)
    by_id = {c.item.id: c for c in context.items}
    assert by_id["new"].recency == pytest.approx(1.0)
    assert by_id["old"].recency == pytest.approx(0.25)
    for c in context.items:
        assert c.score == pytest.approx(c.relevance * c.recency * c.importance, rel=1e-6)
    assert [c.item.id for c in context.items] == ["new", "old"]

    # With recency ignored, the better match wins whatever its age.
    flat = manager_for(
        registry,
        spec.model_copy(update={"ranking": spec.ranking.model_copy(update={"recency": 0.0})}),
        "flat",
    )
    flat_context = await flat.get_context("Retry transient errors with exponential backoff.", 10_000)
    assert flat_context.items[0].item.id == "old"


async def test_importance_breaks_ties_between_equally_relevant_items(
    pg_url: str, registry: MemoryRegistry
) -> None:
    manager = manager_for(registry, memory_spec(pg_url, ranking={"recency": 0}))
    await manager.write(
        "knowledge", [doc("Deploy on Fridays only with a rollback plan.", id="low", importance=0.1)]
    )
    await manager.write(
        "episodic",
        [
            MemoryEntry(
                "DEPLOY on fridays only  with a rollback plan.",
                "fact",
                Provenance(source="user"),
                importance=0.9,
            )
        ],
        agent="ops",
    )
    context = await manager.get_context("deploy on friday rollback", 10_000, agent="ops")
    assert [c.layer for c in context.items] == ["episodic"]  # same content: one copy, the better one
    assert context.duplicates == 1


async def test_duplicates_of_the_working_snapshot_are_not_recalled(
    pg_url: str, registry: MemoryRegistry
) -> None:
    manager = manager_for(registry, memory_spec(pg_url, episodic=None))
    await manager.write(
        "knowledge",
        [
            doc("The VPN password rotates monthly.", id="a"),
            doc("Laptops are replaced every 3 years.", id="b"),
        ],
    )
    context = await manager.get_context(
        "vpn password laptops", 10_000, working=["the  VPN password ROTATES monthly."]
    )
    assert [c.item.id for c in context.items] == ["b"]
    assert context.duplicates == 1


async def test_the_same_content_written_twice_is_stored_once(pg_url: str, registry: MemoryRegistry) -> None:
    manager = manager_for(registry, memory_spec(pg_url, episodic=None))
    first = await manager.write("knowledge", [doc("Backups run nightly at 02:00.")])
    again = await manager.write("knowledge", [doc("backups  run NIGHTLY at 02:00.")])
    assert len(first.written) == 1 and not again.written and len(again.duplicates) == 1
    assert len(await manager.list_items("knowledge")) == 1


async def test_results_fit_the_token_budget_skipping_what_does_not_fit(
    pg_url: str, registry: MemoryRegistry
) -> None:
    manager = manager_for(
        registry, memory_spec(pg_url, episodic=None, ranking={"recency": 0, "importance": 0})
    )
    long = "Kubernetes pods restart when the liveness probe fails. " * 20  # ~280 tokens
    await manager.write(
        "knowledge",
        [doc(long, id="long"), doc("Pods restart when their liveness probe fails.", id="short")],
    )
    wide = await manager.get_context("why do pods restart liveness probe", 10_000)
    assert {c.item.id for c in wide.items} == {"long", "short"}
    tight = await manager.get_context("why do pods restart liveness probe", 60)
    assert [c.item.id for c in tight.items] == ["short"]
    assert tight.tokens_used <= 60 and tight.over_budget == 1
    assert (await manager.get_context("pods", 0)).items == []


async def test_min_score_drops_weak_matches(pg_url: str, registry: MemoryRegistry) -> None:
    manager = manager_for(registry, memory_spec(pg_url, episodic=None, knowledge={"min_score": 0.5}))
    await manager.write("knowledge", [doc(text, id=key) for key, text in DOCUMENTS.items()])
    context = await manager.get_context("how to cook spaghetti", 10_000)
    assert [c.item.id for c in context.items] == ["cooking-pasta"]
    assert context.below_min_score > 0


async def test_tenants_never_see_each_others_items(pg_url: str, registry: MemoryRegistry) -> None:
    manager = manager_for(registry, memory_spec(pg_url))
    secret = "Acme's merger with Globex closes on 3 March; do not disclose."
    await manager.write("knowledge", [doc(secret)], tenant="acme")
    await manager.write(
        "episodic",
        [MemoryEntry(secret, "fact", Provenance(source="user", user="ceo"))],
        agent="advisor",
        tenant="acme",
    )
    for query in (secret, "Acme merger Globex", "what does acme plan", "tenant=acme"):
        for agent in ("advisor", "other"):
            context = await manager.get_context(query, 10_000, agent=agent, tenant="initech")
            assert context.items == [], (query, agent)
    mine = await manager.get_context("Acme merger", 10_000, agent="advisor", tenant="acme")
    assert len(mine.items) == 1 and mine.duplicates == 1  # the same text in both layers: shown once
    # The agent part isolates episodic memory between agents of one tenant; knowledge is shared.
    other_agent = await manager.get_context("Acme merger", 10_000, agent="other", tenant="acme")
    assert {c.layer for c in other_agent.items} == {"knowledge"}


async def test_a_layer_namespaced_by_agent_needs_the_agent(pg_url: str, registry: MemoryRegistry) -> None:
    manager = manager_for(registry, memory_spec(pg_url))
    with pytest.raises(MemoryUsageError, match="namespaced by agent"):
        await manager.write("episodic", [MemoryEntry("x", "fact", Provenance(source="user"))])
    with pytest.raises(MemoryUsageError, match="has no knowledge layer"):
        manager_for(registry, memory_spec(pg_url, knowledge=None), "epi").layer_spec("knowledge")


async def test_retention_hides_expired_items_and_purge_deletes_them(
    pg_url: str, registry: MemoryRegistry, clock: FakeClock
) -> None:
    manager = manager_for(registry, memory_spec(pg_url, episodic=None, knowledge={"retention": "7d"}))
    await manager.write("knowledge", [doc("The office closes at 6pm on Fridays.", id="hours")])
    item = (await manager.list_items("knowledge"))[0]
    assert item.expires_at == datetime.fromtimestamp(clock.now + 7 * DAY, UTC)
    assert (await manager.get_context("office hours friday", 10_000)).items
    clock.now += 8 * DAY
    assert (await manager.get_context("office hours friday", 10_000)).items == []
    assert await manager.purge_expired() == 1
    assert await manager.list_items("knowledge") == []


async def test_forget_a_tenant_across_agents_and_layers(pg_url: str, registry: MemoryRegistry) -> None:
    manager = manager_for(registry, memory_spec(pg_url))
    fact = MemoryEntry("Customer prefers e-mail contact.", "fact", Provenance(source="user"))
    for tenant in ("acme", "initech"):
        await manager.write("knowledge", [doc(f"{tenant} contract renews in June.")], tenant=tenant)
        for agent in ("support", "sales"):
            await manager.write("episodic", [fact], agent=agent, tenant=tenant)
    assert await manager.forget(tenant="acme") == 3
    for layer in ("episodic", "knowledge"):
        assert all("acme" not in ns for ns in await manager.namespaces(layer))
    assert len(await manager.list_items("episodic")) == 2
    assert await manager.forget(agent="sales") == 1
    with pytest.raises(MemoryUsageError, match="forget needs"):
        await manager.forget()


async def test_forget_items_by_id(pg_url: str, registry: MemoryRegistry) -> None:
    manager = manager_for(registry, memory_spec(pg_url, episodic=None))
    ack = await manager.write("knowledge", [doc("one thing"), doc("another thing")])
    assert await manager.forget(ids=[ack.written[0]]) == 1
    assert [i.id for i in await manager.list_items("knowledge")] == [ack.written[1]]


async def test_episodes_survive_a_restart_of_the_runtime_and_the_server(
    pg_url: str, pg_state_dir: Path, clock: FakeClock
) -> None:
    from agent_platform._memory.stores.embedded import ensure_embedded_server, stop_embedded_server

    spec = memory_spec(pg_url)
    first = MemoryRegistry({"mem": spec}, clock=clock)
    await first.manager("mem").record_episode(
        agent="researcher",
        run_id="run-1",
        task="Compare retry libraries",
        outcome="completed",
        summary="tenacity",
    )
    await first.close()
    assert stop_embedded_server(pg_state_dir)
    assert ensure_embedded_server(pg_state_dir) == pg_url
    second = MemoryRegistry({"mem": spec}, clock=clock)
    try:
        context = await second.manager("mem").get_context("retry libraries", 10_000, agent="researcher")
        assert [c.item.provenance.run_id for c in context.items] == ["run-1"]
        assert "Outcome: completed" in context.items[0].item.content
    finally:
        await second.close()
