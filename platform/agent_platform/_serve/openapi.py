"""The OpenAPI 3.1 document of an endpoint, generated from the units it serves: each unit's
`POST /v1/units/{name}/runs` takes that unit's input schema and answers runs whose `output` has
its output schema. Pure: built from the Plan, no FastAPI (whose own generator knows nothing of
the specs' schemas)."""

from __future__ import annotations

import copy
import re
from typing import Any

from agent_platform import __version__
from agent_platform._compile.plan import AgentLoopUnit, AnyUnit, PipelineUnit, SupervisorUnit

OPENAPI_VERSION = "3.1.0"

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable, for programs: not_found, invalid_inputs...",
                },
                "message": {"type": "string", "description": "For people."},
                "details": {
                    "description": "Located problems ({path, message}: path is a JSON pointer into "
                    "the request body) or an object.",
                    "anyOf": [{"type": "array", "items": {}}, {"type": "object"}],
                },
            },
        }
    },
}

_STATUS = ["pending", "running", "waiting_approval", "completed", "failed", "cancelled"]


def _run_schema(output: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["run_id", "unit", "status"],
        "properties": {
            "run_id": {"type": "string"},
            "unit": {"type": "string", "description": "Kind/name"},
            "status": {"type": "string", "enum": _STATUS},
            "outcome": {
                "type": ["string", "null"],
                "description": "How a settled run ended: completed, needs_approval, max_iterations, "
                "timeout, failed, cancelled...",
            },
            "output": output if output is not None else {},
            "error": {"type": ["string", "null"]},
            "parent_run_id": {"type": ["string", "null"]},
            "attempt": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "approvals": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Approval"},
                "description": "For a run waiting for approval: the calls it waits on.",
            },
            "result": {
                "type": ["object", "null"],
                "description": "The whole run result (usage, cost, tool calls, details) once settled.",
            },
        },
    }


