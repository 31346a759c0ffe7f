"""Runs that outlive a command: `platform run --local` recorded in the local run store, and the
commands that act on a recorded run: `approve` and `deny` (a run waiting for a person),
`approvals` (what it waits on), `resume` (a local run whose process died).

A local run keeps its record, checkpoints and pending approvals in the state directory's
SQLite run store (the one the embedded Ray head uses too), with the spec paths it was started
from (`RunRecord.origin`), so any later command can rebuild its runtime and continue it. A
deployed run is resumed by its deployment: `approve` hands it back to the control plane."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from agent_platform._cli.common import (
    EXIT_INVALID,
    EXIT_USAGE,
    NamespaceOpt,
    PluginPathOpt,
    ValidateOutput,
    emit_result,
    print_diagnostics,
    read_input,
    require_spec_files,
    validation_options,
)
from agent_platform._cli.output import Output, OutputOpt, emit, note, warn_approve_all
from agent_platform._deploy.decisions import Decided, approval_row, decide, resume_on_deployment

if TYPE_CHECKING:
    from agent_platform._runstore import PendingApproval, RunRecord, RunStore
    from agent_platform._runtime.outcomes import RunResult
    from agent_platform._runtime.tracing import TracingHandle

app = typer.Typer()


T = TypeVar("T")

AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Ray cluster of the deployment (default: $RAY_ADDRESS).")
]
RunStoreOpt = Annotated[
    str | None, typer.Option("--run-store", help="The run store holding the run (default: the local one).")
]

ResultOutputOpt = Annotated[Output, typer.Option("--output", "-o", help="json (default), yaml or text.")]
WaitingRunArg = Annotated[str, typer.Argument(help="The run waiting for approval (or one of its hand-offs).")]
CallKeyArg = Annotated[
    str | None,
    typer.Argument(help="Decide only this call (its key, or a unique prefix; `platform approvals`)."),
]
ByOpt = Annotated[str | None, typer.Option("--as", help="Who decides (default: user@host).")]
ResumeOpt = Annotated[
    bool, typer.Option("--resume/--no-resume", help="Resume the run once nothing is left to decide.")
]
WaitOpt = Annotated[
    float, typer.Option("--wait", help="Deployed runs: seconds to wait for the resumed run (0: do not).")
]


def local_owner() -> str:
    return f"local:{socket.gethostname()}:{os.getpid()}"


def origin_of(paths: list[Path], plugin_paths: list[Path] | None) -> dict[str, Any]:
    """What `resume` needs to rebuild a local run's runtime."""
    return {
        "paths": [str(p.resolve()) for p in paths],
        "plugin_paths": [str(p.resolve()) for p in plugin_paths] if plugin_paths else None,
        "cwd": os.getcwd(),
    }


def run_local(
    plan: Any,
    unit: str,
    inputs: dict[str, Any],
    *,
    run_id: str | None,
    origin: dict[str, Any],
    plugin_paths: list[Path] | None,
    tracing: TracingHandle,
    approve_all: bool,
    tenant: str | None = None,
    store_url: str | None = None,
    follow: bool = False,
) -> RunResult:
    """Run (or resume) `unit` in this process, recorded in the local run store: checkpointed after
    every step, paused in the store when a call needs a person. With `follow`, its steps are shown
    live on stderr from its events in the store (`_cli/follow.py`)."""
    from agent_platform._runstore import open_run_store
    from agent_platform._runtime.durable import DurableRunner, RunRequest
    from agent_platform._runtime.engine import Runtime
    from agent_platform._runtime.services import new_run_id

    runtime = Runtime(plan, plugin_paths=plugin_paths, tracing=tracing, approve_all=approve_all, durable=True)
    store = open_run_store(store_url)

    async def go() -> RunResult:
        runner = DurableRunner(runtime, store, local_owner())
        try:
            request = RunRequest(run_id or new_run_id(), unit, inputs, tenant=tenant, origin=origin)
            if not follow:
                return await runner.run(request)
            running = asyncio.get_running_loop().create_task(runner.run(request))
            await _follow_local(store, request.run_id, running)
            return await running
        finally:
            await runner.aclose()
            await runtime.aclose()
            await store.close()

    import asyncio  # here: `platform validate` imports this module at start-up

    return asyncio.run(go())


