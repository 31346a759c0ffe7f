"""The watchdog of a command connected to the embedded head: when the head dies, the command
ends at once with one line naming the fault, unless its outcome was already decided and printed
(a detached run handed over): then it ends quietly with that outcome's exit code."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

WATCHED = """
import os, sys, threading, time
from agent_platform._deploy import cluster
dead = int(sys.argv[2])
cluster.note_activity("submitting run run-0123456789abcdef of Agent/x", "run-0123456789abcdef")
print("run-0123456789abcdef", flush=True)
if sys.argv[3] == "decided":
    cluster.note_outcome(0)
head = cluster.HeadInfo(sys.argv[1], dead, "")
cluster._watch_cluster(sys.argv[1], head, threading.Event())
time.sleep(60)
sys.exit(7)  # the watchdog never ended the command
"""


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _closed_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(("decided", "code"), [("decided", 0), ("undecided", 1)])
def test_a_head_dying_after_the_outcome_was_printed_ends_the_command_quietly(
    tmp_path: Path, decided: str, code: int
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WATCHED, _closed_address(), str(_dead_pid()), decided],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PLATFORM_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == code, done.stderr
    assert done.stdout.strip() == "run-0123456789abcdef"
    if decided == "decided":
        assert done.stderr == ""
    else:
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("platform: the local Ray head at") and "run-0123456789abcdef" in line
