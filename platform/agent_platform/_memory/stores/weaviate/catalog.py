"""Memory collections as Weaviate collections: created with the properties and the description
record of `schema.py`, listed with their counts, dropped."""

from __future__ import annotations

from typing import Any

from weaviate import exceptions as wexc
from weaviate.classes.config import Configure, VectorDistances
from weaviate.collections import CollectionAsync

from agent_platform._memory.items import CollectionInfo
from agent_platform._memory.stores.base import DimensionMismatch
from agent_platform._memory.stores.weaviate.connection import WeaviateConnection
from agent_platform._memory.stores.weaviate.names import collection_from_class_name
from agent_platform._memory.stores.weaviate.schema import (
    PROPERTIES,
    VECTOR_NAME,
    collection_description,
    parse_collection_description,
)


class WeaviateCollections(WeaviateConnection):
    """`ensure_collection`, `collections`, `drop_collection`."""

    async def ensure_collection(self, collection: str, dimensions: int) -> None:
        operation = "ensure_collection"
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
            raise ValueError(f"dimensions must be a positive integer, not {dimensions!r}")
        async with self._guard(collection, operation):
            existing = await self._stored_dimensions(collection, operation, refresh=True)
            if existing is None:
                client = await self._connect(collection, operation)
                try:
                    await self._io(
                        client.collections.create(
                            self._class_name(collection, operation),
                            description=collection_description(collection, dimensions),
                            properties=PROPERTIES,
                            vector_config=Configure.Vectors.self_provided(
                                name=VECTOR_NAME,
                                vector_index_config=Configure.VectorIndex.hnsw(
                                    distance_metric=VectorDistances.COSINE
                                ),
                            ),
                            multi_tenancy_config=Configure.multi_tenancy(
                                enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
                            ),
                            inverted_index_config=Configure.inverted_index(index_null_state=True),
                        )
                    )
                    existing = dimensions
                except wexc.UnexpectedStatusCodeError:
                    # Another process may have created it since: then its record decides.
                    existing = await self._stored_dimensions(collection, operation, refresh=True)
                    if existing is None:
                        raise
            if existing != dimensions:
                raise self._error(
                    DimensionMismatch,
                    f"the collection holds {existing}-dimensional vectors, not {dimensions}",
                    collection,
                    operation,
                )
            self._dimensions[collection] = dimensions

    async def collections(self) -> list[CollectionInfo]:
        operation = "collections"
        async with self._guard(None, operation):
            client = await self._connect(None, operation)
            configs = await self._io(client.collections.list_all(simple=True))
            ours: list[tuple[str, str, int]] = []
            for class_name, config in configs.items():
                parsed = parse_collection_description(config.description)
                if parsed is not None and collection_from_class_name(class_name) == parsed[0]:
                    ours.append((class_name, *parsed))

            async def count(tenant_of: tuple[CollectionAsync[Any, Any], str]) -> int:
                handle, tenant = tenant_of
                result = await self._io(handle.with_tenant(tenant).aggregate.over_all(total_count=True))
                return result.total_count or 0

            infos = []
            for class_name, collection, dimensions in sorted(ours, key=lambda entry: entry[1]):
                handle = client.collections.use(class_name)
                counts = await self._fanout(
                    [(handle, tenant) for tenant in await self._tenants(handle)], count
                )
                infos.append(
                    CollectionInfo(
                        name=collection,
                        dimensions=dimensions,
                        items=sum(counts),
                        namespaces=sum(1 for n in counts if n),
                    )
                )
                self._dimensions[collection] = dimensions
            return infos

    async def drop_collection(self, collection: str) -> None:
        operation = "drop_collection"
        async with self._guard(collection, operation):
            if await self._stored_dimensions(collection, operation, refresh=True) is None:
                return
            client = await self._connect(collection, operation)
            await self._io(client.collections.delete(self._class_name(collection, operation)))
            self._dimensions.pop(collection, None)
