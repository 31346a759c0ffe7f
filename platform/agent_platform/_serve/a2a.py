"""A2A for the units an endpoint serves: per unit, its agent card at
`/a2a/{unit}/.well-known/agent-card.json` and the JSON-RPC binding at `/a2a/{unit}`, both built
with the a2a-sdk (its dispatcher, proto types and SSE framing), mounted into the endpoint's
FastAPI application behind the same guard (bearer token, body size) as the REST API.

A task IS a run: the task id (and its context id) is the run id, and a task's state is read from
the run store whenever it is asked for, so any ingress replica answers for any task and a task
outlives the replica that started it. That is why the request handler here is the platform's own
`RunTaskHandler` over `RunService` rather than the SDK's default handler with an agent executor:
the default keeps tasks in a task store of its own, per replica, beside the runs.

States: pending → submitted, running → working, waiting_approval → input-required (its status
message lists the pending calls), completed → completed (the output is the task's artifact),
failed / cancelled → failed / canceled; a run that ended otherwise than `completed` (timeout,
max_iterations, a budget) is failed with its outcome in the message. Inputs that fail the unit's
input schema are a task in state `rejected` whose status message carries the located problems
(nothing ran, so no run was recorded: the task cannot be read back).

A message starts a run: a data part is the inputs object; a text part fills the unit's single
string input (a unit without exactly one string input refuses text, as a located error).
A message naming an `input-required` task decides its pending calls:
`{"approve": [call keys], "deny": [call keys], "by": "who"}` as a data part (a unique prefix of a
key will do), or a text part `approve` / `deny` deciding all of them. The decision goes the same
way as `POST /v1/runs/{id}/approvals/{call}` (_deploy/decisions.py), and the answer follows the
resumed run as a new message does."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from a2a.helpers.proto_helpers import get_data_parts, new_data_part, new_text_part
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler, validate_request_params
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.types.a2a_pb2 import (
    AgentCard,
    Artifact,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
)
from a2a.utils.task import apply_history_length

from agent_platform._compile.plan import AnyUnit
from agent_platform._runstore import (
    NoPendingApproval,
    RunAlreadyFinished,
    RunNotFound,
    RunRecord,
    RunStatus,
    RunStoreError,
)
from agent_platform._serve.a2a_card import CARD_PATH, a2a_base_path, build_agent_card, single_string_input
from agent_platform._serve.errors import ApiError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from agent_platform._serve.config import EndpointConfig
    from agent_platform._serve.service import RunService

OUTPUT_ARTIFACT = "output"
CANCEL_WAIT_S = 30.0
# Following a run: the store is read at this interval, growing from the first to the last (a run
# that just started changes soon; one that has run a while is not worth reading often).
FOLLOW_FIRST_S = 0.05
FOLLOW_MAX_S = 0.5
LIST_PAGE_MAX = 100

_STATE_OF_STATUS = {
    RunStatus.PENDING: TaskState.TASK_STATE_SUBMITTED,
    RunStatus.RUNNING: TaskState.TASK_STATE_WORKING,
    RunStatus.WAITING_APPROVAL: TaskState.TASK_STATE_INPUT_REQUIRED,
    RunStatus.CANCELLED: TaskState.TASK_STATE_CANCELED,
    RunStatus.FAILED: TaskState.TASK_STATE_FAILED,
}
_TERMINAL = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}


def mount_a2a(
    app: FastAPI,
    config: EndpointConfig,
    units: Mapping[str, AnyUnit],
    service: RunService,
    descriptions: Mapping[str, str],
) -> None:
    """Add each served unit's card and JSON-RPC routes to `app` (its name in `units` is the one
    its REST routes use; `descriptions`: `metadata.description` by "Kind/name")."""
    for name, unit in units.items():
        card = build_agent_card(
            name,
            unit,
            description=descriptions.get(str(unit.ref), ""),
            endpoint_url=config.url,
            secured=config.token_digest is not None,
        )
        handler = RunTaskHandler(unit, card, service, wait_timeout=config.wait_timeout)
        base = a2a_base_path(name)
        app.router.routes.extend(create_agent_card_routes(card, card_url=base + CARD_PATH))
        app.router.routes.extend(create_jsonrpc_routes(handler, rpc_url=base))


# --- runs as tasks --------------------------------------------------------------------------------


def task_state(record: RunRecord) -> TaskState:
    if record.status is RunStatus.COMPLETED:
        outcome = (record.result or {}).get("outcome") if isinstance(record.result, dict) else None
        return (
            TaskState.TASK_STATE_COMPLETED if outcome in (None, "completed") else TaskState.TASK_STATE_FAILED
        )
    return _STATE_OF_STATUS[record.status]


def _agent_message(run_id: str, about: str, text: str, data: Any = None) -> Message:
    """A message of the agent about the task (`about`: what it reports, part of its id)."""
    parts = [new_text_part(text)]
    if data is not None:
        parts.append(new_data_part(data))
    return Message(
        message_id=f"{run_id}:{about}",
        context_id=run_id,
        task_id=run_id,
        role=Role.ROLE_AGENT,
        parts=parts,
    )


def _output_parts(output: Any) -> list[Part]:
    if isinstance(output, str):
        return [new_text_part(output)]
    return [new_data_part(output)]


def build_task(record: RunRecord, approvals: list[dict[str, Any]] | None = None) -> Task:
    """The task of a run, as the run store has it now."""
    state = task_state(record)
    result = record.result if isinstance(record.result, dict) else {}
    status = TaskStatus(state=state)
    if record.updated_at is not None:
        status.timestamp.FromDatetime(record.updated_at)
    if state == TaskState.TASK_STATE_INPUT_REQUIRED:
        waiting = approvals or []
        listed = "; ".join(f"{a['tool']} {a['arguments']} (call {a['call_key'][:12]})" for a in waiting)
        status.message.CopyFrom(
            _agent_message(
                record.run_id,
                f"approvals-{len(waiting)}",
                f"waiting for approval of {len(waiting)} call(s): {listed}. Answer on this task with a "
                'data part {"approve": [call keys], "deny": [call keys]} or the text "approve" / "deny".',
                {"approvals": waiting},
            )
        )
    elif state in (TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED):
        outcome = result.get("outcome") or record.status.value
        error = record.error or result.get("error") or outcome
        status.message.CopyFrom(_agent_message(record.run_id, record.status.value, f"{outcome}: {error}"))
    task = Task(
        id=record.run_id,
        context_id=record.run_id,
        status=status,
        history=[
            Message(
                message_id=f"{record.run_id}:inputs",
                context_id=record.run_id,
                task_id=record.run_id,
                role=Role.ROLE_USER,
                parts=[new_data_part(record.inputs if record.inputs is not None else {})],
            )
        ],
    )
    task.metadata.update(
        {
            "unit": record.unit,
            "run_status": record.status.value,
            "outcome": result.get("outcome") or "",
            "attempt": record.attempt,
        }
    )
    if state == TaskState.TASK_STATE_COMPLETED:
        task.artifacts.append(_output_artifact(record))
    return task


def _output_artifact(record: RunRecord) -> Artifact:
    output = (record.result or {}).get("output") if isinstance(record.result, dict) else None
    return Artifact(
        artifact_id=f"{record.run_id}:{OUTPUT_ARTIFACT}",
        name=OUTPUT_ARTIFACT,
        parts=_output_parts(output),
    )


def whole_numbers(value: Any) -> Any:
    """A data part's numbers are doubles (google.protobuf.Value): `3` arrives as `3.0`, which an
    `integer` in the unit's schema must still accept."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def _located(message: str, path: str) -> InvalidParamsError:
    return InvalidParamsError(message=message, data={"details": [{"path": path, "message": message}]})


