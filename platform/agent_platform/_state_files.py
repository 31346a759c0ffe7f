"""The state directory (`$PLATFORM_STATE_DIR`, else `.platform`) and how files are made in it.

What the platform keeps on a machine (run records with their inputs and results, tool-call
records, traces that may hold prompts) belongs to the user who ran it, so the files it creates
are 0600 and the folders 0700, whatever the process umask lets through: the mode is given to the
call that creates each one, so no file is ever readable by others, not even for a moment, and
the process umask is never touched (it is process-wide: other threads create files too). A
umask can only take permissions away, so it cannot widen these.

Files and folders that already exist keep their mode: one placed elsewhere on purpose (a store
shared by a group) is its owner's choice.

SQLite creates a database's `-wal`, `-shm` and `-journal` files with the database file's own
permissions, so creating the database file 0600 before SQLite opens it covers them too.

This module imports nothing of the platform: every layer can use it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

STATE_DIR_ENV = "PLATFORM_STATE_DIR"
DEFAULT_STATE_DIR = ".platform"
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def default_state_dir() -> Path:
    """`$PLATFORM_STATE_DIR`, else `.platform` (relative to the working directory)."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def make_private_dirs(path: str | os.PathLike[str]) -> None:
    """Create the folder `path` and its missing parents, each 0700. Existing ones are left as
    they are."""
    target = Path(path)
    missing: list[Path] = []
    while not target.exists():
        missing.append(target)
        if target.parent == target:
            break
        target = target.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
            # made by a concurrent process in the meantime: it is as private as this one's


def create_private_file(path: str | os.PathLike[str]) -> None:
    """Make sure the file `path` exists: a new one is created empty and 0600 (in private folders,
    see `make_private_dirs`); an existing one is left untouched."""
    target = Path(path)
    make_private_dirs(target.parent)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def open_private_append(path: str | os.PathLike[str]) -> io.FileIO:
    """`path` opened for appending bytes, unbuffered; created 0600 (in private folders) when new."""
    target = Path(path)
    make_private_dirs(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    return io.FileIO(fd, "ab", closefd=True)
