"""The labelled injection corpus (bench/data/injection): the held-out split is frozen, the splits do
not overlap, records are well formed, and the pattern detector's figures on the dev split (the
only split patterns are tuned on) do not regress."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from bench.injection_corpus import (
    CARRIERS,
    HELDOUT_SHA256,
    STYLES,
    CorpusError,
    load_split,
    score,
    sha256_of,
    wilson,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_platform._runtime.guardrails.injection import DEFAULT_PATTERNS, InjectionDetector, default_detector

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "injection"


def test_the_heldout_split_is_the_frozen_one() -> None:
    assert sha256_of(DATA / "heldout.jsonl") == HELDOUT_SHA256
    assert load_split("heldout")  # verifies the checksum itself


def test_a_changed_heldout_split_is_refused(tmp_path: Path) -> None:
    original = (DATA / "heldout.jsonl").read_text(encoding="utf-8")
    (tmp_path / "heldout.jsonl").write_text(original.replace("Quarterly", "Quarterly "), encoding="utf-8")
    (tmp_path / "heldout.jsonl").write_text(original + "\n", encoding="utf-8")  # even a trailing newline
    with pytest.raises(CorpusError, match="changed"):
        load_split("heldout", tmp_path)


def test_the_splits_are_disjoint_and_well_formed() -> None:
    dev, heldout = load_split("dev"), load_split("heldout")
    assert len(dev) + len(heldout) >= 500
    assert not {e.text for e in dev} & {e.text for e in heldout}
    assert not {e.payload for e in dev if e.payload} & {e.payload for e in heldout if e.payload}
    for split in (dev, heldout):
        assert len({e.id for e in split}) == len(split)
        assert {e.carrier for e in split} == CARRIERS
        assert {e.style for e in split if e.is_injection} == STYLES
        injections = [e for e in split if e.is_injection]
        benign = [e for e in split if not e.is_injection]
        assert len(injections) >= 100 and len(benign) >= 75
        # benign look-alikes, not only plain data
        assert {"quotes_attack", "imperative", "mentions_ai", "payment"} <= {
            t for e in benign for t in e.tags
        }


def test_the_keyword_prefilter_never_changes_a_result_on_the_corpus() -> None:
    unfiltered = InjectionDetector([replace(p, keywords=()) for p in DEFAULT_PATTERNS])
    detector = default_detector()
    for example in [*load_split("dev"), *load_split("heldout")]:
        assert detector.find(example.text) == unfiltered.find(example.text), example.id


def test_pattern_figures_on_the_dev_split_do_not_regress() -> None:
    """A floor on the split the patterns were tuned on (the held-out figures are reported by
    bench/guardrail_fp.py, never asserted: a test to satisfy is a target to tune to)."""
    dev = load_split("dev")
    detector = default_detector()
    scores = score("patterns", "dev", dev, [detector.detects(e.text) for e in dev])
    assert scores.tpr >= 0.75
    assert scores.fpr <= 0.05


def test_wilson_interval_contains_the_proportion() -> None:
    low, high = wilson(29, 182)
    assert low < 29 / 182 < high
    assert wilson(0, 50)[0] == 0.0 and wilson(0, 50)[1] > 0
    assert wilson(0, 0) == (0.0, 1.0)


RECORD = {
    "id": "dev-9999",
    "split": "dev",
    "label": "injection",
    "carrier": "email",
    "style": "bipia",
    "goal": "task_hijack",
    "payload": "d-x",
    "tags": [],
    "text": "hello",
}


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(RECORD)),
        st.one_of(st.none(), st.text(max_size=12), st.integers(), st.lists(st.text(max_size=5), max_size=2)),
        max_size=4,
    )
)
def test_a_malformed_record_is_a_located_corpus_error(overrides: dict[str, Any]) -> None:
    import tempfile

    record = {**RECORD, **overrides}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "dev.jsonl"
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        try:
            (example,) = load_split("dev", Path(directory))
        except CorpusError as exc:
            assert str(exc).startswith(f"{path}:1: ")
            return
    assert example.label in ("injection", "benign") and example.carrier in CARRIERS and example.text.strip()
