"""`apply` on a real 3-node Ray cluster: placement, idempotent apply, prune, unsatisfiable
placement, hand-offs across nodes in one trace, and runs surviving the loss of a node."""

from __future__ import annotations

import json
import sqlite3
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.deploy.conftest import node_ids, write_specs

from agent_platform._compile import build_output_models, compile_specs
from agent_platform._deploy.bundle import SpecBundle
from agent_platform._deploy.client import DeployError, Deployment
from agent_platform._deploy.traces import read_spans
from agent_platform._validate import ValidationOptions, validate_paths

pytestmark = pytest.mark.slow

PLUGIN = '''
import os
import sqlite3
import time

from agent_platform._runtime.tools.idempotency import current_idempotency_key


def record(item: str) -> dict:
    """Record one side effect (an execution row per call) in the test database.

    Args:
        item: What to record.
    """
    time.sleep(0.3 if item == "a" else 1.0)  # a long window after the first effect, for the kill
    key = current_idempotency_key()
    with sqlite3.connect(os.path.join(os.path.dirname(__file__), "side-effects.db"), timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS executions (key TEXT, item TEXT, pid INTEGER, at REAL)")
        db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, item TEXT)")
        # Every execution of the function is counted; the effect itself is keyed by the
        # idempotency key, as a remote service given the key would (closing the window between
        # doing the effect and the platform storing its result).
        db.execute("INSERT INTO executions VALUES (?, ?, ?, ?)", (key, item, os.getpid(), time.time()))
        db.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (key, item))
    return {"recorded": item}


def where(tag: str) -> dict:
    """Say where this call ran (node and process), and remember it in a file.

    Args:
        tag: A label.
    """
    import json

    import ray

    found = {"tag": tag, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
    with open(os.path.join(os.path.dirname(__file__), "where.jsonl"), "a") as file:
        file.write(json.dumps(found) + "\\n")
    return found


def echo(text: str) -> str:
    """Echo the text.

    Args:
        text: Anything.
    """
    return text
'''

SCRIPT = {
    "responses": {
        "worker": [
            {"action": {"action": "record", "arguments": {"item": "a"}}},
            {"action": {"action": "record", "arguments": {"item": "b"}}},
            {"action": {"action": "record", "arguments": {"item": "c"}}},
            {"action": {"action": "final_answer", "answer": {"answer": "recorded a, b, c"}}},
        ],
        "prober": [
            {"action": {"action": "where", "arguments": {"tag": "isolated"}}},
            {"action": {"action": "final_answer", "answer": {"answer": "probed"}}},
        ],
        "helper": [
            {"action": {"action": "echo", "arguments": {"text": "hi"}}},
            {"action": {"action": "final_answer", "answer": {"answer": "helped"}}},
        ],
    }
}


