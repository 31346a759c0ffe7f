"""From a Model spec to working parts: the provider (`create_provider`), and what the providers
share -- the API key read from the environment, the spec's retry policy run as a tenacity loop
(`RetryRunner`), and the HTTP providers' handling of instructor and SDK errors and usage
(`map_instructor_error`, `UsageTally`, `exact_instance`).

Importing this module is cheap: the SDKs (anthropic, openai, instructor: slow to import) are
imported only when a provider for them is created.

Lifetimes: the HTTP providers are stateless between calls (they hold a connection pool), so one
instance can serve many runs and should be `aclose()`d when the runtime stops. The scripted
provider keeps a cursor into its script, so the runtime creates one per run (with this factory, or
cheaply with `ScriptedProvider.fork()`, which shares the parsed script).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import math
import os
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from agent_platform._http_util import is_local_url as is_local_url
from agent_platform._http_util import retry_after_seconds as retry_after_seconds
from agent_platform._redaction import (
    MASK,
    MIN_KNOWN_SECRET,
    loggers_under,
    redact_loggers,
    redact_secrets,
)
from agent_platform._runtime.models.base import (
    ModelAuthError,
    ModelConfigError,
    ModelConnectionError,
    ModelError,
    ModelOutputInvalid,
    ModelOverloaded,
    ModelProvider,
    ModelRateLimited,
    ModelRequest,
    ModelRequestError,
    ModelServerError,
    ModelTimeout,
    Usage,
)
from agent_platform._runtime.models.custom import CustomProviders
from agent_platform._spec.common import RetryPolicy
from agent_platform._spec.kinds import BUILTIN_PROVIDERS, ModelSpec

R = TypeVar("R")
BM = TypeVar("BM", bound=BaseModel)
Sleep = Callable[[float], Awaitable[None]]
# on_retry(failed attempt number, its error, seconds until the next attempt)
OnRetry = Callable[[int, BaseException, float], None]


def reasks(request: ModelRequest[Any], spec: ModelSpec) -> int:
    """How many times an invalid answer is sent back: the request's own number, else the spec's."""
    return spec.max_reasks if request.max_validation_retries is None else request.max_validation_retries


def create_provider(
    spec: ModelSpec,
    *,
    base_dir: Path | None = None,
    sleep: Sleep | None = None,
    on_retry: OnRetry | None = None,
    custom: CustomProviders | None = None,
) -> ModelProvider:
    """The provider for `spec`. `base_dir` is the directory of the spec file (a scripted model's
    `script` is relative to it); `sleep` replaces `asyncio.sleep` between retries (a fake clock's
    `sleep`); `on_retry(attempt, error, delay)` is called before each retry (span events);
    `custom` finds a provider the platform does not ship (by default: through the spec's
    `python:` factory, from the default plugin paths)."""
    if spec.provider not in BUILTIN_PROVIDERS:
        return (custom if custom is not None else CustomProviders()).create(spec)
    if spec.provider == "scripted":
        from agent_platform._runtime.models.scripted import ScriptedProvider

        script: Path | None = None
        if spec.script is not None:
            script = Path(spec.script)
            if not script.is_absolute() and base_dir is not None:
                script = base_dir / script
        return ScriptedProvider(spec, script, sleep=sleep, on_retry=on_retry)
    if spec.provider == "anthropic":
        from agent_platform._runtime.models.anthropic_provider import AnthropicProvider

        return AnthropicProvider(spec, sleep=sleep, on_retry=on_retry)
    if spec.provider == "openai":
        from agent_platform._runtime.models.openai_provider import OpenAIProvider

        return OpenAIProvider(spec, sleep=sleep, on_retry=on_retry, mode=spec.structured_output)
    raise ModelConfigError(f"unknown model provider {spec.provider!r}", provider=str(spec.provider))


# --- API keys -----------------------------------------------------------------------------------


def api_key_from_env(spec: ModelSpec, default_var: str) -> str | None:
    """The API key from the variable the spec names (else `default_var`); None when it is unset or
    empty. Only the variable's *name* ever appears in messages -- never its value."""
    return os.environ.get(spec.api_key_env or default_var) or None


