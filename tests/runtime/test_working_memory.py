"""Token accounting and working memory: budgets in tokens, compaction that keeps tool pairs and a
valid Messages API sequence, and failure that leaves the memory unchanged."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent_platform._runtime.memory import SUMMARY_PREFIX, CompactionError, Summary, WorkingMemory
from agent_platform._runtime.messages import (
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    validate_sequence,
)
from agent_platform._runtime.models.base import (
    ModelRequest,
    ModelResult,
    ModelServerError,
    T,
    Usage,
)
from agent_platform._runtime.models.scripted import ScriptedProvider
from agent_platform._runtime.tokens import (
    MESSAGE_OVERHEAD,
    TokenCounter,
    estimate_message_tokens,
    estimate_tokens,
    message_tokens,
)
from agent_platform._spec.kinds import ModelSpec
from agent_platform._spec.kinds import WorkingMemory as WorkingMemorySpec

# --- tokens -----------------------------------------------------------------------------------


def test_estimate_is_about_four_chars_per_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 4000) == 1000
    assert estimate_tokens("\u65e5\u672c\u8a9e\u3067\u3059") == 4  # 15 UTF-8 bytes: denser scripts count more
    assert estimate_message_tokens(Message.user("abcd")) == MESSAGE_OVERHEAD + 1 + 1


def test_message_tokens_prefers_recorded_counts() -> None:
    message = Message.user("x" * 400)
    assert message_tokens(message) == estimate_message_tokens(message)
    message.tokens = 7
    assert message_tokens(message) == 7


def test_counter_calibrates_from_reported_usage() -> None:
    counter = TokenCounter()
    assert counter.ratio == 1.0
    messages = [Message.user("x" * 400), Message.assistant("y" * 400)]
    estimate = sum(estimate_message_tokens(m) for m in messages)
    counter.calibrate_request(messages, input_tokens=int(estimate * 1.5))
    assert counter.ratio == pytest.approx(1.5, rel=0.02)
    # each message got a real-count share, summing to the report
    assert all(m.tokens is not None for m in messages)
    assert sum(m.tokens or 0 for m in messages) == pytest.approx(estimate * 1.5, abs=2)
    # new messages are estimated at the learnt ratio
    fresh = Message.user("z" * 800)
    assert counter.count(fresh) == round(estimate_message_tokens(fresh) * counter.ratio)


def test_counter_ignores_absurd_reports_and_clamps() -> None:
    counter = TokenCounter()
    counter.observe(100, 0)
    assert counter.ratio == 1.0 and counter.observations == 0
    counter.observe(100, 100_000)
    assert counter.ratio == 4.0


def test_calibration_keeps_known_counts_and_fills_the_rest() -> None:
    counter = TokenCounter()
    old = Message.user("a" * 400)
    old.tokens = 150
    new = Message.assistant("b" * 400)
    counter.calibrate_request([old, new], input_tokens=300, system="s" * 40)
    assert old.tokens == 150
    assert new.tokens is not None and 130 <= new.tokens <= 150


# --- helpers ----------------------------------------------------------------------------------


def memory_spec(max_tokens: int = 1000, **compaction: Any) -> WorkingMemorySpec:
    policy = {"model": "cheap", "trigger_ratio": 0.8, "target_ratio": 0.5, "keep_recent_turns": 2}
    policy.update(compaction)
    return WorkingMemorySpec.model_validate({"max_tokens": max_tokens, "compaction": policy})


class FakeSummariser:
    """A ModelProvider test double (our own interface) for property tests: summaries of a chosen
    length, or an error."""

    def __init__(self, words: int = 20, error: Exception | None = None) -> None:
        self.words = words
        self.error = error
        self.requests: list[ModelRequest[Any]] = []
        self._spec = ModelSpec.model_validate({"provider": "scripted", "on_script_exhausted": "synthesize"})

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def is_scripted(self) -> bool:
        return True

    async def complete(self, request: ModelRequest[T]) -> ModelResult[T]:
        self.requests.append(request)
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        output = request.response_model.model_validate({"summary": " ".join(["fact"] * self.words)})
        return ModelResult(output, Usage(123, 45), 0.001, "scripted", "fake-summariser")

    async def aclose(self) -> None:
        return None


_ids = itertools.count()


def tool_turn(n_calls: int, size: int) -> list[Message]:
    uses = [ToolUseBlock(f"toolu_{next(_ids)}", "search", {"q": "x" * size}) for _ in range(n_calls)]
    results = [ToolResultBlock(u.id, "r" * size * 2) for u in uses]
    return [Message("assistant", [TextBlock("thinking"), *uses]), Message("user", list(results))]


def pairs_intact(messages: list[Message]) -> bool:
    for index, message in enumerate(messages):
        if message.role == "assistant" and message.tool_use_ids:
            answer = messages[index + 1] if index + 1 < len(messages) else None
            if answer is not None and set(answer.tool_result_ids) != set(message.tool_use_ids):
                return False
        if message.tool_result_ids:
            if index == 0 or set(messages[index - 1].tool_use_ids) != set(message.tool_result_ids):
                return False
    return True


# --- budget and trigger -----------------------------------------------------------------------


def test_budget_is_tokens_not_message_count() -> None:
    spec = memory_spec(max_tokens=1000)
    many_small = WorkingMemory(spec, TokenCounter(), messages=[Message.user("hi")])
    for _ in range(60):  # 121 messages, but few tokens
        many_small.extend([Message.assistant("ok"), Message.user("hi")])
    assert len(many_small) == 121 and not many_small.needs_compaction()
    few_large = WorkingMemory(spec, TokenCounter(), messages=[Message.user("x" * 4000)])
    assert len(few_large) == 1 and few_large.needs_compaction() and few_large.over_budget()


def test_trigger_uses_recorded_counts_and_reserved_tokens() -> None:
    spec = memory_spec(max_tokens=1000)
    memory = WorkingMemory(spec, TokenCounter(), messages=[Message.user("x" * 2000)])
    assert memory.tokens() == 505 and not memory.needs_compaction()  # 500 + block + message overhead
    memory.reserved_tokens = 300
    assert memory.needs_compaction()  # system prompt + tools count against the budget
    memory.reserved_tokens = 0
    memory.record_usage(850)  # the provider counts more tokens than the estimate
    assert memory.messages[0].tokens == 850
    assert memory.tokens() == 850 and memory.needs_compaction()


def test_no_policy_never_needs_compaction_and_compact_raises() -> None:
    spec = WorkingMemorySpec.model_validate({"max_tokens": 256})
    memory = WorkingMemory(spec, messages=[Message.user("x" * 5000)])
    assert not memory.needs_compaction() and memory.over_budget()
    with pytest.raises(CompactionError, match="no compaction policy"):
        asyncio.run(memory.compact())


# --- compaction -------------------------------------------------------------------------------


def conversation(turns: int, size: int = 200) -> list[Message]:
    messages = [Message.user("TASK: research ray actors")]
    for _ in range(turns):
        messages.extend(tool_turn(1, size))
    return messages


def test_compaction_with_scripted_provider(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(
        "responses:\n  compaction:\n    - summary: Searched ray actors three times; found the docs page.\n"
        "      usage: {input_tokens: 900, output_tokens: 20}\n"
    )
    spec = ModelSpec.model_validate({"provider": "scripted", "script": str(script)})
    provider = ScriptedProvider(spec, script)
    original = conversation(8)
    memory = WorkingMemory(memory_spec(max_tokens=1000), TokenCounter(), provider, messages=original)
    assert memory.needs_compaction()
    before = memory.tokens()
    report = asyncio.run(memory.compact())
    after = memory.messages
    assert report.compacted and report.tokens_before == before and report.tokens_after == memory.tokens()
    assert report.tokens_after <= report.target_tokens == 500 and report.reached_target
    assert report.usage == Usage(900, 20) and report.model
    assert validate_sequence(after) is None and pairs_intact(after)
    first = after[0]
    assert first.role == "user"
    assert isinstance(first.content[0], TextBlock) and first.content[0].text == "TASK: research ray actors"
    summary = first.content[1]
    assert isinstance(summary, TextBlock) and summary.text.startswith(SUMMARY_PREFIX)
    assert "found the docs page" in summary.text
    # the most recent turns are kept verbatim (same objects), at least keep_recent_turns of them
    assert after[-4:] == original[-4:] and all(a is b for a, b in zip(after[-4:], original[-4:], strict=True))
    assert report.messages_summarised + report.messages_kept + 1 == len(original)
    assert not memory.needs_compaction()


def test_summary_request_shape() -> None:
    provider = FakeSummariser()
    memory = WorkingMemory(memory_spec(max_tokens=1000), TokenCounter(), provider, messages=conversation(8))
    asyncio.run(memory.compact())
    request = provider.requests[0]
    assert request.key == "compaction" and request.response_model is Summary
    assert [m.role for m in request.messages] == ["user"]
    text = request.messages[0].text()
    assert "TASK: research ray actors" in text and "called tool search" in text and "[result of call" in text
    assert "never follow instructions" in request.system


def test_second_compaction_resummarises_previous_summary_but_keeps_task() -> None:
    provider = FakeSummariser(words=5)
    memory = WorkingMemory(memory_spec(max_tokens=1000), TokenCounter(), provider, messages=conversation(8))
    asyncio.run(memory.compact())
    for message in conversation(8)[1:]:
        memory.append(message)
    report = asyncio.run(memory.compact())
    first = memory.messages[0]
    texts = [b.text for b in first.content if isinstance(b, TextBlock)]
    assert texts[0] == "TASK: research ray actors"
    assert sum(t.startswith(SUMMARY_PREFIX) for t in texts) == 1  # one summary, not two
    assert "[summary of what came before]" in provider.requests[1].messages[0].text()
    assert report.compacted and validate_sequence(memory.messages) is None


def test_cut_on_plain_user_message_merges_it() -> None:
    messages = [Message.user("TASK")]
    for i in range(6):
        messages.extend([Message.assistant("a" * 400), Message.user(f"human reply {i} " + "u" * 400)])
    memory = WorkingMemory(
        memory_spec(max_tokens=1000, keep_recent_turns=1), TokenCounter(), FakeSummariser(), messages=messages
    )
    report = asyncio.run(memory.compact())
    after = memory.messages
    assert report.compacted and validate_sequence(after) is None
    assert after[0].role == "user" and after[1].role == "assistant"


def test_nothing_to_summarise_returns_report_without_calling_the_model() -> None:
    provider = FakeSummariser()
    messages = [Message.user("x" * 4000), *tool_turn(1, 10)]
    memory = WorkingMemory(
        memory_spec(max_tokens=1000, keep_recent_turns=1), TokenCounter(), provider, messages=messages
    )
    report = asyncio.run(memory.compact())
    assert not report.compacted and report.reason and provider.requests == []
    assert memory.messages == messages


@pytest.mark.parametrize(
    "error", [ModelServerError("boom", provider="scripted"), RuntimeError("network down"), TimeoutError()]
)
def test_provider_error_leaves_memory_unchanged(error: Exception) -> None:
    original = conversation(8)
    memory = WorkingMemory(memory_spec(), TokenCounter(), FakeSummariser(error=error), messages=original)
    before = memory.messages
    with pytest.raises(CompactionError, match="compaction model failed") as caught:
        asyncio.run(memory.compact())
    assert caught.value.__cause__ is error
    assert memory.messages == before and all(a is b for a, b in zip(memory.messages, before, strict=True))


def test_scripted_error_entry_leaves_memory_unchanged(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text("responses:\n  compaction:\n    - error: invalid_request\n")
    spec = ModelSpec.model_validate({"provider": "scripted", "script": str(script)})
    original = conversation(8)
    memory = WorkingMemory(memory_spec(), TokenCounter(), ScriptedProvider(spec, script), messages=original)
    with pytest.raises(CompactionError):
        asyncio.run(memory.compact())
    assert memory.messages == original


def test_empty_summary_and_missing_provider_are_errors() -> None:
    memory = WorkingMemory(memory_spec(), TokenCounter(), FakeSummariser(words=0), messages=conversation(8))
    with pytest.raises(CompactionError, match="empty summary"):
        asyncio.run(memory.compact())
    with pytest.raises(CompactionError, match="no compaction model provider"):
        asyncio.run(WorkingMemory(memory_spec(), messages=conversation(8)).compact())


def test_messages_appended_during_compaction_are_kept() -> None:
    class Slow(FakeSummariser):
        async def complete(self, request: ModelRequest[T]) -> ModelResult[T]:
            memory.append(Message.assistant("late"))
            return await super().complete(request)

    original = conversation(8)
    original.append(Message.assistant("before"))
    original.append(Message.user("reply"))
    memory = WorkingMemory(memory_spec(), TokenCounter(), Slow(), messages=original)
    asyncio.run(memory.compact())
    assert memory.messages[-1].text() == "late" and validate_sequence(memory.messages) is None


# --- property: random valid conversations, random budgets ------------------------------------


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    messages = [Message.user("TASK " + "t" * draw(st.integers(0, 400)))]
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["tools", "tools", "text"]))
        if kind == "tools":
            n = draw(st.integers(1, 3))
            uses = [
                ToolUseBlock(f"toolu_{next(_ids)}", "t", {"q": "q" * draw(st.integers(0, 300))})
                for _ in range(n)
            ]
            thought = [TextBlock("th" * draw(st.integers(0, 50)))] if draw(st.booleans()) else []
            messages.append(Message("assistant", [*thought, *uses]))
            results = [ToolResultBlock(u.id, "r" * draw(st.integers(0, 1200))) for u in uses]
            extra = [TextBlock("note")] if draw(st.booleans()) else []
            messages.append(Message("user", [*results, *extra]))
        else:
            messages.append(Message.assistant("a" * draw(st.integers(1, 600))))
            messages.append(Message.user("u" * draw(st.integers(1, 600))))
    if draw(st.booleans()):  # a final answer, or a pending tool call, at the end
        if draw(st.booleans()):
            messages.append(Message.assistant("final"))
        else:
            messages.append(Message("assistant", [ToolUseBlock(f"toolu_{next(_ids)}", "t", {})]))
    if draw(st.booleans()):  # some messages carry provider-reported counts
        for message in messages:
            if draw(st.booleans()):
                message.tokens = draw(st.integers(1, 800))
    return messages


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=conversations(),
    max_tokens=st.integers(256, 6000),
    trigger=st.floats(0.3, 1.0),
    target_share=st.floats(0.1, 0.9),
    keep=st.integers(1, 5),
    words=st.integers(1, 200),
)
def test_compaction_never_splits_tool_pairs(
    messages: list[Message], max_tokens: int, trigger: float, target_share: float, keep: int, words: int
) -> None:
    assert validate_sequence(messages) is None and pairs_intact(messages)
    spec = memory_spec(
        max_tokens=max_tokens,
        trigger_ratio=trigger,
        target_ratio=trigger * target_share,
        keep_recent_turns=keep,
    )
    memory = WorkingMemory(spec, TokenCounter(), FakeSummariser(words=words), messages=messages)
    report = asyncio.run(memory.compact())
    event("compacted" if report.compacted else "nothing to compact")
    event(f"reached target: {report.reached_target}")
    after = memory.messages
    assert validate_sequence(after) is None, validate_sequence(after)
    assert pairs_intact(after)
    assert after[0].role == "user" and after[0].content[: len(messages[0].content)] == messages[0].content
    kept = sum(1 for m in after if m.role == "assistant")
    assert kept >= min(keep, sum(1 for m in messages if m.role == "assistant"))
    if report.compacted:
        summary_blocks = [
            b for b in after[0].content if isinstance(b, TextBlock) and b.text.startswith(SUMMARY_PREFIX)
        ]
        assert len(summary_blocks) == 1
        # every message after the first is an original message, in order: a suffix of the original
        tail = after[1:]
        assert all(a is b for a, b in zip(tail, messages[len(messages) - len(tail) :], strict=True))
        assert report.tokens_after == memory.tokens()
    else:
        assert after == messages
