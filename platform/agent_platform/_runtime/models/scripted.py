"""The scripted provider: deterministic replay of a script file, for tests, demos and offline runs.

It is a test/offline stand-in for a language model (`is_scripted` is True; `plan` output and traces
label it so): it never calls a network, and the same script with the same calls always gives the
same answers. Answers are validated exactly as a real model's are (the response model, JSON mode,
strict), so a script cannot smuggle in an answer the real providers would reject.

Script file (`Model.spec.script`, relative to the spec file), YAML::

    responses:                       # answers per ModelRequest.key, consumed in order
      researcher:                    # an agent's name, or `pipeline/step`
        - thought: look it up        # an entry is the answer object itself ...
          action: {action: web-search, arguments: {query: ray actors}}
          usage: {input_tokens: 812, output_tokens: 64}   # ... with optional usage
        - error: rate_limited        # raise the typed error instead (retry paths)
        - response:                  # the explicit envelope, for answers whose own fields are
            thought: done            # called `response`, `usage` or `error`
            action: {action: final_answer, answer: {summary: ...}}
          usage: {input_tokens: 900, output_tokens: 80}
      ingest/summarise:
        - {summary: a short summary}
      "*":                           # the fallback: answers any key whose own entries are
        - {summary: anything}        # used up or absent, in order

or JSONL, one entry per line, with its key in `key`::

    {"key": "researcher", "thought": "look it up", "action": {...}, "usage": {"input_tokens": 812}}
    {"key": "researcher", "error": "overloaded"}

Entries:

* an answer object is validated against the request's `response_model` when it is used; one that
  does not validate raises `ModelOutputInvalid` with the pydantic error and the entry's
  file:line:col (it is never silently replaced by a synthesised one);
* `usage: {input_tokens, output_tokens}` gives the usage to report; what it leaves out is
  *estimated* at about 4 characters per token (`agent_platform._runtime.tokens`): input = system
  prompt + messages + the response model's JSON Schema (what a real request sends), output = the
  answer's JSON;
* `error: rate_limited | overloaded | server_error | timeout | connection | auth |
  invalid_request` (optional `message`) raises the matching typed `ModelError`. Like the real
  providers, `complete()` retries retryable errors under the spec's `retry` policy, each attempt
  consuming the next entry: `[error: rate_limited, <answer>]` succeeds on the second attempt.

When a key's entries (and the `*` fallback's) are used up, `on_script_exhausted: synthesize`
answers with `synthesize(response_model)` (a deterministic schema-valid instance, preferring an
agent decision's `final_answer` branch so a loop ends), and `error` raises `ScriptExhausted` naming
the key and how many entries it had.

The cursor lives in the provider instance: the runtime makes one provider per run (the factory, or
`fork()`, which shares the parsed script and caches). A missing or malformed script raises
`ModelConfigError` with file:line:col.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agent_platform._load import LoadLimits, load_text
from agent_platform._runtime.models.base import (
    ModelAuthError,
    ModelConfigError,
    ModelConnectionError,
    ModelError,
    ModelOutputInvalid,
    ModelOverloaded,
    ModelRateLimited,
    ModelRequest,
    ModelRequestError,
    ModelResult,
    ModelServerError,
    ModelTimeout,
    ScriptExhausted,
    T,
    Usage,
    cost_usd,
)
from agent_platform._runtime.models.factory import OnRetry, RetryRunner, Sleep, validation_summary
from agent_platform._runtime.models.synthesize import (
    BranchPredicate,
    SynthesisError,
    prefers_final_answer,
    synthesize,
)
from agent_platform._runtime.tokens import estimate_tokens, message_tokens
from agent_platform._spec.kinds import ModelSpec

PROVIDER = "scripted"
FALLBACK_KEY = "*"

ERROR_KINDS: dict[str, type[ModelError]] = {
    "rate_limited": ModelRateLimited,
    "overloaded": ModelOverloaded,
    "server_error": ModelServerError,
    "timeout": ModelTimeout,
    "connection": ModelConnectionError,
    "auth": ModelAuthError,
    "invalid_request": ModelRequestError,
}

_USAGE_KEYS = frozenset({"input_tokens", "output_tokens"})
_SCRIPT_LIMITS = LoadLimits(max_file_bytes=32 << 20, max_nodes_per_document=2_000_000)


@dataclass(frozen=True, slots=True)
class ScriptEntry:
    """One scripted answer (`response`, JSON text) or error (`error`), and where it was written."""

    location: str  # file:line:col
    response: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    message: str | None = None
    unknown_error: str | None = None  # an `error:` value that is not a known kind (for hints)


class _ScriptError(Exception):
    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


class Script:
    """A parsed script: entries per key, in order. Immutable and shared by forked providers."""

    __slots__ = ("entries", "path")

    def __init__(self, path: str | None, entries: Mapping[str, tuple[ScriptEntry, ...]]) -> None:
        self.path = path
        self.entries = dict(entries)

    @classmethod
    def empty(cls) -> Script:
        return cls(None, {})

    @classmethod
    def load(cls, path: Path) -> Script:
        """Parse a YAML (`responses:` mapping) or JSONL (`.jsonl`) script; `ModelConfigError` with
        file:line:col on any problem."""
        file = str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelConfigError(f"{file}: script file not found", provider=PROVIDER) from None
        except OSError as exc:
            raise ModelConfigError(f"{file}: cannot read the script: {exc}", provider=PROVIDER) from None
        try:
            if path.suffix.lower() == ".jsonl":
                return cls(file, _parse_jsonl(file, data))
            return cls(file, _parse_yaml(file, data))
        except _ScriptError as exc:
            raise ModelConfigError(f"{exc.location}: {exc}", provider=PROVIDER) from None


def _parse_yaml(file: str, data: bytes) -> dict[str, tuple[ScriptEntry, ...]]:
    result = load_text(data, file, _SCRIPT_LIMITS)
    errors = result.diagnostics.errors
    if errors:
        first = errors[0]
        raise _ScriptError(first.message, str(first.location or f"{file}:1:1"))
    if len(result.documents) != 1:
        where = result.documents[1].start if len(result.documents) > 1 else f"{file}:1:1"
        raise _ScriptError("a script is one YAML document with a `responses:` mapping", str(where))
    doc = result.documents[0]
    top = doc.data
    if not isinstance(top, dict) or "responses" not in top:
        raise _ScriptError("a script is a mapping with a `responses:` key", str(doc.start))
    extra = [k for k in top if k != "responses"]
    if extra:
        raise _ScriptError(
            f"unknown top-level key {extra[0]!r} (a script has only `responses:`)",
            str(doc.key_location([extra[0]])),
        )
    responses = top["responses"]
    if not isinstance(responses, dict):
        raise _ScriptError(
            "`responses` must map each key (agent name, pipeline/step or '*') to a list of entries",
            str(doc.locate(["responses"])),
        )
    entries: dict[str, tuple[ScriptEntry, ...]] = {}
    for key, items in responses.items():
        if not isinstance(key, str) or not key:
            raise _ScriptError(
                "a response key must be a non-empty string", str(doc.key_location(["responses"]))
            )
        if not isinstance(items, list):
            raise _ScriptError(
                f"the entries for {key!r} must be a list (`- ...` items)",
                str(doc.locate(["responses", key])),
            )
        entries[key] = tuple(
            _parse_entry(item, str(doc.locate(["responses", key, index]))) for index, item in enumerate(items)
        )
    return entries


def _parse_jsonl(file: str, data: bytes) -> dict[str, tuple[ScriptEntry, ...]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _ScriptError(f"not UTF-8 ({exc.reason} at byte {exc.start})", f"{file}:1:1") from None
    entries: dict[str, list[ScriptEntry]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _ScriptError(f"invalid JSON: {exc.msg}", f"{file}:{lineno}:{exc.colno}") from None
        where = f"{file}:{lineno}:1"
        if not isinstance(obj, dict) or not isinstance(obj.get("key"), str) or not obj["key"]:
            raise _ScriptError('each line must be a JSON object with a string "key"', where)
        key = obj.pop("key")
        entries.setdefault(key, []).append(_parse_entry(obj, where))
    if not entries:
        raise _ScriptError("the script has no entries", f"{file}:1:1")
    return {key: tuple(items) for key, items in entries.items()}


def _parse_entry(raw: Any, where: str) -> ScriptEntry:
    if not isinstance(raw, dict):
        raise _ScriptError(
            "an entry must be a mapping: the answer object, {response: ..., usage: ...} or {error: ...}",
            where,
        )
    keys = set(raw)
    error = raw.get("error")
    if isinstance(error, str) and error in ERROR_KINDS and keys <= {"error", "message"}:
        message = raw.get("message")
        return ScriptEntry(where, error=error, message=str(message) if message is not None else None)
    usage_raw: Any = None
    if "response" in raw and keys <= {"response", "usage"}:
        body = raw["response"]
        usage_raw = raw.get("usage")
        if not isinstance(body, dict):
            raise _ScriptError("`response` must be a mapping (the answer object)", where)
    else:
        body = dict(raw)
        candidate = body.get("usage")
        if isinstance(candidate, dict) and candidate and set(candidate) <= _USAGE_KEYS:
            usage_raw = body.pop("usage")
    input_tokens = output_tokens = None
    if usage_raw is not None:
        if not isinstance(usage_raw, dict) or not set(usage_raw) <= _USAGE_KEYS:
            raise _ScriptError("`usage` must be {input_tokens: N, output_tokens: N}", where)
        for name, value in usage_raw.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _ScriptError(f"usage.{name} must be a non-negative integer, not {value!r}", where)
        input_tokens = usage_raw.get("input_tokens")
        output_tokens = usage_raw.get("output_tokens")
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        raise _ScriptError(f"the answer is not JSON-compatible: {exc}", where) from None
    unknown = error if isinstance(error, str) and keys <= {"error", "message"} else None
    return ScriptEntry(where, text, input_tokens, output_tokens, unknown_error=unknown)


class _Caches:
    """Per response model: the synthesised answer and the schema's token estimate (shared by forks)."""

    __slots__ = ("schema_tokens", "synthesized")

    def __init__(self) -> None:
        self.synthesized: dict[type[BaseModel], BaseModel] = {}
        self.schema_tokens: dict[type[BaseModel], int] = {}


