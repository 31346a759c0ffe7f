"""The local model server's Gemma 3 chat format (`agent_platform.local_llm`): what the model is shown
of an OpenAI-style conversation. llama-cpp-python's own `gemma` format drops system and tool
messages; these are the turns an agent's second model call sends."""

from __future__ import annotations

from pathlib import Path

from agent_platform.local_llm import DEFAULTS, gemma3_prompt, server_argv

CONVERSATION = [
    {"role": "system", "content": "Find a page. Answer in JSON."},
    {"role": "user", "content": "Topic: retries"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call-1",
                "type": "function",
                "function": {"name": "web-search", "arguments": '{"query": "retries"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call-1", "content": '{"results": ["Retries with backoff"]}'},
    {"role": "user", "content": [{"type": "text", "text": "Now answer."}]},
]


def test_system_opens_the_first_user_turn_and_tool_results_are_user_turns() -> None:
    assert gemma3_prompt(CONVERSATION) == (
        "<start_of_turn>user\nFind a page. Answer in JSON.\n\nTopic: retries<end_of_turn>\n"
        '<start_of_turn>model\nCall web-search with {"query": "retries"}<end_of_turn>\n'
        '<start_of_turn>user\nResult of web-search:\n{"results": ["Retries with backoff"]}\n\nNow answer.'
        "<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_a_conversation_opening_with_the_model_still_starts_with_a_user_turn() -> None:
    prompt = gemma3_prompt([{"role": "system", "content": "S"}, {"role": "assistant", "content": "hi"}])
    assert prompt.startswith("<start_of_turn>user\nS<end_of_turn>\n<start_of_turn>model\nhi<end_of_turn>\n")


def test_server_arguments_keep_the_callers_and_add_the_defaults() -> None:
    argv = server_argv(["--port", "9000", "--n_ctx", "4096"], model=Path("m.gguf"))
    assert argv[:4] == ["--port", "9000", "--n_ctx", "4096"]
    pairs = dict(zip(argv[::2], argv[1::2], strict=True))
    assert pairs["--model"] == "m.gguf" and pairs["--n_ctx"] == "4096"
    assert pairs["--chat_format"] == "gemma3" and pairs["--logits_all"] == "False"
    assert {flag for flag in DEFAULTS} <= set(pairs)
