"""The FastAPI application of an endpoint (built in each ingress replica, see ingress.py).

Every request passes `_Guard` first: the bearer token (compared in constant time), then the
body size (by Content-Length, and counted as it arrives for bodies without one). Every error is
`{"error": {"code", "message", "details"}}` (errors.py). Routes are under /v1; the health check
is the one route without a token."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_platform._compile.plan import AnyUnit
from agent_platform._runstore import (
    NoPendingApproval,
    RunAlreadyFinished,
    RunNotFound,
    RunRecord,
    RunStatus,
    RunStoreError,
    RunStoreUnavailable,
)
from agent_platform._serve.a2a_card import is_card_path
from agent_platform._serve.config import EndpointConfig
from agent_platform._serve.errors import STATUS_CODES, ApiError
from agent_platform._serve.events import add_event_routes
from agent_platform._serve.openapi import openapi_document
from agent_platform._serve.service import RunService

HEALTH_PATH = "/v1/healthz"
CANCEL_WAIT_S = 30.0


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def respond(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return _Json(payload, status_code=status, headers=headers)


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(error: ApiError) -> JSONResponse:
    return respond(error.body(), error.status, error.headers)


class _BodyTooLarge(Exception):
    pass


class _Guard:
    """Auth and body size, before routing: a request without the token learns nothing of the
    routes, and no route reads more than `max_body` bytes."""

    def __init__(self, app: ASGIApp, *, token_digest: bytes | None, max_body: int) -> None:
        self.app = app
        self.token_digest = token_digest
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        public = path == HEALTH_PATH or (scope.get("method") == "GET" and is_card_path(path))
        if self.token_digest is not None and not public and not self._authorized(scope):
            await error_response(
                ApiError(
                    401,
                    "unauthorized",
                    "this endpoint needs `Authorization: Bearer <token>` with its token",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            )(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await error_response(self._too_large())(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await error_response(self._too_large())(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        value = _header(scope, b"authorization") or ""
        scheme, _, token = value.partition(" ")
        presented = hashlib.sha256(token.strip().encode("utf-8")).digest()
        assert self.token_digest is not None
        # Digests of equal length compared in constant time: neither the token's length nor its
        # prefix shows in the time a refusal takes.
        return hmac.compare_digest(presented, self.token_digest) and scheme.lower() == "bearer"

    def _too_large(self) -> ApiError:
        return ApiError(413, "body_too_large", f"the request body is larger than {self.max_body} bytes")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def run_json(record: RunRecord, approvals: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The API's view of a run: the record, with the outcome, output and error of its result
    lifted to the top."""
    result = record.result if isinstance(record.result, dict) else None
    outcome = (result or {}).get("outcome")
    if outcome is None and record.status.finished:
        outcome = "cancelled" if record.status is RunStatus.CANCELLED else "failed"
    payload: dict[str, Any] = {
        "run_id": record.run_id,
        "unit": record.unit,
        "status": record.status.value,
        "outcome": outcome,
        "output": (result or {}).get("output"),
        "error": record.error or (result or {}).get("error"),
        "parent_run_id": record.parent_run_id,
        "attempt": record.attempt,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "result": result,
    }
    if approvals is not None:
        payload["approvals"] = approvals
    return payload


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise ApiError(
            422, "invalid_body", "the request needs a JSON body", [{"path": "", "message": "empty body"}]
        )
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"line {exc.lineno} column {exc.colno}: " if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(
            422, "invalid_json", f"the body is not JSON: {where}{exc}", [{"path": "", "message": str(exc)}]
        ) from None


def _wait_seconds(request: Request, config: EndpointConfig) -> float | None:
    wait = request.query_params.get("wait", "false").lower()
    if wait not in ("true", "false", "1", "0"):
        raise ApiError(
            422, "invalid_query", "wait is true or false", [{"path": "wait", "message": "not a boolean"}]
        )
    if wait in ("false", "0"):
        return None
    raw = request.query_params.get("timeout")
    if raw is None:
        return config.wait_timeout
    try:
        timeout = float(raw)
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise ApiError(
            422,
            "invalid_query",
            "timeout is a number of seconds above 0",
            [{"path": "timeout", "message": raw}],
        )
    return min(timeout, config.wait_timeout)


