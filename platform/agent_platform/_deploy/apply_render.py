"""Text and JSON for `apply`, `get` and deployed runs. Pure: imports no Ray."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent_platform._deploy.reconcile import Action

_VERB = {
    "create": "created",
    "update": "updated",
    "unchanged": "unchanged",
    "delete": "deleted",
    "orphan": "not in these specs (kept; --prune deletes it)",
}
_DRY_VERB = {
    "create": "would be created",
    "update": "would be updated",
    "unchanged": "unchanged",
    "delete": "would be deleted",
    "orphan": "not in these specs (kept; --prune would delete it)",
}


def _where(placement: Sequence[dict[str, Any]]) -> str:
    if not placement:
        return ""
    nodes = sorted(
        {str(p.get("node", p.get("node_ip", "?"))) + "/" + str(p.get("node_id", ""))[:8] for p in placement}
    )
    return f" -> {len(placement)} replica(s) on {', '.join(nodes)}"


def apply_text(report: Any, address: str, namespace: str, elapsed_s: float) -> str:
    verbs = _DRY_VERB if report.dry_run else _VERB
    lines = [f"{'dry run: ' if report.dry_run else ''}cluster {address}, namespace {namespace}"]
    for action in report.actions:
        line = f"  {action.ref} {verbs[action.kind]}"
        if action.kind in ("create", "update") and action.ref in report.placements:
            line += _where(report.placements[action.ref])
        lines.append(line)
        if action.kind == "update":
            if action.diff is not None:
                for change in action.diff.changes:
                    lines.append(f"      {change.marker} {change.summary}")
                    lines.extend(f"          {line}".rstrip() for line in change.lines)
            if action.changed_credentials:
                lines.append(
                    f"      ~ credentials changed ({', '.join(action.changed_credentials)}): replicas replaced"
                )
            if action.changed_dependencies:
                lines.append(
                    f"      ~ depends on changed {', '.join(action.changed_dependencies)}: replicas replaced"
                )
            elif action.diff is None and action.record is not None and action.record.get("status") != "ready":
                lines.append(f"      ~ status was {action.record.get('status')}: replicas recreated")
    counts = report.counts()
    summary = ", ".join(
        f"{counts[k]} {k}" for k in ("create", "update", "unchanged", "delete", "orphan") if counts.get(k)
    )
    lines.append(f"{summary or 'nothing to do'}" + ("" if report.dry_run else f" ({elapsed_s:.1f}s)"))
    return "\n".join(lines)


def action_json(action: Action) -> dict[str, Any]:
    return {
        "ref": action.ref,
        "action": action.kind,
        "diff": action.diff.to_json() if action.diff is not None else None,
        "changed_dependencies": action.changed_dependencies,
        "changed_credentials": action.changed_credentials,
    }


def apply_json(report: Any, address: str, namespace: str) -> dict[str, Any]:
    return {
        "address": address,
        "namespace": namespace,
        "dry_run": report.dry_run,
        "actions": [action_json(a) for a in report.actions],
        "placements": report.placements,
        "counts": report.counts(),
    }


def status_text(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "nothing deployed"
    out = [f"{'KIND':11}{'NAME':28}{'READY':>7}  {'GEN':>4}  {'HASH':17}NODES"]
    for row in rows:
        replicas = row.get("replicas", [])
        ok = sum(1 for r in replicas if r.get("health") == "ok")
        ready = f"{ok}/{len(replicas)}" if row.get("actors") else "-"
        nodes = sorted(
            {
                str(r.get("node_ip", "?")) + "/" + str(r.get("node_id", ""))[:8]
                for r in replicas
                if r.get("health") == "ok"
            }
        )
        bad = [f"{r['actor']}: {r['health']}" for r in replicas if r.get("health") != "ok"]
        out.append(
            f"{row['kind']:11}{row['name']:28}{ready:>7}  {row.get('generation', 0):>4}  "
            f"{row.get('spec_hash', ''):17}{', '.join(nodes)}"
        )
        out.extend(f"    ! {b}" for b in bad)
        if row.get("problem"):
            out.append(f"    ! {row['problem']}")
    return "\n".join(out)


def placement_text(result: Any) -> str:
    """Where the run and each of its hand-offs ran (node and actor)."""
    lines = ["ran on:"]
    top = result.details.get("placement")
    if top:
        lines.append(
            f"  {result.run_id} ({result.unit}): node {top['node']} [{top['node_id'][:8]}], actor {top['actor']}"
        )
    for run_id, where in sorted((result.details.get("placements") or {}).items()):
        if where:
            lines.append(f"  {run_id}: node {where['node']} [{where['node_id'][:8]}], actor {where['actor']}")
    return "\n".join(lines)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[str] = (), empty: str = ""
) -> str:
    """Columns as wide as their widest cell, so long values never break the alignment."""
    if not rows:
        return empty
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if header in right else cell.ljust(w)
            for header, cell, w in zip(headers, cells, widths, strict=True)
        ).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def describe_text(row: dict[str, Any]) -> str:
    """`platform describe`: one deployed spec, its replicas, dependencies, errors and runs."""
    lines = [
        f"{row['kind']}/{row['name']}",
        f"  spec hash:   {row.get('spec_hash', '')}",
        f"  generation:  {row.get('generation', 0)}",
        f"  status:      {row.get('status', '')}",
    ]
    if row.get("source"):
        lines.append(f"  source:      {row['source']}")
    if row.get("depends_on"):
        lines.append(f"  depends on:  {', '.join(row['depends_on'])}")
    replicas = row.get("replicas") or []
    lines.append(f"  replicas:    {len(replicas)}")
    for r in replicas:
        where = (
            f"node {r.get('node_ip', '?')} [{str(r.get('node_id', ''))[:8]}]"
            if r.get("health") == "ok"
            else ""
        )
        lines.append(f"    {r.get('actor', '?')}: {r.get('health', '?')} {where}".rstrip())
    if row.get("problem"):
        lines.append(f"  problem:     {row['problem']}")
    errors = row.get("last_errors") or []
    lines.append("  last errors:" + ("" if errors else " none"))
    for e in errors:
        lines.append(f"    {e['run_id']} {e['status']}: {e['error']}")
    recent = row.get("recent_runs") or []
    lines.append("  recent runs:" + ("" if recent else " none"))
    if recent:
        body = table(
            ["RUN", "STATUS", "ATTEMPT", "UPDATED"],
            [
                [r["run_id"], r["status"], str(r["attempt"]), f"{r['updated_at']:%Y-%m-%d %H:%M:%S}"]
                for r in recent
            ],
            right=("ATTEMPT",),
        )
        lines.extend("    " + line for line in body.splitlines())
    return "\n".join(lines)
