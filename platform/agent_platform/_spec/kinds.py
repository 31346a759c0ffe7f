"""One pydantic model per spec kind. These models are the spec format: the JSON Schemas in
`schemas/` and `docs/spec-reference.md` are generated from them."""

import difflib
import re
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator, model_validator

from agent_platform import API_VERSION
from agent_platform._spec.common import (
    Backoff,
    ByteSize,
    CircuitBreakerPolicy,
    Duration,
    EnvVarName,
    FieldError,
    IdempotencyPolicy,
    JsonSchema,
    Limits,
    Metadata,
    NonEmptyStr,
    PythonRef,
    ResourceName,
    Resources,
    RetryPolicy,
    RuntimeSpec,
    SpecModel,
    StepName,
)
from agent_platform._spec.jsonpath import JsonPath, parse_path

ApiVersion = Literal["agents.platform/v1"]
assert API_VERSION == "agents.platform/v1"

# --- Model ------------------------------------------------------------------------------------


# Anthropic's published prices for prompt-cache tokens, relative to the input price: a read
# costs a tenth, a (5-minute) write a quarter more.
CACHE_READ_PRICE_FACTOR = 0.1
CACHE_WRITE_PRICE_FACTOR = 1.25


class Pricing(SpecModel):
    """USD per million tokens; used to enforce cost budgets."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cache_read_per_mtok: float | None = Field(
        default=None,
        ge=0,
        description="Input tokens read from the prompt cache. Default: 0.1 x input_per_mtok.",
    )
    cache_write_per_mtok: float | None = Field(
        default=None,
        ge=0,
        description="Input tokens written to the prompt cache. Default: 1.25 x input_per_mtok.",
    )

    @property
    def cache_read(self) -> float:
        return (
            self.input_per_mtok * CACHE_READ_PRICE_FACTOR
            if self.cache_read_per_mtok is None
            else self.cache_read_per_mtok
        )

    @property
    def cache_write(self) -> float:
        return (
            self.input_per_mtok * CACHE_WRITE_PRICE_FACTOR
            if self.cache_write_per_mtok is None
            else self.cache_write_per_mtok
        )


# The providers the platform ships. Any other name is a custom provider: registered in code
# (`Runtime(providers=...)`), or built by the factory a Model spec names in `python:`.
BUILTIN_PROVIDERS = ("anthropic", "openai", "scripted")
PROVIDER_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"


class ModelSpec(SpecModel):
    """A language model endpoint: provider, model id, limits, retries and pricing."""

    provider: Annotated[str, Field(pattern=PROVIDER_NAME_PATTERN)] = Field(
        description="`anthropic`, `openai`, `scripted` (a deterministic replay provider for tests, "
        "demos and offline runs), or the name of a custom provider: one registered in code, or "
        "one whose factory `python` names.",
        examples=list(BUILTIN_PROVIDERS),
    )
    python: PythonRef | None = Field(
        default=None,
        description="A custom provider: its factory, 'module:function' under the plugin paths, "
        "called with this Model spec; it returns the provider (see docs/python-api.md).",
    )
    name: str | None = Field(default=None, description="The provider's model id.")
    max_tokens: int = Field(default=4096, ge=1, description="Upper bound on tokens per response.")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature; default: the provider's."
    )
    api_key_env: EnvVarName | None = Field(
        default=None,
        description="Environment variable holding the API key (secrets never live in YAML). "
        "Default: ANTHROPIC_API_KEY / OPENAI_API_KEY.",
    )
    base_url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        default=None, description="API endpoint, e.g. a proxy or an OpenAI-compatible local server."
    )
    timeout: Duration = Field(default=60.0, description="Per request.")
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="Retries of failed requests (rate limits, overload)."
    )
    pricing: Pricing | None = Field(default=None, description="Needed for cost budgets (max_cost_usd).")
    context_window: int | None = Field(
        default=None, ge=1, description="Tokens the model accepts; checked against working memory."
    )
    script: str | None = Field(
        default=None, description="scripted: a YAML/JSONL script of responses, relative to this file."
    )
    on_script_exhausted: Literal["error", "synthesize"] = Field(
        default="error",
        description="scripted: when the script has no answer left, fail or synthesise a schema-valid one.",
    )
    latency: Duration | None = Field(
        default=None,
        description="scripted: simulated time per call, for load tests and concurrency demos.",
    )
    structured_output: Literal["tools", "json_schema", "json", "json_object_schema"] = Field(
        default="tools",
        description="How structured answers are asked for: `tools` (a forced function call), "
        "`json_schema` (response_format with the schema; openai only), `json` (JSON mode, the "
        "schema in the prompt; openai only) or `json_object_schema` (JSON mode with the schema "
        "also in `response_format: {type: json_object, schema}`, which llama-cpp-python compiles "
        "to a grammar; it refuses `json_schema`; openai only). For small models on "
        "llama-cpp-python, `json_object_schema` is the mode that keeps answers in shape. The "
        "answer is validated against the schema in every mode.",
    )
    max_reasks: int = Field(
        default=2,
        ge=0,
        le=10,
        description="How many times an answer that fails its schema is sent back to the model with "
        "the validation error before the call fails. Each re-ask is a billed call.",
    )
    prompt_cache: bool = Field(
        default=True,
        description="anthropic: mark the system prompt (and with it the tool definitions before "
        "it) as a cache breakpoint, so each step of an agent re-reads them from the prompt cache.",
    )
    max_retry_after: Duration = Field(
        default=120.0,
        description="The longest `Retry-After` a server may ask for that is waited in full; a "
        "longer hint waits this long. Retries otherwise follow `retry`.",
    )
    max_requests: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="The most requests one call may send, retries and re-asks together (each is "
        "billed). Default: `retry.max_attempts + max_reasks`.",
    )
    circuit_breaker: CircuitBreakerPolicy | None = Field(
        default=None,
        description="Stop calling the model after `failure_threshold` consecutive failed calls "
        "(each after its retries) until `reset_after` has passed; calls then go to `fallback`, "
        "or fail at once. Per process (replica).",
    )
    fallback: list[ResourceName] = Field(
        default_factory=list,
        description="Models (by name) to call, in order, when a call of this one fails for good "
        "(after its retries and re-asks) or its circuit is open. Each answers the same request "
        "with its own provider, retries and pricing.",
    )

    @model_validator(mode="after")
    def _provider_fields(self) -> Self:
        if self.provider not in BUILTIN_PROVIDERS:  # a custom provider reads what it needs
            for field in ("script", "latency"):
                if getattr(self, field) is not None:
                    raise FieldError(f"'{field}' applies only to provider 'scripted'", field)
            return self
        if self.python is not None:
            raise FieldError(
                f"'python' names the factory of a custom provider; '{self.provider}' is built in",
                "python",
            )
        if self.provider == "scripted":
            if self.api_key_env is not None or self.base_url is not None:
                field = "api_key_env" if self.api_key_env is not None else "base_url"
                raise FieldError("a scripted model takes no api_key_env or base_url", field)
            if self.script is None and self.on_script_exhausted != "synthesize":
                raise ValueError("a scripted model needs a 'script' file or on_script_exhausted: synthesize")
        else:
            if not self.name:
                raise FieldError(f"provider '{self.provider}' needs the model 'name'", "provider")
            if self.script is not None:
                raise FieldError("'script' applies only to provider 'scripted'", "script")
            if self.latency is not None:
                raise FieldError("'latency' applies only to provider 'scripted'", "latency")
            if self.provider == "anthropic" and self.structured_output != "tools":
                raise FieldError(
                    "provider 'anthropic' takes structured_output: tools (its forced tool use)",
                    "structured_output",
                )
        return self


ModelRef = Annotated[
    ResourceName | ModelSpec,
    Field(description="A Model by name, or an inline model {provider, name, ...}."),
]

# --- Tool -------------------------------------------------------------------------------------


_TEMPLATE_START = re.compile(r"\{[{%#]")
_URL_ORIGIN = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)")
# A host as written in a URL (a name, an IPv4 address or a bracketed IPv6 one) and an optional port.
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s/?#@:\[\]\\{}%]+)(?::(?P<port>[0-9]{1,5}))?")
HOST_PORT_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[^\s/?#@:\[\]\\{}%]+)(:[0-9]{1,5})?$"


def split_url_origin(url: str) -> tuple[str, str]:
    """An http tool's url as its fixed origin and the rest: `https://api.example.com:8443/items/
    {{ args.id }}` -> (`https://api.example.com:8443`, `/items/{{ args.id }}`). The scheme, host and
    port must be written out, ending before any template (a template there could send the request,
    and its credentials, to another host); raises ValueError saying what is wrong."""
    start = _TEMPLATE_START.search(url)
    literal = url if start is None else url[: start.start()]
    found = _URL_ORIGIN.match(literal)
    if found is None:
        raise ValueError(
            "the url must start with http:// or https:// and the host written out: a template may not "
            "produce the scheme, host or port"
        )
    if found["scheme"].lower() not in ("http", "https"):
        raise ValueError(f"the url's scheme must be http or https, not '{found['scheme']}'")
    if start is not None and found.end() == len(literal):
        if not found["authority"]:
            raise ValueError(
                "the url's host must be written out: a template may not produce the host or port"
            )
        raise ValueError(
            "a template follows the host without a '/', '?' or '#' in between: a template may not "
            "produce the host or port"
        )
    authority = found["authority"]
    if "@" in authority:
        raise ValueError("the url may not carry credentials ('user@host'): send them in a header")
    host_port = _HOST_PORT.fullmatch(authority)
    if host_port is None or (host_port["port"] is not None and not 0 < int(host_port["port"]) < 65536):
        raise ValueError(f"'{authority}' is not a host with an optional port")
    return url[: found.end()], url[found.end() :]


class HttpImplementation(SpecModel):
    url: NonEmptyStr = Field(
        description="Where to send the request: `http(s)://host[:port]` written out (no template may "
        "produce the scheme, host or port), then a path and query that may use templates over "
        "`args` and `env`. Each value a template puts in the url is encoded as one path segment or "
        "query value (`/`, `?`, `#`, `&` are encoded; '.', '..' and empty segments are refused)."
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Values are templates; `env.NAME` reads the environment. Headers that read `env` "
        "are credentials: sent to the url's host only.",
    )
    query: dict[str, str] = Field(default_factory=dict, description="Values are templates, sent encoded.")
    body: str | dict[str, Any] | None = Field(
        default=None, description="Template for the body; default: the arguments as JSON."
    )
    allowed_hosts: list[Annotated[str, Field(pattern=HOST_PORT_PATTERN)]] = Field(
        default_factory=list,
        description="Other hosts (`host` for the scheme's default port, or `host:port`) a redirect may "
        "lead to. They never receive the credential headers; redirects to any other host fail.",
    )

    @field_validator("url")
    @classmethod
    def _fixed_origin(cls, url: str) -> str:
        split_url_origin(url)
        if re.search(r"\|\s*urlencode\b", url):
            raise ValueError(
                "values in the url are encoded for you: remove `| urlencode` (it would encode them twice)"
            )
        return url


class McpImplementation(SpecModel):
    """One tool of an MCP server. Its input schema, description and annotations come from the
    server, pinned in `mcp.lock.yaml` by `platform plan`; a run refuses a server that drifted."""

    server: ResourceName = Field(description="The McpServer that serves it.")
    tool: NonEmptyStr = Field(description="The tool's name on that server.")


class ToolIsolation(SpecModel):
    """Run each call as a separate Ray task with its own resources (heavy or GPU tools)."""

    mode: Literal["inline", "task"] = "inline"
    resources: Resources = Field(default_factory=Resources)


class ToolOutputLimit(SpecModel):
    """How much of a tool's output a model sees: the output is cut at the first limit it reaches,
    with a marker saying how much was left out (pipeline steps that pass the output on to other
    tools get all of it)."""

    bytes: ByteSize = Field(default=256 * 1024, description="UTF-8 bytes, e.g. '256Ki'.")
    tokens: int = Field(default=16_000, ge=1, description="Estimated tokens (4 bytes each).")


class ToolSpec(SpecModel):
    """A capability agents and pipeline steps call, with its failure and safety policies."""

    description: NonEmptyStr = Field(description="What the tool does; shown to the model.")
    python: PythonRef | None = Field(default=None, description="'module:function' under the plugin paths.")
    http: HttpImplementation | None = None
    mcp: McpImplementation | None = None
    input_schema: JsonSchema | None = Field(
        default=None, description="Arguments schema; derived from type hints for python tools."
    )
    output_schema: JsonSchema | None = None
    timeout: Duration = Field(default=30.0, description="Per call; a call that exceeds it fails.")
    retry: RetryPolicy | None = Field(
        default=None,
        description="Default: 3 attempts for tools without side effects, 1 for tools with side effects.",
    )
    idempotency: IdempotencyPolicy = Field(default_factory=IdempotencyPolicy)
    circuit_breaker: CircuitBreakerPolicy | None = Field(
        default=None, description="Stop calling a failing dependency for a while."
    )
    side_effects: bool = Field(
        default=False, description="Changes the world (writes, sends, pays): never retried unless idempotent."
    )
    requires_approval: bool | None = Field(
        default=None,
        description="Each call waits for a person's approval. Default: true for a tool with side "
        "effects, false otherwise; `false` on a tool with side effects is an explicit opt-out "
        "(`validate` warns), and the calling agent's `untrusted_context` policy still applies.",
    )
    trust: Literal["trusted", "untrusted"] = Field(
        default="untrusted",
        description="Whether its output may carry instructions from someone other than the user "
        "(web pages, emails, tickets, files, API data written by others). Untrusted output is "
        "shown inside the injection boundary and puts the run under its `untrusted_context` "
        "policy. Declare `trusted` only for output nobody else can write into (a clock, a "
        "calculator).",
    )
    max_output: ToolOutputLimit = Field(
        default_factory=lambda: ToolOutputLimit(),
        description="How much of its output a model is shown; the rest is cut with a visible marker.",
    )
    guardrails: list[ResourceName] = Field(default_factory=list, description="Applied to its output.")
    isolation: ToolIsolation = Field(default_factory=ToolIsolation)

    @model_validator(mode="after")
    def _one_implementation_and_safe_retries(self) -> Self:
        chosen = [k for k in ("python", "http", "mcp") if getattr(self, k) is not None]
        if len(chosen) != 1:
            found = ", ".join(chosen) if chosen else "none"
            message = f"a tool needs exactly one implementation of python, http, mcp (found: {found})"
            raise FieldError(message, *chosen[1:2])
        if self.side_effects:
            if self.idempotency.mode == "cache":
                raise FieldError(
                    "idempotency mode 'cache' memoises results and is unsafe for a tool with side "
                    "effects; use mode 'key' so results are stored durably under an idempotency key",
                    "idempotency",
                    "mode",
                    at_key=False,
                )
            if self.retry is not None and self.retry.max_attempts > 1 and self.idempotency.mode != "key":
                raise FieldError(
                    "a tool with side effects is never retried unless it is idempotent: "
                    "set idempotency.mode: key, or retry.max_attempts: 1",
                    "retry",
                    "max_attempts",
                )
        return self


# --- McpServer ----------------------------------------------------------------------------------

# How a header is spelt on the wire (RFC 9110 token characters).
HTTP_HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class McpHeaderFromEnv(SpecModel):
    """A header whose value is read from the environment when the server is connected (secrets
    never live in YAML)."""

    env: EnvVarName = Field(description="The environment variable holding the value.")
    prefix: str = Field(default="", description="Text put before the value, e.g. 'Bearer '.")


class McpStdioTransport(SpecModel):
    """A local server the platform starts as a child process and talks to over its stdin and
    stdout: once per runtime (per replica), shared by its runs, restarted if it dies."""

    command: NonEmptyStr = Field(description="The executable (looked up on PATH).")
    args: list[str] = Field(default_factory=list)
    env: dict[EnvVarName, EnvVarName] = Field(
        default_factory=dict,
        description="Variables the server is given, each read from the named variable of the "
        "platform's environment: `{GITHUB_TOKEN: MY_GITHUB_TOKEN}`. Nothing else of the platform's "
        "environment is passed on but HOME, LOGNAME, PATH, SHELL, TERM and USER.",
    )
    cwd: str | None = Field(
        default=None,
        description="Working directory of the server, relative to this file's directory. Default: "
        "this file's directory.",
    )


class McpHttpTransport(SpecModel):
    """A remote server reached over MCP's streamable HTTP transport."""

    url: Annotated[str, Field(pattern=r"^https?://")] = Field(
        description="The server's MCP endpoint, e.g. https://mcp.example.com/mcp."
    )
    headers: dict[Annotated[str, Field(pattern=HTTP_HEADER_NAME_PATTERN)], McpHeaderFromEnv] = Field(
        default_factory=dict,
        description="Headers sent with every request, each built from an environment variable: "
        "`{Authorization: {env: MCP_TOKEN, prefix: 'Bearer '}}`.",
    )
    connect_timeout: Duration = Field(default=10.0, description="To open a connection.")
    read_timeout: Duration = Field(
        default=300.0, description="The longest wait for data on an open response stream."
    )

    @field_validator("url")
    @classmethod
    def _fixed_origin(cls, url: str) -> str:
        if _TEMPLATE_START.search(url):
            raise ValueError("the url is sent as written: it may not hold a template")
        split_url_origin(url)
        return url


