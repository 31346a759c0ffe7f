"""Platform faults are not tool errors: a store that goes away and comes back, a state directory
that cannot be written, a corrupted database. Each test injects the fault into a real store (a
wrapper that fails some calls of a real SQLite store, or a real file made unusable) and checks
that no side effect repeats, nothing is lost, and the model is never told "the tool failed"."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.runtime.test_tools_idempotency import spec
from typer.testing import CliRunner

from agent_platform._cli import app
from agent_platform._faults import PlatformFault, through_outage
from agent_platform._runstore import RunStatus, RunStoreUnavailable, open_run_store
from agent_platform._runstore.base import RunStore
from agent_platform._runstore.idempotency import IdempotencyStore, IdempotencyStoreUnavailable
from agent_platform._runtime.clock import FakeClock
from agent_platform._runtime.tools import SqliteIdempotencyStore, ToolExecutor, ToolRegistry


class Outage:
    """Fails the next `count` calls of the named methods with a transient fault, then recovers."""

    def __init__(self, count: int, *methods: str) -> None:
        self.left = count
        self.methods = set(methods)
        self.failed = 0

    def hit(self, method: str) -> None:
        if method in self.methods and self.left > 0:
            self.left -= 1
            self.failed += 1
            raise IdempotencyStoreUnavailable("(injected)", "connection lost", transient=True)


class FlakyIdempotencyStore(IdempotencyStore):
    """A real SQLite idempotency store behind an injected outage."""

    def __init__(self, real: SqliteIdempotencyStore, outage: Outage) -> None:
        self.real = real
        self.outage = outage

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        self.outage.hit("claim")
        return await self.real.claim(*args, **kwargs)

    async def complete(self, *args: Any, **kwargs: Any) -> Any:
        self.outage.hit("complete")
        return await self.real.complete(*args, **kwargs)

    async def fail(self, *args: Any, **kwargs: Any) -> Any:
        self.outage.hit("fail")
        return await self.real.fail(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self.real.get(*args, **kwargs)

    async def purge_expired(self, *args: Any, **kwargs: Any) -> Any:
        return await self.real.purge_expired(*args, **kwargs)

    async def aclose(self) -> None:
        await self.real.aclose()


def keyed_executor(fn: Callable[..., Any], store: IdempotencyStore) -> ToolExecutor:
    from agent_platform._compile.plan import ToolBinding

    registry = ToolRegistry(plugin_paths=[])
    registry.register(fn, name="send")
    binding = ToolBinding(
        "send",
        spec(
            side_effects=True, requires_approval=False, idempotency={"mode": "key"}, retry={"max_attempts": 3}
        ),
    )
    return ToolExecutor([binding], registry, clock=FakeClock(), idempotency_store=store)


@pytest.mark.parametrize("method", ["claim", "complete"])
async def test_a_store_outage_around_a_keyed_call_neither_repeats_nor_loses_it(
    tmp_path: Path, method: str
) -> None:
    """The measured failure: `complete` failed on a dead connection, the call was reported to the
    model as a tool error, and ran again on resume. Now the record is written through the outage
    and the call succeeds, once; a replay returns it from the store."""
    sent: list[str] = []

    def send(to: str) -> dict[str, str]:
        sent.append(to)
        return {"sent": to}

    outage = Outage(5, method)
    store = FlakyIdempotencyStore(SqliteIdempotencyStore(tmp_path / "idem.sqlite3"), outage)
    executor = keyed_executor(send, store)
    first = await executor.call("send", {"to": "a@example.org"}, run_id="run-1")
    assert first.error is None and first.output == {"sent": "a@example.org"}
    assert outage.failed == 5
    again = await executor.call("send", {"to": "a@example.org"}, run_id="run-1")  # a resume
    assert again.from_idempotency_store and sent == ["a@example.org"]
    await store.aclose()


async def test_a_store_that_cannot_be_opened_is_a_platform_fault_not_a_tool_error(tmp_path: Path) -> None:
    sent: list[str] = []

    def send(to: str) -> None:
        sent.append(to)

    blocker = tmp_path / "file"
    blocker.write_text("")
    executor = keyed_executor(send, SqliteIdempotencyStore(blocker / "idem.sqlite3"))
    with pytest.raises(IdempotencyStoreUnavailable) as caught:
        await executor.call("send", {"to": "a@example.org"}, run_id="run-1")
    assert not caught.value.transient and sent == []


async def test_a_corrupted_idempotency_file_is_a_permanent_platform_fault(tmp_path: Path) -> None:
    path = tmp_path / "idem.sqlite3"
    path.write_bytes(b"this is not a database" * 100)

    def send(to: str) -> str:
        return to

    executor = keyed_executor(send, SqliteIdempotencyStore(path))
    with pytest.raises(IdempotencyStoreUnavailable, match="not a database") as caught:
        await executor.call("send", {"to": "a@example.org"}, run_id="run-1")
    assert not caught.value.transient


async def test_through_outage_retries_transient_faults_and_raises_permanent_ones() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise RunStoreUnavailable("sqlite:///x", "database is locked")
        return "done"

    async def no_sleep(_: float) -> None:
        return None

    assert await through_outage(flaky, "test", sleep=no_sleep) == "done" and calls == 4

    async def broken() -> None:
        raise RunStoreUnavailable("sqlite:///x", "file is not a database", transient=False)

    with pytest.raises(PlatformFault):
        await through_outage(broken, "test", sleep=no_sleep)
    now = [0.0]

    async def advance(seconds: float) -> None:
        now[0] += seconds

    async def always() -> None:
        raise RunStoreUnavailable("sqlite:///x", "database is locked")

    with pytest.raises(RunStoreUnavailable):
        await through_outage(always, "test", deadline=30.0, sleep=advance, monotonic=lambda: now[0])
    assert now[0] <= 30.0


# --- a run's own writes -------------------------------------------------------------------


class FlakyRunStore:
    """A real run store whose `start` and `finish` fail the first `count` times."""

    def __init__(self, real: RunStore, count: int) -> None:
        self.real = real
        self.left = {"start": count, "finish": count}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def start(self, *args: Any, **kwargs: Any) -> Any:
        self._hit("start")
        return await self.real.start(*args, **kwargs)

    async def finish(self, *args: Any, **kwargs: Any) -> Any:
        self._hit("finish")
        return await self.real.finish(*args, **kwargs)

    def _hit(self, method: str) -> None:
        if self.left[method] > 0:
            self.left[method] -= 1
            raise RunStoreUnavailable(self.real.url, "server closed the connection unexpectedly")


SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: a}
spec:
  model: m
  instructions: Answer.
  output: {type: object, properties: {answer: {type: string}}, required: [answer]}
"""


