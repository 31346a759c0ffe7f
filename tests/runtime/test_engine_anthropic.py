"""An agent run through the real anthropic SDK and instructor, over HTTP, against the local Messages
API server: the conversation the loop sends must be a valid Messages-API sequence, with each
decision's tool_use answered by a tool_result in the next user message."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.messages_api import MessagesAPIServer, tool_use

from agent_platform._compile import compile_specs
from agent_platform._runtime.engine import Runtime
from agent_platform._runtime.outcomes import Outcome
from agent_platform._validate import ValidationOptions, validate_paths

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {{name: claude}}
spec:
  provider: anthropic
  name: claude-test
  base_url: {url}
  api_key_env: AP_ENGINE_TEST_KEY
  timeout: 5s
  retry: {{max_attempts: 2, backoff: {{initial: 10ms, max: 50ms}}}}
  pricing: {{input_per_mtok: 3, output_per_mtok: 15}}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {{name: lookup}}
spec:
  description: Look something up.
  python: plug_anthropic:lookup
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {{name: a}}
spec:
  model: claude
  instructions: Answer about {{{{ inputs.topic }}}}.
  inputs: {{type: object, properties: {{topic: {{type: string}}}}, required: [topic]}}
  output: {{type: object, properties: {{answer: {{type: string}}}}, required: [answer]}}
  tools: [lookup]
"""

PLUGIN = '''
def lookup(query: str) -> dict:
    """Look something up.

    Args:
        query: What to look up.
    """
    return {"text": f"facts about {query}"}
'''


async def test_agent_loop_over_the_messages_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "plug_anthropic.py").write_text(PLUGIN)
    with MessagesAPIServer() as server:
        monkeypatch.setenv("AP_ENGINE_TEST_KEY", server.api_key)
        (tmp_path / "specs.yaml").write_text(SPECS.format(url=server.url))
        report = validate_paths([tmp_path / "specs.yaml"], ValidationOptions(plugin_paths=[tmp_path]))
        assert report.ok, [str(d) for d in report.diagnostics.errors]
        server.push(
            tool_use(
                {"thought": "look", "action": {"action": "lookup", "arguments": {"query": "ray"}}},
                input_tokens=100,
                output_tokens=20,
            ),
            tool_use(
                {"action": {"action": "final_answer", "answer": {"answer": "ray is fine"}}},
                input_tokens=150,
                output_tokens=10,
            ),
        )
        runtime = Runtime(compile_specs(report.specs), plugin_paths=[tmp_path])
        try:
            result = await runtime.run("a", {"topic": "ray"})
        finally:
            await runtime.aclose()
        requests = [r.body for r in server.requests]

    assert result.outcome is Outcome.COMPLETED, result.error
    assert result.output == {"answer": "ray is fine"}
    assert (result.usage.input_tokens, result.usage.output_tokens) == (250, 30)  # the API's own usage
    assert result.cost_usd == pytest.approx((250 * 3 + 30 * 15) / 1e6)
    assert len(requests) == 2
    first, second = requests
    assert "Answer about ray." in str(first["system"])
    assert first["tool_choice"]["type"] == "tool"
    decision_tool = first["tool_choice"]["name"]
    assert [t["name"] for t in first["tools"]] == [decision_tool]
    messages = second["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    tool_uses = [b for b in messages[1]["content"] if b["type"] == "tool_use"]
    assert len(tool_uses) == 1 and tool_uses[0]["name"] == decision_tool
    results = [b for b in messages[2]["content"] if b["type"] == "tool_result"]
    assert len(results) == 1 and results[0]["tool_use_id"] == tool_uses[0]["id"]
    assert "facts about ray" in results[0]["content"]
    assert '<tool_output id="' in results[0]["content"]  # inside the unforgeable boundary
    assert not any(m["role"] == "tool" for m in messages)  # the Messages API has no tool role
