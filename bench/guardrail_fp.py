"""Prompt-injection detection measured on the labelled corpus of the tests, plus per-check costs.

    .venv/bin/python bench/guardrail_fp.py

Prints precision, recall and the false-positive rate of the default detection patterns, the texts
they get wrong, and the median cost of the common guardrail checks on a short tool output."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "platform"))

from tests.runtime.test_guardrails_injection import measure  # noqa: E402

from agent_platform.runtime.guardrails import (  # noqa: E402
    GuardContext,
    LoopDetector,
    PiiRedactor,
    wrap_tool_output,
)
from agent_platform.runtime.guardrails.injection import default_detector  # noqa: E402


def median_us(fn: Callable[[], object], repeat: int = 2000) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def main() -> None:
    figures = measure()
    print(
        f"injection detection: {figures['benign']} benign, {figures['attacks']} attacks -> "
        f"precision {figures['precision']:.2f}, recall {figures['recall']:.2f}, "
        f"false-positive rate {figures['false_positive_rate']:.3f}"
    )
    for text in figures["false_positive_texts"]:  # type: ignore[union-attr]
        print(f"  false positive: {text[:100]!r}")
    for text in figures["missed_texts"]:  # type: ignore[union-attr]
        print(f"  missed:         {text[:100]!r}")

    output = "Paris: sunny, 21C, humidity 40%. Source: weather.example.org (updated 12:00)."
    detector = default_detector()
    pii = PiiRedactor("pii", ("email", "phone", "credit_card", "iban", "ssn"))
    loop = LoopDetector("loop")
    ctx = GuardContext("tool_output", output)
    action = GuardContext.for_action("web_search", {"query": "ray actors", "max_results": 5})
    print("median cost per check on a short tool output:")
    print(
        f"  wrap_tool_output     {median_us(lambda: wrap_tool_output(output, tool_name='weather')):7.1f} us"
    )
    print(f"  injection detection  {median_us(lambda: detector.find(output)):7.1f} us")
    print(f"  pii redaction        {median_us(lambda: pii.check(ctx)):7.1f} us")
    print(f"  loop detection       {median_us(lambda: loop.fresh().check(action)):7.1f} us")


if __name__ == "__main__":
    main()
