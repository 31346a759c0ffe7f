"""Vector stores behind one interface: pgvector (embedded PostgreSQL by default, or any
PostgreSQL with pgvector by URL) and Weaviate (by URL)."""

from agent_platform._memory.stores.base import (
    DimensionMismatch,
    InvalidStoreUrl,
    StoreTimeout,
    StoreUnavailable,
    VectorStore,
    VectorStoreError,
)
from agent_platform._memory.stores.factory import open_vector_store

__all__ = [
    "DimensionMismatch",
    "InvalidStoreUrl",
    "StoreTimeout",
    "StoreUnavailable",
    "VectorStore",
    "VectorStoreError",
    "open_vector_store",
]
