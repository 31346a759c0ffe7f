"""Where a unit's actors may go: Ray actor options from an ActorPlan, and a feasibility check
against the cluster's nodes *before* anything is created.

Ray leaves an actor that no node can host pending forever; `apply` instead names the spec and
what is missing ("needs custom resource 'gpu_node', which no node has"). The check is pure (it
takes node descriptions), so it is tested without a cluster.

Strategies:
- `any`: Ray's default scheduling.
- `spread`: Ray's SPREAD strategy (replicas on different nodes while nodes are free).
- `pack`: hard affinity to one node chosen at apply time (the first feasible node), so all
  replicas share it.
- `colocate`: hard affinity to the node of the supervisor that routes to the unit (its first
  replica), so the hand-off stays on one node.
- `node_labels` become a Ray label selector; `node_resources` a tiny claim (0.001) on each named
  custom resource, which pins without consuming the node's capacity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_platform._compile.plan import ActorPlan

PIN_AMOUNT = 0.001


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    address: str
    alive: bool
    resources: Mapping[str, float]  # totals
    available: Mapping[str, float]
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_ray(cls, raw: Mapping[str, Any], available: Mapping[str, float] | None = None) -> NodeInfo:
        return cls(
            node_id=str(raw.get("NodeID", "")),
            address=str(raw.get("NodeManagerAddress", "")),
            alive=bool(raw.get("Alive", False)),
            resources=dict(raw.get("Resources") or {}),
            available=dict(available if available is not None else raw.get("Resources") or {}),
            labels={str(k): str(v) for k, v in (raw.get("Labels") or {}).items()},
        )


def resource_demand(actor: ActorPlan) -> dict[str, float]:
    """What one replica reserves, in Ray's resource names (memory in bytes)."""
    demand: dict[str, float] = {"CPU": float(actor.resources.num_cpus)}
    if actor.resources.num_gpus:
        demand["GPU"] = float(actor.resources.num_gpus)
    if actor.resources.memory is not None:
        demand["memory"] = float(actor.resources.memory)
    for name, amount in actor.resources.custom.items():
        demand[name] = demand.get(name, 0.0) + float(amount)
    for name in actor.placement.node_resources:
        demand[name] = max(demand.get(name, 0.0), PIN_AMOUNT)
    return {k: v for k, v in demand.items() if v > 0}


def _labels_match(node: NodeInfo, wanted: Mapping[str, str]) -> bool:
    return all(node.labels.get(k) == v for k, v in wanted.items())


def _shortfalls(demand: Mapping[str, float], node: NodeInfo) -> list[str]:
    return [name for name, amount in demand.items() if float(node.resources.get(name, 0.0)) + 1e-9 < amount]


def _fmt(name: str, amount: float) -> str:
    if name == "memory":
        return f"memory {amount / 2**20:.0f}Mi"
    return f"{name} {amount:g}"


def unplaceable_reason(unit: str, actor: ActorPlan, nodes: Sequence[NodeInfo]) -> str | None:
    """Why no node can host one replica of `unit` (None when some node can)."""
    alive = [n for n in nodes if n.alive]
    if not alive:
        return f"{unit}: the cluster has no live node"
    demand = resource_demand(actor)
    wanted = dict(actor.placement.node_labels)
    candidates = [n for n in alive if _labels_match(n, wanted)]
    if wanted and not candidates:
        seen = sorted({f"{k}={v}" for n in alive for k, v in n.labels.items() if k in wanted})
        want = ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()))
        have = f" (nodes have {', '.join(seen)})" if seen else " (no node carries these labels)"
        return f"{unit}: placement needs a node labelled {want}{have}"
    feasible = [n for n in candidates if not _shortfalls(demand, n)]
    if not feasible:
        parts = []
        for name, amount in sorted(demand.items()):
            best = max(float(n.resources.get(name, 0.0)) for n in candidates)
            if best + 1e-9 >= amount:
                continue
            if best == 0:
                why = f"needs {'custom resource ' + repr(name) if name not in ('CPU', 'GPU', 'memory') else name}, which no node has"
            else:
                why = f"needs {_fmt(name, amount)} per replica, the largest node has {_fmt(name, best)}"
            parts.append(why)
        return f"{unit}: no node can host a replica: {'; '.join(parts) or 'resources do not fit on one node'}"
    return None


def capacity_shortfall(demands: Mapping[str, Mapping[str, float]], nodes: Sequence[NodeInfo]) -> str | None:
    """Whether all the replicas about to be created fit in what the live nodes have free.

    `demands` is the total claim per unit ('Agent/x' -> resource -> amount for all replicas)."""
    total: dict[str, float] = {}
    for claim in demands.values():
        for name, amount in claim.items():
            total[name] = total.get(name, 0.0) + amount
    for name, amount in sorted(total.items()):
        free = sum(float(n.available.get(name, 0.0)) for n in nodes if n.alive)
        if free + 1e-9 < amount:
            users = sorted(unit for unit, claim in demands.items() if claim.get(name))
            return (
                f"not enough {name} free: {', '.join(users)} need {_fmt(name, amount)} in all, "
                f"the cluster has {_fmt(name, free)} free"
            )
    return None


def actor_options(
    actor: ActorPlan, *, name: str, namespace: str, affinity_node: str | None = None
) -> dict[str, Any]:
    """`ActorClass.options(...)` for one replica (Ray imported lazily by the caller)."""
    demand = resource_demand(actor)
    options: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "lifetime": "detached",
        "num_cpus": demand.pop("CPU", 0.0),
        "max_concurrency": actor.max_concurrency,
        "max_restarts": actor.max_restarts,
        # Calls in flight when a replica dies are retried on its restarted self: runs resume from
        # their checkpoints, and recorded side effects replay from the idempotency store.
        "max_task_retries": -1 if actor.max_restarts != 0 else 0,
    }
    if "GPU" in demand:
        options["num_gpus"] = demand.pop("GPU")
    if "memory" in demand:
        options["memory"] = demand.pop("memory")
    if demand:
        options["resources"] = demand
    if actor.placement.node_labels:
        options["label_selector"] = dict(actor.placement.node_labels)
    strategy = actor.placement.strategy
    if affinity_node is not None and strategy in ("pack", "colocate"):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(affinity_node, soft=False)
    elif strategy == "spread":
        options["scheduling_strategy"] = "SPREAD"
    return options


def pick_pack_node(actor: ActorPlan, nodes: Sequence[NodeInfo]) -> str | None:
    """The node that hosts every replica of a `pack` unit: the feasible one with most CPU free."""
    demand = {k: v * actor.replicas for k, v in resource_demand(actor).items()}
    wanted = actor.placement.node_labels
    fits = [
        n
        for n in nodes
        if n.alive
        and _labels_match(n, wanted)
        and all(float(n.available.get(k, 0.0)) + 1e-9 >= v for k, v in demand.items())
    ]
    if not fits:
        return None
    return max(fits, key=lambda n: (float(n.available.get("CPU", 0.0)), n.node_id)).node_id
