"""Deciding the tool calls a paused run waits on, and handing the run back to its deployment:
what `platform approve`/`deny` and the HTTP API's approval route share.

A decision is recorded in the run store (`RunStore.decide`); once nothing in the run's tree is
left undecided the run is pending again, and whoever resumes it continues from the call it was
making. A deployed run is resumed by its control plane (it outlives the command or the HTTP
request that decided); a local run (`platform run --local`, `RunRecord.origin`) by a process that
rebuilds its runtime (`platform resume`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_platform._runstore import DecisionReport, PendingApproval, RunRecord, RunStore

DECISIONS = {"approve": "approved", "deny": "denied"}


@dataclass(frozen=True)
class Decided:
    report: DecisionReport
    root: RunRecord | None  # the top-level run of the tree, as stored after the decision

    @property
    def resumable(self) -> bool:
        return self.report.resumable and self.root is not None

    @property
    def local(self) -> bool:
        """A run started by `platform run --local`: a process with its specs resumes it."""
        return self.root is not None and self.root.origin is not None


async def decide(
    store: RunStore, run_id: str, decision: str, *, by: str, call_key: str | None = None
) -> Decided:
    """Decide (`approved` or `denied`) the undecided calls of the tree `run_id` belongs to: all,
    or the one `call_key` (or a unique prefix of it) names. Raises the store's RunNotFound,
    RunAlreadyFinished and NoPendingApproval."""
    report = await store.decide(run_id, decision, by=by, call_key=call_key)
    return Decided(report, await store.get_run(report.root_run_id))


async def resume_on_deployment(control: Any, root: RunRecord) -> str:
    """Hand a deployed run that may resume back to its control plane (an actor handle), which
    drives it on a replica of its unit from its checkpoint. Returns the run id."""
    from agent_platform._deploy.host import RunRequest

    request = RunRequest(root.run_id, root.unit, dict(root.inputs or {}), tenant=root.tenant)
    return str(await control.submit.remote(request))


def approval_row(approval: PendingApproval) -> dict[str, Any]:
    """One decided or waiting call, as `platform approvals` and the HTTP API show it."""
    return {
        "call_key": approval.call_key,
        "run_id": approval.run_id,
        "tool": approval.request.get("tool"),
        "arguments": approval.request.get("arguments"),
        "reasons": approval.request.get("reasons"),
        "via": approval.request.get("via"),
        "decision": approval.decision.value if approval.decision else "waiting",
        "decided_by": approval.decided_by,
        "requested_at": approval.requested_at,
        "decided_at": approval.decided_at,
    }
