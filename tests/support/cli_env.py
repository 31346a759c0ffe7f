"""The environment the CLI tests run the real `platform` command in: as on a machine that never ran
Ray (an empty HOME, so no `~/.ray/auth_token`; no Ray, run-store or OpenTelemetry variables) with
a state directory of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLATFORM = str(Path(sys.executable).parent / "platform")

# What a user never sees: Ray's tracebacks and log lines ("[2026-…"), its client's messages.
RAY_TEXT = ("Traceback", "[20", "rpc_client", "task_manager", "Raylet is terminated", "gcs_client")


def isolated_env(root: Path) -> dict[str, str]:
    """The environment of the platform commands a test runs under `root` (`root/home` is made)."""
    (root / "home").mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAY_", "OTEL_", "XDG_")) and k != "PLATFORM_RUN_STORE"
    }
    env.update(HOME=str(root / "home"), PLATFORM_STATE_DIR=str(root / "state"))
    return env


def run_platform(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PLATFORM, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )
