"""An `http:` tool: the request its spec's templates describe, sent with httpx. Where the request
may go, how values are encoded into the url and which headers are credentials are in
`agent_platform._runtime.tools.http`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agent_platform._runtime.tools.arguments import (
    ArgumentsNotSerializable,
    SchemaCheck,
    ToolArguments,
    canonical_json,
    model_from_schema,
)
from agent_platform._runtime.tools.errors import (
    HttpStatusError,
    ToolArgumentsInvalid,
    ToolTimeout,
    ToolUnavailable,
)
from agent_platform._runtime.tools.interface import Tool
from agent_platform._spec.kinds import HttpImplementation

if TYPE_CHECKING:
    import httpx


class HttpTool(Tool):
    """An `http:` tool: the url (after its fixed origin), headers, query and body are Jinja2
    templates (bounded sandbox, strict) over `args` (the validated arguments), `env` (only the
    environment variables the templates name) and `idempotency_key` (the call's key in `key` mode,
    else empty: send it as an `Idempotency-Key` header so the server can deduplicate too).

    Where the request may go, how values are encoded into the url and which headers are
    credentials: see `agent_platform._runtime.tools.http`. A value that would be a '.', '..' or
    empty path segment fails validation (the model can fix it; nothing was sent). Without `body`,
    POST/PUT/PATCH send the arguments as JSON and GET/DELETE send no body. A JSON response is
    returned parsed; any other as text. HTTP 429 -> `rate_limit`, 408 -> `timeout`, 5xx ->
    `server_error`, transport errors -> `connection`, timeouts -> `ToolTimeout`; other 4xx and
    refused redirects fail without a retry category.
    """

    def __init__(
        self,
        name: str,
        description: str,
        http: HttpImplementation,
        *,
        input_schema: dict[str, Any] | None = None,
        timeout: float = 30.0,
        environ: Mapping[str, str] | None = None,
        client: Callable[[], httpx.AsyncClient] | httpx.AsyncClient | None = None,
    ) -> None:
        from agent_platform._runtime.tools.http import HttpRequestTemplates

        self.name = name
        self.description = description
        self.http = http
        self.timeout = timeout
        self._environ = environ if environ is not None else os.environ
        self._client_source = client
        self._own_client: httpx.AsyncClient | None = None
        try:
            self._request = HttpRequestTemplates(http)
        except Exception as exc:
            raise ValueError(f"http tool '{name}': invalid template: {exc}") from exc
        self.env_names: set[str] = self._request.env_names
        self._schema = input_schema if input_schema is not None else {"type": "object"}
        self._check = SchemaCheck(self._schema)
        self._model: type[BaseModel] | None = None

    @property
    def arguments_model(self) -> type[BaseModel]:
        if self._model is None:
            self._model = model_from_schema(self.name, self._schema)
        return self._model

    def json_schema(self) -> dict[str, Any]:
        return self._schema

    def validate(self, raw: Mapping[str, Any]) -> ToolArguments:
        if not isinstance(raw, Mapping):
            raise ToolArgumentsInvalid(self.name, [f"arguments must be an object, got {type(raw).__name__}"])
        data = dict(raw)
        try:
            errors = self._check.errors(data)
        except ValueError as exc:
            raise ToolArgumentsInvalid(self.name, [f"arguments must be JSON data: {exc}"]) from None
        if errors:
            raise ToolArgumentsInvalid(self.name, errors)
        try:
            canonical_json(data)
        except ArgumentsNotSerializable as exc:
            raise ToolArgumentsInvalid(self.name, [f"arguments must be JSON data: {exc}"]) from None
        # The url is rendered here as well as when sending, so that a value that would change its
        # path is the model's to fix, before any approval, cache or idempotency record. (The key is
        # not known yet: a stand-in of its form, 64 hex digits, takes its place.)
        self._url(self._context(data, IDEMPOTENCY_KEY_STAND_IN))
        return ToolArguments(data, jsonable=data)

    def _client(self) -> httpx.AsyncClient:
        source = self._client_source
        if source is None:
            if self._own_client is None:
                import httpx

                self._own_client = httpx.AsyncClient()
            return self._own_client
        return source() if callable(source) else source

    def _environment_values(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for name in sorted(self.env_names):
            value = self._environ.get(name)
            if value is None:
                raise ToolUnavailable(self.name, f"environment variable {name} is not set")
            values[name] = value
        return values

    def _context(self, args: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        return {"args": args, "env": self._environment_values(), "idempotency_key": idempotency_key}

    def _url(self, context: Mapping[str, Any]) -> str:
        from agent_platform._runtime.rendering import TemplateRenderError
        from agent_platform._runtime.tools.http import UnsafeUrlValue

        try:
            return self._request.url(context)
        except UnsafeUrlValue as exc:
            raise ToolArgumentsInvalid(self.name, [str(exc)]) from None
        except TemplateRenderError as exc:
            raise ToolUnavailable(self.name, f"cannot render the request: {exc}") from None

    async def invoke(self, arguments: ToolArguments) -> Any:
        import httpx

        from agent_platform._runtime.rendering import TemplateRenderError
        from agent_platform._runtime.tools.idempotency import current_idempotency_key

        context = self._context(arguments.kwargs, current_idempotency_key() or "")
        url = self._url(context)
        try:
            headers = self._request.headers(context)
            params = self._request.query(context)
            content: str | None = None
            json_body: Any = None
            rendered = self._request.body(context)
            if isinstance(rendered, str):
                content = rendered
                if not any(k.lower() == "content-type" for k in headers):
                    headers["Content-Type"] = "text/plain; charset=utf-8"
            elif rendered is not None:
                json_body = rendered
            elif self.http.body is None and self.http.method in ("POST", "PUT", "PATCH"):
                json_body = arguments.kwargs
        except TemplateRenderError as exc:
            raise ToolUnavailable(self.name, f"cannot render the request: {exc}") from None
        client = self._client()
        try:
            request = client.build_request(
                self.http.method,
                url,
                headers=headers,
                params=params or None,
                content=content,
                json=json_body,
                timeout=self.timeout,
            )
            response = await self._request.send(client, request)
        except httpx.TimeoutException as exc:
            raise ToolTimeout(self.name, self.timeout) from exc
        where = f"{self.http.method} {response.request.url.host}{response.request.url.path}"
        if response.status_code >= 400:
            text = response.text
            if len(text) > 300:
                text = text[:299] + "…"
            raise HttpStatusError(response.status_code, f"HTTP {response.status_code} from {where}: {text}")
        if not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            try:
                return response.json()
            except ValueError:
                pass
        return response.text

    async def aclose(self) -> None:
        if self._own_client is not None:
            await self._own_client.aclose()
            self._own_client = None

    def __repr__(self) -> str:
        return f"HttpTool({self.name!r}, {self.http.method} {self.http.url})"


IDEMPOTENCY_KEY_STAND_IN = "0" * 64
