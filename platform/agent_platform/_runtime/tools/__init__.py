"""Tools: the registry and the kinds of tool (Python functions, HTTP, MCP), resilience
(retries, circuit breaker), idempotency (cache and durable keys) and the executor that applies
them all. See `executor` for the order of checks."""

from agent_platform._runstore.idempotency import IdempotencyStore, SqliteIdempotencyStore
from agent_platform._runtime.approval import ApprovalRequest, ApprovalRequired
from agent_platform._runtime.tools.arguments import ToolArguments
from agent_platform._runtime.tools.errors import (
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
from agent_platform._runtime.tools.executor import ToolExecutor, ToolResult
from agent_platform._runtime.tools.http_tool import HttpTool
from agent_platform._runtime.tools.idempotency import current_idempotency_key
from agent_platform._runtime.tools.interface import Tool
from agent_platform._runtime.tools.python_tool import PythonTool
from agent_platform._runtime.tools.registry import ToolRegistry
from agent_platform._tool_functions import tool

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
