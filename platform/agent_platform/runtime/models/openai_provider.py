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
  gets the documented estimate (`agent_platform.runtime.tokens`, ~4 characters per token).
* Structured output mode (`mode=`): `tools` (default) sends the response model as the only
  function with a *named* `tool_choice`, which OpenAI, vLLM (guided decoding) and
  llama-cpp-python (grammar from the function's schema) all enforce, and which keeps re-asks in
  the same tool-call shape; `json_schema` sends `response_format={"type": "json_schema", ...}`
  (OpenAI, vLLM, llama.cpp's C++ server and Ollama >= 0.5 constrain output with it;
  llama-cpp-python does not accept that type); `json` asks for `json_object` with the schema in
  the prompt (weakest). Constraints such as `maximum` are not enforced by every grammar, which is
  why the answer is validated with pydantic in every mode.
* Messages: the system prompt is the first (`system`) message; our Messages-API blocks become the
  chat format: an assistant `tool_use` becomes an entry of the assistant message's `tool_calls`
  (`arguments` as a JSON string), and each `tool_result` a `tool` role message with its
  `tool_call_id` (errors prefixed `[error] `), placed before any text of that user turn.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Literal
from urllib.parse import urlsplit

from agent_platform.runtime.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from agent_platform.runtime.models.base import (
    ModelConfigError,
    ModelRequest,
    ModelResult,
    T,
    Usage,
    cost_usd,
)
from agent_platform.runtime.models.factory import (
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
from agent_platform.runtime.models.http_provider import HttpProvider
from agent_platform.runtime.tokens import estimate_tokens, message_tokens
from agent_platform.spec.kinds import ModelSpec

PROVIDER = "openai"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
LOCAL_PLACEHOLDER_KEY = "not-needed"
StructuredMode = Literal["tools", "json_schema", "json"]


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


def restore_null_content(messages: Any) -> None:
    """An assistant turn that only calls tools has `content: null`, as the API documents it.
    instructor's message conversion turns a null (or empty) content into `[]`, an empty array
    of content parts, which OpenAI-compatible servers (llama.cpp among them) reject: put the null
    back just before the request is sent."""
    if not isinstance(messages, list):
        return
    for message in messages:
        if (
            isinstance(message, dict)
            and message.get("role") == "assistant"
            and message.get("tool_calls")
            and message.get("content") in ([], "")
        ):
            message["content"] = None


@functools.cache
def _chat_client_class() -> type[Any]:
    """The SDK's client with the request body put right (see `restore_null_content`), through
    `_prepare_options`, the hook the SDK provides for mutating a request before it is sent."""
    import openai

    class ChatClient(openai.AsyncOpenAI):
        async def _prepare_options(self, options: Any) -> Any:
            options = await super()._prepare_options(options)
            body = getattr(options, "json_data", None)
            if isinstance(body, dict):
                restore_null_content(body.get("messages"))
            return options

    return ChatClient


def max_tokens_parameter(base_url: str | None) -> str:
    """`max_completion_tokens` for OpenAI itself (its `max_tokens` is deprecated and rejected by
    reasoning models), `max_tokens` for every other server (all of them understand it)."""
    host = (urlsplit(base_url).hostname or "") if base_url else "api.openai.com"
    return "max_completion_tokens" if host == "api.openai.com" else "max_tokens"


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

    __slots__ = ("_client", "_instructor", "_retry", "_sdk", "_spec", "_token_param")

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
        }
        if mode not in modes:
            raise ModelConfigError(
                f"unknown structured-output mode {mode!r}", provider=PROVIDER, model=spec.name
            )
        self._spec = spec
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

        async def attempt() -> tuple[T, Any]:
            kwargs: dict[str, Any] = {
                "model": spec.name,
                "messages": to_openai_messages(request.system, request.messages),
                self._token_param: max_tokens,
                "response_model": request.response_model,
                "max_retries": reasks(request, spec),
                "strict": True,
                "hooks": hooks,
            }
            if temperature is not None:
                kwargs["temperature"] = temperature
            try:
                output, completion = await self._instructor.create_with_completion(**kwargs)
            except Exception as exc:
                mapped = self._typed(exc, request, max_tokens, tally)
                if mapped is None:
                    raise
                raise mapped[0] from mapped[1]
            return output, completion

        output, completion = await self._retry.call(attempt)
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