def specs(
    *, worker_replicas: int = 3, extra: str = "", helper_placement: str = "{node_resources: [gpu_node]}"
) -> str:
    return (
        textwrap.dedent(
            f"""\
        apiVersion: agents.platform/v1
        kind: Model
        metadata: {{name: m}}
        spec: {{provider: scripted, script: script.json, on_script_exhausted: error}}
        ---
        apiVersion: agents.platform/v1
        kind: Tool
        metadata: {{name: record}}
        spec:
          description: Record a side effect.
          python: sideplug:record
          side_effects: true
          requires_approval: false  # approval is not what this test is about
          trust: trusted  # its receipts are written by this test
          timeout: 5s
          idempotency: {{mode: key}}
        ---
        apiVersion: agents.platform/v1
        kind: Tool
        metadata: {{name: echo}}
        spec: {{description: Echo., python: "sideplug:echo"}}
        ---
        apiVersion: agents.platform/v1
        kind: Agent
        metadata: {{name: worker}}
        spec:
          model: m
          instructions: Record a, b and c.
          output: {{type: object, properties: {{answer: {{type: string}}}}, required: [answer]}}
          tools: [record]
          runtime:
            replicas: {worker_replicas}
            resources: {{num_cpus: 0.1}}
            placement: spread
            max_restarts: -1
        ---
        apiVersion: agents.platform/v1
        kind: Agent
        metadata: {{name: helper}}
        spec:
          model: m
          instructions: Help.
          output: {{type: object, properties: {{answer: {{type: string}}}}, required: [answer]}}
          tools: [echo]
          runtime:
            resources: {{num_cpus: 0.1}}
            placement: {helper_placement}
        ---
        apiVersion: agents.platform/v1
        kind: Tool
        metadata: {{name: where}}
        spec:
          description: Where did this run?
          python: sideplug:where
          isolation: {{mode: task, resources: {{num_cpus: 0.5, custom: {{cpu_node: 0.5}}}}}}
        ---
        apiVersion: agents.platform/v1
        kind: Agent
        metadata: {{name: prober}}
        spec:
          model: m
          instructions: Probe.
          output: {{type: object, properties: {{answer: {{type: string}}}}, required: [answer]}}
          tools: [where]
          delegates: [sidekick]
          runtime:
            resources: {{num_cpus: 0.1}}
            placement: {{node_resources: [gpu_node]}}
        ---
        apiVersion: agents.platform/v1
        kind: Agent
        metadata: {{name: sidekick}}
        spec:
          model: m
          instructions: Help the prober.
          tools: [echo]
          runtime:
            resources: {{num_cpus: 0.1}}
            placement: colocate
        ---
        apiVersion: agents.platform/v1
        kind: Supervisor
        metadata: {{name: boss}}
        spec:
          routes:
            work: {{agent: worker}}
            help: {{agent: helper}}
          concurrency: 4
          runtime:
            resources: {{num_cpus: 0.1}}
            placement: {{node_labels: {{zone: c}}}}
        """
        )
        + extra
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deploy-project")
    (root / "plugins").mkdir()
    (root / "plugins" / "sideplug.py").write_text(PLUGIN, encoding="utf-8")
    write_specs(root / "specs", {"all.yaml": specs(), "script.json": json.dumps(SCRIPT)})
    return root


def compiled(spec_dir: Path, plugins: Path) -> tuple[Any, Any, SpecBundle]:
    report = validate_paths([spec_dir], ValidationOptions(plugin_paths=[plugins]))
    assert report.ok, [str(d) for d in report.diagnostics.sorted()]
    plan = compile_specs(report.specs)
    build_output_models(plan, report.diagnostics)
    return report, plan, SpecBundle.from_files(report.files, [plugins])


@pytest.fixture(scope="module")
def deployment(ray_cluster: Any, project: Path, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    state = tmp_path_factory.mktemp("deploy-ns-state")
    return Deployment.connect(
        ray_cluster.address,
        "test-cluster",
        start=False,
        state_dir=state,
        run_store_url=f"sqlite:///{state}/runs.db",
    )


def apply(deployment: Deployment, project: Path, spec_dir: Path | None = None, **options: Any) -> Any:
    report, plan, bundle = compiled(spec_dir or project / "specs", project / "plugins")
    return deployment.apply(report.specs, plan, bundle, **options)


def test_apply_places_actors_where_specs_say(deployment: Deployment, project: Path, ray_cluster: Any) -> None:
    result = apply(deployment, project)
    kinds = {a.ref: a.kind for a in result.actions}
    assert kinds["Agent/worker"] == "create" and kinds["Tool/record"] == "create"
    ids = node_ids(ray_cluster)
    helper_nodes = {p["node_id"] for p in result.placements["Agent/helper"]}
    assert helper_nodes == {ids["gpu"]}, "node_resources: [gpu_node] pins to the gpu node"
    boss_nodes = {p["node_id"] for p in result.placements["Supervisor/boss"]}
    assert boss_nodes == {ids["cpu"]}, "node_labels zone=c pins to the labelled node"
    sidekick_nodes = {p["node_id"] for p in result.placements["Agent/sidekick"]}
    assert sidekick_nodes == {ids["gpu"]}, "colocate follows the agent that delegates to it"
    worker_nodes = {p["node_id"] for p in result.placements["Agent/worker"]}
    assert len(worker_nodes) == 3, f"spread puts 3 replicas on 3 nodes, got {worker_nodes}"


def test_apply_twice_changes_nothing(deployment: Deployment, project: Path) -> None:
    before = deployment.records()
    result = apply(deployment, project)
    assert {a.kind for a in result.actions} == {"unchanged"}
    after = deployment.records()
    assert {r: v["actors"] for r, v in after.items()} == {r: v["actors"] for r, v in before.items()}


def test_supervisor_run_crosses_nodes_in_one_trace(deployment: Deployment, project: Path) -> None:
    tasks = [
        {"task_id": "w1", "task_type": "work", "payload": {}},
        {"task_id": "h1", "task_type": "help", "payload": {}},
    ]
    result = deployment.run("Supervisor/boss", {"tasks": tasks})
    assert result.ok, result.output
    placements = result.details["placements"]
    nodes = {p["node_id"] for p in placements.values()} | {result.details["placement"]["node_id"]}
    assert len(nodes) >= 2, "the supervisor and its sub-agents ran on different nodes"
    settings = deployment.settings()
    deployment.flush_traces(
        [p["actor"] for p in placements.values()] + [result.details["placement"]["actor"]]
    )
    spans = read_spans(Path(settings["trace_file"]), result.trace_id)
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert len(roots) == 1 and roots[0]["name"].startswith("invoke_workflow boss")
    agents = [s for s in spans if s["name"].startswith("invoke_agent")]
    assert {s["name"] for s in agents} == {"invoke_agent worker", "invoke_agent helper"}
    for span in agents:  # each sub-agent's run span hangs under its supervisor task span
        parent = by_id[span["parent_span_id"]]
        assert parent["name"].startswith("task "), parent["name"]
        assert span["resource"]["platform.actor"] != roots[0]["resource"]["platform.actor"]
    assert all(s["parent_span_id"] in by_id for s in spans if s["parent_span_id"])


def test_an_isolated_tool_runs_as_a_ray_task_where_its_resources_are(
    deployment: Deployment, project: Path, ray_cluster: Any
) -> None:
    result = deployment.run("Agent/prober", {})
    assert result.ok, result.error
    ids = node_ids(ray_cluster)
    assert result.details["placement"]["node_id"] == ids["gpu"], "the agent runs on the gpu node"
    calls = [json.loads(line) for line in (project / "plugins" / "where.jsonl").read_text().splitlines()]
    assert calls[-1]["tag"] == "isolated" and calls[-1]["node_id"] == ids["cpu"], (
        "its tool ran as a task on the node with the tool's custom resource"
    )


def test_wrong_inputs_are_refused_before_a_run_starts(deployment: Deployment) -> None:
    problem = deployment.input_problem("Supervisor/boss", {"tasks": [{"task_id": "x", "task_type": "wrok"}]})
    assert problem is not None and "unknown task_type 'wrok'" in problem and "did you mean 'work'" in problem
    assert deployment.input_problem("Supervisor/boss", {"tasks": []}) is None
    assert "tasks" in (deployment.input_problem("Supervisor/boss", {}) or "")


def test_a_restarted_control_plane_keeps_the_deployment_and_resumes_unfinished_runs(
    deployment: Deployment, ray_cluster: Any
) -> None:
    import asyncio

    import ray

    from agent_platform._deploy.router import CONTROL_PLANE
    from agent_platform._runstore import RunRecord, RunStatus, open_run_store

    url = deployment.settings()["run_store_url"]

    async def orphan() -> None:  # submitted, then the control plane driving it died
        store = open_run_store(url)
        try:
            await store.create_run(RunRecord(run_id="run-orphaned", unit="Agent/helper", inputs={}))
        finally:
            await store.close()

    asyncio.run(orphan())
    before = deployment.records()
    ray.kill(ray.get_actor(CONTROL_PLANE, namespace=deployment.namespace), no_restart=False)
    again = Deployment.connect(ray_cluster.address, deployment.namespace, start=False, create=False)
    assert again.records() == before, "the deployment survived the restart"

    async def finished() -> Any:
        store = open_run_store(url)
        try:
            return await store.wait("run-orphaned", timeout=60)
        finally:
            await store.close()

    record = asyncio.run(finished())
    assert record.status is RunStatus.COMPLETED and record.result["output"] == {"answer": "helped"}


def test_unsatisfiable_placement_is_reported_not_pending(
    deployment: Deployment, project: Path, tmp_path: Path
) -> None:
    spec_dir = write_specs(
        tmp_path / "specs",
        {
            "all.yaml": specs(helper_placement="{node_resources: [tpu_node]}"),
            "script.json": json.dumps(SCRIPT),
        },
    )
    with pytest.raises(DeployError) as caught:
        apply(deployment, project, spec_dir)
    message = str(caught.value)
    assert "Agent/helper" in message and "'tpu_node'" in message and "no node has" in message
    labels = write_specs(
        tmp_path / "labels",
        {
            "all.yaml": specs(helper_placement="{node_labels: {zone: mars}}"),
            "script.json": json.dumps(SCRIPT),
        },
    )
    with pytest.raises(DeployError, match=r"Agent/helper: placement needs a node labelled zone=mars"):
        apply(deployment, project, labels)
    assert {a.kind for a in apply(deployment, project, dry_run=True).actions} == {"unchanged"}, (
        "nothing changed"
    )


def test_update_shows_semantic_diff_and_replaces_replicas(
    deployment: Deployment, project: Path, tmp_path: Path
) -> None:
    spec_dir = write_specs(
        tmp_path / "specs", {"all.yaml": specs(worker_replicas=2), "script.json": json.dumps(SCRIPT)}
    )
    dry = apply(deployment, project, spec_dir, dry_run=True)
    worker = next(a for a in dry.actions if a.ref == "Agent/worker")
    assert worker.kind == "update"
    assert [c.summary for c in worker.diff.changes] == ["runtime.replicas scaled down from 3 to 2"]
    old = deployment.records()["Agent/worker"]
    in_flight: list[Any] = []  # a run (about 2.3 s of side effects) running on the old replicas
    runner = threading.Thread(target=lambda: in_flight.append(deployment.run("Agent/worker", {})))
    runner.start()
    time.sleep(0.5)
    applied = apply(deployment, project, spec_dir)
    assert len(applied.placements["Agent/worker"]) == 2
    new = deployment.records()["Agent/worker"]
    assert new["generation"] == old["generation"] + 1 and set(new["actors"]).isdisjoint(old["actors"])
    runner.join(timeout=60)
    assert in_flight and in_flight[0].ok, "the replaced replica finished the run it was running"
    assert in_flight[0].details["placement"]["actor"] in old["actors"]
    assert all(s["action"] != "resumed" for s in in_flight[0].details["trajectory"]), "not cut and resumed"
    result = deployment.run("Agent/worker", {})
    assert result.ok and result.details["placement"]["actor"] in new["actors"]
    apply(deployment, project)  # back to 3 replicas for the tests below


def test_prune_removes_what_the_specs_no_longer_declare(
    deployment: Deployment, project: Path, tmp_path: Path
) -> None:
    extra = textwrap.dedent(
        """\
        ---
        apiVersion: agents.platform/v1
        kind: Agent
        metadata: {name: spare}
        spec:
          model: m
          instructions: Spare.
          tools: [echo]
          runtime: {resources: {num_cpus: 0.1}}
        """
    )
    with_spare = write_specs(
        tmp_path / "with", {"all.yaml": specs(extra=extra), "script.json": json.dumps(SCRIPT)}
    )
    apply(deployment, project, with_spare)
    spare_actors = deployment.records()["Agent/spare"]["actors"]
    kept = apply(deployment, project)
    assert next(a for a in kept.actions if a.ref == "Agent/spare").kind == "orphan"
    assert "Agent/spare" in deployment.records()
    pruned = apply(deployment, project, prune=True)
    assert next(a for a in pruned.actions if a.ref == "Agent/spare").kind == "delete"
    assert "Agent/spare" not in deployment.records()
    import ray

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ray.get_actor(spare_actors[0], namespace=deployment.namespace)
        except ValueError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the pruned unit's actor is still alive")


def test_node_lost_mid_run_loses_no_run_and_repeats_no_side_effect(
    deployment: Deployment, project: Path, ray_cluster: Any
) -> None:
    """20 runs of a side-effecting agent; the node hosting one of its replicas is removed while
    they run. Every run completes, and every side effect (3 per run) executed exactly once."""
    import asyncio

    from agent_platform._deploy.host import RunRequest
    from agent_platform._deploy.router import Router
    from agent_platform._runstore import open_run_store

    ids = node_ids(ray_cluster)
    placement = deployment.records()["Agent/worker"]["placement"]
    assert ids["gpu"] in {p["node_id"] for p in placement}, "a worker replica runs on the node to remove"
    run_ids = [f"run-nodeloss-{i:02d}" for i in range(20)]
    (project / "plugins" / "side-effects.db").unlink(missing_ok=True)  # earlier tests' runs

    async def run_all() -> list[Any]:
        router = Router(deployment.namespace)
        return await asyncio.gather(*(router.call(RunRequest(r, "Agent/worker", {})) for r in run_ids))

    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.extend(asyncio.run(run_all())))
    runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill when the runs are mid-way through their 3 effects
        try:
            with sqlite3.connect(project / "plugins" / "side-effects.db") as db:
                if db.execute("SELECT count(*) FROM executions").fetchone()[0] >= 20:
                    break
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.02)
    time.sleep(0.5)  # mid-way through the 1 s before each run's second effect
    ray_cluster.remove_node(ray_cluster.named_nodes["gpu"], allow_graceful=False)
    runner.join(timeout=240)
    assert not runner.is_alive(), "runs did not finish after the node loss"

    assert [r.outcome.value for r in results] == ["completed"] * 20, [r.error for r in results if not r.ok]
    with sqlite3.connect(project / "plugins" / "side-effects.db") as db:
        executions = db.execute("SELECT key FROM executions").fetchall()
        repeated = db.execute(
            "SELECT item, pid, at FROM executions WHERE key IN "
            "(SELECT key FROM executions GROUP BY key HAVING count(*) > 1) ORDER BY at"
        ).fetchall()
        effects = db.execute("SELECT key FROM effects").fetchall()
    assert len(effects) == 60, "3 side effects per run, each applied once"
    # A tool call whose result was recorded never runs again. The node dies while the runs sleep
    # between their first and second effect, but under load an effect's result may still be on
    # its way into the idempotency store (seen: once in ~5 runs): that call runs again after its
    # claim lapses, and the idempotency key it passes to the effect keeps the effect single.
    assert len(executions) - 60 <= 2, f"{len(executions) - 60} side-effect executions repeated: {repeated}"

    async def attempts() -> list[int]:
        store = open_run_store(deployment.settings()["run_store_url"])
        try:
            return [(await store.get_run(r)).attempt for r in run_ids]  # type: ignore[union-attr]
        finally:
            await store.close()

    assert max(asyncio.run(attempts())) >= 2, "some runs were resumed on another replica"
