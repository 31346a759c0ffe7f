"""Benchmark `platform validate`: throughput on 1,000 generated specs, CLI start-up, peak memory.

    .venv/bin/python bench/validate_bench.py            # full run (1,000 specs, 5 runs)
    .venv/bin/python bench/validate_bench.py --quick    # smoke run (100 specs, 3 runs)
    .venv/bin/python bench/validate_bench.py --json out.json
    .venv/bin/python bench/validate_bench.py --profile  # cProfile one validate run, top functions

Exit 0 unless the generated spec set does not validate cleanly (exit 1): a benchmark of a
validator that rejects its input would measure the error path, not the normal one.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform as _platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _specgen
from agent_platform._compile import compile_specs
from agent_platform._validate import ValidationOptions, ValidationReport, validate_paths

try:
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

REPO = Path(__file__).resolve().parent.parent
AIM_VALIDATE_S = 1.0  # for 1,000 specs
AIM_STARTUP_S = 0.3  # over bare Python
HEAVY_MODULES = ("ray", "anthropic", "openai", "json_schema_to_pydantic", "httpx", "numpy", "rich")


# --- helpers ----------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _interleaved(fns: dict[str, Callable[[], Any]], runs: int) -> dict[str, dict[str, list[float]]]:
    """Run each function once per round, round after round: background load (other processes on
    the machine) then hits every measurement alike, which keeps their ratios meaningful. Wall and
    CPU time (process_time, less sensitive to contention) are both kept."""
    out: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in fns}
    for _ in range(runs):
        for label, fn in fns.items():
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            out[label]["cpu"].append(time.process_time() - cpu)
            out[label]["wall"].append(time.perf_counter() - wall)
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def _row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<44} {value:>14}  {note}".rstrip())


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _stats(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


# --- 1. throughput ----------------------------------------------------------------------------


def _yaml_load_all(files: list[Path]) -> int:
    count = 0
    for path in files:
        count += sum(1 for _ in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_YamlLoader))
    return count


def bench_throughput(root: Path, files: int, runs: int) -> tuple[dict[str, Any], Path, ValidationOptions]:
    start = time.perf_counter()
    specs_dir = _specgen.generate(root, files)
    gen_s = time.perf_counter() - start
    spec_files = sorted(specs_dir.glob("*.yaml"))
    options = ValidationOptions(plugin_paths=[root])
    expected = files * _specgen.DOCS_PER_FILE

    # The first run in this process also builds pydantic's validators (the models use
    # defer_build) and Jinja2's environment: reported separately, as a CLI run pays it every time.
    start = time.perf_counter()
    report = validate_paths([specs_dir], options)
    first_s = time.perf_counter() - start
    _require_clean(report, expected)
    try:
        compile_specs(report.specs)
    except Exception as exc:  # compile on a clean set must not fail: that is a platform bug
        print(f"FAIL: compile_specs raised on a clean spec set: {type(exc).__name__}: {exc}")
        sys.exit(1)

    from agent_platform._load import load_paths

    measured = _interleaved(
        {
            "validate": lambda: validate_paths([specs_dir], options),
            "platform_load": lambda: load_paths([specs_dir]),
            "yaml_load_all": lambda: _yaml_load_all(spec_files),
            "compile": lambda: compile_specs(report.specs),
        },
        runs,
    )
    med = {k: statistics.median(v["wall"]) for k, v in measured.items()}
    size = sum(p.stat().st_size for p in spec_files)
    return (
        {
            "files": len(spec_files),
            "specs": expected,
            "bytes": size,
            "runs": runs,
            "generate_s": gen_s,
            "first_validate_s": first_s,
            **{
                k: _stats(v["wall"]) | {"cpu_median_s": statistics.median(v["cpu"])}
                for k, v in measured.items()
            },
            "yaml_loader": _YamlLoader.__name__,
            "validate_specs_per_s": expected / med["validate"],
            "ratio_validate_over_yaml": med["validate"] / med["yaml_load_all"],
            "ratio_platform_load_over_yaml": med["platform_load"] / med["yaml_load_all"],
            "ratio_compile_over_yaml": med["compile"] / med["yaml_load_all"],
        },
        specs_dir,
        options,
    )


def _require_clean(report: ValidationReport, expected: int) -> None:
    errors = [d for d in report.diagnostics.sorted() if d.severity.value == "error"]
    if not errors and len(report.specs.specs) == expected:
        return
    print(f"FAIL: the generated spec set does not validate cleanly: {len(errors)} error(s), ", end="")
    print(f"{len(report.specs.specs)} of {expected} specs valid. First errors:")
    for diagnostic in errors[:15]:
        print(f"  {diagnostic.format(with_severity=True)}")
    sys.exit(1)


def print_throughput(r: dict[str, Any]) -> None:
    n = r["specs"]
    print(f"\n1. Validate throughput: {n:,} specs in {r['files']} files ({r['bytes'] / 1e6:.2f} MB)")
    print(f"   median and min of {r['runs']} in-process runs (generation took {r['generate_s']:.2f} s)")

    def timing(label: str, key: str) -> None:
        t = r[key]
        _row(
            label, _ms(t["median_s"]), f"min {_ms(t['min_s']).strip()}, cpu {_ms(t['cpu_median_s']).strip()}"
        )

    _row("validate_paths, first run in process", _ms(r["first_validate_s"]), "(incl. lazy model builds)")
    timing("validate_paths", "validate")
    timing("  of which load_paths (YAML -> located docs)", "platform_load")
    timing("compile_specs", "compile")
    timing(f"yaml.load_all ({r['yaml_loader']}) baseline", "yaml_load_all")
    _row("validate throughput", f"{r['validate_specs_per_s']:,.0f} specs/s")
    _row("ratio validate / yaml load", f"{r['ratio_validate_over_yaml']:.1f}x", "(machine-independent)")
    _row("ratio load_paths / yaml load", f"{r['ratio_platform_load_over_yaml']:.1f}x")
    _row("ratio compile / yaml load", f"{r['ratio_compile_over_yaml']:.2f}x")
    scaled = r["validate"]["median_s"] * 1000 / n
    print(
        f"   aim: < {AIM_VALIDATE_S:.1f} s for 1,000 specs -> {scaled:.2f} s"
        f"{' (scaled from ' + str(n) + ')' if n != 1000 else ''}: {_verdict(scaled < AIM_VALIDATE_S)}"
    )


# --- 2. CLI start-up --------------------------------------------------------------------------


def _platform_command() -> list[str]:
    script = Path(sys.executable).parent / "platform"
    if script.is_file():
        return [str(script)]
    found = shutil.which("platform")
    if found:
        return [found]
    return [sys.executable, "-m", "agent_platform"]


def _wall(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return time.perf_counter() - start, done.returncode


def _cached_env(pycache: Path) -> dict[str, str]:
    """The environment with a bytecode cache (kept out of the repo tree): what an installed CLI
    sees. PYTHONDONTWRITEBYTECODE would make every start recompile the platform's modules."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def bench_startup(n: int, generated: Path | None, plugin_root: Path | None, pycache: Path) -> dict[str, Any]:
    cli = _platform_command()
    cached = _cached_env(pycache)
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], cached),
        "platform --version": ([*cli, "--version"], cached),
        "platform validate specs/": ([*cli, "validate", "specs/"], cached),
    }
    no_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    if no_bytecode:  # this environment's own setting: also show what it costs
        commands["  same, PYTHONDONTWRITEBYTECODE=1"] = ([*cli, "validate", "specs/"], dict(os.environ))
    times: dict[str, list[float]] = {k: [] for k in commands}
    codes: dict[str, int] = {}
    for cmd, env in commands.values():  # warm the OS cache and write bytecode; not counted
        _wall(cmd, REPO, env)
    for _ in range(n):  # interleaved, so load from other processes hits all commands alike
        for label, (cmd, env) in commands.items():
            elapsed, code = _wall(cmd, REPO, env)
            times[label].append(elapsed)
            codes[label] = code
    med = {k: statistics.median(v) for k, v in times.items()}

    # The work `platform validate specs/` does once started: validate + compile, steady state.
    repo_options = ValidationOptions(plugin_paths=[REPO])
    work = _timed(lambda: compile_specs(validate_paths([REPO / "specs"], repo_options).specs), 5)

    result: dict[str, Any] = {
        "n": n,
        "command": cli,
        "median_s": med,
        "min_s": {k: min(v) for k, v in times.items()},
        "exit_codes": codes,
        "version_over_python_s": med["platform --version"] - med["python -c pass"],
        "validate_over_python_s": med["platform validate specs/"] - med["python -c pass"],
        "specs_dir_in_process_work_s": statistics.median(work),
    }
    if generated is not None and plugin_root is not None:
        cmd = [*cli, "validate", str(generated), "--plugin-path", str(plugin_root), "-f", "json"]
        runs = [_wall(cmd, REPO, cached) for _ in range(max(1, min(3, n)))]
        result["validate_generated_cli_s"] = statistics.median(t for t, _ in runs)
        result["validate_generated_cli_exit"] = runs[-1][1]
    result["imports"] = _import_profile(cached)
    return result


