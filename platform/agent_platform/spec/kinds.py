"""One pydantic model per spec kind. These models are the spec format: the JSON Schemas in
`schemas/` and `docs/spec-reference.md` are generated from them."""

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from agent_platform import API_VERSION
from agent_platform.spec.common import (
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

ApiVersion = Literal["agents.platform/v1"]
assert API_VERSION == "agents.platform/v1"

# --- Model ------------------------------------------------------------------------------------


class Pricing(SpecModel):
    """USD per million tokens; used to enforce cost budgets."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class ModelSpec(SpecModel):
    """A language model endpoint: provider, model id, limits, retries and pricing."""

    provider: Literal["anthropic", "openai", "scripted"] = Field(
        description="`scripted` is a deterministic replay provider for tests, demos and offline runs."
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

    @model_validator(mode="after")
    def _provider_fields(self) -> Self:
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
        return self


ModelRef = Annotated[
    ResourceName | ModelSpec,
    Field(description="A Model by name, or an inline model {provider, name, ...}."),
]

# --- Tool -------------------------------------------------------------------------------------


class HttpImplementation(SpecModel):
    url: NonEmptyStr = Field(description="Jinja2 template over `args`.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict, description="Values are templates; `env.NAME` reads the environment."
    )
    query: dict[str, str] = Field(default_factory=dict)
    body: str | dict[str, Any] | None = Field(
        default=None, description="Template for the body; default: the arguments as JSON."
    )


class McpImplementation(SpecModel):
    server: NonEmptyStr = Field(description="Command line (stdio) or URL (http) of the MCP server.")
    transport: Literal["stdio", "http"] = "stdio"
    tool: NonEmptyStr = Field(description="The tool's name on that server.")


class ToolIsolation(SpecModel):
    """Run each call as a separate Ray task with its own resources (heavy or GPU tools)."""

    mode: Literal["inline", "task"] = "inline"
    resources: Resources = Field(default_factory=Resources)


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
    requires_approval: bool = Field(default=False, description="Each call waits for a human approval.")
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
        bad_stages = [(i, s) for i, s in enumerate(self.applies_to) if s not in self.allowed_stages]
        if bad_stages:
            allowed = ", ".join(sorted(self.allowed_stages))
            names = ", ".join(s for _, s in bad_stages)
            message = f"a {kind} guardrail cannot apply to {names} (allowed: {allowed})"
            raise FieldError(message, "applies_to", bad_stages[0][0], at_key=False)
        if self.action not in self.allowed_actions:
            allowed = ", ".join(sorted(self.allowed_actions))
            message = f"a {kind} guardrail cannot '{self.action}' (allowed: {allowed})"
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
    function: PythonRef


GuardrailSpec = Annotated[
    PromptInjectionGuardrail
    | LoopDetectionGuardrail
    | PiiRedactionGuardrail
    | ToolAllowlistGuardrail
    | BudgetGuardrail
    | OutputSchemaGuardrail
    | RegexGuardrail
    | PythonGuardrail,
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
)

# --- Agent ------------------------------------------------------------------------------------


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
    delegates: list[ResourceName] = Field(default_factory=list, description="Agents it may hand work to.")
    memory: ResourceName | None = None
    remember: list[ResourceName] = Field(
        default_factory=list,
        description="Tools whose results are written to the agent's episodic memory (as facts "
        "with the tool's provenance and the layer's trust level).",
    )
    guardrails: list[ResourceName] = Field(default_factory=list)
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
    guardrails: list[ResourceName] = Field(default_factory=list)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)


# --- Supervisor -------------------------------------------------------------------------------


class Route(SpecModel):
    agent: ResourceName | None = None
    pipeline: ResourceName | None = None
    priority_boost: int = Field(default=0, description="Added to every task of this type.")
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.agent is None) == (self.pipeline is None):
            raise FieldError(
                "a route needs exactly one of agent or pipeline", *(["pipeline"] if self.agent else [])
            )
        return self

    @property
    def target(self) -> tuple[str, str]:
        return ("Agent", self.agent) if self.agent is not None else ("Pipeline", self.pipeline or "")


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


SpecDocument = (
    ModelDocument
    | ToolDocument
    | MemoryDocument
    | GuardrailDocument
    | AgentDocument
    | PipelineDocument
    | SupervisorDocument
)
AnyDocument = Annotated[SpecDocument, Field(discriminator="kind")]

DOCUMENT_MODELS: dict[str, type[_Document]] = {
    "Model": ModelDocument,
    "Tool": ToolDocument,
    "Memory": MemoryDocument,
    "Guardrail": GuardrailDocument,
    "Agent": AgentDocument,
    "Pipeline": PipelineDocument,
    "Supervisor": SupervisorDocument,
}
KINDS: tuple[str, ...] = tuple(DOCUMENT_MODELS)
