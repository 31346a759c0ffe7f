"""Where plugins keep local state (vectors, tickets): `PLATFORM_STATE_DIR`, default `.platform/`."""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "PLATFORM_STATE_DIR"
DEFAULT_STATE_DIR = ".platform"


def state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: `override` if given, else `$PLATFORM_STATE_DIR`, else `.platform/`.

    Args:
        override: An explicit directory that wins over the environment.
    """
    if override is not None and str(override):
        return Path(override)
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)