_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)")


def _import_profile(env: dict[str, str]) -> dict[str, Any]:
    code = "import agent_platform._cli, agent_platform._validate"
    cmd = [sys.executable, "-X", "importtime", "-c", code]
    subprocess.run(cmd, env=env, capture_output=True, check=False)  # warm-up (bytecode cache)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    rows = []
    for line in done.stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if m:
            rows.append(
                {
                    "module": m.group(4),
                    "self_us": int(m.group(1)),
                    "cumulative_us": int(m.group(2)),
                    "depth": len(m.group(3)) // 2,
                }
            )
    roots = {r["module"].split(".")[0] for r in rows}
    top_level = [r for r in rows if r["depth"] == 0]
    by_cumulative: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: -r["cumulative_us"]):
        # `import a.b` is reported as a.b around a around a.b: show each module once
        if all(row["module"] != seen["module"] for seen in by_cumulative):
            by_cumulative.append(row)
    by_package: dict[str, int] = {}
    for row in rows:
        top = row["module"].split(".")[0]
        by_package[top] = by_package.get(top, 0) + row["self_us"]
    return {
        "top_cumulative": by_cumulative[:8],
        "top_self": sorted(rows, key=lambda r: -r["self_us"])[:8],
        "self_by_package_us": dict(sorted(by_package.items(), key=lambda kv: -kv[1])[:8]),
        "total_us": sum(r["cumulative_us"] for r in top_level),
        "module_count": len(rows),
        "heavy_imported": [m for m in HEAVY_MODULES if m in roots],
        "heavy_not_imported": [m for m in HEAVY_MODULES if m not in roots],
    }