def message_inputs(unit: AnyUnit, message: Message) -> dict[str, Any]:
    """The inputs a new message starts its run with. Raises InvalidParamsError with located
    details (`/message/parts/i`)."""
    parts = list(message.parts)
    if len(parts) != 1:
        raise _located(
            f"a message to {unit.ref} has one part: a data part (the inputs object) or a text part "
            f"(got {len(parts)})",
            "/message/parts",
        )
    part = parts[0]
    if part.HasField("data"):
        inputs = whole_numbers(get_data_parts([part])[0])
        if not isinstance(inputs, dict):
            raise _located(
                f"the data part is the inputs object of {unit.ref}, got {type(inputs).__name__}",
                "/message/parts/0/data",
            )
        return inputs
    if part.HasField("text"):
        field = single_string_input(unit)
        if field is None:
            raise _located(
                f"{unit.ref} has no single string input for a text part to fill: send a data part "
                "with its inputs object",
                "/message/parts/0/text",
            )
        return {field: part.text}
    raise _located("only data and text parts are understood here", "/message/parts/0")


def _decisions(message: Message) -> tuple[list[tuple[str, str | None]], str]:
    """The (decision, call key or None for all) pairs a follow-up message carries, and who
    decides. Raises InvalidParamsError with located details."""
    parts = list(message.parts)
    if len(parts) == 1 and parts[0].HasField("text"):
        word = parts[0].text.strip().lower()
        if word in ("approve", "deny"):
            return [("approved" if word == "approve" else "denied", None)], "a2a"
        raise _located('the text of a decision is "approve" or "deny"', "/message/parts/0/text")
    if len(parts) != 1 or not parts[0].HasField("data"):
        raise _located(
            'a decision is one data part {"approve": [call keys], "deny": [call keys], "by": "who"} '
            'or the text "approve" / "deny"',
            "/message/parts",
        )
    body = get_data_parts(parts)[0]
    if not isinstance(body, dict):
        raise _located("the decision's data part is an object", "/message/parts/0/data")
    unknown = sorted(set(body) - {"approve", "deny", "by"})
    if unknown:
        raise _located(
            f"unknown field(s) {', '.join(unknown)}: a decision has approve, deny and by",
            f"/message/parts/0/data/{unknown[0]}",
        )
    by = body.get("by", "a2a")
    if not isinstance(by, str) or not by:
        raise _located("by is a non-empty string", "/message/parts/0/data/by")
    pairs: list[tuple[str, str | None]] = []
    for field, decision in (("approve", "approved"), ("deny", "denied")):
        keys = body.get(field, [])
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise _located(f"{field} is a list of call keys", f"/message/parts/0/data/{field}")
        pairs.extend((decision, key) for key in keys)
    if not pairs:
        raise _located("the decision names no call to approve or deny", "/message/parts/0/data")
    return pairs, by


