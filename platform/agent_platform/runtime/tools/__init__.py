"""Tools: registry (schemas from type hints, Python/HTTP/MCP implementations), resilience
(retries, circuit breaker), idempotency (cache and durable keys) and the executor that applies
them all. See `executor` for the order of checks."""

from agent_platform.runstore.idempotency import IdempotencyStore, SqliteIdempotencyStore
from agent_platform.runtime.approval import ApprovalRequest, ApprovalRequired
from agent_platform.runtime.tools.errors import (
    CircuitOpen,
    IdempotencyConflict,
    ToolArgumentsInvalid,
    ToolError,
    ToolFailed,
    ToolNotAllowed,
    ToolOutputInvalid,
    ToolTimeout,
    ToolUnavailable,
)
from agent_platform.runtime.tools.executor import ToolExecutor, ToolResult
from agent_platform.runtime.tools.idempotency import current_idempotency_key
from agent_platform.runtime.tools.registry import (
    HttpTool,
    PythonTool,
    Tool,
    ToolArguments,
    ToolRegistry,
    tool,
)

__all__ = [
    "ApprovalRequest",
    "ApprovalRequired",
    "CircuitOpen",
    "HttpTool",
    "IdempotencyConflict",
    "IdempotencyStore",
    "PythonTool",
    "SqliteIdempotencyStore",
    "Tool",
    "ToolArguments",
    "ToolArgumentsInvalid",
    "ToolError",
    "ToolExecutor",
    "ToolFailed",
    "ToolNotAllowed",
    "ToolOutputInvalid",
    "ToolRegistry",
    "ToolResult",
    "ToolTimeout",
    "ToolUnavailable",
    "current_idempotency_key",
    "tool",
]
