"""The deployment commands: `apply`, `get`, `describe`, `delete`, `down`, `runs` (and `runs
prune`), `result`, `cancel` (and `run` without `--local`, in cli.py). They import Ray only once they
run, never at start-up.

Every failure is a message naming what went wrong (exit 1), never a Ray traceback. Data goes to
stdout in the format `-o` asks for; notes for people go to stderr."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from agent_platform._cli.common import (
    DEFAULT_NS,
    EXIT_INVALID,
    EXIT_USAGE,
    NamespaceOpt,
    PathsArg,
    PluginPathOpt,
    compile_or_exit,
    emit_result,
    validation_options,
)
from agent_platform._cli.output import (
    DeprecatedFormatOpt,
    Output,
    OutputOpt,
    chosen_output,
    emit,
    note,
    to_json,
    warn_approve_all,
)
from agent_platform._runstore.base import RunStatus

app = typer.Typer()


AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster address (host:port). Default: $RAY_ADDRESS, else an embedded local Ray head.",
    ),
]


@contextmanager
def deploy_errors(command: str) -> Iterator[None]:
    """Every command that reaches a deployment runs in here: its errors become messages, and a
    head it finds dead comes back with its endpoints too (see `_restore_endpoints`)."""
    from agent_platform._deploy.apply_lock import ApplyInProgress
    from agent_platform._deploy.client import DeployError, on_restore
    from agent_platform._deploy.cluster import ClusterError
    from agent_platform._runstore import RunStoreError

    on_restore("HTTP endpoints", _restore_endpoints)
    try:
        yield
    except (DeployError, ClusterError, RunStoreError, ApplyInProgress) as exc:
        typer.echo(f"platform {command}: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _restore_endpoints(namespace: str, state: Path, entries: Any, note: Any) -> None:
    """The deploy layer restores units; the endpoints above them are the serve layer's (and
    Ray Serve is imported only here, once a restore needs it)."""
    from agent_platform._serve.deploy import restore_endpoints

    restore_endpoints(namespace, state, entries, note)


def deploy_notes(command: str) -> Any:
    """Where `Deployment.connect` tells what it did on the way (a head started again)."""
    return lambda text: note(f"platform {command}: {text}")


def _compile(paths: list[Path], plugin_path: list[Path] | None) -> tuple[Any, Any, Any]:
    from agent_platform._deploy.bundle import SpecBundle
    from agent_platform._validate.plugins import default_plugin_paths

    options = validation_options(plugin_path, False)
    report, plan = compile_or_exit(paths, options, "apply")
    from agent_platform._cli.remote import check_remote_cards_or_exit

    check_remote_cards_or_exit(report.specs)
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
    lock_timeout: Annotated[
        float,
        typer.Option(
            "--lock-timeout",
            min=0,
            help="Seconds to wait for another apply to this deployment to finish. "
            "Default: 0 (stop at once, naming it).",
        ),
    ] = 0.0,
    output: OutputOpt = Output.text,
    format: DeprecatedFormatOpt = None,
    plugin_path: PluginPathOpt = None,
) -> None:
    """Validate, compile and deploy specs to Ray: create, update (semantic diff), leave unchanged, prune.

    With --dry-run, like `kubectl diff`: exit 0 when nothing would change, 1 when something would
    (every creation, update and, with --prune, deletion is listed); invalid specs exit 1 too,
    with their diagnostics on stderr.

    One apply runs at a time per deployment: another one stops with a message naming it, or
    waits for it with --lock-timeout."""
    from agent_platform._deploy.apply_render import apply_json, apply_text
    from agent_platform._deploy.client import Deployment
    from agent_platform._runstore import run_store_url

    fmt = chosen_output("apply", output, format=format)
    if approve_all and not dry_run:
        warn_approve_all("apply")
    report, plan, bundle = _compile(paths, plugin_path)
    if not report.specs.specs:  # a mistyped path must not apply "nothing" (with --prune: delete everything)
        where = ", ".join(str(p) for p in paths)
        typer.echo(
            f"platform apply: no specs found in {where}; nothing applied "
            "(to remove deployed specs, use `platform delete NAME`)",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)
    if not dry_run:
        from agent_platform._cli.serve import check_endpoint_tokens

        check_endpoint_tokens(report.specs, namespace)
    with deploy_errors("apply"):
        started = time.perf_counter()
        if dry_run:
            # A dry run never starts a cluster (it runs in CI): with nothing deployed, it shows
            # everything as created.
            result, where = _dry_run(report, plan, address, namespace, prune=prune)
        else:
            with embedded_apply_lock(address, lock_timeout):
                deployment = Deployment.connect(
                    address,
                    namespace,
                    start=True,
                    run_store_url=run_store_url(run_store),
                    note=deploy_notes("apply"),
                )
                where = deployment.address
                result = deployment.apply(
                    report.specs,
                    plan,
                    bundle,
                    prune=prune,
                    approve_all=approve_all,
                    lock_wait=lock_timeout,
                    note=deploy_notes("apply"),
                )
                from agent_platform._cli.serve import apply_endpoints_after

                apply_endpoints_after(deployment, report.specs, bundle, result.actions)
        elapsed = time.perf_counter() - started
    emit(apply_json(result, where, namespace), fmt, lambda: apply_text(result, where, namespace, elapsed))
    if dry_run and any(a.kind in ("create", "update", "delete") for a in result.actions):
        raise typer.Exit(EXIT_INVALID)


def embedded_apply_lock(address: str | None, wait: float) -> Any:
    """On the embedded head, the state directory's lock, held from before the head is started
    (two first applies must not start two heads) to the end; the control plane's lease is taken
    inside, on every cluster."""
    import os
    from contextlib import nullcontext

    from agent_platform._deploy.apply_lock import local_lock
    from agent_platform._state_files import default_state_dir

    if address or os.environ.get("RAY_ADDRESS"):
        return nullcontext()
    return local_lock(default_state_dir().resolve(), purpose="apply", wait=wait, on_wait=_lock_wait_note)


def _lock_wait_note(holder: Any) -> None:
    who = f" ({holder.describe()})" if holder is not None else ""
    what = holder.purpose if holder is not None else "apply"
    note(f"platform apply: waiting for another {what}{who} to finish")


def _dry_run(report: Any, plan: Any, address: str | None, namespace: str, *, prune: bool) -> tuple[Any, str]:
    import os

    from agent_platform._deploy.client import ApplyReport, DeployError, Deployment
    from agent_platform._deploy.cluster import running_head
    from agent_platform._deploy.reconcile import desired_state, reconcile

    if address or os.environ.get("RAY_ADDRESS") or running_head() is not None:
        try:
            deployment = Deployment.connect(address, namespace, start=False, create=False)
            return deployment.apply(report.specs, plan, None, dry_run=True, prune=prune), deployment.address
        except DeployError:
            if address:
                raise
    actions = reconcile(desired_state(report.specs, plan), {}, prune=prune)
    return ApplyReport(actions, dry_run=True), "(no deployment)"


KINDS = ("model", "tool", "memory", "guardrail", "agent", "pipeline", "supervisor", "endpoint")


def _kind_of(word: str) -> str | None:
    """'agents', 'Agent' or 'agent' -> 'agent'; None when `word` names no kind."""
    lowered = word.lower()
    for kind in KINDS:
        if lowered in (kind, kind + "s", "memories" if kind == "memory" else kind + "s"):
            return kind
    return None


def _selection(first: str | None, second: str | None) -> tuple[str | None, str | None]:
    """(kind, name) from `get [KIND] [NAME]`, `get KIND/NAME` or `get NAME`."""
    if first is None:
        return None, None
    if second is not None:
        kind = _kind_of(first)
        if kind is None:
            raise typer.BadParameter(f"{first!r} is not a kind ({', '.join(KINDS)})", param_hint="KIND")
        return kind, second
    if "/" in first:
        kind_word, _, name = first.partition("/")
        kind = _kind_of(kind_word)
        if kind is None:
            raise typer.BadParameter(f"{kind_word!r} is not a kind ({', '.join(KINDS)})", param_hint="KIND")
        return kind, name
    kind = _kind_of(first)
    return (kind, None) if kind is not None else (None, first)


@app.command()
def get(
    kind_or_name: Annotated[
        str | None,
        typer.Argument(
            metavar="[KIND] [NAME]", help="A kind (agents, tools...), KIND NAME, Kind/name or a name."
        ),
    ] = None,
    name: Annotated[str | None, typer.Argument(hidden=True)] = None,
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
    output: OutputOpt = Output.text,
    format: DeprecatedFormatOpt = None,
) -> None:
    """Deployed specs: replicas, the nodes they run on, health. A name that is not deployed exits 1."""
    from agent_platform._deploy.apply_render import status_text
    from agent_platform._deploy.client import Deployment

    fmt = chosen_output("get", output, format=format)
    kind, wanted = _selection(kind_or_name, name)
    with deploy_errors("get"):
        deployment = Deployment.connect(
            address, namespace, start=False, create=False, note=deploy_notes("get")
        )
        rows = deployment.status()
    if kind:
        rows = [r for r in rows if r["kind"].lower() == kind]
    if wanted:
        rows = [r for r in rows if r["name"] == wanted]
        if not rows:
            what = f"{kind.capitalize()}/{wanted}" if kind else f"anything named {wanted!r}"
            typer.echo(f"platform get: {what} is not deployed in namespace {namespace!r}", err=True)
            raise typer.Exit(EXIT_INVALID)
    emit(rows, fmt, lambda: status_text(rows))


@app.command()
def describe(
    target: Annotated[
        str, typer.Argument(metavar="KIND/NAME", help="Kind/name, KIND NAME, or a unique name.")
    ],
    name: Annotated[str | None, typer.Argument(hidden=True)] = None,
    runs: Annotated[int, typer.Option("--runs", min=0, help="How many recent runs to show.")] = 10,
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
    output: OutputOpt = Output.text,
) -> None:
    """One deployed spec in full: spec hash, replicas and their nodes, what it depends on, its last
    errors and its recent runs."""
    import asyncio

    from agent_platform._deploy.apply_render import describe_text
    from agent_platform._deploy.client import Deployment
    from agent_platform._runstore import open_run_store

    kind, wanted = _selection(target, name)
    with deploy_errors("describe"):
        deployment = Deployment.connect(
            address, namespace, start=False, create=False, note=deploy_notes("describe")
        )
        rows = [
            r
            for r in deployment.status()
            if r["name"] == wanted and (kind is None or r["kind"].lower() == kind)
        ]
        if len(rows) != 1:
            found = ", ".join(sorted(r["ref"] for r in rows))
            typer.echo(
                f"platform describe: {target} "
                + (f"is ambiguous ({found}); name it as Kind/name" if rows else "is not deployed"),
                err=True,
            )
            raise typer.Exit(EXIT_INVALID)
        row = rows[0]

        async def recent() -> list[Any]:
            store = open_run_store(deployment.settings()["run_store_url"])
            try:
                return list(await store.list_runs(unit=row["ref"], limit=max(runs, 20)))
            finally:
                await store.close()

        history = asyncio.run(recent()) if row.get("actors") else []
    described = {
        **row,
        "last_errors": [
            {"run_id": r.run_id, "status": r.status.value, "error": r.error, "updated_at": r.updated_at}
            for r in history
            if r.error
        ][:5],
        "recent_runs": [_run_row(r) for r in history[:runs]],
    }
    emit(described, output.value, lambda: describe_text(described))


@app.command()
def delete(
    targets: Annotated[list[str], typer.Argument(help="Kind/name, a bare name, or spec files/directories.")],
    force: Annotated[
        bool, typer.Option("--force", help="Delete even specs that deployed specs still use.")
    ] = False,
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="Exit 0 when some targets are not deployed.")
    ] = False,
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
) -> None:
    """Remove deployed specs; their actors finish the runs in flight, then stop.

    Deletes every target that is deployed and names those that are not (exit 1 unless
    --ignore-not-found). A Model, Tool or other spec that a deployed spec still uses is kept, with
    its users named, unless --force."""
    from agent_platform._deploy.client import Deployment
    from agent_platform._load import load_paths

    with deploy_errors("delete"):
        deployment = Deployment.connect(
            address, namespace, start=False, create=False, note=deploy_notes("delete")
        )
        records = deployment.records()
        refs: list[str] = []
        unknown: list[str] = []
        for target in targets:
            if Path(target).exists():
                loaded = load_paths([target])
                refs.extend(f"{d.kind}/{d.name}" for d in loaded.documents if d.kind and d.name)
            elif "/" in target:
                refs.append(target)
            else:
                matches = [r for r in records if r.split("/", 1)[1] == target]
                if len(matches) > 1:
                    typer.echo(
                        f"platform delete: {target!r} matches {', '.join(sorted(matches))}; name it as Kind/name",
                        err=True,
                    )
                    raise typer.Exit(EXIT_INVALID)
                if matches:
                    refs.extend(matches)
                else:
                    unknown.append(target)
        report = deployment.delete(sorted(set(refs)), force=force)
        from agent_platform._cli.serve import remove_deleted_endpoints

        remove_deleted_endpoints(namespace, report.deleted)
    for ref in report.deleted:
        typer.echo(f"{ref} deleted")
    for ref, users in sorted(report.in_use.items()):
        typer.echo(
            f"platform delete: {ref} kept: still used by {', '.join(users)} (--force deletes it)", err=True
        )
    for missing in [*report.not_found, *unknown]:
        typer.echo(f"platform delete: {missing} is not deployed", err=True)
    if report.in_use or ((report.not_found or unknown) and not ignore_not_found):
        raise typer.Exit(EXIT_INVALID)


@app.command()
def down(
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
) -> None:
    """Stop the embedded local Ray head (and everything deployed on it) and the embedded pgvector
    server. With --address: delete every spec deployed in the namespace and its control plane,
    leaving the cluster up."""
    import os

    from agent_platform._deploy.cluster import stop_head

    with deploy_errors("down"):
        if address or os.environ.get("RAY_ADDRESS"):
            import ray

            from agent_platform._deploy.client import Deployment

            deployment = Deployment.connect(
                address, namespace, start=False, create=False, note=deploy_notes("down")
            )
            refs = sorted(deployment.records())
            if refs:
                deployment.delete(refs, force=True)
                from agent_platform._cli.serve import remove_deleted_endpoints

                remove_deleted_endpoints(namespace, refs)
            ray.kill(deployment.control, no_restart=True)
            typer.echo(f"deleted {len(refs)} spec(s) and the control plane of namespace {namespace!r}")
            return
        head = stop_head()
        if head is not None:
            # The deployment stops with the head, on purpose: forget it, and what was applied, so
            # neither a later command restores it nor a later apply finds it.
            from agent_platform._deploy import applied
            from agent_platform._state_files import default_state_dir

            for state in (default_state_dir() / "control-plane").glob("*.json"):
                state.unlink(missing_ok=True)
            applied.forget_all(default_state_dir())
    typer.echo(f"stopped the local Ray head at {head.address}" if head else "no local Ray head is running")
    from agent_platform._memory.stores.embedded import stop_embedded_server

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
    output: str | None = None,
    follow: bool = False,
) -> None:
    """`platform run NAME` without --local: through the deployment. The result goes to stdout;
    where each part ran, and the span tree, to stderr. With `follow`, the run is submitted and
    its steps are shown live from its events in the deployment's run store."""
    from agent_platform._deploy.apply_render import placement_text
    from agent_platform._deploy.client import Deployment
    from agent_platform._deploy.cluster import note_activity, note_outcome
    from agent_platform._runtime.services import new_run_id

    with deploy_errors("run"):
        deployment = Deployment.connect(
            address, namespace, start=False, create=False, note=deploy_notes("run")
        )
        unit = deployment.resolve(name)
        problem = deployment.input_problem(unit, inputs)
        if problem is not None:  # like --local: refused before anything runs, a usage error
            typer.echo(f"platform run: {problem}", err=True)
            raise typer.Exit(EXIT_USAGE)
        # Assigned here, so that if the cluster goes down meanwhile the user is told the id.
        run_id = new_run_id()
        note_activity(f"{'submitting' if detach else 'running'} run {run_id} of {unit}", run_id)
        if detach:
            run_id = deployment.submit(unit, inputs, run_id=run_id, tenant=tenant)
            # No -o: the run id alone, for `id=$(platform run X --detach)`.
            emit({"run_id": run_id, "unit": unit, "status": "pending"}, output or "text", lambda: run_id)
            note_outcome(0)
            return
        if follow:
            run_id = deployment.submit(unit, inputs, run_id=run_id, tenant=tenant)
            _follow_deployed(deployment.settings()["run_store_url"], run_id, output)
            return
        result = deployment.run(unit, inputs, run_id=run_id, tenant=tenant)
    emit_result(result.to_json(), output or Output.json.value)
    note_outcome(0 if result.ok else EXIT_INVALID)
    note(placement_text(result))
    if trace and result.trace_id:
        from agent_platform._deploy.traces import render_trace

        settings = deployment.settings()
        actors = [p["actor"] for p in _placements(result)]
        deployment.flush_traces(actors)
        note(render_trace(Path(settings["trace_file"]), result.trace_id))
    if not result.ok:
        raise typer.Exit(EXIT_INVALID)