class RunTaskHandler(RequestHandler):
    """The A2A operations of one served unit, on runs (see the module docstring)."""

    def __init__(self, unit: AnyUnit, card: AgentCard, service: RunService, *, wait_timeout: float) -> None:
        self.unit = unit
        self.unit_ref = str(unit.ref)
        self.card = card
        self.service = service
        self.wait_timeout = wait_timeout

    # --- reading --------------------------------------------------------------------------------

    async def _record(self, task_id: str) -> RunRecord:
        """The run of `task_id`, when this unit started its tree (else: not found)."""
        record = await self.service.store.get_run(task_id) if task_id else None
        if record is None:
            raise TaskNotFoundError(message=f"there is no task {task_id!r}")
        root = record
        if record.parent_run_id is not None:
            root = await self.service.store.get_run(task_id.split("/", 1)[0]) or record
        if root.unit != self.unit_ref:
            raise TaskNotFoundError(message=f"there is no task {task_id!r} of {self.unit_ref}")
        return record

    async def _task(self, record: RunRecord) -> Task:
        approvals = None
        if record.status is RunStatus.WAITING_APPROVAL:
            from agent_platform._deploy.decisions import approval_row

            approvals = [
                _jsonable(approval_row(a))
                for a in await self.service.store.approvals(record.run_id)
                if a.decision is None
            ]
        return build_task(record, approvals)

    async def _settled(self, run_id: str, timeout: float) -> RunRecord:
        """The run once it is finished or waiting for a person, or as it is after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = FOLLOW_FIRST_S
        while True:
            record = await self.service.get(run_id)
            if record.status.settled or loop.time() >= deadline:
                return record
            await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))
            interval = min(interval * 2, FOLLOW_MAX_S)

    async def _follow(self, run_id: str) -> AsyncGenerator[TaskStatusUpdateEvent | TaskArtifactUpdateEvent]:
        """A status update each time the run's task state changes, until it is terminal or
        waiting for input; a completed run's output artifact before its last update."""
        seen: TaskState | None = None
        interval = FOLLOW_FIRST_S
        while True:
            record = await self.service.get(run_id)
            state = task_state(record)
            if state != seen:
                seen = state
                interval = FOLLOW_FIRST_S
                task = await self._task(record)
                if state == TaskState.TASK_STATE_COMPLETED:
                    yield TaskArtifactUpdateEvent(
                        task_id=run_id,
                        context_id=run_id,
                        artifact=_output_artifact(record),
                        last_chunk=True,
                    )
                event = TaskStatusUpdateEvent(task_id=run_id, context_id=run_id, status=task.status)
                event.metadata.update({"run_status": record.status.value})
                yield event
            if state in _TERMINAL or state == TaskState.TASK_STATE_INPUT_REQUIRED:
                return
            await asyncio.sleep(interval)
            interval = min(interval * 2, FOLLOW_MAX_S)

    # --- starting and deciding ------------------------------------------------------------------

    async def _start(self, message: Message, *, wait: float | None) -> Task:
        """Start a run from a new message; a rejected task when its inputs fail the schema."""
        from agent_platform._runtime.engine import Runtime
        from agent_platform._runtime.inputs import InputError
        from agent_platform._runtime.services import new_run_id
        from agent_platform._runtime.supervisor import TaskError

        inputs = message_inputs(self.unit, message)
        try:
            prepared = Runtime.prepare_inputs(self.unit, inputs)
        except (InputError, TaskError) as exc:
            problems = exc.problems if isinstance(exc, InputError) else [("/tasks", str(exc))]
            details = [{"path": "/inputs" + pointer, "message": text} for pointer, text in problems]
            run_id = new_run_id()
            return Task(
                id=run_id,
                context_id=run_id,
                status=TaskStatus(
                    state=TaskState.TASK_STATE_REJECTED,
                    message=_agent_message(
                        run_id,
                        "rejected",
                        f"invalid inputs: {exc}",
                        {"details": details or [{"path": "/inputs", "message": str(exc)}]},
                    ),
                ),
            )
        try:
            # With `wait`, this holds until the run settles or `wait` passes (then: still working).
            record, _ = await self.service.start(self.unit_ref, prepared, tenant=None, wait=wait)
        except ApiError as exc:
            raise InternalError(message=exc.message, data={"code": exc.code, "status": exc.status}) from None
        return await self._task(record)

    async def _decide(self, message: Message) -> str:
        """Record the decisions a message on an input-required task carries and, once nothing is
        left undecided, hand the run back to the deployment. Returns the run id."""
        from agent_platform._deploy.decisions import decide, resume_on_deployment

        record = await self._record(message.task_id)
        if record.status is not RunStatus.WAITING_APPROVAL:
            raise _located(
                f"task {record.run_id} is {task_state(record)} ({record.status.value}), not input-required: "
                "a message naming a task decides its pending calls",
                "/message/task_id",
            )
        pairs, by = _decisions(message)
        decided = None
        for decision, call_key in pairs:
            try:
                decided = await decide(self.service.store, record.run_id, decision, by=by, call_key=call_key)
            except NoPendingApproval as exc:
                raise _located(str(exc), "/message/parts/0") from None
            except (RunNotFound, RunAlreadyFinished, RunStoreError) as exc:
                raise TaskNotCancelableError(message=str(exc)) from None
        assert decided is not None
        root = decided.root
        if decided.resumable and not decided.local and root is not None:
            await resume_on_deployment(self.service.control(), root)
        return record.run_id

    # --- the RequestHandler interface -----------------------------------------------------------

    @validate_request_params
    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task:
        wait = None if params.configuration.return_immediately else self.wait_timeout
        if params.message.task_id:
            run_id = await self._decide(params.message)
            record = await self._settled(run_id, wait) if wait is not None else await self.service.get(run_id)
            task = await self._task(record)
        else:
            task = await self._start(params.message, wait=wait)
        return apply_history_length(task, params.configuration)

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Task | TaskStatusUpdateEvent | TaskArtifactUpdateEvent]:
        if params.message.task_id:
            run_id = await self._decide(params.message)
        else:
            task = await self._start(params.message, wait=None)
            yield task
            if task.status.state == TaskState.TASK_STATE_REJECTED:
                return
            run_id = task.id
        async for event in self._follow(run_id):
            yield event

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Task | TaskStatusUpdateEvent | TaskArtifactUpdateEvent]:
        record = await self._record(params.id)
        yield await self._task(record)
        if task_state(record) in _TERMINAL:
            return
        async for event in self._follow(record.run_id):
            yield event

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        return apply_history_length(await self._task(await self._record(params.id)), params)

    @validate_request_params
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        record = await self._record(params.id)
        if record.status.finished:
            raise TaskNotCancelableError(message=f"task {record.run_id} already ended: {record.status.value}")
        try:
            cancelled = await self.service.cancel(record.run_id, wait=CANCEL_WAIT_S)
        except ApiError as exc:
            if exc.status == 404:
                raise TaskNotFoundError(message=exc.message) from None
            raise TaskNotCancelableError(message=exc.message) from None
        return await self._task(cancelled)

    @validate_request_params
    async def on_list_tasks(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        size = params.page_size if params.HasField("page_size") and params.page_size > 0 else 50
        size = min(size, LIST_PAGE_MAX)
        records = await self.service.list(status=None, unit=self.unit_ref, limit=size, top_level=True)
        tasks = [await self._task(r) for r in records]
        if params.status:
            tasks = [t for t in tasks if t.status.state == params.status]
        if not params.include_artifacts:
            for task in tasks:
                task.ClearField("artifacts")
        return ListTasksResponse(tasks=tasks, page_size=size, total_size=len(tasks))

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """An approval row as a data part can hold it (datetimes as ISO text, no None-only noise)."""
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
