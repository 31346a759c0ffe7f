"""Queries: `search` (`near_vector`, or hybrid with relative-score fusion; expired items and
metadata filters applied inside the query), `get`, `list_items` and `namespaces`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from weaviate import exceptions as wexc
from weaviate.classes.query import Filter, FilterReturn, HybridFusion, MetadataQuery, Sort
from weaviate.util import generate_uuid5

from agent_platform._memory.items import MemoryItem, SearchHit
from agent_platform._memory.stores.base import (
    DimensionMismatch,
    Vectors,
    VectorStoreError,
    check_search_arguments,
)
from agent_platform._memory.stores.weaviate.connection import ID_CHUNK, WeaviateConnection
from agent_platform._memory.stores.weaviate.names import namespace_from_tenant, tenant_name
from agent_platform._memory.stores.weaviate.schema import (
    ITEM_PROPERTIES,
    VECTOR_NAME,
    item_from_object,
    metadata_token,
)
from agent_platform._memory.stores.weaviate.scores import (
    aware,
    hybrid_hit,
    query_vector,
    unusable_rows,
    vector_hit,
)


class WeaviateQueries(WeaviateConnection):
    """`search`, `get`, `list_items`, `namespaces`."""

    def _search_filter(self, filters: Mapping[str, Any] | None, now: datetime) -> FilterReturn:
        expires = Filter.by_property("expires_at")
        where = expires.is_none(True) | expires.greater_than(now)
        if filters:
            tokens = []
            for key, value in filters.items():
                if not isinstance(key, str):
                    raise ValueError(f"filter keys are metadata keys (strings), not {key!r}")
                try:
                    tokens.append(metadata_token(key, value))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"filter on {key!r}: {exc}") from None
            where = where & Filter.by_property("meta_pairs").contains_all(tokens)
        return where

    async def search(
        self,
        collection: str,
        *,
        namespace: str,
        vector: Vectors | None,
        text: str | None = None,
        k: int = 5,
        alpha: float = 1.0,
        filters: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> list[SearchHit]:
        operation = "search"
        check_search_arguments(namespace, k, alpha)
        has_text = bool(text and text.strip())
        query = query_vector(vector) if vector is not None else None
        if query is None and (alpha > 0.0 or not has_text):
            raise ValueError(
                "a search without a vector is a text search: give text and alpha 0"
                if has_text
                else "a search needs a vector, or text with alpha 0"
            )
        where = self._search_filter(filters, aware(now))
        tenant = tenant_name(namespace)
        async with self._guard(collection, operation):
            problem = None if query is None else unusable_rows(query)
            if problem is not None:
                raise self._error(VectorStoreError, problem, collection, operation)
            dimensions = await self._require(collection, operation)
            if query is not None and query.shape[0] != dimensions:
                raise self._error(
                    DimensionMismatch,
                    f"the query vector has {query.shape[0]} dimensions, the collection {dimensions}",
                    collection,
                    operation,
                )
            handle = await self._collection(collection, operation)
            scoped = handle.with_tenant(tenant)
            try:
                if query is not None and (alpha >= 1.0 or not has_text):
                    near = await self._io(
                        scoped.query.near_vector(
                            query.tolist(),
                            limit=k,
                            filters=where,
                            target_vector=VECTOR_NAME,
                            return_metadata=MetadataQuery(distance=True),
                            return_properties=ITEM_PROPERTIES,
                        )
                    )
                    return [vector_hit(item_from_object(obj), obj.metadata.distance) for obj in near.objects]
                fused = await self._io(
                    scoped.query.hybrid(
                        query=text,
                        vector=query.tolist() if query is not None else None,
                        alpha=alpha,
                        fusion_type=HybridFusion.RELATIVE_SCORE,
                        query_properties=["content"],
                        limit=k,
                        filters=where,
                        target_vector=VECTOR_NAME,
                        include_vector=[VECTOR_NAME] if query is not None else False,
                        return_metadata=MetadataQuery(score=True, explain_score=True),
                        return_properties=ITEM_PROPERTIES,
                    )
                )
                return [
                    hybrid_hit(
                        item_from_object(obj),
                        obj.metadata.score,
                        obj.metadata.explain_score,
                        query,
                        obj.vector.get(VECTOR_NAME),
                    )
                    for obj in fused.objects
                ]
            except wexc.WeaviateBaseError:
                if await self._tenant_missing(handle, tenant):
                    return []  # nothing was ever written to this namespace
                raise

    async def get(self, collection: str, ids: Sequence[str]) -> list[MemoryItem]:
        """Items as stored, expired or not (`purge_expired` removes those), each id once."""
        operation = "get"
        if isinstance(ids, str):
            raise TypeError("ids must be a sequence of ids, not a string")
        wanted = list(dict.fromkeys(ids))
        async with self._guard(collection, operation):
            await self._require(collection, operation)
            if not wanted:
                return []
            handle = await self._collection(collection, operation)
            uuids = sorted({generate_uuid5(item_id) for item_id in wanted})

            async def fetch(tenant: str) -> list[MemoryItem]:
                out: list[MemoryItem] = []
                for start in range(0, len(uuids), ID_CHUNK):
                    chunk = uuids[start : start + ID_CHUNK]
                    result = await self._io(
                        handle.with_tenant(tenant).query.fetch_objects(
                            filters=Filter.by_id().contains_any(chunk),
                            limit=len(chunk),
                            return_properties=ITEM_PROPERTIES,
                        )
                    )
                    out += [item_from_object(obj) for obj in result.objects]
                return out

            found: dict[str, MemoryItem] = {}
            for batch in await self._fanout(await self._tenants(handle), fetch):
                for item in batch:
                    other = found.get(item.id)
                    if other is None or item.created_at > other.created_at:
                        found[item.id] = item
            return [found[item_id] for item_id in wanted if item_id in found]

    async def list_items(
        self,
        collection: str,
        *,
        namespace: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MemoryItem]:
        """Items as stored (expired ones included until purged), newest first, then by id."""
        operation = "list_items"
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        async with self._guard(collection, operation):
            await self._require(collection, operation)
            if limit == 0 or namespace == "":
                return []
            handle = await self._collection(collection, operation)
            newest_first = Sort.by_property("created_at", ascending=False).by_property(
                "item_id", ascending=True
            )
            if namespace is not None:
                tenant = self._tenant(namespace, collection, operation)
                try:
                    result = await self._io(
                        handle.with_tenant(tenant).query.fetch_objects(
                            limit=limit, offset=offset, sort=newest_first, return_properties=ITEM_PROPERTIES
                        )
                    )
                except wexc.WeaviateBaseError:
                    if await self._tenant_missing(handle, tenant):
                        return []
                    raise
                return [item_from_object(obj) for obj in result.objects]

            async def head(tenant: str) -> list[MemoryItem]:
                result = await self._io(
                    handle.with_tenant(tenant).query.fetch_objects(
                        limit=offset + limit, sort=newest_first, return_properties=ITEM_PROPERTIES
                    )
                )
                return [item_from_object(obj) for obj in result.objects]

            merged = [
                item for batch in await self._fanout(await self._tenants(handle), head) for item in batch
            ]
            merged.sort(key=lambda item: item.id)
            merged.sort(key=lambda item: item.created_at, reverse=True)  # stable: ties stay by id
            return merged[offset : offset + limit]

    async def namespaces(self, collection: str) -> list[str]:
        operation = "namespaces"
        async with self._guard(collection, operation):
            await self._require(collection, operation)
            handle = await self._collection(collection, operation)

            async def probe(tenant: str) -> str | None:
                result = await self._io(
                    handle.with_tenant(tenant).query.fetch_objects(limit=1, return_properties=["namespace"])
                )
                if not result.objects:
                    return None  # emptied by deletes: no longer a namespace with items
                stored = result.objects[0].properties.get("namespace")
                return stored if isinstance(stored, str) else namespace_from_tenant(tenant)

            keys = await self._fanout(await self._tenants(handle), probe)
            return sorted({key for key in keys if key is not None})
