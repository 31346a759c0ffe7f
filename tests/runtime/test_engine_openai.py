"""An agent run through the real `openai` SDK and instructor, over HTTP, against the strict local
chat-completions server: the conversation the loop sends at its second step must be one the API
accepts.

The bug this guards: a small model left its decision's thought empty, so the earlier assistant
turn went out as `{"role": "assistant", "content": [], "tool_calls": [...]}` (the provider set
`None`, instructor sent `[]`); every real OpenAI-compatible server rejected it, and every
multi-step agent on the `openai` provider failed at its second model call."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.openai_api import ChatCompletionsServer, tool_call

from agent_platform._compile import compile_specs
from agent_platform._runtime.engine import Runtime
from agent_platform._runtime.outcomes import Outcome
from agent_platform._validate import ValidationOptions, validate_paths

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {{name: small}}
spec:
  provider: openai
  name: gemma-3-270m
  base_url: {url}/v1
  api_key_env: AP_ENGINE_OPENAI_KEY
  timeout: 5s
  retry: {{max_attempts: 2, backoff: {{initial: 10ms, max: 50ms}}}}
  pricing: {{input_per_mtok: 1, output_per_mtok: 2}}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {{name: lookup}}
spec:
  description: Look something up.
  python: plug_openai:lookup
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {{name: a}}
spec:
  model: small
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


@pytest.mark.parametrize("thought", ["", None], ids=["empty-thought", "no-thought"])
async def test_a_two_step_agent_on_a_strict_openai_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thought: str | None
) -> None:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "plug_openai.py").write_text(PLUGIN)
    decision: dict[str, object] = {"action": {"action": "lookup", "arguments": {"query": "ray"}}}
    if thought is not None:
        decision["thought"] = thought
    with ChatCompletionsServer() as server:
        monkeypatch.setenv("AP_ENGINE_OPENAI_KEY", server.api_key)
        (tmp_path / "specs.yaml").write_text(SPECS.format(url=server.url))
        report = validate_paths([tmp_path / "specs.yaml"], ValidationOptions(plugin_paths=[tmp_path]))
        assert report.ok, [str(d) for d in report.diagnostics.errors]
        server.push(
            tool_call(decision, prompt_tokens=100, completion_tokens=20),
            tool_call(
                {"action": {"action": "final_answer", "answer": {"answer": "ray is fine"}}},
                prompt_tokens=150,
                completion_tokens=10,
            ),
        )
        runtime = Runtime(compile_specs(report.specs), plugin_paths=[tmp_path])
        try:
            result = await runtime.run("a", {"topic": "ray"})
        finally:
            await runtime.aclose()
        statuses = [r.reply_status for r in server.requests]
        second = server.requests[-1].body

    assert statuses == [200, 200], f"the server refused a request: {result.error}"
    assert result.outcome is Outcome.COMPLETED, result.error
    assert result.output == {"answer": "ray is fine"}
    assert (result.usage.input_tokens, result.usage.output_tokens) == (250, 30)
    assistant = [m for m in second["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 1 and assistant[0]["tool_calls"]
    # A turn that only calls tools has no content ("required unless tool_calls"): `[]` is refused
    # by OpenAI-compatible servers, and `null` by llama-cpp-python's (the strict server checks both).
    assert "content" not in assistant[0], assistant[0]
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [assistant[0]["tool_calls"][0]["id"]]
    assert '<tool_output id="' in tool_messages[0]["content"]


async def test_a_failed_model_calls_tokens_count_in_the_run_and_against_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three re-asked answers that all failed their schema: the server counted 3 x 150 tokens;
    the run reported 0 tokens and $0, so budgets under-counted exactly when a model struggled."""
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "plug_openai.py").write_text(PLUGIN)
    specs = SPECS.replace("  tools: [lookup]\n", "  tools: [lookup]\n  limits: {{max_total_tokens: 300}}\n")
    with ChatCompletionsServer() as server:
        monkeypatch.setenv("AP_ENGINE_OPENAI_KEY", server.api_key)
        (tmp_path / "specs.yaml").write_text(specs.format(url=server.url))
        report = validate_paths([tmp_path / "specs.yaml"], ValidationOptions(plugin_paths=[tmp_path]))
        assert report.ok, [str(d) for d in report.diagnostics.errors]
        invalid = {"action": {"action": "no-such-action"}}
        server.push(*(tool_call(invalid, prompt_tokens=100, completion_tokens=50) for _ in range(3)))
        runtime = Runtime(compile_specs(report.specs), plugin_paths=[tmp_path])
        try:
            result = await runtime.run("a", {"topic": "ray"})
        finally:
            await runtime.aclose()
        assert len(server.requests) == 3, "the first answer and the Model's default 2 re-asks"

    assert (result.usage.input_tokens, result.usage.output_tokens) == (300, 150)
    assert result.cost_usd == pytest.approx((300 * 1 + 150 * 2) / 1e6)
    assert result.outcome is Outcome.TOKEN_BUDGET, result.error
    assert "450 of 300 tokens" in (result.error or "") and "model call failed" in (result.error or "")


