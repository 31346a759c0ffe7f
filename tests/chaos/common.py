"""What the chaos campaigns run: an agent that records a, b and c through a keyed side-effecting
tool (`MODULE:record`, written by each campaign to count what really happened), and, for the
campaigns on the embedded head, such a tool (`KEYED_PLUGIN`), a way to submit many runs at once,
and readers of what happened that do not need Ray."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path


def worker_specs(module: str, *, extra: str = "") -> str:
    """The specs of the `worker` agent; `extra` is appended to the agent's spec."""
    return textwrap.dedent(
        f"""\
        apiVersion: agents.platform/v1
        kind: Model
        metadata: {{name: m}}
        spec: {{provider: scripted, script: script.json, on_script_exhausted: error}}
        ---
        apiVersion: agents.platform/v1
        kind: Tool
        metadata: {{name: record}}
        spec:
          description: Record a side effect.
          python: {module}:record
          side_effects: true
          requires_approval: false
          trust: trusted
          timeout: 5s  # many runs at once on a small machine: no call may time out for being slow
          idempotency: {{mode: key}}
        ---
        apiVersion: agents.platform/v1
        kind: Agent
        metadata: {{name: worker}}
        spec:
          model: m
          instructions: Record a, b and c.
          output: {{type: object, properties: {{answer: {{type: string}}}}, required: [answer]}}
          tools: [record]
        """
    ) + textwrap.indent(textwrap.dedent(extra), "  ")


SCRIPT = {
    "responses": {
        "worker": [
            *({"action": {"action": "record", "arguments": {"item": i}}} for i in "abc"),
            {"action": {"action": "final_answer", "answer": {"answer": "recorded a-c"}}},
        ]
    }
}


# A keyed side-effecting tool that records every real execution apart from its effect: a call a
# fault interrupted after its effect runs again on resume, and its key keeps the effect single
# (as a service given the key would). Tables in `effects.db` beside the module: `started`,
# `executions`, `effects` (unique per key and item).
KEYED_PLUGIN = '''
import asyncio, os, sqlite3
from agent_platform._runtime.tools import current_idempotency_key

def _log(table, key, item):
    with sqlite3.connect(os.path.join(os.path.dirname(__file__), "effects.db"), timeout=60) as db:
        unique = ", PRIMARY KEY (key, item)" if table == "effects" else ""
        db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT, item TEXT{unique})")
        db.execute(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", (key, item))

async def record(item: str) -> dict:
    """Record a side effect.

    Args:
        item: What to record.
    """
    key = current_idempotency_key()
    _log("started", key, item)
    await asyncio.sleep(0.5)
    _log("executions", key, item)  # the function ran to its effect...
    _log("effects", key, item)  # ...which happens once per key
    return {"recorded": item}
'''

# Submits runs `chaos-<first>`… of Agent/worker through the embedded head's deployment (as
# `platform run --detach` does for one): `python -c SUBMIT FIRST COUNT`.
SUBMIT = """
import sys
from agent_platform._deploy.client import Deployment

deployment = Deployment.connect(None, "agent-platform", start=False, create=False)
first, count = int(sys.argv[1]), int(sys.argv[2])
for n in range(first, first + count):
    deployment.submit("Agent/worker", {}, run_id=f"chaos-{n:03d}")
print("submitted", flush=True)
"""


def effect_rows(folder: Path, table: str) -> list[tuple[str, str]]:
    """The rows of one of `KEYED_PLUGIN`'s tables (none before its first call)."""
    try:
        with sqlite3.connect(folder / "effects.db", timeout=60) as db:
            return list(db.execute(f"SELECT key, item FROM {table}"))
    except sqlite3.OperationalError:
        return []


def run_statuses(state: Path) -> dict[str, str]:
    """Every run's status, read from the embedded deployment's run store file (without Ray)."""
    with sqlite3.connect(state / "runs.sqlite3", timeout=60) as db:
        return {run_id: status for run_id, status in db.execute("SELECT run_id, status FROM runstore_runs")}
