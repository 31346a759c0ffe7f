"""The shapes of the CLI's text output that scripts and eyes rely on (no Ray needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import yaml

from agent_platform._cli.deploy import runs_table
from agent_platform._cli.output import emit
from agent_platform._deploy.apply_render import table


def row(run_id: str, unit: str, status: str, outcome: str) -> dict[str, object]:
    when = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    return {
        "run_id": run_id,
        "unit": unit,
        "status": status,
        "outcome": outcome,
        "attempt": 1,
        "updated_at": when,
    }


def test_the_runs_table_stays_aligned_and_says_the_status_once() -> None:
    """A long unit name broke the columns, and a failed run read `failed (failed)`."""
    text = runs_table(
        [
            row("run-1", "Agent/a", "completed", "completed"),
            row(
                "run-2/sub-agent-with-a-long-name-7",
                "Supervisor/a-very-long-supervisor-name",
                "failed",
                "failed",
            ),
            row("run-3", "Agent/b", "failed", "timeout"),
        ]
    )
    lines = text.splitlines()
    starts = {line.index("20") for line in lines[1:]}
    assert len(starts) == 1, "the UPDATED column starts at the same place on every line"
    assert "failed (failed)" not in text and "failed (timeout)" in text
    assert "completed (completed)" not in text


def test_a_table_pads_to_its_widest_cell() -> None:
    text = table(["A", "B"], [["x", "1"], ["long value", "22"]], right=("B",))
    assert text.splitlines() == ["A            B", "x            1", "long value  22"]
    assert table(["A"], [], empty="nothing") == "nothing"


def test_json_and_yaml_print_the_same_data(capsys: object) -> None:
    data = {"when": datetime(2026, 1, 2, tzinfo=UTC), "n": [1, 2]}
    emit(data, "json", lambda: "unused")
    emit(data, "yaml", lambda: "unused")
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    json_text, yaml_text = out[: out.index("}\n") + 2], out[out.index("}\n") + 2 :]
    expected = {"when": "2026-01-02 00:00:00+00:00", "n": [1, 2]}
    assert json.loads(json_text) == yaml.safe_load(yaml_text) == expected
