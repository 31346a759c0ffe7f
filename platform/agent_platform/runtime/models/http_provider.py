"""What the HTTP providers (anthropic, openai) share: the ModelProvider surface around an SDK
client that is pooled, stateless between calls, and retried by our policy, not the SDK's."""

from __future__ import annotations

from typing import Any, ClassVar

from agent_platform.runtime.models.base import ModelRequest
from agent_platform.runtime.models.factory import RetryRunner
from agent_platform.spec.kinds import ModelSpec


class HttpProvider:
    PROVIDER: ClassVar[str]
    _spec: ModelSpec
    _retry: RetryRunner
    _client: Any

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
