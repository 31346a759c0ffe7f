"""`WeaviateStore`: the vector store interface on Weaviate, assembled from its parts: the
connection (`connection.py`), collections (`catalog.py`), writes (`writes.py`) and queries
(`queries.py`)."""

from __future__ import annotations

from agent_platform._memory.stores.base import VectorStore
from agent_platform._memory.stores.weaviate.catalog import WeaviateCollections
from agent_platform._memory.stores.weaviate.endpoint import BACKEND
from agent_platform._memory.stores.weaviate.queries import WeaviateQueries
from agent_platform._memory.stores.weaviate.writes import WeaviateWrites


class WeaviateStore(WeaviateCollections, WeaviateWrites, WeaviateQueries, VectorStore):
    """Memory collections in Weaviate (see the package docstring). Construction parses the URL and
    does no I/O; the async client connects on first use and again after `close`. A connection
    belongs to the event loop that opened it: used from another loop, the store opens a new one.

    `timeout_s` bounds connecting and every request (the client's REST/gRPC timeouts and an outer
    deadline, which also cuts the client's own retries short); a request that runs out of time
    raises `StoreTimeout`."""

    backend = BACKEND
