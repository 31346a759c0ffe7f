"""Durable runs at the host level (no Ray needed): every run has a record; every agent step is
checkpointed; a replica that dies mid-run is replaced by another that resumes from the last
checkpoint, repeats no recorded side effect, and fences the dead one out."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent_platform._deploy.bundle import SpecBundle
from agent_platform._deploy.host import HostConfig, RunRequest, UnitHost
from agent_platform._runstore import RunStatus, open_run_store

PLUGIN = '''
import asyncio
import os
import sqlite3

from agent_platform._runtime.tools.idempotency import current_idempotency_key

GATE = {"hold": None, "entered": None}


async def record(item: str) -> dict:
    """Record a side effect.

    Args:
        item: What to record.
    """
    if GATE["hold"] == item:
        GATE["entered"] = item
        await asyncio.sleep(3600)  # the replica "dies" here, before the effect: the test cancels it
    with sqlite3.connect(os.path.join(os.path.dirname(__file__), "effects.db")) as db:
        db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT, item TEXT)")
        db.execute("INSERT INTO effects VALUES (?, ?)", (current_idempotency_key(), item))
    return {"recorded": item}
'''

SPECS = textwrap.dedent(
    """\
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: m}
    spec: {provider: scripted, script: script.json, on_script_exhausted: error}
    ---
    apiVersion: agents.platform/v1
    kind: Tool
    metadata: {name: record}
    spec:
      description: Record a side effect.
      python: durableplug:record
      side_effects: true
      requires_approval: false  # approval is not what this test is about
      trust: trusted  # its receipts are written by this test
      timeout: 1s  # the claim of a dead replica's call lapses 11 s later (timeout + 10 s)
      idempotency: {mode: key}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: worker}
    spec:
      model: m
      instructions: Record a, b, c and d.
      output: {type: object, properties: {answer: {type: string}}, required: [answer]}
      tools: [record]
    """
)

SCRIPT = {
    "responses": {
        "worker": [
            *({"action": {"action": "record", "arguments": {"item": i}}} for i in "abcd"),
            {"action": {"action": "final_answer", "answer": {"answer": "recorded a-d"}}},
        ]
    }
}


@pytest.fixture
def project(tmp_path: Path) -> tuple[SpecBundle, HostConfig, Path]:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "durableplug.py").write_text(PLUGIN)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "all.yaml").write_text(SPECS)
    (tmp_path / "specs" / "script.json").write_text(json.dumps(SCRIPT))
    bundle = SpecBundle.from_files([tmp_path / "specs" / "all.yaml"], [tmp_path / "plugins"])
    config = HostConfig(namespace="test", state_dir=str(tmp_path / "state"))
    return bundle, config, tmp_path


def effects(root: Path) -> list[str]:
    with sqlite3.connect(root / "plugins" / "effects.db") as db:
        return [item for (item,) in db.execute("SELECT item FROM effects ORDER BY rowid")]


async def test_a_finished_run_is_recorded_and_a_repeated_call_returns_it(project: Any) -> None:
    bundle, config, root = project
    host = UnitHost(bundle, "Agent/worker", 0, 1, config)
    assert await host.warm_up() == []  # no long-term memory to prepare
    first = await host.run(RunRequest("run-1", "Agent/worker", {}))
    assert first.ok and first.output == {"answer": "recorded a-d"}
    again = await host.run(RunRequest("run-1", "Agent/worker", {}))
    assert again.ok and again.output == first.output
    assert effects(root) == list("abcd"), "the repeated call ran nothing"
    store = open_run_store(host.config.run_store_url or f"sqlite://{root}/state/runs.sqlite3")
    record = await store.get_run("run-1")
    checkpoint = await store.load_checkpoint("run-1")
    await store.close()
    assert record is not None and record.status is RunStatus.COMPLETED and record.attempt == 1
    assert checkpoint is None, "a completed run's checkpoint goes when it finishes"


async def test_a_replica_lost_mid_run_is_resumed_from_its_checkpoint(project: Any) -> None:
    bundle, config, root = project
    dying = UnitHost(bundle, "Agent/worker", 0, 1, config)
    plugin = __import__("durableplug")
    plugin.GATE["hold"] = "c"  # the first replica hangs inside its third side effect
    task = asyncio.create_task(dying.run(RunRequest("run-2", "Agent/worker", {}, tenant="acme")))
    store = open_run_store(f"sqlite://{root}/state/runs.sqlite3")
    try:
        for _ in range(500):
            await asyncio.sleep(0.01)
            saved = await store.load_checkpoint("run-2") if plugin.GATE["entered"] == "c" else None
            if saved is not None and saved.seq == 2:  # written behind the run: wait for it
                break
    finally:
        await store.close()
    assert saved is not None and saved.state["iterations"] == saved.seq == 2, "checkpoint n: after step n"
    task.cancel()  # the replica dies (its actor or node is gone)
    with pytest.raises(asyncio.CancelledError):
        await task
    plugin.GATE["hold"] = None

    survivor = UnitHost(bundle, "Agent/worker", 1, 1, config)
    result = await survivor.run(RunRequest("run-2", "Agent/worker", {}))
    assert result.ok and result.output == {"answer": "recorded a-d"}
    steps = [(s["action"], s.get("name")) for s in result.details["trajectory"]]
    assert ("resumed", None) in steps, steps
    assert steps.index(("resumed", None)) == 2, "resumed after the 2 checkpointed steps"
    assert result.iterations == 5, "the resumed replica made only the steps left"
    # a and b were recorded before the loss, c was claimed but never done (the survivor waits for
    # the dead replica's claim to lapse, then does it), d after: each side effect exactly once.
    assert effects(root) == list("abcd")

    store = open_run_store(f"sqlite://{root}/state/runs.sqlite3")
    record = await store.get_run("run-2")
    await store.close()
    assert record is not None and record.attempt == 2 and record.owner == survivor.actor_name
    assert record.tenant == "acme", "the run stays its tenant's when another replica resumes it"


async def test_a_zombie_replica_cannot_overwrite_the_resumed_run(project: Any) -> None:
    from agent_platform._runstore import StaleAttempt

    bundle, config, root = project
    host = UnitHost(bundle, "Agent/worker", 0, 1, config)
    await host.run(RunRequest("run-3", "Agent/worker", {}))
    store = open_run_store(f"sqlite://{root}/state/runs.sqlite3")
    try:
        with pytest.raises(StaleAttempt):
            await store.save_checkpoint("run-3", 0, 99, {"version": 1})
    finally:
        await store.close()


async def test_checkpoints_of_many_runs_are_group_committed_and_stale_writers_stopped(tmp_path: Path) -> None:
    from agent_platform._deploy.host import CheckpointWriter, Superseded
    from agent_platform._runstore import RunRecord

    store = open_run_store(f"sqlite://{tmp_path}/runs.db")
    try:
        for i in range(50):
            await store.create_run(RunRecord(run_id=f"r{i}", unit="Agent/x"))
            await store.begin_attempt(f"r{i}", "replica-0")
        writer = CheckpointWriter(store)
        for step in range(1, 4):  # 3 steps of 50 concurrent runs
            for i in range(50):
                writer.submit(f"r{i}", 1, step, lambda i=i, step=step: {"run": i, "step": step})
            await asyncio.sleep(0)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if (await store.load_checkpoint("r49") or None) and (await store.load_checkpoint("r49")).seq == 3:  # type: ignore[union-attr]
                break
        assert writer.batches < 50 * 3 / 10, f"{writer.batches} transactions for 150 checkpoints"
        assert [(await store.load_checkpoint(f"r{i}")).state for i in (0, 49)] == [  # type: ignore[union-attr]
            {"run": 0, "step": 3},
            {"run": 49, "step": 3},
        ]
        await store.begin_attempt("r7", "replica-1")  # another replica resumed r7
        writer.submit("r7", 1, 4, lambda: {"stale": True})
        for _ in range(100):
            await asyncio.sleep(0.01)
            try:
                writer.submit("r7", 1, 5, lambda: {"stale": True})
            except Superseded:
                break
        else:
            pytest.fail("the fenced-out writer was never told")
        assert (await store.load_checkpoint("r7")).state == {"run": 7, "step": 3}  # type: ignore[union-attr]
    finally:
        await store.close()


def test_a_checkpoint_writer_keeps_working_across_event_loops(tmp_path: Path) -> None:
    """A host used from successive event loops (tests, a restarted loop) must not keep a wake-up
    event bound to a closed loop."""
    from agent_platform._deploy.host import CheckpointWriter
    from agent_platform._runstore import RunRecord

    store = open_run_store(f"sqlite://{tmp_path}/runs.db")
    writer = CheckpointWriter(store)

    async def one_step(run_id: str) -> int:
        await store.create_run(RunRecord(run_id=run_id, unit="Agent/x"))
        attempt = await store.begin_attempt(run_id, "replica-0")
        writer.submit(run_id, attempt, 1, lambda: {"step": 1})
        for _ in range(200):
            await asyncio.sleep(0.01)
            saved = await store.load_checkpoint(run_id)
            if saved is not None:
                return saved.seq
        return 0

    assert asyncio.run(one_step("loop-1")) == 1
    assert asyncio.run(one_step("loop-2")) == 1, "the second loop's checkpoint was written"
    asyncio.run(store.close())


async def test_a_zombie_replica_finishing_late_is_superseded_and_callers_get_the_real_result(
    project: Any,
) -> None:
    from agent_platform._deploy.router import Router
    from agent_platform._runtime.outcomes import Outcome

    bundle, config, root = project
    zombie = UnitHost(bundle, "Agent/worker", 0, 1, config)
    survivor = UnitHost(bundle, "Agent/worker", 1, 1, config)
    plugin = __import__("durableplug")  # after the hosts imported this test's copy of it
    plugin.GATE["hold"], plugin.GATE["entered"] = "b", None
    late = asyncio.create_task(zombie.run(RunRequest("run-z", "Agent/worker", {})))
    for _ in range(500):
        await asyncio.sleep(0.01)
        if plugin.GATE["entered"] == "b":
            break
    plugin.GATE["hold"] = None  # the zombie stays stuck in its call; a survivor takes the run over
    won = await survivor.run(RunRequest("run-z", "Agent/worker", {}))
    assert won.ok
    # The zombie's stuck call times out (1 s) and it carries on: its next checkpoint is refused,
    # it stops, and its finish is refused too.
    lost = await late
    assert lost.outcome is Outcome.CANCELLED and (lost.error or "").startswith("superseded"), lost.error
    store = open_run_store(f"sqlite://{root}/state/runs.sqlite3")
    try:
        record = await store.get_run("run-z")
        assert record is not None and record.status is RunStatus.COMPLETED and record.attempt == 2
    finally:
        await store.close()
    router = Router("test", f"sqlite://{root}/state/runs.sqlite3")
    from agent_platform._runtime.outcomes import RunResult

    answer = await router._result_of(
        RunRequest("run-z", "Agent/worker", {}),
        RunResult("run-z", "Agent/worker", Outcome.CANCELLED, error="superseded: attempt 1 is stale"),
    )
    assert answer.ok and answer.output == won.output, "the caller gets the run's real result"


def test_the_checkpoint_encoder_writes_what_to_json_does_encoding_each_message_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_platform._runtime.checkpoint import AgentCheckpoint, CheckpointEncoder
    from agent_platform._runtime.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
    from agent_platform._runtime.models.base import Usage

    def plain(checkpoint: AgentCheckpoint) -> str:
        return json.dumps(checkpoint.to_json(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    encoded: list[Message] = []
    to_api = Message.to_api
    monkeypatch.setattr(Message, "to_api", lambda m: (encoded.append(m), to_api(m))[1])
    encoder = CheckpointEncoder()
    messages = [Message.user("task: ünïcode")]
    for step in range(1, 6):
        messages.append(Message("assistant", [ToolUseBlock(f"c{step}", "Decision", {"n": step})]))
        messages.append(Message("user", [ToolResultBlock(f"c{step}", f"result {step}")]))
        checkpoint = AgentCheckpoint(
            list(messages), [{"iteration": step}], step, step, 0, Usage(step, step), 0.5, {"m": {"k": step}}
        )
        encoded.clear()
        text = encoder.encode(checkpoint)
        assert encoded == messages[-3 if step == 1 else -2 :], "only the new messages are encoded"
        assert text == plain(checkpoint), f"step {step}"
    # Compaction: the head becomes a new summary message; the kept messages are the same objects.
    messages = [Message("user", [TextBlock("summary")]), *messages[-4:]]
    checkpoint = AgentCheckpoint(list(messages), [], 6, 5, 0, Usage(0, 0), 0.0)
    encoded.clear()
    text = encoder.encode(checkpoint)
    assert encoded == messages[:1] and text == plain(checkpoint)
    assert len(encoder._texts) == 5, "messages the conversation dropped are forgotten"
    loaded = AgentCheckpoint.from_json(json.loads(text))
    assert [m.to_api() for m in loaded.messages] == [to_api(m) for m in messages]


class FakeCheckpointStore:
    """Records the batches a CheckpointWriter commits; fails the first `fail` of them."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.batches: list[list[tuple[str, int, int, Any]]] = []
        self.saved: dict[str, tuple[int, Any]] = {}

    async def save_checkpoints(self, items: list[tuple[str, int, int, Any]]) -> list[None]:
        from agent_platform._runstore import RunStoreUnavailable

        await asyncio.sleep(0)
        if self.fail:
            self.fail -= 1
            raise RunStoreUnavailable("sqlite:///x.db", "disk I/O error")
        self.batches.append(items)
        for run_id, _, seq, state in items:
            self.saved[run_id] = (seq, state)
        return [None] * len(items)


