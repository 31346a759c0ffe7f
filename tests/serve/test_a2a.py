"""A2A on a real Ray Serve deployment on the embedded head, applied by the real `platform` console
script, driven by the real a2a-sdk client over HTTP: the public agent card, a message that
completes, inputs that are rejected with located errors, cancel, streaming status updates, and an
approval that pauses the task as `input-required` and resumes it to completion once the client
sends the decision, its side effect happening once."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.helpers.proto_helpers import get_data_parts, new_data_part, new_text_part
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError
from google.protobuf.json_format import MessageToDict
from tests.serve.test_http_api import free_port, platform
from tests.support.cli_env import isolated_env
from tests.test_approvals_local import PLUGIN, SPECS, final, send

pytestmark = pytest.mark.slow

TOKEN = "a2a-token-for-tests"

MORE_SPECS = """\
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: quick}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: slow}
spec: {provider: scripted, on_script_exhausted: synthesize, latency: 60s}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: greeter, description: Greets whoever it is told to.}
spec:
  model: quick
  instructions: Greet {{ inputs.who }}.
  inputs: {type: object, properties: {who: {type: string, minLength: 2}}, required: [who]}
  output: {type: object, properties: {greeting: {type: string}}, required: [greeting]}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: sleeper}
spec:
  model: slow
  instructions: Think for a long time.
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
---
apiVersion: agents.platform/v1
kind: Endpoint
metadata: {name: api}
spec:
  units: [greeter, sleeper, boss]
  auth: {token_env: TEST_API_TOKEN}
  port: PORT
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """The endpoint's URL, the project's root and the environment of its commands."""
    root = tmp_path_factory.mktemp("a2a")
    port = free_port()
    (root / "specs").mkdir()
    cpus = "  runtime: {resources: {num_cpus: 0.1}}\n"
    specs = SPECS.replace("  model: m\n", "  model: m\n" + cpus)
    more = (
        MORE_SPECS.replace("PORT", str(port))
        .replace("  model: quick\n", "  model: quick\n" + cpus)
        .replace("  model: slow\n", "  model: slow\n" + cpus)
    )
    (root / "specs" / "all.yaml").write_text(specs + more)
    (root / "mailplug.py").write_text(PLUGIN)
    delegate = {"action": {"action": "delegate:mailer", "task": {"to": "ana@example.com"}}}
    script = {
        "boss": [delegate, final("the mailer sent it")],
        "mailer": [send("ana@example.com"), final("sent")],
        "relay": [
            {"action": {"action": "delegate:greeter-a2a", "task": {"who": "Ada"}}},
            final("relayed"),
        ],
    }
    (root / "specs" / "script.json").write_text(json.dumps({"responses": script}))
    env = isolated_env(root)
    env["TEST_API_TOKEN"] = TOKEN
    try:
        applied = platform("apply", "specs", env=env, cwd=root)
        assert applied.returncode == 0, applied.stderr
        yield f"http://127.0.0.1:{port}", root, env
    finally:
        platform("down", env=env, cwd=root)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        yield client


async def a2a_client(
    http: httpx.AsyncClient, url: str, *, streaming: bool = False, polling: bool = False
) -> Client:
    factory = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming, polling=polling))
    return await factory.create_from_url(url)


def data_message(data: dict[str, Any], task_id: str = "") -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            message_id="m-" + json.dumps(data)[:40],
            role=Role.ROLE_USER,
            task_id=task_id,
            parts=[new_data_part(data)],
        )
    )


def text_message(text: str) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(message_id="t-" + text[:40], role=Role.ROLE_USER, parts=[new_text_part(text)])
    )


async def only_task(client: Client, request: SendMessageRequest) -> Task:
    answers: list[StreamResponse] = [answer async for answer in client.send_message(request)]
    assert len(answers) == 1 and answers[0].HasField("task"), answers
    return answers[0].task


async def test_the_card_is_public_and_describes_the_unit(served: tuple[str, Path, dict[str, str]]) -> None:
    url, _, _ = served
    async with httpx.AsyncClient(timeout=60) as anonymous:  # no token: the card says how to get in
        card = await A2ACardResolver(anonymous, f"{url}/a2a/greeter").get_agent_card()
        refused = await anonymous.post(
            f"{url}/a2a/greeter", json={"jsonrpc": "2.0", "id": 1, "method": "GetTask"}
        )
        assert refused.status_code == 401, "the JSON-RPC binding needs the token"
    assert card.name == "greeter" and card.description.startswith("Greets whoever it is told to.")
    assert [s.id for s in card.skills] == ["greeter"]
    assert card.capabilities.streaming is True
    assert [i.url for i in card.supported_interfaces] == [f"{url}/a2a/greeter"]
    assert card.supported_interfaces[0].protocol_binding == "JSONRPC"
    assert "text/plain" in card.default_input_modes, "its one string input takes a text part"
    (extension,) = card.capabilities.extensions
    params = MessageToDict(extension.params)
    assert set(params) == {"input_schema", "output_schema"}, params
    assert params["input_schema"]["required"][0] == "who"
    assert params["output_schema"]["properties"]["greeting"]["type"] == "string"
    assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
    assert list(card.security_requirements[0].schemes) == ["bearer"]


