"""`platform eval UNIT --dataset FILE.jsonl`: run a unit over many inputs and score each run.

    platform eval researcher --dataset examples/evals/researcher.jsonl
    platform eval researcher --dataset cases.jsonl --model fast -o json --report now.json
    platform eval researcher --dataset cases.jsonl --baseline before.json   # exit 1 on a regression

The dataset format and its scorers are in `_evals/dataset.py` (and the README). The specs are
validated first; the runs use the in-process runtime, as `platform run --local` does. Exit codes:
0 the eval ran (and met --min-pass-rate, and nothing regressed against --baseline), 1 a case
regressed, the pass rate is under --min-pass-rate, or the specs or the dataset are invalid (every
problem printed at its line), 2 usage error (a missing file, an unknown unit or model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent_platform._cli.common import (
    EXIT_INVALID,
    EXIT_USAGE,
    PluginPathOpt,
    compile_or_exit,
    require_spec_files,
    validation_options,
)
from agent_platform._cli.output import Output, OutputOpt, chosen_output, emit, note, to_json, warn_approve_all

if TYPE_CHECKING:
    from agent_platform._compile.plan import Plan, ResolvedModel
    from agent_platform._evals.dataset import Dataset
    from agent_platform._evals.runner import CaseResult


app = typer.Typer()


@app.command("eval")
def eval_command(
    unit: Annotated[
        str, typer.Argument(help="The agent, pipeline or supervisor to evaluate (name or Kind/name).")
    ],
    dataset: Annotated[
        Path, typer.Option("--dataset", "-d", help="JSON Lines: one case per line (inputs and scorers).")
    ],
    specs: Annotated[
        list[Path] | None, typer.Option("--specs", "-s", help="Spec files or directories (default: specs/).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="A Model among the specs that answers every model call of every run."
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="A previous report (--report or -o json): show what changed, exit 1 on regressions.",
        ),
    ] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Also write the report as JSON to this file.")
    ] = None,
    output: OutputOpt = Output.text,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Cases run at once.")] = 4,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, help="Seconds each case's run may take.")
    ] = 300.0,
    min_pass_rate: Annotated[
        float | None,
        typer.Option("--min-pass-rate", min=0.0, max=1.0, help="Exit 1 when fewer cases pass (0 to 1)."),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            min=0.0,
            help="With --baseline: growth in cost, tokens or latency shown as worse (0.2: 20%).",
        ),
    ] = 0.2,
    approve_all: Annotated[
        bool,
        typer.Option(
            "--approve-all", help="Approve every tool that requires approval (tests, offline evals)."
        ),
    ] = False,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Whose data the runs work on (scopes memory).")
    ] = None,
    plugin_path: PluginPathOpt = None,
) -> None:
    """Run a unit once per case of a dataset, score each run, and report the pass rate, tokens,
    cost and latency percentiles (p50, p95); compare with a previous report with --baseline."""
    import time

    fmt = chosen_output("eval", output)
    previous = _read_baseline(baseline) if baseline is not None else None
    if not dataset.is_file():
        note(f"platform eval: {dataset}: no such file")
        raise typer.Exit(EXIT_USAGE)
    spec_paths = specs or [Path("specs")]
    require_spec_files("eval", spec_paths)
    _, plan = compile_or_exit(spec_paths, validation_options(plugin_path, False), "eval")

    from agent_platform._evals.dataset import load_dataset
    from agent_platform._runtime.engine import UnknownUnit, find_unit

    try:
        unit_ref = str(find_unit(plan, unit).ref)
    except UnknownUnit as exc:
        note(f"platform eval: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    override = _model(plan, model)
    try:
        cases = load_dataset(dataset)
    except (OSError, UnicodeDecodeError) as exc:
        note(f"platform eval: cannot read {dataset}: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    _check_judges(plan, cases)
    if not cases.ok:
        for error in cases.errors:
            note(str(error))
        count = len(cases.errors)
        note(f"{count} error{'s' if count != 1 else ''} in {dataset}")
        raise typer.Exit(EXIT_INVALID)
    if approve_all:
        warn_approve_all("eval")

    started = time.perf_counter()
    results = _run(plan, unit_ref, cases, override, dataset, jobs, timeout, approve_all, tenant, plugin_path)
    from agent_platform._evals import report as render

    data = render.build_report(unit_ref, str(dataset), model, results, time.perf_counter() - started)
    comparison = None
    if previous is not None:
        comparison = render.compare(data, previous, tolerance)
        data["baseline"] = {"file": str(baseline), **comparison}
    emit(data, fmt, lambda: render.text(data))
    if report_file is not None:
        try:
            report_file.write_text(to_json(data) + "\n", encoding="utf-8")
        except OSError as exc:
            note(f"platform eval: cannot write {report_file}: {exc.strerror}")
            raise typer.Exit(EXIT_USAGE) from None
    failed = comparison is not None and bool(comparison["regressions"])
    if min_pass_rate is not None and data["summary"]["pass_rate"] < min_pass_rate:
        note(
            f"platform eval: pass rate {data['summary']['pass_rate']:.1%} is under --min-pass-rate {min_pass_rate:.1%}"
        )
        failed = True
    if failed:
        raise typer.Exit(EXIT_INVALID)


def _read_baseline(path: Path) -> dict[str, Any]:
    from agent_platform._evals.report import NotAReport, check_report

    try:
        return check_report(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        note(f"platform eval: cannot read the baseline {path}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        note(f"platform eval: {path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}")
    except NotAReport as exc:
        note(f"platform eval: {path}: {exc}")
    raise typer.Exit(EXIT_USAGE)


def _model(plan: Plan, name: str | None) -> ResolvedModel | None:
    if name is None:
        return None
    found = plan.models.get(name)
    if found is None:
        import difflib

        close = difflib.get_close_matches(name, list(plan.models), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        note(f"platform eval: no Model named {name!r} among the specs{hint}")
        raise typer.Exit(EXIT_USAGE)
    return found


def _check_judges(plan: Plan, dataset: Dataset) -> None:
    """A judge naming a Model the specs do not have is an error at its line."""
    import difflib

    from agent_platform._evals.dataset import DatasetError

    reported: set[tuple[int, str]] = set()
    for case, scorer in dataset.judge_models():
        name = scorer.judge.model
        if not isinstance(name, str) or name in plan.models:
            continue
        line = case.line if case is not None else _header_line(dataset)
        if (line, name) in reported:
            continue
        reported.add((line, name))
        close = difflib.get_close_matches(name, list(plan.models), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        dataset.errors.append(DatasetError(dataset.path, line, 1, f"judge: no Model named {name!r}{hint}"))
    dataset.errors.sort(key=lambda e: (e.line, e.column))


def _header_line(dataset: Dataset) -> int:
    for number, line in enumerate(Path(dataset.path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            return number
    return 1


def _run(
    plan: Plan,
    unit: str,
    dataset: Dataset,
    model: ResolvedModel | None,
    path: Path,
    jobs: int,
    timeout: float,
    approve_all: bool,
    tenant: str | None,
    plugin_path: list[Path] | None,
) -> list[CaseResult]:
    """Every case's result, with a progress bar on stderr while they run."""
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent_platform._evals.runner import EvalRunner
    from agent_platform._runtime.engine import tune_gc_for_runs

    tune_gc_for_runs()
    columns = (
        TextColumn("evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} not passed"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        bar = progress.add_task("cases", total=len(dataset.cases), failed=0)
        failed = 0

        def done(result: CaseResult) -> None:
            nonlocal failed
            failed += result.status != "passed"
            progress.update(bar, advance=1, failed=failed)

        runner = EvalRunner(
            plan,
            unit,
            model=model,
            dataset_dir=str(path.parent),
            plugin_paths=list(plugin_path) if plugin_path else None,
            jobs=jobs,
            timeout=timeout,
            approve_all=approve_all,
            tenant=tenant,
            on_done=done,
        )
        return asyncio.run(runner.run(dataset.cases))