class McpServerSpec(SpecModel):
    """An MCP server whose tools agents and pipelines call: one Tool spec per tool (`mcp: {server,
    tool}`) or a whole server attached to an Agent under an allow-list (`Agent.spec.mcp`).
    `platform plan` connects to it, checks the tools used exist and pins their schemas,
    descriptions and annotations in `mcp.lock.yaml` next to this file; `validate` never contacts
    it. The settings below apply to tools attached to an Agent; a Tool spec has its own."""

    stdio: McpStdioTransport | None = None
    http: McpHttpTransport | None = None
    startup_timeout: Duration = Field(
        default=30.0, description="To start or connect to the server and list its tools."
    )
    timeout: Duration = Field(default=30.0, description="Per call of an attached tool.")
    circuit_breaker: CircuitBreakerPolicy | None = Field(
        default=None, description="For each attached tool: stop calling it for a while after failures."
    )
    trust: Literal["trusted", "untrusted"] = Field(
        default="untrusted",
        description="Whether the output of its attached tools may carry instructions from someone "
        "other than the user (see Tool.spec.trust). Untrusted by default: an MCP server returns "
        "whatever it read.",
    )
    max_output: ToolOutputLimit = Field(
        default_factory=lambda: ToolOutputLimit(),
        description="How much of an attached tool's output a model is shown.",
    )
    guardrails: list[ResourceName] = Field(
        default_factory=list, description="Applied to the output of each attached tool."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        chosen = [k for k in ("stdio", "http") if getattr(self, k) is not None]
        if len(chosen) != 1:
            found = ", ".join(chosen) if chosen else "none"
            raise FieldError(
                f"an MCP server needs exactly one transport of stdio, http (found: {found})", *chosen[1:2]
            )
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.stdio is not None else "http"


class McpToolSelection(SpecModel):
    """The tools of an MCP server an Agent may call, chosen by an allow-list. Each is offered to
    the model as `<server>_<tool>` (characters other than letters, digits, '_' and '-' become
    '_'), with the description and input schema pinned in `mcp.lock.yaml`; its side effects,
    approval and retries follow the server's annotations (see docs/spec-reference.md)."""

    server: ResourceName = Field(description="The McpServer.")
    tools: list[NonEmptyStr] = Field(
        min_length=1,
        description="Allow-list: tool names on the server, or shell-style patterns ('read_*'; '*' "
        "for every tool). Each entry must match a tool the server has.",
    )


# --- Memory -----------------------------------------------------------------------------------


class CompactionPolicy(SpecModel):
    model: ModelRef = Field(description="Usually a cheaper model than the agent's.")
    trigger_ratio: float = Field(default=0.8, gt=0, le=1, description="Compact at this share of max_tokens.")
    target_ratio: float = Field(default=0.5, gt=0, lt=1, description="Compact down to this share.")
    keep_recent_turns: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _target_below_trigger(self) -> Self:
        if self.target_ratio >= self.trigger_ratio:
            raise FieldError("target_ratio must be below trigger_ratio", "target_ratio")
        return self


class WorkingMemory(SpecModel):
    max_tokens: int = Field(ge=256, description="Token budget of the conversation sent to the model.")
    compaction: CompactionPolicy | None = None


class VectorStore(SpecModel):
    backend: Literal["pgvector", "weaviate"] = "pgvector"
    url: str | None = Field(default=None, description="Default for pgvector: the embedded server.")
    url_env: EnvVarName | None = Field(default=None, description="Read the URL from this variable.")
    collection: ResourceName | None = Field(default=None, description="Default: `<memory name>-<layer>`.")
    api_key_env: EnvVarName | None = Field(
        default=None, description="Weaviate: the variable holding the API key (never in the YAML)."
    )

    @model_validator(mode="after")
    def _weaviate_needs_url(self) -> Self:
        if self.api_key_env is not None and self.backend != "weaviate":
            raise FieldError(
                "api_key_env applies to the weaviate backend (put pgvector credentials in url_env)",
                "api_key_env",
            )
        if self.url is not None and self.url_env is not None:
            raise FieldError("give either url or url_env, not both", "url_env")
        if self.backend == "weaviate" and self.url is None and self.url_env is None:
            raise FieldError(
                "the weaviate backend needs url or url_env (it has no embedded mode here)",
                "backend",
                at_key=False,
            )
        return self


# The models the `local` provider ships (installed with the project), and their dimensions.
LOCAL_EMBEDDERS: dict[str, int] = {"all-MiniLM-L6-v2": 384, "sentence-transformers/all-MiniLM-L6-v2": 384}
# pgvector's HNSW index takes vectors of at most this many dimensions.
PGVECTOR_MAX_DIMENSIONS = 2000


class Embedder(SpecModel):
    provider: Literal["local", "openai"] = "local"
    model: NonEmptyStr = "all-MiniLM-L6-v2"
    base_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    api_key_env: EnvVarName | None = None
    dimensions: int = Field(default=384, ge=1)
    batch_size: int = Field(default=64, ge=1)

    @model_validator(mode="after")
    def _local_model_exists(self) -> Self:
        if self.provider != "local":
            return self
        if self.model not in LOCAL_EMBEDDERS:
            known = ", ".join(sorted(LOCAL_EMBEDDERS))
            raise FieldError(
                f"no local embedder '{self.model}' (installed: {known}); "
                "for another model use provider: openai with a base_url",
                "model",
            )
        if self.dimensions != LOCAL_EMBEDDERS[self.model]:
            raise FieldError(
                f"{self.model} returns {LOCAL_EMBEDDERS[self.model]}-dimensional vectors, not {self.dimensions}",
                "dimensions",
            )
        for field in ("base_url", "api_key_env"):
            if getattr(self, field) is not None:
                raise FieldError(f"'{field}' applies to provider openai, not local", field)
        return self


_NAMESPACES: tuple[Literal["agent", "tenant"], ...] = ("agent", "tenant")


class VectorLayer(SpecModel):
    store: VectorStore = Field(default_factory=VectorStore)
    embedder: Embedder = Field(default_factory=Embedder)
    top_k: int = Field(default=5, ge=1, le=1000)
    min_score: float = Field(default=0.0, ge=0, le=1)
    retention: Duration | None = None
    namespace_by: list[Literal["agent", "tenant"]] = Field(default_factory=lambda: list(_NAMESPACES))
    trust: Literal["trusted", "untrusted"] = Field(
        default="untrusted", description="Untrusted items pass the injection guard when retrieved."
    )

    @model_validator(mode="after")
    def _store_fits_embedder(self) -> Self:
        if self.store.backend == "pgvector" and self.embedder.dimensions > PGVECTOR_MAX_DIMENSIONS:
            raise FieldError(
                f"pgvector indexes at most {PGVECTOR_MAX_DIMENSIONS} dimensions; the embedder makes "
                f"{self.embedder.dimensions} (set the embedder's dimensions lower, if it supports that)",
                "embedder",
            )
        return self


class Ranking(SpecModel):
    relevance: float = Field(default=1.0, ge=0)
    recency: float = Field(default=0.3, ge=0)
    importance: float = Field(default=0.2, ge=0)
    recency_half_life: Duration = 7 * 86400.0


class MemorySpec(SpecModel):
    """Layered memory: token-bounded working memory, vector-backed episodic and knowledge layers."""

    working: WorkingMemory | None = None
    episodic: VectorLayer | None = None
    knowledge: VectorLayer | None = None
    ranking: Ranking = Field(default_factory=Ranking)
    context_tokens: int = Field(
        default=1500,
        ge=0,
        description="Token budget of the episodic and knowledge items shown to an agent when a run "
        "starts (0: retrieve nothing).",
    )

    @model_validator(mode="after")
    def _at_least_one_layer(self) -> Self:
        if self.working is None and self.episodic is None and self.knowledge is None:
            raise ValueError("a memory needs at least one layer: working, episodic or knowledge")
        return self


# --- Guardrail --------------------------------------------------------------------------------

Stage = Literal["input", "tool_output", "action", "output"]
_ACTION_STAGE: tuple[Stage, ...] = ("action",)
GuardAction = Literal["block", "redact", "warn", "halt"]


class _GuardrailBase(SpecModel):
    applies_to: list[Stage] = Field(min_length=1)
    action: GuardAction = "block"

    allowed_stages: ClassVar[frozenset[str]] = frozenset({"input", "tool_output", "action", "output"})
    allowed_actions: ClassVar[frozenset[str]] = frozenset({"block", "redact", "warn", "halt"})

    @model_validator(mode="after")
    def _stage_and_action_fit_type(self) -> Self:
        kind = getattr(self, "type", "?")
        article = "an" if kind[:1] in "aeiou" else "a"
        bad_stages = [(i, s) for i, s in enumerate(self.applies_to) if s not in self.allowed_stages]
        if bad_stages:
            allowed = ", ".join(sorted(self.allowed_stages))
            names = ", ".join(s for _, s in bad_stages)
            message = f"{article} {kind} guardrail cannot apply to {names} (allowed: {allowed})"
            raise FieldError(message, "applies_to", bad_stages[0][0], at_key=False)
        if self.action not in self.allowed_actions:
            allowed = ", ".join(sorted(self.allowed_actions))
            message = f"{article} {kind} guardrail cannot '{self.action}' (allowed: {allowed})"
            raise FieldError(message, "action", at_key=False)
        return self


class PromptInjectionGuardrail(_GuardrailBase):
    type: Literal["prompt_injection"]
    patterns: list[str] = Field(default_factory=list, description="Extra detection regexes.")
    use_default_patterns: bool = True
    allowed_stages = frozenset({"input", "tool_output"})


class LoopDetectionGuardrail(_GuardrailBase):
    """Keys on tool + canonical arguments and detects short cycles (A-B-A-B)."""

    type: Literal["loop_detection"]
    applies_to: list[Stage] = Field(default_factory=lambda: list(_ACTION_STAGE), min_length=1)
    action: GuardAction = "halt"
    window: int = Field(default=12, ge=2)
    threshold: int = Field(default=3, ge=2, description="Repetitions of an action or cycle that trip it.")
    max_cycle_length: int = Field(default=3, ge=1)
    allowed_stages = frozenset({"action"})
    allowed_actions = frozenset({"block", "warn", "halt"})


PiiEntity = Literal["email", "phone", "credit_card", "iban", "ssn", "ip_address"]


_DEFAULT_PII: tuple[PiiEntity, ...] = ("email", "phone", "credit_card", "iban", "ssn")


class PiiRedactionGuardrail(_GuardrailBase):
    type: Literal["pii_redaction"]
    action: GuardAction = "redact"
    entities: list[PiiEntity] = Field(default_factory=lambda: list(_DEFAULT_PII), min_length=1)
    allowed_actions = frozenset({"block", "redact", "warn"})


class ToolAllowlistGuardrail(_GuardrailBase):
    type: Literal["tool_allowlist"]
    applies_to: list[Stage] = Field(default_factory=lambda: list(_ACTION_STAGE), min_length=1)
    tools: list[ResourceName] = Field(default_factory=list)
    allowed_stages = frozenset({"action"})
    allowed_actions = frozenset({"block", "warn", "halt"})


class BudgetGuardrail(_GuardrailBase):
    type: Literal["budget"]
    applies_to: list[Stage] = Field(default_factory=lambda: list(_ACTION_STAGE), min_length=1)
    action: GuardAction = "halt"
    max_total_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_tool_calls: int | None = Field(default=None, ge=1)
    allowed_stages = frozenset({"action"})
    allowed_actions = frozenset({"warn", "halt"})

    @model_validator(mode="after")
    def _some_budget(self) -> Self:
        if self.max_total_tokens is None and self.max_cost_usd is None and self.max_tool_calls is None:
            raise ValueError("a budget guardrail needs max_total_tokens, max_cost_usd or max_tool_calls")
        return self


class OutputSchemaGuardrail(_GuardrailBase):
    type: Literal["output_schema"]
    json_schema: JsonSchema = Field(alias="schema")
    allowed_stages = frozenset({"tool_output", "output"})
    allowed_actions = frozenset({"block", "warn", "halt"})


class RegexGuardrail(_GuardrailBase):
    type: Literal["regex"]
    patterns: list[NonEmptyStr] = Field(min_length=1)
    replacement: str = "[REDACTED]"


class PythonGuardrail(_GuardrailBase):
    type: Literal["python"]
    function: PythonRef = Field(
        description="'module:function' under the plugin paths, called with a GuardContext "
        "(`from agent_platform import GuardContext`); it returns None or True to allow, False for "
        "the configured action, or a mapping of `decision`, `reason` and `content` (for redact). "
        "Async functions are awaited; one that raises fails closed."
    )


_TOOL_OUTPUT_STAGE: tuple[Stage, ...] = ("tool_output",)


class InjectionClassifierGuardrail(_GuardrailBase):
    """Asks a classifier whether untrusted content carries injected instructions: a Model (a cheap
    LLM answering a schema-validated verdict, with the content inside the unforgeable boundary) or
    a local Python function. One detection layer: it does not make acting on untrusted content
    safe (see docs/security.md)."""

    type: Literal["injection_classifier"]
    applies_to: list[Stage] = Field(default_factory=lambda: list(_TOOL_OUTPUT_STAGE), min_length=1)
    model: ModelRef | None = Field(
        default=None, description="The classifying Model (exactly one of `model` and `function`)."
    )
    function: PythonRef | None = Field(
        default=None,
        description="A local classifier, 'module:function' taking a ClassifierInput and returning an "
        "InjectionVerdict (or a mapping of its fields); sync functions run in a worker thread.",
    )
    threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A verdict `injection: true` counts as a detection when its confidence is at least this.",
    )
    on_error: Literal["fail_closed", "fail_open"] = Field(
        default="fail_closed",
        description="When the classifier fails (error, timeout, invalid verdict, content over the limit): "
        "`fail_closed` treats the content as an injection (the configured action); `fail_open` lets it "
        "through with a warning.",
    )
    timeout: Duration = Field(default=30.0, description="For the whole classification of one item.")
    max_chars_per_call: int = Field(
        default=16_000, ge=1_000, description="Longer content is classified in overlapping chunks."
    )
    max_calls: int = Field(
        default=4, ge=1, le=64, description="Chunks per item at most; longer content is a classifier error."
    )
    allowed_stages = frozenset({"input", "tool_output"})
    allowed_actions = frozenset({"block", "warn", "halt"})

    @model_validator(mode="after")
    def _one_classifier(self) -> Self:
        if (self.model is None) == (self.function is None):
            field = "function" if self.function is not None else "model"
            raise FieldError("an injection_classifier needs exactly one of 'model' and 'function'", field)
        return self


