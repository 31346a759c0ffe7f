"""Run events: what a run does, as it does it, for people and programs following it live.

One typed model per kind of event, discriminated on `kind`. Each kind names the AG-UI event it
is sent as (`AG_UI_TYPE`): the run's start and end (RUN_STARTED, RUN_FINISHED with the run's
outcome, RUN_ERROR for a failed run), agent iterations and pipeline steps (STEP_STARTED,
STEP_FINISHED) and tool calls (TOOL_CALL_START, TOOL_CALL_END). What AG-UI has no event for goes
as CUSTOM with `kind` as its name: model calls (with their usage and cost), guardrail verdicts,
approval requests and committed checkpoints. No provider streams tokens today (every model call
asks for one structured answer), so there is no token event.

An event belongs to the run that made it (`run_id`); the run store numbers the events of a run's
whole tree (its top-level run, hand-offs and sub-runs included) in one sequence, so a follower
of the top-level run sees every sub-run's events in the order they were stored. The runtime
hands events to an `EventSink` (`RunState.events`, set only where a run store records the run);
`_runtime/event_log.py` writes them behind the run."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class BaseRunEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    AG_UI_TYPE: ClassVar[str] = "CUSTOM"
    kind: str


class RunStarted(BaseRunEvent):
    AG_UI_TYPE: ClassVar[str] = "RUN_STARTED"
    kind: Literal["run.started"] = "run.started"
    unit: str
    parent_run_id: str | None = None


class RunFinished(BaseRunEvent):
    """The run ended without failing: completed, stopped by a limit or a guardrail, paused for
    approval (`needs_approval`) or cancelled."""

    AG_UI_TYPE: ClassVar[str] = "RUN_FINISHED"
    kind: Literal["run.finished"] = "run.finished"
    unit: str
    outcome: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None


class RunError(BaseRunEvent):
    """The run failed (outcome `failed`)."""

    AG_UI_TYPE: ClassVar[str] = "RUN_ERROR"
    kind: Literal["run.error"] = "run.error"
    unit: str
    error: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class StepStarted(BaseRunEvent):
    """An agent iteration (`iteration` is its number) or a pipeline step began."""

    AG_UI_TYPE: ClassVar[str] = "STEP_STARTED"
    kind: Literal["step.started"] = "step.started"
    step: str
    iteration: int | None = None


class StepFinished(BaseRunEvent):
    AG_UI_TYPE: ClassVar[str] = "STEP_FINISHED"
    kind: Literal["step.finished"] = "step.finished"
    step: str
    iteration: int | None = None
    ok: bool = True
    paused: bool = False  # it ended on a call that waits for a person's decision


class ModelCallStarted(BaseRunEvent):
    kind: Literal["model_call.started"] = "model_call.started"
    call_id: str
    model: str
    provider: str


class ModelCallFinished(BaseRunEvent):
    kind: Literal["model_call.finished"] = "model_call.finished"
    call_id: str
    model: str
    provider: str
    ok: bool = True
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    error_type: str | None = None


class ToolCallStarted(BaseRunEvent):
    AG_UI_TYPE: ClassVar[str] = "TOOL_CALL_START"
    kind: Literal["tool_call.started"] = "tool_call.started"
    call_id: str
    tool: str


class ToolCallFinished(BaseRunEvent):
    """`outcome`: ok, error (the model is told), or needs_approval (the call was not made)."""

    AG_UI_TYPE: ClassVar[str] = "TOOL_CALL_END"
    kind: Literal["tool_call.finished"] = "tool_call.finished"
    call_id: str
    tool: str
    outcome: Literal["ok", "error", "needs_approval"]
    error_type: str | None = None
    attempts: int = 1
    cached: bool = False


class GuardrailVerdict(BaseRunEvent):
    kind: Literal["guardrail.verdict"] = "guardrail.verdict"
    guardrail: str
    type: str
    verdict: str
    stage: str
    reason: str = ""


class ApprovalRequested(BaseRunEvent):
    """A call waits for a person's decision (`platform approve`, or POST .../approvals/{call})."""

    kind: Literal["approval.requested"] = "approval.requested"
    call_key: str
    tool: str
    asking_run_id: str
    reasons: list[str] = Field(default_factory=list)


class CheckpointWritten(BaseRunEvent):
    """The run's state after step `seq` is committed: a resume starts after it."""

    kind: Literal["checkpoint.written"] = "checkpoint.written"
    seq: int


RunEvent = Annotated[
    RunStarted
    | RunFinished
    | RunError
    | StepStarted
    | StepFinished
    | ModelCallStarted
    | ModelCallFinished
    | ToolCallStarted
    | ToolCallFinished
    | GuardrailVerdict
    | ApprovalRequested
    | CheckpointWritten,
    Field(discriminator="kind"),
]

RUN_EVENT: TypeAdapter[RunEvent] = TypeAdapter(RunEvent)


def parse_event(kind: str, data: dict[str, Any]) -> RunEvent:
    """A stored event back as its typed model (`data` without its kind is accepted)."""
    return RUN_EVENT.validate_python({**data, "kind": kind})


class EventSink(Protocol):
    """Where a run's events go. `emit` must return at once and never raise: following a run
    never slows or fails it."""

    def emit(self, run_id: str, event: BaseRunEvent) -> None: ...


def parent_of(run_id: str) -> str | None:
    """The run that started `run_id` (its id without the last `/…`), None for a top-level run."""
    parent, slash, _ = run_id.rpartition("/")
    return parent if slash else None


def run_end_event(unit: str, outcome: str, result: Any) -> RunFinished | RunError:
    """How a run ended, from its `RunResult`: RUN_ERROR when it failed, RUN_FINISHED otherwise."""
    usage = result.usage
    if outcome == "failed":
        return RunError(
            unit=unit,
            error=result.error or "failed",
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=result.cost_usd,
        )
    return RunFinished(
        unit=unit,
        outcome=outcome,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=result.cost_usd,
        error=result.error,
    )
