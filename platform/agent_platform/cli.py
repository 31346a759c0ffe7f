"""The `platform` command.

`validate`, `plan` and `schema` must start fast and never import Ray or an LLM SDK: they run in
CI on every commit. Heavy imports therefore live inside the commands that need them.

Exit codes: 0 success, 1 invalid specs (or a failed run, or a change a dry run would make),
2 usage error, 3 internal error (a bug: please report).

Every command that prints data takes `-o/--output text|json|yaml` and prints only that data on
stdout; trees, placements and progress go to stderr (see cli_output.py).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from agent_platform import __version__
from agent_platform.cli_output import (
    DeprecatedFormatOpt,
    Output,
    OutputOpt,
    chosen_output,
    emit,
    note,
    to_yaml,
    warn_approve_all,
)

if TYPE_CHECKING:
    from agent_platform.load import SpecFiles

app = typer.Typer(
    name="platform",
    help="Declarative AI agent platform: validate, plan and run agent specs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class ValidateOutput(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"
    github = "github"


PathsArg = Annotated[
    list[Path],
    typer.Argument(help="Spec files or directories (searched recursively for *.yaml, *.yml)."),
]
PluginPathOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--plugin-path",
        help="Where `python:` tool modules are looked up (repeatable). "
        "Default: the current directory and $PLATFORM_PLUGIN_PATH.",
    ),
]
ImportPluginsOpt = Annotated[
    bool,
    typer.Option(
        "--import-plugins",
        help="Import plugin modules, to check argument types too (names and required parameters "
        "are checked from the source without it).",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"platform {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Declarative AI agent platform."""


def _options(plugin_path: list[Path] | None, import_plugins: bool):  # type: ignore[no-untyped-def]
    from agent_platform.validate import ValidationOptions

    paths = None
    if plugin_path:
        from agent_platform.validate.plugins import default_plugin_paths

        paths = [*plugin_path, *default_plugin_paths()]
    return ValidationOptions(plugin_paths=paths, import_plugins=import_plugins)


def _print_diagnostics(report, fmt: str, hints: bool, *, err: bool = False) -> None:  # type: ignore[no-untyped-def]
    """The report's diagnostics; `err` sends them to stderr (a command whose stdout is data)."""
    import json

    from agent_platform import render
    from agent_platform.diagnostics import Severity

    shown = [d for d in report.diagnostics.sorted() if hints or d.severity is not Severity.HINT]
    spec_count = len(report.specs.specs)
    if fmt in (ValidateOutput.json, ValidateOutput.yaml):
        data = render.diagnostics_json(shown, spec_count, report.files)
        typer.echo(data if fmt == ValidateOutput.json else to_yaml(json.loads(data)), err=err)
        return
    if fmt == ValidateOutput.github:
        for d in shown:
            typer.echo(render.github_annotation(d), err=err)
    else:
        for d in shown:
            typer.echo(render.diagnostic_line(d), err=err)
    typer.echo(render.summary(shown, spec_count, len(report.files)), err=err or fmt == ValidateOutput.github)


def require_paths(command: str, paths: list[Path]) -> SpecFiles:
    """The spec files PATHS hold. A path that does not exist is a usage error (exit 2), not
    "0 specs, valid"."""
    from agent_platform.load import find_spec_files

    found = find_spec_files(paths)
    for path in found.missing:
        typer.echo(f"platform {command}: {path}: no such file or directory", err=True)
    if found.missing:
        raise typer.Exit(EXIT_USAGE)
    return found


def require_spec_files(command: str, paths: list[Path]) -> None:
    """`require_paths`, and paths that hold no spec file are an error (exit 1): CI must not pass
    on a mistyped path."""
    if not require_paths(command, paths).files:
        where = ", ".join(str(p) for p in paths)
        typer.echo(f"platform {command}: no spec files found in {where} (*.yaml, *.yml)", err=True)
        raise typer.Exit(EXIT_INVALID)


