"""`GET /v1/runs/{run_id}/events`: a run's events as Server-Sent Events, in AG-UI's shapes.

Events live in the run store (`_runtime/events.py`, `_runstore/events.py`): the replica that runs a
run writes them behind it, and any ingress replica reads them, so a stream works wherever the
run executes. Each SSE message carries one event: `id:` is its sequence number in the run's
tree, `data:` the AG-UI event as JSON (built and checked by the official `ag-ui-protocol`
models; every event also names the run that made it, `runId`, and the platform's own `kind`).
A client that reconnects with `Last-Event-ID` (or `?after=N`) gets the events after that one,
each exactly once, in order. The stream sends what is stored, then follows the store until
the run settles (finished, or paused for approval: a resumed run's events continue the same
sequence, so a reconnect picks them up), sends what remains, and closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ag_ui.core import BaseEvent as AgUiEvent
from ag_ui.core import (
    CustomEvent,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TokenUsage,
    ToolCallEndEvent,
    ToolCallStartEvent,
)
from fastapi import FastAPI, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from agent_platform._runstore import RunRecord
from agent_platform._runstore.events import StoredEvent
from agent_platform._runtime import events as ev
from agent_platform._serve.errors import ApiError
from agent_platform._serve.service import RunService

READ_BATCH = 500
POLL_FIRST_S = 0.02
POLL_MAX_S = 0.5
PING_S = 15  # a comment line this often keeps proxies from closing an idle stream


def _usage(event: ev.RunFinished | ev.RunError | ev.ModelCallFinished) -> list[TokenUsage]:
    return [
        TokenUsage(
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            total_tokens=event.input_tokens + event.output_tokens,
        )
    ]


def to_ag_ui(stored: StoredEvent) -> AgUiEvent:
    """The AG-UI event for a stored run event. Fields AG-UI has no place for are kept as extra
    fields (AG-UI keeps unknown fields), camel-cased like AG-UI's own."""
    timestamp = int(stored.at.timestamp() * 1000)
    thread = stored.root_run_id
    extra: dict[str, Any] = {"runId": stored.run_id, "kind": stored.kind}
    try:
        event = ev.parse_event(stored.kind, stored.data)
    except ValueError:  # written by a newer version: passed on as it was stored
        return CustomEvent(name=stored.kind, value=stored.data, timestamp=timestamp, **extra)
    match event:
        case ev.RunStarted():
            return RunStartedEvent(
                thread_id=thread,
                run_id=stored.run_id,
                parent_run_id=event.parent_run_id,
                timestamp=timestamp,
                unit=event.unit,
                kind=stored.kind,
            )
        case ev.RunFinished():
            outcome: dict[str, Any] | None = None
            if event.outcome == "cancelled":
                outcome = {"type": "cancelled"}
            elif event.outcome == "needs_approval":  # the calls are in the approval.requested events
                outcome = {
                    "type": "interrupt",
                    "interrupts": [
                        {"id": f"{stored.run_id}:approval", "reason": "approval", "message": event.error}
                    ],
                }
            return RunFinishedEvent(
                thread_id=thread,
                run_id=stored.run_id,
                outcome=outcome,
                usage=_usage(event),
                timestamp=timestamp,
                unit=event.unit,
                kind=stored.kind,
                # The platform's own outcome (completed, max_iterations, needs_approval, …).
                runOutcome=event.outcome,
                costUsd=event.cost_usd,
                error=event.error,
            )
        case ev.RunError():
            return RunErrorEvent(
                message=event.error,
                code="failed",
                usage=_usage(event),
                timestamp=timestamp,
                unit=event.unit,
                costUsd=event.cost_usd,
                **extra,
            )
        case ev.StepStarted():
            return StepStartedEvent(
                step_name=event.step, timestamp=timestamp, iteration=event.iteration, **extra
            )
        case ev.StepFinished():
            return StepFinishedEvent(
                step_name=event.step,
                timestamp=timestamp,
                iteration=event.iteration,
                ok=event.ok,
                paused=event.paused,
                **extra,
            )
        case ev.ToolCallStarted():
            return ToolCallStartEvent(
                tool_call_id=event.call_id, tool_call_name=event.tool, timestamp=timestamp, **extra
            )
        case ev.ToolCallFinished():
            return ToolCallEndEvent(
                tool_call_id=event.call_id,
                timestamp=timestamp,
                toolCallName=event.tool,
                outcome=event.outcome,
                errorType=event.error_type,
                attempts=event.attempts,
                cached=event.cached,
                **extra,
            )
        case _:  # model calls, guardrail verdicts, approval requests, checkpoints
            return CustomEvent(
                name=stored.kind,
                value=event.model_dump(mode="json", by_alias=True, exclude={"kind"}),
                timestamp=timestamp,
                **extra,
            )


def encode(stored: StoredEvent) -> ServerSentEvent:
    data = to_ag_ui(stored).model_dump_json(by_alias=True)
    return ServerSentEvent(data=data, id=str(stored.seq))


def _position(request: Request) -> int:
    """Where the client is: `Last-Event-ID` (a reconnecting EventSource sends it) or `?after=`."""
    for name, value in (
        ("Last-Event-ID", request.headers.get("last-event-id")),
        ("after", request.query_params.get("after")),
    ):
        if value is None or value == "":
            continue
        if not value.isdigit() or len(value) > 18:
            where = "/headers/Last-Event-ID" if name == "Last-Event-ID" else "/query/after"
            raise ApiError(
                422,
                "invalid_request",
                f"{name} must be an event id (a whole number >= 0), not {value!r}",
                [{"path": where, "message": "a whole number >= 0"}],
            )
        return int(value)
    return 0


async def follow_events(
    store: Any, run_id: str, after: int, *, poll_max_s: float = POLL_MAX_S
) -> AsyncIterator[StoredEvent]:
    """The events of `run_id` (its tree below it) after `after`: what is stored, then what comes,
    until the run has settled and everything stored before that has been given."""
    cursor = after
    delay = POLL_FIRST_S
    while True:
        # The status first: a run stores its events before it settles, so once it is seen settled
        # one more read finds everything.
        record = await store.get_run(run_id)
        settled = record is None or record.status.settled
        while True:
            found = await store.read_events(run_id, after=cursor, limit=READ_BATCH)
            for stored in found:
                cursor = stored.seq
                yield stored
            if len(found) < READ_BATCH:
                break
            delay = POLL_FIRST_S
        if settled:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, poll_max_s)


def add_event_routes(
    app: FastAPI, service: RunService, visible: Callable[[RunRecord], Awaitable[RunRecord]]
) -> None:
    """The events route (before api.py's catch-all `GET /v1/runs/{run_id}`)."""

    @app.get("/v1/runs/{run_id:path}/events")
    async def run_events(run_id: str, request: Request) -> EventSourceResponse:
        after = _position(request)
        await visible(await service.get(run_id))

        async def stream() -> AsyncIterator[ServerSentEvent]:
            async for stored in follow_events(service.store, run_id, after):
                yield encode(stored)

        return EventSourceResponse(
            stream(),
            ping=PING_S,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
