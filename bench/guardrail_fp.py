"""Prompt-injection detection measured on the labelled corpus, on both splits, plus per-check costs.

    .venv/bin/python bench/guardrail_fp.py                 # every detector available offline
    .venv/bin/python bench/guardrail_fp.py --show-errors   # also the dev split's misses and false positives
    .venv/bin/python bench/guardrail_fp.py --json out.json

Detectors measured:

* `patterns`: the `prompt_injection` guardrail's default patterns (`DEFAULT_PATTERNS`).
* `hook`: a local classifier, when `GUARDRAIL_BENCH_HOOK=module:function` names one (the
  `injection_classifier` guardrail's function interface: `ClassifierInput -> InjectionVerdict`).
* `model`: the `injection_classifier` guardrail with a real Model, when `GUARDRAIL_BENCH_MODEL`
  holds a Model spec as JSON (e.g. `{"provider": "openai", "name": "gpt-4o-mini"}`; the key comes
  from the provider's usual variable or `api_key_env`). A scripted model answers what its script
  says, so measuring one would measure the script: it is refused.

For each: TPR (share of injections flagged) and FPR (share of benign texts flagged) with 95%
Wilson intervals, per split, then TPR by source style and carrier and FPR by kind of benign text.
Errors are listed for the dev split only: the held-out split is never read to tune anything, so
the benchmark does not print its texts. The held-out file must match its frozen checksum."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "platform"))

from bench.injection_corpus import (  # noqa: E402
    HELDOUT_SHA256,
    SPLITS,
    CorpusError,
    Example,
    Scores,
    load_split,
    score,
)
from tests.runtime.test_guardrails_injection import measure  # noqa: E402

from agent_platform._runtime.guardrails import (  # noqa: E402
    GuardContext,
    InjectionClassifierGuard,
    LoopDetector,
    PiiRedactor,
    wrap_tool_output,
)
from agent_platform._runtime.guardrails.base import Decision  # noqa: E402
from agent_platform._runtime.guardrails.injection import default_detector  # noqa: E402

Detector = Callable[[Sequence[Example]], Awaitable[list[bool]]]
CONCURRENCY = 4  # classifier calls in flight against a real endpoint


async def detect_with_patterns(examples: Sequence[Example]) -> list[bool]:
    detector = default_detector()
    return [detector.detects(e.text) for e in examples]


def guard_detector(guard: InjectionClassifierGuard) -> Detector:
    """A classifier guardrail as deployed (stage tool_output, action block), one item at a time
    under a concurrency cap. An item the classifier failed on counts as flagged (fail closed,
    the default) and is reported."""

    async def detect(examples: Sequence[Example]) -> list[bool]:
        gate = asyncio.Semaphore(CONCURRENCY)
        failures = 0

        async def one(example: Example) -> bool:
            nonlocal failures
            async with gate:
                verdict = await guard.acheck(
                    GuardContext("tool_output", example.text, tool_name=example.carrier)
                )
            if "on_error" in verdict.details:
                failures += 1
            return verdict.decision is not Decision.ALLOW

        try:
            flags = list(await asyncio.gather(*(one(e) for e in examples)))
        finally:
            await guard.aclose()
        if failures:
            print(f"  ({failures} classifier failures counted as detections: fail_closed)")
        return flags

    return detect


def optional_detectors() -> dict[str, Detector]:
    from agent_platform._spec.kinds import InjectionClassifierGuardrail

    found: dict[str, Detector] = {}
    hook = os.environ.get("GUARDRAIL_BENCH_HOOK")
    if hook:
        spec = InjectionClassifierGuardrail(type="injection_classifier", function=hook)
        found[f"hook {hook}"] = guard_detector(
            InjectionClassifierGuard.from_spec("bench-hook", spec, plugin_paths=[Path.cwd()])
        )
    raw_model = os.environ.get("GUARDRAIL_BENCH_MODEL")
    if raw_model:
        from agent_platform._compile.plan import ResolvedModel
        from agent_platform._spec.kinds import ModelSpec

        model_spec = ModelSpec.model_validate(json.loads(raw_model))
        if model_spec.provider == "scripted":
            print("GUARDRAIL_BENCH_MODEL is a scripted model: its verdicts are its script; not measured.")
        else:
            spec = InjectionClassifierGuardrail(
                type="injection_classifier", model="bench-model", timeout=120.0
            )
            model = ResolvedModel("bench-model", model_spec)
            found[f"model {model_spec.provider}:{model_spec.name}"] = guard_detector(
                InjectionClassifierGuard.from_spec("bench-model", spec, model=model)
            )
    return found


def _pct(value: float) -> str:
    return f"{value:.3f}"


def _interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:.2f}-{bounds[1]:.2f}]"


def print_scores(all_scores: list[Scores]) -> None:
    print(
        f"{'detector':<28} {'split':<8} {'TPR':>6} {'95% CI':>12} {'n':>4}   {'FPR':>6} {'95% CI':>12} {'n':>4}"
    )
    for s in all_scores:
        print(
            f"{s.detector:<28} {s.split:<8} {_pct(s.tpr):>6} {_interval(s.tpr_interval()):>12} {s.injections:>4}   "
            f"{_pct(s.fpr):>6} {_interval(s.fpr_interval()):>12} {s.benign:>4}"
        )


def print_breakdown(s: Scores) -> None:
    caught, payloads = s.payload_tpr()
    print(f"\n{s.detector} on {s.split}: payloads caught in every carrier {caught}/{payloads}")
    for title, table in (
        ("TPR by style", s.tpr_by(lambda e: e.style)),
        ("TPR by carrier", s.tpr_by(lambda e: e.carrier)),
        ("TPR by goal", s.tpr_by(lambda e: e.goal or "-")),
        ("FPR by benign kind", s.fpr_by(lambda e: e.tags or ("-",))),
    ):
        cells = ", ".join(f"{k} {a}/{b}" for k, (a, b) in table.items())
        print(f"  {title}: {cells}")


def print_errors(s: Scores) -> None:
    for example in s.false_positives:
        print(f"  false positive {example.id} ({example.carrier}): {example.text[:110]!r}")
    for example in s.misses:
        print(f"  missed {example.id} ({example.style}/{example.carrier}): {example.text[:110]!r}")


def median_us(fn: Callable[[], object], repeat: int = 2000) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def costs() -> None:
    output = "Paris: sunny, 21C, humidity 40%. Source: weather.example.org (updated 12:00)."
    detector = default_detector()
    pii = PiiRedactor("pii", ("email", "phone", "credit_card", "iban", "ssn"))
    loop = LoopDetector("loop")
    ctx = GuardContext("tool_output", output)
    action = GuardContext.for_action("web_search", {"query": "ray actors", "max_results": 5})
    print("\nmedian cost per check on a short tool output:")
    print(
        f"  wrap_tool_output     {median_us(lambda: wrap_tool_output(output, tool_name='weather')):7.1f} us"
    )
    print(f"  injection patterns   {median_us(lambda: detector.find(output)):7.1f} us")
    print(f"  pii redaction        {median_us(lambda: pii.check(ctx)):7.1f} us")
    print(f"  loop detection       {median_us(lambda: loop.fresh().check(action)):7.1f} us")


async def run(show_errors: bool) -> dict[str, Any]:
    splits = {split: load_split(split) for split in SPLITS}  # type: ignore[arg-type]
    print(
        f"corpus: dev {len(splits['dev'])} texts, heldout {len(splits['heldout'])} (sha256 {HELDOUT_SHA256[:16]}… verified)"
    )
    detectors: dict[str, Detector] = {"patterns": detect_with_patterns, **optional_detectors()}
    if len(detectors) == 1:
        print(
            "only the pattern detector is available offline (set GUARDRAIL_BENCH_MODEL or "
            "GUARDRAIL_BENCH_HOOK to measure a classifier; a scripted model is not a measurement)"
        )
    all_scores = []
    for name, detect in detectors.items():
        for split, examples in splits.items():
            all_scores.append(score(name, split, examples, await detect(examples)))
    print()
    print_scores(all_scores)
    for s in all_scores:
        print_breakdown(s)
    if show_errors:
        for s in all_scores:
            if s.split == "dev":
                print(f"\nerrors of {s.detector} on dev:")
                print_errors(s)

    legacy = measure()
    print(
        f"\nunit-test corpus of the patterns (tests/runtime/test_guardrails_injection.py, the patterns' "
        f"own development set, not a measurement): {legacy['benign']} benign, {legacy['attacks']} attacks -> "
        f"recall {legacy['recall']:.2f}, false-positive rate {legacy['false_positive_rate']:.3f}"
    )
    return {
        "heldout_sha256": HELDOUT_SHA256,
        "scores": [
            {
                "detector": s.detector,
                "split": s.split,
                "tpr": s.tpr,
                "tpr_ci95": s.tpr_interval(),
                "injections": s.injections,
                "fpr": s.fpr,
                "fpr_ci95": s.fpr_interval(),
                "benign": s.benign,
                "payloads_caught": s.payload_tpr(),
                "tpr_by_style": s.tpr_by(lambda e: e.style),
                "tpr_by_carrier": s.tpr_by(lambda e: e.carrier),
            }
            for s in all_scores
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--show-errors", action="store_true", help="list the dev split's misses and false positives"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    try:
        figures = asyncio.run(run(args.show_errors))
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    costs()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