async def test_a_retried_model_call_leaves_an_event_on_its_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.openai_api import openai_error

    from agent_platform._runtime.tracing import configure_tracing

    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "plug_openai.py").write_text(PLUGIN)
    with ChatCompletionsServer() as server:
        monkeypatch.setenv("AP_ENGINE_OPENAI_KEY", server.api_key)
        (tmp_path / "specs.yaml").write_text(SPECS.format(url=server.url))
        report = validate_paths([tmp_path / "specs.yaml"], ValidationOptions(plugin_paths=[tmp_path]))
        server.push(
            openai_error(429, "rate_limit_exceeded", "slow down", {"retry-after": "0.01"}),
            tool_call({"action": {"action": "final_answer", "answer": {"answer": "ok"}}}),
        )
        tracing = configure_tracing(memory=True)
        runtime = Runtime(compile_specs(report.specs), plugin_paths=[tmp_path], tracing=tracing)
        try:
            result = await runtime.run("a", {"topic": "ray"})
        finally:
            await runtime.aclose()
            tracing.force_flush()
    assert result.outcome is Outcome.COMPLETED, result.error
    (chat,) = [s for s in tracing.finished_spans() if s.name.startswith("chat ")]
    (retry,) = [e for e in chat.events if e.name == "gen_ai.retry"]
    assert retry.attributes["attempt"] == 1 and retry.attributes["error.type"] == "ModelRateLimited"
    tracing.shutdown()


IMPORT_ORDER = """
import asyncio, sys
from pathlib import Path
from agent_platform._compile import compile_specs
from agent_platform._runtime import engine
from agent_platform._runtime.tracing import Tracing, configure_tracing
from agent_platform._validate import ValidationOptions, validate_paths

seen = []
opened = Tracing.run_span
def run_span(self, *args, **kwargs):
    seen.append("openai" in sys.modules and "instructor" in sys.modules)
    return opened(self, *args, **kwargs)
Tracing.run_span = run_span
assert "openai" not in sys.modules
report = validate_paths([Path(sys.argv[1])], ValidationOptions(plugin_paths=[Path(sys.argv[2])]))
runtime = engine.Runtime(compile_specs(report.specs), plugin_paths=[Path(sys.argv[2])],
                         tracing=configure_tracing(memory=True))
asyncio.run(runtime.run("a", {"topic": "x"}))
print(seen)
"""


def test_the_model_sdks_are_imported_before_the_first_span_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their import (seconds, in a fresh process) sat inside the first model call's span."""
    import subprocess
    import sys

    (tmp_path / "plug_openai.py").write_text(PLUGIN)
    (tmp_path / "specs.yaml").write_text(SPECS.format(url="http://127.0.0.1:9"))
    env = {"AP_ENGINE_OPENAI_KEY": "sk-unused", "PLATFORM_STATE_DIR": str(tmp_path / "state"), "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ORDER, str(tmp_path / "specs.yaml"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True]"
