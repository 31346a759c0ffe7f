"""The `platform` command.

`validate`, `plan` and `schema` must start fast and never import Ray or an LLM SDK: they run in
CI on every commit. Heavy imports therefore live inside the commands that need them.

Exit codes: 0 success, 1 invalid specs, 2 usage error, 3 internal error (a bug: please report).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agent_platform import __version__

app = typer.Typer(
    name="platform",
    help="Declarative AI agent platform: validate, plan and run agent specs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_INVALID = 1
EXIT_INTERNAL = 3


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    github = "github"


class PlanFormat(StrEnum):
    text = "text"
    json = "json"


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
    typer.Option("--import-plugins", help="Import plugin modules and check tool signatures."),
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


def _print_diagnostics(report, fmt: OutputFormat, hints: bool) -> None:  # type: ignore[no-untyped-def]
    from agent_platform import render
    from agent_platform.diagnostics import Severity

    shown = [d for d in report.diagnostics.sorted() if hints or d.severity is not Severity.HINT]
    spec_count = len(report.specs.specs)
    if fmt is OutputFormat.json:
        typer.echo(render.diagnostics_json(shown, spec_count, report.files))
        return
    if fmt is OutputFormat.github:
        for d in shown:
            typer.echo(render.github_annotation(d))
    else:
        for d in shown:
            typer.echo(render.diagnostic_line(d))
    typer.echo(render.summary(shown, spec_count, len(report.files)), err=fmt is OutputFormat.github)


@app.command()
def validate(
    paths: PathsArg,
    format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.text,
    plugin_path: PluginPathOpt = None,
    import_plugins: ImportPluginsOpt = False,
    hints: Annotated[bool, typer.Option("--hints/--no-hints", help="Show design hints.")] = True,
) -> None:
    """Check specs: syntax, fields, references, cycles, templates, schemas, plugins.

    Exits 0 when valid, 1 when not, 2 on usage errors. Never imports Ray or an LLM SDK."""
    from agent_platform.validate import validate_paths

    report = validate_paths(paths, _options(plugin_path, import_plugins))
    if report.ok:
        # compile is part of validation: it needs no Ray and catches what only it can see
        from agent_platform.compile import compile_specs

        compile_specs(report.specs)
    _print_diagnostics(report, format, hints)
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


def compile_or_exit(paths: list[Path], options):  # type: ignore[no-untyped-def]
    """Validate and compile with the structured-output models built, or print the diagnostics
    and exit 1: (the validation report, the Plan)."""
    from agent_platform.compile import build_output_models, compile_specs
    from agent_platform.validate import validate_paths

    report = validate_paths(paths, options)
    if not report.ok:
        _print_diagnostics(report, OutputFormat.text, hints=False)
        raise typer.Exit(EXIT_INVALID)
    compiled = compile_specs(report.specs)
    build_output_models(compiled, report.diagnostics)
    if report.diagnostics.has_errors:
        _print_diagnostics(report, OutputFormat.text, hints=False)
        raise typer.Exit(EXIT_INVALID)
    return report, compiled


@app.command()
def plan(
    paths: PathsArg,
    format: Annotated[PlanFormat, typer.Option("--format", "-f", help="Output format.")] = PlanFormat.text,
    plugin_path: PluginPathOpt = None,
    import_plugins: ImportPluginsOpt = False,
) -> None:
    """Show the compiled plan: each unit, pipeline or agent loop and why, its actors, its dependencies."""
    import json

    from agent_platform import render

    _, compiled = compile_or_exit(paths, _options(plugin_path, import_plugins))
    if format is PlanFormat.json:
        typer.echo(json.dumps(render.plan_json(compiled), indent=2))
    else:
        typer.echo(render.plan_text(compiled))


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the JSON Schemas to.")] = Path(
        "schemas"
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the directory is stale.")
    ] = False,
) -> None:
    """Write one JSON Schema per kind and one for any document (for editors and CI)."""
    from agent_platform.schema_export import stale_schemas, write_schemas

    if check:
        stale = stale_schemas(out)
        for name in stale:
            typer.echo(f"{out / name}: stale; run `platform schema --out {out}`")
        if stale:
            raise typer.Exit(EXIT_INVALID)
        typer.echo(f"{out}: up to date")
        return
    for path in write_schemas(out):
        typer.echo(f"wrote {path}")


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
    input: Annotated[
        str | None,
        typer.Option(
            "--input", "-i", help='Inputs as JSON, or @file.json. A supervisor takes {"tasks": [...]}.'
        ),
    ] = None,
    trace: Annotated[
        bool, typer.Option("--trace", help="Print the span tree (durations, tokens, cost).")
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
    plugin_path: PluginPathOpt = None,
) -> None:
    """Run a unit and print its result as JSON (exit 0 when it completed, 1 when it did not).

    Without --local, the run goes to the deployment (`platform apply`) and the output says on
    which node and actor it and each of its hand-offs ran. OTLP export follows the standard
    OTEL_* environment variables."""
    import asyncio

    from agent_platform.compile import compile_specs
    from agent_platform.validate import validate_paths

    inputs = _read_input(input)
    if not isinstance(inputs, dict):
        raise typer.BadParameter("inputs must be a JSON object", param_hint="--input")
    if not local:
        from agent_platform.cli_deploy import run_deployed

        run_deployed(
            name, inputs, address=address, namespace=namespace, detach=detach, trace=trace, tenant=tenant
        )
        return
    if detach:
        raise typer.BadParameter("--detach needs a deployment (drop --local)", param_hint="--detach")
    report = validate_paths(specs or [Path("specs")], _options(plugin_path, False))
    if not report.ok:
        _print_diagnostics(report, OutputFormat.text, hints=False)
        raise typer.Exit(EXIT_INVALID)
    plan = compile_specs(report.specs)

    from agent_platform.runtime.engine import Runtime, UnknownUnit, result_json, tune_gc_for_runs
    from agent_platform.runtime.inputs import InputError
    from agent_platform.runtime.outcomes import RunResult
    from agent_platform.runtime.span_tree import render_span_tree
    from agent_platform.runtime.supervisor import TaskError
    from agent_platform.runtime.tracing import configure_tracing

    tracing = configure_tracing(memory=trace, jsonl_path=trace_file)
    tune_gc_for_runs()
    runtime = Runtime(
        plan,
        plugin_paths=list(plugin_path) if plugin_path else None,
        tracing=tracing,
        approve_all=approve_all,
    )

    async def go() -> RunResult:
        try:
            return await runtime.run(name, inputs, tenant=tenant)
        finally:
            await runtime.aclose()

    try:
        result = asyncio.run(go())
    except (UnknownUnit, InputError, TaskError) as exc:
        typer.echo(f"platform run: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        tracing.force_flush()
    typer.echo(result_json(result))
    if trace:
        typer.echo("")
        typer.echo(render_span_tree(tracing.finished_spans()))
    tracing.shutdown()
    if not result.ok:
        raise typer.Exit(EXIT_INVALID)


# The deployment commands register themselves on `app` (they import Ray only when they run).
from agent_platform import cli_deploy, cli_memory  # noqa: E402, F401


def main() -> None:
    """Console entry point: a bug must never reach the user as a bare traceback."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # last resort: report, don't dump
        sys.stderr.write(
            f"platform: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in the platform, not in your specs. Please report it with the command you ran.\n"
        )
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
