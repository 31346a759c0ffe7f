"""An MCP server of engineering notes, written with the official `mcp` SDK and served over stdio.

McpServer/notes in specs/mcp-notes.yaml starts it (`python -m plugins.mcp_notes`, from the
repository root) once per runtime; `platform plan specs/ --discover-mcp` lists its tools into
specs/mcp.lock.yaml. Two tools:

- `search_notes` reads (annotated read-only, so the platform calls it without asking);
- `add_note` writes a note (not read-only, not destructive, idempotent: the same title and text
  give the same note id and are stored once), so the platform asks for approval before each call
  and may retry it under a durable idempotency key.

The notes are a few seeded ones plus those added, kept as JSON lines in `$NOTES_FILE` (default:
`.platform/mcp-notes.jsonl` under the working directory).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Annotated

from mcp.server import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

logging.disable(logging.WARNING)  # stderr is the platform's: keep the SDK's request logs out of it

server = MCPServer("engineering-notes", instructions="The team's engineering notes.")

SEED: list[dict[str, object]] = [
    {
        "id": "note-retries",
        "title": "Retry only what is safe to repeat",
        "body": "Reads and transient failures (timeouts, 429, 5xx) are retried with exponential backoff "
        "and full jitter. A call with a side effect is retried only under an idempotency key whose "
        "result is stored durably, so the second call returns the stored result.",
        "tags": ["retries", "idempotency"],
    },
    {
        "id": "note-breakers",
        "title": "Circuit breakers in front of flaky dependencies",
        "body": "After five failures in a row stop calling the dependency for a minute, then let one "
        "trial call through. A breaker that opens turns a slow outage into a fast, visible error.",
        "tags": ["resilience"],
    },
    {
        "id": "note-mcp-pinning",
        "title": "Pin the tools of MCP servers",
        "body": "A server's tool schemas and descriptions are pinned in mcp.lock.yaml by `platform plan`; "
        "a run refuses a server whose tools changed until someone reviews the diff.",
        "tags": ["mcp", "security"],
    },
]


def _store() -> Path:
    return Path(os.environ.get("NOTES_FILE") or ".platform/mcp-notes.jsonl")


def _notes() -> list[dict[str, object]]:
    notes = list(SEED)
    store = _store()
    if store.exists():
        notes.extend(
            json.loads(line) for line in store.read_text(encoding="utf-8").splitlines() if line.strip()
        )
    return notes


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


@server.tool(annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False))
def search_notes(
    query: Annotated[str, Field(min_length=1, description="Words to look for.")],
    limit: Annotated[int, Field(ge=1, le=10, description="How many notes at most.")] = 3,
) -> dict[str, list[dict[str, object]]]:
    """Search the engineering notes: the best matches first, by words in common."""
    wanted = _words(query)
    scored = []
    for note in _notes():
        text = f"{note['title']} {note['body']} {' '.join(map(str, note.get('tags', [])))}"  # type: ignore[call-overload]
        score = len(wanted & _words(text))
        if score:
            scored.append((score, note))
    scored.sort(key=lambda pair: (-pair[0], str(pair[1]["id"])))
    return {"notes": [{"id": n["id"], "title": n["title"], "body": n["body"]} for _, n in scored[:limit]]}


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True))
def add_note(
    title: Annotated[str, Field(min_length=1, max_length=200)],
    body: Annotated[str, Field(min_length=1, max_length=4000)],
    tags: list[str] | None = None,
) -> dict[str, object]:
    """Add a note to the engineering notes. Adding the same title and text again changes nothing."""
    note_id = "note-" + hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()[:12]
    if any(n["id"] == note_id for n in _notes()):
        return {"id": note_id, "created": False}
    store = _store()
    store.parent.mkdir(parents=True, exist_ok=True)
    with store.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"id": note_id, "title": title, "body": body, "tags": tags or []}) + "\n")
    return {"id": note_id, "created": True}


if __name__ == "__main__":
    server.run("stdio")
