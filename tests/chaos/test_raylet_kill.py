"""Chaos: the embedded head's raylet is killed (the whole head dies with it) while runs are in
flight, and `platform run --detach` commands are caught by it.

Many detached runs of an agent whose keyed tool records its side effects run on a deployment on
the embedded head. Once about a third of their calls are done, `platform run --detach` commands
are started a moment apart, and the raylet is killed as soon as one of them has connected to the
head. That one must end at once with one clear line naming what to run (its run id, if it had
one), never Ray's own text; the others submit their runs (the first of them starting the head
again and re-applying the deployment). Every run recorded must then complete, and no side effect
may happen twice. The tool records every real execution apart from its keyed effect: a call the
kill interrupted after its effect runs again on resume, and its key keeps the effect single.

`CHAOS_RUNS` sets the number of runs (40 by default, as CI runs it; `make chaos` runs more)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.chaos.common import KEYED_PLUGIN, SCRIPT, SUBMIT, effect_rows, run_statuses, worker_specs
from tests.support.cli_env import PLATFORM, RAY_TEXT, isolated_env, run_platform

from agent_platform._deploy.cluster import head_processes, read_head, running_head

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

RUNS = int(os.environ.get("CHAOS_RUNS", "40"))
CATCHER_SPACING_S = 0.75  # between `platform run --detach` commands started around the kill
AFTER_KILL = 2  # commands started once the head is dead
SETTLED_WITHIN_S = 60.0  # the aim, reported: runs not final this long after the head is back

SPECS = worker_specs(
    "raylplug",
    extra="limits: {timeout: 900s}\nruntime: {max_concurrency: 1000, resources: {num_cpus: 0.1}}\n",
).replace("on_script_exhausted: error}", "on_script_exhausted: error, latency: 2s}")  # runs in flight longer

RUN_ID = re.compile(r"\brun-[0-9a-f]{16}\b")


def start_catcher(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PLATFORM, "run", "worker", "--detach"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def connected_to(pid: int, port: int) -> bool:
    """Whether process `pid` has a TCP connection established to local `port` (the head's GCS):
    it has connected to Ray and is about to submit."""
    sockets = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    sockets.add(target[len("socket:[") : -1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                established = fields[3] == "01"
                if established and int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in sockets:
                    return True
    return False


def clean(text: str) -> bool:
    return not any(bad in text for bad in RAY_TEXT)


def test_runs_survive_the_raylet_dying_and_commands_caught_by_it_end_at_once(tmp_path: Path) -> None:
    (tmp_path / "raylplug.py").write_text(KEYED_PLUGIN)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "all.yaml").write_text(SPECS)
    (tmp_path / "specs" / "script.json").write_text(json.dumps(SCRIPT))
    env = isolated_env(tmp_path)
    state = tmp_path / "state"
    shown: list[str] = []  # everything the user was shown

    def platform(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = run_platform(*args, env=env, cwd=tmp_path, timeout=timeout)
        shown.extend((done.stdout, done.stderr))
        return done

    applied = platform("apply", "specs")
    assert applied.returncode == 0, applied.stderr
    try:
        submitted = subprocess.run(
            [sys.executable, "-c", SUBMIT, "0", str(RUNS)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert submitted.returncode == 0 and "submitted" in submitted.stdout, submitted.stderr
        runs = [f"chaos-{n:03d}" for n in range(RUNS)]
        head = read_head(state)
        assert head is not None
        raylet = [pid for pid, name in head_processes(head).items() if name == "raylet"]
        assert raylet, head_processes(head)
        gcs_port = int(head.address.rsplit(":", 1)[1])

        # `run --detach` commands, two alive at a time, until the moment comes: a third of the
        # campaign's calls are done and one of them has connected to the head (caught in the
        # middle). Those that submitted before it are ordinary runs.
        catchers: list[subprocess.Popen[str]] = []
        killed: float | None = None
        in_the_middle: list[int] = []
        next_start = time.monotonic()
        deadline = time.monotonic() + 900
        while killed is None:
            now = time.monotonic()
            if sum(c.poll() is None for c in catchers) < 2 and now >= next_start:
                catchers.append(start_catcher(env, tmp_path))
                next_start = now + CATCHER_SPACING_S
            done = len(effect_rows(tmp_path, "effects"))
            assert done < 3 * RUNS, "every run ended before a command was caught: nothing in flight"
            assert now < deadline, f"no moment to kill in 900 s ({done} effects)"
            if done >= RUNS and any(c.poll() is None and connected_to(c.pid, gcs_port) for c in catchers):
                os.kill(raylet[0], signal.SIGKILL)
                killed = time.monotonic()
                in_the_middle = [n for n, c in enumerate(catchers) if c.poll() is None]
            time.sleep(0.05)
        for _ in range(AFTER_KILL):  # these find the head dead: the first starts it again
            time.sleep(CATCHER_SPACING_S)
            catchers.append(start_catcher(env, tmp_path))
        done_before = Counter(effect_rows(tmp_path, "effects"))
        # The fault clears when a new head is up (started by the first command that needs it;
        # the re-apply of its deployment follows).
        ended: dict[int, float] = {}
        head_back: float | None = None
        deadline = time.monotonic() + 900
        while len(ended) < len(catchers):
            for n, catcher in enumerate(catchers):
                if n not in ended and catcher.poll() is not None:
                    ended[n] = time.monotonic() - killed
            if head_back is None:
                new_head = running_head(state)
                if new_head is not None and new_head.pid != head.pid:
                    head_back = time.monotonic()
            assert time.monotonic() < deadline, "a command caught by the kill never ended"
            time.sleep(0.1)
        caught: list[dict[str, Any]] = []
        for n, catcher in enumerate(catchers):
            out, err = catcher.communicate()
            shown.extend((out, err))
            caught.append(
                {"code": catcher.returncode, "out": out.strip(), "err": err.strip(), "after": ended[n]}
            )

        back = platform("runs", "-o", "json")  # the next command: restarts the head if none did
        assert back.returncode == 0, back.stderr
        cleared = head_back if head_back is not None else time.monotonic()
        interrupted = len(effect_rows(tmp_path, "started")) - sum(done_before.values())

        catcher_runs = set()
        for c in caught:
            if c["code"] == 0:
                assert RUN_ID.fullmatch(c["out"]), c
                catcher_runs.add(c["out"])
            else:  # caught by the head dying: one clear line, with the run id if it had one
                # (stdout holds the run id only if the head died in the instant between printing
                # it and the command marking its outcome decided; the message then names it too)
                assert c["code"] == 1, c
                assert c["out"] == "" or (RUN_ID.fullmatch(c["out"]) and c["out"] in c["err"]), c
                assert all(line.startswith("platform") for line in c["err"].splitlines()), c
                assert "the local Ray head" in c["err"], c
                catcher_runs.update(RUN_ID.findall(c["err"]))
        recorded = [r for r in catcher_runs if r in run_statuses(state)]
        watched = runs + recorded

        not_final_at_aim: int | None = None
        deadline = time.monotonic() + 900
        while True:
            now = run_statuses(state)
            open_runs = [r for r in watched if now.get(r) not in ("completed", "failed", "cancelled")]
            if not_final_at_aim is None and time.monotonic() - cleared >= SETTLED_WITHIN_S:
                not_final_at_aim = len(open_runs)
            if not open_runs or time.monotonic() > deadline:
                break
            time.sleep(1)
        settled_s = time.monotonic() - cleared
        if not_final_at_aim is None:
            not_final_at_aim = len(open_runs)

        final = run_statuses(state)
        effects = Counter(effect_rows(tmp_path, "effects"))
        executions = Counter(effect_rows(tmp_path, "executions"))
        repeated_executions = sum(n - 1 for n in executions.values() if n > 1)
        raw = [text for text in shown if not clean(text)]
        report = {
            "runs": RUNS,
            "run_detach_commands": len(catchers),
            "catchers_submitted": sum(1 for c in caught if c["code"] == 0),
            "catchers_ended_with_message": sum(1 for c in caught if c["code"] == 1),
            "catchers_connected_at_the_kill": len(in_the_middle),
            "caught_catchers_ended_s_after_kill": [round(c["after"], 1) for c in caught if c["code"] == 1],
            "submitting_catchers_ended_s_after_kill": [
                round(c["after"], 1) for c in caught if c["code"] == 0
            ],
            "effects_before_kill": sum(done_before.values()),
            "calls_interrupted_by_the_kill": interrupted,
            "lost": sum(1 for r in watched if r not in final),
            "not_completed": sum(1 for r in watched if final.get(r) != "completed"),
            "repeated_side_effects": sum(n - 1 for n in effects.values() if n > 1),
            "repeated_executions": repeated_executions,
            "not_final_60s_after_head_back": not_final_at_aim,
            "settled_after_head_back_s": round(settled_s, 1),
            "raw_ray_text_seen": len(raw),
        }
        print(f"\nchaos raylet-kill: {json.dumps(report)}")
        messages = [c["err"] for c in caught if c["code"] == 1]
        if messages:
            print(f"caught command said: {messages[0]}")
        assert report["lost"] == 0 and report["not_completed"] == 0, {
            r: final.get(r) for r in watched if final.get(r) != "completed"
        }
        assert report["raw_ray_text_seen"] == 0, raw[:2]
        # At least one command was connected when the head died. Whether it had already handed
        # its run over (a run id, and the run completes) or not (one clear line) is a race the
        # test does not steer; both outcomes were checked above.
        assert in_the_middle, caught
        assert repeated_executions <= interrupted, (repeated_executions, interrupted)
        assert sum(effects.values()) == 3 * len(watched)
    finally:
        run_platform("down", env=env, cwd=tmp_path, timeout=300)
