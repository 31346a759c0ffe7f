"""The HTTP API on a real Ray Serve deployment on the embedded head, through the real `platform`
console script (empty HOME, own state directory) and a real HTTP client: `apply` deploys the
Endpoint with the units; runs start waiting or detached, are listed, read and cancelled; bad
inputs are 422 with located errors; a wrong token is 401; an approval pauses a run and a POST
resumes it to completion, its side effect happening once."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.cli_env import PLATFORM, isolated_env
from tests.test_approvals_local import PLUGIN, SPECS, final, send

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-tests"

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
metadata: {name: greeter}
spec:
  model: quick
  instructions: Greet {{ inputs.who }}.
  inputs:
    type: object
    properties: {who: {type: string}, times: {type: integer, minimum: 1}}
    required: [who]
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
  max_body: 4Ki
  concurrency: 2
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def platform(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PLATFORM, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    (root / "specs").mkdir()
    specs = SPECS.replace("  model: m\n", "  model: m\n  runtime: {resources: {num_cpus: 0.1}}\n")
    more = (
        MORE_SPECS.replace("PORT", str(port))
        .replace("  model: quick\n", "  model: quick\n  runtime: {resources: {num_cpus: 0.1}}\n")
        .replace("  model: slow\n", "  model: slow\n  runtime: {resources: {num_cpus: 0.1}}\n")
    )
    (root / "specs" / "all.yaml").write_text(specs + more)
    (root / "mailplug.py").write_text(PLUGIN)
    # The boss delegates to the mailer, which asks before sending (each run replays the script).
    delegate = {"action": {"action": "delegate:mailer", "task": {"to": "ana@example.com"}}}
    script = {
        "boss": [delegate, final("the mailer sent it")],
        "mailer": [send("ana@example.com"), final("sent")],
    }
    (root / "specs" / "script.json").write_text(json.dumps({"responses": script}))
    env = isolated_env(root)
    try:
        unset = platform("apply", "specs", env=env, cwd=root)
        assert unset.returncode == 1 and "$TEST_API_TOKEN" in unset.stderr, unset.stderr
        assert not (root / "state" / "ray-head.json").exists(), "refused before anything started"
        env["TEST_API_TOKEN"] = TOKEN
        applied = platform("apply", "specs", env=env, cwd=root)
        assert applied.returncode == 0, applied.stderr
        assert (
            f"Endpoint/api serving Agent/greeter, Agent/sleeper, Agent/boss at http://127.0.0.1:{port}/v1"
            in applied.stderr
        )
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
        ) as client:
            yield client, root, env
    finally:
        platform("down", env=env, cwd=root)


def error_of(answer: httpx.Response) -> dict[str, Any]:
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return dict(body["error"])


def test_a_run_started_waiting_answers_with_its_result(
    api: tuple[httpx.Client, Path, dict[str, str]],
) -> None:
    client, _, _ = api
    answer = client.post("/v1/units/greeter/runs?wait=true", json={"inputs": {"who": "Ada"}})
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["status"] == "completed" and run["outcome"] == "completed"
    assert isinstance(run["output"]["greeting"], str)
    assert answer.headers["location"] == f"/v1/runs/{run['run_id']}"
    again = client.get(f"/v1/runs/{run['run_id']}")
    assert again.status_code == 200 and again.json()["output"] == run["output"]


def test_a_detached_run_is_202_then_completes(api: tuple[httpx.Client, Path, dict[str, str]]) -> None:
    client, _, _ = api
    answer = client.post("/v1/units/Agent/greeter/runs", json={"inputs": {"who": "Bob"}})
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["run_id"]
    assert answer.json()["status"] in ("pending", "running", "completed")
    deadline = time.monotonic() + 60
    while client.get(f"/v1/runs/{run_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "the detached run did not complete"
        time.sleep(0.2)
    listed = client.get("/v1/runs", params={"unit": "greeter", "status": "completed", "limit": 50})
    assert listed.status_code == 200
    assert run_id in [r["run_id"] for r in listed.json()["runs"]]
    assert all(r["unit"] == "Agent/greeter" and r["status"] == "completed" for r in listed.json()["runs"])


def test_inputs_that_fail_the_schema_are_422_with_located_errors(
    api: tuple[httpx.Client, Path, dict[str, str]],
) -> None:
    client, _, _ = api
    answer = client.post("/v1/units/greeter/runs", json={"inputs": {"who": 7, "times": 0}})
    assert answer.status_code == 422
    error = error_of(answer)
    assert error["code"] == "invalid_inputs"
    paths = sorted(d["path"] for d in error["details"])
    assert paths == ["/inputs/times", "/inputs/who"], error
    missing = error_of(client.post("/v1/units/greeter/runs", json={"inputs": {}}))
    assert missing["code"] == "invalid_inputs" and missing["details"] == [
        {"path": "/inputs", "message": '"who" is a required property'}
    ]
    assert error_of(client.post("/v1/units/greeter/runs", content=b"{nope"))["code"] == "invalid_json"
    too_big = client.post("/v1/units/greeter/runs", json={"inputs": {"who": "x" * 5000}})
    assert too_big.status_code == 413 and error_of(too_big)["code"] == "body_too_large"


def test_auth_and_unknown_things(api: tuple[httpx.Client, Path, dict[str, str]]) -> None:
    client, _, _ = api
    base = str(client.base_url)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        refused = httpx.post(f"{base}/v1/units/greeter/runs", json={"inputs": {"who": "x"}}, headers=headers)
        assert refused.status_code == 401 and error_of(refused)["code"] == "unauthorized"
        assert refused.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{base}/v1/healthz").status_code == 200, "the health check needs no token"
    assert error_of(client.get("/v1/runs/run-0000000000000000"))["code"] == "run_not_found"
    assert client.get("/v1/runs/run-0000000000000000").status_code == 404
    unknown = client.post("/v1/units/mailer/runs", json={"inputs": {}})
    assert unknown.status_code == 404 and "serves: greeter, sleeper, boss" in error_of(unknown)["message"]
    assert error_of(client.get("/v1/nothing"))["code"] == "not_found"
    assert error_of(client.get("/v1/runs", params={"status": "done"}))["code"] == "invalid_query"


def test_openapi_has_each_units_schemas(api: tuple[httpx.Client, Path, dict[str, str]]) -> None:
    client, _, _ = api
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    inputs = document["components"]["schemas"]["Agent_greeter.Inputs"]
    assert inputs["required"] == ["who"] and inputs["properties"]["times"]["minimum"] == 1
    run = document["components"]["schemas"]["Agent_greeter.Run"]
    assert run["properties"]["output"]["required"] == ["greeting"]
    post = document["paths"]["/v1/units/greeter/runs"]["post"]
    assert set(post["responses"]) >= {"200", "202", "401", "413", "422", "429"}
    assert {"/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/cancel"} <= set(document["paths"])


def test_cancel_and_the_concurrency_limit(api: tuple[httpx.Client, Path, dict[str, str]]) -> None:
    client, _, _ = api
    first = client.post("/v1/units/sleeper/runs", json={"inputs": {}})
    second = client.post("/v1/units/sleeper/runs", json={"inputs": {}})
    assert first.status_code == second.status_code == 202
    over = client.post("/v1/units/sleeper/runs", json={"inputs": {}})
    assert over.status_code == 429 and over.headers["retry-after"] == "1"
    assert error_of(over)["code"] == "too_many_runs"
    for started in (first, second):
        run_id = started.json()["run_id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/runs/{run_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        cancelled = client.post(f"/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/v1/runs/{first.json()['run_id']}/cancel")
    assert again.status_code == 409 and error_of(again)["code"] == "run_ended"
    deadline = time.monotonic() + 30
    while (third := client.post("/v1/units/sleeper/runs", json={"inputs": {}})).status_code == 429:
        assert time.monotonic() < deadline, "the slots were not freed by the cancellations"
        time.sleep(0.2)
    assert third.status_code == 202
    assert client.post(f"/v1/runs/{third.json()['run_id']}/cancel").status_code == 200


def test_an_approval_pauses_a_run_and_a_post_resumes_it(
    api: tuple[httpx.Client, Path, dict[str, str]],
) -> None:
    client, root, _ = api
    paused = client.post("/v1/units/boss/runs?wait=true", json={"inputs": {}})
    assert paused.status_code == 200, paused.text
    run = paused.json()
    assert run["status"] == "waiting_approval" and run["outcome"] == "needs_approval"
    run_id = run["run_id"]
    shown = client.get(f"/v1/runs/{run_id}").json()
    assert [a["tool"] for a in shown["approvals"]] == ["send-email"]
    listed = client.get(f"/v1/runs/{run_id}/approvals").json()["approvals"]
    assert len(listed) == 1 and listed[0]["decision"] == "waiting"
    call = listed[0]["call_key"]
    waiting = client.get("/v1/runs", params={"status": "waiting_approval", "all": "true"}).json()["runs"]
    assert {r["run_id"] for r in waiting} == {run_id, f"{run_id}/mailer-1"}, waiting
    asked_by = client.get(f"/v1/runs/{listed[0]['run_id']}")  # the hand-off that made the call
    assert asked_by.status_code == 200 and asked_by.json()["parent_run_id"] == run_id, asked_by.text
    assert asked_by.json()["unit"] == "Agent/mailer" and asked_by.json()["status"] == "waiting_approval"
    assert not (root / "effects.db").exists(), "nothing was sent before a person said yes"
    bad = client.post(f"/v1/runs/{run_id}/approvals/{call}", json={"decision": "maybe"})
    assert bad.status_code == 422 and error_of(bad)["details"][0]["path"] == "/decision"

    decided = client.post(
        f"/v1/runs/{run_id}/approvals/{call[:8]}?wait=true", json={"decision": "approve", "by": "ana"}
    )
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["resumed"] is True and [d["decided_by"] for d in body["decided"]] == ["ana"]
    assert body["run"]["status"] == "completed", body
    assert body["run"]["output"] == {"answer": "the mailer sent it"}
    import sqlite3

    with sqlite3.connect(root / "effects.db") as db:
        assert [v for (v,) in db.execute("SELECT value FROM effects WHERE kind = 'mail'")] == [
            "ana@example.com"
        ]
    twice = client.post(f"/v1/runs/{run_id}/approvals/{call}", json={"decision": "approve"})
    assert twice.status_code == 409, twice.text


DEV_SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: quick}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: greeter}
spec:
  model: quick
  instructions: Greet {{ inputs.who }}.
  inputs: {type: object, properties: {who: {type: string}}, required: [who]}
  output: {type: object, properties: {greeting: {type: string}}, required: [greeting]}
---
apiVersion: agents.platform/v1
kind: Endpoint
metadata: {name: local}
spec: {units: [greeter], auth: {insecure: true}, route_prefix: /dev, port: PORT}
"""