async def test_a_run_store_outage_at_start_and_end_loses_nothing(tmp_path: Path) -> None:
    from agent_platform._compile import compile_specs
    from agent_platform._runtime.durable import DurableRunner, RunRequest
    from agent_platform._runtime.engine import Runtime
    from agent_platform._validate import validate_paths

    (tmp_path / "a.yaml").write_text(SPECS)
    plan = compile_specs(validate_paths([tmp_path / "a.yaml"]).specs)
    real = open_run_store(f"sqlite://{tmp_path / 'runs.sqlite3'}")
    store = FlakyRunStore(real, 3)
    runtime = Runtime(plan, durable=True)
    runner = DurableRunner(runtime, store, "test")  # type: ignore[arg-type]
    result = await runner.run(RunRequest("run-1", "Agent/a", {}))
    assert result.ok
    record = await real.get_run("run-1")
    assert record is not None and record.status is RunStatus.COMPLETED and record.result == result.to_json()
    assert store.left == {"start": 0, "finish": 0}
    await runtime.aclose()
    await real.close()


# --- what a person sees -------------------------------------------------------------------


def test_a_corrupted_run_store_is_a_clear_error_not_an_internal_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "runs.sqlite3").write_bytes(os.urandom(8192))
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 1, result.output
    assert "run store" in result.stderr and "not a database" in result.stderr
    assert "internal error" not in result.stderr


def test_an_idempotency_store_that_cannot_open_fails_the_run_as_a_platform_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The measured failure: every tool call became a tool error given to the model, and the run
    ended `completed`, exit 0. Now the run fails, saying what broke, and the tool never ran."""
    (tmp_path / "plug.py").write_text(
        "def send(to: str) -> dict:\n    '''Send.\n\n    Args:\n        to: Whom.\n    '''\n"
        "    open(__file__ + '.sent', 'a').write(to)\n    return {'sent': to}\n"
    )
    specs = SPECS.replace("  instructions: Answer.\n", "  instructions: Answer.\n  tools: [send]\n")
    specs = specs.replace("on_script_exhausted: synthesize}", "script: script.json}")
    specs += (
        "---\napiVersion: agents.platform/v1\nkind: Tool\nmetadata: {name: send}\n"
        "spec: {description: Send., python: 'plug:send', side_effects: true, requires_approval: false,"
        " trust: trusted, idempotency: {mode: key}}\n"
    )
    (tmp_path / "a.yaml").write_text(specs)
    script = [
        {"action": {"action": "send", "arguments": {"to": "x"}}},
        {"action": {"action": "final_answer", "answer": {"answer": "ok"}}},
    ]
    (tmp_path / "script.json").write_text(json.dumps({"responses": {"a": script}}))
    state = tmp_path / "state"
    state.mkdir()
    (state / "idempotency.sqlite3").write_bytes(b"garbage" * 2000)
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(state))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "a", "--local", "-s", "a.yaml", "-i", "{}"])
    payload = json.loads(result.stdout)
    assert result.exit_code == 1 and payload["outcome"] == "failed"
    assert payload["error"].startswith("platform fault (not the unit's): the idempotency store")
    assert payload["details"]["platform_fault"] == "IdempotencyStoreUnavailable"
    assert not (tmp_path / "plug.py.sent").exists()
    with sqlite3.connect(state / "runs.sqlite3") as db:
        assert db.execute("SELECT status FROM runstore_runs").fetchall() == [("failed",)]
