"""Finding processes again by pid: a process that ended but was not reaped (a zombie, as the
embedded head becomes when the command that started it is gone) counts as gone, so stopping the
head does not wait out its whole grace period for a process that already exited."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from agent_platform._processes import pid_alive, process_gone


def test_a_running_process_is_not_gone_and_an_unreaped_one_is() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert pid_alive(child.pid) and not process_gone(child.pid)
        assert child.stdin is not None
        child.stdin.close()  # the child exits; nobody reaps it yet
        for _ in range(500):
            if process_gone(child.pid):
                break
            time.sleep(0.01)
        assert process_gone(child.pid)
        assert pid_alive(child.pid), "a zombie still answers signal 0: that is why process_gone exists"
    finally:
        child.wait()
    assert not pid_alive(child.pid) and process_gone(child.pid)


def test_a_pid_that_never_existed_is_gone() -> None:
    unused = max(int(p) for p in os.listdir("/proc") if p.isdigit()) + 10_000
    assert process_gone(unused)