async def test_a_message_completes_its_task_and_the_task_is_the_run(
    served: tuple[str, Path, dict[str, str]], http: httpx.AsyncClient
) -> None:
    url, _, _ = served
    client = await a2a_client(http, f"{url}/a2a/greeter")
    task = await only_task(client, data_message({"who": "Ada"}))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, task
    (artifact,) = task.artifacts
    (output,) = get_data_parts(artifact.parts)
    assert isinstance(output["greeting"], str) and output["greeting"]
    again = await client.get_task(GetTaskRequest(id=task.id))
    assert again.status.state == TaskState.TASK_STATE_COMPLETED and again.artifacts == task.artifacts
    run = (await http.get(f"{url}/v1/runs/{task.id}")).json()
    assert run["status"] == "completed" and run["output"] == output, "the task id is the run id"
    by_text = await only_task(client, text_message("Grace"))
    assert by_text.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_data_parts(by_text.history[0].parts) == [{"who": "Grace"}], "the text filled its one input"


async def test_bad_inputs_are_rejected_with_located_errors(
    served: tuple[str, Path, dict[str, str]], http: httpx.AsyncClient
) -> None:
    url, _, _ = served
    client = await a2a_client(http, f"{url}/a2a/greeter")
    rejected = await only_task(client, data_message({"who": 7}))
    assert rejected.status.state == TaskState.TASK_STATE_REJECTED
    (details,) = get_data_parts(rejected.status.message.parts)
    assert [d["path"] for d in details["details"]] == ["/inputs/who"], details
    assert "invalid inputs" in rejected.status.message.parts[0].text
    short = await only_task(client, text_message("A"))  # minLength: 2
    assert short.status.state == TaskState.TASK_STATE_REJECTED
    sleeper = await a2a_client(http, f"{url}/a2a/sleeper")
    with pytest.raises(InvalidParamsError) as refused:
        await only_task(sleeper, text_message("wake up"))
    assert "no single string input" in refused.value.message
    assert refused.value.data == {
        "details": [{"path": "/message/parts/0/text", "message": refused.value.message}]
    }
    with pytest.raises(TaskNotFoundError):
        await client.get_task(GetTaskRequest(id="run-0000000000000000"))


async def test_cancel_a_task(served: tuple[str, Path, dict[str, str]], http: httpx.AsyncClient) -> None:
    url, _, _ = served
    client = await a2a_client(http, f"{url}/a2a/sleeper", polling=True)  # return at once
    task = await only_task(client, data_message({}))
    assert task.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING), task
    cancelled = await client.cancel_task(CancelTaskRequest(id=task.id))
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED, cancelled
    assert (await http.get(f"{url}/v1/runs/{task.id}")).json()["status"] == "cancelled"
    greeter = await a2a_client(http, f"{url}/a2a/greeter")
    with pytest.raises(TaskNotFoundError):  # a task of another unit is not this unit's
        await greeter.get_task(GetTaskRequest(id=task.id))


