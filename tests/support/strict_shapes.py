"""Request validation as strict as the real APIs', for the local test servers.

A test server that accepts any request shape hides shape bugs: one sent `content: []` on an
assistant turn for months, and every real OpenAI-compatible server rejected it. These checks
reject what the documented APIs reject: empty content, unknown roles, a tool result without
its call, a tool call left unanswered, wrong role order. Each returns the first problem found
(the servers answer it as a 400 `invalid_request_error`), or None."""

from __future__ import annotations

from typing import Any

CHAT_ROLES = {"system", "developer", "user", "assistant", "tool"}


def _non_empty_content(content: Any, *, allow_null: bool) -> str | None:
    if content is None:
        return None if allow_null else "content is required"
    if isinstance(content, str):
        return None  # the API accepts an empty string
    if isinstance(content, list):
        if not content:
            return "content must be a non-empty string or array of content parts, not []"
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in (
                "text",
                "image_url",
                "input_audio",
                "refusal",
            ):
                return f"invalid content part {part!r}"
            if part.get("type") == "text" and not isinstance(part.get("text"), str):
                return "a text part needs a string 'text'"
        return None
    return f"content must be a string or an array, not {type(content).__name__}"


def response_format_problem(fmt: Any) -> str | None:
    """What the API refuses in `response_format`. `schema` beside `type: json_object` is
    llama-cpp-python's documented extension (a grammar from the schema), accepted here so the
    `json_object_schema` mode is exercised; anything else unknown is refused."""
    if not isinstance(fmt, dict):
        return "response_format must be an object"
    kind = fmt.get("type")
    allowed = {"text": {"type"}, "json_object": {"type", "schema"}, "json_schema": {"type", "json_schema"}}
    if kind not in allowed:
        return f"response_format.type {kind!r} is not one of {sorted(allowed)}"
    unknown = sorted(set(fmt) - allowed[kind])
    if unknown:
        return f"response_format: unrecognized argument(s) {', '.join(unknown)} for type {kind!r}"
    if kind == "json_object" and "schema" in fmt and not isinstance(fmt["schema"], dict):
        return "response_format.schema must be a JSON Schema object"
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            return "response_format.json_schema needs a 'name'"
        if "schema" in spec and not isinstance(spec["schema"], dict):
            return "response_format.json_schema.schema must be an object"
    return None


def llama_cpp_python_problem(message: dict[str, Any]) -> str | None:
    """What llama-cpp-python's server refuses in a message although OpenAI accepts it: its
    system, assistant and tool messages take `content` only as a string (an assistant's may be
    absent, never null). The providers must send what both accept."""
    if message.get("role") not in ("system", "assistant", "tool") or "content" not in message:
        return None
    if not isinstance(message["content"], str):
        shown = "null" if message["content"] is None else type(message["content"]).__name__
        return f"content must be a string (llama-cpp-python's server refuses {shown} here)"
    return None


def chat_completions_problem(body: Any) -> str | None:
    """What OpenAI's `POST /v1/chat/completions` would refuse in `body`, and what
    llama-cpp-python's server refuses besides (`llama_cpp_python_problem`)."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'model' is required"
    if "response_format" in body:
        problem = response_format_problem(body["response_format"])
        if problem:
            return problem
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    unanswered: list[str] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            return f"{where} must be an object"
        role = message.get("role")
        if role not in CHAT_ROLES:
            return f"{where}.role {role!r} is not one of {sorted(CHAT_ROLES)}"
        stricter = llama_cpp_python_problem(message)
        if stricter:
            return f"{where}: {stricter}"
        if unanswered and role != "tool":
            return (
                f"{where}: an assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id' (missing: {', '.join(unanswered)})"
            )
        if role == "assistant":
            calls = message.get("tool_calls")
            if calls is not None:
                if not isinstance(calls, list) or not calls:
                    return f"{where}.tool_calls must be a non-empty array"
                for call in calls:
                    function = call.get("function") if isinstance(call, dict) else None
                    if (
                        not isinstance(call, dict)
                        or not call.get("id")
                        or call.get("type") != "function"
                        or not isinstance(function, dict)
                        or not function.get("name")
                        or not isinstance(function.get("arguments"), str)
                    ):
                        return f"{where}.tool_calls: invalid call {call!r}"
                    unanswered.append(str(call["id"]))
            problem = _non_empty_content(message.get("content"), allow_null=bool(calls))
            if "content" not in message and not calls:
                problem = "content is required"
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in unanswered:
                return f"{where}: tool message with tool_call_id {call_id!r} answers no preceding tool call"
            unanswered.remove(call_id)
            problem = _non_empty_content(message.get("content"), allow_null=False)
        else:
            problem = _non_empty_content(message.get("content"), allow_null=False)
        if problem:
            return f"{where}: {problem}"
    if unanswered:
        return f"tool calls without a tool message: {', '.join(unanswered)}"
    return None


def messages_problem(body: Any) -> str | None:
    """What Anthropic's `POST /v1/messages` would refuse in `body`."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: must be a positive integer"
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list) or not all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) and b["text"]
            for b in system
        ):
            return "system: must be a string or an array of non-empty text blocks"
        for block in system:
            control = block.get("cache_control")
            if (
                control is not None
                and control != {"type": "ephemeral"}
                and control.get("type") != "ephemeral"
            ):
                return "system.cache_control: type must be 'ephemeral'"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user" if isinstance(messages[0], dict) else True:
        return "messages: the first message must use the 'user' role"
    previous_role = None
    pending_tool_uses: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"{where}.role: must be 'user' or 'assistant'"
        role = message["role"]
        if role == previous_role:
            return f"{where}: roles must alternate between 'user' and 'assistant'"
        content = message.get("content")
        if isinstance(content, str):
            if not content and not (role == "assistant" and index == len(messages) - 1):
                return f"{where}.content: text content blocks must be non-empty"
            blocks: list[Any] = []
        elif isinstance(content, list) and content:
            blocks = content
        else:
            return f"{where}.content: must be a non-empty string or array of content blocks"
        results = {
            b.get("tool_use_id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"
        }
        if pending_tool_uses and results != pending_tool_uses:
            return (
                f"{where}: each tool_use block must have a corresponding tool_result block in the next "
                f"message (missing: {', '.join(sorted(pending_tool_uses - results))})"
            )
        if results and not pending_tool_uses:
            return f"{where}: unexpected tool_result block: no tool_use in the previous message"
        pending_tool_uses = set()
        for block in blocks:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                if not isinstance(block.get("text"), str) or not block["text"]:
                    return f"{where}.content: text content blocks must be non-empty"
            elif kind == "tool_use":
                if role != "assistant" or not block.get("id") or not block.get("name"):
                    return f"{where}.content: invalid tool_use block"
                if not isinstance(block.get("input"), dict):
                    return f"{where}.content: tool_use.input must be an object"
                pending_tool_uses.add(str(block["id"]))
            elif kind == "tool_result":
                if role != "user":
                    return f"{where}.content: tool_result blocks belong in a user message"
            elif kind not in ("image", "document", "thinking", "redacted_thinking"):
                return f"{where}.content: unknown block type {kind!r}"
        previous_role = role
    if pending_tool_uses:
        return "the last assistant message's tool_use blocks need tool_result blocks before a new request"
    return None