def print_startup(r: dict[str, Any]) -> None:
    med, mn = r["median_s"], r["min_s"]
    print(f"\n2. CLI start-up: wall time of a subprocess, median of {r['n']} interleaved runs")
    for label in med:
        code = r["exit_codes"][label]
        note = f"min {_ms(mn[label]).strip()}" + (f"  (exit {code})" if code else "")
        _row(label, _ms(med[label]), note)
    _row("platform --version - python -c pass", _ms(r["version_over_python_s"]), "(pure start-up)")
    _row("platform validate specs/ - python -c pass", _ms(r["validate_over_python_s"]))
    work = r["specs_dir_in_process_work_s"]
    _row("  of which validate+compile work (in process)", _ms(work), "(steady state)")
    _row("  so imports + first-use costs", _ms(r["validate_over_python_s"] - work))
    if "validate_generated_cli_s" in r:
        code = r["validate_generated_cli_exit"]
        _row(
            "platform validate <generated set> (end to end)",
            _ms(r["validate_generated_cli_s"]),
            f"(exit {code})" if code else "",
        )
    over = r["validate_over_python_s"]
    print(
        f"   aim: start-up < {AIM_STARTUP_S:.1f} s over bare Python -> {over:.2f} s "
        f"(validate specs/): {_verdict(over < AIM_STARTUP_S)}"
    )
    imports = r["imports"]
    print(
        f"   `import agent_platform._cli, agent_platform._validate`: {imports['module_count']} modules, "
        f"{imports['total_us'] / 1000:.0f} ms under -X importtime (which inflates it); top 8 cumulative:"
    )
    for row in imports["top_cumulative"]:
        print(f"     {row['cumulative_us'] / 1000:7.1f} ms  {'  ' * row['depth']}{row['module']}")
    packages = ", ".join(f"{k} {v / 1000:.0f}" for k, v in imports["self_by_package_us"].items())
    print(f"   own import time by top-level package (ms): {packages}")
    print(
        f"   heavy modules imported: {', '.join(imports['heavy_imported']) or 'none'}"
        f"  (not imported: {', '.join(imports['heavy_not_imported'])})"
    )


