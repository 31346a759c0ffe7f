"""The one small interface every model provider implements: a request with a pydantic response
model in, a validated object plus real usage and cost out. Errors are typed so callers (and
retry policies) can tell a rate limit from a bad key from a malformed answer."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel

from agent_platform._runtime.messages import Message
from agent_platform._spec.kinds import ModelSpec

T = TypeVar("T", bound=BaseModel)


class Usage(NamedTuple):
    """Tokens of one or more model calls. Immutable; a NamedTuple because the agent loop makes two
    per step and a frozen dataclass is several times dearer to build (its __init__ goes through
    object.__setattr__). `+` adds field-wise (it is not tuple concatenation)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: tuple[object, ...]) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


def cost_usd(spec: ModelSpec, usage: Usage, *, cache_written: int = 0, cache_read: int = 0) -> float:
    """Cost from the Model spec's pricing (USD per million tokens); 0 when no pricing is declared.
    `usage.input_tokens` counts every input token; `cache_written` and `cache_read` of them are
    billed at the cache prices instead of the input price."""
    pricing = spec.pricing
    if pricing is None:
        return 0.0
    plain = usage.input_tokens - cache_written - cache_read
    cost = plain * pricing.input_per_mtok + usage.output_tokens * pricing.output_per_mtok
    if cache_written or cache_read:
        cost += cache_written * pricing.cache_write + cache_read * pricing.cache_read
    return cost / 1_000_000


@dataclass(slots=True)
class ModelRequest(Generic[T]):
    """One structured call. `key` names who asks (an agent, or `pipeline/step`): the scripted
    provider keys its script on it and traces show it."""

    system: str
    messages: list[Message]
    response_model: type[T]
    key: str
    max_tokens: int | None = None  # default: the Model spec's
    temperature: float | None = None
    # Re-asks with the validation error before giving up; None: the Model spec's `max_reasks`.
    max_validation_retries: int | None = None


@dataclass(slots=True)
class ModelResult(Generic[T]):
    output: T
    usage: Usage
    cost_usd: float
    provider: str  # "anthropic" | "openai" | "scripted"
    model: str
    response_id: str | None = None  # e.g. the tool_use id the answer came in, when the API gives one
    attempts: int = 1  # including validation re-asks


# What the run being executed in this context spends on a model call made for it outside its own
# conversation (an injection classifier's calls): set by the runtime for the duration of each
# run, so such calls count against the run's token and cost budgets like its own.
RUN_SPEND: ContextVar[Callable[[ModelResult[Any]], None] | None] = ContextVar("run_spend", default=None)


def charge_run(result: ModelResult[Any]) -> None:
    """Account `result` to the run executing in this context (nothing outside a run)."""
    spend = RUN_SPEND.get()
    if spend is not None:
        spend(result)


class ModelProvider(Protocol):
    """Async and stateless between calls (it may hold a connection pool)."""

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def is_scripted(self) -> bool: ...

    async def complete(self, request: ModelRequest[T]) -> ModelResult[T]: ...

    async def aclose(self) -> None: ...


# --- errors -----------------------------------------------------------------------------------


class ModelError(Exception):
    """Base of every provider error. `retryable` says whether trying again may help."""

    retryable = False

    def __init__(self, message: str, *, provider: str, model: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model

    def __str__(self) -> str:
        where = f"{self.provider}:{self.model}" if self.model else self.provider
        return f"{where}: {self.args[0]}"


class ModelConfigError(ModelError):
    """The Model spec cannot be used as given (e.g. its API key variable is not set)."""


class ModelAuthError(ModelError):
    """The provider refused the credentials."""


class ModelRequestError(ModelError):
    """The provider rejected the request itself (400): retrying the same request cannot help."""


class ModelRateLimited(ModelError):
    retryable = True


class ModelOverloaded(ModelError):
    retryable = True


class ModelServerError(ModelError):
    retryable = True


class ModelTimeout(ModelError):
    retryable = True


class ModelConnectionError(ModelError):
    retryable = True


class ModelOutputInvalid(ModelError):
    """The model's answer did not validate against the response model after the allowed re-asks."""


class ScriptExhausted(ModelError):
    """The scripted provider has no answer left for this key (and may not synthesise one)."""
