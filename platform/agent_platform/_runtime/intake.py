"""How content from outside a run enters a model's context: capped, guarded, wrapped.

Every path that shows a model something the run did not write itself (a tool's output or error,
a delegate's answer, recalled memory, a value rendered into a pipeline's `llm` prompt) goes
through the same three steps, in this order:

1. `cap_output`: at most the tool's `max_output` (bytes and estimated tokens) is kept, and a
   marker outside the boundary says how much was left out. One 5 MB result otherwise becomes
   millions of input tokens in every later call of the run, and every step below scales with it.
2. the tool-output guardrails of the unit (and of the tool itself) check what is left;
3. `wrap_tool_output` puts it inside the unforgeable boundary the system prompt explains.

Scanning and wrapping are linear in the text, and for non-ASCII text they walk it character by
character in Python; above `OFFLOAD_CHARS` they run in a worker thread (`asyncio.to_thread`), so
a large result delays its own run and not every other run on the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agent_platform._runtime.guardrails import GuardContext, GuardrailSet, GuardResult, wrap_tool_output
from agent_platform._runtime.guardrails.base import Stage
from agent_platform._runtime.tokens import CHARS_PER_TOKEN

# Content longer than this is scanned and wrapped off the event loop. Below it the hand-off to a
# thread costs more than the work.
OFFLOAD_CHARS = 16_384

# What a delegate's answer may take of its caller's context (it has no tool spec to declare one).
DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024
DEFAULT_MAX_OUTPUT_TOKENS = 16_000


@dataclass(frozen=True, slots=True)
class Truncation:
    """What `cap_output` left out, for the marker the model sees and the run's trajectory."""

    original_bytes: int
    kept_bytes: int
    limit: str  # "16000 tokens" or "262144 bytes": the limit that cut it

    def marker(self, source: str) -> str:
        return (
            f"[the platform cut this output of {source}: {self.original_bytes:,} bytes, of which the "
            f"first {self.kept_bytes:,} are shown above (limit: {self.limit}, max_output in the spec)]"
        )


def cap_output(text: str, max_bytes: int, max_tokens: int) -> tuple[str, Truncation | None]:
    """`text` cut to at most `max_bytes` UTF-8 bytes and `max_tokens` estimated tokens (4 bytes
    each, as `tokens.estimate_tokens` counts), never inside a character. Text short enough in
    characters is returned as it is without being encoded; longer text is encoded only up to the
    limit, except to measure what a cut left out."""
    token_bytes = int(max_tokens * CHARS_PER_TOKEN)
    limit = min(max_bytes, token_bytes)
    if len(text) <= limit // 4:  # even at 4 bytes per character it fits
        return text, None
    if text.isascii():
        size = len(text)
        if size <= limit:
            return text, None
        kept = text[:limit]
    else:
        # A prefix of `limit` characters has at least `limit` bytes: encode only that much.
        head = text[: limit + 1].encode("utf-8")
        if len(head) <= limit and len(text) <= limit:
            return text, None
        kept = head[:limit].decode("utf-8", errors="ignore")
        size = len(text.encode("utf-8"))
    which = f"{max_tokens} tokens" if token_bytes <= max_bytes else f"{max_bytes} bytes"
    return kept, Truncation(size, len(kept.encode("utf-8")), which)


async def guard_content(guards: GuardrailSet, stage: Stage, context: GuardContext) -> GuardResult:
    """`guards.check(stage, context)`, in a worker thread when the content is long and every
    guardrail of the stage is synchronous (async ones, such as a classifier's model call, already
    wait without blocking the loop)."""
    content = context.content
    if (
        content is not None
        and len(content) > OFFLOAD_CHARS
        and not any(g.is_async for g in guards.for_stage(stage))
    ):
        return await asyncio.to_thread(guards.check_sync, stage, context)
    return await guards.check(stage, context)


async def wrap_content(text: str, source: str) -> str:
    """`wrap_tool_output(text, tool_name=source)`, off the event loop when `text` is long."""
    if len(text) > OFFLOAD_CHARS:
        return await asyncio.to_thread(wrap_tool_output, text, tool_name=source)
    return wrap_tool_output(text, tool_name=source)
