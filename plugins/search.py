"""Offline web search over a small bundled corpus (`plugins/data/corpus.jsonl`).

The corpus is ~30 short, fictional pages (on example.org / help.example.com) about agents and a
product's help centre. Ranking is plain term overlap, so results are deterministic and easy to
reason about in tests and demos; a real deployment would point the `web-search` tool at a search
API instead (an `http:` implementation) without changing the agents that use it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

CORPUS_PATH = Path(__file__).parent / "data" / "corpus.jsonl"

Collection = Literal["web", "support"]

STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
        "i", "if", "in", "into", "is", "it", "its", "my", "of", "on", "or", "our", "should", "so",
        "that", "the", "their", "then", "there", "these", "this", "to", "was", "what", "when",
        "where", "which", "who", "why", "will", "with", "you", "your",
    }
)  # fmt: skip
_TOKEN = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class CorpusEntry(BaseModel):
    """One page of the bundled corpus."""

    id: str
    collection: Collection
    title: str
    url: str
    text: str


class SearchResult(BaseModel):
    """One ranked search hit."""

    id: str = Field(description="Stable id of the page in the corpus.")
    title: str
    url: str
    snippet: str = Field(description="The sentence that best matches the query.")
    score: float = Field(description="Query terms found in the body, plus those found in the title.")


class SearchResponse(BaseModel):
    """Results of one search, best first."""

    query: str
    results: list[SearchResult]
    total_matches: int = Field(description="Pages matching at least one query term.")


def terms(text: str) -> set[str]:
    """Distinct normalised search terms: lower-case words, stopwords dropped, plural 's' removed.

    Args:
        text: A query or a document.
    """
    found: set[str] = set()
    for token in _TOKEN.findall(text.lower()):
        if token in STOPWORDS:
            continue
        if len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
            token = token[:-1]
        found.add(token)
    return found


@lru_cache(maxsize=4)
def load_corpus(path: str | None = None) -> tuple[CorpusEntry, ...]:
    """Read the corpus (cached): one JSON object per line.

    Args:
        path: A JSONL corpus file; default: the bundled `plugins/data/corpus.jsonl`.
    """
    source = Path(path) if path is not None else CORPUS_PATH
    with source.open(encoding="utf-8") as handle:
        return tuple(CorpusEntry.model_validate_json(line) for line in handle if line.strip())


def _snippet(entry: CorpusEntry, query_terms: set[str], limit: int = 240) -> str:
    sentences = _SENTENCE.split(entry.text)
    best = max(sentences, key=lambda s: len(terms(s) & query_terms))  # first one wins ties
    return best if len(best) <= limit else best[: limit - 1].rsplit(" ", 1)[0] + "…"


def rank(
    query: str, entries: tuple[CorpusEntry, ...] | list[CorpusEntry], limit: int
) -> tuple[list[SearchResult], int]:
    """Rank entries by term overlap with the query.

    A page scores one point per distinct query term in its body and one more per term in its
    title; pages with no matching term are dropped; ties are broken by id.

    Args:
        query: The search query.
        entries: The pages to search.
        limit: The number of results to return.

    Returns:
        The best `limit` results, and how many pages matched at all.
    """
    query_terms = terms(query)
    scored: list[tuple[float, CorpusEntry]] = []
    for entry in entries:
        score = len(query_terms & terms(entry.text)) + len(query_terms & terms(entry.title))
        if score > 0:
            scored.append((float(score), entry))
    scored.sort(key=lambda pair: (-pair[0], pair[1].id))
    results = [
        SearchResult(
            id=entry.id, title=entry.title, url=entry.url, snippet=_snippet(entry, query_terms), score=score
        )
        for score, entry in scored[:limit]
    ]
    return results, len(scored)


async def web_search(
    query: Annotated[str, Field(min_length=1, max_length=500)],
    max_results: Annotated[int, Field(ge=1, le=10)] = 5,
) -> SearchResponse:
    """Search the web for pages about a topic and return the best matches with a snippet each.

    Args:
        query: What to search for, in a few keywords (e.g. "idempotency keys retries").
        max_results: How many results to return, best first (1-10).

    Returns:
        The ranked results; an empty list when nothing matches.
    """
    if not terms(query):
        raise ValueError("the query has no searchable words; use a few keywords")
    results, total = rank(query, load_corpus(), max_results)
    return SearchResponse(query=query, results=results, total_matches=total)