async def wait_for(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail("the condition was never met")


async def test_a_checkpoint_batch_is_capped_and_every_run_is_written() -> None:
    from agent_platform._deploy.host import CheckpointWriter

    store = FakeCheckpointStore()
    writer = CheckpointWriter(store, batch=64)
    for i in range(300):
        writer.submit(f"r{i}", 1, 1, lambda i=i: {"run": i})
    await wait_for(lambda: len(store.saved) == 300)
    assert max(len(b) for b in store.batches) <= 64
    assert store.saved["r299"] == (1, {"run": 299}) and writer.written == 300


def test_the_writer_rests_in_proportion_to_a_batch_but_never_lets_checkpoints_lag_long() -> None:
    from agent_platform._deploy.host import MAX_REST_S, CheckpointWriter

    writer = CheckpointWriter(object(), pace=4.0)
    assert writer.rest_after(0.001) == pytest.approx(0.004)  # few runs: every step is written
    assert writer.rest_after(0.1) == pytest.approx(0.4)
    assert writer.rest_after(2.0) == MAX_REST_S == 0.5  # a slow store: the lag stays bounded


async def test_a_checkpoint_batch_the_store_failed_is_written_again_with_the_latest_snapshot() -> None:
    from agent_platform._deploy.host import CheckpointWriter

    store = FakeCheckpointStore(fail=2)
    writer = CheckpointWriter(store)
    writer.submit("kept", 1, 1, lambda: {"step": 1})
    writer.submit("finished", 1, 1, lambda: {"step": 1})
    await wait_for(lambda: writer.failures >= 1)
    writer.submit("kept", 1, 2, lambda: {"step": 2})  # a newer snapshot replaces the failed one
    writer.discard("finished")  # the run ended meanwhile: its snapshot is moot
    await wait_for(lambda: "kept" in store.saved)
    assert writer.failures == 2, "each failure is counted (and logged)"
    assert store.saved == {"kept": (2, {"step": 2})}
    assert [[item[0] for item in b] for b in store.batches] == [["kept"]]


async def test_a_batch_of_runs_streams_each_result_once_within_the_units_concurrency(project: Any) -> None:
    bundle, config, root = project
    host = UnitHost(bundle, "Agent/worker", 0, 1, config)
    first = await host.run(RunRequest("b-0", "Agent/worker", {}))
    host._max_concurrency = 1
    peak = 0
    run = host.run

    async def tracked(request: RunRequest) -> Any:
        nonlocal peak
        peak = max(peak, host._in_flight + 1)
        return await run(request)

    host.run = tracked  # type: ignore[method-assign]
    requests = [RunRequest(f"b-{i}", "Agent/worker", {}) for i in range(3)]
    answered: list[int] = []
    async for chunk in host.run_batch(requests):
        assert chunk, "a chunk holds what finished"
        for index, result in chunk:
            assert not isinstance(result, BaseException)
            assert result.ok and result.run_id == requests[index].run_id
            answered.append(index)
            if index == 0:
                assert result.output == first.output, "a finished run answers with its stored result"
    assert sorted(answered) == [0, 1, 2]
    assert peak == 1, "no more runs at once than the unit's max_concurrency"
    assert effects(root) == list("abcd") * 3, "b-0 ran once"


async def test_a_run_of_a_batch_that_raised_is_answered_with_a_picklable_error(project: Any) -> None:
    import pickle

    from agent_platform._deploy.router import HandoffFailed
    from agent_platform._runstore import RunStoreUnavailable

    bundle, config, _ = project
    host = UnitHost(bundle, "Agent/worker", 0, 1, config)

    async def broken_store() -> Any:
        raise RunStoreUnavailable("postgresql://u:secret@db/x", "connection refused")

    host._run_store = broken_store  # type: ignore[method-assign]
    chunks = [chunk async for chunk in host.run_batch([RunRequest("e-1", "Agent/worker", {})])]
    [(index, error)] = [item for chunk in chunks for item in chunk]
    assert index == 0 and isinstance(error, HandoffFailed)
    assert "RunStoreUnavailable" in str(error) and "secret" not in str(error)
    assert str(pickle.loads(pickle.dumps(error))) == str(error), "it crosses Ray back to the caller"