GuardrailSpec = Annotated[
    PromptInjectionGuardrail
    | LoopDetectionGuardrail
    | PiiRedactionGuardrail
    | ToolAllowlistGuardrail
    | BudgetGuardrail
    | OutputSchemaGuardrail
    | RegexGuardrail
    | PythonGuardrail
    | InjectionClassifierGuardrail,
    Field(discriminator="type"),
]
GUARDRAIL_TYPES = (
    "prompt_injection",
    "loop_detection",
    "pii_redaction",
    "tool_allowlist",
    "budget",
    "output_schema",
    "regex",
    "python",
    "injection_classifier",
)

# --- Agent ------------------------------------------------------------------------------------


EgressHost = Annotated[
    str,
    Field(pattern=r"^(\*|(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?)$"),
]


class UntrustedContextSpec(SpecModel):
    """What a run may still do once content it cannot trust is in its context: the output of an
    untrusted tool, retrieved memory, or the answer of a delegate that read such content. The
    model may then be following instructions someone else wrote. A delegate runs under its
    caller's policy as well as its own, so delegation never widens it."""

    side_effects: Literal["require_approval", "deny", "allow"] = Field(
        default="require_approval",
        description="Calls of tools with side effects, tasks sent to RemoteAgents, and requests to "
        "hosts `egress` does not list (also a delegate's): `require_approval` asks a person for each "
        "call (a run without an approver stops, naming the call); `deny` refuses them (the model is "
        "told); `allow` applies only each tool's own `requires_approval`.",
    )
    egress: list[EgressHost] = Field(
        default_factory=list,
        description="Hosts its `http:` tools (and a delegate's) may still reach without asking: `host`, "
        "`host:port`, `*.domain`, or `*` for any. A request to any other host can carry out what the "
        "run has read, so it follows the `side_effects` rule. A RemoteAgent among its `delegates` "
        "must be on a listed host (its url's and card url's): `validate` reports one that is not. "
        "Default: none.",
    )


