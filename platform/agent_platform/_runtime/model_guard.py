"""A Model's circuit breaker and fallbacks: what happens to a model call when its model keeps
failing.

A call that fails for good (its provider has already retried and re-asked as its spec says)
counts against the model's breaker (`circuit_breaker`: closed -> open after that many
consecutive failures -> half-open after `reset_after`; the same breaker tools have). The call
then goes to the Model's `fallback` models, in order, each with its own breaker, provider,
retries and pricing; while a breaker is open, its model is skipped without a request. When no
model is left, the last error is raised (`ModelCircuitOpen` when every one was open).

Failures that say nothing about the model's health (a request the caller got wrong, an answer
that did not fit the schema) do not open the breaker, but still move the call to a fallback:
another model may answer it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from agent_platform._runtime.models.base import (
    ModelAuthError,
    ModelConfigError,
    ModelError,
    ModelOutputInvalid,
    ModelRequestError,
    ModelResult,
)
from agent_platform._runtime.tools.errors import CircuitOpen
from agent_platform._runtime.tools.resilience import CircuitBreaker

if TYPE_CHECKING:
    from pydantic import BaseModel

    from agent_platform._compile.plan import ResolvedModel
    from agent_platform._runtime.clock import Clock
    from agent_platform._runtime.tracing import Tracing


class ModelCircuitOpen(ModelError):
    """Every model that could take the call has its circuit open: no request was sent."""

    retryable = True


# Errors that are the caller's or the answer's, not a sign the model's service is failing.
_NOT_THE_SERVICE = (ModelAuthError, ModelConfigError, ModelRequestError, ModelOutputInvalid)

Attempt = Callable[["ResolvedModel"], Awaitable[ModelResult["BaseModel"]]]


class ModelGuard:
    """The chain of one Model: itself, then its fallbacks, each behind its breaker (if any)."""

    def __init__(self, chain: list[tuple[ResolvedModel, CircuitBreaker | None]], tracing: Tracing) -> None:
        self.chain = chain
        self.tracing = tracing

    async def complete(self, attempt: Attempt) -> ModelResult[BaseModel]:
        last: ModelError | None = None
        skipped: list[str] = []
        for position, (model, breaker) in enumerate(self.chain):
            trial = False
            if breaker is not None:
                try:
                    trial = breaker.acquire()
                except CircuitOpen as exc:
                    skipped.append(f"{model.ref} ({exc})")
                    continue
            if position:
                self.tracing.event(
                    "gen_ai.fallback", {"gen_ai.request.model": model.ref, "position": position}
                )
            try:
                result = await attempt(model)
            except ModelError as exc:
                if breaker is not None:
                    if isinstance(exc, _NOT_THE_SERVICE):
                        breaker.record_success(trial)
                    else:
                        breaker.record_failure(trial)
                last = exc
                continue
            except BaseException:
                if breaker is not None:
                    breaker.release(trial)
                raise
            if breaker is not None:
                breaker.record_success(trial)
            return result
        if last is not None:
            raise last
        first = self.chain[0][0]
        raise ModelCircuitOpen(
            f"no request sent: the circuit is open for {', '.join(skipped)}",
            provider=first.spec.provider,
            model=first.spec.name or first.ref,
        )


def model_guards(
    models: Mapping[str, ResolvedModel], clock: Clock, tracing: Tracing
) -> dict[int, ModelGuard]:
    """A guard for every Model with a breaker or fallbacks, keyed by `id(spec)`; breakers are
    shared: a model that is another's fallback has one breaker for both."""
    breakers: dict[str, CircuitBreaker | None] = {
        name: CircuitBreaker(f"model {name}", m.spec.circuit_breaker, clock)
        if m.spec.circuit_breaker is not None
        else None
        for name, m in models.items()
    }
    guards: dict[int, ModelGuard] = {}
    for name, model in models.items():
        if model.spec.circuit_breaker is None and not model.spec.fallback:
            continue
        chain = [(model, breakers[name])]
        for fallback in model.spec.fallback:
            if fallback in models and fallback != name:
                chain.append((models[fallback], breakers[fallback]))
        guards[id(model.spec)] = ModelGuard(chain, tracing)
    return guards


__all__ = ["ModelCircuitOpen", "ModelGuard", "model_guards"]