class ScriptedProvider:
    """Deterministic replay of a script (see the module docstring): a test/offline provider."""

    __slots__ = (
        "_caches",
        "_cursors",
        "_latency",
        "_model",
        "_on_retry",
        "_prefer",
        "_retry",
        "_script",
        "_sleep",
        "_spec",
    )

    def __init__(
        self,
        spec: ModelSpec,
        script_path: Path | None = None,
        *,
        sleep: Sleep | None = None,
        on_retry: OnRetry | None = None,
        prefer: BranchPredicate | None = prefers_final_answer,
        script: Script | None = None,
    ) -> None:
        self._spec = spec
        # Read once: an attribute of a pydantic model costs several times a plain one (its class
        # defines __getattr__), and every call needs this one.
        self._latency = spec.latency
        self._model = spec.name or "scripted"
        if script is None:
            script = Script.load(script_path) if script_path is not None else Script.empty()
        self._script = script
        self._prefer = prefer
        self._sleep = sleep
        self._on_retry = on_retry
        self._retry = RetryRunner(
            spec.retry,
            provider=PROVIDER,
            model=self._model,
            sleep=sleep,
            on_retry=on_retry,
            max_retry_after=spec.max_retry_after,
        )
        self._cursors: dict[str, int] = {}
        self._caches = _Caches()

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def is_scripted(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return PROVIDER

    @property
    def script(self) -> Script:
        return self._script

    @property
    def retry(self) -> RetryRunner:
        return self._retry

    def fork(self) -> ScriptedProvider:
        """A provider with fresh cursors over the same parsed script (one per run). Everything but
        the cursors is shared: the script, the caches and the retry runner (stateless between
        calls), so a fork costs one small object."""
        forked = object.__new__(ScriptedProvider)
        forked._spec = self._spec
        forked._latency = self._latency
        forked._model = self._model
        forked._script = self._script
        forked._prefer = self._prefer
        forked._sleep = self._sleep
        forked._on_retry = self._on_retry
        forked._retry = self._retry
        forked._cursors = {}
        forked._caches = self._caches
        return forked

    def cursors(self) -> dict[str, int]:
        """How far this provider is in its script, per key (saved in run checkpoints)."""
        return dict(self._cursors)

    def restore(self, cursors: Mapping[str, int]) -> None:
        """Continue from saved positions (a run resumed on another replica)."""
        self._cursors = dict(cursors)

    def remaining(self, key: str) -> int:
        """Entries left for `key` (not counting the `*` fallback)."""
        return len(self._script.entries.get(key, ())) - self._cursors.get(key, 0)

    async def aclose(self) -> None:
        return None

    async def complete(self, request: ModelRequest[T]) -> ModelResult[T]:
        if self._latency:  # simulated model time (load tests): never blocks the loop
            await asyncio.sleep(self._latency)
        # The first attempt directly (answers are synchronous); the retry policy only on failure.
        try:
            return self._answer(request, 1)
        except Exception as exc:
            first = exc
        attempts = 1

        async def attempt() -> ModelResult[T]:
            nonlocal attempts
            attempts += 1
            return self._answer(request, attempts)

        return await self._retry.call_after(first, attempt)

    # --- internals ----------------------------------------------------------------------------

    def _next(self, key: str) -> tuple[ScriptEntry, str, int] | None:
        for source in (key, FALLBACK_KEY):
            entries = self._script.entries.get(source)
            if entries:
                index = self._cursors.get(source, 0)
                if index < len(entries):
                    self._cursors[source] = index + 1
                    return entries[index], source, index
        return None

    def _answer(self, request: ModelRequest[T], attempts: int) -> ModelResult[T]:
        model = request.response_model
        found = self._next(request.key)
        if found is None:
            output, text = self._exhausted(request)
            response_id = f"scripted:{request.key}:synthesized"
            input_tokens: int | None = None
            output_tokens: int | None = None
        else:
            entry, source, index = found
            if entry.error is not None:
                detail = f": {entry.message}" if entry.message else ""
                raise ERROR_KINDS[entry.error](
                    f"scripted {entry.error} for {request.key!r} ({entry.location}){detail}",
                    provider=PROVIDER,
                    model=self._model,
                )
            assert entry.response is not None
            text = entry.response
            try:
                # The validator itself: what model_validate_json calls, minus its wrapper.
                output = model.__pydantic_validator__.validate_json(text, strict=True)
            except ValidationError as exc:
                hint = (
                    f" (an `error:` entry must be one of: {', '.join(ERROR_KINDS)})"
                    if entry.unknown_error is not None
                    else ""
                )
                raise ModelOutputInvalid(
                    f"{entry.location}: scripted answer #{index + 1} for {source!r} does not validate "
                    f"against {model.__name__}{hint}: {validation_summary(exc)}",
                    provider=PROVIDER,
                    model=self._model,
                ) from exc
            response_id = f"scripted:{source}:{index + 1}"
            input_tokens, output_tokens = entry.input_tokens, entry.output_tokens
        if input_tokens is None:
            input_tokens = self._estimate_input(request)
        if output_tokens is None:
            output_tokens = estimate_tokens(text)
        usage = Usage(input_tokens, output_tokens)
        # Positional (output, usage, cost_usd, provider, model, response_id, attempts): every step.
        return ModelResult(
            output, usage, cost_usd(self._spec, usage), PROVIDER, self._model, response_id, attempts
        )

    def _exhausted(self, request: ModelRequest[T]) -> tuple[T, str]:
        model = request.response_model
        if self._spec.on_script_exhausted != "synthesize":
            own = len(self._script.entries.get(request.key, ()))
            wild = len(self._script.entries.get(FALLBACK_KEY, ()))
            where = self._script.path or "the script"
            fallback = f" and {wild} under '*'" if wild else ""
            raise ScriptExhausted(
                f"no scripted answer left for {request.key!r}: {where} has {own} "
                f"entr{'y' if own == 1 else 'ies'} for it{fallback}, all used; add entries or set "
                "on_script_exhausted: synthesize",
                provider=PROVIDER,
                model=self._model,
            )
        cached = self._caches.synthesized.get(model)
        if cached is None:
            try:
                cached = synthesize(model, prefer=self._prefer)
            except SynthesisError as exc:
                raise ModelOutputInvalid(
                    f"the script has no answer left for {request.key!r} and none can be synthesised: {exc}",
                    provider=PROVIDER,
                    model=self._model,
                ) from exc
            self._caches.synthesized[model] = cached
        output = cached.model_copy(deep=True)
        assert isinstance(output, model)
        return output, cached.model_dump_json()

    def _estimate_input(self, request: ModelRequest[T]) -> int:
        model = request.response_model
        schema = self._caches.schema_tokens.get(model)
        if schema is None:
            try:
                schema = estimate_tokens(json.dumps(model.model_json_schema(), separators=(",", ":")))
            except Exception:  # a type without a JSON Schema: count nothing for it
                schema = 0
            self._caches.schema_tokens[model] = schema
        return estimate_tokens(request.system) + sum(message_tokens(m) for m in request.messages) + schema