class AgentSpec(SpecModel):
    """An agent loop: at each step the model chooses a tool, a delegate or its final answer."""

    model: ModelRef
    instructions: NonEmptyStr = Field(
        description="Jinja2 template (sandboxed, strict undefined) over `inputs`, `agent`, `tools`, "
        "`delegates`."
    )
    inputs: JsonSchema = Field(default_factory=lambda: {"type": "object"})
    output: JsonSchema | None = Field(default=None, description="Schema of the final answer.")
    tools: list[ResourceName] = Field(default_factory=list)
    mcp: list[McpToolSelection] = Field(
        default_factory=list, description="MCP servers whose tools it may call, each under an allow-list."
    )
    delegates: list[ResourceName] = Field(
        default_factory=list, description="Agents (or RemoteAgents) it may hand work to."
    )
    memory: ResourceName | None = None
    remember: list[ResourceName] = Field(
        default_factory=list,
        description="Tools whose results are written to the agent's episodic memory (as facts "
        "with the tool's provenance and the layer's trust level).",
    )
    guardrails: list[ResourceName] = Field(default_factory=list)
    untrusted_context: UntrustedContextSpec = Field(
        default_factory=lambda: UntrustedContextSpec(),
        description="What the agent may still do once untrusted content is in its context.",
    )
    limits: Limits = Field(default_factory=Limits, description="When the loop must stop.")
    runtime: RuntimeSpec = Field(
        default_factory=RuntimeSpec, description="Replicas, resources and placement of its actors."
    )


