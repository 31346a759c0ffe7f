"""`platform test [PATH...]`: run the Test documents among the specs, in parallel, in-process.

    platform test                      # specs/: validate, then run every Test in it
    platform test specs/ -k support    # only the tests whose name contains "support"
    platform test -o json --junit-xml report.xml

The specs are validated first (Tests included: an unknown unit or an expectation no run can meet
stops here, exit 1). Each test then runs its unit on the asyncio runtime, as `platform run
--local` does, with the test's model and approvals; progress goes to stderr, results to stdout.
Exit codes: 0 every test passed, 1 a test failed or could not run (or the specs are invalid, or
no test was found), 2 usage error."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent_platform._cli.common import (
    EXIT_INVALID,
    EXIT_USAGE,
    PluginPathOpt,
    compile_or_exit,
    require_spec_files,
    validation_options,
)
from agent_platform._cli.output import Output, OutputOpt, chosen_output, emit, note

if TYPE_CHECKING:
    from agent_platform._compile.plan import Plan
    from agent_platform._spectest.runner import SpecTest, SuiteResult

app = typer.Typer()


TEST_PATHS = [Path("specs")]


@app.command("test")
def test_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Spec files or directories holding the tests and the specs they run (default: specs/)."
        ),
    ] = None,
    match: Annotated[
        str | None,
        typer.Option("--match", "-k", metavar="SUBSTRING", help="Only tests whose name contains this."),
    ] = None,
    output: OutputOpt = Output.text,
    junit_xml: Annotated[
        Path | None,
        typer.Option("--junit-xml", metavar="FILE", help="Also write the results as JUnit XML (for CI)."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Tests run at once.")] = 8,
    plugin_path: PluginPathOpt = None,
) -> None:
    """Run the Test documents among the specs and check their expectations (exit 0 when all pass).

    Each failed expectation is printed as `file:line:col: Test/name: what: expected X, got Y`."""
    fmt = chosen_output("test", output)
    spec_paths = paths or TEST_PATHS
    require_spec_files("test", spec_paths)
    report, plan = compile_or_exit(spec_paths, validation_options(plugin_path, False), "test")

    from agent_platform._spectest.runner import select

    tests = select(report.specs.of_kind("Test"), match)
    if not tests:
        where = ", ".join(str(p) for p in spec_paths)
        which = f" named like {match!r}" if match is not None else ""
        note(f"platform test: no Test{which} in {where}")
        raise typer.Exit(EXIT_INVALID)

    suite = _run(plan, tests, jobs, list(plugin_path) if plugin_path else None)

    from agent_platform._spectest import report as render

    emit(suite.to_json(), fmt, lambda: render.text(suite))
    if junit_xml is not None:
        try:
            junit_xml.write_text(render.junit_xml(suite), encoding="utf-8")
        except OSError as exc:
            note(f"platform test: cannot write {junit_xml}: {exc.strerror}")
            raise typer.Exit(EXIT_USAGE) from None
    if not suite.ok:
        raise typer.Exit(EXIT_INVALID)


def _run(plan: Plan, tests: list[SpecTest], jobs: int, plugin_paths: list[Path] | None) -> SuiteResult:
    """The suite's results, with a progress bar on stderr while it runs."""
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent_platform._runtime.engine import tune_gc_for_runs
    from agent_platform._spectest.runner import SpecTestResult, Status, SuiteRunner

    tune_gc_for_runs()
    columns = (
        TextColumn("testing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        bar = progress.add_task("tests", total=len(tests), failed=0)
        failed = 0

        def done(result: SpecTestResult) -> None:
            nonlocal failed
            failed += result.status is not Status.PASSED
            progress.update(bar, advance=1, failed=failed)

        runner = SuiteRunner(plan, plugin_paths=plugin_paths, jobs=jobs, on_done=done)
        return asyncio.run(runner.run(tests))
