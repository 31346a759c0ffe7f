"""What a memory holds: items with provenance and trust, search hits, namespaces.

An item's `namespace` is the isolation boundary: a search names exactly one namespace and a store
returns only items stored under that exact string (no prefixes, no wildcards), so one tenant can
never retrieve another's items. `Namespace` builds the canonical string from its parts."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Trust = Literal["trusted", "untrusted"]
ItemKind = Literal["episode", "fact", "document"]
Source = Literal["user", "tool", "agent", "pipeline"]

_SPACE = re.compile(r"\s+")
_NAMESPACE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")


def normalise_content(text: str) -> str:
    """The form de-duplication compares: Unicode NFKC, case-folded, whitespace collapsed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def content_hash(text: str) -> str:
    """Hex BLAKE2b-128 of the normalised content: equal for texts that differ only in case,
    Unicode form or whitespace."""
    return hashlib.blake2b(normalise_content(text).encode(), digest_size=16).hexdigest()


class Namespace(BaseModel):
    """The isolation scope of an item: per agent, per tenant, or both (the Memory spec's
    `namespace_by`). A part left out is shared: knowledge with `namespace_by: [tenant]` is read by
    every agent of that tenant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: str | None = None
    tenant: str | None = None

    def key(self) -> str:
        """The canonical string stores filter on, e.g. `tenant=acme/agent=support-agent`;
        `_shared` when both parts are unset."""
        parts = []
        for name in ("tenant", "agent"):
            value = getattr(self, name)
            if value is not None:
                if not _NAMESPACE_PART.match(value):
                    raise ValueError(
                        f"namespace {name} {value!r} must be 1-128 letters, digits or _.@:- "
                        "and start with a letter or digit"
                    )
                parts.append(f"{name}={value}")
        return "/".join(parts) or "_shared"

    @classmethod
    def parse(cls, key: str) -> Namespace:
        if key == "_shared":
            return cls()
        fields: dict[str, str] = {}
        for part in key.split("/"):
            name, sep, value = part.partition("=")
            if not sep or name not in ("tenant", "agent") or name in fields:
                raise ValueError(f"not a namespace key: {key!r}")
            fields[name] = value
        namespace = cls(**fields)
        namespace.key()  # validates the parts
        return namespace


class Provenance(BaseModel):
    """Where an item came from: who said it (a user), which tool returned it, which agent or
    pipeline wrote it, in which run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Source
    user: str | None = None
    tool: str | None = None
    agent: str | None = None
    pipeline: str | None = None
    run_id: str | None = None
    document_id: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class MemoryItem(BaseModel):
    """One remembered thing. `id` and `content_hash` are each unique within a namespace (writing
    the same content twice to one namespace stores it once)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    namespace: str = Field(min_length=1)
    kind: ItemKind
    content: str = Field(min_length=1)
    content_hash: str = Field(min_length=1)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    trust: Trust = "untrusted"
    provenance: Provenance
    metadata: dict[str, Any] = Field(default_factory=dict)  # JSON values
    created_at: datetime = Field(default_factory=_now)
    expires_at: datetime | None = None

    @classmethod
    def new(
        cls,
        *,
        namespace: str,
        kind: ItemKind,
        content: str,
        provenance: Provenance,
        id: str | None = None,
        **fields: Any,
    ) -> MemoryItem:
        """An item whose id defaults to its namespace and content hash, so a retried write of the
        same content is the same item."""
        digest = content_hash(content)
        item_id = id or hashlib.blake2b(f"{namespace}\0{digest}".encode(), digest_size=16).hexdigest()
        return cls(
            id=item_id,
            namespace=namespace,
            kind=kind,
            content=content,
            content_hash=digest,
            provenance=provenance,
            **fields,
        )


class SearchHit(BaseModel):
    """An item a search returned. `score` is the store's relevance in [0, 1]: for a pure vector
    search the cosine similarity clipped at 0; for a hybrid search the relative-score fusion
    `alpha * vector + (1 - alpha) * text`, each normalised to [0, 1] over the candidates.
    `vector_score` is the raw cosine similarity where the store computed one; `text_score` the
    backend's raw full-text rank (ts_rank_cd, BM25: comparable within one search only)."""

    model_config = ConfigDict(frozen=True)

    item: MemoryItem
    score: float = Field(ge=0.0, le=1.0)
    vector_score: float | None = None
    text_score: float | None = None


class WriteAck(BaseModel):
    """What a store acknowledged: only returned once the store has durably written the items.
    `written` are new or updated item ids; `duplicates` maps the id of each item whose content was
    already stored in its namespace to the id already stored (that item was not written again)."""

    model_config = ConfigDict(frozen=True)

    written: list[str] = Field(default_factory=list)
    duplicates: dict[str, str] = Field(default_factory=dict)


class CollectionInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    dimensions: int
    items: int
    namespaces: int
