"""The `platform` command, assembled from its command modules with `add_typer`.

`validate`, `plan` and `schema` must start fast and never import Ray or an LLM SDK: they run in
CI on every commit. Heavy imports therefore live inside the commands that need them.

Exit codes: 0 success, 1 invalid specs (or a failed run, or a change a dry run would make),
2 usage error, 3 internal error (a bug: please report).

Every command that prints data takes `-o/--output text|json|yaml` and prints only that data on
stdout; trees, placements and progress go to stderr (see output.py)."""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer

from agent_platform import __version__
from agent_platform._cli import deploy, dev, eval, init, memory, runs, serve, spec_tests, specs
from agent_platform._cli.common import EXIT_INTERNAL, EXIT_INVALID

app = typer.Typer(
    name="platform",
    help="Declarative AI agent platform: validate, plan and run agent specs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


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


# The order of the help's command list.
for _commands in (specs, runs, serve, deploy, dev, memory, eval, spec_tests, init):
    app.add_typer(_commands.app)


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
        from agent_platform._extras import extra_for, install_hint

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
