"""The names spans carry: the OpenTelemetry GenAI semantic conventions' attributes, this
platform's own, and its events. The facade sets them; readers (the span tree, tests) read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry.util.types import AttributeValue

INSTRUMENTATION_NAME: Final = "agent_platform._runtime"

# --- attribute names ---------------------------------------------------------------------------
# GenAI semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/).
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # the older name; still read by many backends
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"  # opt-in content
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"  # opt-in content
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"  # opt-in content
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"  # opt-in content
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"  # opt-in content
ERROR_TYPE: Final = "error.type"

# This platform's own attributes.
AP_UNIT_KIND: Final = "agent_platform.unit.kind"
AP_UNIT_NAME: Final = "agent_platform.unit.name"
AP_RUN_ID: Final = "agent_platform.run.id"
AP_RUN_OUTCOME: Final = "agent_platform.run.outcome"
AP_ITERATION: Final = "agent_platform.iteration"
AP_MODEL_KEY: Final = "agent_platform.model.key"
AP_MODEL_SCRIPTED: Final = "agent_platform.model.scripted"
AP_MODEL_ATTEMPTS: Final = "agent_platform.model.attempts"
AP_COST_USD: Final = "agent_platform.cost_usd"
AP_TOOL_ATTEMPTS: Final = "agent_platform.tool.attempts"
AP_TOOL_CACHED: Final = "agent_platform.tool.cached"
AP_TOOL_IDEMPOTENT_REPLAY: Final = "agent_platform.tool.idempotent_replay"
AP_TOOL_SIDE_EFFECTS: Final = "agent_platform.tool.side_effects"
AP_COMPACTION_TOKENS_BEFORE: Final = "agent_platform.compaction.tokens_before"
AP_COMPACTION_TOKENS_AFTER: Final = "agent_platform.compaction.tokens_after"
AP_COMPACTION_MESSAGES_BEFORE: Final = "agent_platform.compaction.messages_before"
AP_COMPACTION_MESSAGES_AFTER: Final = "agent_platform.compaction.messages_after"
AP_COMPACTION_MODEL: Final = "agent_platform.compaction.model"
AP_MEMORY_NAME: Final = "agent_platform.memory.name"
AP_MEMORY_OPERATION: Final = "agent_platform.memory.operation"
AP_MEMORY_CANDIDATES: Final = "agent_platform.memory.candidates"
AP_MEMORY_SHOWN: Final = "agent_platform._memory.items"
AP_MEMORY_FENCED: Final = "agent_platform.memory.fenced"
AP_MEMORY_DUPLICATES: Final = "agent_platform.memory.duplicates"
AP_MEMORY_TOKENS: Final = "agent_platform.memory.tokens"
AP_MEMORY_BUDGET: Final = "agent_platform.memory.token_budget"
AP_PIPELINE_NAME: Final = "agent_platform.pipeline.name"
AP_STEP_NAME: Final = "agent_platform.step.name"
AP_STEP_INDEX: Final = "agent_platform.step.index"
AP_STEP_KIND: Final = "agent_platform.step.kind"
AP_SUPERVISOR_NAME: Final = "agent_platform.supervisor.name"
AP_TASK_ID: Final = "agent_platform.task.id"
AP_TASK_TYPE: Final = "agent_platform.task.type"
AP_TASK_PRIORITY: Final = "agent_platform.task.priority"
AP_CANCELLED: Final = "agent_platform.cancelled"

# Events.
EVENT_GUARDRAIL: Final = "guardrail.decision"
EVENT_LOOP_DETECTED: Final = "loop_detected"
EVENT_CONTENT: Final = "gen_ai.client.inference.operation.details"  # opt-in content capture
AP_GUARDRAIL_NAME: Final = "agent_platform.guardrail.name"
AP_GUARDRAIL_TYPE: Final = "agent_platform.guardrail.type"
AP_GUARDRAIL_VERDICT: Final = "agent_platform.guardrail.verdict"
AP_GUARDRAIL_REASON: Final = "agent_platform.guardrail.reason"
AP_GUARDRAIL_STAGE: Final = "agent_platform.guardrail.stage"
AP_LOOP_TOOL: Final = "agent_platform.loop.tool"
AP_LOOP_PATTERN: Final = "agent_platform.loop.pattern"
AP_LOOP_REPEATS: Final = "agent_platform.loop.repeats"
AP_LOOP_ACTION: Final = "agent_platform.loop.action"

Attributes = Mapping[str, AttributeValue]
