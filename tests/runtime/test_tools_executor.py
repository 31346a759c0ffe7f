"""The executor's order of checks: allow-list, arguments, approval, output schema; results as JSON
data; the tracing hook."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from agent_platform._compile.plan import ToolBinding
from agent_platform._runtime.clock import FakeClock
from agent_platform._runtime.tools import (
    ApprovalRequest,
    ApprovalRequired,
    SqliteIdempotencyStore,
    ToolExecutor,
    ToolNotAllowed,
    ToolOutputInvalid,
    ToolRegistry,
)
from agent_platform._spec.kinds import ToolSpec


def spec(**fields: Any) -> ToolSpec:
    fields.setdefault("description", "A test tool.")
    fields.setdefault("python", "testing:registered")
    return ToolSpec.model_validate(fields)


class Receipt(BaseModel):
    id: str
    amount: float


def build(tools: dict[str, tuple[Any, dict[str, Any]]], **options: Any) -> ToolExecutor:
    registry = ToolRegistry(plugin_paths=[])
    bindings = []
    for name, (fn, fields) in tools.items():
        registry.register(fn, name=name)
        bindings.append(ToolBinding(name, spec(**fields)))
    options.setdefault("clock", FakeClock())
    return ToolExecutor(bindings, registry, **options)


async def test_a_tool_outside_the_allow_list_is_never_called() -> None:
    calls: list[str] = []

    def search(q: str) -> str:
        calls.append(q)
        return "found"

    def delete_everything(confirm: bool) -> str:
        calls.append("delete")
        return "gone"

    executor = build({"search": (search, {}), "delete": (delete_everything, {})})
    denied = await executor.call("delete", {"confirm": True}, run_id="r", allowed={"search"})
    assert isinstance(denied.error, ToolNotAllowed)
    assert "not one of your tools (allowed: search)" in denied.error.message
    assert calls == [] and denied.attempts == 0
    nothing = await executor.call("search", {"q": "x"}, run_id="r", allowed=frozenset())
    assert isinstance(nothing.error, ToolNotAllowed) and calls == []
    ok = await executor.call("search", {"q": "x"}, run_id="r", allowed={"search"})
    assert ok.output == "found" and calls == ["x"]


async def test_results_become_json_data_and_are_checked_against_output_schema() -> None:
    def pay(amount: float) -> Receipt:
        return Receipt(id="p1", amount=amount)

    schema = {"type": "object", "required": ["id", "amount"], "properties": {"amount": {"maximum": 100}}}
    executor = build({"pay": (pay, {"output_schema": schema})})
    ok = await executor.call("pay", {"amount": 12.5}, run_id="r")
    assert ok.output == {"id": "p1", "amount": 12.5}
    assert ok.content() == '{"id": "p1", "amount": 12.5}'
    too_much = await executor.call("pay", {"amount": 500}, run_id="r")
    assert isinstance(too_much.error, ToolOutputInvalid)
    assert "500" in too_much.error.message and too_much.attempts == 1  # validation not in the defaults
    assert too_much.content() == too_much.error.for_model()


async def test_tools_requiring_approval_fail_closed_and_ask_the_approver(tmp_path: Any) -> None:
    sent: list[str] = []

    async def wire(to: str, amount: int) -> str:
        sent.append(to)
        return f"sent {amount} to {to}"

    fields = {"requires_approval": True, "side_effects": True, "idempotency": {"mode": "key"}}
    store = SqliteIdempotencyStore(tmp_path / "idem.sqlite3")
    unattended = build({"wire": (wire, fields)}, idempotency_store=store)
    # Not a tool error the model could work around: the run has to stop, naming the call.
    with pytest.raises(ApprovalRequired) as pending:
        await unattended.call("wire", {"to": "bob", "amount": 5}, run_id="r")
    assert pending.value.request.tool == "wire" and dict(pending.value.request.arguments)["to"] == "bob"
    assert "no approver" in str(pending.value)
    assert sent == []

    requests: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> bool:
        requests.append(request)
        return request.arguments["amount"] < 100

    executor = build({"wire": (wire, fields)}, idempotency_store=store, approver=approver)
    refused = await executor.call("wire", {"to": "eve", "amount": 1000}, run_id="r")
    assert isinstance(refused.error, ToolNotAllowed) and "not approved" in refused.error.message
    approved = await executor.call("wire", {"to": "bob", "amount": 5}, run_id="r")
    assert approved.output == "sent 5 to bob" and sent == ["bob"]
    assert [(r.tool, dict(r.arguments), r.run_id) for r in requests] == [
        ("wire", {"to": "eve", "amount": 1000}, "r"),
        ("wire", {"to": "bob", "amount": 5}, "r"),
    ]
    replay = await executor.call("wire", {"to": "bob", "amount": 5}, run_id="r")
    assert replay.from_idempotency_store and len(requests) == 2  # a stored result needs no approval
    await store.aclose()


async def test_events_reach_the_tracing_hook() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    state = {"n": 0}

    async def shaky(x: int) -> int:
        state["n"] += 1
        if state["n"] == 1:
            raise ConnectionError("reset")
        return x

    executor = build(
        {"shaky": (shaky, {"idempotency": {"mode": "cache"}})},
        on_event=lambda name, attributes: events.append((name, attributes)),
    )
    await executor.call("shaky", {"x": 1}, run_id="r")
    await executor.call("shaky", {"x": 1}, run_id="r")
    await executor.call("shaky", {"x": "bad"}, run_id="r")
    names = [name for name, _ in events]
    assert names == ["tool.retry", "tool.cache", "tool.cache", "tool.error"]
    assert events[0][1]["error"] == "ConnectionError"
    assert [events[1][1]["outcome"], events[2][1]["outcome"]] == ["miss", "hit"]
    assert events[3][1]["category"] == "arguments"


async def test_describe_lists_tools_for_the_model() -> None:
    def add(a: int, b: int = 1) -> int:
        """Add two numbers.

        Args:
            a: The first.
            b: The second.
        """
        return a + b

    executor = build({"add": (add, {"description": "Adds numbers."})})
    [described] = executor.describe()
    assert described["name"] == "add" and described["description"] == "Adds numbers."
    assert described["input_schema"]["properties"]["a"]["description"] == "The first."
    model = executor.arguments_model("add")
    assert model.model_validate({"a": 2}).model_dump() == {"a": 2, "b": 1}