def _follow_deployed(store_url: str, run_id: str, output: str | None) -> None:
    """Show a submitted run's steps live until it settles, then its result, as `platform result`
    would print it (exit 1 unless it completed)."""
    import asyncio

    from agent_platform._cli.follow import follow_run, store_reader
    from agent_platform._cli.runs import report_waiting
    from agent_platform._runstore import open_run_store

    async def go() -> Any:
        store = open_run_store(store_url)
        try:

            async def settled() -> bool:
                found = await store.get_run(run_id)
                return found is not None and found.status.settled

            await follow_run(store_reader(store, run_id), settled, run_id)
            return await store.get_run(run_id)
        finally:
            await store.close()

    record = asyncio.run(go())
    payload = record.result or {
        "run_id": run_id,
        "unit": record.unit,
        "outcome": record.status.value if record.status.value == "cancelled" else "failed",
        "error": record.error,
    }
    emit_result(payload, output or Output.json.value)
    if record.status is RunStatus.WAITING_APPROVAL and record.result:
        from agent_platform._runtime.outcomes import RunResult

        report_waiting(RunResult.from_json(record.result))
    if record.status is not RunStatus.COMPLETED:
        raise typer.Exit(EXIT_INVALID)


def _placements(result: Any) -> list[dict[str, Any]]:
    found = [result.details.get("placement")] if result.details.get("placement") else []
    found += [p for p in (result.details.get("placements") or {}).values() if p]
    return found


