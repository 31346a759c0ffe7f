"""A real multi-node Ray cluster (`ray.cluster_utils.Cluster`) shared by the deploy tests.

Three nodes with different custom resources and labels:
    head   zone=a   resources {head: 1}
    gpu    zone=b   resources {gpu_node: 1}
    cpu    zone=c   resources {cpu_node: 1}
Starting it costs ~10 s and ~1 GB, so it is session-scoped; each test module deploys into its own
namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    state = tmp_path_factory.mktemp("deploy-state")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "resources": {"head": 1}, "labels": {"zone": "a"}},
    )
    nodes = {
        "gpu": cluster.add_node(num_cpus=2, resources={"gpu_node": 1}, labels={"zone": "b"}),
        "cpu": cluster.add_node(num_cpus=2, resources={"cpu_node": 1}, labels={"zone": "c"}),
    }
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    cluster.platform_state = state  # type: ignore[attr-defined]
    cluster.named_nodes = nodes  # type: ignore[attr-defined]
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def node_ids(cluster: Any) -> dict[str, str]:
    """Node id by role (head, gpu, cpu)."""
    import ray

    ids = {}
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        resources = node["Resources"]
        role = (
            "head"
            if "head" in resources
            else "gpu"
            if "gpu_node" in resources
            else "cpu"
            if "cpu_node" in resources
            else None
        )
        if role:
            ids[role] = node["NodeID"]
    return ids


def write_specs(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory
