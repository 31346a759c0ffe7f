"""The Endpoint kind without a cluster: validation (located errors, unknown units with "did you
mean", conflicts on Ray Serve's one proxy, the token rule), the dependency of an endpoint on the
units it serves, its config (the token never travels, only its digest) and the OpenAPI
document generated from the units' schemas."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent_platform._compile import compile_specs
from agent_platform._compile.plan import SpecRef
from agent_platform._serve.config import EndpointConfigError
from agent_platform._serve.deploy import endpoint_configs
from agent_platform._serve.openapi import openapi_document
from agent_platform._validate import validate_paths

UNITS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: greeter}
spec:
  model: m
  instructions: Greet {{ inputs.who }}.
  inputs:
    type: object
    properties: {who: {$ref: "#/$defs/name"}}
    required: [who]
    $defs: {name: {type: string, minLength: 1}}
  output: {type: object, properties: {greeting: {type: string}}, required: [greeting]}
---
apiVersion: agents.platform/v1
kind: Supervisor
metadata: {name: triage}
spec:
  routes: {greet: {agent: greeter}}
"""


def check(tmp_path: Path, endpoints: str) -> list[str]:
    (tmp_path / "specs.yaml").write_text(UNITS + endpoints)
    report = validate_paths([tmp_path / "specs.yaml"])
    return [
        f"{d.location.line}:{d.location.column} {d.severity.value} {d.message}"
        for d in report.diagnostics.items
    ]


def test_an_endpoint_validates_with_located_errors(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        """\
---
apiVersion: agents.platform/v1
kind: Endpoint
metadata: {name: api}
spec:
  units: [greter, Agent/triage]
  auth: {}
  max_body: lots
""",
    )
    joined = "\n".join(problems)
    assert "30:9 error spec.auth: auth needs exactly one of token_env" in joined, joined
    assert "31:13 error spec.max_body: invalid size 'lots'" in joined, joined
    assert "29:11 error unknown agent, pipeline or supervisor 'greter' (did you mean 'greeter'?)" in joined
    assert "29:19 error no Agent named 'triage' ('triage' is a Supervisor: write Supervisor/triage)" in joined


def test_endpoints_share_one_proxy(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        """\
---
apiVersion: agents.platform/v1
kind: Endpoint
metadata: {name: a}
spec: {auth: {token_env: A_TOKEN}}
---
apiVersion: agents.platform/v1
kind: Endpoint
metadata: {name: b}
spec: {auth: {insecure: true}, port: 9000}
""",
    )
    assert any(
        "Endpoint 'b' listens on 127.0.0.1:9000 but Endpoint 'a' on 127.0.0.1:8000" in p for p in problems
    )
    assert any("route_prefix '/' is already served by Endpoint 'a'" in p for p in problems)
    assert any("warning Endpoint 'b' checks no token" in p for p in problems)


def test_an_endpoint_depends_on_its_units_and_carries_only_a_token_digest(tmp_path: Path) -> None:
    (tmp_path / "specs.yaml").write_text(
        UNITS
        + """\
---
apiVersion: agents.platform/v1
kind: Endpoint
metadata: {name: api}
spec: {auth: {token_env: API_TOKEN}, max_body: 2Ki}
"""
    )
    report = validate_paths([tmp_path / "specs.yaml"])
    assert report.ok, report.diagnostics.items
    plan = compile_specs(report.specs)
    assert plan.graph[SpecRef("Endpoint", "api")] == [
        SpecRef("Agent", "greeter"),
        SpecRef("Supervisor", "triage"),
    ]
    with pytest.raises(EndpointConfigError, match=r"\$API_TOKEN, which is not set"):
        endpoint_configs(report.specs, "ns", {})
    (config,) = endpoint_configs(report.specs, "ns", {"API_TOKEN": "zq-secret-9"})
    assert config.token_digest == hashlib.sha256(b"zq-secret-9").digest() and "zq-secret-9" not in repr(
        config
    )
    assert config.units == ("Agent/greeter", "Supervisor/triage") and config.max_body == 2048
    assert config.app_name == "platform-ns-api" and config.url == "http://127.0.0.1:8000"


def test_the_openapi_document_has_each_units_schemas(tmp_path: Path) -> None:
    (tmp_path / "specs.yaml").write_text(UNITS)
    report = validate_paths([tmp_path / "specs.yaml"])
    plan = compile_specs(report.specs)
    units = {
        "greeter": plan.units[SpecRef("Agent", "greeter")],
        "triage": plan.units[SpecRef("Supervisor", "triage")],
    }
    document = openapi_document(units, title="t")
    schemas = document["components"]["schemas"]
    # The unit's own $defs move to components, and its references follow them.
    assert schemas["Agent_greeter.Inputs"]["properties"]["who"] == {
        "$ref": "#/components/schemas/Agent_greeter.name"
    }
    assert schemas["Agent_greeter.name"] == {"type": "string", "minLength": 1}
    assert schemas["Agent_greeter.Run"]["properties"]["output"]["required"] == ["greeting"]
    tasks = schemas["Supervisor_triage.Inputs"]["properties"]["tasks"]["items"]
    assert tasks["properties"]["task_type"]["enum"] == ["greet"]
    body = document["paths"]["/v1/units/greeter/runs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["inputs"] == {"$ref": "#/components/schemas/Agent_greeter.Inputs"}

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(document):  # every reference resolves inside the document
        assert ref.startswith("#/components/schemas/") and ref.rpartition("/")[2] in schemas, ref