def _store_for(address: str | None, namespace: str, explicit: str | None, command: str) -> Any:
    """The run store a reading command reads: --run-store, else the deployment's, else (no head
    up, e.g. after `platform down`) the local one the embedded head used."""
    import os

    from agent_platform._runstore import (
        RunStoreUnavailable,
        default_run_store_url,
        open_run_store,
        sqlite_path,
        url_scheme,
    )

    if explicit:
        # Reading commands: a mistyped SQLite path is an error, not a new empty store.
        if url_scheme(explicit) == "sqlite" and not sqlite_path(explicit).exists():
            raise RunStoreUnavailable(explicit, f"there is no database file at {sqlite_path(explicit)}")
        return open_run_store(explicit)
    from agent_platform._deploy.client import Deployment
    from agent_platform._deploy.cluster import read_head, running_head

    # No head on record (never applied, or after `platform down`): the local run store. A head on
    # record that is down is started again by connecting (its runs then resume).
    if not address and not os.environ.get("RAY_ADDRESS") and read_head() is None and running_head() is None:
        local = default_run_store_url()
        if sqlite_path(local).exists():
            note(
                f"platform {command}: no local Ray head is up; reading the local run store {sqlite_path(local)}"
            )
            return open_run_store(local)
    deployment = Deployment.connect(address, namespace, start=False, create=False, note=deploy_notes(command))
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
    output: OutputOpt = Output.text,
) -> None:
    """Runs of the deployment, newest first, with their status. With no head up (after `platform
    down`), the local run store is read."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    async def go() -> list[Any]:
        store = _store_for(address, namespace, run_store, "runs")
        try:
            return list(await store.list_runs(status=status, limit=limit, top_level=not all_runs))
        finally:
            await store.close()

    with deploy_errors("runs"):
        records = asyncio.run(go())
    rows = [_run_row(r) for r in records]
    emit(rows, output.value, lambda: runs_table(rows))


def runs_table(rows: list[dict[str, Any]]) -> str:
    """`platform runs` for people: aligned however long the ids and units are; the outcome only
    where it says more than the status (`failed (timeout)`, never `failed (failed)`)."""
    from agent_platform._deploy.apply_render import table

    return table(
        ["RUN", "UNIT", "STATUS", "ATTEMPT", "UPDATED"],
        [
            [
                row["run_id"],
                row["unit"],
                row["status"] + (f" ({row['outcome']})" if row["outcome"] not in ("", row["status"]) else ""),
                str(row["attempt"]),
                f"{row['updated_at']:%Y-%m-%d %H:%M:%S}",
            ]
            for row in rows
        ],
        right=("ATTEMPT",),
        empty="no runs",
    )


def _run_row(record: Any) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "unit": record.unit,
        "status": record.status.value,
        "outcome": (record.result or {}).get("outcome", ""),
        "attempt": record.attempt,
        "parent_run_id": record.parent_run_id,
        "error": record.error,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


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
    output: OutputOpt = Output.text,
) -> None:
    """Delete finished runs (records and checkpoints) older than --older-than.

    Pending and running runs are never deleted."""
    import asyncio
    from datetime import timedelta

    from agent_platform._runstore.base import utcnow
    from agent_platform._spec.common import parse_duration

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    statuses = sorted(set(status or FinishedStatus))
    cutoff = utcnow() - timedelta(seconds=age)

    async def go() -> int:
        store = _store_for(address, namespace, run_store, "runs prune")
        try:
            return int(await store.prune_runs(cutoff, [s.value for s in statuses], dry_run=dry_run))
        finally:
            await store.close()

    with deploy_errors("runs prune"):
        count = asyncio.run(go())
    which = ", ".join(s.value for s in statuses)
    verb = "would delete" if dry_run else "deleted"
    emit(
        {
            "dry_run": dry_run,
            "count": count,
            "statuses": [s.value for s in statuses],
            "finished_before": cutoff,
        },
        output.value,
        lambda: f"{verb} {count} run(s) ({which}) that finished before {cutoff:%Y-%m-%d %H:%M:%S} UTC",
    )


@app.command()
def result(
    run_id: Annotated[str, typer.Argument(help="A run id from `platform run --detach` or `platform runs`.")],
    wait: Annotated[
        float, typer.Option("--timeout", "--wait", help="Seconds to wait for the run to finish.")
    ] = 600.0,
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
    output: Annotated[
        Output, typer.Option("--output", "-o", help="Result format: json (default), yaml or text.")
    ] = Output.json,
) -> None:
    """Wait for a run and print its result (exit 0 when it completed, 1 when it did not). A run
    waiting for a person's approval, or one nobody is running any more (a local run whose process
    died), is reported at once, with the command that moves it on."""
    import asyncio

    from agent_platform._cli.runs import owner_gone, report_waiting

    if checkpoint:
        _print_checkpoint(run_id, address, namespace, run_store, output.value)
        return

    async def go() -> Any:
        store = _store_for(address, namespace, run_store, "result")
        try:
            found = await store.get_run(run_id)
            if found is None:
                from agent_platform._runstore import RunNotFound

                raise RunNotFound(run_id)
            if found.origin is not None and not found.status.settled and owner_gone(found.owner):
                return found  # a local run nobody runs: waiting would be forever
            return await store.wait(run_id, timeout=wait)
        finally:
            await store.close()

    with deploy_errors("result"):
        try:
            record = asyncio.run(go())
        except TimeoutError:
            typer.echo(f"platform result: run {run_id} did not finish within {wait:g}s", err=True)
            raise typer.Exit(EXIT_INVALID) from None
    if not record.status.settled:
        typer.echo(
            f"platform result: run {run_id} cannot finish on its own: it was running in {record.owner}, "
            f"which is gone (`platform resume {run_id}` continues it from its last checkpoint)",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)
    payload = record.result or {
        "run_id": run_id,
        "unit": record.unit,
        "outcome": record.status.value if record.status.value == "cancelled" else "failed",
        "error": record.error,
    }
    emit_result(payload, output.value)
    if record.status is RunStatus.WAITING_APPROVAL and record.result:
        from agent_platform._runtime.outcomes import RunResult

        report_waiting(RunResult.from_json(record.result))
    if record.status.value != "completed":
        raise typer.Exit(EXIT_INVALID)


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="A run id from `platform run --detach` or `platform runs`.")],
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the run to stop.")] = 30.0,
    address: AddressOpt = None,
    namespace: NamespaceOpt = DEFAULT_NS,
    output: OutputOpt = Output.text,
) -> None:
    """Cancel a deployed or detached run and its hand-offs; it ends `cancelled` (exit 0). A run
    that already ended, or an unknown run, exits 1."""
    from agent_platform._deploy.client import Deployment

    with deploy_errors("cancel"):
        deployment = Deployment.connect(
            address, namespace, start=False, create=False, note=deploy_notes("cancel")
        )
        record = deployment.cancel(run_id, wait=wait)
    row = _run_row(record)
    emit(row, output.value, lambda: f"{run_id} {row['status']}")
    if record.status.value != "cancelled":  # it ended some other way before the cancel landed
        raise typer.Exit(EXIT_INVALID)


def _print_checkpoint(
    run_id: str, address: str | None, namespace: str, run_store: str | None, output: str
) -> None:
    import asyncio

    async def go() -> Any:
        store = _store_for(address, namespace, run_store, "result")
        try:
            return await store.get_run(run_id), await store.load_checkpoint(run_id)
        finally:
            await store.close()

    with deploy_errors("result"):
        from agent_platform._runstore import RunNotFound

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
    emit(payload, output, lambda: to_json(payload))
