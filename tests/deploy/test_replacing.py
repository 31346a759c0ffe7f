"""`replacing`: what `platform dev` applies when a plugin's code changed but no spec did: the Tool
and every unit that reaches it are updated, and nothing else."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.test_placement_reconcile import desired, records

from agent_platform._deploy.reconcile import reconcile, replacing


def test_a_tool_to_replace_updates_the_units_that_reach_it_and_only_those(tmp_path: Path) -> None:
    state = desired(tmp_path)
    unchanged = reconcile(state, records(state), prune=False)  # type: ignore[arg-type]
    assert {a.kind for a in unchanged} == {"unchanged"}
    actions = {a.ref: a for a in replacing(unchanged, ["Tool/t"])}
    assert actions["Agent/uses-tool"].kind == "update"
    assert actions["Agent/uses-tool"].changed_dependencies == ["Tool/t"]
    assert actions["Agent/uses-tool"].diff is None and actions["Agent/uses-tool"].has_actors
    assert actions["Tool/t"].kind == "update"
    for ref in ("Agent/alone", "Agent/boss", "Model/m"):
        assert actions[ref].kind == "unchanged", ref


def test_nothing_to_replace_changes_nothing(tmp_path: Path) -> None:
    state = desired(tmp_path)
    actions = reconcile(state, records(state), prune=False)  # type: ignore[arg-type]
    assert replacing(actions, []) == actions
    assert [a.kind for a in replacing(actions, ["Tool/elsewhere"])] == [a.kind for a in actions]
