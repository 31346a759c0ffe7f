"""Weaviate (weaviate-client v4, async client): a memory collection per Weaviate collection, a
tenant per namespace, bring-your-own vectors.

URL: `http[s]://host[:port][/][?grpc_port=N&grpc_host=H]`. The URL names the REST endpoint (port 80
or 443 by scheme when left out, as for any URL; Weaviate's own default is 8080, so give it). The v4
client also needs Weaviate's gRPC endpoint (queries and batch writes go over gRPC): the same host,
port 50051 unless `grpc_port` says otherwise, `grpc_host` when gRPC is served under another name
(Weaviate Cloud's `grpc-<cluster>`); gRPC uses TLS when the URL is https. Credentials never go in
the URL: `api_key_env` names the environment variable holding the API key, read at connect time.

Layout:

- Collections. Memory collection `support-episodes` is the Weaviate collection
  `Memory_support_episodes`. Weaviate class names start with an uppercase letter, allow only
  `[A-Za-z0-9_]`, and compare case-insensitively, so the mapping only emits lowercase after the
  prefix: a name of lowercase letters, digits and dashes that starts with a letter or digit (every
  spec resource name) has its dashes turned to underscores; any other name becomes `Memory__`
  followed by the lowercase hex of its UTF-8 bytes (`My.Docs` -> `Memory__4d792e446f6373`). The
  two forms cannot meet (a plain tail never starts with `_`), so the mapping is reversible
  (`collection_from_class_name`).
- Dimensions. Weaviate fixes a vector index's length only at the first insert, so the collection's
  description records `{"agent_platform_memory": 1, "collection": ..., "dimensions": ...}`; this
  store checks every vector against it before writing and raises `DimensionMismatch` itself. The
  record also marks the collections this store made: it refuses to touch a `Memory_*` collection
  without one.
- Namespaces. Multi-tenancy is on and every namespace is its own tenant, so isolation is
  Weaviate's: a query names one tenant and cannot see another's objects. Tenant names allow
  `[A-Za-z0-9_-]`, at most 64 characters; `tenant_name` keeps lowercase letters, digits and `-` and
  writes every other byte of the key's UTF-8 as `_xx` (lowercase hex), so
  `tenant=acme/agent=support` is `tenant_3dacme_2fagent_3dsupport` (lowercase only, because
  tenants are shards and shard names should not depend on a file system's case rules). A key
  whose encoding is longer than 64 becomes a prefix of it (whole escapes, at most 30 characters),
  `_h`, and a 128-bit BLAKE2b digest of the key; `_h` never occurs in a plain encoding (an escape
  is followed by two hex digits), so the forms cannot meet. Every object also stores its namespace
  key as a property, which is where `namespaces()` reads keys from. Tenants are created on the
  first write (`auto_tenant_creation`), activated when used (`auto_tenant_activation`), and
  removed when their namespace is deleted; a query on a namespace without a tenant finds nothing.
- Objects. The object UUID is `generate_uuid5(item.id)`, so writing an id again replaces it. One
  property per item field: `item_id` (`id` is reserved), `content` (word-tokenized, the only
  BM25-searched property), `content_hash`, `namespace`, `kind`, `trust` (field-tokenized,
  filterable), `importance`, `created_at` and `expires_at` (DATE; the inverted index records null
  state so "never expires" can be filtered on), `provenance` and `metadata` (JSON text, not
  indexed).
- Metadata filters. `filters` are equality on top-level metadata keys, whose values are any JSON.
  Each object carries `meta_pairs`, a field-tokenized text array holding one token per top-level
  key: a BLAKE2b-128 digest of the canonical JSON of `[key, value]` (sorted keys, integral floats
  as integers, so `1.0` equals `1` as JSON numbers do while `true` does not). A filter becomes
  `contains_all` of its tokens, evaluated by Weaviate inside the search, so `k` hits are `k`
  matches. Metadata must be JSON (NaN and infinities are refused, as by the pgvector backend).
- Search. Expired items are filtered out in the query (`expires_at` is null or after `now`). A
  query with no text (or `alpha` 1) is `near_vector`: score and `vector_score` are `1 -` the cosine
  distance (score clipped to [0, 1]). Otherwise it is `hybrid` with relative-score fusion, whose
  score is `alpha * vector + (1 - alpha) * text`, each min-max normalised over Weaviate's
  candidates; there `vector_score` is computed from the returned vectors and `text_score` is the
  raw BM25 score Weaviate reports in `explain_score`.

Errors: as in the pgvector backend, a caller's mistake (a wrong vector shape, `k` below 1, `alpha`
outside [0, 1], a non-JSON filter value, a naive `now`, `delete` with neither namespace nor ids)
raises `ValueError` or `TypeError` before any I/O; everything else is a `VectorStoreError`.

Costs: Weaviate has no query across tenants, so `get`, `list_items` without a namespace, `delete`
of ids without a namespace, `purge_expired`, `namespaces` and `collections` visit every tenant of
the collection (16 at a time). Caveat of a tenant per namespace: an item id is unique within its
namespace, not the collection; writing an existing id under another namespace leaves the first
object in place (`get` then returns the newest).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import math
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import weaviate
from weaviate import exceptions as wexc
from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter, FilterReturn, HybridFusion, MetadataQuery, Sort
from weaviate.collections import CollectionAsync
from weaviate.util import generate_uuid5

from agent_platform.memory.items import CollectionInfo, MemoryItem, Provenance, SearchHit, WriteAck
from agent_platform.memory.stores.base import (
    DimensionMismatch,
    InvalidStoreUrl,
    StoreTimeout,
    StoreUnavailable,
    Vectors,
    VectorStore,
    VectorStoreError,
    check_search_arguments,
)
from agent_platform.redaction import redact_secrets

__all__ = [
    "DEFAULT_GRPC_PORT",
    "WeaviateEndpoint",
    "WeaviateStore",
    "collection_class_name",
    "collection_from_class_name",
    "metadata_token",
    "namespace_from_tenant",
    "parse_weaviate_url",
    "tenant_name",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")

BACKEND = "weaviate"
DEFAULT_GRPC_PORT = 50051

COLLECTION_PREFIX = "Memory_"
_CLASS_NAME_MAX = 255  # Weaviate: ^[A-Z][_0-9A-Za-z]{0,254}$
_PLAIN_COLLECTION = re.compile(r"[a-z0-9][a-z0-9-]*")

TENANT_NAME_MAX = 64
_TENANT_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_HEX = frozenset("0123456789abcdef")
_DIGEST_BYTES = 16
_HASHED_MARK = "_h"
_HASHED_PREFIX_MAX = TENANT_NAME_MAX - len(_HASHED_MARK) - 2 * _DIGEST_BYTES  # 30

_VECTOR = "default"  # the collection's one (named) vector
_FANOUT = 16  # tenants visited at once
_ID_CHUNK = 500  # uuids per by-id filter
_INSERT_CHUNK = 500  # objects per insert_many (one gRPC message)
_HASH_CHUNK = 200  # content hashes per duplicate lookup
_PURGE_ROUNDS = 1000  # delete_many deletes at most QUERY_MAXIMUM_RESULTS per call

_MARKER_KEY = "agent_platform_memory"
_GRPC_PORT_VALUE = re.compile(r"[0-9]{1,5}")
_HOST_VALUE = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")
_BM25_EXPLAIN = re.compile(
    r"Result Set '?keyword,bm25'?\) Document \S+: original score (?P<score>[-+0-9.eE]+|NaN|[+-]?Inf)"
)

# Properties read back to rebuild an item (`meta_pairs` is only for filtering).
_ITEM_PROPERTIES = ["item_id", *list(MemoryItem.model_fields)[1:]]  # `id` is reserved in Weaviate


def _keyword(name: str) -> Property:
    """A text property matched whole in filters and left out of BM25."""
    return Property(
        name=name,
        data_type=DataType.TEXT,
        tokenization=Tokenization.FIELD,
        index_filterable=True,
        index_searchable=False,
    )


def _stored_text(name: str) -> Property:
    """A text property that is stored but not indexed (JSON blobs)."""
    return Property(name=name, data_type=DataType.TEXT, index_filterable=False, index_searchable=False)


_PROPERTIES = [
    _keyword("item_id"),
    _keyword("namespace"),
    _keyword("kind"),
    Property(
        name="content",
        data_type=DataType.TEXT,
        tokenization=Tokenization.WORD,
        index_searchable=True,
        index_filterable=False,
    ),
    _keyword("content_hash"),
    Property(name="importance", data_type=DataType.NUMBER),
    _keyword("trust"),
    _stored_text("provenance"),
    _stored_text("metadata"),
    Property(
        name="meta_pairs",
        data_type=DataType.TEXT_ARRAY,
        tokenization=Tokenization.FIELD,
        index_filterable=True,
        index_searchable=False,
    ),
    Property(name="created_at", data_type=DataType.DATE),
    Property(name="expires_at", data_type=DataType.DATE),
]


# --- URL ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeaviateEndpoint:
    """Where the client connects: REST and gRPC. Hosts are ready for a URL (IPv6 in brackets)."""

    http_host: str
    http_port: int
    http_secure: bool
    grpc_host: str
    grpc_port: int
    grpc_secure: bool

    @property
    def rest(self) -> str:
        return f"{'https' if self.http_secure else 'http'}://{self.http_host}:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}{' (TLS)' if self.grpc_secure else ''}"


def _location(url: str) -> str:
    return redact_secrets(url)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_weaviate_url(url: str) -> WeaviateEndpoint:
    """The endpoints a Weaviate URL names (see the module docstring), or `InvalidStoreUrl` saying
    what is wrong with it. Unknown query parameters are refused, so a typo is not ignored."""
    location = _location(url)

    def bad(why: str) -> InvalidStoreUrl:
        return InvalidStoreUrl(why, backend=BACKEND, location=location, operation="open")

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise bad(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise bad("a Weaviate URL is http:// or https:// (its REST endpoint), e.g. http://localhost:8080")
    host = parts.hostname
    if not host:
        raise bad("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise bad(
            "credentials do not belong in the URL: put the API key in an environment variable "
            "and name it with api_key_env"
        )
    if parts.path not in ("", "/"):
        raise bad(f"Weaviate is served at the root; a path ({parts.path!r}) is not supported")
    if parts.fragment:
        raise bad("a URL fragment is not supported")
    if port == 0:
        raise bad("port 0 is not a port to connect to")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise bad(f"malformed query string: {exc}") from None
    unknown = sorted(set(query) - {"grpc_port", "grpc_host"})
    if unknown:
        raise bad(f"unknown query parameter {', '.join(unknown)} (supported: grpc_port, grpc_host)")
    for name, values in query.items():
        if len(values) != 1:
            raise bad(f"{name} is given {len(values)} times")

    secure = scheme == "https"
    grpc_port = DEFAULT_GRPC_PORT
    if "grpc_port" in query:
        raw = query["grpc_port"][0]
        if not _GRPC_PORT_VALUE.fullmatch(raw) or not 1 <= int(raw) <= 65535:
            raise bad(f"grpc_port must be a port number (1-65535), not {raw!r}")
        grpc_port = int(raw)
    grpc_host = _bracketed(host)
    if "grpc_host" in query:
        raw = query["grpc_host"][0]
        if not _HOST_VALUE.fullmatch(raw):
            raise bad(f"grpc_host must be a host name or address, not {raw!r}")
        grpc_host = raw
    return WeaviateEndpoint(
        http_host=_bracketed(host),
        http_port=port if port is not None else (443 if secure else 80),
        http_secure=secure,
        grpc_host=grpc_host,
        grpc_port=grpc_port,
        grpc_secure=secure,
    )


# --- names ----------------------------------------------------------------------------------------


def collection_class_name(collection: str) -> str:
    """The Weaviate collection holding memory collection `collection` (see the module docstring).
    `ValueError` for an empty name or one too long for Weaviate."""
    if not collection:
        raise ValueError("a collection name cannot be empty")
    if _PLAIN_COLLECTION.fullmatch(collection):
        tail = collection.replace("-", "_")
    else:
        tail = "_" + collection.encode("utf-8", "surrogatepass").hex()
    name = COLLECTION_PREFIX + tail
    if len(name) > _CLASS_NAME_MAX:
        raise ValueError(
            f"collection name {collection[:40]!r}... maps to a {len(name)}-character Weaviate collection "
            f"name (at most {_CLASS_NAME_MAX})"
        )
    return name


def collection_from_class_name(name: str) -> str | None:
    """The memory collection a Weaviate collection name holds, or None when `collection_class_name`
    does not produce that name (another application's collection)."""
    if not name.startswith(COLLECTION_PREFIX):
        return None
    tail = name[len(COLLECTION_PREFIX) :]
    if tail.startswith("_"):
        try:
            candidate = bytes.fromhex(tail[1:]).decode("utf-8", "surrogatepass")
        except ValueError:
            return None
    else:
        candidate = tail.replace("_", "-")
    try:
        return candidate if collection_class_name(candidate) == name else None
    except ValueError:
        return None


def _escaped(namespace: str) -> Iterator[str]:
    for ch in namespace:
        if ch in _TENANT_SAFE:
            yield ch
        else:
            yield from (f"_{byte:02x}" for byte in ch.encode("utf-8", "surrogatepass"))


def tenant_name(namespace: str) -> str:
    """The tenant holding a namespace's objects (see the module docstring): `[a-z0-9_-]`, 1-64
    characters, distinct for distinct keys. `ValueError` for an empty key."""
    if not namespace:
        raise ValueError("a namespace cannot be empty")
    pieces = list(_escaped(namespace))
    encoded = "".join(pieces)
    if len(encoded) <= TENANT_NAME_MAX:
        return encoded
    prefix = ""
    for piece in pieces:  # whole escapes only, so the prefix stays a plain encoding
        if len(prefix) + len(piece) > _HASHED_PREFIX_MAX:
            break
        prefix += piece
    digest = hashlib.blake2b(namespace.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_BYTES)
    return f"{prefix}{_HASHED_MARK}{digest.hexdigest()}"


def namespace_from_tenant(name: str) -> str | None:
    """The namespace key a tenant name encodes, or None when it is not `tenant_name`'s plain form
    (a hashed long key, whose key is read from the objects, or a foreign tenant)."""
    out = bytearray()
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "_":
            pair = name[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                return None
            out.append(int(pair, 16))
            i += 3
        elif ch in _TENANT_SAFE:
            out.append(ord(ch))
            i += 1
        else:
            return None
    try:
        namespace = out.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    return namespace if namespace and tenant_name(namespace) == name else None


# --- items <-> objects ----------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """`value` with JSON's notion of equality made literal: integral floats as ints, mappings with
    string keys. `TypeError`/`ValueError` for what JSON cannot hold."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a JSON number")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys are strings, not {type(key).__name__}")
            out[key] = _canonical(item)
        return out
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def metadata_token(key: str, value: Any) -> str:
    """The `meta_pairs` token for metadata `key` equal to `value`: equal for JSON-equal values."""
    text = json.dumps(
        [key, _canonical(value)], sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _metadata_tokens(metadata: Mapping[str, Any]) -> list[str]:
    tokens = []
    for key, value in metadata.items():
        try:
            tokens.append(metadata_token(key, value))
        except (TypeError, ValueError):
            continue  # not JSON: stored in `metadata`, but no filter can match it
    return tokens


def _utc(moment: datetime) -> datetime:
    """Aware datetimes as they are; naive ones are taken to be UTC (as the Weaviate client does)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def item_properties(item: MemoryItem) -> dict[str, Any]:
    """The Weaviate properties of an item. `ValueError` when its metadata is not JSON."""
    try:
        metadata = json.dumps(item.metadata, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"item {item.id!r}: metadata is not JSON ({exc})") from None
    properties: dict[str, Any] = {
        "item_id": item.id,
        "namespace": item.namespace,
        "kind": item.kind,
        "content": item.content,
        "content_hash": item.content_hash,
        "importance": float(item.importance),
        "trust": item.trust,
        "provenance": item.provenance.model_dump_json(),
        "metadata": metadata,
        "meta_pairs": _metadata_tokens(item.metadata),
        "created_at": _utc(item.created_at),
    }
    if item.expires_at is not None:  # left out is null: "never expires"
        properties["expires_at"] = _utc(item.expires_at)
    return properties


def _as_datetime(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, str):
        return _utc(datetime.fromisoformat(value))
    raise ValueError(f"{name} is {type(value).__name__}, not a date")


def item_from_properties(properties: Mapping[str, Any]) -> MemoryItem:
    """The item an object's properties hold. `ValueError` (pydantic's included) when they do not."""
    created_at = _as_datetime(properties.get("created_at"), "created_at")
    if created_at is None:
        raise ValueError("created_at is missing")
    return MemoryItem(
        id=properties["item_id"],
        namespace=properties["namespace"],
        kind=properties["kind"],
        content=properties["content"],
        content_hash=properties["content_hash"],
        importance=properties["importance"],
        trust=properties["trust"],
        provenance=Provenance.model_validate_json(properties["provenance"]),
        metadata=json.loads(properties["metadata"]),
        created_at=created_at,
        expires_at=_as_datetime(properties.get("expires_at"), "expires_at"),
    )


def _item_from_object(obj: Any) -> MemoryItem:
    try:
        return item_from_properties(obj.properties)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"object {obj.uuid} does not hold a memory item: {exc}") from None


# --- vectors and scores ---------------------------------------------------------------------------


def _vector_rows(vectors: Vectors, count: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """`vectors` as a (count, d) float32 array; `ValueError` for another shape."""
    rows = np.asarray(vectors, dtype=np.float32)
    if count == 0 and rows.size == 0:
        return rows.reshape(0, rows.shape[-1] if rows.ndim == 2 else 0)
    if rows.ndim == 1 and count == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[0] != count:
        raise ValueError(f"expected {count} vector row(s), got an array of shape {tuple(rows.shape)}")
    return rows


def _unusable(rows: np.ndarray[Any, Any]) -> str | None:
    """Why Weaviate cannot index these rows, if it cannot."""
    if not np.isfinite(rows).all():
        return "vectors must be finite (a NaN or infinity was given)"
    if rows.size and not np.linalg.norm(rows, axis=-1).all():
        return "a vector is all zeros (cosine distance is undefined for it)"
    return None


def _aware(now: datetime | None) -> datetime:
    """The moment expiry is judged at: now, or the caller's timezone-aware time."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return now


def _query_vector(vector: Vectors) -> np.ndarray[Any, np.dtype[np.float32]]:
    row = np.asarray(vector, dtype=np.float32)
    if row.ndim == 2 and row.shape[0] == 1:
        row = row[0]
    if row.ndim != 1:
        raise ValueError(f"the query vector must be one row, got an array of shape {tuple(row.shape)}")
    checked: np.ndarray[Any, np.dtype[np.float32]] = _vector_rows(row, 1)[0]
    return checked


def _clip(score: float) -> float:
    return min(1.0, max(0.0, score)) if math.isfinite(score) else 0.0


def _cosine(a: np.ndarray[Any, Any], b: Sequence[float]) -> float | None:
    other = np.asarray(b, dtype=np.float64)
    if other.shape != a.shape:
        return None
    norm = float(np.linalg.norm(a) * np.linalg.norm(other))
    return float(np.dot(a.astype(np.float64), other) / norm) if norm else None


def bm25_score(explain: str | None) -> float | None:
    """The raw BM25 score in a hybrid hit's `explain_score`, when the keyword side found it."""
    if not explain:
        return None
    match = _BM25_EXPLAIN.search(explain)
    if match is None:
        return None
    score = float(match["score"])
    return score if math.isfinite(score) else None


def vector_hit(item: MemoryItem, distance: float | None) -> SearchHit:
    """A near-vector hit: cosine similarity is `1 - distance`; the score clips it to [0, 1]."""
    if distance is None:
        return SearchHit(item=item, score=0.0)
    similarity = 1.0 - float(distance)
    return SearchHit(item=item, score=_clip(similarity), vector_score=similarity)


def hybrid_hit(
    item: MemoryItem,
    score: float | None,
    explain: str | None,
    query: np.ndarray[Any, Any] | None,
    stored: Any,
) -> SearchHit:
    """A hybrid hit: Weaviate's relative-score fusion is the score; the cosine similarity is
    computed from the returned vector (hybrid reports no distance)."""
    vector_score = None
    if query is not None and isinstance(stored, Sequence) and stored and not isinstance(stored[0], Sequence):
        vector_score = _cosine(query, stored)
    return SearchHit(
        item=item,
        score=_clip(float(score)) if score is not None else 0.0,
        vector_score=vector_score,
        text_score=bm25_score(explain),
    )


# --- bookkeeping ----------------------------------------------------------------------------------


def _description(collection: str, dimensions: int) -> str:
    return json.dumps({_MARKER_KEY: 1, "collection": collection, "dimensions": dimensions}, sort_keys=True)


def _parse_description(text: str | None) -> tuple[str, int] | None:
    """(collection, dimensions) from a collection description this store wrote, else None."""
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get(_MARKER_KEY) != 1:
        return None
    collection, dimensions = record.get("collection"), record.get("dimensions")
    if not isinstance(collection, str) or isinstance(dimensions, bool) or not isinstance(dimensions, int):
        return None
    return collection, dimensions


# --- errors ---------------------------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _grpc_status(exc: BaseException) -> str | None:
    """The status name of a grpc exception (`UNAVAILABLE`, ...), without importing grpc."""
    if not type(exc).__module__.startswith("grpc"):
        return None
    code = getattr(exc, "code", None)
    if not callable(code):
        return None
    try:
        name = getattr(code(), "name", None)
    except Exception:
        return None
    return name if isinstance(name, str) else None


_UNREACHABLE = (
    wexc.WeaviateConnectionError,
    wexc.WeaviateStartUpError,
    wexc.WeaviateGRPCUnavailableError,
    wexc.WeaviateClosedClientError,
    wexc.AuthenticationFailedError,
    wexc.InsufficientPermissionsError,
    wexc.WeaviateRetryError,  # the client gave up retrying an UNAVAILABLE gRPC call
    httpx.TransportError,
    ConnectionError,
)


def _classify(exc: BaseException) -> type[VectorStoreError]:
    """Which store error a client exception is: timeouts, unreachable or refused, or other."""
    for cause in _causes(exc):
        if isinstance(cause, wexc.WeaviateTimeoutError | httpx.TimeoutException | TimeoutError):
            return StoreTimeout
        if isinstance(cause, _UNREACHABLE):
            return StoreUnavailable
        if isinstance(cause, wexc.UnexpectedStatusCodeError) and cause.status_code >= 100:
            if cause.status_code == 504:
                return StoreTimeout
            if cause.status_code in (401, 403, 502, 503):
                return StoreUnavailable
        status = _grpc_status(cause)
        if status == "DEADLINE_EXCEEDED":
            return StoreTimeout
        if status in ("UNAVAILABLE", "UNAUTHENTICATED", "PERMISSION_DENIED"):
            return StoreUnavailable
    if isinstance(exc, wexc.WeaviateQueryError):  # raised inside `except`, sometimes without a cause
        text = str(exc)
        if "DEADLINE_EXCEEDED" in text or "Deadline Exceeded" in text:
            return StoreTimeout
        if "UNAVAILABLE" in text:
            return StoreUnavailable
    return VectorStoreError


def _short(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the store ------------------------------------------------------------------------------------


class WeaviateStore(VectorStore):
    """Memory collections in Weaviate (see the module docstring). Construction parses the URL and
    does no I/O; the async client connects on first use and again after `close`. A connection
    belongs to the event loop that opened it: used from another loop, the store opens a new one.

    `timeout_s` bounds connecting and every request (the client's REST/gRPC timeouts and an outer
    deadline, which also cuts the client's own retries short); a request that runs out of time
    raises `StoreTimeout`."""

    backend = BACKEND

    def __init__(self, url: str, *, api_key_env: str | None = None, timeout_s: float = 30.0) -> None:
        self.location = _location(url)
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

    # -- plumbing ----------------------------------------------------------------------------------

    def _error(
        self, cls: type[VectorStoreError], detail: str, collection: str | None, operation: str
    ) -> VectorStoreError:
        if self._api_key:
            detail = detail.replace(self._api_key, "***")
        return cls(
            detail, backend=BACKEND, location=self.location, collection=collection, operation=operation
        )

    def _translate(self, exc: BaseException, collection: str | None, operation: str) -> VectorStoreError:
        cls = _classify(exc)
        if type(exc) in (ValueError, TypeError) and str(exc):
            what = _short(str(exc), 1000)  # this module's checks: the message is the explanation
        elif str(exc):
            what = f"{type(exc).__name__}: {_short(str(exc))}"
        else:
            what = type(exc).__name__
        root = list(_causes(exc))[-1]  # the client's messages often leave out the network error
        if root is not exc and str(root) and str(root) not in what:
            what += f" (caused by {type(root).__name__}: {_short(str(root), 200)})"
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
            leaf = _first_leaf(exc)  # a TaskGroup's ExceptionGroup: report the first failure
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
        parsed = _parse_description(config.description)
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
                            description=_description(collection, dimensions),
                            properties=_PROPERTIES,
                            vector_config=Configure.Vectors.self_provided(
                                name=_VECTOR,
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

    async def upsert(self, collection: str, items: Sequence[MemoryItem], vectors: Vectors) -> WriteAck:
        operation = "upsert"
        rows = _vector_rows(vectors, len(items))
        async with self._guard(collection, operation):
            problem = _unusable(rows)
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
                            vector={_VECTOR: rows[writes[tenant][item_id]].tolist()},
                        )
                        for item_id in chunk
                    ]
                    try:
                        result = await self._io(target.insert_many(objects))
                    except wexc.WeaviateInsertManyAllFailedError as exc:
                        failures.update(dict.fromkeys(chunk, _short(str(exc), 200)))
                        continue
                    for index, error in result.errors.items():
                        failures[chunk[index]] = _short(error.message, 200)

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
        query = _query_vector(vector) if vector is not None else None
        if query is None and (alpha > 0.0 or not has_text):
            raise ValueError(
                "a search without a vector is a text search: give text and alpha 0"
                if has_text
                else "a search needs a vector, or text with alpha 0"
            )
        where = self._search_filter(filters, _aware(now))
        tenant = tenant_name(namespace)
        async with self._guard(collection, operation):
            problem = None if query is None else _unusable(query)
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
                            target_vector=_VECTOR,
                            return_metadata=MetadataQuery(distance=True),
                            return_properties=_ITEM_PROPERTIES,
                        )
                    )
                    return [vector_hit(_item_from_object(obj), obj.metadata.distance) for obj in near.objects]
                fused = await self._io(
                    scoped.query.hybrid(
                        query=text,
                        vector=query.tolist() if query is not None else None,
                        alpha=alpha,
                        fusion_type=HybridFusion.RELATIVE_SCORE,
                        query_properties=["content"],
                        limit=k,
                        filters=where,
                        target_vector=_VECTOR,
                        include_vector=[_VECTOR] if query is not None else False,
                        return_metadata=MetadataQuery(score=True, explain_score=True),
                        return_properties=_ITEM_PROPERTIES,
                    )
                )
                return [
                    hybrid_hit(
                        _item_from_object(obj),
                        obj.metadata.score,
                        obj.metadata.explain_score,
                        query,
                        obj.vector.get(_VECTOR),
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
                for start in range(0, len(uuids), _ID_CHUNK):
                    chunk = uuids[start : start + _ID_CHUNK]
                    result = await self._io(
                        handle.with_tenant(tenant).query.fetch_objects(
                            filters=Filter.by_id().contains_any(chunk),
                            limit=len(chunk),
                            return_properties=_ITEM_PROPERTIES,
                        )
                    )
                    out += [_item_from_object(obj) for obj in result.objects]
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
                            limit=limit, offset=offset, sort=newest_first, return_properties=_ITEM_PROPERTIES
                        )
                    )
                except wexc.WeaviateBaseError:
                    if await self._tenant_missing(handle, tenant):
                        return []
                    raise
                return [_item_from_object(obj) for obj in result.objects]

            async def head(tenant: str) -> list[MemoryItem]:
                result = await self._io(
                    handle.with_tenant(tenant).query.fetch_objects(
                        limit=offset + limit, sort=newest_first, return_properties=_ITEM_PROPERTIES
                    )
                )
                return [_item_from_object(obj) for obj in result.objects]

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
                for start in range(0, len(uuids), _ID_CHUNK):
                    chunk = uuids[start : start + _ID_CHUNK]
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
        moment = _aware(now)
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

    async def collections(self) -> list[CollectionInfo]:
        operation = "collections"
        async with self._guard(None, operation):
            client = await self._connect(None, operation)
            configs = await self._io(client.collections.list_all(simple=True))
            ours: list[tuple[str, str, int]] = []
            for class_name, config in configs.items():
                parsed = _parse_description(config.description)
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
