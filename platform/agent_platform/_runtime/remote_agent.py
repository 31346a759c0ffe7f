"""Calling a RemoteAgent delegate over A2A with the a2a-sdk client (JSON-RPC binding).

A call fetches the card, sends the task as one data part asking to return at once
(`return_immediately`), then reads the task until it reaches a final state. Only the send and
the reads are retried (a connection error, a timeout, HTTP 429 or 5xx, per the spec's `retry`):
the remote task itself is never started twice by a retry after it was accepted, because the send
returns as soon as the task exists. The whole call is bounded by the spec's `timeout`; when it
passes, the remote task is asked to cancel and the call ends `timeout`.

Outcomes: completed → the task's `output` artifact (its data part, or its text); failed and
rejected → failed with the remote message; canceled → cancelled. `input-required` (the remote
agent waits for a person, e.g. an approval) ends the call `failed` with a message naming the
remote task: the remote side's decision belongs to whoever serves it, and the calling run must
not hang on it. The answer of a remote agent is content from outside the platform: the result's
taint carries `remote:<name>`, so the caller treats it as untrusted.

Whether a task may be sent at all is the caller's to decide first, as a tool call with side
effects and egress is decided (`Services.call_remote_agent`, the tool executor's
`authorise_remote_task`); here the card may only send it to a host that was allowed: the
RemoteAgent's own (checked against the caller's `egress` by `validate`) or one the calling run's
`egress` lists."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from agent_platform._compile.plan import RemoteAgentPlan
from agent_platform._runtime.outcomes import Outcome, RunResult
from agent_platform._spec.common import Backoff
from agent_platform._spec.policy import ContextPolicy, endpoint_of

T = TypeVar("T")

REQUEST_TIMEOUT_S = 30.0  # one HTTP request; the whole call is bounded by the spec's timeout
POLL_FIRST_S = 0.05
POLL_MAX_S = 1.0


class RemoteCallFailed(Exception):
    """The remote agent could not be reached (after the retries) or answered nonsense."""


def _retryable(exc: BaseException) -> bool:
    import httpx
    from a2a.client.errors import A2AClientError, A2AClientTimeoutError

    if isinstance(exc, A2AClientTimeoutError):
        return True
    if not isinstance(exc, A2AClientError):
        return False
    cause = exc.__cause__
    if isinstance(cause, httpx.HTTPStatusError):
        return cause.response.status_code == 429 or cause.response.status_code >= 500
    return isinstance(cause, httpx.RequestError)


def backoff_delay(backoff: Backoff, failed_attempt: int) -> float:
    delay = min(backoff.max, backoff.initial * backoff.multiplier ** (failed_attempt - 1))
    if backoff.jitter == "full":
        return random.uniform(0, delay)
    if backoff.jitter == "equal":
        return delay / 2 + random.uniform(0, delay / 2)
    return delay


async def _with_retries(plan: RemoteAgentPlan, call: Callable[[], Awaitable[T]]) -> T:
    retry = plan.spec.retry
    for attempt in range(1, retry.max_attempts + 1):
        try:
            return await call()
        except Exception as exc:
            if attempt == retry.max_attempts or not _retryable(exc):
                raise RemoteCallFailed(f"{type(exc).__name__}: {exc}") from exc
            await asyncio.sleep(backoff_delay(retry.backoff, attempt))
    raise AssertionError("unreachable")


def _output_of(task: Any) -> Any:
    from a2a.helpers.proto_helpers import get_data_parts

    for artifact in task.artifacts:
        data = get_data_parts(artifact.parts)
        if data:
            return _whole_numbers(data[0])
        texts = [p.text for p in artifact.parts if p.HasField("text")]
        if texts:
            return "\n".join(texts)
    return None


def _status_text(task: Any) -> str:
    parts = task.status.message.parts if task.status.HasField("message") else []
    return "\n".join(p.text for p in parts if p.HasField("text")) or "(no message)"


def _whole_numbers(value: Any) -> Any:
    """Numbers in a data part are doubles: an integer output field must stay an integer."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


