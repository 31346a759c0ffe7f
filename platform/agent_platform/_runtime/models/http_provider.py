"""What the HTTP providers (anthropic, openai) share: the ModelProvider surface around an SDK
client that is pooled, stateless between calls, and retried by our policy, not the SDK's."""

from __future__ import annotations

from typing import Any, ClassVar

from agent_platform._runtime.models.base import ModelError, ModelRequest
from agent_platform._runtime.models.factory import (
    RetryRunner,
    UsageTally,
    annotate_error,
    map_instructor_error,
)
from agent_platform._spec.kinds import ModelSpec


class HttpProvider:
    PROVIDER: ClassVar[str]
    _spec: ModelSpec
    _retry: RetryRunner
    _client: Any
    _sdk: Any  # the SDK module, whose exception classes the errors are mapped from

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def is_scripted(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return self.PROVIDER

    @property
    def retry(self) -> RetryRunner:
        return self._retry

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self._spec.name!r}, base_url={self._spec.base_url!r})"

    async def aclose(self) -> None:
        await self._client.close()

    def sampling(self, request: ModelRequest[Any]) -> tuple[int, float | None]:
        """(max_tokens, temperature): the request's, else the Model spec's."""
        spec = self._spec
        temperature = request.temperature if request.temperature is not None else spec.temperature
        return request.max_tokens or spec.max_tokens, temperature

    def _typed(
        self, exc: Exception, request: ModelRequest[Any], max_tokens: int, tally: UsageTally
    ) -> tuple[ModelError, BaseException | None] | None:
        """The typed ModelError for an SDK/instructor exception (with the usage spent), or None."""
        api_key = self._client.api_key
        mapped = map_instructor_error(
            exc,
            self._sdk,
            provider=self.PROVIDER,
            model=self._spec.name,
            response_model=request.response_model,
            max_tokens=max_tokens,
            timeout=self._spec.timeout,
            secret=api_key if isinstance(api_key, str) else None,
        )
        if mapped is not None:
            annotate_error(mapped[0], usage=tally.usage, retry_after=getattr(mapped[0], "retry_after", None))
        return mapped
