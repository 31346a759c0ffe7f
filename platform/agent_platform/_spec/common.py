"""Building blocks shared by every spec kind: names, durations, sizes, policies, runtime."""

import math
import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
STEP_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PYTHON_REF_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"

ResourceName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
StepName = Annotated[str, StringConstraints(pattern=STEP_NAME_PATTERN)]
EnvVarName = Annotated[str, StringConstraints(pattern=ENV_VAR_PATTERN)]
PythonRef = Annotated[
    str,
    StringConstraints(pattern=PYTHON_REF_PATTERN),
    Field(description="A Python object as 'package.module:attribute'."),
]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]

# A JSON Schema (Draft 2020-12) as written in YAML; checked as a whole by the validator.
JsonSchema = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "description": "A JSON Schema (Draft 2020-12)."}),
]


class FieldError(ValueError):
    """A rule that spans fields, raised by a model validator, naming the field at fault so the
    error is reported at that field's position rather than at the start of the mapping."""

    def __init__(self, message: str, *field: str | int, at_key: bool = True) -> None:
        super().__init__(message)
        self.field: tuple[str | int, ...] = field
        self.at_key = at_key


class SpecModel(BaseModel):
    """Base for every spec model: unknown fields are errors, and no silent coercion
    ("5" is not an integer, "off" is not a boolean). Numbers are finite: YAML's `.inf` and `.nan`
    are floats, and no limit, price or weight means either."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True, allow_inf_nan=False)


# --- durations and sizes ----------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_FULL = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_REGEX = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
# The longest duration a spec may give: whatever reads one (asyncio timers, a store's expiry
# arithmetic, Ray) then works with ordinary finite floats. A century is longer than any timeout,
# TTL or retention anyone means.
MAX_DURATION_SECONDS = 100 * 365 * 86_400
_DURATION_SHAPE = "a number of seconds or a string like '30s', '5m', '1h'"


def _as_float(number: int | float | str) -> float:
    """`number` as a float; one too large for a float is infinite (and then refused)."""
    try:
        return float(number)
    except OverflowError:  # an int beyond the float range (10**400)
        return math.inf


def parse_duration(value: Any) -> Any:
    """'300s', '5m', '1h30m', '250ms', '7d' or a number of seconds -> float seconds, finite,
    greater than zero and at most MAX_DURATION_SECONDS."""
    if isinstance(value, bool):
        raise ValueError(f"a duration must be {_DURATION_SHAPE}")
    if isinstance(value, int | float):
        seconds = _as_float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _DURATION_FULL.match(text):
            raise ValueError(
                f"invalid duration {_shown(value)}: use a number of seconds or units ms, s, m, h, d "
                "(e.g. '300s', '5m', '1h30m')"
            )
        seconds = sum(_as_float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    else:
        raise ValueError(f"a duration must be {_DURATION_SHAPE}")
    if math.isnan(seconds):
        raise ValueError("a duration must be a number, not NaN")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"a duration must be at most 100 years ({MAX_DURATION_SECONDS:,} s)")
    return seconds


def _shown(value: str) -> str:
    """A value quoted in a message, shortened: a message must not repeat a 100 kB string."""
    return repr(value) if len(value) <= 40 else repr(value[:37] + "...")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_REGEX},
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_SECONDS},
            ],
            "description": "Seconds, or a duration such as '300s', '5m', '1h30m', '250ms', '7d'.",
        }
    ),
]

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T|B)?$")
_SIZE_FACTOR = {
    None: 1,
    "B": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
SIZE_REGEX = r"^[0-9]+(\.[0-9]+)?\s*(Ki|Mi|Gi|Ti|K|M|G|T|B)?$"
# The largest size a spec may give (1 PiB, more than any node has): sizes become Ray resource
# amounts and byte counts in arithmetic that expects machine-sized integers.
MAX_BYTE_SIZE = 2**50


def parse_byte_size(value: Any) -> Any:
    """Bytes, or '512Mi', '2Gi', '1G' -> an int, greater than zero and at most MAX_BYTE_SIZE."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '512Mi' or '2Gi'")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value.strip())):
        amount = _as_float(m.group(1))
        if amount * _SIZE_FACTOR[m.group(2)] > MAX_BYTE_SIZE:
            raise ValueError(f"a size must be at most 1Pi ({MAX_BYTE_SIZE:,} bytes)")
        size = int(amount * _SIZE_FACTOR[m.group(2)])
    else:
        shown = _shown(value) if isinstance(value, str) else repr(value)
        raise ValueError(f"invalid size {shown}: use bytes or a string like '512Mi', '2Gi', '1G'")
    if size <= 0:
        raise ValueError("a size must be greater than zero")
    if size > MAX_BYTE_SIZE:
        raise ValueError(f"a size must be at most 1Pi ({MAX_BYTE_SIZE:,} bytes)")
    return size


ByteSize = Annotated[
    int,
    BeforeValidator(parse_byte_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": SIZE_REGEX},
                {"type": "integer", "minimum": 1, "maximum": MAX_BYTE_SIZE},
            ],
            "description": "Bytes, or a size such as '512Mi', '2Gi', '1G'.",
        }
    ),
]