@app.command()
def validate(
    paths: PathsArg,
    output: Annotated[
        ValidateOutput, typer.Option("--output", "-o", help="Output format: text, json, yaml or github.")
    ] = ValidateOutput.text,
    format: DeprecatedFormatOpt = None,
    plugin_path: PluginPathOpt = None,
    import_plugins: ImportPluginsOpt = False,
    hints: Annotated[bool, typer.Option("--hints/--no-hints", help="Show design hints.")] = True,
) -> None:
    """Check specs: syntax, fields, references, cycles, templates, schemas, plugins.

    Exits 0 when valid, 1 when not (or when PATHS hold no spec file), 2 on usage errors (a path
    that does not exist). Never imports Ray or an LLM SDK."""
    from agent_platform.validate import validate_paths

    fmt = chosen_output("validate", output, format=format, allowed=tuple(o.value for o in ValidateOutput))
    require_spec_files("validate", paths)
    report = validate_paths(paths, _options(plugin_path, import_plugins))
    if report.ok:
        # compile is part of validation: it needs no Ray and catches what only it can see
        from agent_platform.compile import compile_specs

        compile_specs(report.specs)
    _print_diagnostics(report, fmt, hints)
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


def compile_or_exit(paths: list[Path], options, command: str = "plan"):  # type: ignore[no-untyped-def]
    """Validate and compile with the structured-output models built, or print the diagnostics
    (on stderr: these commands print data on stdout) and exit 1: (the validation report, the Plan)."""
    from agent_platform.compile import build_output_models, compile_specs
    from agent_platform.validate import validate_paths

    require_paths(command, paths)
    report = validate_paths(paths, options)
    if not report.ok:
        _print_diagnostics(report, ValidateOutput.text, hints=False, err=True)
        raise typer.Exit(EXIT_INVALID)
    compiled = compile_specs(report.specs)
    build_output_models(compiled, report.diagnostics)
    if report.diagnostics.has_errors:
        _print_diagnostics(report, ValidateOutput.text, hints=False, err=True)
        raise typer.Exit(EXIT_INVALID)
    return report, compiled


@app.command()
def plan(
    paths: PathsArg,
    output: OutputOpt = Output.text,
    format: DeprecatedFormatOpt = None,
    plugin_path: PluginPathOpt = None,
    import_plugins: ImportPluginsOpt = False,
    discover_mcp: Annotated[
        bool,
        typer.Option(
            "--discover-mcp",
            help="Start the stdio MCP servers the specs use to list their tools (HTTP servers are always contacted).",
        ),
    ] = False,
    update_mcp_lock: Annotated[
        bool,
        typer.Option("--update-mcp-lock", help="Accept MCP tools that changed: write them to mcp.lock.yaml."),
    ] = False,
) -> None:
    """Show the compiled plan: each unit, pipeline or agent loop and why, its actors, its dependencies.

    First pins the tools of the MCP servers the specs use in mcp.lock.yaml (see --discover-mcp),
    and checks each RemoteAgent against its agent card (fetched over HTTP)."""
    from agent_platform import render
    from agent_platform.cli_mcp import pin_before_plan

    fmt = chosen_output("plan", output, format=format)
    options = _options(plugin_path, import_plugins)
    require_paths("plan", paths)
    pin_before_plan(paths, options, discover=discover_mcp, update=update_mcp_lock)
    report, compiled = compile_or_exit(paths, options)
    from agent_platform.cli_remote import check_remote_cards_or_exit

    check_remote_cards_or_exit(report.specs)
    emit(render.plan_json(compiled), fmt, lambda: render.plan_text(compiled))


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the JSON Schemas to.")] = Path(
        "schemas"
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the directory is stale.")
    ] = False,
    print_schema: Annotated[
        str | None,
        typer.Option(
            "--print",
            metavar="KIND|document",
            help="Write nothing; print one schema to stdout: a kind (agent, tool, ...) or 'document'.",
        ),
    ] = None,
) -> None:
    """Write one JSON Schema per kind and one for any document (for editors and CI), generated from
    the installed package: `platform schema --out .schemas/` works in any project."""
    from agent_platform.schema_export import UnknownSchema, outdated_schemas, render_schema, write_schemas

    if print_schema is not None:
        if check:
            raise typer.BadParameter("give --print or --check, not both", param_hint="--print")
        try:
            typer.echo(render_schema(print_schema), nl=False)
        except UnknownSchema as exc:
            raise typer.BadParameter(str(exc), param_hint="--print") from None
        return
    if check:
        outdated = outdated_schemas(out)
        for schema in outdated:
            typer.echo(f"{out / schema.name}: {schema.problem.value}; run `platform schema --out {out}`")
        if outdated:
            raise typer.Exit(EXIT_INVALID)
        typer.echo(f"{out}: up to date")
        return
    for path in write_schemas(out):
        typer.echo(f"wrote {path}")


