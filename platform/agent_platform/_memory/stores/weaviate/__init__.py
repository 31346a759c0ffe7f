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

The package's modules: `endpoint.py` (the URL), `names.py` (class and tenant names), `schema.py`
(properties, items as objects, the description record), `scores.py` (vectors and scores),
`errors.py` (client exceptions as store errors), `connection.py` (the client's lifecycle),
`catalog.py` (collections: create, list, drop), `writes.py`, `queries.py`, and `store.py`
(`WeaviateStore`, assembled from them).
"""

from agent_platform._memory.stores.weaviate.endpoint import (
    DEFAULT_GRPC_PORT,
    WeaviateEndpoint,
    parse_weaviate_url,
)
from agent_platform._memory.stores.weaviate.names import (
    collection_class_name,
    collection_from_class_name,
    namespace_from_tenant,
    tenant_name,
)
from agent_platform._memory.stores.weaviate.schema import (
    item_from_properties,
    item_properties,
    metadata_token,
)
from agent_platform._memory.stores.weaviate.scores import bm25_score, hybrid_hit, vector_hit
from agent_platform._memory.stores.weaviate.store import WeaviateStore

__all__ = [
    "DEFAULT_GRPC_PORT",
    "WeaviateEndpoint",
    "WeaviateStore",
    "bm25_score",
    "collection_class_name",
    "collection_from_class_name",
    "hybrid_hit",
    "item_from_properties",
    "item_properties",
    "metadata_token",
    "namespace_from_tenant",
    "parse_weaviate_url",
    "tenant_name",
    "vector_hit",
]
