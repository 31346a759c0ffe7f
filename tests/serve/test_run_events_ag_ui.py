"""Every kind of run event goes out as a valid AG-UI event: what the SSE route sends parses back
through the official `ag-ui-protocol` models as the AG-UI type the kind names."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime

import pytest
from ag_ui.core import Event
from pydantic import TypeAdapter

from agent_platform._runstore.events import StoredEvent
from agent_platform._runtime import events as ev
from agent_platform._serve.events import encode

AG_UI_EVENT: TypeAdapter[typing.Any] = TypeAdapter(Event)

SAMPLES: list[ev.BaseRunEvent] = [
    ev.RunStarted(unit="Agent/a", parent_run_id="run-1"),
    ev.RunFinished(unit="Agent/a", outcome="completed", input_tokens=3, output_tokens=4, cost_usd=0.5),
    ev.RunFinished(unit="Agent/a", outcome="needs_approval", error="send-email needs approval"),
    ev.RunFinished(unit="Agent/a", outcome="cancelled"),
    ev.RunFinished(unit="Agent/a", outcome="max_iterations"),
    ev.RunError(unit="Agent/a", error="boom"),
    ev.StepStarted(step="iteration 1", iteration=1),
    ev.StepFinished(step="iteration 1", iteration=1, ok=False),
    ev.ModelCallStarted(call_id="c1", model="m", provider="scripted"),
    ev.ModelCallFinished(call_id="c1", model="m", provider="scripted", input_tokens=7, output_tokens=2),
    ev.ToolCallStarted(call_id="t1", tool="send-email"),
    ev.ToolCallFinished(call_id="t1", tool="send-email", outcome="error", error_type="ToolTimeout"),
    ev.GuardrailVerdict(guardrail="pii", type="pii", verdict="redact", stage="tool_output"),
    ev.ApprovalRequested(call_key="k1", tool="send-email", asking_run_id="run-1/mailer-1"),
    ev.CheckpointWritten(seq=3),
]


def test_every_kind_is_sampled() -> None:
    kinds = {
        typing.get_args(cls.model_fields["kind"].annotation)[0]
        for cls in typing.get_args(ev.RunEvent)[0].__args__
    }
    assert kinds == {sample.kind for sample in SAMPLES}


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: f"{e.kind}")
def test_each_event_is_a_valid_ag_ui_event_of_its_type(event: ev.BaseRunEvent) -> None:
    stored = StoredEvent(
        seq=7,
        root_run_id="run-1",
        run_id="run-1/mailer-1",
        kind=event.kind,
        data=event.model_dump(mode="json", exclude={"kind"}),
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    message = encode(stored)
    assert message.id == "7"
    data = json.loads(message.data)
    parsed = AG_UI_EVENT.validate_python(data)
    assert parsed.type.value == event.AG_UI_TYPE == data["type"]
    assert data["runId"] == "run-1/mailer-1" and data["timestamp"] == 1767323045000
    if event.AG_UI_TYPE == "CUSTOM":
        assert data["name"] == event.kind
        assert data["value"] == event.model_dump(mode="json", exclude={"kind"})
    if isinstance(event, ev.RunFinished):
        expected = {
            "completed": None,
            "max_iterations": None,
            "cancelled": "cancelled",
            "needs_approval": "interrupt",
        }
        assert (data.get("outcome") or {}).get("type") == expected[event.outcome]
        assert data["runOutcome"] == event.outcome and data["threadId"] == "run-1"
    # Stored events parse back as the model they were written from.
    assert ev.parse_event(stored.kind, stored.data) == event
