"""Memory layers of an agent run. `working`: the token-budgeted conversation with compaction."""

from agent_platform._runtime.memory.working import (
    SUMMARY_PREFIX,
    CompactionError,
    CompactionReport,
    Summary,
    WorkingMemory,
)

__all__ = ["SUMMARY_PREFIX", "CompactionError", "CompactionReport", "Summary", "WorkingMemory"]