_APPROVAL = {
    "type": "object",
    "properties": {
        "call_key": {"type": "string"},
        "run_id": {"type": "string", "description": "The run (or hand-off) that made the call."},
        "tool": {"type": ["string", "null"]},
        "arguments": {},
        "reasons": {},
        "via": {},
        "decision": {"type": "string", "enum": ["waiting", "approved", "denied"]},
        "decided_by": {"type": ["string", "null"]},
        "requested_at": {"type": ["string", "null"], "format": "date-time"},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


def _error_responses(*statuses: int) -> dict[str, Any]:
    reasons = {
        401: "No or a wrong bearer token.",
        404: "No such unit or run.",
        409: "The run cannot do that now (it already ended, nothing waits for a decision).",
        413: "The body is larger than the endpoint's max_body.",
        422: "The body or the inputs are invalid; details locate each problem.",
        429: "Too many runs of this unit in flight; retry after Retry-After seconds.",
    }
    return {
        str(status): {
            "description": reasons[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def unit_input_schema(unit: AnyUnit) -> dict[str, Any]:
    if isinstance(unit, AgentLoopUnit | PipelineUnit):
        return unit.input_schema or {"type": "object"}
    assert isinstance(unit, SupervisorUnit)
    return {
        "type": "object",
        "required": ["tasks"],
        "properties": {
            "tasks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["task_id", "task_type"],
                    "additionalProperties": False,
                    "properties": {
                        "task_id": {"type": "string", "minLength": 1},
                        "task_type": {"type": "string", "enum": sorted(r.task_type for r in unit.routes)},
                        "payload": {"type": "object"},
                        "priority": {"type": "integer"},
                    },
                },
            }
        },
    }


def unit_output_schema(unit: AnyUnit) -> dict[str, Any] | None:
    if isinstance(unit, AgentLoopUnit | PipelineUnit):
        return unit.output_schema
    return None


def _component_name(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", ref.replace("/", "_"))


def _hoist(schema: dict[str, Any], prefix: str, components: dict[str, Any]) -> dict[str, Any]:
    """The schema with its own `$defs` moved to components (their `#/$defs/x` references would
    otherwise point into the OpenAPI document's root)."""
    schema = copy.deepcopy(schema)
    defs = {**schema.pop("$defs", {}), **schema.pop("definitions", {})}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                for root in ("#/$defs/", "#/definitions/"):
                    if ref.startswith(root):
                        node = {**node, "$ref": f"#/components/schemas/{prefix}.{ref[len(root) :]}"}
            return {k: rewrite(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for name, sub in defs.items():
        components[f"{prefix}.{name}"] = rewrite(sub)
    result: dict[str, Any] = rewrite(schema)
    return result


def openapi_document(units: dict[str, AnyUnit], *, title: str, route_prefix: str = "/") -> dict[str, Any]:
    """`units`: the served units by the name their routes use."""
    components: dict[str, Any] = {
        "Error": _ERROR,
        "Approval": _APPROVAL,
        "Run": _run_schema(None),
        "RunList": {
            "type": "object",
            "properties": {"runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}}},
        },
    }
    paths: dict[str, Any] = {}
    for name, unit in units.items():
        ref = str(unit.ref)
        prefix = _component_name(ref)
        components[f"{prefix}.Inputs"] = _hoist(unit_input_schema(unit), prefix, components)
        output = unit_output_schema(unit)
        components[f"{prefix}.Run"] = _run_schema(
            _hoist(output, prefix, components) if output is not None else None
        )
        body = {
            "type": "object",
            "required": ["inputs"],
            "additionalProperties": False,
            "properties": {
                "inputs": {"$ref": f"#/components/schemas/{prefix}.Inputs"},
                "tenant": {"type": "string", "description": "Whose long-term memory the run uses."},
            },
        }
        run = {"$ref": f"#/components/schemas/{prefix}.Run"}
        paths[f"/v1/units/{name}/runs"] = {
            "post": {
                "operationId": f"run_{prefix}",
                "summary": f"Start a run of {ref}",
                "description": unit.reason,
                "tags": ["units"],
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "boolean", "default": False},
                        "description": "Answer when the run settles (completed, failed, waiting for "
                        "approval...), up to `timeout`; otherwise at once with 202.",
                    },
                    {
                        "name": "timeout",
                        "in": "query",
                        "schema": {"type": "number", "exclusiveMinimum": 0},
                        "description": "Seconds to wait (at most the endpoint's wait_timeout).",
                    },
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {
                    "200": _json(run, "The settled run (with ?wait=true)."),
                    "202": _json(run, "The run was started (or has not settled within the wait)."),
                    **_error_responses(401, 404, 413, 422, 429),
                },
            }
        }
    run_id = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
    any_run = {"$ref": "#/components/schemas/Run"}
    paths["/v1/units"] = {
        "get": {
            "operationId": "list_units",
            "summary": "The units this endpoint serves, with their schemas",
            "tags": ["units"],
            "responses": {"200": _json({"type": "object"}, "The units."), **_error_responses(401)},
        }
    }
    paths["/v1/runs"] = {
        "get": {
            "operationId": "list_runs",
            "summary": "Runs, newest first",
            "tags": ["runs"],
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": _STATUS}},
                {"name": "unit", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
                {
                    "name": "all",
                    "in": "query",
                    "schema": {"type": "boolean", "default": False},
                    "description": "Include hand-off sub-runs.",
                },
            ],
            "responses": {
                "200": _json({"$ref": "#/components/schemas/RunList"}, "The runs."),
                **_error_responses(401, 422),
            },
        }
    }
    paths["/v1/runs/{run_id}"] = {
        "get": {
            "operationId": "get_run",
            "summary": "A run",
            "tags": ["runs"],
            "parameters": [run_id],
            "responses": {"200": _json(any_run, "The run."), **_error_responses(401, 404)},
        }
    }
    paths["/v1/runs/{run_id}/events"] = {
        "get": {
            "operationId": "run_events",
            "summary": "The run's events as Server-Sent Events (AG-UI event shapes), live until it settles",
            "description": "Each message's `id` is the event's sequence number in the run's tree "
            "(sub-runs and hand-offs included) and its `data` an AG-UI event as JSON (RUN_STARTED, "
            "RUN_FINISHED, RUN_ERROR, STEP_STARTED, STEP_FINISHED, TOOL_CALL_START, TOOL_CALL_END, "
            "and CUSTOM for model calls, guardrail verdicts, approval requests and checkpoints). "
            "What is stored comes first, then events as they are stored; the stream closes once "
            "the run has finished or waits for approval. Reconnect with `Last-Event-ID` to resume.",
            "tags": ["runs"],
            "parameters": [
                run_id,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                    "description": "Resume after this event (what an EventSource sends when it reconnects).",
                },
                {
                    "name": "after",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0},
                    "description": "Resume after this event (when Last-Event-ID is not sent).",
                },
            ],
            "responses": {
                "200": {
                    "description": "The event stream.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_error_responses(401, 404, 422),
            },
        }
    }
    paths["/v1/runs/{run_id}/cancel"] = {
        "post": {
            "operationId": "cancel_run",
            "summary": "Cancel a run and its hand-offs",
            "tags": ["runs"],
            "parameters": [run_id],
            "responses": {"200": _json(any_run, "The cancelled run."), **_error_responses(401, 404, 409)},
        }
    }
    approvals = {
        "type": "object",
        "properties": {"approvals": {"type": "array", "items": {"$ref": "#/components/schemas/Approval"}}},
    }
    paths["/v1/runs/{run_id}/approvals"] = {
        "get": {
            "operationId": "list_approvals",
            "summary": "The calls the run's tree asked a person about, decided or waiting",
            "tags": ["approvals"],
            "parameters": [run_id],
            "responses": {"200": _json(approvals, "The calls."), **_error_responses(401, 404)},
        }
    }
    paths["/v1/runs/{run_id}/approvals/{call_key}"] = {
        "post": {
            "operationId": "decide_approval",
            "summary": "Approve or deny a call the run waits on; once none is left, the run resumes",
            "tags": ["approvals"],
            "parameters": [
                run_id,
                {
                    "name": "call_key",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The call's key, or a unique prefix of it.",
                },
                {"name": "wait", "in": "query", "schema": {"type": "boolean", "default": False}},
                {"name": "timeout", "in": "query", "schema": {"type": "number", "exclusiveMinimum": 0}},
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["decision"],
                            "additionalProperties": False,
                            "properties": {
                                "decision": {"type": "string", "enum": ["approve", "deny"]},
                                "by": {"type": "string", "description": "Who decides (recorded)."},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "decided": {"type": "array", "items": {"$ref": "#/components/schemas/Approval"}},
                            "undecided": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Approval"},
                            },
                            "resumed": {"type": "boolean"},
                            "run": any_run,
                        },
                    },
                    "What was decided, and the run (settled, with ?wait=true).",
                ),
                **_error_responses(401, 404, 409, 422),
            },
        }
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": __version__},
        "servers": [{"url": route_prefix.rstrip("/") or "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
