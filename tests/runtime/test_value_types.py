"""The small value types of the hot path: what they promise beyond being cheap to build."""

from __future__ import annotations

import pytest

from agent_platform._runtime.checkpoint import message_from_api
from agent_platform._runtime.messages import Message, TextBlock, ToolResultBlock
from agent_platform._runtime.models.base import Usage


def test_usage_adds_field_by_field_and_never_concatenates() -> None:
    total = Usage(100, 10) + Usage(5, 1)
    assert total == Usage(105, 11) and total.total_tokens == 116
    assert isinstance(total, Usage) and Usage() == Usage(0, 0)
    with pytest.raises(TypeError):
        Usage(1, 2) + (3, 4)  # noqa: RUF005 (a plain tuple is not usage: no concatenation)
    assert hash(Usage(1, 2)) == hash(Usage(1, 2))  # immutable, usable as a key


def test_blocks_round_trip_through_the_messages_api_form() -> None:
    message = Message(
        "user",
        [TextBlock("see below"), ToolResultBlock("toolu_9", "boom", is_error=True)],
    )
    api = message.to_api()
    assert api == {
        "role": "user",
        "content": [
            {"type": "text", "text": "see below"},
            {"type": "tool_result", "tool_use_id": "toolu_9", "content": "boom", "is_error": True},
        ],
    }
    assert message_from_api(api) == message
    assert ToolResultBlock("a", "b").to_api() == {"type": "tool_result", "tool_use_id": "a", "content": "b"}
