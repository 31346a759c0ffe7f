"""What the chaos campaigns run: an agent that records a, b and c through a keyed side-effecting
tool (`MODULE:record`, written by each campaign to count what really happened)."""

from __future__ import annotations

import textwrap


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