# --- 3. memory --------------------------------------------------------------------------------

_RSS_CHILD = """
import json, resource, sys
from pathlib import Path
from agent_platform._validate import validate_paths, ValidationOptions
from agent_platform._compile import compile_specs

def status():
    # Linux: current RSS and the high-water mark of this process's own address space (KiB).
    # ru_maxrss is no good here: across fork + exec it keeps the parent's peak.
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kib // 1024 if sys.platform == "darwin" else kib, None

def reset_peak():
    try:  # "5" resets the peak RSS to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

specs, root = Path(sys.argv[1]), Path(sys.argv[2])
out = {}
out["rss_after_imports_kb"], out["hwm_after_imports_kb"] = status()
out["peak_reset"] = reset_peak()
before, _ = status()
report = validate_paths([specs], ValidationOptions(plugin_paths=[root]))
out["rss_after_validate_kb"], out["hwm_after_validate_kb"] = status()
out["rss_before_validate_kb"] = before
out["peak_reset_compile"] = reset_peak()
before, _ = status()
compile_specs(report.specs)
out["rss_after_compile_kb"], out["hwm_after_compile_kb"] = status()
out["rss_before_compile_kb"] = before
out["ok"] = report.ok
print(json.dumps(out))
"""


def bench_memory(specs_dir: Path, options: ValidationOptions, plugin_root: Path) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    report = validate_paths([specs_dir], options)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del report
    result: dict[str, Any] = {"tracemalloc_peak_bytes": peak, "tracemalloc_retained_bytes": current}
    done = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(specs_dir), str(plugin_root)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        child = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result["rss_error"] = done.stderr.strip()[-500:]
        return result
    kib = 1024
    result["rss_after_imports_bytes"] = child["rss_after_imports_kb"] * kib
    result["rss_validate_growth_bytes"] = (
        child["rss_after_validate_kb"] - child["rss_before_validate_kb"]
    ) * kib
    result["rss_compile_growth_bytes"] = (
        child["rss_after_compile_kb"] - child["rss_before_compile_kb"]
    ) * kib
    if child["peak_reset"] and child["hwm_after_validate_kb"] is not None:
        result["rss_validate_peak_bytes"] = (
            child["hwm_after_validate_kb"] - child["rss_before_validate_kb"]
        ) * kib
    if child["peak_reset_compile"] and child["hwm_after_compile_kb"] is not None:
        result["rss_compile_peak_bytes"] = (
            child["hwm_after_compile_kb"] - child["rss_before_compile_kb"]
        ) * kib
    return result


def print_memory(r: dict[str, Any], specs: int) -> None:
    mib = 1 << 20
    print(f"\n3. Peak memory of validating {specs:,} specs")
    _row("tracemalloc peak (Python allocations)", f"{r['tracemalloc_peak_bytes'] / mib:.1f} MiB")
    _row("  retained after the run (report alive)", f"{r['tracemalloc_retained_bytes'] / mib:.1f} MiB")
    if "rss_error" in r:
        print(f"   RSS: child process failed: {r['rss_error']}")
        return
    _row("RSS after imports (fresh process)", f"{r['rss_after_imports_bytes'] / mib:.1f} MiB")
    if "rss_validate_peak_bytes" in r:
        _row("peak RSS over that: validate_paths", f"{r['rss_validate_peak_bytes'] / mib:.1f} MiB")
    _row("RSS growth: validate_paths", f"{r['rss_validate_growth_bytes'] / mib:.1f} MiB", "(report alive)")
    if "rss_compile_peak_bytes" in r:
        _row("peak RSS over that: then compile_specs", f"{r['rss_compile_peak_bytes'] / mib:.1f} MiB")


