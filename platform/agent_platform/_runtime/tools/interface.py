"""What the executor calls: the `Tool` interface, and `UnavailableTool`, a declared tool that
cannot run here."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from agent_platform._runtime.tools.arguments import ToolArguments, model_from_schema
from agent_platform._runtime.tools.errors import ToolUnavailable
from agent_platform._spec.kinds import ToolSpec


class Tool(ABC):
    """Something the executor can call. `validate` never calls anything; `invoke` does the work
    and returns the raw result (the executor turns it into JSON data and enforces timeout,
    retries, breaker and idempotency)."""

    name: str
    description: str
    #: True when `invoke` runs synchronously on the event loop (an inline sync function): the
    #: executor then skips the timeout, which could not interrupt it anyway.
    runs_inline: bool = False

    @abstractmethod
    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the arguments, as shown to the model."""

    @property
    @abstractmethod
    def arguments_model(self) -> type[BaseModel]:
        """A pydantic model of the arguments (for structured-output response models)."""

    @abstractmethod
    def validate(self, raw: Mapping[str, Any]) -> ToolArguments:
        """Validated arguments, or `ToolArgumentsInvalid`."""

    @abstractmethod
    async def invoke(self, arguments: ToolArguments) -> Any:
        """Run the tool once."""

    def with_spec(self, name: str, spec: ToolSpec) -> Tool:
        """This tool as declared by a Tool spec (its name, description and input_schema)."""
        return self

    async def aclose(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        """`{name, description, input_schema}`: the tool as offered to a model."""
        return {"name": self.name, "description": self.description, "input_schema": self.json_schema()}


class UnavailableTool(Tool):
    """A declared tool that cannot run here (one whose import failed, say). It is listed with its
    declared schema; each call ends in `ToolUnavailable` with the reason."""

    def __init__(self, name: str, description: str, reason: str, input_schema: dict[str, Any] | None) -> None:
        self.name = name
        self.description = description
        self.reason = reason
        self._schema = input_schema if input_schema is not None else {"type": "object"}

    @property
    def arguments_model(self) -> type[BaseModel]:
        return model_from_schema(self.name, self._schema)

    def json_schema(self) -> dict[str, Any]:
        return self._schema

    def validate(self, raw: Mapping[str, Any]) -> ToolArguments:
        raise ToolUnavailable(self.name, self.reason)

    async def invoke(self, arguments: ToolArguments) -> Any:
        raise ToolUnavailable(self.name, self.reason)
