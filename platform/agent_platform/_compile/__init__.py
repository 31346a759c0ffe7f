"""Compile layer: a validated spec set -> a Plan of executable units (no Ray needed)."""

from agent_platform._compile.compiler import build_output_models, compile_specs, spec_hash
from agent_platform._compile.plan import (
    AgentLoopUnit,
    ExecutionMode,
    PipelineUnit,
    Plan,
    SpecRef,
    SupervisorUnit,
)

__all__ = [
    "AgentLoopUnit",
    "ExecutionMode",
    "PipelineUnit",
    "Plan",
    "SpecRef",
    "SupervisorUnit",
    "build_output_models",
    "compile_specs",
    "spec_hash",
]
