"""The Anthropic provider: the real `anthropic.AsyncAnthropic` SDK with instructor for structured
output, never blocking the event loop.

* Key: from the environment variable the spec names (`api_key_env`, default ANTHROPIC_API_KEY),
  read when the provider is created; a missing key is a `ModelConfigError` naming the variable. The
  key is handed to the SDK only: it is not stored on the provider, and any echo of it in a server
  message is masked before it reaches an exception or a log line (`factory.guard_sdk_logs`).
* Endpoint and limits: `base_url`, `timeout` (per request) and `max_tokens`/`temperature` from the
  spec (a request may override the last two). The SDK (2.x) dropped its `temperature` parameter,
  so a temperature is sent as an extra body field; the API rejects it (`ModelRequestError`) for
  models that take no sampling parameters.
* Retries are ours, not the SDK's (`max_retries=0`): the spec's `retry` policy runs the call in a
  tenacity loop (`factory.RetryRunner`): exponential backoff with jitter, `retry-after` honoured
  up to `backoff.max`, only the `retry_on` categories retried. Validation failures are instructor's
  business: it re-asks the model with the validation error (as a `tool_result` with `is_error`) up
  to `request.max_validation_retries` times, then we raise `ModelOutputInvalid`.
* Structured output: instructor's tools mode (`Mode.TOOLS`; `Mode.ANTHROPIC_TOOLS` is its
  deprecated alias): the response model becomes the only tool, `tools=[{name, description,
  input_schema}]`, forced with `tool_choice={"type": "tool", "name": <model class name>,
  "disable_parallel_tool_use": true}`. The tool is named after the response model's class
  (`__name__`; the schema's title must equal it), so a response model's name must be a valid tool
  name (`[a-zA-Z0-9_-]{1,64}`).
* Result: `usage` is the exact sum over every response of the call (re-asks and retries included;
  cache-creation and cache-read input tokens count as input); `attempts` counts the HTTP requests
  sent; `response_id` is the id of the final `tool_use` block.
"""

from __future__ import annotations

from typing import Any

from agent_platform._runtime.models.base import (
    ModelConfigError,
    ModelRequest,
    ModelResult,
    T,
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
    missing_key_error,
    reasks,
)
from agent_platform._runtime.models.http_provider import HttpProvider
from agent_platform._spec.kinds import ModelSpec

PROVIDER = "anthropic"
DEFAULT_KEY_ENV = "ANTHROPIC_API_KEY"


def _read_usage(response: Any) -> tuple[int, int] | None:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    inputs = (
        (getattr(usage, "input_tokens", 0) or 0)
        + (getattr(usage, "cache_creation_input_tokens", 0) or 0)
        + (getattr(usage, "cache_read_input_tokens", 0) or 0)
    )
    return int(inputs), int(getattr(usage, "output_tokens", 0) or 0)


def _read_cache_usage(response: Any) -> tuple[int, int]:
    """Of the input tokens `_read_usage` counts, those written to and read from the prompt cache."""
    usage = getattr(response, "usage", None)
    return (
        int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
        int(getattr(usage, "cache_read_input_tokens", 0) or 0),
    )


def system_blocks(system: str, *, cache: bool) -> str | list[dict[str, Any]]:
    """The system prompt, as a text block marked as a cache breakpoint when `cache`. The API
    caches the prompt prefix in the order tools, system, messages: this one breakpoint covers the
    tool definitions too, so every step of an agent re-reads them at the cache-read price."""
    if not cache:
        return system
    return [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]


def _tool_use_id(completion: Any) -> str | None:
    for block in getattr(completion, "content", None) or ():
        if getattr(block, "type", None) == "tool_use":
            return str(block.id)
    return None


class AnthropicProvider(HttpProvider):
    PROVIDER = PROVIDER

    """Structured calls to the Anthropic Messages API (see the module docstring)."""

    __slots__ = ("_client", "_instructor", "_retry", "_sdk", "_spec")

    def __init__(
        self, spec: ModelSpec, *, sleep: Sleep | None = None, on_retry: OnRetry | None = None
    ) -> None:
        if not spec.name:
            raise ModelConfigError("an anthropic model needs its `name`", provider=PROVIDER)
        key = api_key_from_env(spec, DEFAULT_KEY_ENV)
        if key is None:
            raise missing_key_error(spec, DEFAULT_KEY_ENV, provider=PROVIDER)
        import anthropic
        import instructor

        self._spec = spec
        self._sdk = anthropic
        self._retry = RetryRunner(
            spec.retry,
            provider=PROVIDER,
            model=spec.name,
            sleep=sleep,
            on_retry=on_retry,
            max_retry_after=spec.max_retry_after,
        )
        self._client = anthropic.AsyncAnthropic(
            api_key=key,
            base_url=spec.base_url,
            timeout=spec.timeout,
            max_retries=0,  # retries are ours (spec.retry), so the SDK must not hide errors
        )
        self._instructor = instructor.from_anthropic(self._client, mode=instructor.Mode.TOOLS)
        guard_sdk_logs(key)

    async def complete(self, request: ModelRequest[T]) -> ModelResult[T]:
        spec = self._spec
        max_tokens, temperature = self.sampling(request)
        tally = UsageTally(_read_usage, _read_cache_usage)
        hooks = tally.hooks()

        async def attempt() -> tuple[T, Any]:
            kwargs: dict[str, Any] = {
                "model": spec.name,
                "messages": [m.to_api() for m in request.messages],
                "max_tokens": max_tokens,
                "response_model": request.response_model,
                "max_retries": tally.reasks_within(self._spec, reasks(request, self._spec)),
                "strict": True,
                "hooks": hooks,
            }
            if request.system:
                kwargs["system"] = system_blocks(request.system, cache=spec.prompt_cache)
            if temperature is not None:
                # anthropic>=2 has no `temperature` parameter any more: sent as a body field, which
                # the API rejects (ModelRequestError) for models without sampling parameters.
                kwargs["extra_body"] = {"temperature": temperature}
            try:
                output, completion = await self._instructor.create_with_completion(**kwargs)
            except Exception as exc:
                mapped = self._typed(exc, request, max_tokens, tally)
                if mapped is None:
                    raise  # not an API or instructor error: a bug, keep its traceback
                raise mapped[0] from mapped[1]
            return output, completion

        output, completion = await self._retry.call(attempt, budget=tally.budget_left(spec))
        usage = tally.usage
        return ModelResult(
            output=exact_instance(request.response_model, output),
            usage=usage,
            cost_usd=cost_usd(spec, usage, cache_written=tally.cache_written, cache_read=tally.cache_read),
            provider=PROVIDER,
            model=spec.name or "",
            response_id=_tool_use_id(completion),
            attempts=max(tally.requests, 1),
        )
