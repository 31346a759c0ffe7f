"""Token accounting for budgets and working memory.

Real counts come from the provider: every response reports `usage.input_tokens` for the whole
request it answered. Before a request is made, and for models whose tokeniser we do not ship, the
platform *estimates*:

* `estimate_tokens(text)` is an **estimate**: about 4 characters per token, computed as UTF-8 bytes
  / 4 (the same as characters / 4 for ASCII text; CJK and other multi-byte text, which tokenises
  denser, counts as 0.75 token per character). It is never an exact count.
* `message_tokens(message)` adds a fixed per-message overhead (`MESSAGE_OVERHEAD` tokens for the role
  and framing) and per-block overheads for tool calls and results (their JSON framing, ids, names).

`TokenCounter` corrects the estimate with what providers report: the runtime calls
`calibrate_request(...)` with the messages of a request and the provider's `usage.input_tokens`;
the counter learns a calibration ratio (reported / estimated, a decaying average over observations)
and stores a count on each message that has none (`Message.tokens`), so the working memory budgets
real tokens where they are known and a calibrated estimate otherwise. Tokenisers differ per model:
use one counter per model (it holds no I/O and costs nothing to share between runs of that model).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

from agent_platform._runtime.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from agent_platform._text_tokens import CHARS_PER_TOKEN as CHARS_PER_TOKEN
from agent_platform._text_tokens import estimate_tokens as estimate_tokens

MESSAGE_OVERHEAD = 4  # role + message framing
TEXT_BLOCK_OVERHEAD = 1
TOOL_USE_OVERHEAD = 12  # block type, id, name and input framing
TOOL_RESULT_OVERHEAD = 8  # block type, tool_use_id and content framing

# The calibration ratio is kept within these bounds: a report outside them is a bug (a usage
# figure for another request, a cached-prompt discount, ...), not information about the tokeniser.
MIN_RATIO = 0.25
MAX_RATIO = 4.0


def _json_size(value: object) -> int:
    try:
        return estimate_tokens(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))
    except (TypeError, ValueError):  # circular structures: count their repr
        return estimate_tokens(repr(value))


def estimate_message_tokens(message: Message) -> int:
    """The uncalibrated estimate for one message: its blocks plus `MESSAGE_OVERHEAD`."""
    total = MESSAGE_OVERHEAD
    for block in message.content:
        if isinstance(block, TextBlock):
            total += TEXT_BLOCK_OVERHEAD + estimate_tokens(block.text)
        elif isinstance(block, ToolUseBlock):
            total += TOOL_USE_OVERHEAD + estimate_tokens(block.name) + _json_size(block.input)
        elif isinstance(block, ToolResultBlock):
            total += TOOL_RESULT_OVERHEAD + estimate_tokens(block.content)
    return total


def message_tokens(message: Message) -> int:
    """Tokens `message` costs: its recorded count (`Message.tokens`, from provider usage) when
    known, else the estimate of `estimate_message_tokens`."""
    if message.tokens is not None:
        return message.tokens
    return estimate_message_tokens(message)


class TokenCounter:
    """Counts tokens of messages: recorded counts first, otherwise the estimate scaled by a
    calibration ratio learnt from (estimated, reported) pairs.

    The ratio is a decaying weighted average: `sum(reported) / sum(estimated)` where older
    observations weigh `decay` times less after each new one, so it follows a model's tokeniser
    quickly but a single odd report does not swing it. It starts at 1.0 (the plain estimate)."""

    __slots__ = ("_decay", "_estimated", "_observations", "_reported")

    def __init__(self, *, decay: float = 0.8) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError("decay must be in [0, 1)")
        self._decay = decay
        self._estimated = 0.0
        self._reported = 0.0
        self._observations = 0

    @property
    def ratio(self) -> float:
        """Reported tokens per estimated token (1.0 before any observation)."""
        if self._estimated <= 0:
            return 1.0
        return min(MAX_RATIO, max(MIN_RATIO, self._reported / self._estimated))

    @property
    def observations(self) -> int:
        return self._observations

    def observe(self, estimated: int, reported: int) -> None:
        """Record that a request estimated at `estimated` tokens was reported as `reported`."""
        if estimated <= 0 or reported <= 0:
            return
        self._estimated = self._estimated * self._decay + estimated
        self._reported = self._reported * self._decay + reported
        self._observations += 1

    def count_text(self, text: str) -> int:
        """The calibrated estimate for a piece of text (e.g. a system prompt)."""
        return math.ceil(estimate_tokens(text) * self.ratio)

    def count(self, message: Message) -> int:
        """Tokens of `message`: its recorded count, else the calibrated estimate."""
        if message.tokens is not None:
            return message.tokens
        return max(1, round(estimate_message_tokens(message) * self.ratio))

    def count_all(self, messages: Iterable[Message]) -> int:
        return sum(self.count(m) for m in messages)

    def calibrate_request(
        self,
        messages: Sequence[Message],
        input_tokens: int,
        *,
        system: str = "",
        extra_estimated: int = 0,
    ) -> None:
        """Learn from a request whose input the provider reported as `input_tokens`.

        `messages` and `system` are what was sent; `extra_estimated` is the estimate of anything
        else in the request (tool definitions, response-model schema). The pair (estimate of the
        whole request, `input_tokens`) updates the ratio; then each message without a recorded
        count gets one: the reported tokens not explained by the messages already counted (and the
        system prompt and extras, at this request's ratio) are shared among them in proportion to
        their estimates. When that remainder is implausible (e.g. a provider-side prompt cache
        discounts part of the input), the message gets its estimate at this request's ratio."""
        if input_tokens <= 0 or not messages:
            return
        estimates = [estimate_message_tokens(m) for m in messages]
        fixed = estimate_tokens(system) + max(0, extra_estimated)
        total_estimate = fixed + sum(estimates)
        if total_estimate <= 0:
            return
        self.observe(total_estimate, input_tokens)
        request_ratio = min(MAX_RATIO, max(MIN_RATIO, input_tokens / total_estimate))
        unknown = [i for i, m in enumerate(messages) if m.tokens is None]
        if not unknown:
            return
        known = sum(m.tokens for m in messages if m.tokens is not None)
        remainder = input_tokens - known - fixed * request_ratio
        unknown_estimate = sum(estimates[i] for i in unknown)
        scaled = unknown_estimate * request_ratio
        plausible = scaled > 0 and 0.5 * scaled <= remainder <= 2.0 * scaled
        for i in unknown:
            share = remainder * estimates[i] / unknown_estimate if plausible else estimates[i] * request_ratio
            messages[i].tokens = max(1, round(share))
