"""What every test shares: its own state directory.

Without one, a test that does not choose its state directory writes to `.platform` in the working
directory, the repository's: the key idempotency store there outlived the test, and the next run
of the suite replayed a stored tool result instead of calling the tool (a run id and arguments
that repeat across runs make the same key)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_state_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path_factory.mktemp("state")))
