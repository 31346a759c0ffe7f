"""Tools the runtime can call: Python functions (plugins), HTTP endpoints, and MCP tools (`mcp.py`).

A Python tool's argument schema is *derived by pydantic* from the function's signature: every
parameter becomes a field of a generated arguments model (`pydantic.create_model`), so nested
models, `list[Model]`, TypedDicts, dataclasses, dicts, enums, `Literal`, `Optional`, defaults and
`Annotated[..., Field(...)]` constraints all work, and the JSON Schema shown to the model is the
model's own `model_json_schema()`. Per-parameter descriptions come from the Google-style `Args:`
section of the docstring (parsed with `docstring_parser`); an explicit `Field(description=...)`
wins over the docstring.

Arguments are validated before any call: `Tool.validate(raw)` returns `ToolArguments` or raises
`ToolArgumentsInvalid` with the validator's messages, for the model to fix. When a Tool spec also
declares `input_schema`, the raw arguments must satisfy *both* that schema (checked with
`jsonschema_rs`) and the derived model.

    @tool                                  # bare
    def lookup(city: str, units: Literal["metric", "imperial"] = "metric") -> Weather: ...

    @tool(name="add", inline=True)         # trivial, non-blocking, pure CPU: runs inline
    def add(a: int, b: int) -> int: ...

Sync functions run on the tool threads (`threads.run_sync_tool`) so they never block the event loop.
A thread hop costs more than a trivial function, so a function marked `@tool(inline=True)` runs
directly on the event loop instead: only for trivial, non-blocking, CPU-only functions (much
cheaper than a thread hop; no I/O, no locks, no sleeps). An inline function cannot be
interrupted by the tool's timeout. Async functions always run on the loop.

`@tool` only marks the function (it stays a plain function, callable and typed as before); the
arguments model is built when a `ToolRegistry` registers it. Undecorated functions can be
registered too: the plugins in `plugins/` are plain typed functions.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import re
import threading
import typing
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticSerializationError

from agent_platform.plugin_loader import import_plugin_module
from agent_platform.runtime.tools.errors import (
    HttpStatusError,
    ToolArgumentsInvalid,
    ToolTimeout,
    ToolUnavailable,
)
from agent_platform.runtime.tools.threads import run_sync_tool
from agent_platform.spec.kinds import HttpImplementation, ToolSpec

if TYPE_CHECKING:
    import httpx
    from jinja2.sandbox import SandboxedEnvironment

    from agent_platform.compile.plan import ToolBinding
    from agent_platform.runtime.tools.mcp import McpServerPool

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what the Messages / OpenAI APIs accept
_MAX_ERROR_INPUT = 80

# --- the decorator ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolOptions:
    name: str | None = None
    description: str | None = None
    inline: bool = False


TOOL_OPTIONS_ATTR = "__tool_options__"


@overload
def tool(func: F, /) -> F: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, inline: bool = False
) -> Callable[[F], F]: ...


def tool(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    inline: bool = False,
) -> F | Callable[[F], F]:
    """Mark a function as a tool: `@tool` or `@tool(name=..., description=..., inline=True)`.

    `name` defaults to the function's name, `description` to its docstring (without the `Args:`
    section). `inline=True` runs a *sync* function on the event loop instead of a worker thread
    (see the module docstring: only for trivial, non-blocking functions).
    """
    options = ToolOptions(name=name, description=description, inline=inline)

    def mark(target: F) -> F:
        if inline and _is_async_callable(target):
            raise TypeError(f"@tool(inline=True) applies to sync functions; {target!r} is async")
        setattr(target, TOOL_OPTIONS_ATTR, options)
        return target

    return mark(func) if func is not None else mark


def tool_options(func: Any) -> ToolOptions:
    options = getattr(func, TOOL_OPTIONS_ATTR, None)
    return options if isinstance(options, ToolOptions) else ToolOptions()


# --- validated arguments ----------------------------------------------------------------------


class ArgumentsNotSerializable(ValueError):
    """The validated arguments have no canonical JSON form (arbitrary objects, NaN, ...)."""


class ToolArguments:
    """Arguments that passed validation: the call's keyword arguments, the validated model (for
    Python tools) and, on demand, their canonical JSON form (for cache and idempotency keys)."""

    __slots__ = ("_jsonable", "args", "kwargs", "model")

    def __init__(
        self,
        kwargs: dict[str, Any],
        *,
        args: tuple[Any, ...] = (),
        model: BaseModel | None = None,
        jsonable: dict[str, Any] | None = None,
    ) -> None:
        self.kwargs = kwargs
        self.args = args
        self.model = model
        self._jsonable = jsonable

    def jsonable(self) -> dict[str, Any]:
        """The arguments as JSON data (`model_dump(mode="json")` of the validated model): enums
        become values, tuples lists, datetimes ISO strings, nested models dicts. Raises
        `ArgumentsNotSerializable` when that is impossible."""
        if self._jsonable is None:
            if self.model is None:
                raise ArgumentsNotSerializable("no arguments model")
            try:
                data = self.model.model_dump(mode="json", by_alias=True)
            except (PydanticSerializationError, ValueError, TypeError) as exc:
                raise ArgumentsNotSerializable(str(exc)) from exc
            self._jsonable = data
        return self._jsonable

    def canonical_json(self) -> str:
        """Canonical JSON text: sorted keys, no whitespace, no NaN/Infinity."""
        return canonical_json(self.jsonable())

    def __repr__(self) -> str:
        return f"ToolArguments({self.kwargs!r})"


def canonical_json(data: Any) -> str:
    try:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ArgumentsNotSerializable(str(exc)) from exc


# --- the tool interface -----------------------------------------------------------------------


class Tool(ABC):
    """Something the executor can call. `validate` never calls anything; `invoke` does the work
    and returns the raw result (the executor turns it into JSON data and enforces timeout,
    retries, breaker and idempotency)."""

    name: str
    description: str
    #: True when `invoke` runs synchronously on the event loop (an inline sync function): the
    #: executor then skips the timeout, which could not interrupt it anyway.
    runs_inline: bool = False

    @abstractmethod
    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the arguments, as shown to the model."""

    @property
    @abstractmethod
    def arguments_model(self) -> type[BaseModel]:
        """A pydantic model of the arguments (for structured-output response models)."""

    @abstractmethod
    def validate(self, raw: Mapping[str, Any]) -> ToolArguments:
        """Validated arguments, or `ToolArgumentsInvalid`."""

    @abstractmethod
    async def invoke(self, arguments: ToolArguments) -> Any:
        """Run the tool once."""

    def with_spec(self, name: str, spec: ToolSpec) -> Tool:
        """This tool as declared by a Tool spec (its name, description and input_schema)."""
        return self

    async def aclose(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        """`{name, description, input_schema}`: the tool as offered to a model."""
        return {"name": self.name, "description": self.description, "input_schema": self.json_schema()}


def _format_pydantic_errors(exc: ValidationError) -> list[str]:
    messages = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        text = f"{loc}: {error['msg']}"
        if error["type"] not in ("missing", "extra_forbidden"):
            shown = repr(error.get("input"))
            if len(shown) > _MAX_ERROR_INPUT:
                shown = shown[: _MAX_ERROR_INPUT - 1] + "…"
            text += f" (got {shown})"
        messages.append(text)
    return messages


class _SchemaCheck:
    """A declared JSON Schema, compiled once with jsonschema_rs."""

    __slots__ = ("schema", "validator")

    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema_rs

        self.schema = schema
        try:
            self.validator = jsonschema_rs.validator_for(schema)
        except Exception as exc:  # jsonschema_rs raises ValueError/ValidationError subclasses
            raise ValueError(f"invalid JSON Schema: {exc}") from exc

    def errors(self, instance: Any) -> list[str]:
        return [
            f"{'.'.join(str(p) for p in error.instance_path) or '(arguments)'}: {error.message}"
            for error in self.validator.iter_errors(instance)
        ]


# --- Python tools -----------------------------------------------------------------------------


def _is_async_callable(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004


def _docstring(func: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    doc = inspect.getdoc(func)
    if not doc:
        return "", {}
    try:
        import docstring_parser

        parsed = docstring_parser.parse(doc)
    except Exception:  # a malformed docstring is not worth failing a tool over
        return doc.strip(), {}
    parts = [p for p in (parsed.short_description, parsed.long_description) if p]
    params = {
        p.arg_name: " ".join(p.description.split()) for p in parsed.params if p.arg_name and p.description
    }
    return "\n\n".join(parts), params


def _has_description(meta: Sequence[Any], default: Any) -> bool:
    if isinstance(default, FieldInfo) and default.description:
        return True
    return any(isinstance(m, FieldInfo) and m.description for m in meta)


def _model_name(name: str) -> str:
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) + "Arguments"


@dataclass(frozen=True, slots=True)
class _Param:
    field: str
    name: str
    positional_only: bool


def build_arguments_model(
    func: Callable[..., Any], name: str, param_docs: Mapping[str, str] | None = None
) -> tuple[type[BaseModel], tuple[_Param, ...]]:
    """The pydantic arguments model of `func`'s signature (see the module docstring)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {func!r}: {exc}") from exc
    target = func if inspect.isfunction(func) or inspect.ismethod(func) else type(func).__call__
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as exc:
        raise TypeError(f"cannot resolve the type hints of tool '{name}': {exc}") from exc
    docs = param_docs or {}
    fields: dict[str, Any] = {}
    params: list[_Param] = []
    taken = set(signature.parameters)
    for parameter in signature.parameters.values():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(f"tool '{name}' takes *{parameter.name}: tool arguments must be named parameters")
        if parameter.name not in hints:
            raise TypeError(f"parameter '{parameter.name}' of tool '{name}' has no type hint")
        hint = hints[parameter.name]
        if typing.get_origin(hint) is Annotated:
            base, *meta = typing.get_args(hint)
        else:
            base, meta = hint, []
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        extra: list[Any] = []
        doc = docs.get(parameter.name)
        if doc and not _has_description(meta, default):
            extra.append(Field(description=doc))
        field_name = parameter.name
        if field_name.startswith("_") or field_name.startswith("model_") or hasattr(BaseModel, field_name):
            field_name = parameter.name.lstrip("_") + "_arg"
            while field_name in taken:
                field_name += "_"
            taken.add(field_name)
            meta = [*meta, Field(alias=parameter.name)]
        annotation = Annotated[(base, *extra, *meta)] if (extra or meta) else base
        fields[field_name] = (annotation, default)
        params.append(_Param(field_name, parameter.name, parameter.kind is inspect.Parameter.POSITIONAL_ONLY))
    config = ConfigDict(extra="forbid", protected_namespaces=(), title=name)
    try:
        model: type[BaseModel] = create_model(
            _model_name(name), __config__=config, __module__=getattr(func, "__module__", __name__), **fields
        )
        model.model_json_schema()  # surfaces unsupported types now, not when the model asks
    except Exception as exc:
        raise TypeError(
            f"cannot derive an argument schema for tool '{name}': {type(exc).__name__}: {exc}"
        ) from exc
    return model, tuple(params)


class PythonTool(Tool):
    """A Python function as a tool (sync or async)."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        inline: bool | None = None,
        input_schema: dict[str, Any] | None = None,
        ref: str | None = None,
    ) -> None:
        options = tool_options(func)
        self.func = func
        self.name = name or options.name or getattr(func, "__name__", "") or ""
        if not TOOL_NAME_PATTERN.match(self.name):
            raise ValueError(f"invalid tool name {self.name!r}: use 1-64 letters, digits, '_' or '-'")
        doc_description, param_docs = _docstring(func)
        self.description = description or options.description or doc_description
        self.is_async = _is_async_callable(func)
        self.inline = options.inline if inline is None else inline
        if self.inline and self.is_async:
            raise TypeError(f"tool '{self.name}': inline applies to sync functions only")
        self.runs_inline = self.inline
        self.ref = ref or f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', repr(func))}"
        self._model, self._params = build_arguments_model(func, self.name, param_docs)
        self._validate_python = self._model.__pydantic_validator__.validate_python
        self._positional = any(p.positional_only for p in self._params)
        self._plain_names = all(p.field == p.name for p in self._params)
        self._schema: dict[str, Any] | None = None
        self._spec_check: _SchemaCheck | None = None
        if input_schema is not None:
            self._spec_check = _SchemaCheck(input_schema)

    @property
    def arguments_model(self) -> type[BaseModel]:
        return self._model

    def json_schema(self) -> dict[str, Any]:
        if self._spec_check is not None:
            return self._spec_check.schema
        if self._schema is None:
            self._schema = self._model.model_json_schema()
        return self._schema

    def derived_json_schema(self) -> dict[str, Any]:
        """The schema derived from the signature (even when a spec declares its own)."""
        return self._model.model_json_schema()

    def with_spec(self, name: str, spec: ToolSpec) -> PythonTool:
        clone = copy.copy(self)
        clone.name = name
        clone.description = spec.description
        clone._schema = None
        clone._spec_check = _SchemaCheck(spec.input_schema) if spec.input_schema is not None else None
        return clone

    def validate(self, raw: Mapping[str, Any]) -> ToolArguments:
        if type(raw) is not dict and not isinstance(raw, Mapping):
            raise ToolArgumentsInvalid(self.name, [f"arguments must be an object, got {type(raw).__name__}"])
        if self._spec_check is not None:
            return self._validate_with_spec(raw, self._spec_check)
        try:
            model = self._validate_python(raw)  # = model_validate, unwrapped (looked up once)
        except ValidationError as exc:
            raise ToolArgumentsInvalid(self.name, _format_pydantic_errors(exc)) from None
        return self._arguments(model)

    def _validate_with_spec(self, raw: Mapping[str, Any], spec_check: _SchemaCheck) -> ToolArguments:
        """Both the declared `input_schema` and the signature's model, every error reported."""
        errors: list[str] = []
        deferred = False
        try:
            errors.extend(spec_check.errors(raw))
        except ValueError:  # Python values jsonschema_rs cannot read (enums, datetimes...):
            deferred = True  # checked below on the validated arguments' JSON form instead
        try:
            model = self._validate_python(raw)
        except ValidationError as exc:
            errors.extend(_format_pydantic_errors(exc))
            raise ToolArgumentsInvalid(self.name, errors) from None
        if deferred:
            try:
                errors.extend(spec_check.errors(model.model_dump(mode="json", by_alias=True)))
            except (ValueError, PydanticSerializationError) as exc:
                errors.append(f"(arguments): cannot be checked against input_schema: {exc}")
        if errors:
            raise ToolArgumentsInvalid(self.name, errors)
        return self._arguments(model)

    def _arguments(self, model: BaseModel) -> ToolArguments:
        values = model.__dict__
        if self._positional:
            args = tuple(values[p.field] for p in self._params if p.positional_only)
            kwargs = {p.name: values[p.field] for p in self._params if not p.positional_only}
            return ToolArguments(kwargs, args=args, model=model)
        if self._plain_names:
            return ToolArguments(dict(values), model=model)
        return ToolArguments({p.name: values[p.field] for p in self._params}, model=model)

    async def invoke(self, arguments: ToolArguments) -> Any:
        if self.is_async:
            result = await self.func(*arguments.args, **arguments.kwargs)
        elif self.inline:
            result = self.func(*arguments.args, **arguments.kwargs)
        else:
            result = await run_sync_tool(self.func, *arguments.args, **arguments.kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def __repr__(self) -> str:
        return f"PythonTool({self.name!r}, {self.ref})"


# --- HTTP tools -------------------------------------------------------------------------------


def new_template_environment() -> SandboxedEnvironment:
    """The Jinja2 environment for tool templates: the bounded sandbox every spec template uses."""
    from agent_platform.template_sandbox import bounded_environment

    return bounded_environment()


def referenced_env_vars(environment: SandboxedEnvironment, source: str) -> set[str]:
    """Names used as `env.NAME` or `env['NAME']` in a template."""
    from agent_platform.runtime.tools.http import referenced_env_vars as names

    return names(source)


class HttpTool(Tool):
    """An `http:` tool: the url (after its fixed origin), headers, query and body are Jinja2
    templates (bounded sandbox, strict) over `args` (the validated arguments), `env` (only the
    environment variables the templates name) and `idempotency_key` (the call's key in `key` mode,
    else empty: send it as an `Idempotency-Key` header so the server can deduplicate too).

    Where the request may go, how values are encoded into the url and which headers are
    credentials: see `agent_platform.runtime.tools.http`. A value that would be a '.', '..' or
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
        from agent_platform.runtime.tools.http import HttpRequestTemplates

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
        self._check = _SchemaCheck(self._schema)
        self._model: type[BaseModel] | None = None

    @property
    def arguments_model(self) -> type[BaseModel]:
        if self._model is None:
            self._model = _model_from_schema(self.name, self._schema)
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
        self._url(self._context(data, _IDEMPOTENCY_KEY_STAND_IN))
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
        from agent_platform.runtime.rendering import TemplateRenderError
        from agent_platform.runtime.tools.http import UnsafeUrlValue

        try:
            return self._request.url(context)
        except UnsafeUrlValue as exc:
            raise ToolArgumentsInvalid(self.name, [str(exc)]) from None
        except TemplateRenderError as exc:
            raise ToolUnavailable(self.name, f"cannot render the request: {exc}") from None

    async def invoke(self, arguments: ToolArguments) -> Any:
        import httpx

        from agent_platform.runtime.rendering import TemplateRenderError
        from agent_platform.runtime.tools.idempotency import current_idempotency_key

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


_IDEMPOTENCY_KEY_STAND_IN = "0" * 64


def _model_from_schema(name: str, schema: dict[str, Any]) -> type[BaseModel]:
    """The model a declared JSON Schema gives the arguments (what the model is shown, and the
    schema itself checks every answer: see `compile.output_models`); permissive for a schema that
    skipped validation and cannot be used (the call's own check still applies the schema)."""
    from agent_platform.compile.output_models import SchemaMismatch, build_output_model

    try:
        return build_output_model(schema, _model_name(name))
    except SchemaMismatch as exc:
        log.debug("tool %s: no model for its input_schema: %s", name, exc)
    permissive: type[BaseModel] = create_model(_model_name(name), __config__=ConfigDict(extra="allow"))
    return permissive


# --- unavailable tools ------------------------------------------------------------------------


class UnavailableTool(Tool):
    """A declared tool that cannot run here (one whose import failed, say). It is listed with its
    declared schema; each call ends in `ToolUnavailable` with the reason."""

    def __init__(self, name: str, description: str, reason: str, input_schema: dict[str, Any] | None) -> None:
        self.name = name
        self.description = description
        self.reason = reason
        self._schema = input_schema if input_schema is not None else {"type": "object"}

    @property
    def arguments_model(self) -> type[BaseModel]:
        return _model_from_schema(self.name, self._schema)

    def json_schema(self) -> dict[str, Any]:
        return self._schema

    def validate(self, raw: Mapping[str, Any]) -> ToolArguments:
        raise ToolUnavailable(self.name, self.reason)

    async def invoke(self, arguments: ToolArguments) -> Any:
        raise ToolUnavailable(self.name, self.reason)


# --- the registry -----------------------------------------------------------------------------


def default_plugin_paths() -> list[Path]:
    from agent_platform.validate.plugins import default_plugin_paths as paths

    return paths()


class ToolRegistry:
    """Tools by name. Not global: each runtime owns one.

    `plugin_paths` are the directories `python: module:attr` references are imported from
    (default: the working directory, then `$PLATFORM_PLUGIN_PATH`). They are put at the front of
    `sys.path` once, in order and without duplicates, under a lock, and left there (plugins may
    import lazily inside their functions).
    """

    _path_lock = threading.Lock()

    def __init__(
        self,
        plugin_paths: Sequence[str | os.PathLike[str]] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        roots = default_plugin_paths() if plugin_paths is None else [Path(p) for p in plugin_paths]
        self.plugin_paths = [p.resolve() for p in roots]
        self._environ = environ
        self._tools: dict[str, Tool] = {}
        self._http_client = http_client
        self._own_http_client: httpx.AsyncClient | None = None
        self._templates: SandboxedEnvironment | None = None
        # The MCP servers this registry's tools are served by, started on first use (one per runtime).
        self._mcp_pool: McpServerPool | None = None

    # registration

    def register(
        self,
        target: Callable[..., Any] | Tool,
        *,
        name: str | None = None,
        description: str | None = None,
        inline: bool | None = None,
        replace: bool = False,
    ) -> Tool:
        """Register a function (decorated with `@tool` or not) or a ready `Tool`."""
        built = (
            target
            if isinstance(target, Tool)
            else PythonTool(target, name=name, description=description, inline=inline)
        )
        if built.name in self._tools and not replace:
            raise ValueError(f"a tool named '{built.name}' is already registered")
        self._tools[built.name] = built
        return built

    def get(self, name: str) -> Tool:
        found = self._tools.get(name)
        if found is None:
            from agent_platform.diagnostics import did_you_mean

            raise ToolUnavailable(name, f"no tool named '{name}'{did_you_mean(name, list(self._tools))}")
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def names(self) -> list[str]:
        return sorted(self._tools)

    # from specs

    def import_object(self, ref: str) -> Any:
        """Import `module:attr` from the plugin paths."""
        module_name, _, attr = ref.partition(":")
        if not module_name or not attr:
            raise ImportError(f"'{ref}' is not a 'module:attribute' reference")
        module = import_plugin_module(module_name, self.plugin_paths)
        try:
            return getattr(module, attr)
        except AttributeError:
            raise ImportError(f"module '{module_name}' has no attribute '{attr}'") from None

    def from_spec(self, name: str, spec: ToolSpec) -> Tool:
        """Build (not register) the tool a spec declares. Raises on import or schema errors."""
        if spec.python is not None:
            target = self.import_object(spec.python)
            if isinstance(target, Tool):
                return target.with_spec(name, spec)
            if not callable(target):
                raise TypeError(f"'{spec.python}' is not callable")
            return PythonTool(
                target,
                name=name,
                description=spec.description,
                input_schema=spec.input_schema,
                ref=spec.python,
            )
        if spec.http is not None:
            return HttpTool(
                name,
                spec.description,
                spec.http,
                input_schema=spec.input_schema,
                timeout=spec.timeout,
                environ=self._environ,
                client=self._shared_http_client,
            )
        if spec.mcp is not None:
            raise ValueError(
                f"an mcp tool is called through its McpServer '{spec.mcp.server}': load it from a compiled "
                "plan (load_binding), which carries the server and the lock"
            )
        raise ValueError(f"tool '{name}' has no implementation")  # validation prevents this

    def load_binding(self, binding: ToolBinding) -> Tool:
        """The tool for a compiled binding: a tool already registered under the binding's name
        (with the spec's description and input_schema applied), else the one the spec declares,
        registered now. Failures become an `UnavailableTool` that reports the reason per call."""
        existing = self._tools.get(binding.name)
        built: Tool
        try:
            if existing is not None:
                return existing.with_spec(binding.name, binding.spec)
            if binding.mcp_server is not None:
                from agent_platform.runtime.tools.mcp import McpServerPool, McpTool

                if self._mcp_pool is None:
                    self._mcp_pool = McpServerPool(self._environ)
                built = McpTool(binding, self._mcp_pool)
            else:
                built = self.from_spec(binding.name, binding.spec)
        except Exception as exc:
            what = binding.spec.python or "its declaration"
            reason = f"cannot load {what}: {type(exc).__name__}: {exc}" + (
                "; plugin modules are imported from the plugin paths: pass --plugin-path DIR or add DIR "
                "to $PLATFORM_PLUGIN_PATH"
                if isinstance(exc, ImportError)
                else ""
            )
            log.warning("tool %s unavailable: %s", binding.name, reason)
            built = UnavailableTool(binding.name, binding.spec.description, reason, binding.spec.input_schema)
        self._tools[binding.name] = built
        return built

    def template_environment(self) -> SandboxedEnvironment:
        if self._templates is None:
            self._templates = new_template_environment()
        return self._templates

    def _shared_http_client(self) -> httpx.AsyncClient:
        if self._http_client is not None:
            return self._http_client
        if self._own_http_client is None:
            import httpx

            self._own_http_client = httpx.AsyncClient()
        return self._own_http_client

    async def aclose(self) -> None:
        closers: list[Awaitable[None]] = [t.aclose() for t in self._tools.values()]
        for closer in closers:
            await closer
        if self._mcp_pool is not None:
            await self._mcp_pool.aclose()
            self._mcp_pool = None
        if self._own_http_client is not None:
            await self._own_http_client.aclose()
            self._own_http_client = None