async def _follow_local(store: RunStore, run_id: str, running: Any) -> None:
    """Show the tree of a run this process runs until it ends (a run stores its events before
    it ends). Following is a view: if reading the store fails, the run goes on without it."""
    from agent_platform._cli.follow import follow_run, store_reader
    from agent_platform._runstore import RunStoreError

    async def settled() -> bool:
        return bool(running.done())

    try:
        await follow_run(store_reader(store, run_id), settled, run_id)
    except RunStoreError as exc:
        note(f"platform run: cannot show the run's steps: {exc}")


def report_waiting(result: RunResult) -> None:
    """On stderr: what a run that stopped for approval waits on, and the commands that decide."""
    from agent_platform._runtime.outcomes import Outcome

    if result.outcome is not Outcome.NEEDS_APPROVAL:
        return
    asked = result.details.get("approvals") or [result.details.get("approval") or {}]
    for item in asked:
        key = item.get("call_key", "")
        note(
            f"waiting for approval: call {key} of tool '{item.get('tool', '?')}' {item.get('arguments', {})}"
        )
    note(
        f"  approve: platform approve {result.run_id}   deny: platform deny {result.run_id}"
        "   (add a call key to decide one call)"
    )


def _store(run_store: str | None) -> RunStore:
    from agent_platform._runstore import open_run_store, run_store_url, sqlite_path, url_scheme

    url = run_store_url(run_store)
    if url_scheme(url) == "sqlite" and not sqlite_path(url).exists():
        from agent_platform._runstore import RunStoreUnavailable

        raise RunStoreUnavailable(
            url, f"there is no run store at {sqlite_path(url)} (no run was recorded here)"
        )
    return open_run_store(url)


