"""Opt-in content capture for traces: what a model was sent and answered, what a tool was given and
returned, recorded under the OpenTelemetry GenAI semantic conventions' names and shapes, redacted
and size-capped.

Off unless asked for: `configure_tracing(capture_content=True)` (the CLI's `--capture-content`) or
the standard `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` (see `tracing`) makes the
tracing facade hold a `ContentCapture`; without one nothing here is imported or called.

Shapes (https://opentelemetry.io/docs/specs/semconv/gen-ai/): `gen_ai.system_instructions` is a
list of parts, `gen_ai.input.messages` and `gen_ai.output.messages` lists of `{role, parts}`
messages whose parts are `text`, `tool_call` (id, name, arguments) and `tool_call_response` (id,
response); `gen_ai.tool.call.arguments` and `gen_ai.tool.call.result` are the tool's arguments and
result. OpenTelemetry attributes cannot hold structured values, so each is a JSON string, which the
conventions allow.

Redaction. Captured content is what the run was allowed to see: model messages as the agent's
guardrails left them (its input, tool-output and output guardrails ran before), and a tool's result
as the pii_redaction guardrail (its default entities) leaves it, since it is recorded before any of
the agent's guardrails read it. Secrets are masked in all of it, whatever the guardrails, by the
platform's one secret redaction (`agent_platform._redaction.redact_secrets`: URL passwords,
secret-named settings, bearer tokens, API keys by their shape), which is also told the values of
the process's credential variables (`*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`, …, and any
variable a Model spec names in `api_key_env`) and applied to each string of structured content
before it is serialised (so a mask never swallows JSON punctuation); a value under a secret-named
key (`{"api_key": …}`) is masked whole. A value is redacted before it is cut to size, so a cut can
never leave part of a secret that the whole would have matched."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from pydantic_core import to_json, to_jsonable_python

from agent_platform._redaction import MASK, redact_secrets
from agent_platform._runtime.guardrails.base import Decision, GuardContext
from agent_platform._runtime.guardrails.pii import PiiRedactor

__all__ = ["DEFAULT_CONTENT_MAX_CHARS", "ContentCapture", "secrets_in_environment"]

# A chat span repeats the whole conversation so far: without a cap a long run's captured content
# would grow with the square of its length. One attribute value holds at most this many characters.
DEFAULT_CONTENT_MAX_CHARS: Final = 8_192
# A single string longer than this is cut before it is redacted, which bounds the work per value. A
# secret straddling that cut cannot reach what is kept unless redaction removed nearly a megabyte
# before it (what is kept is the first few thousand characters).
_REDACT_SCAN_MAX: Final = 1 << 20

# Name segments of environment variables that hold credentials (GITHUB_TOKEN, DB_PASSWORD, LLM_KEY).
_CREDENTIAL_SEGMENTS: Final = frozenset(
    {
        "KEY",
        "APIKEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASS",
        "PWD",
        "CREDENTIAL",
        "CREDENTIALS",
        "AUTH",
    }
)
_NOT_CREDENTIALS: Final = frozenset({"PWD", "OLDPWD"})  # the shell's working directories
# Shorter values are left alone: masking every "true" or "token" wherever it occurs would garble
# the content and hide nothing (RAY_AUTH_MODE=token is a setting, not a secret).
_MIN_SECRET_CHARS: Final = 8


def _is_credential_variable(name: str) -> bool:
    upper = name.upper()
    return upper not in _NOT_CREDENTIALS and any(
        segment in _CREDENTIAL_SEGMENTS for segment in re.split(r"[^A-Z0-9]+", upper)
    )


def secrets_in_environment(environ: Mapping[str, str] | None = None) -> set[str]:
    """The values of the credential variables in the environment (by name), long enough to mask."""
    env = os.environ if environ is None else environ
    return {
        value
        for name, value in env.items()
        if len(value) >= _MIN_SECRET_CHARS and _is_credential_variable(name)
    }


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    """Whether a value under `key` is a secret: whether the shared redaction masks it as a setting
    (`api_key`, `password`, `Authorization`, `x-api-key`, …). One definition of a secret name."""
    probe = f"{key}=value"
    return redact_secrets(probe) != probe


# --- the capture ----------------------------------------------------------------------------------------


class ContentCapture:
    """Captured content as attribute values: the GenAI shapes, redacted, at most `max_chars`
    characters each (an ellipsis marks a cut). One per tracing facade; thread-safe once built."""

    __slots__ = ("_personal_data", "_secrets", "max_chars")

    def __init__(self, max_chars: int = DEFAULT_CONTENT_MAX_CHARS, *, secrets: Iterable[str] = ()) -> None:
        self.max_chars = max_chars
        self._secrets: tuple[str, ...] = ()
        self.add_secrets(secrets_in_environment())
        self.add_secrets(secrets)
        # The pii_redaction guardrail with its default entities, for what no guardrail has read yet.
        self._personal_data = PiiRedactor("content-capture")

    def add_secrets(self, values: Iterable[str | None]) -> None:
        """Mask these values wherever captured content repeats them (values too short to be a
        secret are ignored). Longest first, so a secret containing another is masked whole."""
        found = set(self._secrets)
        found.update(v for v in values if v is not None and len(v) >= _MIN_SECRET_CHARS)
        self._secrets = tuple(sorted(found, key=len, reverse=True))

    def add_secret_variables(self, names: Iterable[str | None]) -> None:
        """Mask the values of these environment variables (those that are set)."""
        self.add_secrets(os.environ.get(name) for name in names if name)

    # -- the attribute values -----------------------------------------------------------------------

    def system_instructions(self, system: str) -> str:
        return self._json([{"type": "text", "content": system}])

    def input_messages(self, messages: Sequence[Any]) -> str:
        """The messages a model was sent (the runtime's `Message`s, or Messages-API dicts)."""
        return self._json([_genai_message(message) for message in messages])

    def output_messages(self, output: Any, *, call_id: str | None = None) -> str:
        """A model's answer. The runtime asks for structured output through a forced tool call
        (the agent loop records it in the conversation as exactly that), so a pydantic answer is a
        `tool_call` of its model; anything else is text."""
        part: dict[str, Any]
        if hasattr(output, "__pydantic_serializer__"):
            arguments = output.__pydantic_serializer__.to_python(output, mode="json", exclude_unset=True)
            part = {"type": "tool_call", "id": call_id, "name": type(output).__name__, "arguments": arguments}
            finish_reason = "tool_call"
        else:
            part = {
                "type": "text",
                "content": output if isinstance(output, str) else to_jsonable_python(output, fallback=str),
            }
            finish_reason = "stop"
        return self._json([{"role": "assistant", "parts": [part], "finish_reason": finish_reason}])

    def tool_arguments(self, arguments: Any) -> str:
        return self._json(arguments)

    def tool_result(self, result: Any) -> str:
        """A tool's result: secrets masked and personal data redacted (no guardrail has read it)."""
        return self._json(result, personal_data=True)

    # -- redaction and size -------------------------------------------------------------------------

    def redact_text(self, text: str, *, personal_data: bool = False) -> str:
        """`text` with its secrets masked (and, with `personal_data`, PII replaced by markers)."""
        if len(text) > _REDACT_SCAN_MAX:
            text = text[:_REDACT_SCAN_MAX]
        text = redact_secrets(text, self._secrets)
        if personal_data:
            verdict = self._personal_data.check(GuardContext("tool_output", text))
            if verdict.decision is Decision.REDACT and verdict.content is not None:
                text = verdict.content
        return text

    def redact(self, value: Any, *, personal_data: bool = False) -> Any:
        """JSON-like `value` with every string redacted and every value under a credential-like key
        masked (nested data is walked; keys are kept)."""
        if isinstance(value, str):
            return self.redact_text(value, personal_data=personal_data)
        if isinstance(value, Mapping):
            return {
                key: MASK
                if isinstance(item, str | int | float)
                and not isinstance(item, bool)
                and _is_secret_key(str(key))
                else self.redact(item, personal_data=personal_data)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.redact(item, personal_data=personal_data) for item in value]
        return value

    def _json(self, value: Any, *, personal_data: bool = False) -> str:
        redacted = self.redact(to_jsonable_python(value, fallback=str), personal_data=personal_data)
        text = redacted if isinstance(redacted, str) else to_json(redacted, fallback=str).decode()
        return text if len(text) <= self.max_chars else text[: self.max_chars - 1] + "…"


# --- the GenAI message shapes ----------------------------------------------------------------------------


def _genai_message(message: Any) -> dict[str, Any]:
    """A Messages-API message (or a runtime `Message`, through its `to_api`) as a GenAI message."""
    to_api = getattr(message, "to_api", None)
    api = to_api() if callable(to_api) else message
    if not isinstance(api, Mapping):
        return {"role": "user", "parts": [{"type": "text", "content": str(api)}]}
    content = api.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    return {"role": str(api.get("role", "user")), "parts": [_genai_part(block) for block in blocks]}


def _genai_part(block: Any) -> dict[str, Any]:
    if not isinstance(block, Mapping):
        return {"type": "text", "content": str(block)}
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "content": block.get("text", "")}
    if kind == "tool_use":
        return {
            "type": "tool_call",
            "id": block.get("id"),
            "name": block.get("name"),
            "arguments": block.get("input"),
        }
    if kind == "tool_result":
        return {
            "type": "tool_call_response",
            "id": block.get("tool_use_id"),
            "response": block.get("content"),
        }
    return dict(block)  # a part type of its own, kept as it is (the conventions allow any type)
