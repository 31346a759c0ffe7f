"""pgvector: memory collections in PostgreSQL tables (the embedded server, or any PostgreSQL with
the `vector` extension, by URL).

Layout: a registry table `memory_collections` (name, dimensions) and one table per collection,
named `mem_<name>_<hash>` (a hash suffix, so names differing only past the identifier length, or in
`-` vs `_`, never share a table). Each table has a column per `MemoryItem` field (provenance and
metadata as jsonb), `embedding vector(d)`, and a stored generated `tsvector` of the content for
full-text search. Indexes: HNSW (`vector_cosine_ops`) on the embedding, GIN on the tsvector, unique
(namespace, content_hash) -- the de-duplication the contract requires is enforced by the database,
not only checked -- (namespace, created_at) for listing, and expires_at for purging.

DDL runs under a transaction-scoped advisory lock, so processes starting together (Ray actors on
one node) do not race on the catalog. Blocking psycopg connections run on a few dedicated worker
threads (`ThreadConnections`), one connection each, autocommit with explicit transactions.

Writes: one `upsert` is one statement in one transaction: the batch travels as binary arrays
(`unnest`), duplicates against stored rows are found by a join in the same statement, and the
insert is `ON CONFLICT (namespace, id) DO UPDATE`. Ids are unique per namespace (the primary key
is (namespace, id)): the same id written under two namespaces is two items, so one tenant can
never overwrite or move another's item by reusing its id (a document id ingested for several
tenants, say). Content already stored in the namespace is a duplicate whatever the id, its own
included: writing an item again unchanged (`MemoryItem.new` ids are derived from the content)
reports `{id: id}` and writes nothing, as `WriteAck` describes; an existing id with new content
replaces the item. A concurrent writer inserting the same content at the same moment makes the
unique index fire; the statement is then retried and sees the other's row as a duplicate.
Throughput is bounded by HNSW maintenance (each inserted row is linked into the graph), not by
the transfer: concurrent upserts (one per pooled connection) use more cores.

Search: exactly one namespace (equality), expired items excluded, metadata equality filters, in
one read transaction with `hnsw.ef_search` raised to the candidate count and (pgvector >= 0.8)
`hnsw.iterative_scan = relaxed_order`, so a filtered index scan keeps going until it found enough
rows instead of returning fewer. Vector candidates come from the HNSW index, full-text candidates
from `websearch_to_tsquery`/`ts_rank_cd` on the GIN index (any word of a plain search text
matches, see `_any_word_query`; at most the newest `TEXT_RANK_BUDGET` matches are ranked). Each
candidate gets both raw scores, which are min-max normalised over the candidates and fused as
`alpha * vector + (1 - alpha) * text` (relative score fusion, see `SearchHit`). The planner picks
the HNSW index or an exact scan of the namespace from table statistics, which the store refreshes
(ANALYZE) after large writes."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from agent_platform._memory.items import CollectionInfo, MemoryItem, Provenance, SearchHit, WriteAck
from agent_platform._memory.stores.base import (
    DimensionMismatch,
    InvalidStoreUrl,
    StoreTimeout,
    StoreUnavailable,
    Vectors,
    VectorStore,
    VectorStoreError,
    check_search_arguments,
)
from agent_platform._redaction import dsn_secrets, redact_secrets
from agent_platform._runstore._pool import ThreadConnections

T = TypeVar("T")
log = logging.getLogger(__name__)
Connection = psycopg.Connection[Any]

REGISTRY_TABLE = "memory_collections"
MAX_DIMENSIONS = 2000  # pgvector's HNSW index on `vector` columns
# pgvector's defaults. Inserts are bound by HNSW graph maintenance (~550 rows/s per core at 384
# dimensions and 50k rows); m=8/ef_construction=32 inserts 3x faster but its recall@5 on
# clustered embeddings drops to ~0.75, a bad trade for memory.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
TEXT_SEARCH_CONFIG = "english"  # stemming and stop words for the full-text half of hybrid search
MAX_INDEXED_CHARS = 262_144  # content past this is stored but not full-text indexed (tsvector max 1 MB)
_SCHEMA_LOCK = 7_216_305_115  # pg_advisory_xact_lock key: serialises DDL (the run store uses ..114)
_NAME = re.compile(r"^[a-z0-9-]{1,63}$")
_CONNECT_TIMEOUT_S = 5
_UPSERT_ATTEMPTS = 3
# pgvector's default ef_search 40 gives recall@5 ~0.93 on tightly clustered 384-d data, 100 ~0.99
_MIN_EF_SEARCH = 100
_MAX_EF_SEARCH = 1000  # pgvector's upper bound
_HYBRID_CANDIDATES = 40  # at least this many candidates per half of a hybrid search
# Full-text ranking reads every matching row (PostgreSQL has no top-k text index): a query of
# common words ranks only the newest this-many matches of the namespace, bounding its cost.
TEXT_RANK_BUDGET = 1000
# Planner statistics: a freshly filled table looks empty to the planner until autovacuum analyses
# it (a minute later), and an exact scan of the namespace is chosen instead of the HNSW index.
# ANALYZE after this many rows written by this store, or 20% growth, whichever is more.
_ANALYZE_AFTER_ROWS = 1000
_ANALYZE_GROWTH = 0.2

# Every MemoryItem field, in the model's order (`_item` reads rows by position).
_COLUMNS = tuple(MemoryItem.model_fields)


def table_name(collection: str) -> str:
    """The table holding `collection`: readable prefix, hash suffix (at most 49 characters, so
    index names derived from it stay within PostgreSQL's 63)."""
    digest = hashlib.blake2b(collection.encode(), digest_size=4).hexdigest()
    return f"mem_{collection[:36].replace('-', '_')}_{digest}"


def _index(collection: str, suffix: str) -> sql.Identifier:
    return sql.Identifier(f"{table_name(collection)}_{suffix}")


def _table_ddl(collection: str, dimensions: int) -> list[sql.Composed]:
    table = sql.Identifier(table_name(collection))
    return [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {table} ("
            "id TEXT NOT NULL, "
            "namespace TEXT NOT NULL, "
            "kind TEXT NOT NULL, "
            "content TEXT NOT NULL, "
            "content_hash TEXT NOT NULL, "
            "importance DOUBLE PRECISION NOT NULL, "
            "trust TEXT NOT NULL, "
            "provenance JSONB NOT NULL, "
            "metadata JSONB NOT NULL, "
            "created_at TIMESTAMPTZ NOT NULL, "
            "expires_at TIMESTAMPTZ, "
            "embedding vector({dimensions}) NOT NULL, "
            "content_tsv tsvector GENERATED ALWAYS AS "
            "(to_tsvector({config}::regconfig, left(content, {max_chars}))) STORED, "
            "PRIMARY KEY (namespace, id))"
        ).format(
            table=table,
            dimensions=sql.Literal(dimensions),
            config=sql.Literal(TEXT_SEARCH_CONFIG),
            max_chars=sql.Literal(MAX_INDEXED_CHARS),
        ),
        # Keep vectors in the row: vector's default storage lets PostgreSQL move them to TOAST once
        # a row passes ~2 kB (384 floats are 1.5 kB), and an exact scan then detoasts every row.
        # MAIN moves the text and JSON columns out first, the vector only as a last resort.
        sql.SQL("ALTER TABLE {table} ALTER COLUMN embedding SET STORAGE MAIN").format(table=table),
        sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table} (namespace, content_hash)").format(
            name=_index(collection, "ns_hash"), table=table
        ),
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (id)").format(
            name=_index(collection, "id"), table=table
        ),
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (namespace, created_at DESC, id)").format(
            name=_index(collection, "ns_created"), table=table
        ),
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON {table} (expires_at) WHERE expires_at IS NOT NULL"
        ).format(name=_index(collection, "expires"), table=table),
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (content_tsv)").format(
            name=_index(collection, "fts"), table=table
        ),
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON {table} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = {m}, ef_construction = {ef})"
        ).format(
            name=_index(collection, "hnsw"),
            table=table,
            m=sql.Literal(HNSW_M),
            ef=sql.Literal(HNSW_EF_CONSTRUCTION),
        ),
    ]


