"""The spec commands: `validate`, `plan`, `schema`. They run in CI on every commit, so they
never import Ray or an LLM SDK; heavy imports live inside the commands that need them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent_platform._cli.common import (
    EXIT_INVALID,
    ImportPluginsOpt,
    PathsArg,
    PluginPathOpt,
    ValidateOutput,
    compile_or_exit,
    print_diagnostics,
    require_paths,
    require_spec_files,
    validation_options,
)
from agent_platform._cli.output import DeprecatedFormatOpt, Output, OutputOpt, chosen_output, emit

app = typer.Typer()


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
    from agent_platform._validate import validate_paths

    fmt = chosen_output("validate", output, format=format, allowed=tuple(o.value for o in ValidateOutput))
    require_spec_files("validate", paths)
    report = validate_paths(paths, validation_options(plugin_path, import_plugins))
    if report.ok:
        # compile is part of validation: it needs no Ray and catches what only it can see
        from agent_platform._compile import compile_specs

        compile_specs(report.specs)
    print_diagnostics(report, fmt, hints)
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


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
    from agent_platform import _render as render
    from agent_platform._cli.mcp import pin_before_plan

    fmt = chosen_output("plan", output, format=format)
    options = validation_options(plugin_path, import_plugins)
    require_paths("plan", paths)
    pin_before_plan(paths, options, discover=discover_mcp, update=update_mcp_lock)
    report, compiled = compile_or_exit(paths, options)
    from agent_platform._cli.remote import check_remote_cards_or_exit

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
    from agent_platform._schema_export import UnknownSchema, outdated_schemas, render_schema, write_schemas

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
