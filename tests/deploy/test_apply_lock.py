"""One apply at a time per deployment (issue 17, item 6).

Two `platform apply`s at once used to both create the same new replicas, and the loser printed
Ray's raw "name already taken" error. Now the second one stops with a message naming the first
(or waits for it with --lock-timeout), on the embedded head through a lock the kernel releases
and on any cluster through a lease held by the control plane."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.cli_env import PLATFORM, isolated_env

from agent_platform._deploy.apply_lock import (
    ApplyInProgress,
    Holder,
    Lease,
    LeaseKeeper,
    local_lock,
    read_holder,
)

# --- the lock and the lease themselves ------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from agent_platform._deploy.apply_lock import local_lock
with local_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold_in_child(directory: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_second_applier_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    child = _hold_in_child(tmp_path)
    try:
        with pytest.raises(ApplyInProgress) as refused, local_lock(tmp_path):
            pass
        message = str(refused.value)
        assert f"another apply is in progress (pid {child.pid}, since " in message
        assert "--lock-timeout" in message
        assert refused.value.holder is not None and refused.value.holder.pid == child.pid
    finally:
        child.kill()
        child.wait()


def test_the_lock_does_not_outlive_a_killed_applier(tmp_path: Path) -> None:
    child = _hold_in_child(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with local_lock(tmp_path):  # at once: the kernel released it with the process
        assert read_holder(tmp_path) == read_holder(tmp_path)
        holder = read_holder(tmp_path)
        assert holder is not None and holder.pid == os.getpid()


def test_a_waiting_applier_gets_the_lock_when_the_holder_finishes(tmp_path: Path) -> None:
    child = _hold_in_child(tmp_path)
    told: list[Holder | None] = []
    try:
        killer = subprocess.Popen(["sh", "-c", f"sleep 1; kill {child.pid}"])
        started = time.monotonic()
        with local_lock(tmp_path, wait=30, on_wait=told.append):
            waited = time.monotonic() - started
        killer.wait()
    finally:
        child.kill()
        child.wait()
    assert 0.5 < waited < 20
    assert len(told) == 1 and told[0] is not None and told[0].pid == child.pid


def test_the_lock_is_reentrant_within_one_process(tmp_path: Path) -> None:
    # An apply that finds the head down restarts it (which takes the lock) while holding it.
    with local_lock(tmp_path), local_lock(tmp_path, purpose="restart of the local Ray head"):
        pass
    with local_lock(tmp_path):
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_has_one_holder_until_released_or_run_out() -> None:
    clock = Clock()
    lease = Lease(clock)
    first = Holder.me().to_json()
    second = {**Holder.me().to_json(), "pid": 4242}
    assert lease.acquire(first, 30) is None
    held_by = lease.acquire(second, 30)
    assert held_by is not None and held_by["pid"] == first["pid"] and "token" not in held_by
    assert lease.acquire(first, 30) is None, "the holder may take it again"
    clock.now += 20
    assert lease.renew(first["token"], 30)
    clock.now += 20  # 40 s after taking it, but renewed 20 s ago
    assert lease.acquire(second, 30) is not None
    clock.now += 11  # the holder stopped renewing (it was killed)
    assert lease.acquire(second, 30) is None
    assert not lease.renew(first["token"], 30), "a holder whose lease ran out is told so"
    lease.release(first["token"])  # a stale release does not free someone else's lease
    assert lease.acquire(first, 30) is not None
    lease.release(second["token"])
    assert lease.acquire(first, 30) is None


def test_a_lease_keeper_refuses_then_waits() -> None:
    lease = Lease()

    def call(method: str, *args: Any) -> Any:
        return getattr(lease, method.removesuffix("_apply_lock"))(*args)

    with LeaseKeeper(call, lease_s=3) as first:
        with pytest.raises(ApplyInProgress) as refused, LeaseKeeper(call, lease_s=3):
            pass
        assert f"another apply is in progress (pid {os.getpid()}" in str(refused.value)
        time.sleep(1.5)  # renewed from its thread meanwhile
        assert not first.lost
    with LeaseKeeper(call, lease_s=3):  # released on exit
        pass


# --- two real applies at once, through the CLI ------------------------------------------------------

SPECS = textwrap.dedent(
    """\
    apiVersion: agents.platform/v1
    kind: Model
    metadata: {name: m}
    spec: {provider: scripted, on_script_exhausted: synthesize}
    ---
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {name: greeter}
    spec:
      model: m
      instructions: GREETING {{ inputs.who }}.
      inputs: {type: object, properties: {who: {type: string}}, required: [who]}
      output: {type: object, properties: {greeting: {type: string}}, required: [greeting]}
      runtime: {resources: {num_cpus: 0.1}}
    """
)
RAY_TEXT = ("already taken", "Traceback", "ray.exceptions", "[20")  # "[2026-…": Ray's own log lines

HOLD_LEASE = """
import sys, time
from agent_platform._deploy.cluster import connect
connect(sys.argv[1], "agent-platform", start=False)
import ray
from agent_platform._deploy.apply_lock import Holder
control = ray.get_actor("platform-control-plane", namespace="agent-platform")
assert ray.get(control.acquire_apply_lock.remote(Holder.me().to_json(), 30.0)) is None
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    env = isolated_env(tmp_path)
    yield tmp_path, env
    subprocess.run([PLATFORM, "down"], env=env, capture_output=True, timeout=180)