def _with_store(run_store: str | None, command: str, body: Callable[[RunStore], Coroutine[Any, Any, T]]) -> T:
    from agent_platform._runstore import RunStoreError

    async def go() -> T:
        store = _store(run_store)
        try:
            return await body(store)
        finally:
            await store.close()

    try:
        import asyncio

        return asyncio.run(go())
    except RunStoreError as exc:
        typer.echo(f"platform {command}: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _approvals_text(rows: list[dict[str, Any]]) -> str:
    from agent_platform._deploy.apply_render import table

    return table(
        ["CALL", "TOOL", "ARGUMENTS", "DECISION", "BY"],
        [
            [
                row["call_key"],
                row["tool"] or "?",
                str(row["arguments"])[:60],
                row["decision"],
                row["decided_by"] or "",
            ]
            for row in rows
        ],
        empty="no tool call of this run has needed approval",
    )


@app.command()
def run(
    name: Annotated[
        str, typer.Argument(help="The agent, pipeline or supervisor to run (name or Kind/name).")
    ],
    specs: Annotated[
        list[Path] | None, typer.Option("--specs", "-s", help="Spec files or directories (default: specs/).")
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Run in this process on the asyncio runtime (no Ray).")
    ] = False,
    address: Annotated[
        str | None,
        typer.Option(
            "--address", help="Ray cluster of the deployment (default: $RAY_ADDRESS, else the local head)."
        ),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Deployment namespace.")
    ] = "agent-platform",
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Print the run id and return; `platform result ID` waits.")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Show the run's steps live on stderr as a tree (iterations, model and tool calls, "
            "sub-runs) from its events; the result and exit code are as without it.",
        ),
    ] = False,
    input: Annotated[
        str | None,
        typer.Option(
            "--input", "-i", help='Inputs as JSON, or @file.json. A supervisor takes {"tasks": [...]}.'
        ),
    ] = None,
    output: Annotated[
        Output | None,
        typer.Option(
            "--output",
            "-o",
            help="Result format: json (default), yaml or text. With --detach and no -o: the run id alone.",
        ),
    ] = None,
    trace: Annotated[
        bool,
        typer.Option("--trace", help="Print the span tree (durations, tokens, cost) on stderr."),
    ] = False,
    trace_file: Annotated[
        Path | None, typer.Option("--trace-file", help="Also write spans as JSON lines.")
    ] = None,
    approve_all: Annotated[
        bool,
        typer.Option(
            "--approve-all", help="Approve every tool that requires approval (offline demos, tests)."
        ),
    ] = False,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", help="Whose data the run works on: scopes its long-term memory (default: 'default')."
        ),
    ] = None,
    capture_content: Annotated[
        bool | None,
        typer.Option(
            "--capture-content/--no-capture-content",
            help="Record prompts, outputs and tool arguments in spans (redacted like everything "
            "else). Default: $OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, else off.",
        ),
    ] = None,
    plugin_path: PluginPathOpt = None,
    update_mcp_lock: Annotated[
        bool,
        typer.Option(
            "--update-mcp-lock",
            help="With --local: first list the tools of the MCP servers the specs use (starting stdio "
            "ones) and accept what changed into mcp.lock.yaml, as `plan --discover-mcp --update-mcp-lock`.",
        ),
    ] = False,
) -> None:
    """Run a unit and print its result on stdout, as JSON unless -o says otherwise (exit 0 when it
    completed, 1 when it did not).

    Without --local, the run goes to the deployment (`platform apply`); stderr says on which node
    and actor it and each of its hand-offs ran. The span tree (--trace) goes to stderr too. OTLP
    export follows the standard OTEL_* environment variables."""
    from agent_platform._compile import compile_specs
    from agent_platform._validate import validate_paths

    inputs = read_input(input)
    if not isinstance(inputs, dict):
        raise typer.BadParameter("inputs must be a JSON object", param_hint="--input")
    if approve_all:
        warn_approve_all("run")
    if update_mcp_lock and not local:
        raise typer.BadParameter("--update-mcp-lock applies to --local runs", param_hint="--update-mcp-lock")
    if follow and detach:
        raise typer.BadParameter(
            "--follow shows the run until it settles, --detach returns at once: use one",
            param_hint="--follow",
        )
    if not local:
        from agent_platform._cli.deploy import run_deployed

        run_deployed(
            name,
            inputs,
            address=address,
            namespace=namespace,
            detach=detach,
            trace=trace,
            tenant=tenant,
            output=output.value if output is not None else None,
            follow=follow,
        )
        return
    if detach:
        raise typer.BadParameter("--detach needs a deployment (drop --local)", param_hint="--detach")
    spec_paths = specs or [Path("specs")]
    require_spec_files("run", spec_paths)
    if update_mcp_lock:
        from agent_platform._cli.mcp import pin_before_plan

        pin_before_plan(spec_paths, validation_options(plugin_path, False), discover=True, update=True)
    report = validate_paths(spec_paths, validation_options(plugin_path, False))
    if not report.ok:
        print_diagnostics(report, ValidateOutput.text, hints=False, err=True)
        raise typer.Exit(EXIT_INVALID)
    plan = compile_specs(report.specs)

    from agent_platform._cli.runs import origin_of, report_waiting, run_local
    from agent_platform._runstore import RunStoreError
    from agent_platform._runtime.engine import Runtime, UnknownUnit, find_unit, tune_gc_for_runs
    from agent_platform._runtime.inputs import InputError
    from agent_platform._runtime.span_tree import render_span_tree
    from agent_platform._runtime.supervisor import TaskError
    from agent_platform._runtime.tracing import configure_tracing

    try:  # refused before anything is recorded: a usage error
        unit = find_unit(plan, name)
        Runtime.prepare_inputs(unit, inputs)
    except (UnknownUnit, InputError, TaskError) as exc:
        typer.echo(f"platform run: {exc}", err=True)
        raise typer.Exit(2) from None
    tracing = configure_tracing(memory=trace, jsonl_path=trace_file, capture_content=capture_content)
    tune_gc_for_runs()
    plugins = list(plugin_path) if plugin_path else None
    try:
        result = run_local(
            plan,
            str(unit.ref),
            inputs,
            run_id=None,
            origin=origin_of(spec_paths, plugins),
            plugin_paths=plugins,
            tracing=tracing,
            approve_all=approve_all,
            tenant=tenant,
            follow=follow,
        )
    except RunStoreError as exc:
        typer.echo(f"platform run: the local run store cannot record the run: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    finally:
        tracing.force_flush()
    report_waiting(result)
    emit_result(result.to_json(), (output or Output.json).value)
    if trace:
        note(render_span_tree(tracing.finished_spans()))
    tracing.shutdown()
    if not result.ok:
        raise typer.Exit(EXIT_INVALID)


@app.command()
def approvals(
    run_id: Annotated[str, typer.Argument(help="A run id (`platform runs --status waiting_approval`).")],
    run_store: RunStoreOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """The tool calls a run (and its hand-offs) asked a person about, decided or waiting."""

    async def body(store: RunStore) -> list[PendingApproval]:
        return await store.approvals(run_id)

    rows = [approval_row(a) for a in _with_store(run_store, "approvals", body)]
    emit(rows, output.value, lambda: _approvals_text(rows))


def _decide(
    decision: str,
    run_id: str,
    call_key: str | None,
    by: str | None,
    resume: bool,
    wait: float,
    address: str | None,
    namespace: str,
    run_store: str | None,
    output: Output,
) -> None:
    command = "approve" if decision == "approved" else "deny"
    decided_by = by or f"{getpass.getuser()}@{socket.gethostname()}"

    async def body(store: RunStore) -> Decided:
        return await decide(store, run_id, decision, by=decided_by, call_key=call_key)

    decided = _with_store(run_store, command, body)
    report, root = decided.report, decided.root
    rows = [approval_row(a) for a in report.decided]
    for row in rows:
        note(
            f"{decision} call {row['call_key']} of tool '{row['tool']}' {row['arguments']} (by {decided_by})"
        )
    if not report.resumable:
        left = ", ".join(f"{a.call_key} ({a.request.get('tool', '?')})" for a in report.undecided)
        note(f"run {report.root_run_id} still waits for: {left}")
        emit(rows, output.value, lambda: _approvals_text(rows))
        return
    if not resume or root is None:
        note(f"run {report.root_run_id} may resume: `platform resume {report.root_run_id}`")
        emit(rows, output.value, lambda: _approvals_text(rows))
        return
    if root.origin is not None:  # a local run: it goes on here
        _resume_local(root, run_store, output)
        return
    _resume_deployed(root, address, namespace, wait, output)


def _resume_deployed(
    root: RunRecord, address: str | None, namespace: str, wait: float, output: Output
) -> None:
    from agent_platform._cli.deploy import deploy_errors

    with deploy_errors("approve"):
        from agent_platform._deploy.client import Deployment

        deployment = Deployment.connect(address, namespace, start=False, create=False)
        import asyncio

        asyncio.run(resume_on_deployment(deployment.control, root))
    note(f"run {root.run_id} resumed on the deployment")
    if wait <= 0:
        emit({"run_id": root.run_id, "status": "pending"}, output.value, lambda: root.run_id)
        return

    async def settled(store: RunStore) -> RunRecord:
        return await store.wait(root.run_id, timeout=wait)

    from agent_platform._runtime.outcomes import RunResult

    try:
        record = _with_store(deployment.settings()["run_store_url"], "approve", settled)
    except TimeoutError:
        note(f"run {root.run_id} has not settled after {wait:g}s: `platform result {root.run_id}` waits")
        return
    result = RunResult.from_json(record.result) if record.result else None
    _print_result(result, record, output)


def _print_result(result: RunResult | None, record: RunRecord, output: Output) -> None:
    payload = (
        result.to_json()
        if result is not None
        else {"run_id": record.run_id, "unit": record.unit, "outcome": "failed", "error": record.error}
    )
    emit_result(payload, output.value)
    if result is not None:
        report_waiting(result)
    if result is None or not result.ok:
        raise typer.Exit(EXIT_INVALID)


@app.command()
def approve(
    run_id: WaitingRunArg,
    call_key: CallKeyArg = None,
    by: ByOpt = None,
    resume: ResumeOpt = True,
    wait: WaitOpt = 600.0,
    address: AddressOpt = None,
    namespace: NamespaceOpt = "agent-platform",
    run_store: RunStoreOpt = None,
    output: ResultOutputOpt = Output.json,
) -> None:
    """Approve the calls a paused run waits on (all, or one), then resume it: a local run goes on
    in this process, a deployed one on its deployment. Exit 0 when the run then completes."""
    _decide("approved", run_id, call_key, by, resume, wait, address, namespace, run_store, output)


@app.command()
def deny(
    run_id: WaitingRunArg,
    call_key: CallKeyArg = None,
    by: ByOpt = None,
    resume: ResumeOpt = True,
    wait: WaitOpt = 600.0,
    address: AddressOpt = None,
    namespace: NamespaceOpt = "agent-platform",
    run_store: RunStoreOpt = None,
    output: ResultOutputOpt = Output.json,
) -> None:
    """Deny the calls a paused run waits on (all, or one), then resume it: the model is told the
    call was denied and carries on without it."""
    _decide("denied", run_id, call_key, by, resume, wait, address, namespace, run_store, output)


@app.command("resume")
def resume_command(
    run_id: Annotated[str, typer.Argument(help="A local run (`platform run --local`) that did not finish.")],
    force: Annotated[
        bool, typer.Option("--force", help="Resume even if the process that ran it is still alive.")
    ] = False,
    run_store: RunStoreOpt = None,
    output: ResultOutputOpt = Output.json,
) -> None:
    """Continue a local run from its last checkpoint (its process was killed, or it was approved
    with --no-resume). Tool calls it had made replay from the idempotency store: none runs twice."""

    async def body(store: RunStore) -> RunRecord | None:
        return await store.get_run(run_id)

    record = _with_store(run_store, "resume", body)
    if record is None:
        typer.echo(f"platform resume: run {run_id!r} is not in the run store", err=True)
        raise typer.Exit(EXIT_INVALID)
    if record.origin is None:
        typer.echo(
            f"platform resume: run {run_id} is a deployed run: its deployment resumes it "
            "(`platform apply` restarts a stopped one)",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    alive = not owner_gone(record.owner)
    if alive and not force and record.status.value == "running":
        typer.echo(
            f"platform resume: run {run_id} is still running in process {record.owner} "
            "(--force takes it over; the old process then stops at its next step)",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)
    _resume_local(record, run_store, output)


def _resume_local(record: RunRecord, run_store: str | None, output: Output) -> None:
    from agent_platform._compile import compile_specs
    from agent_platform._runtime.durable import stored_result
    from agent_platform._runtime.tracing import configure_tracing
    from agent_platform._validate import validate_paths

    if record.status.settled and record.status.value != "pending":
        _print_result(stored_result(record), record, output)
        return
    origin = record.origin or {}
    paths = [Path(p) for p in origin.get("paths") or []]
    plugin_paths = [Path(p) for p in origin["plugin_paths"]] if origin.get("plugin_paths") else None
    cwd = origin.get("cwd")
    if cwd and Path(cwd).is_dir():
        os.chdir(cwd)  # relative paths in specs (scripts, plugins) mean what they meant
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        typer.echo(f"platform resume: the run's specs are gone: {', '.join(missing)}", err=True)
        raise typer.Exit(EXIT_INVALID)
    report = validate_paths(paths, validation_options(plugin_paths, False))
    if not report.ok:
        print_diagnostics(report, _text_output(), hints=False, err=True)
        raise typer.Exit(EXIT_INVALID)
    plan = compile_specs(report.specs)
    tracing = configure_tracing()
    note(f"resuming run {record.run_id} of {record.unit}")
    result = run_local(
        plan,
        record.unit,
        record.inputs or {},
        run_id=record.run_id,
        origin=origin,
        plugin_paths=plugin_paths,
        tracing=tracing,
        approve_all=False,
        tenant=record.tenant,
        store_url=run_store,
    )
    tracing.shutdown()
    _print_result(result, record, output)


def _text_output() -> Any:
    from agent_platform._cli.common import ValidateOutput

    return ValidateOutput.text


def owner_gone(owner: str | None) -> bool:
    """Whether the local process named by a run's owner (`local:host:pid`) is known to be gone:
    it ran on this host and no such process lives. An owner elsewhere, or of a deployment, is
    not known to be gone."""
    if not owner or not owner.startswith("local:"):
        return False
    _, host, pid = owner.split(":", 2)
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True  # this process holds no run it did not start itself
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@app.command("trace")
def trace_command(
    run_id: Annotated[str, typer.Argument(help="A run id (`platform runs`).")],
    trace_file: Annotated[
        Path | None,
        typer.Option(
            "--trace-file",
            help="The JSON-lines span file (default: the state directory's traces.jsonl, where a "
            "deployment's actors write; a local run writes one with --trace-file).",
        ),
    ] = None,
    run_store: RunStoreOpt = None,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="text (default), json or yaml.")
    ] = Output.text,
) -> None:
    """A run's span tree, with durations, tokens and cost (its hand-offs on other nodes included):
    what its spans recorded, read from the span file."""
    from agent_platform._deploy.traces import read_spans, render_trace
    from agent_platform._state_files import default_state_dir

    path = trace_file or default_state_dir() / "traces.jsonl"

    async def body(store: RunStore) -> RunRecord | None:
        return await store.get_run(run_id)

    record = _with_store(run_store, "trace", body)
    trace_id = (record.result or {}).get("trace_id") if record is not None else None
    if trace_id is None:  # a run whose record holds no result: its run span, if it has ended
        trace_id = next(
            (
                s.get("trace_id")
                for s in read_spans(path)
                if (s.get("attributes") or {}).get("agent_platform.run.id") == run_id
            ),
            None,
        )
    spans = read_spans(path, trace_id) if trace_id is not None else []
    if not spans:
        state = f" (it is {record.status.value})" if record is not None else ""
        typer.echo(
            f"platform trace: no spans of run {run_id} in {path}{state}; a run's spans are written "
            "as they end: deployed runs always, local runs with --trace-file",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)
    assert trace_id is not None
    emit(spans, output.value, lambda: render_trace(path, trace_id))