# --- Pipeline ---------------------------------------------------------------------------------


class MapSpec(SpecModel):
    """Fan out over a list: the step runs once per item, at most `concurrency` at a time, and its
    output is the list of results in input order."""

    over: NonEmptyStr = Field(description="Template yielding a list, e.g. '{{ steps.chunk.output }}'.")
    as_: Annotated[str, Field(alias="as", pattern=r"^[a-z_][a-z0-9_]*$")] = "item"
    concurrency: int = Field(default=4, ge=1, le=10_000)


class LlmCall(SpecModel):
    """A single structured LLM call: one prompt in, one schema-valid object out."""

    model: ModelRef
    prompt: NonEmptyStr = Field(description="Jinja2 template.")
    system: str | None = None


class MemoryWrite(SpecModel):
    """A step that embeds and stores items in a memory layer (e.g. ingested documents into
    knowledge). Its input is `items`: a list of {content, id?, importance?, metadata?}."""

    name: ResourceName = Field(description="The Memory spec to write to.")
    layer: Literal["episodic", "knowledge"] = "knowledge"
    agent: ResourceName | None = Field(
        default=None,
        description="Write into this agent's namespace (needed when the layer is namespaced by agent).",
    )
    tenant: str | None = Field(
        default=None, description="Template for the tenant to write for; default: the run's tenant."
    )


