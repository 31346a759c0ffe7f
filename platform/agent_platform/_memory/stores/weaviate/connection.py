"""The connection to Weaviate: the async client's lifecycle (one per event loop, opened on first
use and again after `close`), the deadline on every request, errors translated to store errors,
and the handles of collections and tenants the store's operations work on."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import weaviate
from weaviate import exceptions as wexc
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.collections import CollectionAsync

from agent_platform._memory.stores.base import StoreTimeout, StoreUnavailable, VectorStoreError
from agent_platform._memory.stores.weaviate.endpoint import BACKEND, location_of, parse_weaviate_url
from agent_platform._memory.stores.weaviate.errors import causes, classify_error, first_leaf, shorten
from agent_platform._memory.stores.weaviate.names import collection_class_name, tenant_name
from agent_platform._memory.stores.weaviate.schema import parse_collection_description

_log = logging.getLogger("agent_platform._memory.stores.weaviate")

T = TypeVar("T")
K = TypeVar("K")

_FANOUT = 16  # tenants visited at once
ID_CHUNK = 500  # uuids per by-id filter (reads and deletes)


class WeaviateConnection:
    """The plumbing `WeaviateStore` stands on (see `WeaviateStore` for what construction checks)."""

    def __init__(self, url: str, *, api_key_env: str | None = None, timeout_s: float = 30.0) -> None:
        self.location = location_of(url)
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
        self.endpoint = parse_weaviate_url(url)
        self._api_key_env = api_key_env
        self._api_key: str | None = None  # kept only to scrub it from messages
        self._timeout_s = float(timeout_s)
        self._client: weaviate.WeaviateAsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._dimensions: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"WeaviateStore({self.location!r})"

    def _error(
        self, cls: type[VectorStoreError], detail: str, collection: str | None, operation: str
    ) -> VectorStoreError:
        if self._api_key:
            detail = detail.replace(self._api_key, "***")
        return cls(
            detail, backend=BACKEND, location=self.location, collection=collection, operation=operation
        )

    def _translate(self, exc: BaseException, collection: str | None, operation: str) -> VectorStoreError:
        cls = classify_error(exc)
        if type(exc) in (ValueError, TypeError) and str(exc):
            what = shorten(str(exc), 1000)  # this module's checks: the message is the explanation
        elif str(exc):
            what = f"{type(exc).__name__}: {shorten(str(exc))}"
        else:
            what = type(exc).__name__
        root = list(causes(exc))[-1]  # the client's messages often leave out the network error
        if root is not exc and str(root) and str(root) not in what:
            what += f" (caused by {type(root).__name__}: {shorten(str(root), 200)})"
        if cls is StoreTimeout:
            detail = f"no answer within {self._timeout_s:g}s ({what})"
        elif cls is StoreUnavailable:
            detail = f"cannot use Weaviate (REST {self.endpoint.rest}, gRPC {self.endpoint.grpc}): {what}"
        else:
            detail = what
        return self._error(cls, detail, collection, operation)

    @asynccontextmanager
    async def _guard(self, collection: str | None, operation: str) -> AsyncIterator[None]:
        """Every exception leaving an operation is a `VectorStoreError` naming it."""
        try:
            yield
        except VectorStoreError:
            raise
        except Exception as exc:
            leaf = first_leaf(exc)  # a TaskGroup's ExceptionGroup: report the first failure
            if isinstance(leaf, VectorStoreError):
                raise leaf from None
            raise self._translate(leaf, collection, operation) from exc

    async def _io(self, call: Awaitable[T]) -> T:
        async with asyncio.timeout(self._timeout_s):
            return await call

    def _new_client(self, collection: str | None, operation: str) -> weaviate.WeaviateAsyncClient:
        auth = None
        if self._api_key_env is not None:
            key = os.environ.get(self._api_key_env)
            if not key:
                raise self._error(
                    StoreUnavailable,
                    f"the API key variable {self._api_key_env} is not set",
                    collection,
                    operation,
                )
            self._api_key = key
            auth = Auth.api_key(key)
        endpoint = self.endpoint
        seconds = self._timeout_s
        return weaviate.use_async_with_custom(
            http_host=endpoint.http_host,
            http_port=endpoint.http_port,
            http_secure=endpoint.http_secure,
            grpc_host=endpoint.grpc_host,
            grpc_port=endpoint.grpc_port,
            grpc_secure=endpoint.grpc_secure,
            auth_credentials=auth,
            additional_config=AdditionalConfig(timeout=Timeout(init=seconds, query=seconds, insert=seconds)),
            # The init checks would also ask PyPI for the newest client version on every connect;
            # `_check_grpc` runs the one check that matters.
            skip_init_checks=True,
        )

    @staticmethod
    async def _check_grpc(client: weaviate.WeaviateAsyncClient) -> None:
        """The client's gRPC health check (what `skip_init_checks=False` runs): a wrong gRPC port
        fails here, at once, instead of as minutes of retries inside the first query. Private
        client API, so skipped if a client version lacks it."""
        ping = getattr(client._connection, "_ping_grpc", None)
        if ping is None:
            return
        result = ping("async")
        if inspect.isawaitable(result):
            await result

    async def _connect(self, collection: str | None, operation: str) -> weaviate.WeaviateAsyncClient:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._client is not None:
                _log.warning("%r: used from another event loop; opening a new connection", self)
            self._client, self._loop, self._lock = None, loop, asyncio.Lock()
        if self._client is not None and self._client.is_connected():
            return self._client
        assert self._lock is not None
        async with self._lock:
            if self._client is not None and self._client.is_connected():
                return self._client
            stale, self._client = self._client, None
            if stale is not None:
                with suppress(Exception):
                    await self._io(stale.close())
            client = self._new_client(collection, operation)
            try:
                async with asyncio.timeout(self._timeout_s):
                    await client.connect()
                    await self._check_grpc(client)
            except BaseException:
                with suppress(Exception):
                    await asyncio.wait_for(client.close(), self._timeout_s)
                raise
            self._client = client
            return client

    def _class_name(self, collection: str, operation: str) -> str:
        try:
            return collection_class_name(collection)
        except ValueError as exc:
            raise self._error(VectorStoreError, str(exc), collection, operation) from None

    def _tenant(self, namespace: str, collection: str, operation: str) -> str:
        try:
            return tenant_name(namespace)
        except ValueError as exc:
            raise self._error(VectorStoreError, str(exc), collection, operation) from None

    async def _collection(self, collection: str, operation: str) -> CollectionAsync[Any, Any]:
        client = await self._connect(collection, operation)
        return client.collections.use(self._class_name(collection, operation))

    async def _stored_dimensions(
        self, collection: str, operation: str, *, refresh: bool = False
    ) -> int | None:
        """The dimensions the collection's description records; None when it does not exist."""
        if not refresh and collection in self._dimensions:
            return self._dimensions[collection]
        handle = await self._collection(collection, operation)
        try:
            config = await self._io(handle.config.get(simple=True))
        except wexc.UnexpectedStatusCodeError as exc:
            if exc.status_code == 404:
                self._dimensions.pop(collection, None)
                return None
            raise
        parsed = parse_collection_description(config.description)
        if parsed is None or parsed[0] != collection:
            raise self._error(
                VectorStoreError,
                f"Weaviate collection {handle.name} exists but was not created by this store "
                "(its description records no memory collection); leaving it alone",
                collection,
                operation,
            )
        self._dimensions[collection] = parsed[1]
        return parsed[1]

    async def _require(self, collection: str, operation: str) -> int:
        dimensions = await self._stored_dimensions(collection, operation)
        if dimensions is None:
            raise self._error(
                VectorStoreError,
                "no such collection (ensure_collection creates it)",
                collection,
                operation,
            )
        return dimensions

    async def _tenants(self, handle: CollectionAsync[Any, Any]) -> list[str]:
        return sorted(await self._io(handle.tenants.get()))

    async def _tenant_missing(self, handle: CollectionAsync[Any, Any], tenant: str) -> bool:
        """Whether a query failed because the namespace has no tenant yet (never written to).
        False when that cannot be told, so the query's own error is reported."""
        try:
            return not await self._io(handle.tenants.exists(tenant))
        except Exception:
            return False

    async def _fanout(self, keys: Sequence[K], work: Callable[[K], Awaitable[T]]) -> list[T]:
        """`work` for every key, at most `_FANOUT` at once; the first failure cancels the rest."""
        gate = asyncio.Semaphore(_FANOUT)

        async def one(key: K) -> T:
            async with gate:
                return await work(key)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(key)) for key in keys]
        return [task.result() for task in tasks]

    # -- the interface -----------------------------------------------------------------------------

    async def close(self) -> None:
        client, self._client = self._client, None
        self._dimensions.clear()
        if client is None:
            return
        if self._loop is not asyncio.get_running_loop():
            _log.warning("%r: closed from another event loop; dropping its connection", self)
            return
        async with self._guard(None, "close"):
            await self._io(client.close())
