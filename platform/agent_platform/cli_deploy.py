"""The deployment commands: `apply`, `get`, `delete`, `down`, `runs` (and `runs prune`), `result`
(and `run` without `--local`, in cli.py). They import Ray only once they run, never at start-up.

Every failure is a message naming what went wrong (exit 1), never a Ray traceback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from agent_platform.cli import (
    EXIT_INVALID,
    PathsArg,
    PlanFormat,
    PluginPathOpt,
    _options,
    app,
    compile_or_exit,
)
from agent_platform.runstore.base import RunStatus

AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster address (host:port). Default: $RAY_ADDRESS, else an embedded local Ray head.",
    ),
]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Deployment namespace.")]
DEFAULT_NS = "agent-platform"


@contextmanager
def _deploy_errors(command: str) -> Iterator[None]:
    from agent_platform.deploy.client import DeployError
    from agent_platform.deploy.cluster import ClusterError
    from agent_platform.runstore import RunStoreError

    try:
        yield
    except (DeployError, ClusterError, RunStoreError) as exc:
        typer.echo(f"platform {command}: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _compile(paths: list[Path], plugin_path: list[Path] | None) -> tuple[Any, Any, Any]:
    from agent_platform.deploy.bundle import SpecBundle
    from agent_platform.validate.plugins import default_plugin_paths

    options = _options(plugin_path, False)
    report, plan = compile_or_exit(paths, options)
    roots = list(options.plugin_paths) if options.plugin_paths is not None else default_plugin_paths()
    bundle = SpecBundle.from_files(report.files, [p for p in roots if Path(p).exists()])
    return report, plan, bundle


@app.command()
def apply(
    paths: PathsArg,
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change (with semantic diffs); change nothing.")
    ] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Delete deployed specs absent from PATHS.")] = False,
    approve_all: Annotated[
        bool, typer.Option("--approve-all", help="Deployed agents approve every tool needing approval.")
    ] = False,
    run_store: Annotated[
        str | None,
        typer.Option(
            "--run-store",
            help="Run store URL for a new deployment (sqlite:///path or postgresql://...). "
            "Default: $PLATFORM_RUN_STORE, else SQLite under the state directory (one machine only).",
        ),
    ] = None,
    format: Annotated[PlanFormat, typer.Option("--format", "-f", help="Output format.")] = PlanFormat.text,
    plugin_path: PluginPathOpt = None,
) -> None:
    """Validate, compile and deploy specs to Ray: create, update (semantic diff), leave unchanged, prune."""
    from agent_platform.deploy.apply_render import apply_json, apply_text
    from agent_platform.deploy.client import Deployment
    from agent_platform.runstore import run_store_url

    report, plan, bundle = _compile(paths, plugin_path)
    if not report.specs.specs:  # a mistyped path must not apply "nothing" (with --prune: delete everything)
        where = ", ".join(str(p) for p in paths)
        typer.echo(
            f"platform apply: no specs found in {where}; nothing applied "
            "(to remove deployed specs, use `platform delete NAME`)",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)
    with _deploy_errors("apply"):
        started = time.perf_counter()
        if dry_run:
            # A dry run never starts a cluster (it runs in CI): with nothing deployed, it shows
            # everything as created.
            result, where = _dry_run(report, plan, address, namespace)
        else:
            deployment = Deployment.connect(
                address, namespace, start=True, run_store_url=run_store_url(run_store)
            )
            where = deployment.address
            result = deployment.apply(report.specs, plan, bundle, prune=prune, approve_all=approve_all)
        elapsed = time.perf_counter() - started
    if format is PlanFormat.json:
        typer.echo(json.dumps(apply_json(result, where, namespace), indent=2))
    else:
        typer.echo(apply_text(result, where, namespace, elapsed))


def _dry_run(report: Any, plan: Any, address: str | None, namespace: str) -> tuple[Any, str]:
    import os

    from agent_platform.deploy.client import ApplyReport, DeployError, Deployment
    from agent_platform.deploy.cluster import running_head
    from agent_platform.deploy.reconcile import desired_state, reconcile

    if address or os.environ.get("RAY_ADDRESS") or running_head() is not None:
        try:
            deployment = Deployment.connect(address, namespace, start=False, create=False)
            return deployment.apply(report.specs, plan, None, dry_run=True), deployment.address
        except DeployError:
            if address:
                raise
    actions = reconcile(desired_state(report.specs, plan), {}, prune=False)
    return ApplyReport(actions, dry_run=True), "(no deployment)"


@app.command()
def get(
    kind: Annotated[
        str | None, typer.Argument(help="Only this kind (agent, pipeline, supervisor, tool...).")
    ] = None,
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
    format: Annotated[PlanFormat, typer.Option("--format", "-f", help="Output format.")] = PlanFormat.text,
) -> None:
    """Deployed specs: replicas, the nodes they run on, health."""
    from agent_platform.deploy.apply_render import status_text
    from agent_platform.deploy.client import Deployment

    with _deploy_errors("get"):
        deployment = Deployment.connect(address, namespace, start=False, create=False)
        rows = deployment.status()
    if kind:
        wanted = kind.lower().rstrip("s")
        rows = [r for r in rows if r["kind"].lower() == wanted]
    if format is PlanFormat.json:
        typer.echo(json.dumps(rows, indent=2, default=str))
    else:
        typer.echo(status_text(rows))


@app.command()
def delete(
    targets: Annotated[list[str], typer.Argument(help="Kind/name, a bare name, or spec files/directories.")],
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
) -> None:
    """Remove deployed specs; their actors finish the runs in flight, then stop."""
    from agent_platform.deploy.client import Deployment
    from agent_platform.load import load_paths

    with _deploy_errors("delete"):
        deployment = Deployment.connect(address, namespace, start=False, create=False)
        refs: list[str] = []
        for target in targets:
            if Path(target).exists():
                loaded = load_paths([target])
                refs.extend(f"{d.kind}/{d.name}" for d in loaded.documents if d.kind and d.name)
            elif "/" in target:
                refs.append(target)
            else:
                matches = [r for r in deployment.records() if r.split("/", 1)[1] == target]
                if len(matches) != 1:
                    from agent_platform.deploy.client import DeployError

                    raise DeployError(
                        f"{target!r} matches {len(matches)} deployed specs"
                        + (f" ({', '.join(sorted(matches))}); name it as Kind/name" if matches else "")
                    )
                refs.extend(matches)
        for ref in deployment.delete(sorted(set(refs))):
            typer.echo(f"{ref} deleted")


@app.command()
def down(
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
) -> None:
    """Stop the embedded local Ray head (and everything deployed on it) and the embedded pgvector
    server. With --address: delete every spec deployed in the namespace and its control plane,
    leaving the cluster up."""
    import os

    from agent_platform.deploy.cluster import stop_head

    with _deploy_errors("down"):
        if address or os.environ.get("RAY_ADDRESS"):
            import ray

            from agent_platform.deploy.client import Deployment
            from agent_platform.deploy.host import CONTROL_PLANE

            deployment = Deployment.connect(address, namespace, start=False, create=False)
            refs = sorted(deployment.records())
            if refs:
                deployment.delete(refs)
            ray.kill(ray.get_actor(CONTROL_PLANE, namespace=namespace), no_restart=True)
            typer.echo(f"deleted {len(refs)} spec(s) and the control plane of namespace {namespace!r}")
            return
        head = stop_head()
        if head is not None:
            # The deployment died with the head: forget it (a later apply starts afresh).
            from agent_platform.runtime.tools.idempotency import default_state_dir

            for state in (default_state_dir() / "control-plane").glob("*.json"):
                state.unlink(missing_ok=True)
    typer.echo(f"stopped the local Ray head at {head.address}" if head else "no local Ray head is running")
    from agent_platform.memory.stores.embedded import stop_embedded_server

    if stop_embedded_server():
        typer.echo("stopped the embedded pgvector server")


def run_deployed(
    name: str,
    inputs: dict[str, Any],
    *,
    address: str | None,
    namespace: str,
    detach: bool,
    trace: bool,
    tenant: str | None = None,
) -> None:
    """`platform run NAME` without --local: through the deployment."""
    from agent_platform.deploy.apply_render import placement_text
    from agent_platform.deploy.client import Deployment
    from agent_platform.runtime.engine import result_json

    with _deploy_errors("run"):
        deployment = Deployment.connect(address, namespace, start=False, create=False)
        unit = deployment.resolve(name)
        problem = deployment.input_problem(unit, inputs)
        if problem is not None:  # like --local: refused before anything runs, a usage error
            typer.echo(f"platform run: {problem}", err=True)
            raise typer.Exit(2)
        if detach:
            typer.echo(deployment.submit(unit, inputs, tenant=tenant))
            return
        result = deployment.run(unit, inputs, tenant=tenant)
    typer.echo(result_json(result))
    typer.echo("")
    typer.echo(placement_text(result))
    if trace and result.trace_id:
        from agent_platform.deploy.traces import render_trace

        settings = deployment.settings()
        actors = [p["actor"] for p in _placements(result)]
        deployment.flush_traces(actors)
        typer.echo("")
        typer.echo(render_trace(Path(settings["trace_file"]), result.trace_id))
    if not result.ok:
        raise typer.Exit(EXIT_INVALID)


def _placements(result: Any) -> list[dict[str, Any]]:
    found = [result.details.get("placement")] if result.details.get("placement") else []
    found += [p for p in (result.details.get("placements") or {}).values() if p]
    return found


def _store_for(address: str | None, namespace: str, explicit: str | None) -> Any:
    from agent_platform.runstore import RunStoreUnavailable, open_run_store, sqlite_path, url_scheme

    if explicit:
        # Reading commands: a mistyped SQLite path is an error, not a new empty store.
        if url_scheme(explicit) == "sqlite" and not sqlite_path(explicit).exists():
            raise RunStoreUnavailable(explicit, f"there is no database file at {sqlite_path(explicit)}")
        return open_run_store(explicit)
    from agent_platform.deploy.client import Deployment

    deployment = Deployment.connect(address, namespace, start=False, create=False)
    return open_run_store(deployment.settings()["run_store_url"])


RunStoreOpt = Annotated[
    str | None, typer.Option("--run-store", help="Read this run store instead of the deployment's.")
]


runs_app = typer.Typer(
    name="runs",
    help="Runs of the deployment, newest first, with their status (`runs prune`: delete old ones).",
)
app.add_typer(runs_app)


class FinishedStatus(StrEnum):
    """The statuses a run can be pruned in (RunStatus minus pending and running)."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    status: Annotated[RunStatus | None, typer.Option("--status", help="Only runs with this status.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Include hand-off sub-runs.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many (newest first).")] = 50,
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
    run_store: RunStoreOpt = None,
) -> None:
    """Runs of the deployment, newest first, with their status."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    async def go() -> list[Any]:
        store = _store_for(address, namespace, run_store)
        try:
            return list(await store.list_runs(status=status, limit=limit, top_level=not all_runs))
        finally:
            await store.close()

    with _deploy_errors("runs"):
        records = asyncio.run(go())
    typer.echo(f"{'RUN':40} {'UNIT':36} {'STATUS':10} {'ATTEMPT':>7}  UPDATED")
    for r in records:
        outcome = (r.result or {}).get("outcome", "")
        shown = f"{r.status.value}" + (f" ({outcome})" if outcome and outcome != "completed" else "")
        typer.echo(f"{r.run_id:40} {r.unit:36} {shown:10} {r.attempt:>7}  {r.updated_at:%Y-%m-%d %H:%M:%S}")


@runs_app.command("prune")
def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Delete runs that finished longer ago than this (e.g. 30d, 12h, 90m)."
        ),
    ],
    status: Annotated[
        list[FinishedStatus] | None,
        typer.Option("--status", help="Only runs that ended so (repeatable). Default: all three."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count them; delete nothing.")] = False,
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
    run_store: RunStoreOpt = None,
) -> None:
    """Delete finished runs (records and checkpoints) older than --older-than.

    Pending and running runs are never deleted."""
    import asyncio
    from datetime import timedelta

    from agent_platform.runstore.base import utcnow
    from agent_platform.spec.common import parse_duration

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    statuses = sorted(set(status or FinishedStatus))
    cutoff = utcnow() - timedelta(seconds=age)

    async def go() -> int:
        store = _store_for(address, namespace, run_store)
        try:
            return int(await store.prune_runs(cutoff, [s.value for s in statuses], dry_run=dry_run))
        finally:
            await store.close()

    with _deploy_errors("runs prune"):
        count = asyncio.run(go())
    which = ", ".join(s.value for s in statuses)
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} {count} run(s) ({which}) that finished before {cutoff:%Y-%m-%d %H:%M:%S} UTC")


@app.command()
def result(
    run_id: Annotated[str, typer.Argument(help="A run id from `platform run --detach` or `platform runs`.")],
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the run to finish.")] = 600.0,
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
    run_store: RunStoreOpt = None,
    checkpoint: Annotated[
        bool,
        typer.Option(
            "--checkpoint",
            help="Print the run's last checkpoint instead (kept for failed and cancelled runs and "
            "runs in flight; a completed run's is dropped), without waiting.",
        ),
    ] = False,
) -> None:
    """Wait for a run and print its result (exit 0 when it completed, 1 when it did not)."""
    import asyncio

    if checkpoint:
        _print_checkpoint(run_id, address, namespace, run_store)
        return

    async def go() -> Any:
        store = _store_for(address, namespace, run_store)
        try:
            if await store.get_run(run_id) is None:
                from agent_platform.runstore import RunNotFound

                raise RunNotFound(run_id)
            return await store.wait(run_id, timeout=wait)
        finally:
            await store.close()

    with _deploy_errors("result"):
        try:
            record = asyncio.run(go())
        except TimeoutError:
            typer.echo(f"platform result: run {run_id} did not finish within {wait:g}s", err=True)
            raise typer.Exit(EXIT_INVALID) from None
    payload = record.result or {
        "run_id": run_id,
        "unit": record.unit,
        "outcome": "failed",
        "error": record.error,
    }
    typer.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))
    if record.status.value != "completed":
        raise typer.Exit(EXIT_INVALID)


def _print_checkpoint(run_id: str, address: str | None, namespace: str, run_store: str | None) -> None:
    import asyncio

    async def go() -> Any:
        store = _store_for(address, namespace, run_store)
        try:
            return await store.get_run(run_id), await store.load_checkpoint(run_id)
        finally:
            await store.close()

    with _deploy_errors("result"):
        from agent_platform.runstore import RunNotFound

        try:
            record, saved = asyncio.run(go())
        except RunNotFound:
            record = None
        if record is None:
            raise RunNotFound(run_id)
    if saved is None:
        why = (
            "a completed run's checkpoint is dropped when it finishes"
            if record.status.value == "completed"
            else f"it is {record.status.value} and none was saved"
        )
        typer.echo(f"platform result: run {run_id} has no checkpoint ({why})", err=True)
        raise typer.Exit(EXIT_INVALID)
    payload = {
        "run_id": run_id,
        "status": record.status.value,
        "attempt": saved.attempt,
        "seq": saved.seq,
        "saved_at": saved.saved_at.isoformat(),
        "state": saved.state,
    }
    typer.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))