_SELECT = sql.SQL(", ").join(sql.Identifier(column) for column in _COLUMNS)

_UPSERT = """
WITH batch AS (
    SELECT * FROM unnest(
        %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::float8[], %b::text[],
        %b::text[], %b::text[], %b::timestamptz[], %b::timestamptz[], %b::vector[]
    ) AS b (id, namespace, kind, content, content_hash, importance, trust, provenance, metadata,
            created_at, expires_at, embedding)
),
duplicate AS (
    SELECT b.namespace, b.id, t.id AS stored_id
    FROM batch b JOIN {table} t ON t.namespace = b.namespace AND t.content_hash = b.content_hash
),
written AS (
    INSERT INTO {table} AS t (id, namespace, kind, content, content_hash, importance, trust, provenance,
                             metadata, created_at, expires_at, embedding)
    SELECT b.id, b.namespace, b.kind, b.content, b.content_hash, b.importance, b.trust,
           b.provenance::jsonb, b.metadata::jsonb, b.created_at, b.expires_at, b.embedding
    FROM batch b
    WHERE NOT EXISTS (SELECT 1 FROM duplicate d WHERE d.namespace = b.namespace AND d.id = b.id)
    ON CONFLICT (namespace, id) DO UPDATE SET
        kind = EXCLUDED.kind, content = EXCLUDED.content, content_hash = EXCLUDED.content_hash,
        importance = EXCLUDED.importance, trust = EXCLUDED.trust, provenance = EXCLUDED.provenance,
        metadata = EXCLUDED.metadata, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
        embedding = EXCLUDED.embedding
    RETURNING t.namespace, t.id
)
SELECT namespace, id, NULL FROM written
UNION ALL
SELECT namespace, id, stored_id FROM duplicate
"""


