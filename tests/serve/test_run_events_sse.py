"""Run events over Server-Sent Events on a real Ray Serve deployment on the embedded head, read
with a real SSE client (httpx-sse), and `platform run --follow` through the deployment: a
client reads part of a live run's stream, disconnects, reconnects with Last-Event-ID and gets
every event exactly once and in order; a run that pauses for approval streams its approval
request, closes, and after the approval a reconnect follows the resumed run to its end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from tests.serve.test_http_api import free_port, platform
from tests.support.cli_env import isolated_env
from tests.test_approvals_local import PLUGIN, SPECS, final, send

pytestmark = pytest.mark.slow

TOKEN = "events-token-for-tests"

ENDPOINT = """\
---
apiVersion: agents.platform/v1
kind: Endpoint
metadata: {name: api}
spec:
  units: [stepper, boss]
  auth: {token_env: TEST_API_TOKEN}
  port: PORT
"""


def step(n: int) -> dict[str, Any]:
    return {"action": {"action": "step", "arguments": {"n": n}}}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("events")
    port = free_port()
    (root / "specs").mkdir()
    # Each model call takes a moment, so a stream is read while its run is still going.
    specs = SPECS.replace(
        "spec: {provider: scripted, script: script.json, on_script_exhausted: error}",
        "spec: {provider: scripted, script: script.json, on_script_exhausted: error, latency: 300ms}",
    ).replace("  model: m\n", "  model: m\n  runtime: {resources: {num_cpus: 0.1}}\n")
    (root / "specs" / "all.yaml").write_text(specs + ENDPOINT.replace("PORT", str(port)))
    (root / "mailplug.py").write_text(PLUGIN)
    script = {
        "stepper": [step(1), step(2), step(3), final("stepped")],
        "boss": [{"action": {"action": "delegate:mailer", "task": {"to": "ana@example.com"}}}, final("done")],
        "mailer": [send("ana@example.com"), final("sent")],
    }
    (root / "specs" / "script.json").write_text(json.dumps({"responses": script}))
    env = isolated_env(root)
    env["TEST_API_TOKEN"] = TOKEN
    try:
        applied = platform("apply", "specs", env=env, cwd=root)
        assert applied.returncode == 0, applied.stderr
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
        ) as client:
            yield client, root, env
    finally:
        platform("down", env=env, cwd=root)


def read(
    client: httpx.Client,
    run_id: str,
    *,
    last: str | None = None,
    after: int | None = None,
    stop_after: int | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """(id, AG-UI event) of each message, until the server closes the stream or, with
    `stop_after`, after that many (then the client hangs up)."""
    headers = {"Last-Event-ID": last} if last is not None else {}
    got: list[tuple[int, dict[str, Any]]] = []
    params = {"after": str(after)} if after is not None else {}
    with connect_sse(client, "GET", f"/v1/runs/{run_id}/events", headers=headers, params=params) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for message in source.iter_sse():
            got.append((int(message.id), json.loads(message.data)))
            if stop_after is not None and len(got) >= stop_after:
                break
    return got


def test_a_stream_resumed_with_last_event_id_loses_and_repeats_nothing(
    api: tuple[httpx.Client, Path, dict[str, str]],
) -> None:
    client, _, _ = api
    started = client.post("/v1/units/stepper/runs", json={"inputs": {}})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    first = read(client, run_id, stop_after=3)  # then the client goes away mid-run
    assert client.get(f"/v1/runs/{run_id}").json()["status"] in ("pending", "running")
    rest = read(client, run_id, last=str(first[-1][0]))
    ids = [i for i, _ in first + rest]
    assert ids == list(range(1, len(ids) + 1)), ids  # every event once, in order
    events = [e for _, e in first + rest]
    assert events[0]["type"] == "RUN_STARTED" and events[0]["runId"] == run_id
    assert events[0]["threadId"] == run_id and events[0]["unit"] == "Agent/stepper"
    end = events[-1]
    assert end["type"] == "RUN_FINISHED" and end["runOutcome"] == "completed" and "outcome" not in end
    final_run = client.get(f"/v1/runs/{run_id}").json()
    assert final_run["status"] == "completed"
    assert end["usage"][0]["inputTokens"] == final_run["result"]["usage"]["input_tokens"] > 0
    kinds = [e["type"] if e["type"] != "CUSTOM" else e["name"] for e in events]
    assert kinds.count("STEP_STARTED") == kinds.count("STEP_FINISHED") == 4
    assert kinds.count("TOOL_CALL_START") == kinds.count("TOOL_CALL_END") == 3
    assert kinds.count("model_call.started") == kinds.count("model_call.finished") == 4
    assert all(e["outcome"] == "ok" for e in events if e["type"] == "TOOL_CALL_END")
    assert {e["toolCallName"] for e in events if e["type"] == "TOOL_CALL_START"} == {"step"}
    # `?after=` resumes the same way, and a stream of a finished run ends at once.
    assert [i for i, _ in read(client, run_id, after=ids[-3])] == ids[-2:]


def test_a_paused_run_streams_its_approval_request_and_resumes_after_the_approval(
    api: tuple[httpx.Client, Path, dict[str, str]],
) -> None:
    client, _, _ = api
    run_id = client.post("/v1/units/boss/runs", json={"inputs": {}}).json()["run_id"]
    paused = read(client, run_id)  # closes once the run waits for approval
    events = [e for _, e in paused]
    assert client.get(f"/v1/runs/{run_id}").json()["status"] == "waiting_approval"
    sub = f"{run_id}/mailer-1"
    started = [e for e in events if e["type"] == "RUN_STARTED"]
    assert [(e["runId"], e.get("parentRunId")) for e in started] == [(run_id, None), (sub, run_id)]
    [asked] = [e for e in events if e.get("name") == "approval.requested"]
    [call] = client.get(f"/v1/runs/{run_id}/approvals").json()["approvals"]
    assert asked["value"]["call_key"] == call["call_key"] and asked["value"]["tool"] == "send-email"
    assert asked["value"]["asking_run_id"] == sub
    [tool_end] = [e for e in events if e["type"] == "TOOL_CALL_END"]
    assert tool_end["outcome"] == "needs_approval" and tool_end["runId"] == sub
    [root_end] = [e for e in events if e["type"] == "RUN_FINISHED" and e["runId"] == run_id]
    assert root_end["outcome"]["type"] == "interrupt" and root_end["runOutcome"] == "needs_approval"

    decided = client.post(f"/v1/runs/{run_id}/approvals/{call['call_key']}", json={"decision": "approve"})
    assert decided.status_code == 200 and decided.json()["resumed"] is True, decided.text
    resumed = read(client, run_id, last=str(paused[-1][0]))
    ids = [i for i, _ in paused + resumed]
    assert ids == list(range(1, len(ids) + 1)), ids
    assert client.get(f"/v1/runs/{run_id}").json()["status"] == "completed"
    ends = [e for _, e in resumed if e["type"] == "RUN_FINISHED" and e["runId"] == run_id]
    assert [e["runOutcome"] for e in ends] == ["completed"]
    assert any(e["type"] == "TOOL_CALL_END" and e["outcome"] == "ok" for _, e in resumed)


def test_the_events_route_answers_errors_in_the_apis_shape(
    api: tuple[httpx.Client, Path, dict[str, str]],
) -> None:
    client, _, _ = api
    missing = client.get("/v1/runs/run-0000000000000000/events")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "run_not_found"
    run_id = client.post("/v1/units/stepper/runs", json={"inputs": {}}).json()["run_id"]
    bad = client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "x1"})
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["details"] == [
        {"path": "/headers/Last-Event-ID", "message": "a whole number >= 0"}
    ]
    anonymous = httpx.get(str(client.base_url).rstrip("/") + f"/v1/runs/{run_id}/events")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/v1/runs/{run_id}/events"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} == {"run_id", "Last-Event-ID", "after"}


def test_platform_run_follow_through_the_deployment(api: tuple[httpx.Client, Path, dict[str, str]]) -> None:
    _, root, env = api
    followed = platform("run", "stepper", "--follow", "-o", "json", env=env, cwd=root)
    assert followed.returncode == 0, followed.stderr
    result = json.loads(followed.stdout)
    assert result["outcome"] == "completed" and result["output"] == {"answer": "stepped"}
    tree = followed.stderr
    assert f"Agent/stepper  {result['run_id']}" in tree
    assert [line.strip("│├└─ ") for line in tree.splitlines() if "iteration" in line] == [
        f"iteration {n}  ok" for n in range(1, 5)
    ]
    assert tree.count("tool step  ok") == 3 and tree.count("chat m (scripted)  tokens") == 4
    waiting = platform("run", "boss", "--follow", env=env, cwd=root)
    assert waiting.returncode == 1, waiting.stderr
    paused = json.loads(waiting.stdout)
    assert paused["outcome"] == "needs_approval"
    assert f"Agent/mailer  {paused['run_id']}/mailer-1" in waiting.stderr
    assert "tool send-email  needs approval" in waiting.stderr
    assert f"platform approve {paused['run_id']}" in waiting.stderr