def missing_key_error(spec: ModelSpec, default_var: str, *, provider: str) -> ModelConfigError:
    var = spec.api_key_env or default_var
    named = "the Model spec's api_key_env" if spec.api_key_env else "the default for this provider"
    return ModelConfigError(
        f"the API key environment variable {var} ({named}) is not set or is empty; "
        f"export {var} before running (secrets never live in the YAML)",
        provider=provider,
        model=spec.name,
    )


# --- retries ------------------------------------------------------------------------------------

# Which typed errors each `retry_on` category covers. Overload (HTTP 529/503) is a capacity
# problem reported as a 5xx: it is retried under either `rate_limit` or `server_error`.
RETRY_CATEGORIES: dict[str, tuple[type[ModelError], ...]] = {
    "timeout": (ModelTimeout,),
    "connection": (ModelConnectionError,),
    "rate_limit": (ModelRateLimited, ModelOverloaded),
    "server_error": (ModelServerError, ModelOverloaded),
    "validation": (ModelOutputInvalid,),
}


class RetryRunner:
    """Runs a call under a `RetryPolicy`: up to `max_attempts` attempts; between them an exponential
    backoff `initial * multiplier**(n-1)` capped at `max`, with `full` jitter (uniform in [0, d]),
    `equal` jitter (d/2 + uniform in [0, d/2]) or none; at least the server's `retry-after` when it
    sends one, itself capped at `max_retry_after` (the Model spec's; `backoff.max` when none is
    given). Only errors in `retry_on` are retried: the categories
    of `RETRY_CATEGORIES`, or exception classes (`module:Class`) matched against the typed error and
    the SDK error behind it.

    The first attempt runs outside tenacity (its machinery would cost more than a call of the
    zero-latency scripted provider); the remaining attempts run in a tenacity `AsyncRetrying`."""

    __slots__ = ("_classes", "_max_retry_after", "_on_retry", "_policy", "_provider", "_sleep", "_types")

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        provider: str,
        model: str | None,
        sleep: Sleep | None = None,
        on_retry: OnRetry | None = None,
        max_retry_after: float | None = None,
    ) -> None:
        self._policy = policy
        self._max_retry_after = policy.backoff.max if max_retry_after is None else max_retry_after
        self._on_retry = on_retry
        self._provider = provider
        self._sleep: Sleep = sleep or asyncio.sleep
        types: list[type[ModelError]] = []
        classes: list[type[BaseException]] = []
        for entry in policy.retry_on:
            if entry in RETRY_CATEGORIES:
                types.extend(RETRY_CATEGORIES[entry])
            else:
                classes.append(_import_exception(entry, provider=provider, model=model))
        self._types = tuple(dict.fromkeys(types))
        self._classes = tuple(classes)

    @property
    def max_attempts(self) -> int:
        return self._policy.max_attempts

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, self._types):
            return True
        return bool(self._classes) and (
            isinstance(exc, self._classes) or isinstance(exc.__cause__, self._classes)
        )

    def delay(self, failed_attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after attempt number `failed_attempt` (1-based) failed with `exc`."""
        backoff = self._policy.backoff
        base = min(backoff.max, backoff.initial * backoff.multiplier ** (failed_attempt - 1))
        if backoff.jitter == "full":
            wait = random.uniform(0.0, base)
        elif backoff.jitter == "equal":
            wait = base / 2 + random.uniform(0.0, base / 2)
        else:
            wait = base
        hinted = retry_after_seconds(exc) if exc is not None else None
        if hinted is not None:
            # The server knows when it will take the call again: retrying earlier only fails
            # again. Its hint is honoured in full up to the declared ceiling.
            wait = max(wait, min(hinted, self._max_retry_after))
        return wait if math.isfinite(wait) else backoff.max

    def _planned(self, failed_attempt: int, exc: BaseException | None) -> float:
        """The delay before the next attempt, reported to `on_retry` (tracing: it runs in the
        caller's context, so `trace.get_current_span()` is the model call's span)."""
        seconds = self.delay(failed_attempt, exc)
        if self._on_retry is not None and exc is not None:
            self._on_retry(failed_attempt, exc, seconds)
        return seconds

    async def call(
        self, attempt: Callable[[], Awaitable[R]], *, budget: Callable[[], int] | None = None
    ) -> R:
        """`budget()`: requests the call may still send (`UsageTally.budget_left`); no attempt is
        retried once it is 0, so the last real error is what the caller sees."""
        try:
            return await attempt()
        except Exception as exc:
            if self._policy.max_attempts <= 1 or not self.should_retry(exc) or (budget and budget() <= 0):
                raise
            first = exc
        return await self._retry(first, attempt, budget)

    async def call_after(self, first: Exception, attempt: Callable[[], Awaitable[R]]) -> R:
        """`call` for a caller that made the first attempt itself (without a coroutine) and saw it
        fail with `first`: re-raises it when it is not retried, else retries with `attempt` exactly
        as `call` would have."""
        if self._policy.max_attempts <= 1 or not self.should_retry(first):
            raise first
        return await self._retry(first, attempt)

    async def _retry(
        self, first: Exception, attempt: Callable[[], Awaitable[R]], budget: Callable[[], int] | None = None
    ) -> R:
        await self._sleep(self._planned(1, first))

        from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

        def wait(state: RetryCallState) -> float:
            if state.attempt_number >= self._policy.max_attempts - 1:
                # tenacity asks for the wait before it checks `stop`: after the last attempt there
                # is no retry to report (it showed as one more retry span event than was made).
                return 0.0
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            return self._planned(state.attempt_number + 1, error)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._policy.max_attempts - 1),
            wait=wait,
            retry=retry_if_exception(
                self.should_retry if budget is None else lambda exc: budget() > 0 and self.should_retry(exc)
            ),
            sleep=self._sleep,
            reraise=True,
        )
        result: R = await retrying(attempt)
        return result


def _import_exception(ref: str, *, provider: str, model: str | None) -> type[BaseException]:
    module_name, _, attr = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception as exc:
        raise ModelConfigError(
            f"retry_on entry {ref!r} cannot be imported: {exc}", provider=provider, model=model
        ) from exc
    if not (isinstance(target, type) and issubclass(target, BaseException)):
        raise ModelConfigError(
            f"retry_on entry {ref!r} is not an exception class", provider=provider, model=model
        )
    return target


# --- shared by the HTTP providers (anthropic, openai): the SDKs' loggers ----------------------

# The loggers of the libraries an HTTP provider calls through: instructor, the SDKs, and the HTTP
# clients under them (the SDKs' httpx2/httpcore2, forks of httpx/httpcore, which other clients in
# the process use). Their records can quote a server's error body, which may echo the API key, or
# a URL with credentials.
SDK_LOGGERS = ("instructor", "anthropic", "openai", "httpx", "httpcore", "httpx2", "httpcore2")


class InstructorLogsAtDebug(logging.Filter):
    """Lowers instructor's records to DEBUG and keeps them only where DEBUG is enabled for its
    logger. instructor logs every failed API call and its final give-up at ERROR, which Python
    prints to stderr when nothing configured logging (`platform run --local`, Ray workers). Our
    providers turn each of those failures into a typed `ModelError`, which the run result and the
    model call's span carry; and a call our retry policy retries with success has not failed. So
    those lines only repeat, out of context, what is reported where it belongs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_INSTRUCTOR_AT_DEBUG = InstructorLogsAtDebug()


def guard_sdk_logs(api_key: str | None) -> None:
    """Route the SDKs' loggers through `redact_secrets` (masking `api_key` wherever it is
    echoed) and keep instructor's per-attempt errors out of successful runs (see
    `InstructorLogsAtDebug`). Called by each HTTP provider once its SDK and instructor client
    exist, so their loggers do too. Idempotent."""
    for logger in loggers_under(("instructor",)):
        if _INSTRUCTOR_AT_DEBUG not in logger.filters:
            # first, so that what it drops is not redacted for nothing
            logger.filters.insert(0, _INSTRUCTOR_AT_DEBUG)
    redact_loggers(SDK_LOGGERS, known=(api_key,))


# --- shared by the HTTP providers (anthropic, openai): instructor and SDK errors ---------------


def annotate_error(
    error: ModelError, *, usage: Usage | None = None, retry_after: float | None = None
) -> ModelError:
    """Attach what a failed call cost (`usage`) and the server's requested delay (`retry_after`,
    seconds) to a typed error. (`ModelError` has no fields for these yet: they are set as plain
    attributes, read with `getattr(error, "usage", None)`.)"""
    error.__dict__["usage"] = usage
    error.__dict__["retry_after"] = retry_after
    return error


def request_budget(spec: ModelSpec) -> int:
    """The most HTTP requests one model call may send: `max_requests`, else one per retry
    attempt plus one per re-ask (`retry.max_attempts + max_reasks`)."""
    if spec.max_requests is not None:
        return spec.max_requests
    return spec.retry.max_attempts + spec.max_reasks


class ModelRequestsSpent(ModelError):
    """A model call sent as many requests as its Model allows; not retried."""


class UsageTally:
    """Counts one `complete()` call's HTTP requests and sums the usage each response reports,
    through per-call instructor hooks. The usage is read *when each response arrives*: instructor
    later overwrites every raw response's `usage` with its running total over the re-asks, so the
    final completion's `usage` is cumulative (within one instructor call) and per-response figures
    exist only at hook time."""

    __slots__ = (
        "cache_read",
        "cache_written",
        "input_tokens",
        "missing",
        "output_tokens",
        "read",
        "read_cache",
        "requests",
        "responses",
    )

    def __init__(
        self,
        read: Callable[[Any], tuple[int, int] | None],
        read_cache: Callable[[Any], tuple[int, int]] | None = None,
    ) -> None:
        self.read = read
        self.read_cache = read_cache  # (tokens written to, read from the prompt cache)
        self.requests = 0  # requests sent (re-asks included)
        self.responses = 0  # responses received with a body
        self.missing = 0  # responses without usage (estimated by the caller)
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_written = 0
        self.cache_read = 0

    def hooks(self) -> Any:
        from instructor.core.hooks import Hooks

        hooks = Hooks()
        hooks.on("completion:kwargs", self._on_request)
        hooks.on("completion:response", self._on_response)
        return hooks

    def reasks_within(self, spec: ModelSpec, reasks: int) -> int:
        """How many re-asks the next attempt may make without the call's requests exceeding the
        Model's `max_requests` (re-asks and retries together). Raises `ModelRequestsSpent` (not
        retried) when none is left: an answer that keeps failing its schema, or a server that
        keeps failing, costs a bounded number of billed requests."""
        left = request_budget(spec) - self.requests
        if left <= 0:
            raise ModelRequestsSpent(
                f"the call used its {request_budget(spec)} requests (max_requests; re-asks and retries "
                "included) without a valid answer",
                provider=spec.provider,
                model=spec.name,
            )
        return max(0, min(reasks, left - 1))

    def budget_left(self, spec: ModelSpec) -> Callable[[], int]:
        total = request_budget(spec)
        return lambda: total - self.requests

    def _on_request(self, *args: Any, **kwargs: Any) -> None:
        self.requests += 1

    def _on_response(self, response: Any) -> None:
        self.responses += 1
        counted = self.read(response)
        if counted is None:
            self.missing += 1
            return
        self.input_tokens += counted[0]
        self.output_tokens += counted[1]
        if self.read_cache is not None:
            written, read = self.read_cache(response)
            self.cache_written += written
            self.cache_read += read

    @property
    def usage(self) -> Usage:
        return Usage(self.input_tokens, self.output_tokens)


def scrub(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` (an API key) masked, and nothing else (see
    `redact_secrets` for the shapes of secrets)."""
    if secret and len(secret) >= MIN_KNOWN_SECRET and secret in text:
        return text.replace(secret, MASK)
    return text


def _error_fields(body: object) -> tuple[str | None, str | None]:
    """(error type, message) from an API error body: Anthropic's `{"type": "error", "error":
    {"type", "message"}}`, OpenAI's `{"error": {"message", "type", "code"}}` or its inner object."""
    if not isinstance(body, dict):
        return None, (str(body)[:300] if body else None)
    inner = body.get("error", body)
    if not isinstance(inner, dict):
        return None, str(inner)[:300]
    kind = inner.get("type") or inner.get("code")
    message = inner.get("message")
    return (str(kind) if kind else None), (str(message)[:300] if message else None)


def map_sdk_error(
    exc: BaseException,
    sdk: Any,
    *,
    provider: str,
    model: str | None,
    timeout: float,
    secret: str | None,
) -> ModelError | None:
    """The typed error for an exception of a Stainless-generated SDK (`anthropic`, `openai`: both
    have APITimeoutError, APIConnectionError, APIStatusError, APIResponseValidationError), or
    None when `exc` is not one. Messages carry status, error type, the server's message and the
    request id -- never headers or the key (and any echo of the key is masked)."""

    def make(cls: type[ModelError], message: str, retry_after: float | None = None) -> ModelError:
        return annotate_error(
            cls(redact_secrets(message, (secret,)), provider=provider, model=model), retry_after=retry_after
        )

    if isinstance(exc, sdk.APITimeoutError):
        return make(ModelTimeout, f"no response within the {timeout:g}s timeout")
    if isinstance(exc, sdk.APIConnectionError):
        reason = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
        return make(ModelConnectionError, f"cannot reach the API{reason}")
    if isinstance(exc, sdk.APIResponseValidationError):
        return make(
            ModelServerError, f"the API answered HTTP {exc.status_code} with a body of the wrong shape"
        )
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        kind, message = _error_fields(exc.body)
        request_id = getattr(exc, "request_id", None) or exc.response.headers.get("x-request-id")
        text = f"HTTP {status}" + (f" {kind}" if kind else "") + (f": {message}" if message else "")
        if request_id:
            text += f" [request-id {request_id}]"
        retry_after = retry_after_seconds(exc)
        if status == 429:
            return make(ModelRateLimited, f"rate limited ({text})", retry_after)
        if status in (503, 529) or kind == "overloaded_error":
            return make(ModelOverloaded, f"overloaded ({text})", retry_after)
        if status in (401, 403):
            return make(ModelAuthError, f"the API refused the credentials ({text})")
        if status == 408:
            return make(ModelTimeout, f"the API timed out the request ({text})", retry_after)
        if status >= 500:
            return make(ModelServerError, f"server error ({text})", retry_after)
        return make(ModelRequestError, f"the API rejected the request ({text})")
    return None


def map_instructor_error(
    exc: BaseException,
    sdk: Any,
    *,
    provider: str,
    model: str | None,
    response_model: type[Any],
    max_tokens: int,
    timeout: float,
    secret: str | None,
) -> tuple[ModelError, BaseException | None] | None:
    """(typed error, cause to chain) for what `create_with_completion` raised, or None for an
    exception that is neither the SDK's nor instructor's (a bug: let it propagate).

    instructor wraps *every* failure in `InstructorRetryException` (`__cause__` = the real error),
    including HTTP errors it did not retry; answer-validation failures come with `failed_attempts`.
    A 200 whose body is not JSON surfaces as a `json.JSONDecodeError` (instructor treats it as a
    parse error and re-sends the request up to max_validation_retries times first)."""
    import json

    from instructor.core import (
        AsyncValidationError,
        IncompleteOutputException,
        InstructorRetryException,
        ResponseParsingError,
    )
    from pydantic import ValidationError

    name = getattr(response_model, "__name__", "the response model")
    inner = exc
    attempts = 1
    failed = False
    if isinstance(exc, InstructorRetryException):
        inner = exc.__cause__ if exc.__cause__ is not None else exc
        attempts = int(getattr(exc, "n_attempts", 1) or 1)
        failed = bool(getattr(exc, "failed_attempts", None))
    if isinstance(inner, IncompleteOutputException):
        error: ModelError = ModelOutputInvalid(
            f"the answer was cut off at max_tokens={max_tokens} before the structured output was "
            f"complete; raise the Model spec's max_tokens",
            provider=provider,
            model=model,
        )
        return annotate_error(error), None
    parse_errors = (ValidationError, ResponseParsingError, AsyncValidationError, AssertionError)
    if isinstance(inner, parse_errors) or (failed and isinstance(inner, json.JSONDecodeError)):
        detail = validation_summary(inner)
        error = ModelOutputInvalid(
            redact_secrets(
                f"the answer did not validate against {name} after {attempts} attempt"
                f"{'s' if attempts != 1 else ''} ({max(attempts - 1, 0)} re-ask"
                f"{'s' if attempts != 2 else ''} with the error): {detail}",
                (secret,),
            ),
            provider=provider,
            model=model,
        )
        return annotate_error(error), inner
    if isinstance(inner, json.JSONDecodeError):
        error = ModelServerError(
            f"the API answered with a body that is not valid JSON ({inner.msg} at char {inner.pos})",
            provider=provider,
            model=model,
        )
        return annotate_error(error), None
    mapped = map_sdk_error(inner, sdk, provider=provider, model=model, timeout=timeout, secret=secret)
    if mapped is None:
        return None
    # The SDK error's text holds the server's whole error body: chained as the cause, it would be
    # printed with every traceback of the typed error (and recorded in its span). It is chained
    # only when it carries nothing to redact.
    text = f"{inner!s}{inner!r}"
    cause = inner if redact_secrets(text, (secret,)) == text else None
    return mapped, cause


def validation_summary(exc: BaseException) -> str:
    """A pydantic error in one line: `N validation error(s) for Model: loc: msg; ...` (first 5)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False)
        parts = []
        for item in errors[:5]:
            where = ".".join(str(p) for p in item.get("loc", ())) or "(root)"
            parts.append(f"{where}: {item.get('msg')}")
        more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
        return f"{exc.error_count()} validation error(s) for {exc.title}: " + "; ".join(parts) + more
    return str(exc)[:500]


def exact_instance(model: type[BM], output: BaseModel) -> BM:
    """`output` as an instance of exactly `model`, without what instructor attaches.

    instructor validates with a subclass it generates from the response model (`response_schema`)
    and sets `_raw_response` (the whole raw completion) and `_total_usage` on the instance. Such an
    object compares unequal to a `model` instance, pickles by reference to a class no one can
    import (a problem for Ray), and keeps the raw completion alive. The values are already
    validated, so they are copied over without validating again."""
    if type(output) is model:
        values = output.__dict__
        if all(name in model.model_fields for name in values):
            return output
    fields = {name: value for name, value in output.__dict__.items() if name in model.model_fields}
    clean = model.model_construct(_fields_set=set(output.model_fields_set), **fields)
    extra = output.__pydantic_extra__
    if extra:
        object.__setattr__(clean, "__pydantic_extra__", dict(extra))
    private = output.__pydantic_private__
    if private:
        kept = {k: v for k, v in private.items() if k not in ("_raw_response", "_total_usage")}
        object.__setattr__(clean, "__pydantic_private__", {**(clean.__pydantic_private__ or {}), **kept})
    return clean
