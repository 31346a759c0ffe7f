"""The OpenAI-compatible provider: OpenAI itself, or any server speaking its chat-completions API
(vLLM, Ollama, llama.cpp's server, llama-cpp-python), through `openai.AsyncOpenAI` and instructor.

* Key: from the variable the spec names (`api_key_env`, default OPENAI_API_KEY). Local servers
  need none: when the default variable is unset and `base_url` points at this machine (localhost,
  127.x, ::1) a placeholder is sent; otherwise a missing key is a `ModelConfigError` naming the
  variable. The key is never stored on the provider nor shown in errors or log lines
  (`factory.guard_sdk_logs`).
* Retries, timeouts, usage, attempts: as the Anthropic provider (`factory.RetryRunner`, SDK
  `max_retries=0`, instructor re-asks up to `request.max_validation_retries`). HTTP 503 (what
  local servers answer when busy) and 529 are `ModelOverloaded`. A server that reports no usage
  gets the documented estimate (`agent_platform._runtime.tokens`, ~4 characters per token).
* Structured output mode (`mode=`): `tools` (default) sends the response model as the only
  function with a *named* `tool_choice`, which OpenAI, vLLM (guided decoding) and
  llama-cpp-python (grammar from the function's schema) all enforce, and which keeps re-asks in
  the same tool-call shape; `json_schema` sends `response_format={"type": "json_schema", ...}`
  (OpenAI, vLLM, llama.cpp's C++ server and Ollama >= 0.5 constrain output with it;
  llama-cpp-python does not accept that type); `json` asks for `json_object` with the schema in
  the prompt (weakest); `json_object_schema` is `json` with the schema also in the
  `response_format` (`{"type": "json_object", "schema": ...}`), the form llama-cpp-python turns
  into a grammar: the answer is constrained to the schema's shape where `json_schema` is refused
  and a forced tool call's grammar is too large or left unfinished (small models on
  llama-cpp-python; the grammar leaves out upper length bounds, see `grammar_schema`).
  Constraints such as `maximum` are not enforced by every grammar, which is why the answer is
  validated with pydantic in every mode. Raw control characters a grammar let into a JSON string
  are escaped before parsing (`repair_response`).
* Messages: the system prompt is the first (`system`) message; our Messages-API blocks become the
  chat format: an assistant `tool_use` becomes an entry of the assistant message's `tool_calls`
  (`arguments` as a JSON string), and each `tool_result` a `tool` role message with its
  `tool_call_id` (errors prefixed `[error] `), placed before any text of that user turn. Every
  `content` is a string, and an assistant turn that only calls tools has none: the one shape that
  OpenAI and llama-cpp-python's server both accept (`drop_empty_content`, `flatten_text_parts`).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Literal, TypeGuard
from urllib.parse import urlsplit

from agent_platform._runtime.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from agent_platform._runtime.models.base import (
    ModelConfigError,
    ModelRequest,
    ModelResult,
    T,
    Usage,
    cost_usd,
)
from agent_platform._runtime.models.factory import (
    OnRetry,
    RetryRunner,
    Sleep,
    UsageTally,
    api_key_from_env,
    exact_instance,
    guard_sdk_logs,
    is_local_url,
    missing_key_error,
    reasks,
)
from agent_platform._runtime.models.http_provider import HttpProvider
from agent_platform._runtime.tokens import estimate_tokens, message_tokens
from agent_platform._spec.kinds import ModelSpec

PROVIDER = "openai"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
LOCAL_PLACEHOLDER_KEY = "not-needed"
StructuredMode = Literal["tools", "json_schema", "json", "json_object_schema"]


def to_openai_messages(system: str, messages: list[Message]) -> list[dict[str, Any]]:
    """Our Messages-API conversation in the chat-completions format (see the module docstring)."""
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for message in messages:
        texts = [b.text for b in message.content if isinstance(b, TextBlock)]
        if message.role == "assistant":
            calls = [
                {
                    "id": b.id,
                    "type": "function",
                    "function": {"name": b.name, "arguments": json.dumps(b.input, ensure_ascii=False)},
                }
                for b in message.content
                if isinstance(b, ToolUseBlock)
            ]
            # instructor reads every message's `content`: a turn that only calls tools keeps a
            # null here, and goes out without it (`drop_empty_content`).
            entry: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
            if calls:
                entry["tool_calls"] = calls
            elif entry["content"] is None:
                entry["content"] = ""
            out.append(entry)
            continue
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                content = f"[error] {block.content}" if block.is_error else block.content
                out.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": content})
        if texts or not message.tool_result_ids:
            out.append({"role": "user", "content": "\n\n".join(texts)})
    return out


def drop_empty_content(messages: Any) -> None:
    """An assistant turn that only calls tools goes out without `content`, which the API requires
    "unless tool_calls is specified". Every other form of "no text" is refused somewhere:
    instructor turns a missing or null content into `[]`, an empty array of content parts, which
    OpenAI-compatible servers reject (llama.cpp's among them: every multi-step agent failed at its
    second call), and llama-cpp-python's server refuses `null` too (its assistant `content` is an
    optional string). Applied just before the request is sent."""
    if not isinstance(messages, list):
        return
    for message in messages:
        if (
            isinstance(message, dict)
            and message.get("role") == "assistant"
            and message.get("tool_calls")
            and message.get("content", "") in ([], "", None)
        ):
            message.pop("content", None)


def flatten_text_parts(messages: Any) -> None:
    """Content given as an array of text parts, sent as the one string it stands for. The API
    takes either form, but instructor's JSON modes rewrite turns into part arrays, and
    llama-cpp-python's server accepts only a string for system, assistant and tool messages
    (HTTP 500, one validation error per message role it tried)."""
    if not isinstance(messages, list):
        return
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if (
            isinstance(content, list)
            and content
            and all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                for p in content
            )
        ):
            message["content"] = "\n\n".join(part["text"] for part in content)


@functools.cache
def _chat_client_class() -> type[Any]:
    """The SDK's client with the request body put right (see `drop_empty_content`), through
    `_prepare_options`, the hook the SDK provides for mutating a request before it is sent (see
    also `flatten_text_parts`)."""
    import openai

    class ChatClient(openai.AsyncOpenAI):
        async def _prepare_options(self, options: Any) -> Any:
            options = await super()._prepare_options(options)
            body = getattr(options, "json_data", None)
            if isinstance(body, dict):
                flatten_text_parts(body.get("messages"))  # first: `[{"text": ""}]` is empty too
                drop_empty_content(body.get("messages"))
            return options

    return ChatClient


def max_tokens_parameter(base_url: str | None) -> str:
    """`max_completion_tokens` for OpenAI itself (its `max_tokens` is deprecated and rejected by
    reasoning models), `max_tokens` for every other server (all of them understand it)."""
    host = (urlsplit(base_url).hostname or "") if base_url else "api.openai.com"
    return "max_completion_tokens" if host == "api.openai.com" else "max_tokens"


# Upper bounds llama.cpp's grammar writes out as one nested rule per allowed character or item:
# a `maxLength: 2000` string passes its parser's limit, which then refuses the whole grammar and
# generates unconstrained text (llama-cpp-python 0.3 then crashed). Bounds above
# `GRAMMAR_MAX_BOUND` are left out of the grammar; smaller ones stay, as they make a model that
# would ramble on close its string. Every bound is still enforced: the answer is validated
# against the full schema, and one that breaks a bound is re-asked.
GRAMMAR_BOUNDS = frozenset({"maxLength", "maxItems", "maxProperties"})
GRAMMAR_MAX_BOUND = 256
# llama-cpp-python's converter ignores `minimum`/`maximum`: a small integer range is written out as
# an `enum` of its values, which it does turn into a grammar (a 270M model asked for a 1-10
# `max_results` wrote 100 and failed its step).
GRAMMAR_MAX_ENUM = 64
# Keywords whose value maps names (not keywords) to subschemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


def grammar_schema(schema: Any) -> Any:
    """`schema` without the upper bounds a grammar cannot hold (`GRAMMAR_BOUNDS` above
    `GRAMMAR_MAX_BOUND`), for a server that compiles it to a grammar."""
    if isinstance(schema, list):
        return [grammar_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    values = _integer_range(schema)
    if values is not None and "enum" not in schema and "const" not in schema:
        out["enum"] = values
    for key, value in schema.items():
        if key in GRAMMAR_BOUNDS and isinstance(value, int) and value > GRAMMAR_MAX_BOUND:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: grammar_schema(sub) for name, sub in value.items()}
        elif key in ("enum", "const", "default", "examples"):
            out[key] = value  # values, not schemas
        else:
            out[key] = grammar_schema(value)
    return out


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer_range(schema: dict[str, Any]) -> list[int] | None:
    """The values of an integer schema bounded on both sides by at most `GRAMMAR_MAX_ENUM` values."""
    if schema.get("type") != "integer":
        return None
    lows = [math.ceil(v) for v in (schema.get("minimum"),) if _finite(v)]
    lows += [math.floor(v) + 1 for v in (schema.get("exclusiveMinimum"),) if _finite(v)]
    highs = [math.floor(v) for v in (schema.get("maximum"),) if _finite(v)]
    highs += [math.ceil(v) - 1 for v in (schema.get("exclusiveMaximum"),) if _finite(v)]
    if not lows or not highs:
        return None
    first, last = max(lows), min(highs)
    if last < first or last - first + 1 > GRAMMAR_MAX_ENUM:
        return None
    step = schema.get("multipleOf")
    return [v for v in range(first, last + 1) if not isinstance(step, int) or step <= 0 or v % step == 0]


def grammar_format(response_model: type[Any]) -> dict[str, Any]:
    """`response_format` for `json_object_schema`: JSON mode with the response model's schema, as
    llama-cpp-python documents it (it compiles the schema to a grammar). The schema is the one
    instructor's JSON mode puts in the prompt, so the grammar and the instructions agree, less the
    bounds a grammar cannot hold (`grammar_schema`)."""
    return {"type": "json_object", "schema": grammar_schema(response_model.model_json_schema())}


_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def escape_string_controls(text: str) -> str:
    """`text` with the raw control characters inside its JSON strings escaped. A grammar-constrained
    server (llama-cpp-python: its JSON grammar's string characters are `[^"\\]`) lets a model
    write a raw newline inside a string, which JSON forbids and pydantic refuses ("control
    character found while parsing a string"); the value meant is not in doubt. Outside strings
    such characters are whitespace, and are left as they are."""
    if not any(ord(c) < 0x20 for c in text):
        return text
    out: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            elif ord(char) < 0x20:
                char = _CONTROL_ESCAPES.get(char, f"\\u{ord(char):04x}")
        elif char == '"':
            in_string = True
        out.append(char)
    return "".join(out)


def repair_response(response: Any) -> None:
    """Escape raw control characters in the answer's JSON (`escape_string_controls`), in the
    message content (JSON modes) and in tool-call arguments (tools mode), before it is parsed."""
    for choice in getattr(response, "choices", None) or []:
        message = getattr(choice, "message", None)
        if message is None:
            continue
        if isinstance(message.content, str):
            message.content = escape_string_controls(message.content)
        for call in getattr(message, "tool_calls", None) or []:
            function = getattr(call, "function", None)
            if function is not None and isinstance(function.arguments, str):
                function.arguments = escape_string_controls(function.arguments)


def _read_usage(response: Any) -> tuple[int, int] | None:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


def _response_id(completion: Any) -> str | None:
    choices = getattr(completion, "choices", None) or []
    if choices:
        calls = getattr(choices[0].message, "tool_calls", None) or []
        if calls:
            return str(calls[0].id)
    ident = getattr(completion, "id", None)
    return str(ident) if ident else None


class OpenAIProvider(HttpProvider):
    PROVIDER = PROVIDER

    """Structured calls to an OpenAI-compatible chat-completions API (see the module docstring)."""

    __slots__ = ("_client", "_grammar", "_instructor", "_retry", "_sdk", "_spec", "_token_param")

    def __init__(
        self,
        spec: ModelSpec,
        *,
        sleep: Sleep | None = None,
        on_retry: OnRetry | None = None,
        mode: StructuredMode = "tools",
    ) -> None:
        if not spec.name:
            raise ModelConfigError("an openai model needs its `name`", provider=PROVIDER)
        key = api_key_from_env(spec, DEFAULT_KEY_ENV)
        if key is None:
            if spec.api_key_env is None and is_local_url(spec.base_url):
                key = LOCAL_PLACEHOLDER_KEY
            else:
                raise missing_key_error(spec, DEFAULT_KEY_ENV, provider=PROVIDER)
        import instructor
        import openai

        modes = {
            "tools": instructor.Mode.TOOLS,
            "json_schema": instructor.Mode.JSON_SCHEMA,
            "json": instructor.Mode.JSON,
            # instructor's JSON mode (the schema in the prompt, the answer read from the content);
            # the schema is added to its response_format in `complete` (see `grammar_format`).
            "json_object_schema": instructor.Mode.JSON,
        }
        if mode not in modes:
            raise ModelConfigError(
                f"unknown structured-output mode {mode!r}", provider=PROVIDER, model=spec.name
            )
        self._spec = spec
        self._grammar = mode == "json_object_schema"
        self._sdk = openai
        self._token_param = max_tokens_parameter(spec.base_url)
        self._retry = RetryRunner(
            spec.retry,
            provider=PROVIDER,
            model=spec.name,
            sleep=sleep,
            on_retry=on_retry,
            max_retry_after=spec.max_retry_after,
        )
        self._client = _chat_client_class()(
            api_key=key,
            base_url=spec.base_url,
            timeout=spec.timeout,
            max_retries=0,  # retries are ours (spec.retry)
        )
        self._instructor = instructor.from_openai(self._client, mode=modes[mode])
        guard_sdk_logs(None if key == LOCAL_PLACEHOLDER_KEY else key)

    async def complete(self, request: ModelRequest[T]) -> ModelResult[T]:
        spec = self._spec
        max_tokens, temperature = self.sampling(request)
        tally = UsageTally(_read_usage)
        hooks = tally.hooks()
        hooks.on("completion:response", repair_response)  # runs before instructor parses it

        async def attempt() -> tuple[T, Any]:
            kwargs: dict[str, Any] = {
                "model": spec.name,
                "messages": to_openai_messages(request.system, request.messages),
                self._token_param: max_tokens,
                "response_model": request.response_model,
                "max_retries": tally.reasks_within(spec, reasks(request, spec)),
                "strict": True,
                "hooks": hooks,
            }
            if temperature is not None:
                kwargs["temperature"] = temperature
            if self._grammar:
                # instructor's JSON mode sets `response_format: {"type": "json_object"}`; the SDK
                # merges `extra_body` over the request body, so this replaces it whole.
                kwargs["extra_body"] = {"response_format": grammar_format(request.response_model)}
            try:
                output, completion = await self._instructor.create_with_completion(**kwargs)
            except Exception as exc:
                mapped = self._typed(exc, request, max_tokens, tally)
                if mapped is None:
                    raise
                raise mapped[0] from mapped[1]
            return output, completion

        output, completion = await self._retry.call(attempt, budget=tally.budget_left(spec))
        usage = tally.usage
        if tally.missing:
            usage = usage + Usage(
                tally.missing * self._estimate_input(request),
                tally.missing * estimate_tokens(output.model_dump_json()),
            )
        return ModelResult(
            output=exact_instance(request.response_model, output),
            usage=usage,
            cost_usd=cost_usd(spec, usage),
            provider=PROVIDER,
            model=spec.name or "",
            response_id=_response_id(completion),
            attempts=max(tally.requests, 1),
        )

    @staticmethod
    def _estimate_input(request: ModelRequest[Any]) -> int:
        return estimate_tokens(request.system) + sum(message_tokens(m) for m in request.messages)
