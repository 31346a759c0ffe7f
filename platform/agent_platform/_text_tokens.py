"""The platform's token estimate for text, shared by the runtime (budgets, working memory) and
the memory layers (what recalled items cost): about 4 characters per token, never an exact count
(see `_runtime/tokens.py`, which calibrates it with what providers report)."""

from __future__ import annotations

import math

CHARS_PER_TOKEN = 4.0


def estimate_tokens(text: str) -> int:
    """An *estimate* of the tokens in `text`: UTF-8 bytes / 4, rounded up (~4 characters per token
    for English text and code). Use the provider's reported usage wherever it is available."""
    if not text:
        return 0
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    return math.ceil(size / CHARS_PER_TOKEN)