# --- metadata ---------------------------------------------------------------------------------


class Metadata(SpecModel):
    name: ResourceName = Field(description="Unique per kind; lowercase letters, digits and '-'.")
    description: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


# --- policies ---------------------------------------------------------------------------------

RetryCategory = Literal["timeout", "connection", "rate_limit", "server_error", "validation"]
RETRY_CATEGORIES: tuple[str, ...] = ("timeout", "connection", "rate_limit", "server_error", "validation")


class Backoff(SpecModel):
    """Exponential backoff between attempts: initial * multiplier**n, capped at max, with jitter."""

    initial: Duration = 0.5
    max: Duration = 30.0
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: Literal["full", "equal", "none"] = "full"

    @model_validator(mode="after")
    def _initial_below_max(self) -> Self:
        if self.initial > self.max:
            raise FieldError("backoff.initial must not exceed backoff.max", "initial", at_key=False)
        return self


class RetryPolicy(SpecModel):
    max_attempts: int = Field(default=3, ge=1, le=100, description="Total attempts, including the first.")
    backoff: Backoff = Field(default_factory=Backoff)
    retry_on: list[RetryCategory | PythonRef] = Field(
        default_factory=lambda: ["timeout", "connection", "rate_limit", "server_error"],
        description="Error categories, or exception classes as 'module:Class', that are retried.",
    )


class CircuitBreakerPolicy(SpecModel):
    """closed -> open after `failure_threshold` consecutive failures -> half-open after `reset_after`."""

    failure_threshold: int = Field(default=5, ge=1)
    reset_after: Duration = 30.0
    half_open_max_calls: int = Field(default=1, ge=1)


class IdempotencyPolicy(SpecModel):
    """`cache` memoises results for `ttl` (for pure tools); `key` stores each result durably under an
    idempotency key so a retried or resumed run never repeats a side effect."""

    mode: Literal["none", "cache", "key"] = "none"
    ttl: Duration | None = Field(default=None, description="cache: entry lifetime; key: retention.")
    max_entries: int = Field(default=10_000, ge=1, description="cache mode: bound on cached results.")
    key: str | None = Field(
        default=None,
        description="key mode: Jinja2 template over `args` and `run` giving the key; "
        "default: run id + tool + canonical arguments.",
    )

    @model_validator(mode="after")
    def _fields_match_mode(self) -> Self:
        if self.mode == "none" and (self.ttl is not None or self.key is not None):
            field = "ttl" if self.ttl is not None else "key"
            raise FieldError("ttl and key only apply when mode is 'cache' or 'key'", field)
        if self.mode == "cache" and self.key is not None:
            raise FieldError("'key' applies only to mode 'key'; cache mode keys on the arguments", "key")
        return self


# --- runtime placement ------------------------------------------------------------------------


class Resources(SpecModel):
    num_cpus: float = Field(default=1.0, ge=0, description="CPUs reserved per replica (fractions allowed).")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs reserved per replica (fractions allowed).")
    memory: ByteSize | None = Field(default=None, description="Memory reserved per replica, e.g. '512Mi'.")
    custom: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Custom Ray resources, e.g. {gpu_node: 1}."
    )


PlacementStrategy = Literal["any", "spread", "pack", "colocate"]


def _placement_shorthand(value: Any) -> Any:
    return {"strategy": value} if isinstance(value, str) else value


class Placement(SpecModel):
    """Where replicas go: `spread` across nodes, `pack` together, `colocate` with the supervisor
    that calls them; `node_labels` / `node_resources` pin them to matching nodes."""

    strategy: PlacementStrategy = "any"
    node_labels: dict[str, str] = Field(default_factory=dict)
    node_resources: list[str] = Field(
        default_factory=list, description="Custom resources a node must carry to host a replica."
    )


PlacementField = Annotated[
    Placement,
    BeforeValidator(_placement_shorthand, json_schema_input_type=PlacementStrategy | Placement),
]


class RuntimeSpec(SpecModel):
    replicas: int = Field(
        default=1, ge=1, le=1000, description="Actors serving this unit; calls are balanced."
    )
    resources: Resources = Field(default_factory=Resources, description="Per replica.")
    placement: PlacementField = Field(
        default_factory=Placement, description="A strategy name, or {strategy, node_labels, node_resources}."
    )
    max_concurrency: int = Field(default=100, ge=1, description="Concurrent calls one replica serves.")
    max_restarts: int = Field(default=3, ge=-1, description="-1 restarts forever.")


class Limits(SpecModel):
    max_iterations: int = Field(default=20, ge=1, le=10_000, description="Model decisions per run.")
    timeout: Duration = Field(default=300.0, description="Wall time of a whole run.")
    max_total_tokens: int | None = Field(default=None, ge=1, description="Input + output tokens per run.")
    max_cost_usd: float | None = Field(default=None, gt=0, description="Needs the model's pricing.")
    max_tool_calls: int | None = Field(default=None, ge=1, description="Tool calls per run.")
