"""What `platform get` and `describe` say of replicas that are gone: how each died, read from the
cluster's actor table, and one line naming what to run (the deployed test,
tests/deploy/test_replicas_gone_for_good.py, reads these from a real head)."""

from __future__ import annotations

from typing import Any

from agent_platform._deploy.apply_render import describe_text, status_text
from agent_platform._deploy.client import ReplicaDeath, _explain_gone


def row(*healths: str) -> dict[str, Any]:
    replicas = [
        {"actor": f"agent-mailer-g1-r{n}", "health": health, "node_ip": "10.0.0.1", "node_id": "abcdef12"}
        for n, health in enumerate(healths)
    ]
    return {
        "ref": "Agent/mailer",
        "kind": "Agent",
        "name": "mailer",
        "generation": 1,
        "spec_hash": "0123456789abcdef",
        "actors": [r["actor"] for r in replicas],
        "replicas": replicas,
    }


def test_replicas_that_died_for_good_are_explained_with_what_to_run() -> None:
    gone = row("gone", "gone")
    deaths = {
        "agent-mailer-g1-r0": ReplicaDeath(restarts=3, killed=False, ended=2.0),
        "agent-mailer-g1-r1": ReplicaDeath(restarts=2, killed=False, ended=1.0),
    }
    _explain_gone(gone, deaths)
    assert [r["health"] for r in gone["replicas"]] == [
        "gone (died for good after 3 restarts)",
        "gone (died for good after 2 restarts)",
    ]
    problem = (
        "all replicas of Agent/mailer are gone (restarted 3 times, then died for good): "
        "run `platform apply SPECS` to recreate them"
    )
    assert gone["problem"] == problem
    assert status_text([gone]).splitlines()[1].split() == ["Agent", "mailer", "0/2", "1", "0123456789abcdef"]
    assert f"    ! {problem}" in status_text([gone]).splitlines()
    assert f"  problem:     {problem}" in describe_text(gone).splitlines()


def test_one_gone_replica_of_two_and_deaths_the_cluster_does_not_explain() -> None:
    some = row("ok", "gone")
    _explain_gone(some, {"agent-mailer-g1-r1": ReplicaDeath(restarts=1, killed=False, ended=1.0)})
    assert some["problem"].startswith("1 of 2 replicas of Agent/mailer are gone (restarted 1 time, ")
    unexplained = row("gone")
    _explain_gone(unexplained, {})
    assert unexplained["replicas"][0]["health"] == "gone (its node was lost, or the cluster restarted)"
    assert unexplained["problem"] == (
        "all replicas of Agent/mailer are gone (not running): run `platform apply SPECS` to recreate them"
    )
    killed = row("gone")
    _explain_gone(killed, {"agent-mailer-g1-r0": ReplicaDeath(restarts=0, killed=True, ended=1.0)})
    assert killed["replicas"][0]["health"] == "gone (killed)"


def test_healthy_replicas_have_no_problem() -> None:
    healthy = row("ok")
    _explain_gone(healthy, {})
    assert "problem" not in healthy
    assert "!" not in status_text([healthy])
