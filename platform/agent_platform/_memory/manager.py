"""The memory manager: one Memory spec's episodic and knowledge layers behind `get_context`,
write policies, `search` and `forget`.

`get_context(query, token_budget)` is what an agent sees of its long-term memory before it starts:

1. the query is embedded once per distinct embedder;
2. each vector layer is searched (hybrid: vector and full-text) in the run's namespace for that
   layer, over-fetching so that de-duplication does not starve the result;
3. each hit's relevance is its cosine similarity to the query, raised toward 1 by full-text
   evidence: `relevance = v + (1 - v) * (1 - alpha) * t` (v: similarity clipped to [0, 1]; t: the
   store's full-text rank divided by the best one among the layer's candidates); a keyword match can only help, and `min_score` compares
   with a similarity whatever the other candidates are (a store's fused score is relative to its
   candidates, so it cannot carry a threshold). Hits under the layer's `min_score` go; items whose normalised content equals something already
   in the working snapshot, or an item already taken from another layer, go (the better-scored
   copy stays);
4. every hit is ranked by `relevance^a * recency^b * importance^c`, where recency decays by half
   every `recency_half_life` and a, b, c are the spec's `ranking` weights (a weight of 0 ignores
   that factor; a multiplicative score means an irrelevant item cannot win on recency alone);
5. items are taken best first while they fit the token budget (an item that does not fit is
   skipped, and a smaller one after it may still fit).

What is retrieved is data, not instructions: the caller (the agent loop) fences untrusted items
with the injection guard before they reach a model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from agent_platform._memory.items import (
    ItemKind,
    MemoryItem,
    Namespace,
    Provenance,
    SearchHit,
    WriteAck,
    content_hash,
)
from agent_platform._text_tokens import estimate_tokens

if TYPE_CHECKING:
    from agent_platform._memory.embedders import Embedder
    from agent_platform._memory.stores.base import Vectors, VectorStore
    from agent_platform._spec.kinds import Embedder as EmbedderSpec
    from agent_platform._spec.kinds import MemorySpec, VectorLayer
    from agent_platform._spec.kinds import VectorStore as VectorStoreSpec

LayerName = Literal["episodic", "knowledge"]
LAYERS: tuple[LayerName, ...] = ("episodic", "knowledge")
DEFAULT_TENANT = "default"
# Hybrid search weight of the vector score against full-text relevance.
HYBRID_ALPHA = 0.75
# Candidates fetched per layer for every item finally wanted: room for de-duplication and ranking.
OVERFETCH = 3


class MemoryUsageError(Exception):
    """A memory operation cannot be done as asked (unknown layer, missing namespace part)."""


@dataclass(frozen=True)
class ContextItem:
    """One retrieved item with the parts of its rank."""

    layer: LayerName
    hit: SearchHit
    relevance: float
    recency: float
    importance: float
    score: float
    tokens: int

    @property
    def item(self) -> MemoryItem:
        return self.hit.item


@dataclass
class MemoryContext:
    """What `get_context` selected, best first, and what it left out and why."""

    items: list[ContextItem] = field(default_factory=list)
    token_budget: int = 0
    tokens_used: int = 0
    candidates: int = 0
    below_min_score: int = 0
    duplicates: int = 0
    over_budget: int = 0

    def __bool__(self) -> bool:
        return bool(self.items)


StoreFactory = Callable[["VectorStoreSpec"], "VectorStore"]
EmbedderFactory = Callable[["EmbedderSpec"], "Embedder"]


@dataclass
class _Layer:
    name: LayerName
    spec: VectorLayer
    collection: str
    store: VectorStore
    embedder: Embedder
    ready: bool = False


class MemoryManager:
    """The long-term layers of one Memory spec. Stores and embedders come from factories (the
    `MemoryRegistry` shares them between memories); nothing connects until first use."""

    def __init__(
        self,
        name: str,
        spec: MemorySpec,
        *,
        store_for: StoreFactory,
        embedder_for: EmbedderFactory,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.spec = spec
        self._store_for = store_for
        self._embedder_for = embedder_for
        self._clock = clock
        self._layers: dict[LayerName, _Layer] = {}
        self._lock = asyncio.Lock()

    # --- layers -----------------------------------------------------------------------------

    def layer_names(self) -> list[LayerName]:
        return [name for name in LAYERS if getattr(self.spec, name) is not None]

    def layer_spec(self, layer: LayerName) -> VectorLayer:
        spec: VectorLayer | None = getattr(self.spec, layer)
        if spec is None:
            have = ", ".join(self.layer_names()) or "no vector layer"
            raise MemoryUsageError(f"memory '{self.name}' has no {layer} layer (it has {have})")
        return spec

    def collection(self, layer: LayerName) -> str:
        spec = self.layer_spec(layer)
        return spec.store.collection or f"{self.name}-{layer}"

    async def _layer(self, layer: LayerName) -> _Layer:
        found = self._layers.get(layer)
        if found is not None and found.ready:
            return found
        async with self._lock:
            found = self._layers.get(layer)
            if found is None:
                spec = self.layer_spec(layer)
                found = _Layer(
                    layer,
                    spec,
                    self.collection(layer),
                    self._store_for(spec.store),
                    self._embedder_for(spec.embedder),
                )
                self._layers[layer] = found
            if not found.ready:
                await found.store.ensure_collection(found.collection, found.embedder.dimensions)
                found.ready = True
            return found

    async def warm_up(self) -> None:
        """Does now what the first run would otherwise wait for: connect to the stores, create
        the collections, load the embedders' models."""
        for name in self.layer_names():
            layer = await self._layer(name)
            await layer.embedder.warm_up()

    def ready_layers(self) -> list[LayerName]:
        return [name for name, layer in self._layers.items() if layer.ready]

    def namespace(self, layer: LayerName, *, agent: str | None = None, tenant: str | None = None) -> str:
        """The namespace key of `layer` for a run of `agent` for `tenant`, after the layer's
        `namespace_by` (a part not in it is shared; a run without a tenant is tenant 'default')."""
        by = self.layer_spec(layer).namespace_by
        if "agent" in by and agent is None:
            raise MemoryUsageError(
                f"memory '{self.name}' {layer} is namespaced by agent: name the agent to read or write it"
            )
        return Namespace(
            agent=agent if "agent" in by else None,
            tenant=(tenant or DEFAULT_TENANT) if "tenant" in by else None,
        ).key()

    def _expiry(self, spec: VectorLayer, now: float) -> datetime | None:
        if spec.retention is None:
            return None
        return datetime.fromtimestamp(now, UTC) + timedelta(seconds=spec.retention)

    # --- reading ----------------------------------------------------------------------------

    async def _embed_query(self, layers: Sequence[_Layer], query: str) -> dict[int, Vectors]:
        """The query's vector per embedder (layers sharing one embedder share the vector)."""
        vectors: dict[int, Vectors] = {}
        for layer in layers:
            key = id(layer.embedder)
            if key not in vectors:
                vectors[key] = (await layer.embedder.embed([query]))[0]
        return vectors

    async def get_context(
        self,
        query: str,
        token_budget: int,
        *,
        agent: str | None = None,
        tenant: str | None = None,
        working: Sequence[str] = (),
        layers: Sequence[LayerName] | None = None,
    ) -> MemoryContext:
        """The items most worth showing for `query`, ranked and fitted into `token_budget` tokens
        (counted on each item's content)."""
        context = MemoryContext(token_budget=token_budget)
        wanted = [name for name in (layers or self.layer_names()) if name in self.layer_names()]
        if not wanted or token_budget <= 0 or not query.strip():
            return context
        opened = [await self._layer(name) for name in wanted]
        queries = await self._embed_query(opened, query)
        now = self._clock()
        now_dt = datetime.fromtimestamp(now, UTC)

        async def fetch(layer: _Layer) -> tuple[_Layer, list[SearchHit]]:
            hits = await layer.store.search(
                layer.collection,
                namespace=self.namespace(layer.name, agent=agent, tenant=tenant),
                vector=queries[id(layer.embedder)],
                text=query,
                k=layer.spec.top_k * OVERFETCH,
                alpha=HYBRID_ALPHA,
                now=now_dt,
            )
            return layer, hits

        results = await asyncio.gather(*(fetch(layer) for layer in opened))
        seen = {content_hash(text) for text in working}
        ranking = self.spec.ranking
        half_life = max(ranking.recency_half_life, 1.0)
        scored: list[ContextItem] = []
        for layer, hits in results:
            best_text = max((hit.text_score or 0.0 for hit in hits), default=0.0)
            for hit in hits:
                context.candidates += 1
                relevance = relevance_of(hit, best_text)
                if relevance < layer.spec.min_score:
                    context.below_min_score += 1
                    continue
                age = max(0.0, now - hit.item.created_at.timestamp())
                recency = 0.5 ** (age / half_life)
                score = _weighted_product(
                    (relevance, ranking.relevance),
                    (recency, ranking.recency),
                    (hit.item.importance, ranking.importance),
                )
                scored.append(
                    ContextItem(
                        layer.name,
                        hit,
                        relevance,
                        recency,
                        hit.item.importance,
                        score,
                        max(1, estimate_tokens(hit.item.content)),
                    )
                )
        scored.sort(key=lambda c: (-c.score, c.item.id))
        per_layer: dict[LayerName, int] = {}
        top_k = {layer.name: layer.spec.top_k for layer in opened}
        for candidate in scored:
            digest = candidate.item.content_hash
            if digest in seen:
                context.duplicates += 1
                continue
            if per_layer.get(candidate.layer, 0) >= top_k[candidate.layer]:
                continue
            if context.tokens_used + candidate.tokens > token_budget:
                context.over_budget += 1
                continue
            seen.add(digest)
            per_layer[candidate.layer] = per_layer.get(candidate.layer, 0) + 1
            context.items.append(candidate)
            context.tokens_used += candidate.tokens
        return context

    # --- writing ----------------------------------------------------------------------------

    async def write(
        self,
        layer: LayerName,
        entries: Sequence[MemoryEntry],
        *,
        agent: str | None = None,
        tenant: str | None = None,
    ) -> WriteAck:
        """Embeds and stores `entries` in the run's namespace of `layer`. Returns once the store
        has them."""
        if not entries:
            return WriteAck()
        found = await self._layer(layer)
        namespace = self.namespace(layer, agent=agent, tenant=tenant)
        now = self._clock()
        created = datetime.fromtimestamp(now, UTC)
        expires = self._expiry(found.spec, now)
        items = [
            MemoryItem.new(
                namespace=namespace,
                kind=entry.kind,
                content=entry.content,
                provenance=entry.provenance,
                id=entry.id,
                importance=entry.importance,
                trust=entry.trust or found.spec.trust,
                metadata=dict(entry.metadata),
                created_at=created,
                expires_at=expires,
            )
            for entry in entries
        ]
        vectors = await found.embedder.embed([item.content for item in items])
        return await found.store.upsert(found.collection, items, np.asarray(vectors, dtype=np.float32))

    async def record_episode(
        self,
        *,
        agent: str,
        run_id: str,
        task: str,
        outcome: str,
        summary: str,
        tenant: str | None = None,
        user: str | None = None,
        importance: float | None = None,
    ) -> WriteAck:
        """The episode of a finished run: what was asked, how it ended, what came of it."""
        content = f"Task: {task.strip()}\nOutcome: {outcome}\nResult: {summary.strip()}"
        entry = MemoryEntry(
            content=_clip(content, EPISODE_MAX_CHARS),
            kind="episode",
            importance=importance if importance is not None else (0.5 if outcome == "completed" else 0.7),
            provenance=Provenance(source="agent", agent=agent, run_id=run_id, user=user),
            metadata={"outcome": outcome, "run_id": run_id},
        )
        return await self.write("episodic", [entry], agent=agent, tenant=tenant)

    # --- forgetting -------------------------------------------------------------------------

    async def forget(
        self,
        *,
        layer: LayerName | None = None,
        agent: str | None = None,
        tenant: str | None = None,
        ids: Sequence[str] | None = None,
        all_namespaces: bool = False,
    ) -> int:
        """Deletes items: `ids` (anywhere in the layer, or within the given namespace), every item
        of one tenant (in every agent's namespace of it), one agent's items, or with
        `all_namespaces` everything. Returns how many were deleted."""
        if ids is None and agent is None and tenant is None and not all_namespaces:
            raise MemoryUsageError("forget needs ids, an agent, a tenant, or all_namespaces")
        deleted = 0
        for name in [layer] if layer is not None else self.layer_names():
            found = await self._layer(name)
            if ids is not None and agent is None and tenant is None:
                deleted += await found.store.delete(found.collection, ids=list(ids))
                continue
            for key in await found.store.namespaces(found.collection):
                if all_namespaces or _namespace_matches(key, agent=agent, tenant=tenant):
                    deleted += await found.store.delete(
                        found.collection, namespace=key, ids=list(ids) if ids is not None else None
                    )
        return deleted

    async def purge_expired(self) -> int:
        now = datetime.fromtimestamp(self._clock(), UTC)
        total = 0
        for name in self.layer_names():
            found = await self._layer(name)
            total += await found.store.purge_expired(found.collection, now)
        return total

    async def list_items(
        self, layer: LayerName, *, namespace: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[MemoryItem]:
        found = await self._layer(layer)
        return await found.store.list_items(found.collection, namespace=namespace, limit=limit, offset=offset)

    async def namespaces(self, layer: LayerName) -> list[str]:
        found = await self._layer(layer)
        return await found.store.namespaces(found.collection)

    async def item_count(self, layer: LayerName) -> int:
        """Items in the layer's collection, every namespace (`platform memory ls`)."""
        found = await self._layer(layer)
        for info in await found.store.collections():
            if info.name == found.collection:
                return info.items
        return 0


EPISODE_MAX_CHARS = 4000


@dataclass(frozen=True)
class MemoryEntry:
    """Something to remember, before it has a namespace, a vector and timestamps."""

    content: str
    kind: ItemKind
    provenance: Provenance
    importance: float = 0.5
    trust: Literal["trusted", "untrusted"] | None = None  # None: the layer's default
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


def relevance_of(hit: SearchHit, best_text: float, alpha: float = HYBRID_ALPHA) -> float:
    """Cosine similarity raised by full-text evidence (see the module docstring); the store's own
    score when it reports no similarity. `best_text`: the best raw text rank of the candidates."""
    if hit.vector_score is None:
        return hit.score
    similarity = min(1.0, max(0.0, hit.vector_score))
    text = min(1.0, max(0.0, (hit.text_score or 0.0) / best_text)) if best_text > 0 else 0.0
    return similarity + (1.0 - similarity) * (1.0 - alpha) * text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _weighted_product(*factors: tuple[float, float]) -> float:
    """prod(value ** weight), each value floored at a tiny positive number so a zero factor
    ranks last instead of making every score equal."""
    score = 1.0
    for value, weight in factors:
        if weight:
            score *= max(value, 1e-6) ** weight
    return score


def _namespace_matches(key: str, *, agent: str | None, tenant: str | None) -> bool:
    try:
        namespace = Namespace.parse(key)
    except ValueError:
        return False
    if tenant is not None and namespace.tenant != tenant:
        return False
    return not (agent is not None and namespace.agent != agent)
