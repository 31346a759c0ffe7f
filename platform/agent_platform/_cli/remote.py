"""`plan`'s and `apply`'s check of RemoteAgent specs against their agent cards (fetched over
HTTP: see _compile/remote_cards.py). `validate` never runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from agent_platform._validate.references import SpecSet

EXIT_INVALID = 1


def check_remote_cards_or_exit(specs: SpecSet) -> None:
    """Fetch the card of each RemoteAgent in `specs` (valid ones) and exit 1 with located errors
    when one cannot be fetched or does not match."""
    from agent_platform import _render as render
    from agent_platform._compile.remote_cards import check_remote_agents
    from agent_platform._diagnostics import Diagnostics

    if not specs.of_kind("RemoteAgent"):
        return
    diagnostics = Diagnostics()
    check_remote_agents(specs, diagnostics)
    if diagnostics.has_errors:
        for diagnostic in diagnostics.sorted():
            typer.echo(render.diagnostic_line(diagnostic), err=True)
        raise typer.Exit(EXIT_INVALID)