def build_app(
    config: EndpointConfig,
    units: dict[str, AnyUnit],
    service: RunService,
    descriptions: Mapping[str, str] | None = None,
) -> ASGIApp:
    """`units`: the served units by the name their routes use (`greeter`, or `Agent/greeter`
    where two kinds share a name); `descriptions`: their `metadata.description` by "Kind/name",
    for their A2A cards."""
    from agent_platform._deploy.decisions import DECISIONS, approval_row, decide, resume_on_deployment
    from agent_platform._runtime.engine import Runtime
    from agent_platform._runtime.inputs import InputError
    from agent_platform._runtime.supervisor import TaskError

    by_ref = {str(unit.ref): unit for unit in units.values()}
    document = openapi_document(units, title=f"Endpoint {config.name}", route_prefix=config.route_prefix)
    # FastAPI's own document knows nothing of the specs' schemas: ours replaces it.
    app = FastAPI(title=f"Endpoint {config.name}", openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        return error_response(ApiError(exc.status_code, code, message, headers=dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"path": "/".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        return error_response(ApiError(422, "invalid_request", "the request is invalid", details))

    @app.exception_handler(RunStoreUnavailable)
    async def _store_down(_: Request, exc: RunStoreUnavailable) -> JSONResponse:
        return error_response(ApiError(503, "unavailable", str(exc), headers={"Retry-After": "5"}))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        return error_response(ApiError(500, "internal", f"{type(exc).__name__}: {exc}"))

    def served(name: str) -> AnyUnit:
        unit = units.get(name) or by_ref.get(name)
        if unit is None:
            raise ApiError(
                404,
                "unit_not_found",
                f"this endpoint serves no unit {name!r} (it serves: {', '.join(units) or 'none'})",
            )
        return unit

    async def root_unit(record: RunRecord) -> str | None:
        """The unit of the top-level run of `record`'s tree (a hand-off's id extends its
        caller's: `run-…/mailer-1`)."""
        if record.parent_run_id is None:
            return record.unit
        root = await service.store.get_run(record.run_id.split("/", 1)[0])
        return root.unit if root is not None else None

    async def visible(record: RunRecord) -> RunRecord:
        """A run whose tree a unit this endpoint does not serve started is not shown (as if
        absent)."""
        if await root_unit(record) not in by_ref:
            raise ApiError(404, "run_not_found", f"there is no run {record.run_id!r}")
        return record

    @app.get(HEALTH_PATH)
    async def health() -> JSONResponse:
        return respond({"ok": True, "endpoint": config.name, "units": sorted(by_ref)})

    @app.get("/openapi.json")
    async def openapi() -> JSONResponse:
        return respond(document)

    @app.get("/v1/units")
    async def list_units() -> JSONResponse:
        from agent_platform._serve.openapi import unit_input_schema, unit_output_schema

        return respond(
            {
                "units": [
                    {
                        "name": name,
                        "ref": str(unit.ref),
                        "kind": unit.ref.kind,
                        "inputs": unit_input_schema(unit),
                        "output": unit_output_schema(unit),
                        "in_flight": service.in_flight(str(unit.ref)),
                    }
                    for name, unit in units.items()
                ]
            }
        )

    @app.post("/v1/units/{name:path}/runs")
    async def start_run(name: str, request: Request) -> JSONResponse:
        unit = served(name)
        wait = _wait_seconds(request, config)
        body = await _body(request)
        if not isinstance(body, dict):
            raise ApiError(
                422,
                "invalid_body",
                'the body is an object: {"inputs": {...}}',
                [{"path": "", "message": "not an object"}],
            )
        unknown = sorted(set(body) - {"inputs", "tenant"})
        if unknown:
            raise ApiError(
                422,
                "invalid_body",
                f'unknown field(s) {", ".join(unknown)}: the body is {{"inputs": {{...}}, "tenant": ...}}',
                [{"path": f"/{k}", "message": "unknown field"} for k in unknown],
            )
        inputs = body.get("inputs", {})
        tenant = body.get("tenant")
        if tenant is not None and (not isinstance(tenant, str) or not tenant):
            raise ApiError(
                422,
                "invalid_body",
                "tenant is a non-empty string",
                [{"path": "/tenant", "message": "not a string"}],
            )
        if not isinstance(inputs, dict):
            raise ApiError(
                422,
                "invalid_inputs",
                f"{unit.ref}: inputs must be a JSON object, got {type(inputs).__name__}",
                [{"path": "/inputs", "message": "not an object"}],
            )
        try:
            prepared = Runtime.prepare_inputs(unit, inputs)
        except InputError as exc:
            details = [{"path": "/inputs" + pointer, "message": message} for pointer, message in exc.problems]
            raise ApiError(
                422, "invalid_inputs", str(exc), details or [{"path": "/inputs", "message": str(exc)}]
            ) from None
        except TaskError as exc:
            raise ApiError(
                422, "invalid_inputs", str(exc), [{"path": "/inputs/tasks", "message": str(exc)}]
            ) from None
        record, settled = await service.start(str(unit.ref), prepared, tenant=tenant, wait=wait)
        location = f"{config.route_prefix.rstrip('/')}/v1/runs/{record.run_id}"
        return respond(run_json(record), 200 if settled else 202, {"Location": location})

    @app.get("/v1/runs")
    async def list_runs(request: Request) -> JSONResponse:
        params = request.query_params
        unknown = sorted(set(params) - {"status", "unit", "limit", "all"})
        if unknown:
            raise ApiError(
                422,
                "invalid_query",
                f"unknown parameter(s) {', '.join(unknown)}",
                [{"path": k, "message": "unknown"} for k in unknown],
            )
        status = None
        if "status" in params:
            try:
                status = RunStatus(params["status"])
            except ValueError:
                raise ApiError(
                    422,
                    "invalid_query",
                    f"status is one of {', '.join(s.value for s in RunStatus)}",
                    [{"path": "status", "message": params["status"]}],
                ) from None
        unit = str(served(params["unit"]).ref) if "unit" in params else None
        raw_limit = params.get("limit", "50")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            raise ApiError(
                422,
                "invalid_query",
                "limit is an integer from 1 to 1000",
                [{"path": "limit", "message": raw_limit}],
            )
        top_level = params.get("all", "false").lower() not in ("true", "1")
        records = await service.list(status=status, unit=unit, limit=int(raw_limit), top_level=top_level)
        units_of: dict[str, str | None] = {r.run_id: r.unit for r in records if r.parent_run_id is None}
        shown = []
        for record in records:
            root = record.run_id.split("/", 1)[0]
            if root not in units_of:  # a hand-off whose caller is not in this page
                units_of[root] = await root_unit(record)
            if units_of[root] in by_ref:
                shown.append(record)
        return respond({"runs": [run_json(r) for r in shown]})

    @app.post("/v1/runs/{run_id:path}/cancel")
    async def cancel_run(run_id: str) -> JSONResponse:
        await visible(await service.get(run_id))
        return respond(run_json(await service.cancel(run_id, wait=CANCEL_WAIT_S)))

    @app.get("/v1/runs/{run_id:path}/approvals")
    async def list_approvals(run_id: str) -> JSONResponse:
        await visible(await service.get(run_id))
        try:
            rows = [approval_row(a) for a in await service.store.approvals(run_id)]
        except RunNotFound:
            raise ApiError(404, "run_not_found", f"there is no run {run_id!r}") from None
        return respond({"approvals": rows})

    @app.post("/v1/runs/{run_id:path}/approvals/{call_key}")
    async def decide_call(run_id: str, call_key: str, request: Request) -> JSONResponse:
        await visible(await service.get(run_id))
        wait = _wait_seconds(request, config)
        body = await _body(request)
        if not isinstance(body, dict) or body.get("decision") not in DECISIONS:
            raise ApiError(
                422,
                "invalid_body",
                'the body is {"decision": "approve"} or {"decision": "deny"}',
                [{"path": "/decision", "message": "approve or deny"}],
            )
        unknown = sorted(set(body) - {"decision", "by"})
        by = body.get("by", "http")
        if unknown or not isinstance(by, str) or not by:
            raise ApiError(
                422,
                "invalid_body",
                'the body is {"decision": ..., "by": <who decides>}',
                [{"path": f"/{k}", "message": "unknown field"} for k in unknown]
                or [{"path": "/by", "message": "a non-empty string"}],
            )
        try:
            decided = await decide(
                service.store, run_id, DECISIONS[body["decision"]], by=by, call_key=call_key
            )
        except RunNotFound:
            raise ApiError(404, "run_not_found", f"there is no run {run_id!r}") from None
        except NoPendingApproval as exc:
            raise ApiError(409, "nothing_to_decide", str(exc)) from None
        except RunAlreadyFinished as exc:
            raise ApiError(409, "run_ended", str(exc)) from None
        except RunStoreError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        root = decided.root
        resumed = False
        if decided.resumable and not decided.local and root is not None:
            await resume_on_deployment(service.control(), root)
            resumed = True
        run = root
        if resumed and root is not None and wait is not None:
            run = await service.wait(root.run_id, wait)
        payload: dict[str, Any] = {
            "decided": [approval_row(a) for a in decided.report.decided],
            "undecided": [approval_row(a) for a in decided.report.undecided],
            "resumed": resumed,
            "run": run_json(run) if run is not None else None,
        }
        if decided.resumable and decided.local:
            payload["note"] = f"a local run: `platform resume {decided.report.root_run_id}` continues it"
        return respond(payload)

    # Before the catch-all below: `GET /v1/runs/{run_id}/events`, the run's events as SSE.
    add_event_routes(app, service, visible)

    @app.get("/v1/runs/{run_id:path}")
    async def get_run(run_id: str) -> JSONResponse:
        record = await visible(await service.get(run_id))
        approvals = None
        if record.status is RunStatus.WAITING_APPROVAL:
            approvals = [approval_row(a) for a in await service.store.approvals(run_id) if a.decision is None]
        return respond(run_json(record, approvals))

    from agent_platform._serve.a2a import mount_a2a

    mount_a2a(app, config, units, service, descriptions or {})
    return _Guard(app, token_digest=config.token_digest, max_body=config.max_body)