async def test_streaming_follows_the_run_to_its_end(
    served: tuple[str, Path, dict[str, str]], http: httpx.AsyncClient
) -> None:
    url, _, _ = served
    client = await a2a_client(http, f"{url}/a2a/greeter", streaming=True)
    events = [event async for event in client.send_message(data_message({"who": "Lin"}))]
    assert events[0].HasField("task") and events[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
    states = [e.status_update.status.state for e in events if e.HasField("status_update")]
    assert states[-1] == TaskState.TASK_STATE_COMPLETED, events
    assert len(states) == len(set(states)), "one update per change of state"
    (artifact,) = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    assert "greeting" in get_data_parts(artifact.parts)[0]
    task_id = events[0].task.id
    resubscribed = [event async for event in client.subscribe(SubscribeToTaskRequest(id=task_id))]
    assert len(resubscribed) == 1 and resubscribed[0].task.status.state == TaskState.TASK_STATE_COMPLETED


async def test_an_approval_is_input_required_and_the_decision_resumes_it(
    served: tuple[str, Path, dict[str, str]], http: httpx.AsyncClient
) -> None:
    url, root, _ = served
    client = await a2a_client(http, f"{url}/a2a/boss")
    paused = await only_task(client, data_message({}))
    assert paused.status.state == TaskState.TASK_STATE_INPUT_REQUIRED, paused
    text = paused.status.message.parts[0].text
    assert "send-email" in text and '"approve"' in text
    (waiting,) = get_data_parts(paused.status.message.parts)
    (call,) = waiting["approvals"]
    assert call["tool"] == "send-email" and call["arguments"]["to"] == "ana@example.com"
    assert not (root / "effects.db").exists(), "nothing was sent before a person said yes"
    with pytest.raises(InvalidParamsError) as unknown:
        await only_task(client, data_message({"approve": ["not-a-call"]}, task_id=paused.id))
    assert unknown.value.data["details"][0]["path"] == "/message/parts/0"

    resumed = await only_task(
        client, data_message({"approve": [call["call_key"][:10]], "by": "ana"}, task_id=paused.id)
    )
    assert resumed.id == paused.id
    assert resumed.status.state == TaskState.TASK_STATE_COMPLETED, resumed
    assert get_data_parts(resumed.artifacts[0].parts) == [{"answer": "the mailer sent it"}]
    with sqlite3.connect(root / "effects.db") as db:
        assert [v for (v,) in db.execute("SELECT value FROM effects WHERE kind = 'mail'")] == [
            "ana@example.com"
        ]
    with pytest.raises(InvalidParamsError) as again:
        await only_task(client, data_message({"approve": [call["call_key"]]}, task_id=paused.id))
    assert "not input-required" in again.value.message
    decided = (await http.get(f"{url}/v1/runs/{paused.id}/approvals")).json()["approvals"]
    assert [(a["decision"], a["decided_by"]) for a in decided] == [("approved", "ana")]


async def test_streaming_stops_at_input_required_and_a_text_deny_resumes_without_the_effect(
    served: tuple[str, Path, dict[str, str]], http: httpx.AsyncClient
) -> None:
    url, root, _ = served
    client = await a2a_client(http, f"{url}/a2a/boss", streaming=True)
    events = [event async for event in client.send_message(data_message({}))]
    task_id = events[0].task.id
    last = events[-1].status_update.status
    assert last.state == TaskState.TASK_STATE_INPUT_REQUIRED, events
    assert "send-email" in last.message.parts[0].text
    mails = mail_count(root)
    deny = SendMessageRequest(
        message=Message(message_id="no", role=Role.ROLE_USER, task_id=task_id, parts=[new_text_part("deny")])
    )
    resumed = [event async for event in client.send_message(deny)]
    states = [e.status_update.status.state for e in resumed if e.HasField("status_update")]
    assert states[-1] == TaskState.TASK_STATE_COMPLETED, resumed
    assert mail_count(root) == mails, "a denied call is not made"
    decided = (await http.get(f"{url}/v1/runs/{task_id}/approvals")).json()["approvals"]
    assert [(a["decision"], a["decided_by"]) for a in decided] == [("denied", "a2a")]


def mail_count(root: Path) -> int:
    if not (root / "effects.db").exists():
        return 0
    with sqlite3.connect(root / "effects.db") as db:
        return int(db.execute("SELECT count(*) FROM effects WHERE kind = 'mail'").fetchone()[0])


RELAY_SPECS = """\
apiVersion: agents.platform/v1
kind: RemoteAgent
metadata: {name: greeter-a2a, description: "The greeter, over A2A."}
spec:
  url: URL/a2a/greeter
  card: {name: greeter, skills: [greeter]}
  inputs: {type: object, properties: {who: {type: string}}, required: [who]}
  output: {type: object, properties: {greeting: {type: string}}, required: [greeting]}
  auth: {token_env: TEST_API_TOKEN}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: relay}
spec:
  model: m
  runtime: {resources: {num_cpus: 0.1}}
  instructions: Have the greeter greet Ada.
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
  delegates: [greeter-a2a]
  untrusted_context: {egress: [127.0.0.1]}
"""


def test_a_deployed_agent_delegates_to_a_unit_served_over_a2a(
    served: tuple[str, Path, dict[str, str]],
) -> None:
    """`apply` checks the RemoteAgent against the endpoint's live card; the relay's replica calls
    the greeter through the endpoint's A2A binding (a task, so a run of the greeter)."""
    url, root, env = served
    mismatched = RELAY_SPECS.replace("URL", url).replace("skills: [greeter]", "skills: [translate]")
    (root / "specs" / "relay.yaml").write_text(mismatched)
    refused = platform("apply", "specs", env=env, cwd=root)
    assert refused.returncode == 1 and "no skill 'translate'" in refused.stderr, refused.stderr
    assert "relay.yaml:6:" in refused.stderr, "located at the card's skills"
    (root / "specs" / "relay.yaml").write_text(RELAY_SPECS.replace("URL", url))
    applied = platform("apply", "specs", env=env, cwd=root)
    assert applied.returncode == 0, applied.stderr
    greeted = completed_greetings(url)
    ran = platform("run", "relay", "-o", "json", env=env, cwd=root)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    result = json.loads(ran.stdout)
    assert result["outcome"] == "completed" and result["output"] == {"answer": "relayed"}
    assert "delegate:greeter-a2a" in result["taint"], "the remote answer counted as untrusted"
    assert len(completed_greetings(url) - greeted) == 1, "one greeter run: the A2A task"


def completed_greetings(url: str) -> set[str]:
    runs = httpx.get(
        f"{url}/v1/runs",
        params={"unit": "greeter", "status": "completed", "limit": 1000},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    ).json()["runs"]
    return {r["run_id"] for r in runs}
