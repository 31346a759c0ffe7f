"""Writes: `upsert` (vectors checked against the collection's dimensions, duplicates by content
hash), `delete` (by namespace or ids) and `purge_expired`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from weaviate import exceptions as wexc
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter
from weaviate.util import generate_uuid5

from agent_platform._memory.items import MemoryItem, WriteAck
from agent_platform._memory.stores.base import DimensionMismatch, Vectors, VectorStoreError
from agent_platform._memory.stores.weaviate.connection import ID_CHUNK, WeaviateConnection
from agent_platform._memory.stores.weaviate.errors import shorten
from agent_platform._memory.stores.weaviate.names import tenant_name
from agent_platform._memory.stores.weaviate.schema import VECTOR_NAME, item_properties
from agent_platform._memory.stores.weaviate.scores import aware, unusable_rows, vector_rows

_INSERT_CHUNK = 500  # objects per insert_many (one gRPC message)
_HASH_CHUNK = 200  # content hashes per duplicate lookup
_PURGE_ROUNDS = 1000  # delete_many deletes at most QUERY_MAXIMUM_RESULTS per call


class WeaviateWrites(WeaviateConnection):
    """`upsert`, `delete`, `purge_expired`."""

    async def upsert(self, collection: str, items: Sequence[MemoryItem], vectors: Vectors) -> WriteAck:
        operation = "upsert"
        rows = vector_rows(vectors, len(items))
        async with self._guard(collection, operation):
            problem = unusable_rows(rows)
            if problem is not None:
                raise self._error(VectorStoreError, problem, collection, operation)
            properties = [item_properties(item) for item in items]  # ValueError: not JSON
            if not items:
                return WriteAck()
            dimensions = await self._require(collection, operation)
            if rows.shape[1] != dimensions:
                raise self._error(
                    DimensionMismatch,
                    f"vectors have {rows.shape[1]} dimensions, the collection {dimensions}",
                    collection,
                    operation,
                )
            handle = await self._collection(collection, operation)
            tenants = {self._tenant(item.namespace, collection, operation) for item in items}
            existing = await self._io(handle.tenants.get_by_names(sorted(tenants)))

            # Content already stored in each (existing) tenant, by hash.
            stored: dict[tuple[str, str], str] = {}

            async def lookup(tenant: str) -> list[tuple[str, str]]:
                hashes = sorted(
                    {item.content_hash for item in items if tenant_name(item.namespace) == tenant}
                )
                found = []
                for start in range(0, len(hashes), _HASH_CHUNK):
                    chunk = hashes[start : start + _HASH_CHUNK]
                    result = await self._io(
                        handle.with_tenant(tenant).query.fetch_objects(
                            filters=Filter.by_property("content_hash").contains_any(chunk),
                            limit=4 * len(chunk),
                            return_properties=["item_id", "content_hash"],
                        )
                    )
                    found += [
                        (str(obj.properties["content_hash"]), str(obj.properties["item_id"]))
                        for obj in result.objects
                    ]
                return found

            present = [tenant for tenant in sorted(tenants) if tenant in existing]
            for tenant, pairs in zip(present, await self._fanout(present, lookup), strict=True):
                for digest, item_id in pairs:
                    stored.setdefault((tenant, digest), item_id)

            already = set(stored.items())  # (tenant, hash) -> id pairs stored before this call
            duplicates: dict[str, str] = {}
            writes: dict[str, dict[str, int]] = {}  # tenant -> item id -> row (the last write wins)
            written: dict[str, None] = {}
            for row, item in enumerate(items):
                tenant = tenant_name(item.namespace)
                holder = stored.setdefault((tenant, item.content_hash), item.id)
                if holder != item.id or ((tenant, item.content_hash), item.id) in already:
                    duplicates[item.id] = holder  # an unchanged item written again: itself
                    continue
                writes.setdefault(tenant, {})[item.id] = row
                written[item.id] = None

            failures: dict[str, str] = {}

            async def write(tenant: str) -> None:
                ids = list(writes[tenant])
                target = handle.with_tenant(tenant).data
                for start in range(0, len(ids), _INSERT_CHUNK):
                    chunk = ids[start : start + _INSERT_CHUNK]
                    objects = [
                        DataObject(
                            properties=properties[writes[tenant][item_id]],
                            uuid=generate_uuid5(item_id),
                            vector={VECTOR_NAME: rows[writes[tenant][item_id]].tolist()},
                        )
                        for item_id in chunk
                    ]
                    try:
                        result = await self._io(target.insert_many(objects))
                    except wexc.WeaviateInsertManyAllFailedError as exc:
                        failures.update(dict.fromkeys(chunk, shorten(str(exc), 200)))
                        continue
                    for index, error in result.errors.items():
                        failures[chunk[index]] = shorten(error.message, 200)

            await self._fanout(sorted(writes), write)
            if failures:
                listed = ", ".join(repr(item_id) for item_id in sorted(failures)[:20])
                more = f" and {len(failures) - 20} more" if len(failures) > 20 else ""
                first = failures[min(failures)]
                raise self._error(
                    VectorStoreError,
                    f"Weaviate did not write {len(failures)} of {len(written)} items ({listed}{more}); "
                    f"the others were written. First error: {first}",
                    collection,
                    operation,
                )
            return WriteAck(written=list(written), duplicates=duplicates)

    async def delete(
        self,
        collection: str,
        *,
        namespace: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        operation = "delete"
        if namespace is None and ids is None:
            raise ValueError("delete needs ids, a namespace, or both")
        if isinstance(ids, str):
            raise TypeError("ids must be a sequence of ids, not a string")
        async with self._guard(collection, operation):
            await self._require(collection, operation)
            if namespace == "" or (ids is not None and not ids):
                return 0  # no item has an empty namespace; no ids, nothing to delete
            handle = await self._collection(collection, operation)
            if namespace is not None:
                tenant = self._tenant(namespace, collection, operation)
                if not await self._io(handle.tenants.exists(tenant)):
                    return 0
                if ids is None:
                    # The whole namespace: dropping its tenant drops its objects at once.
                    counted = await self._io(handle.with_tenant(tenant).aggregate.over_all(total_count=True))
                    await self._io(handle.tenants.remove([tenant]))
                    return counted.total_count or 0
                tenants = [tenant]
            else:
                tenants = await self._tenants(handle)
            assert ids is not None
            uuids = sorted({generate_uuid5(item_id) for item_id in ids})

            async def drop(tenant: str) -> int:
                deleted = 0
                for start in range(0, len(uuids), ID_CHUNK):
                    chunk = uuids[start : start + ID_CHUNK]
                    result = await self._io(
                        handle.with_tenant(tenant).data.delete_many(where=Filter.by_id().contains_any(chunk))
                    )
                    if result.failed:
                        raise self._error(
                            VectorStoreError,
                            f"Weaviate failed to delete {result.failed} of {result.matches} objects "
                            f"(namespace tenant {tenant})",
                            collection,
                            operation,
                        )
                    deleted += result.successful
                return deleted

            return sum(await self._fanout(tenants, drop))

    async def purge_expired(self, collection: str, now: datetime) -> int:
        operation = "purge_expired"
        moment = aware(now)
        async with self._guard(collection, operation):
            await self._require(collection, operation)
            handle = await self._collection(collection, operation)
            expired = Filter.by_property("expires_at").less_or_equal(moment)

            async def purge(tenant: str) -> int:
                deleted = 0
                for _ in range(_PURGE_ROUNDS):  # each call deletes at most the server's result cap
                    result = await self._io(handle.with_tenant(tenant).data.delete_many(where=expired))
                    if result.failed:
                        raise self._error(
                            VectorStoreError,
                            f"Weaviate failed to delete {result.failed} of {result.matches} expired objects "
                            f"(namespace tenant {tenant})",
                            collection,
                            operation,
                        )
                    deleted += result.successful
                    if result.successful == 0:
                        break
                return deleted

            return sum(await self._fanout(await self._tenants(handle), purge))
