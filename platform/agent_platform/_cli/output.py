"""One output flag for every command: `-o/--output text|json|yaml`.

A command documented to print data prints only that data on stdout, so `| jq` and
`| python -m json.tool` always work: span trees, placements and progress go to stderr. The older
flags (`-f/--format`, `--json`) still work and say, on stderr, what replaces them."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer


class Output(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format: text, json or yaml.")]
# Accepted and announced as deprecated; hidden from --help so new scripts use -o.
DeprecatedFormatOpt = Annotated[
    str | None, typer.Option("--format", "-f", hidden=True, help="Deprecated: use -o/--output.")
]
DeprecatedJsonOpt = Annotated[bool, typer.Option("--json", hidden=True, help="Deprecated: use -o json.")]


def chosen_output(
    command: str,
    output: StrEnum,
    *,
    format: str | None = None,
    json_flag: bool = False,
    allowed: tuple[str, ...] = ("text", "json", "yaml"),
) -> str:
    """The format asked for, honouring (and announcing) the deprecated flags."""
    if format is not None:
        if format not in allowed:
            raise typer.BadParameter(
                f"{format!r} is not one of {', '.join(allowed)}", param_hint="'--format' / '-f'"
            )
        typer.echo(f"platform {command}: -f/--format is deprecated; use -o/--output {format}", err=True)
        return format
    if json_flag:
        typer.echo(f"platform {command}: --json is deprecated; use -o json", err=True)
        return Output.json.value
    return str(output.value)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)


def to_yaml(data: Any) -> str:
    import yaml

    # Through JSON first: dates, paths and enums become the same plain values in both formats.
    plain = json.loads(json.dumps(data, default=str))
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, width=100).rstrip("\n")


def emit(data: Any, output: str, text: Callable[[], str]) -> None:
    """Print `data` on stdout in the chosen format; `text()` renders it for people."""
    if output == Output.json:
        typer.echo(to_json(data))
    elif output == Output.yaml:
        typer.echo(to_yaml(data))
    else:
        rendered = text()
        if rendered:
            typer.echo(rendered)


def note(message: str) -> None:
    """Progress and context for people: stderr, so it never mixes with data on stdout."""
    typer.echo(message, err=True)


def warn_approve_all(command: str) -> None:
    """`--approve-all` turns off the human check on side-effecting tools: never silently."""
    note(
        f"platform {command}: WARNING: --approve-all approves every call that needs approval, "
        "side-effecting tools included; use it for tests and demos only"
    )