def _check_name(collection: str, *, location: str, operation: str) -> None:
    if not isinstance(collection, str) or not _NAME.match(collection):
        raise VectorStoreError(
            "collection names are 1-63 characters from a-z, 0-9 and '-'",
            backend="pgvector",
            location=location,
            collection=repr(collection)[1:-1] if isinstance(collection, str) else repr(collection),
            operation=operation,
        )


def _utc(value: datetime) -> datetime:
    """Stored times are UTC; a naive time is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _aware(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return value.astimezone(UTC)


def _item(row: Sequence[Any]) -> MemoryItem:
    return MemoryItem(
        id=row[0],
        namespace=row[1],
        kind=row[2],
        content=row[3],
        content_hash=row[4],
        importance=row[5],
        trust=row[6],
        provenance=Provenance.model_validate(row[7]),
        metadata=row[8],
        created_at=row[9].astimezone(UTC),
        expires_at=None if row[10] is None else row[10].astimezone(UTC),
    )


def _normalised(values: Mapping[str, float], *, tie: Callable[[float], float]) -> dict[str, float]:
    """Min-max normalisation to [0, 1]; when every value is equal, `tie(value)` for all."""
    if not values:
        return {}
    low, high = min(values.values()), max(values.values())
    if high - low <= 1e-12:
        return dict.fromkeys(values, tie(high))
    return {key: (value - low) / (high - low) for key, value in values.items()}


def _any_word_query(text: str) -> str:
    """The `websearch_to_tsquery` input for a search text. Plain text (a question, a task) matches
    documents holding any of its words, ranked by how many and how close (`ts_rank_cd`): with
    websearch's default AND, a natural-language query would only match documents containing every
    one of its words, and the text half of a hybrid search would rarely contribute. Text using
    websearch syntax deliberately (a quoted phrase, `or`) is passed unchanged."""
    stripped = text.strip()
    words = stripped.split()
    if '"' in stripped or any(word.lower() == "or" for word in words):
        return stripped
    # A leading '-' is websearch's NOT, which under OR would match almost everything: drop it.
    return " or ".join(word for word in (word.lstrip("-") for word in words) if word)


def _width(vectors: Vectors) -> int | None:
    shape = np.shape(vectors)
    return int(shape[-1]) if shape else None


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _broken(conn: Connection, exc: BaseException) -> bool:
    """Drop the connection after it failed, unless the statement alone failed (a timeout, a lock
    wait): those leave the session usable."""
    if conn.closed or conn.broken:
        return True
    if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _alive(conn: Connection) -> bool:
    if conn.closed or conn.broken:
        return False
    conn.execute("SELECT 1")
    return True


class PgVectorStore(VectorStore):
    """See the module docstring. `pool_size` connections serve concurrent calls;
    `statement_timeout_s` bounds every statement on the server (`StoreTimeout` past it)."""

    backend = "pgvector"

    def __init__(self, url: str, *, pool_size: int = 4, statement_timeout_s: float = 30.0) -> None:
        self.location = redact_secrets(url)
        # What the driver might echo of the URL in its errors, masked wherever it appears there.
        self._secrets = dsn_secrets(url)
        scheme = urlsplit(url).scheme
        if scheme not in ("postgresql", "postgres"):
            raise InvalidStoreUrl(
                "pgvector needs a postgresql:// URL", backend=self.backend, location=self.location
            )
        if statement_timeout_s <= 0:
            raise ValueError("statement_timeout_s must be positive")
        self._url = url
        self.statement_timeout_s = statement_timeout_s
        self._dimensions: dict[str, int] = {}
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._iterative_scan = False  # pgvector >= 0.8, found when the schema is set up
        self._closed = False
        self._stats_lock = threading.Lock()
        self._unanalysed: dict[str, int] = {}  # rows written per collection since the last ANALYZE
        self._analysed_size: dict[str, float] = {}  # rows the last ANALYZE counted
        self._threads: ThreadConnections[Connection] = ThreadConnections(
            connect=self._connect,
            close=lambda conn: conn.close(),
            broken=_broken,
            size=pool_size,
            name="memory-pgvector",
            alive=_alive,
        )

    def __repr__(self) -> str:
        return f"PgVectorStore({self.location!r})"

    # --- connections and errors -----------------------------------------------------------

    def _connect(self) -> Connection:
        conn = psycopg.connect(
            self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S, application_name="memory-pgvector"
        )
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            timeout_ms = max(1, round(self.statement_timeout_s * 1000))
            conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(timeout_ms)))
            self._ensure_schema(conn)
            register_vector(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_schema(self, conn: Connection) -> None:
        """The extension and the registry, once per store, under the DDL lock."""
        with self._schema_lock:
            if self._schema_ready:
                return
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
                if row is None:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    row = conn.execute(
                        "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                    ).fetchone()
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, "
                        "dimensions INTEGER NOT NULL CHECK (dimensions > 0), "
                        "table_name TEXT NOT NULL, "
                        "created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    ).format(sql.Identifier(REGISTRY_TABLE))
                )
            version = tuple(int(part) for part in re.findall(r"\d+", str(row[0] if row else "0"))[:2])
            self._iterative_scan = version >= (0, 8)
            self._schema_ready = True

    def _error(self, exc: BaseException, operation: str, collection: str | None) -> VectorStoreError:
        """A driver (or any other) exception as the typed error callers handle."""
        if isinstance(exc, VectorStoreError):
            return exc
        detail = " ".join(str(exc).split()) or type(exc).__name__
        where: dict[str, Any] = {
            "backend": self.backend,
            "location": self.location,
            "collection": collection,
            "operation": operation,
            "known": self._secrets,
        }
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return StoreTimeout(
                f"no answer within the statement timeout ({self.statement_timeout_s:g}s): {detail}", **where
            )
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return StoreTimeout(f"a lock was not granted in time: {detail}", **where)
        if isinstance(exc, psycopg.errors.UndefinedTable) and collection is not None:
            self._dimensions.pop(collection, None)
            return VectorStoreError(
                f"the collection does not exist (create it with ensure_collection): {detail}", **where
            )
        if isinstance(exc, psycopg.errors.DataException) and "dimensions" in detail:
            if collection is not None:
                self._dimensions.pop(collection, None)  # recreated elsewhere with other dimensions?
            return DimensionMismatch(detail, **where)
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return StoreUnavailable(detail, **where)
        if isinstance(exc, psycopg.Error):
            return VectorStoreError(detail, **where)
        return VectorStoreError(f"{type(exc).__name__}: {detail}", **where)

    async def _run(
        self, operation: str, collection: str | None, body: Callable[[Connection], T], *, retry: bool = True
    ) -> T:
        """`body(connection)` on a worker thread, every exception turned into a VectorStoreError.
        Every write body is one transaction, so a retried body never half-applies."""
        if self._closed:
            raise VectorStoreError(
                "the store is closed",
                backend=self.backend,
                location=self.location,
                collection=collection,
                operation=operation,
            )
        lost: list[bool] = []

        def call(conn: Connection) -> T:
            try:
                return body(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                lost.append(conn.closed or conn.broken)
                raise

        try:
            try:
                return await self._threads.run(call)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                # A pooled connection the server dropped (a restart, `platform down` and up, an
                # idle timeout) fails its next statement before the idle check notices: once,
                # on a new connection. Not for deletes, whose count a retry could misreport.
                if not (retry and lost and lost[0]):
                    raise
                return await self._threads.run(body)
        except Exception as exc:
            raise self._error(exc, operation, collection) from None

    def _fail(self, detail: str, operation: str, collection: str | None) -> VectorStoreError:
        return VectorStoreError(
            detail, backend=self.backend, location=self.location, collection=collection, operation=operation
        )

    def _table(self, collection: str, operation: str) -> sql.Identifier:
        _check_name(collection, location=self.location, operation=operation)
        return sql.Identifier(table_name(collection))

    async def _collection_dimensions(self, collection: str, operation: str, given: int | None = None) -> int:
        """The collection's dimensions, cached. A cached value that disagrees with the vectors
        `given` is read again first: the collection may have been dropped and recreated with
        other dimensions by another process."""
        _check_name(collection, location=self.location, operation=operation)
        known = self._dimensions.get(collection)
        if known is not None and (given is None or given == known):
            return known

        def body(conn: Connection) -> int | None:
            row = conn.execute(
                sql.SQL("SELECT dimensions FROM {} WHERE name = %s").format(sql.Identifier(REGISTRY_TABLE)),
                (collection,),
            ).fetchone()
            return None if row is None else int(row[0])

        found = await self._run(operation, collection, body)
        if found is None:
            raise self._fail(
                "the collection does not exist (create it with ensure_collection)", operation, collection
            )
        self._dimensions[collection] = found
        return found

    def _matrix(
        self, vectors: Vectors, rows: int, dimensions: int, operation: str, collection: str
    ) -> Vectors:
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim == 1 and rows == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.ndim != 2 or matrix.shape[0] != rows:
            raise ValueError(f"expected vectors of shape ({rows}, {dimensions}), got {matrix.shape}")
        if matrix.shape[1] != dimensions:
            raise DimensionMismatch(
                f"vectors have {matrix.shape[1]} dimensions, the collection has {dimensions}",
                backend=self.backend,
                location=self.location,
                collection=collection,
                operation=operation,
            )
        if not np.isfinite(matrix).all():
            raise self._fail("vectors must be finite (a NaN or infinity was given)", operation, collection)
        return matrix

    # --- collections ----------------------------------------------------------------------

    async def ensure_collection(self, collection: str, dimensions: int) -> None:
        operation = "ensure_collection"
        _check_name(collection, location=self.location, operation=operation)
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
            raise ValueError(f"dimensions must be a positive integer, not {dimensions!r}")
        if dimensions > MAX_DIMENSIONS:
            raise self._fail(
                f"{dimensions} dimensions: pgvector's HNSW index supports at most {MAX_DIMENSIONS}",
                operation,
                collection,
            )
        if self._dimensions.get(collection) == dimensions:
            return
        registry = sql.Identifier(REGISTRY_TABLE)

        def body(conn: Connection) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                row = conn.execute(
                    sql.SQL("SELECT dimensions FROM {} WHERE name = %s").format(registry), (collection,)
                ).fetchone()
                if row is not None and row[0] != dimensions:
                    raise DimensionMismatch(
                        f"the collection has {row[0]} dimensions, not {dimensions} (written by another "
                        "embedder?)",
                        backend=self.backend,
                        location=self.location,
                        collection=collection,
                        operation=operation,
                    )
                if row is None:
                    conn.execute(
                        sql.SQL("INSERT INTO {} (name, dimensions, table_name) VALUES (%s, %s, %s)").format(
                            registry
                        ),
                        (collection, dimensions, table_name(collection)),
                    )
                for statement in _table_ddl(collection, dimensions):
                    conn.execute(statement)

        await self._run(operation, collection, body)
        self._dimensions[collection] = dimensions

    async def collections(self) -> list[CollectionInfo]:
        def body(conn: Connection) -> list[CollectionInfo]:
            rows = conn.execute(
                sql.SQL("SELECT name, dimensions FROM {} ORDER BY name").format(
                    sql.Identifier(REGISTRY_TABLE)
                )
            ).fetchall()
            infos = []
            for name, dimensions in rows:
                counted = conn.execute(
                    sql.SQL("SELECT count(*), count(DISTINCT namespace) FROM {}").format(
                        sql.Identifier(table_name(name))
                    )
                ).fetchone()
                items, namespaces = counted if counted is not None else (0, 0)
                infos.append(
                    CollectionInfo(name=name, dimensions=dimensions, items=items, namespaces=namespaces)
                )
            return infos

        return await self._run("collections", None, body)

    async def drop_collection(self, collection: str) -> None:
        operation = "drop_collection"
        table = self._table(collection, operation)

        def body(conn: Connection) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE name = %s").format(sql.Identifier(REGISTRY_TABLE)),
                    (collection,),
                )

        await self._run(operation, collection, body)
        self._dimensions.pop(collection, None)
        with self._stats_lock:
            self._unanalysed.pop(collection, None)
            self._analysed_size.pop(collection, None)

    # --- writes ---------------------------------------------------------------------------

    async def upsert(self, collection: str, items: Sequence[MemoryItem], vectors: Vectors) -> WriteAck:
        operation = "upsert"
        if not items:
            await self._collection_dimensions(collection, operation)
            return WriteAck()
        dimensions = await self._collection_dimensions(collection, operation, _width(vectors))
        matrix = self._matrix(vectors, len(items), dimensions, operation, collection)

        # Within the batch: the last item of a (namespace, id) wins; of items with equal content
        # in one namespace the first is written and the others are its duplicates.
        last: dict[tuple[str, str], int] = {}
        for index, item in enumerate(items):
            last[(item.namespace, item.id)] = index
        by_content: dict[tuple[str, str], str] = {}
        batch_duplicates: dict[tuple[str, str], str] = {}
        keep: list[int] = []
        for key, index in last.items():
            item = items[index]
            content_key = (item.namespace, item.content_hash)
            if content_key in by_content:
                batch_duplicates[key] = by_content[content_key]
            else:
                by_content[content_key] = item.id
                keep.append(index)

        columns: list[list[Any]] = [[] for _ in range(12)]
        for index in keep:
            item = items[index]
            try:
                provenance = json.dumps(item.provenance.model_dump(mode="json", exclude_none=True))
                metadata = json.dumps(item.metadata, allow_nan=False, separators=(",", ":"))
            except (TypeError, ValueError) as exc:
                raise self._fail(
                    f"item {item.id!r}: metadata is not JSON: {exc}", operation, collection
                ) from None
            for column, value in zip(
                columns,
                (
                    item.id,
                    item.namespace,
                    item.kind,
                    item.content,
                    item.content_hash,
                    float(item.importance),
                    item.trust,
                    provenance,
                    metadata,
                    _utc(item.created_at),
                    None if item.expires_at is None else _utc(item.expires_at),
                    matrix[index],
                ),
                strict=True,
            ):
                column.append(value)
        query = sql.SQL(_UPSERT).format(table=sql.Identifier(table_name(collection)))
        unique_index = f"{table_name(collection)}_ns_hash"

        def body(conn: Connection) -> list[tuple[str, str, str | None]]:
            for attempt in range(_UPSERT_ATTEMPTS):
                try:
                    with conn.transaction():
                        return [(row[0], row[1], row[2]) for row in conn.execute(query, columns).fetchall()]
                except psycopg.errors.UniqueViolation as exc:
                    # Another transaction committed the same content meanwhile: the retry sees it
                    # and reports it as a duplicate.
                    if exc.diag.constraint_name != unique_index or attempt == _UPSERT_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

        rows = await self._run(operation, collection, body)
        written_keys = {(namespace, item_id) for namespace, item_id, stored in rows if stored is None}
        stored_duplicates = {(namespace, item_id): stored for namespace, item_id, stored in rows if stored}
        duplicates = {item_id: stored for (_, item_id), stored in stored_duplicates.items()}
        for (namespace, item_id), first in batch_duplicates.items():
            duplicates[item_id] = stored_duplicates.get((namespace, first), first)
        if self._analyse_due(collection, len(written_keys)):
            await self._analyse(collection)
        return WriteAck(
            written=[
                items[index].id for index in keep if (items[index].namespace, items[index].id) in written_keys
            ],
            duplicates=duplicates,
        )

    def _analyse_due(self, collection: str, written: int) -> bool:
        with self._stats_lock:
            due = self._unanalysed.get(collection, 0) + written
            if due < max(_ANALYZE_AFTER_ROWS, _ANALYZE_GROWTH * self._analysed_size.get(collection, 0.0)):
                self._unanalysed[collection] = due
                return False
            self._unanalysed[collection] = 0
            return True

    async def _analyse(self, collection: str) -> None:
        """Refresh the planner's statistics of a collection that grew. The write it follows is
        committed already: a failure here is logged, not raised."""
        table = sql.Identifier(table_name(collection))

        def body(conn: Connection) -> float:
            conn.execute(sql.SQL("ANALYZE {}").format(table))
            row = conn.execute(
                "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table_name(collection),)
            )
            found = row.fetchone()
            return float(found[0]) if found is not None else 0.0

        try:
            size = await self._run("analyze", collection, body)
        except VectorStoreError as exc:
            log.warning("%s (the write before it is committed; search plans may be slower)", exc)
            return
        with self._stats_lock:
            self._analysed_size[collection] = size

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
        table = self._table(collection, operation)
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        if ids is not None:
            if isinstance(ids, str):
                raise TypeError("ids must be a sequence of ids, not a string")
            if not ids:
                return 0
            conditions.append(sql.SQL("id = ANY(%s)"))
            params.append(list(ids))
        if namespace is not None:
            conditions.append(sql.SQL("namespace = %s"))
            params.append(namespace)
        query = sql.SQL("DELETE FROM {} WHERE {}").format(table, sql.SQL(" AND ").join(conditions))

        def body(conn: Connection) -> int:
            return conn.execute(query, params).rowcount

        return await self._run(operation, collection, body, retry=False)

    async def purge_expired(self, collection: str, now: datetime) -> int:
        operation = "purge_expired"
        table = self._table(collection, operation)
        moment = _aware(now)

        def body(conn: Connection) -> int:
            return conn.execute(
                sql.SQL("DELETE FROM {} WHERE expires_at IS NOT NULL AND expires_at <= %s").format(table),
                (moment,),
            ).rowcount

        return await self._run(operation, collection, body, retry=False)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, collection: str, ids: Sequence[str]) -> list[MemoryItem]:
        """Items as stored, expired or not (purge_expired removes those). An id used in several
        namespaces gives the newest of its items (as the weaviate backend does)."""
        operation = "get"
        table = self._table(collection, operation)
        if isinstance(ids, str):
            raise TypeError("ids must be a sequence of ids, not a string")
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []

        def body(conn: Connection) -> list[MemoryItem]:
            rows = conn.execute(
                sql.SQL(
                    "SELECT DISTINCT ON (id) {} FROM {} WHERE id = ANY(%s) "
                    "ORDER BY id, created_at DESC, namespace"
                ).format(_SELECT, table),
                (wanted,),
            ).fetchall()
            found = {row[0]: _item(row) for row in rows}
            return [found[item_id] for item_id in wanted if item_id in found]

        return await self._run(operation, collection, body)

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
        table = self._table(collection, operation)
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where = sql.SQL("WHERE namespace = %s") if namespace is not None else sql.SQL("")
        query = sql.SQL("SELECT {} FROM {} {} ORDER BY created_at DESC, id LIMIT %s OFFSET %s").format(
            _SELECT, table, where
        )
        params: list[Any] = ([namespace] if namespace is not None else []) + [limit, offset]

        def body(conn: Connection) -> list[MemoryItem]:
            return [_item(row) for row in conn.execute(query, params).fetchall()]

        return await self._run(operation, collection, body)

    async def namespaces(self, collection: str) -> list[str]:
        operation = "namespaces"
        table = self._table(collection, operation)

        def body(conn: Connection) -> list[str]:
            rows = conn.execute(sql.SQL("SELECT DISTINCT namespace FROM {} ORDER BY 1").format(table))
            return [row[0] for row in rows.fetchall()]

        return await self._run(operation, collection, body)

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
        moment = _aware(now)
        query_text = _any_word_query(text) if text is not None else ""
        use_text = bool(query_text) and alpha < 1.0
        use_vector = alpha > 0.0 or not use_text
        if use_vector and vector is None:
            raise ValueError("a search with alpha > 0 (or without text) needs a vector")
        dimensions = await self._collection_dimensions(
            collection, operation, None if vector is None else _width(vector)
        )
        query_vector = (
            None
            if vector is None
            else self._matrix(vector, 1, dimensions, operation, collection).reshape(dimensions)
        )
        table = sql.Identifier(table_name(collection))

        where: list[sql.Composable] = [
            sql.SQL("namespace = %s"),
            sql.SQL("(expires_at IS NULL OR expires_at > %s)"),
        ]
        where_params: list[Any] = [namespace, moment]
        for key, value in (filters or {}).items():
            if not isinstance(key, str):
                raise ValueError(f"filter keys are metadata keys (strings), not {key!r}")
            try:
                encoded = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"filter {key!r}: the value is not JSON: {exc}") from None
            where.append(sql.SQL("metadata -> %s = %s::jsonb"))
            where_params += [key, encoded]
        condition = sql.SQL(" AND ").join(where)
        similarity = (
            sql.SQL("1 - (embedding <=> %b)") if query_vector is not None else sql.SQL("NULL::float8")
        )
        similarity_params = [query_vector] if query_vector is not None else []
        tsquery = sql.SQL("websearch_to_tsquery({}::regconfig, %s)").format(sql.Literal(TEXT_SEARCH_CONFIG))
        rank = sql.SQL("ts_rank_cd(content_tsv, {})").format(tsquery) if use_text else sql.SQL("NULL::float4")
        rank_params = [query_text] if use_text else []
        hybrid = use_vector and use_text
        # Candidates: the relaxed-order scan may emit a near neighbour a little late, so a pure
        # vector search reads a few more than k; a hybrid one reads enough of each half to fuse.
        limit = max(k * 4, _HYBRID_CANDIDATES) if use_text else max(k * 2, 20)

        # Each half selects its candidates in a subquery and scores the other way only those in
        # the outer query: a target-list expression is otherwise evaluated for every row the
        # scan reads before the sort (ts_rank_cd over a whole namespace).
        queries: list[tuple[sql.Composed, list[Any]]] = []
        if use_vector:
            queries.append(
                (
                    sql.SQL(
                        "SELECT {}, similarity, {} AS rank FROM ("
                        "SELECT *, 1 - (embedding <=> %b) AS similarity FROM {} WHERE {} "
                        "ORDER BY embedding <=> %b LIMIT %s) AS candidates"
                    ).format(_SELECT, rank, table, condition),
                    [*rank_params, query_vector, *where_params, query_vector, limit],
                )
            )
        if use_text:
            queries.append(
                (
                    sql.SQL(
                        "SELECT {}, {} AS similarity, rank FROM ("
                        "SELECT *, ts_rank_cd(content_tsv, {}) AS rank FROM ("
                        "SELECT * FROM {} WHERE {} AND content_tsv @@ {} ORDER BY created_at DESC LIMIT %s"
                        ") AS matched ORDER BY rank DESC, id LIMIT %s) AS candidates"
                    ).format(_SELECT, similarity, tsquery, table, condition, tsquery),
                    [*similarity_params, query_text, *where_params, query_text, TEXT_RANK_BUDGET, limit],
                )
            )
        ef_search = min(_MAX_EF_SEARCH, max(_MIN_EF_SEARCH, 2 * limit))

        def body(conn: Connection) -> list[tuple[Any, ...]]:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef_search)))
                if self._iterative_scan:
                    conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                rows: list[tuple[Any, ...]] = []
                for query, params in queries:
                    rows += conn.execute(query, params).fetchall()
                return rows

        rows = await self._run(operation, collection, body)
        candidates: dict[str, tuple[MemoryItem, float | None, float | None]] = {}
        for row in rows:
            if row[0] not in candidates:
                similarity_value = row[len(_COLUMNS)]
                rank_value = row[len(_COLUMNS) + 1]
                candidates[row[0]] = (
                    _item(row),
                    None
                    if similarity_value is None or math.isnan(similarity_value)
                    else float(similarity_value),
                    None if rank_value is None else float(rank_value),
                )

        hits: list[SearchHit] = []
        if not use_text:
            for item, sim, _ in candidates.values():
                hits.append(SearchHit(item=item, score=_clip(sim or 0.0), vector_score=sim))
        else:
            weight = alpha if hybrid else 0.0
            vector_norm = _normalised(
                {key: sim or 0.0 for key, (_, sim, _) in candidates.items()}, tie=lambda _: 1.0
            )
            text_norm = _normalised(
                {key: rank_value or 0.0 for key, (_, _, rank_value) in candidates.items()},
                tie=lambda value: 1.0 if value > 0 else 0.0,
            )
            for key, (item, sim, rank_value) in candidates.items():
                score = weight * vector_norm.get(key, 0.0) + (1.0 - weight) * text_norm.get(key, 0.0)
                hits.append(SearchHit(item=item, score=_clip(score), vector_score=sim, text_score=rank_value))
        hits.sort(
            key=lambda hit: (
                -hit.score,
                -(hit.vector_score if hit.vector_score is not None else -2.0),
                hit.item.id,
            )
        )
        return hits[:k]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._threads.aclose()
