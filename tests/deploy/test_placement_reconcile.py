"""Placement checks and reconciliation, pure (no Ray): what `apply` decides before touching a
cluster."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent_platform._compile import compile_specs
from agent_platform._compile.plan import ActorPlan
from agent_platform._deploy.placement import (
    PIN_AMOUNT,
    NodeInfo,
    actor_options,
    capacity_shortfall,
    resource_demand,
    unplaceable_reason,
)
from agent_platform._deploy.reconcile import desired_state, reconcile
from agent_platform._spec.common import Placement, Resources
from agent_platform._validate import ValidationOptions, validate_paths

NODES = [
    NodeInfo(
        "n-head",
        "10.0.0.1",
        True,
        {"CPU": 2, "memory": 8 * 2**30, "node:__internal_head__": 1},
        {"CPU": 1.5},
        {"zone": "a"},
    ),
    NodeInfo(
        "n-gpu", "10.0.0.2", True, {"CPU": 8, "GPU": 1, "gpu_node": 1}, {"CPU": 8, "GPU": 1}, {"zone": "b"}
    ),
    NodeInfo("n-dead", "10.0.0.3", False, {"CPU": 64, "tpu": 4}, {"CPU": 64}, {"zone": "c"}),
]


def actor(
    *,
    replicas: int = 1,
    cpus: float = 1.0,
    gpus: float = 0.0,
    custom: dict[str, float] | None = None,
    **placement: object,
) -> ActorPlan:
    return ActorPlan(
        name="agent-x",
        replicas=replicas,
        resources=Resources(num_cpus=cpus, num_gpus=gpus, custom=custom or {}),
        placement=Placement.model_validate(placement or {}),
        placement_reason="test",
        max_concurrency=10,
        max_restarts=3,
    )


def test_a_placeable_unit_has_no_reason() -> None:
    assert unplaceable_reason("Agent/x", actor(cpus=4, gpus=1), NODES) is None


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (
            actor(custom={"tpu": 1}),
            "Agent/x: no node can host a replica: needs custom resource 'tpu', which no node has",
        ),
        (
            actor(cpus=16),
            "Agent/x: no node can host a replica: needs CPU 16 per replica, the largest node has CPU 8",
        ),
        (actor(gpus=2), "needs GPU 2 per replica, the largest node has GPU 1"),
        (
            actor(node_labels={"zone": "c"}),
            "Agent/x: placement needs a node labelled zone=c (nodes have zone=a, zone=b)",
        ),
        (
            actor(node_labels={"rack": "7"}),
            "Agent/x: placement needs a node labelled rack=7 (no node carries these labels)",
        ),
        (actor(node_resources=["tpu"]), "needs custom resource 'tpu', which no node has"),
    ],
)
def test_unplaceable_units_say_what_is_missing(plan: ActorPlan, message: str) -> None:
    reason = unplaceable_reason("Agent/x", plan, NODES)
    assert reason is not None and message in reason


def test_a_label_and_a_resource_must_be_on_the_same_node() -> None:
    reason = unplaceable_reason("Agent/x", actor(gpus=1, node_labels={"zone": "a"}), NODES)
    assert reason is not None and "needs GPU" in reason


def test_capacity_counts_every_replica_of_every_unit() -> None:
    pool = [NodeInfo("all", "", True, {"CPU": 4}, {"CPU": 4})]
    assert capacity_shortfall({"Agent/a": {"CPU": 2}, "Agent/b": {"CPU": 2}}, pool) is None
    shortfall = capacity_shortfall({"Agent/a": {"CPU": 3}, "Agent/b": {"CPU": 2}}, pool)
    assert shortfall == "not enough CPU free: Agent/a, Agent/b need CPU 5 in all, the cluster has CPU 4 free"


def test_pins_claim_a_token_amount_and_options_follow_the_strategy() -> None:
    demand = resource_demand(actor(cpus=0.5, node_resources=["gpu_node"]))
    assert demand == {"CPU": 0.5, "gpu_node": PIN_AMOUNT}
    spread = actor_options(actor(replicas=3, strategy="spread"), name="agent-x-g1-r0", namespace="ns")
    assert spread["scheduling_strategy"] == "SPREAD" and spread["lifetime"] == "detached"
    assert spread["max_task_retries"] == -1, "calls in flight are retried on the restarted replica"
    labelled = actor_options(actor(node_labels={"zone": "b"}), name="n", namespace="ns")
    assert labelled["label_selector"] == {"zone": "b"}
    assert actor_options(actor(), name="n", namespace="ns")["max_restarts"] == 3


SPECS = textwrap.dedent(
    """\
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: m}
    spec: {provider: scripted, on_script_exhausted: synthesize}
    ---
    apiVersion: agents.platform/v1
    kind: Tool
    metadata: {name: t}
    spec: {description: TOOL_DESCRIPTION, http: {url: "https://example.com/x"}}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: uses-tool}
    spec: {model: m, instructions: Use t., tools: [t]}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: alone}
    spec: {model: m, instructions: Think., runtime: {replicas: REPLICAS}}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: boss}
    spec: {model: m, instructions: Delegate., delegates: [alone]}
    """
)


def desired(tmp_path: Path, *, description: str = "A tool.", replicas: int = 1) -> dict[str, object]:
    path = tmp_path / f"specs-{description[:3]}-{replicas}.yaml"
    path.write_text(SPECS.replace("TOOL_DESCRIPTION", description).replace("REPLICAS", str(replicas)))
    report = validate_paths([path], ValidationOptions(plugin_paths=[]))
    assert report.ok, [str(d) for d in report.diagnostics.sorted()]
    return desired_state(report.specs, compile_specs(report.specs))  # type: ignore[return-value]


def records(state: dict[str, object]) -> dict[str, dict[str, object]]:
    return {
        ref: {
            "spec_hash": s.spec_hash,
            "effective_hash": s.effective_hash,
            "snapshot": s.snapshot,
            "status": "ready",
        }  # type: ignore[attr-defined]
        for ref, s in state.items()
    }


def test_the_same_specs_reconcile_to_nothing(tmp_path: Path) -> None:
    state = desired(tmp_path)
    assert {a.kind for a in reconcile(state, records(state), prune=False)} == {"unchanged"}  # type: ignore[arg-type]


def test_a_changed_tool_replaces_the_agents_that_use_it_and_only_those(tmp_path: Path) -> None:
    before = records(desired(tmp_path))
    after = desired(tmp_path, description="A better tool.")
    actions = {a.ref: a for a in reconcile(after, before, prune=False)}  # type: ignore[arg-type]
    assert actions["Tool/t"].kind == "update"
    assert actions["Tool/t"].diff.changes[0].summary.startswith("description changed")
    assert actions["Agent/uses-tool"].kind == "update" and actions[
        "Agent/uses-tool"
    ].changed_dependencies == ["Tool/t"]
    assert actions["Agent/uses-tool"].diff is None, "its own spec did not change"
    assert actions["Agent/alone"].kind == "unchanged"


def test_removed_specs_are_orphans_until_pruned_and_missing_actors_are_recreated(tmp_path: Path) -> None:
    state = desired(tmp_path)
    current = records(state)
    current["Agent/old"] = {"spec_hash": "x", "actors": ["agent-old-g1-r0"], "status": "ready"}
    current["Agent/alone"]["status"] = "missing"
    kept = {a.ref: a.kind for a in reconcile(state, current, prune=False)}  # type: ignore[arg-type]
    assert kept["Agent/old"] == "orphan" and kept["Agent/alone"] == "update"
    pruned = {a.ref: a.kind for a in reconcile(state, current, prune=True)}  # type: ignore[arg-type]
    assert pruned["Agent/old"] == "delete"


def test_scaling_a_delegate_does_not_replace_the_agents_that_use_it(tmp_path: Path) -> None:
    before = records(desired(tmp_path))
    after = desired(tmp_path, replicas=3)
    actions = {a.ref: a for a in reconcile(after, before, prune=False)}  # type: ignore[arg-type]
    assert actions["Agent/alone"].kind == "update"
    assert [c.summary for c in actions["Agent/alone"].diff.changes] == [
        "runtime.replicas scaled up from 1 to 3"
    ]
    assert actions["Agent/boss"].kind == "unchanged", "its delegate's replicas are not its behaviour"
