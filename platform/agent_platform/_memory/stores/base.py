"""The vector store interface every backend implements, its errors, and the factory.

Contract (tests/memory/contract.py holds the suite both backends pass):

- Collections are created by `ensure_collection(name, dimensions)`; calling it again with the same
  dimensions is a no-op, with other dimensions it raises `DimensionMismatch` (a collection never
  silently mixes embedders).
- `upsert` returns only after the store has durably written the items (a committed transaction,
  a batch with no per-object errors). Ids are unique within a namespace (the same id in two
  namespaces is two items). Within a namespace, content is unique by `content_hash`: an item whose
  hash is already stored under another id is reported in `WriteAck.duplicates` (id -> stored id)
  and not written; an item stored before with the same id and hash is reported as a duplicate of
  itself (id -> id) and not rewritten, so a retried or repeated write is visibly a no-op; an item
  with an existing id and new content replaces it.
- `get` and `list_items` return expired items until `purge_expired` deletes them (for audits and
  `platform memory ls`); `search` never does.
- `search` looks in exactly one namespace (exact match). Expired items (`expires_at <= now`) are
  never returned, even before `purge_expired` deleted them. `alpha` weighs vector against
  full-text relevance (1.0: vector only; 0.0: text only; the text matches any of its words);
  `filters` are equality filters on
  top-level `metadata` keys. Hits come best first, at most `k`.
- Every failure is a `VectorStoreError` naming the backend, the (redacted) location, the
  collection and the operation; driver exceptions never escape.

Vectors are float32 numpy arrays of shape (n, dimensions), one row per item, in item order.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from agent_platform._memory.items import CollectionInfo, MemoryItem, SearchHit, WriteAck
from agent_platform._redaction import redact_secrets

Vectors = npt.NDArray[np.float32]


class VectorStoreError(Exception):
    """A store operation failed. `str()` reads `pgvector at postgresql://host/db: collection
    'docs': search: <what went wrong>`. `location` and `detail` (often a driver's or server's
    message, which may echo a connection string or a key) are redacted (`redact_secrets`, with
    the `known` secrets the store connected with)."""

    def __init__(
        self,
        detail: str,
        *,
        backend: str,
        location: str,
        collection: str | None = None,
        operation: str | None = None,
        known: Sequence[str] = (),
    ) -> None:
        self.detail = redact_secrets(detail, known)
        self.backend = backend
        self.location = redact_secrets(location, known)
        self.collection = collection
        self.operation = operation
        where = f"{backend} at {self.location}"
        if collection is not None:
            where += f": collection '{collection}'"
        if operation is not None:
            where += f": {operation}"
        super().__init__(f"{where}: {self.detail}")


class StoreUnavailable(VectorStoreError):
    """The store cannot be reached (down, refused, authentication failed)."""


class StoreTimeout(VectorStoreError):
    """The store did not answer in time; a write may or may not have happened."""


class DimensionMismatch(VectorStoreError):
    """Vectors do not have the collection's dimensions (another embedder wrote it)."""


class InvalidStoreUrl(VectorStoreError):
    """The URL does not name a store this backend can open."""


def check_search_arguments(namespace: str, k: int, alpha: float) -> None:
    """The caller's mistakes every backend refuses with a ValueError before any I/O."""
    if not isinstance(namespace, str) or not namespace:
        raise ValueError("search needs exactly one namespace")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be at least 1, not {k!r}")
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be between 0 and 1, not {alpha!r}")


class VectorStore(ABC):
    """One connection to one store; several collections. Async; blocking drivers run off the
    event loop. Usable as an async context manager (closes on exit)."""

    backend: str
    location: str  # redacted URL or path, for messages

    @abstractmethod
    async def ensure_collection(self, collection: str, dimensions: int) -> None: ...

    @abstractmethod
    async def upsert(self, collection: str, items: Sequence[MemoryItem], vectors: Vectors) -> WriteAck: ...

    @abstractmethod
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
        """`vector` is one row (shape (dimensions,) or (1, dimensions)); None with alpha 0 for a
        text-only search."""

    @abstractmethod
    async def get(self, collection: str, ids: Sequence[str]) -> list[MemoryItem]:
        """The items with these ids that exist, in the order of `ids`."""

    @abstractmethod
    async def list_items(
        self,
        collection: str,
        *,
        namespace: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MemoryItem]:
        """Items newest first (then by id), optionally in one namespace."""

    @abstractmethod
    async def namespaces(self, collection: str) -> list[str]: ...

    @abstractmethod
    async def delete(
        self,
        collection: str,
        *,
        namespace: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Deletes the items with these ids (within `namespace` when given), or every item of
        `namespace` when `ids` is None. At least one of the two is required. Returns how many
        were deleted."""

    @abstractmethod
    async def purge_expired(self, collection: str, now: datetime) -> int: ...

    @abstractmethod
    async def collections(self) -> list[CollectionInfo]: ...

    @abstractmethod
    async def drop_collection(self, collection: str) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> VectorStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
