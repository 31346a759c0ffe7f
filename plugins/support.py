"""Customer-support tools for the `support-agent` (`specs/production-agent.yaml`).

- `search_knowledge_base` ranks the help-centre articles of the bundled corpus by term overlap.
- `create_ticket` writes a ticket as a JSON file under `<state dir>/tickets/` and returns its id.

`create_ticket` has a real side effect: every call creates a new ticket. It deliberately does
*not* try to deduplicate; exactly-once behaviour is the platform's job. The tool's spec declares
`side_effects: true` with `idempotency: {mode: key}`, so a retried or resumed run gets the stored
receipt of the first call instead of calling again, and `requires_approval: true`, so a person
confirms before any ticket exists.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from plugins._state import state_dir
from plugins.search import SearchResult, load_corpus, rank

Priority = Literal["low", "normal", "high", "urgent"]
Category = Literal["account", "billing", "api", "bug", "data", "other"]


class KnowledgeBaseResults(BaseModel):
    """Help-centre articles matching a query, best first."""

    query: str
    articles: list[SearchResult]


class Ticket(BaseModel):
    """The record stored for a ticket."""

    ticket_id: str
    status: Literal["open"] = "open"
    created_at: str = Field(description="ISO 8601, UTC.")
    customer_id: str
    subject: str
    description: str
    priority: Priority
    category: Category
    kb_articles: list[str]


class TicketReceipt(BaseModel):
    """What the caller gets back after creating a ticket."""

    ticket_id: str = Field(description="Quote this id to the customer.")
    status: Literal["open"]
    priority: Priority
    created_at: str
    path: str = Field(description="Where the ticket record was written.")


async def search_knowledge_base(
    query: Annotated[str, Field(min_length=1, max_length=500)],
    top_k: Annotated[int, Field(ge=1, le=10)] = 3,
) -> KnowledgeBaseResults:
    """Search the help-centre knowledge base for articles that answer a customer's question.

    Args:
        query: The customer's problem in a few keywords (e.g. "reset password email").
        top_k: How many articles to return, best first (1-10).

    Returns:
        Matching articles with a snippet each; an empty list when nothing matches.
    """
    articles = [entry for entry in load_corpus() if entry.collection == "support"]
    results, _ = rank(query, articles, top_k)
    return KnowledgeBaseResults(query=query, articles=results)


def _write_ticket(directory: Path, ticket: Ticket) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ticket.ticket_id}.json"
    # "x": never overwrite an existing ticket, even in the (astronomically unlikely) id collision.
    with path.open("x", encoding="utf-8") as handle:
        json.dump(ticket.model_dump(), handle, indent=2)
        handle.write("\n")
    return path


async def create_ticket(
    customer_id: Annotated[str, Field(min_length=1, max_length=100)],
    subject: Annotated[str, Field(min_length=3, max_length=200)],
    description: Annotated[str, Field(min_length=10, max_length=10_000)],
    priority: Priority = "normal",
    category: Category = "other",
    kb_articles: list[str] | None = None,
) -> TicketReceipt:
    """Open a support ticket for a human agent. Creates a new ticket on every call.

    Only open a ticket when the knowledge base does not solve the problem or the customer asks
    for a person. Never put passwords, card numbers or other secrets in the ticket.

    Args:
        customer_id: The customer's account id (not their name or email).
        subject: One-line summary of the problem.
        description: What the customer reported, what was tried, and what is needed.
        priority: urgent only for outages or security issues; high if the customer is blocked.
        category: The area of the problem.
        kb_articles: Ids of knowledge-base articles already suggested to the customer.

    Returns:
        The new ticket's id and status.
    """
    ticket = Ticket(
        ticket_id=f"TCK-{uuid.uuid4().hex[:12].upper()}",
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        customer_id=customer_id,
        subject=subject,
        description=description,
        priority=priority,
        category=category,
        kb_articles=list(kb_articles or []),
    )
    path = await asyncio.to_thread(_write_ticket, state_dir() / "tickets", ticket)
    return TicketReceipt(
        ticket_id=ticket.ticket_id,
        status=ticket.status,
        priority=ticket.priority,
        created_at=ticket.created_at,
        path=str(path),
    )