# --- profile ---------------------------------------------------------------------------------


def profile_validate(root: Path, files: int, top: int = 10) -> None:
    """cProfile one steady-state validate_paths run: top functions by cumulative and own time."""
    import cProfile
    import pstats

    specs_dir = _specgen.generate(root, files)
    options = ValidationOptions(plugin_paths=[root])
    _require_clean(validate_paths([specs_dir], options), files * _specgen.DOCS_PER_FILE)  # warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    validate_paths([specs_dir], options)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = stats.stats  # type: ignore[attr-defined]
    print(
        f"\ncProfile of one validate_paths run over {files * _specgen.DOCS_PER_FILE:,} specs: {total:.2f} s"
    )
    for title, index in (("cumulative", 3), ("own (tottime)", 2)):
        print(f"  top {top} by {title} time:")
        ranked = sorted(entries.items(), key=lambda kv: -kv[1][index])
        shown = 0
        for (filename, line, func), (_, ncalls, tottime, cumtime, _) in ranked:
            if "disable" in func and filename == "~":
                continue  # the profiler itself
            where = _short_path(filename)
            name = f"{where}:{line}({func})" if where else func
            print(f"    {cumtime:7.3f} cum {tottime:7.3f} own {ncalls:>9,}  {name}")
            shown += 1
            if shown == top:
                break


def _short_path(filename: str) -> str:
    for marker in ("site-packages/", "platform/agent_platform/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return "" if filename == "~" else filename


# --- main -------------------------------------------------------------------------------------


def _prepare_keep_dir(root: Path) -> None:
    """Only ever delete what an earlier --keep run generated there."""
    if root.exists() and any(root.iterdir()) and not (root / _specgen.PLUGIN_PACKAGE).is_dir():
        sys.exit(f"--keep {root}: directory exists and was not generated by this benchmark")
    for sub in ("specs", _specgen.PLUGIN_PACKAGE):
        if (root / sub).is_dir():
            shutil.rmtree(root / sub)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 specs, 3 runs, 5 CLI runs")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the figures as JSON")
    parser.add_argument("--keep", metavar="DIR", type=Path, help="generate into DIR and keep it")
    parser.add_argument(
        "--profile", action="store_true", help="only cProfile one validate run and print the top functions"
    )
    args = parser.parse_args(argv)
    files, runs, cli_runs = (10, 3, 5) if args.quick else (100, 5, 15)
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="validate-bench-") as tmp:
            profile_validate(Path(tmp), files)
        return 0

    print(
        f"validate benchmark: Python {_platform.python_version()} on {_platform.machine()}, "
        f"{os.cpu_count()} CPUs{' (quick)' if args.quick else ''}"
    )
    with tempfile.TemporaryDirectory(prefix="validate-bench-") as tmp:
        root = args.keep.resolve() if args.keep else Path(tmp)
        if args.keep:
            _prepare_keep_dir(root)
        throughput, specs_dir, options = bench_throughput(root, files, runs)
        print_throughput(throughput)
        startup = bench_startup(cli_runs, specs_dir, root, Path(tmp) / "pycache")
        print_startup(startup)
        memory = bench_memory(specs_dir, options, root)
        print_memory(memory, throughput["specs"])

    if args.json:
        figures = {
            "python": _platform.python_version(),
            "cpus": os.cpu_count(),
            "quick": args.quick,
            "throughput": throughput,
            "startup": startup,
            "memory": memory,
            "aims": {"validate_1000_specs_s": AIM_VALIDATE_S, "startup_over_python_s": AIM_STARTUP_S},
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