def _specs(root: Path, greeting: str) -> Path:
    folder = root / greeting.lower()
    folder.mkdir()
    (folder / "app.yaml").write_text(SPECS.replace("GREETING", greeting))
    return folder


def _apply(specs: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PLATFORM, "apply", str(specs), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _both(*applies: subprocess.Popen[str]) -> list[tuple[int, str, str, int]]:
    return [(p.wait(timeout=300), *p.communicate(), p.pid) for p in applies]


def _greeter(env: dict[str, str]) -> dict[str, Any]:
    got = subprocess.run(
        [PLATFORM, "get", "Agent/greeter", "-o", "json"], env=env, capture_output=True, text=True, timeout=180
    )
    assert got.returncode == 0, got.stderr
    rows: list[dict[str, Any]] = json.loads(got.stdout)
    return rows[0]


@pytest.mark.slow
def test_two_applies_at_once_serialise_or_name_each_other(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    # Two first applies: one head is started, not two.
    hello = _specs(root, "Hello")
    first = _both(*(_apply(hello, env, "--lock-timeout", "240") for _ in range(2)))
    assert [code for code, *_ in first] == [0, 0], first
    assert sum("Agent/greeter created" in out for _, out, _, _ in first) == 1, first
    assert any("2 unchanged" in out for _, out, _, _ in first), first
    head = json.loads((root / "state" / "ray-head.json").read_text())

    # An update from two shells at once: one applies it, the other stops, naming the first.
    changed = _specs(root, "Hi")
    winner = _apply(changed, env)
    deadline = time.monotonic() + 60
    while (read_holder(root / "state") or Holder(0, "", 0)).pid != winner.pid and time.monotonic() < deadline:
        time.sleep(0.1)
    loser = _apply(changed, env)
    (won, won_out, won_err, _), (lost, lost_out, lost_err, _) = _both(winner, loser)
    assert won == 0 and "Agent/greeter updated" in won_out, won_err
    assert lost == 1 and lost_out == "", lost_out
    assert f"platform apply: another apply is in progress (pid {winner.pid}, since " in lost_err, lost_err
    assert not any(text in lost_err for text in RAY_TEXT), lost_err
    greeter = _greeter(env)
    assert greeter["generation"] == 2 and [r["health"] for r in greeter["replicas"]] == ["ok"], greeter

    # From another machine (--address): no state-directory lock there, the control plane's lease.
    token = (root / "state" / "ray-auth-token").read_text()
    remote = {**env, "RAY_AUTH_TOKEN": token}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LEASE, head["address"]], env=remote, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = subprocess.run(
            [PLATFORM, "apply", str(_specs(root, "Hey")), "--address", head["address"]],
            env=remote,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert refused.returncode == 1, refused.stdout
        assert f"another apply is in progress (pid {holder.pid}, since " in refused.stderr, refused.stderr
        assert not any(text in refused.stderr for text in RAY_TEXT), refused.stderr
        # Killed, the holder stops renewing: its lease runs out and a waiting apply goes ahead.
        holder.kill()
        holder.wait()
        waited = subprocess.run(
            [PLATFORM, "apply", str(root / "hey"), "--address", head["address"], "--lock-timeout", "120"],
            env=remote,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert waited.returncode == 0, waited.stderr
        assert "Agent/greeter updated" in waited.stdout and "waiting for another apply" in waited.stderr
    finally:
        holder.kill()
        holder.wait()
    assert _greeter(env)["generation"] == 3