MEMORY_WRITE_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["items"],
    "additionalProperties": False,
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["content"],
                "properties": {
                    "content": {"type": "string", "minLength": 1},
                    "id": {"type": "string", "minLength": 1, "maxLength": 200},
                    "importance": {"type": "number", "minimum": 0, "maximum": 1},
                    "metadata": {"type": "object"},
                },
            },
        }
    },
}
MEMORY_WRITE_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["memory", "layer", "namespace", "written", "duplicates", "ids"],
    "properties": {
        "memory": {"type": "string"},
        "layer": {"type": "string"},
        "namespace": {"type": "string"},
        "written": {"type": "integer", "minimum": 0},
        "duplicates": {"type": "integer", "minimum": 0},
        "ids": {"type": "array", "items": {"type": "string"}},
    },
}

_STEP_TARGETS = ("tool", "agent", "pipeline", "llm", "memory")


class PipelineStep(SpecModel):
    name: StepName = Field(description="Referenced later as `steps.<name>.output`.")
    description: str = ""
    tool: ResourceName | None = None
    agent: ResourceName | None = None
    pipeline: ResourceName | None = None
    llm: LlmCall | None = None
    memory: MemoryWrite | None = None
    input: dict[str, Any] = Field(
        default_factory=dict,
        description="Arguments; string values are Jinja2 templates over `inputs`, earlier "
        "`steps.<name>.output` and the map item. A value that is a single `{{ expr }}` keeps its type.",
    )
    map: MapSpec | None = None
    output: JsonSchema | None = Field(default=None, description="Schema the step's output must match.")
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        chosen = [k for k in _STEP_TARGETS if getattr(self, k) is not None]
        if len(chosen) != 1:
            found = ", ".join(chosen) if chosen else "none"
            message = f"a step needs exactly one of tool, agent, pipeline, llm, memory (found: {found})"
            raise FieldError(message, *chosen[1:2])
        if self.llm is not None and self.output is None:
            raise ValueError("an llm step needs an 'output' schema (structured output)")
        return self

    @property
    def target_kind(self) -> str:
        for kind in _STEP_TARGETS:
            if getattr(self, kind) is not None:
                return kind
        raise AssertionError("validated step without a target")


class PipelineSpec(SpecModel):
    """Steps fixed at design time, run in order: deterministic, auditable, low latency variance."""

    inputs: JsonSchema = Field(default_factory=lambda: {"type": "object"})
    output: JsonSchema | None = None
    steps: list[PipelineStep] = Field(min_length=1)
    returns: Any = Field(
        default=None,
        description="Template(s) for the pipeline's result; default: the last step's output.",
    )
    timeout: Duration = 600.0
    guardrails: list[ResourceName] = Field(
        default_factory=list, description="Applied to the output of its tool, agent and pipeline steps."
    )
    untrusted_context: UntrustedContextSpec = Field(
        default_factory=lambda: UntrustedContextSpec(),
        description="What its tool steps (and its agent steps) may still do once untrusted content "
        "is among its values.",
    )
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)


# --- Supervisor -------------------------------------------------------------------------------


class Route(SpecModel):
    agent: ResourceName | None = None
    pipeline: ResourceName | None = None
    remote_agent: ResourceName | None = Field(default=None, description="A RemoteAgent (over A2A).")
    priority_boost: int = Field(default=0, description="Added to every task of this type.")
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        given = [k for k in ("agent", "pipeline", "remote_agent") if getattr(self, k) is not None]
        if len(given) != 1:
            raise FieldError("a route needs exactly one of agent, pipeline or remote_agent", *given[1:2])
        return self

    @property
    def target(self) -> tuple[str, str]:
        if self.agent is not None:
            return ("Agent", self.agent)
        if self.remote_agent is not None:
            return ("RemoteAgent", self.remote_agent)
        return ("Pipeline", self.pipeline or "")


TaskType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]


class SupervisorSpec(SpecModel):
    """Routes tasks by type to agents or pipelines through a priority queue with bounded concurrency."""

    routes: dict[TaskType, Route] = Field(min_length=1, description="Task type -> agent or pipeline.")
    concurrency: int = Field(default=4, ge=1, le=10_000, description="Tasks running at once.")
    on_error: Literal["fail_fast", "collect"] = "collect"
    default_priority: int = 0
    max_queue: int = Field(default=10_000, ge=1)
    task_timeout: Duration | None = None
    distribution: Literal["spread", "pack", "any"] = Field(
        default="spread", description="How sub-agent actors are spread over the cluster."
    )
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)


# --- Test -------------------------------------------------------------------------------------

# How a run ends: the values of agent_platform._runtime.outcomes.Outcome (tests check they agree;
# the runtime is not imported here, `validate` stays light).
RunOutcome = Literal[
    "completed",
    "max_iterations",
    "timeout",
    "token_budget",
    "cost_budget",
    "tool_call_budget",
    "guardrail_halt",
    "needs_approval",
    "failed",
    "cancelled",
]
# What a guardrail that triggered did (a pass is not an event).
GuardrailVerdict = Literal["warn", "redact", "block", "halt"]

UNIT_KINDS: tuple[str, ...] = ("Agent", "Pipeline", "Supervisor")
UNIT_REF_PATTERN = r"^((Agent|Pipeline|Supervisor)/)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_UNIT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _unit_ref(value: str) -> str:
    kind, slash, name = value.rpartition("/")
    if slash and kind not in UNIT_KINDS:
        close = difflib.get_close_matches(kind, UNIT_KINDS, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}/{name}'?)" if close else ""
        raise ValueError(f"'{kind}' is not a kind that runs: write Agent/, Pipeline/ or Supervisor/{hint}")
    if not _UNIT_NAME.fullmatch(name):
        raise ValueError(
            f"'{name}' is not a name: names use lowercase letters, digits and '-', start and end with "
            "a letter or digit"
        )
    return value


UnitRef = Annotated[
    str,
    AfterValidator(_unit_ref),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": UNIT_REF_PATTERN,
            "description": "An Agent, Pipeline or Supervisor: its name, or Kind/name when names collide.",
        }
    ),
]


def _json_path(value: str) -> str:
    parse_path(value)  # raises JsonPathError (a ValueError) naming what is wrong and where
    return value


JsonPathText = Annotated[
    str,
    AfterValidator(_json_path),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\$",
            "description": "A JSON path naming one value: `$` (all of it), then `.member`, "
            "`['any member']` and `[index]` (negative from the end), e.g. `$.findings[0].line`.",
        }
    ),
]

_CHECK_OPERATORS = ("equals", "matches", "schema")


