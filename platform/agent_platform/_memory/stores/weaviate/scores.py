"""Vectors in, scores out: the checks on the vectors a caller gives, and the scores of a hit
(`near_vector` and hybrid; see the package docstring)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from agent_platform._memory.items import MemoryItem, SearchHit
from agent_platform._memory.stores.base import Vectors

_BM25_EXPLAIN = re.compile(
    r"Result Set '?keyword,bm25'?\) Document \S+: original score (?P<score>[-+0-9.eE]+|NaN|[+-]?Inf)"
)


def vector_rows(vectors: Vectors, count: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """`vectors` as a (count, d) float32 array; `ValueError` for another shape."""
    rows = np.asarray(vectors, dtype=np.float32)
    if count == 0 and rows.size == 0:
        return rows.reshape(0, rows.shape[-1] if rows.ndim == 2 else 0)
    if rows.ndim == 1 and count == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[0] != count:
        raise ValueError(f"expected {count} vector row(s), got an array of shape {tuple(rows.shape)}")
    return rows


def unusable_rows(rows: np.ndarray[Any, Any]) -> str | None:
    """Why Weaviate cannot index these rows, if it cannot."""
    if not np.isfinite(rows).all():
        return "vectors must be finite (a NaN or infinity was given)"
    if rows.size and not np.linalg.norm(rows, axis=-1).all():
        return "a vector is all zeros (cosine distance is undefined for it)"
    return None


def aware(now: datetime | None) -> datetime:
    """The moment expiry is judged at: now, or the caller's timezone-aware time."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return now


def query_vector(vector: Vectors) -> np.ndarray[Any, np.dtype[np.float32]]:
    row = np.asarray(vector, dtype=np.float32)
    if row.ndim == 2 and row.shape[0] == 1:
        row = row[0]
    if row.ndim != 1:
        raise ValueError(f"the query vector must be one row, got an array of shape {tuple(row.shape)}")
    checked: np.ndarray[Any, np.dtype[np.float32]] = vector_rows(row, 1)[0]
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