def test_platform_serve_api_serves_the_local_deployment_until_stopped(
    api: tuple[httpx.Client, Path, dict[str, str]],
) -> None:
    client, root, env = api
    port = str(client.base_url).rsplit(":", 1)[1]
    (root / "devspecs").mkdir(exist_ok=True)
    (root / "devspecs" / "dev.yaml").write_text(DEV_SPECS.replace("PORT", port))
    dev = f"http://127.0.0.1:{port}/dev"
    served = subprocess.Popen(
        [PLATFORM, "serve", "--api", "-s", "devspecs"],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert served.poll() is None, served.communicate()[1]
            with_health = httpx.get(f"{dev}/v1/healthz", timeout=5)
            if with_health.status_code == 200:
                break
            assert time.monotonic() < deadline, "platform serve --api did not come up"
            time.sleep(0.5)
        ran = httpx.post(f"{dev}/v1/units/greeter/runs?wait=true", json={"inputs": {"who": "Cy"}}, timeout=60)
        assert ran.status_code == 200 and ran.json()["status"] == "completed", ran.text
        assert client.get(f"/v1/runs/{ran.json()['run_id']}").status_code == 200, (
            "one run store, one deployment"
        )
    finally:
        served.send_signal(signal.SIGINT)
        _, err = served.communicate(timeout=60)
    assert served.returncode == 0, err
    assert "Endpoint/local serving Agent/greeter at " in err and "platform serve: stopped" in err
    # Removed when it stops: the path now falls to the applied endpoint under `/`, where it is
    # no health check (and so needs the token).
    assert httpx.get(f"{dev}/v1/healthz", timeout=5).status_code == 401
    assert client.get("/v1/healthz").status_code == 200, "the applied endpoint is left alone"


def test_deleting_the_endpoint_removes_it(api: tuple[httpx.Client, Path, dict[str, str]]) -> None:
    client, root, env = api
    deleted = platform("delete", "Endpoint/api", env=env, cwd=root)
    assert deleted.returncode == 0 and "Endpoint/api deleted" in deleted.stdout, deleted.stderr
    deadline = time.monotonic() + 60
    while client.get("/v1/healthz").status_code == 200:
        assert time.monotonic() < deadline, "the endpoint still answers"
        time.sleep(0.5)
    listed = platform("get", "endpoints", env=env, cwd=root)
    assert "api" not in listed.stdout