@app.command()
def serve(
    mcp: Annotated[
        bool,
        typer.Option("--mcp", help="Serve the units as MCP tools (with --stdio or --http)."),
    ] = False,
    stdio: Annotated[
        bool, typer.Option("--stdio", help="Over stdin/stdout (for Claude Desktop, IDEs).")
    ] = False,
    http: Annotated[
        str | None,
        typer.Option("--http", metavar="HOST:PORT", help="Over streamable HTTP at http://HOST:PORT/mcp."),
    ] = None,
    local: Annotated[bool, typer.Option("--local", help="Run the units in this process (no Ray).")] = False,
    specs: Annotated[
        list[Path] | None, typer.Option("--specs", "-s", help="Spec files or directories (default: specs/).")
    ] = None,
    approve_all: Annotated[
        bool, typer.Option("--approve-all", help="Approve every tool that requires approval.")
    ] = False,
    plugin_path: PluginPathOpt = None,
    api: Annotated[
        bool,
        typer.Option(
            "--api",
            help="Serve the HTTP API (runs, approvals, OpenAPI) on Ray Serve, against the local "
            "deployment: the specs' Endpoints, else one serving every unit.",
        ),
    ] = False,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env", metavar="VAR", help="--api without an Endpoint: the bearer token is $VAR."
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="--api without an Endpoint: no token (local development only).")
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="--api: the HTTP port.")
    ] = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="The deployment namespace.")] = (
        "agent-platform"
    ),
) -> None:
    """Serve every Agent, Pipeline and Supervisor of the specs as an MCP tool: its input schema is
    the unit's inputs, its output schema the unit's output, its description metadata.description.

    With --api, serve the HTTP API on Ray Serve instead, for local development against the local
    deployment (`platform apply` the specs first), until interrupted.

    A run that needs approval (without --approve-all) or does not complete is an error result
    naming its outcome. Units run on the deployment (`platform apply` them first; only what is
    deployed is served), or in this process with --local."""
    from agent_platform.cli_mcp import parse_address, serve_mcp
    from agent_platform.compile import compile_specs
    from agent_platform.validate import validate_paths

    if api:
        if mcp:
            raise typer.BadParameter("give one of --mcp and --api", param_hint="--api")
        from agent_platform.cli_serve import serve_api

        serve_api(
            specs or [Path("specs")],
            address=None,
            namespace=namespace,
            insecure=insecure,
            token_env=token_env,
            port=port,
            plugin_path=plugin_path,
        )
        return
    if not mcp:
        raise typer.BadParameter("say which protocol to serve: --mcp or --api", param_hint="--mcp")
    if stdio == (http is not None):
        raise typer.BadParameter("give one of --stdio and --http HOST:PORT", param_hint="--stdio")
    try:
        address = parse_address(http) if http is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--http") from None
    if approve_all:
        warn_approve_all("serve")
    spec_paths = specs or [Path("specs")]
    require_spec_files("serve", spec_paths)
    report = validate_paths(spec_paths, _options(plugin_path, False))
    if not report.ok:
        _print_diagnostics(report, ValidateOutput.text, hints=False, err=True)
        raise typer.Exit(EXIT_INVALID)
    plan = compile_specs(report.specs)
    plugins = list(plugin_path) if plugin_path else None
    deployment = None
    if not local:  # each call a run on the deployment the specs were applied to
        from agent_platform.cli_deploy import _deploy_errors
        from agent_platform.deploy.client import Deployment

        with _deploy_errors("serve"):
            deployment = Deployment.connect(None, namespace, start=False, create=False)
    serve_mcp(
        plan, report.specs, http=address, approve_all=approve_all, plugins=plugins, deployment=deployment
    )


