"""`FunctionModel`: a Python function decides in place of a language model (tests, demos, and
deterministic policies written in code).

The function gets what a model would (a `ModelCall`: the system prompt, the conversation and the
JSON Schema of the answer it must give) and returns the answer as a dict (or the response model
itself); the answer is validated against the response model exactly as a provider's structured
output is, so an answer a real model could not give is an error here too. Usage is counted
from the text sizes (estimated tokens), so budgets behave as with a model."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent_platform._runtime.messages import Message
from agent_platform._runtime.models.base import (
    ModelOutputInvalid,
    ModelRequest,
    ModelResult,
    Usage,
    cost_usd,
)
from agent_platform._runtime.tokens import estimate_tokens
from agent_platform._spec.kinds import ModelSpec

T = TypeVar("T", bound=BaseModel)

PROVIDER = "function"


@dataclass(frozen=True, slots=True)
class ModelCall:
    """What the function is asked: who asks (`key`: an agent's name, or `pipeline/step`), the
    system prompt, the conversation so far, and the JSON Schema its answer must match."""

    key: str
    system: str
    messages: list[Message]
    schema: dict[str, Any]

    @property
    def last_text(self) -> str:
        """The text of the last message (the task, or the last tool result)."""
        if not self.messages:
            return ""
        return "\n".join(
            str(getattr(block, "text", None) or getattr(block, "content", ""))
            for block in self.messages[-1].content
        )


Decide = Callable[[ModelCall], "dict[str, Any] | BaseModel | Awaitable[dict[str, Any] | BaseModel]"]


class FunctionModel:
    """A model provider whose answers come from `function` (sync or async). Give it to a
    `Runtime` in place of a Model spec: `Runtime(plan, models={"reasoning": FunctionModel(f)})`.

    Asked directly, as the runtime asks it:

    >>> import asyncio
    >>> from pydantic import BaseModel
    >>> from agent_platform._runtime.models.base import ModelRequest
    >>> class Count(BaseModel):
    ...     letters: int
    >>> model = FunctionModel(lambda call: {"letters": len(call.system)})
    >>> result = asyncio.run(model.complete(ModelRequest("four", [], Count, key="counter")))
    >>> result.output, [call.key for call in model.calls]
    (Count(letters=4), ['counter'])

    An answer that does not fit the schema asked for fails as a model's would:

    >>> wrong = FunctionModel(lambda call: {"letters": "many"})
    >>> asyncio.run(wrong.complete(ModelRequest("four", [], Count, key="counter")))
    Traceback (most recent call last):
    ...
    agent_platform._runtime.models.base.ModelOutputInvalid: function:function: the function's answer for 'counter' does not match Count: ...
    """

    def __init__(self, function: Decide, *, name: str = "function") -> None:
        self.function = function
        self.name = name
        self._spec = ModelSpec(provider="scripted", on_script_exhausted="synthesize", name=name)
        self.calls: list[ModelCall] = []

    def bind(self, spec: ModelSpec) -> FunctionModel:
        """The same function serving the Model spec `spec` (its pricing counts the cost)."""
        bound = FunctionModel(self.function, name=self.name)
        bound._spec = spec
        bound.calls = self.calls
        return bound

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def is_scripted(self) -> bool:
        return True  # no API is called: what plans and traces say of offline models holds

    async def complete(self, request: ModelRequest[T]) -> ModelResult[T]:
        model = request.response_model
        call = ModelCall(request.key, request.system, list(request.messages), model.model_json_schema())
        self.calls.append(call)
        answer = self.function(call)
        if inspect.isawaitable(answer):
            answer = await answer
        try:
            data = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
            output = model.model_validate(data)
        except ValidationError as exc:
            raise ModelOutputInvalid(
                f"the function's answer for {request.key!r} does not match {model.__name__}: {exc}",
                provider=PROVIDER,
                model=self.name,
            ) from None
        sent = estimate_tokens(request.system) + sum(
            estimate_tokens(str(block.to_api())) for message in request.messages for block in message.content
        )
        usage = Usage(sent, estimate_tokens(str(answer)))
        return ModelResult(output, usage, cost_usd(self._spec, usage), PROVIDER, self.name)

    async def aclose(self) -> None:
        return None