async def call_remote_agent(
    plan: RemoteAgentPlan,
    task: dict[str, Any],
    *,
    run_id: str,
    policy: ContextPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunResult:
    """Run `task` on the remote agent; a RunResult as a hand-off's (`run_id` is the sub-run's id
    here; the remote task id is in `details["remote_task_id"]`). Whether the task may be sent at
    all was decided before (`Services.call_remote_agent`); `policy`, the calling run's, bounds
    where the card may send it (`allowed_interfaces`)."""
    env = os.environ if environ is None else environ
    unit = f"RemoteAgent/{plan.name}"
    started = time.monotonic()
    details: dict[str, Any] = {"remote_url": plan.spec.url}
    taint = (f"remote:{plan.name}",)

    def result(outcome: Outcome, output: Any = None, error: str | None = None) -> RunResult:
        return RunResult(
            run_id,
            unit,
            outcome,
            output=output,
            error=error,
            duration_s=time.monotonic() - started,
            details=details,
            taint=taint,
        )

    headers = {}
    if plan.spec.auth is not None:
        token = env.get(plan.spec.auth.token_env)
        if not token:
            return result(
                Outcome.FAILED,
                error=f"{unit} sends the bearer token in ${plan.spec.auth.token_env}, which is not set here",
            )
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with asyncio.timeout(plan.spec.timeout):
            return await _call(plan, task, headers, details, result, policy)
    except TimeoutError:
        return result(
            Outcome.TIMEOUT,
            error=f"{unit} did not finish within {plan.spec.timeout:g}s"
            + (
                f" (remote task {details['remote_task_id']} was asked to cancel)"
                if "remote_task_id" in details
                else ""
            ),
        )
    except RemoteCallFailed as exc:
        return result(Outcome.FAILED, error=f"{unit} at {plan.spec.url}: {exc}")


async def _call(
    plan: RemoteAgentPlan,
    task: dict[str, Any],
    headers: dict[str, str],
    details: dict[str, Any],
    result: Callable[..., RunResult],
    policy: ContextPolicy | None,
) -> RunResult:
    import httpx
    from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
    from a2a.helpers.proto_helpers import new_data_part
    from a2a.types.a2a_pb2 import (
        CancelTaskRequest,
        GetTaskRequest,
        Message,
        Role,
        SendMessageConfiguration,
        SendMessageRequest,
        TaskState,
    )

    from agent_platform._compile.remote_cards import card_url

    async with httpx.AsyncClient(headers=headers, timeout=REQUEST_TIMEOUT_S) as http:
        where = card_url(plan.spec)
        card = await _with_retries(
            plan, lambda: A2ACardResolver(http, where, agent_card_path="").get_agent_card()
        )
        card, refused = allowed_interfaces(plan, card, policy)
        if not any(i.protocol_binding == "JSONRPC" for i in card.supported_interfaces):
            return result(
                Outcome.FAILED,
                error=f"the card at {where} names no JSON-RPC interface the task may be sent to"
                + (
                    f" ({', '.join(refused)}: neither the RemoteAgent's url nor listed in "
                    "untrusted_context.egress); the task was not sent"
                    if refused
                    else ""
                ),
            )
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=False, polling=True)).create(card)
        request = SendMessageRequest(
            message=Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[new_data_part(task)]),
            configuration=SendMessageConfiguration(return_immediately=True),
        )

        async def send() -> Any:
            answers = [answer async for answer in client.send_message(request)]
            if not answers or not answers[-1].HasField("task"):
                raise RemoteCallFailed("the remote agent answered with a message, not a task")
            return answers[-1].task

        current = await _with_retries(plan, send)
        details["remote_task_id"] = current.id
        reading = GetTaskRequest(id=current.id)

        def read() -> Awaitable[Any]:
            return client.get_task(reading)

        interval = POLL_FIRST_S
        final = {
            TaskState.TASK_STATE_COMPLETED,
            TaskState.TASK_STATE_FAILED,
            TaskState.TASK_STATE_CANCELED,
            TaskState.TASK_STATE_REJECTED,
            TaskState.TASK_STATE_INPUT_REQUIRED,
            TaskState.TASK_STATE_AUTH_REQUIRED,
        }
        try:
            while current.status.state not in final:
                await asyncio.sleep(interval)
                interval = min(interval * 2, POLL_MAX_S)
                current = await _with_retries(plan, read)
        except asyncio.CancelledError:
            # The call timed out or its run was cancelled: the remote task should not go on.
            await _cancel_quietly(client, CancelTaskRequest(id=current.id))
            raise
        state = current.status.state
        details["remote_state"] = TaskState.Name(state)
        if state == TaskState.TASK_STATE_COMPLETED:
            return result(Outcome.COMPLETED, output=_output_of(current))
        if state == TaskState.TASK_STATE_CANCELED:
            return result(Outcome.CANCELLED, error=f"the remote task {current.id} was cancelled")
        if state in (TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED):
            return result(
                Outcome.FAILED,
                error=f"the remote task {current.id} waits for input ({_status_text(current)}); "
                "a remote agent's approvals are decided where it is served",
            )
        what = "rejected the task" if state == TaskState.TASK_STATE_REJECTED else "failed"
        return result(Outcome.FAILED, error=f"the remote agent {what}: {_status_text(current)}")


def allowed_interfaces(
    plan: RemoteAgentPlan, card: Any, run_policy: ContextPolicy | None
) -> tuple[Any, list[str]]:
    """The card with only the interfaces a task may go to, and the URLs of those left out. The
    card is fetched at call time and names where tasks go: a card that changed since `plan`
    must not send the task to a host nobody allowed. An interface may be on the RemoteAgent's own
    hosts (its url and card url, checked against `egress` by `validate`) or on a host the calling
    run's `egress` lists (every rule of it, its callers' too)."""
    from a2a.types.a2a_pb2 import AgentCard

    kept: list[Any] = []
    refused: list[Any] = []
    for interface in card.supported_interfaces:
        endpoint = endpoint_of(interface.url)
        vetted = endpoint is not None and endpoint in plan.policy.endpoints
        listed = run_policy is not None and run_policy.refused_egress((endpoint,)) is None
        (kept if vetted or listed else refused).append(interface)
    if not refused:
        return card, []
    narrowed = AgentCard()
    narrowed.CopyFrom(card)
    del narrowed.supported_interfaces[:]
    narrowed.supported_interfaces.extend(kept)
    return narrowed, [i.url for i in refused]


async def _cancel_quietly(client: Any, request: Any) -> None:
    try:
        async with asyncio.timeout(5):
            await asyncio.shield(client.cancel_task(request))
    except Exception:  # best effort: the call is ending anyway
        return