def _read_input(raw: str | None) -> object:
    import json

    if raw is None:
        return {}
    text = raw
    if raw.startswith("@"):
        path = Path(raw[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--input") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = raw[1:] if raw.startswith("@") else "--input"
        raise typer.BadParameter(
            f"{where}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}", param_hint="--input"
        ) from None


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
    from agent_platform.compile import compile_specs
    from agent_platform.validate import validate_paths

    inputs = _read_input(input)
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
        from agent_platform.cli_deploy import run_deployed

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
        from agent_platform.cli_mcp import pin_before_plan

        pin_before_plan(spec_paths, _options(plugin_path, False), discover=True, update=True)
    report = validate_paths(spec_paths, _options(plugin_path, False))
    if not report.ok:
        _print_diagnostics(report, ValidateOutput.text, hints=False, err=True)
        raise typer.Exit(EXIT_INVALID)
    plan = compile_specs(report.specs)

    from agent_platform.cli_runs import origin_of, report_waiting, run_local
    from agent_platform.runstore import RunStoreError
    from agent_platform.runtime.engine import Runtime, UnknownUnit, find_unit, tune_gc_for_runs
    from agent_platform.runtime.inputs import InputError
    from agent_platform.runtime.span_tree import render_span_tree
    from agent_platform.runtime.supervisor import TaskError
    from agent_platform.runtime.tracing import configure_tracing

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


def emit_result(payload: dict[str, Any], output: str) -> None:
    """A run's result on stdout: the data itself in json or yaml, or a summary for people."""
    emit(payload, output, lambda: result_text(payload))


def result_text(payload: dict[str, Any]) -> str:
    lines = [f"run {payload.get('run_id', '?')} of {payload.get('unit', '?')}: {payload.get('outcome', '?')}"]
    if payload.get("error"):
        lines.append(f"error: {payload['error']}")
    if payload.get("output") is not None:
        lines.append("output:")
        lines.extend("  " + line for line in to_yaml(payload["output"]).splitlines())
    usage = payload.get("usage") or {}
    if usage:
        lines.append("usage: " + ", ".join(f"{k} {v}" for k, v in usage.items()))
    return "\n".join(lines)


# The deployment commands register themselves on `app` (they import Ray only when they run).
from agent_platform import cli_deploy, cli_dev, cli_eval, cli_init, cli_memory, cli_runs, cli_test  # noqa: E402, F401


def main() -> None:
    """Console entry point: a bug must never reach the user as a bare traceback."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except ImportError as exc:  # an optional extra this command needs is not installed
        from agent_platform.extras import extra_for, install_hint

        missing = extra_for(exc)
        if missing is None:
            _internal_error(exc)
        sys.stderr.write(
            f"platform: this command needs more than the core install: {install_hint(*missing)}\n"
        )
        sys.exit(EXIT_INVALID)
    except Exception as exc:  # last resort: report, don't dump
        _internal_error(exc)


def _internal_error(exc: BaseException) -> NoReturn:
    sys.stderr.write(
        f"platform: internal error: {type(exc).__name__}: {exc}\n"
        "This is a bug in the platform, not in your specs. Please report it with the command you ran.\n"
    )
    sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
