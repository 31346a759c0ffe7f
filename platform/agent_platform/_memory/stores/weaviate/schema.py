"""What a memory collection is in Weaviate: its properties, the description record that marks
the collections this store made, and memory items as Weaviate objects (see the package
docstring)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from weaviate.classes.config import DataType, Property, Tokenization

from agent_platform._memory.items import MemoryItem, Provenance

VECTOR_NAME = "default"  # the collection's one (named) vector
_MARKER_KEY = "agent_platform_memory"

# Properties read back to rebuild an item (`meta_pairs` is only for filtering).
ITEM_PROPERTIES = ["item_id", *list(MemoryItem.model_fields)[1:]]  # `id` is reserved in Weaviate


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


PROPERTIES = [
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


def item_from_object(obj: Any) -> MemoryItem:
    try:
        return item_from_properties(obj.properties)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"object {obj.uuid} does not hold a memory item: {exc}") from None


def collection_description(collection: str, dimensions: int) -> str:
    return json.dumps({_MARKER_KEY: 1, "collection": collection, "dimensions": dimensions}, sort_keys=True)


def parse_collection_description(text: str | None) -> tuple[str, int] | None:
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