class ValueCheck(SpecModel):
    """A check on one value of a JSON document (a run's output, a tool call's arguments): the value
    at `path` equals a value, matches a regular expression, or satisfies a JSON Schema. Exactly
    one of `equals`, `matches` and `schema`."""

    path: JsonPathText = Field(default="$", description="Which value; `$` is the whole document.")
    equals: Any = Field(
        default=None,
        description="The expected value, compared as JSON: 1 and 1.0 are equal, true and 1 are not, "
        "objects are equal whatever their key order. `equals: null` expects null.",
    )
    matches: NonEmptyStr | None = Field(
        default=None,
        description="A Python regular expression searched in the value, which must be a string "
        "(anchor it with ^ and $ to match all of it).",
    )
    json_schema: JsonSchema | None = Field(
        default=None, alias="schema", description="A JSON Schema the value must satisfy."
    )

    @field_validator("matches")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _one_operator(self) -> Self:
        chosen = [op for op in _CHECK_OPERATORS if self._has(op)]
        if len(chosen) != 1:
            found = ", ".join(chosen) if chosen else "none"
            raise FieldError(
                f"a check needs exactly one of equals, matches, schema (found: {found})", *chosen[1:2]
            )
        return self

    def _has(self, operator: str) -> bool:
        if operator == "equals":
            return "equals" in self.model_fields_set
        return getattr(self, "json_schema" if operator == "schema" else operator) is not None

    @property
    def operator(self) -> Literal["equals", "matches", "schema"]:
        """The check's operator, which is also its key in the YAML."""
        return "equals" if self._has("equals") else "matches" if self.matches is not None else "schema"

    @property
    def json_path(self) -> JsonPath:
        return parse_path(self.path)


class ExpectedToolCall(SpecModel):
    """A tool call the run must have made: the tool, optionally who called it, and checks on its
    arguments."""

    tool: ResourceName
    by: UnitRef | None = Field(
        default=None,
        description="Only a call made by this agent or pipeline (a delegate, a pipeline step's agent, "
        "a supervisor's route). Default: any run within the test's.",
    )
    arguments: list[ValueCheck] = Field(
        default_factory=list, description="Checks on the call's arguments; `$` is the arguments object."
    )


class ToolExpectations(SpecModel):
    """The tool calls of the run and of its sub-runs (delegates, pipeline steps, a supervisor's
    tasks). A call counts once the tool executor received it: whether it succeeded, failed or
    waited for approval. An action a guardrail blocked never reached a tool."""

    called: list[ExpectedToolCall] = Field(
        default_factory=list, description="Calls that were made, each matched by a different call."
    )
    in_order: bool = Field(
        default=True,
        description="The calls in `called` were made in this order (other calls may come between, "
        "unless `only`). `false`: in any order.",
    )
    only: bool = Field(
        default=False,
        description="No other call was made: `called` lists every call (with an empty `called`, the "
        "run made no tool call at all).",
    )
    not_called: list[ResourceName] = Field(default_factory=list, description="Tools never called.")

    @model_validator(mode="after")
    def _not_both(self) -> Self:
        expected = {call.tool for call in self.called}
        for index, tool in enumerate(self.not_called):
            if tool in expected:
                raise FieldError(
                    f"'{tool}' is both in called and in not_called: no run can do both",
                    "not_called",
                    index,
                    at_key=False,
                )
        return self


class ExpectedGuardrailEvent(SpecModel):
    """A guardrail that triggered (warned, redacted, blocked or halted) at least once."""

    guardrail: ResourceName
    verdict: GuardrailVerdict | None = Field(default=None, description="What it did. Default: anything.")
    stage: Stage | None = Field(default=None, description="Where it ran. Default: any stage.")


class GuardrailExpectations(SpecModel):
    """Guardrail decisions in the run and its sub-runs. A guardrail that passes content leaves no
    event; one that warns, redacts, blocks or halts does."""

    triggered: list[ExpectedGuardrailEvent] = Field(
        default_factory=list, description="Guardrails that triggered, each at least once."
    )
    not_triggered: list[ResourceName] = Field(
        default_factory=list, description="Guardrails that never triggered."
    )

    @model_validator(mode="after")
    def _not_both(self) -> Self:
        expected = {event.guardrail for event in self.triggered}
        for index, name in enumerate(self.not_triggered):
            if name in expected:
                raise FieldError(
                    f"'{name}' is both in triggered and in not_triggered: no run can do both",
                    "not_triggered",
                    index,
                    at_key=False,
                )
        return self


def _check_bounds(bounds: Any) -> None:
    if bounds.equals is None and bounds.min is None and bounds.max is None:
        raise ValueError("give equals, or min and/or max")
    if bounds.equals is not None and (bounds.min is not None or bounds.max is not None):
        raise FieldError("give equals, or min and/or max, not both", "equals")
    if bounds.min is not None and bounds.max is not None and bounds.min > bounds.max:
        raise FieldError(f"min ({bounds.min}) is above max ({bounds.max})", "min")


class CountBounds(SpecModel):
    """A count: exactly `equals`, or from `min` to `max` (inclusive; either may be left out)."""

    equals: int | None = Field(default=None, ge=0)
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_bounds(self)
        return self


class CostBounds(SpecModel):
    """An amount in USD: exactly `equals`, or from `min` to `max` (inclusive; either may be left out)."""

    equals: float | None = Field(default=None, ge=0)
    min: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_bounds(self)
        return self


class UsageExpectations(SpecModel):
    """What the run used, its sub-runs included; model calls that failed count, as in budgets."""

    input_tokens: CountBounds | None = None
    output_tokens: CountBounds | None = None
    total_tokens: CountBounds | None = Field(default=None, description="Input + output tokens.")
    cost_usd: CostBounds | None = Field(default=None, description="Needs priced models (`pricing`).")
    tool_calls: CountBounds | None = Field(default=None, description="Tool calls made, as budgeted.")


class Expectations(SpecModel):
    """What must hold when the run ends. Every expectation given is checked, and every one that
    fails is reported with what was expected, what happened and the line that expects it."""

    outcome: RunOutcome = Field(default="completed", description="How the run ended.")
    output: list[ValueCheck] = Field(
        default_factory=list,
        description="Checks on the run's output, each a `path` and one of `equals`, `matches`, "
        "`schema`. A supervisor's output maps each task_id to its task's result: {task_type, "
        "target, outcome, output, error, start_order}.",
    )
    tools: ToolExpectations | None = None
    guardrails: GuardrailExpectations | None = None
    iterations: CountBounds | None = Field(
        default=None,
        description="Model decisions of the agent under test (its delegates' are their own); agents only.",
    )
    usage: UsageExpectations | None = None


