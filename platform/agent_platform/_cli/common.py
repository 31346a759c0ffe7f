"""What the command modules share: exit codes, the common options, and the steps every spec
command takes (find the files, validate, compile, print the diagnostics, print a result).

Nothing here registers a command, and nothing here imports Ray or an LLM SDK: `validate` must
start fast."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent_platform._cli.output import emit, to_yaml

if TYPE_CHECKING:
    from agent_platform._load import SpecFiles

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


NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Deployment namespace.")]
DEFAULT_NS = "agent-platform"


def validation_options(plugin_path: list[Path] | None, import_plugins: bool):  # type: ignore[no-untyped-def]
    from agent_platform._validate import ValidationOptions

    paths = None
    if plugin_path:
        from agent_platform._validate.plugins import default_plugin_paths

        paths = [*plugin_path, *default_plugin_paths()]
    return ValidationOptions(plugin_paths=paths, import_plugins=import_plugins)


def print_diagnostics(report, fmt: str, hints: bool, *, err: bool = False) -> None:  # type: ignore[no-untyped-def]
    """The report's diagnostics; `err` sends them to stderr (a command whose stdout is data)."""
    import json

    from agent_platform import _render as render
    from agent_platform._diagnostics import Severity

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
    from agent_platform._load import find_spec_files

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


def compile_or_exit(paths: list[Path], options, command: str = "plan"):  # type: ignore[no-untyped-def]
    """Validate and compile with the structured-output models built, or print the diagnostics
    (on stderr: these commands print data on stdout) and exit 1: (the validation report, the Plan)."""
    from agent_platform._compile import build_output_models, compile_specs
    from agent_platform._validate import validate_paths

    require_paths(command, paths)
    report = validate_paths(paths, options)
    if not report.ok:
        print_diagnostics(report, ValidateOutput.text, hints=False, err=True)
        raise typer.Exit(EXIT_INVALID)
    compiled = compile_specs(report.specs)
    build_output_models(compiled, report.diagnostics)
    if report.diagnostics.has_errors:
        print_diagnostics(report, ValidateOutput.text, hints=False, err=True)
        raise typer.Exit(EXIT_INVALID)
    return report, compiled


def read_input(raw: str | None) -> object:
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
