"""An MCP server written with the `mcp` SDK, started by the tests over stdio or streamable HTTP.

    python tests/mcp/server.py stdio
    python tests/mcp/server.py http PORT

Its tools: `lookup` (read-only), `record` (a side effect: appends a line to the file named by
$MCP_TEST_EFFECTS), `explode` (always fails), `stall` (hangs for as long as asked), `shape`
(its input schema is chosen by $MCP_TEST_SHAPE at start-up: `v1` or `v2`, so a test can change
it between `plan` and a run) and `die` (the process exits mid-call).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

logging.disable(logging.CRITICAL)  # the SDK logs every failing tool with a traceback on stderr

server = MCPServer("platform-tests")

if os.environ.get("MCP_TEST_STARTS"):  # each start of the process leaves its pid there
    with open(os.environ["MCP_TEST_STARTS"], "a", encoding="utf-8") as starts:
        starts.write(f"{os.getpid()}\n")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def lookup(key: str) -> dict[str, str]:
    """Look a key up."""
    return {"key": key, "value": key.upper(), "pid": str(os.getpid())}


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False))
def record(entry: str) -> str:
    """Record an entry (a side effect)."""
    with open(os.environ["MCP_TEST_EFFECTS"], "a", encoding="utf-8") as effects:
        effects.write(entry + "\n")
    return f"recorded {entry}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def explode(reason: str) -> str:
    """Always fails."""
    raise ToolError(f"exploded: {reason}")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def stall(seconds: float) -> str:
    """Waits before answering."""
    await asyncio.sleep(seconds)
    return "finally"


if os.environ.get("MCP_TEST_SHAPE", "v1") == "v1":

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def shape(text: str) -> str:
        """Shapes a text."""
        return text.title()

else:

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def shape(text: str, limit: int) -> str:  # type: ignore[misc]
        """Shapes a text."""
        return text.title()[:limit]


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False))
def die() -> str:
    """The server process exits in the middle of the call."""
    os._exit(3)


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