class TestSpec(SpecModel):
    """`platform test` runs every Test in parallel, in-process. `validate` checks each against the
    unit it runs: an unknown unit or model, inputs the unit's schema rejects, an expectation no run
    can meet (a tool it cannot reach, an outcome it cannot end with, a path its output cannot have).
    The run uses the real tools: a tool with side effects acts."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    unit: UnitRef = Field(description="What to run: an Agent, Pipeline or Supervisor.")
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="The run's inputs, checked against the unit's inputs schema by `validate`. A "
        'supervisor takes {"tasks": [{task_id, task_type, payload, priority}]}.',
    )
    model: ModelRef | None = Field(
        default=None,
        description="A Model (by name or inline, typically scripted with its own script) that answers "
        "every model call of the run: its agents' decisions, its delegates', its llm steps and "
        "memory compaction (an injection_classifier guardrail keeps its own). Default: each "
        "unit's own models.",
    )
    approve_all: bool = Field(
        default=False,
        description="Approve every tool call that needs approval, as `platform run --approve-all`. "
        "Without it such a call ends the run `needs_approval`.",
    )
    tenant: NonEmptyStr | None = Field(
        default=None,
        description="Whose data the run works on (scopes long-term memory), as `platform run "
        "--tenant`. Default: 'default'.",
    )
    timeout: Duration = Field(
        default=300.0, description="Wall time of the run; the unit's own limits apply as well."
    )
    expect: Expectations = Field(
        default_factory=lambda: Expectations(), description="Default: the run completes."
    )


# --- Endpoint ---------------------------------------------------------------------------------


class EndpointAuth(SpecModel):
    """Who may call the endpoint: a bearer token read from the environment of the process that
    applies it (secrets never live in YAML), or nobody checked at all (local development)."""

    token_env: EnvVarName | None = Field(
        default=None,
        description="The environment variable holding the bearer token every request must carry "
        "(`Authorization: Bearer <token>`). `apply` refuses to deploy the endpoint when it is unset.",
    )
    insecure: bool = Field(
        default=False,
        description="No token at all: anyone who reaches the port may start runs and decide "
        "approvals. For local development only.",
    )

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        if (self.token_env is None) == (not self.insecure):
            raise FieldError(
                "auth needs exactly one of token_env (a bearer token) or insecure: true (no token, "
                "local development only)",
                *(["insecure"] if self.token_env is not None else []),
            )
        return self


class EndpointSpec(SpecModel):
    """Serves units over HTTP on Ray Serve (`platform apply`; `platform serve --api` for local
    development): start runs (waiting for the result or detached), read, list and cancel them,
    decide approvals. The OpenAPI document is generated from the units' input and output schemas."""

    units: list[UnitRef] = Field(
        default_factory=list,
        description="The agents, pipelines and supervisors served (name, or Kind/name). Default: "
        "every one in the specs.",
    )
    auth: EndpointAuth = Field(description="A bearer token from the environment, or insecure: true.")
    host: str = Field(default="127.0.0.1", description="Where Ray Serve's HTTP proxy listens.")
    port: int = Field(default=8000, ge=1, le=65535)
    route_prefix: Annotated[str, Field(pattern=r"^/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$")] = Field(
        default="/", description="The path the API is served under (`/v1/...` follows it)."
    )
    max_body: ByteSize = Field(
        default=1024 * 1024, description="Largest request body accepted (413 beyond it), e.g. '1Mi'."
    )
    concurrency: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Runs of one unit in flight through one endpoint replica; more get 429 with Retry-After.",
    )
    wait_timeout: Duration = Field(
        default=300.0,
        description="The longest a request asking to wait (`?wait=true`) is held; the run goes on "
        "after that and the answer is 202 with its id.",
    )
    replicas: int = Field(default=1, ge=1, le=100, description="Ray Serve replicas of the API.")
    num_cpus: float = Field(default=0.1, ge=0, description="CPUs reserved per API replica.")


# --- RemoteAgent ------------------------------------------------------------------------------


class RemoteAgentCard(SpecModel):
    """What the remote agent's A2A card must say: `platform plan` and `apply` fetch the card and
    check it (`validate` stays offline and does not)."""

    name: NonEmptyStr | None = Field(default=None, description="The card's `name`.")
    skills: list[NonEmptyStr] = Field(
        default_factory=list, description="Skill ids (or names) the card must offer."
    )
    url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        default=None,
        description="Where the card is, when not at `<url>/.well-known/agent-card.json`.",
    )


class RemoteAgentAuth(SpecModel):
    token_env: EnvVarName = Field(
        description="The environment variable holding the bearer token sent to the remote agent "
        "(read where the calling agent runs)."
    )


class RemoteRetry(SpecModel):
    """Retries of sending the message: a connection error, a timeout or an HTTP 429/5xx before
    the remote agent accepted it. A task the remote agent ran and failed is not sent again."""

    max_attempts: int = Field(default=3, ge=1, le=20, description="Total attempts, including the first.")
    backoff: Backoff = Field(default_factory=Backoff)


class RemoteAgentSpec(SpecModel):
    """An agent served elsewhere over A2A (JSON-RPC binding), usable as a delegate of an Agent like
    a local one: the calling agent sends its task as a data part and follows the remote task to
    its end (`metadata.description` is how the calling model sees it). `inputs` and `output` are
    what callers see; `plan` checks them against the card."""

    url: Annotated[str, Field(pattern=r"^https?://")] = Field(
        description="The agent's A2A base URL: its card is at `<url>/.well-known/agent-card.json`."
    )
    card: RemoteAgentCard = Field(
        default_factory=lambda: RemoteAgentCard(), description="What its card must say."
    )
    inputs: JsonSchema = Field(default_factory=lambda: {"type": "object"})
    output: JsonSchema | None = Field(default=None, description="Schema of its answer (the task's output).")
    auth: RemoteAgentAuth | None = Field(default=None, description="A bearer token from the environment.")
    timeout: Duration = Field(
        default=300.0, description="How long one call may take, from sending to the task's end."
    )
    retry: RemoteRetry = Field(default_factory=lambda: RemoteRetry())


# --- documents --------------------------------------------------------------------------------


class _Document(SpecModel):
    apiVersion: ApiVersion
    metadata: Metadata


class ModelDocument(_Document):
    kind: Literal["Model"]
    spec: ModelSpec


class ToolDocument(_Document):
    kind: Literal["Tool"]
    spec: ToolSpec


class McpServerDocument(_Document):
    kind: Literal["McpServer"]
    spec: McpServerSpec


class MemoryDocument(_Document):
    kind: Literal["Memory"]
    spec: MemorySpec


class GuardrailDocument(_Document):
    kind: Literal["Guardrail"]
    spec: GuardrailSpec


class AgentDocument(_Document):
    kind: Literal["Agent"]
    spec: AgentSpec


class PipelineDocument(_Document):
    kind: Literal["Pipeline"]
    spec: PipelineSpec


class SupervisorDocument(_Document):
    kind: Literal["Supervisor"]
    spec: SupervisorSpec


class EndpointDocument(_Document):
    kind: Literal["Endpoint"]
    spec: EndpointSpec


class RemoteAgentDocument(_Document):
    kind: Literal["RemoteAgent"]
    spec: RemoteAgentSpec


class TestDocument(_Document):
    __test__: ClassVar[bool] = False  # not a pytest test class

    kind: Literal["Test"]
    spec: TestSpec


SpecDocument = (
    ModelDocument
    | ToolDocument
    | McpServerDocument
    | MemoryDocument
    | GuardrailDocument
    | AgentDocument
    | PipelineDocument
    | SupervisorDocument
    | EndpointDocument
    | RemoteAgentDocument
    | TestDocument
)
AnyDocument = Annotated[SpecDocument, Field(discriminator="kind")]

DOCUMENT_MODELS: dict[str, type[_Document]] = {
    "Model": ModelDocument,
    "Tool": ToolDocument,
    "McpServer": McpServerDocument,
    "Memory": MemoryDocument,
    "Guardrail": GuardrailDocument,
    "Agent": AgentDocument,
    "Pipeline": PipelineDocument,
    "Supervisor": SupervisorDocument,
    "Endpoint": EndpointDocument,
    "RemoteAgent": RemoteAgentDocument,
    "Test": TestDocument,
}
KINDS: tuple[str, ...] = tuple(DOCUMENT_MODELS)
# What `plan` compiles and `apply` deploys. A Test checks those and is neither: it is validated
# with them, and run by `platform test`.
DEPLOYABLE_KINDS: frozenset[str] = frozenset(KINDS) - {"Test"}
