"""Property: any JSON state round-trips through save_checkpoint / load_checkpoint unchanged, on
both backends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.runstore.conftest import make_url

from agent_platform._runstore import RunRecord, open_run_store

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
states = st.dictionaries(st.text(max_size=12), json_values, max_size=8)


def test_any_json_state_round_trips(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = make_url(backend, request, tmp_path)
    loop = asyncio.new_event_loop()
    store = open_run_store(url)
    try:
        loop.run_until_complete(store.create_run(RunRecord("run-p", "Agent/p", None)))
        attempt = loop.run_until_complete(store.begin_attempt("run-p", "prop"))
        seqs = iter(range(1, 10**6))

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(state=states)
        def round_trip(state: dict[str, Any]) -> None:
            seq = next(seqs)
            loop.run_until_complete(store.save_checkpoint("run-p", attempt, seq, state))
            loaded = loop.run_until_complete(store.load_checkpoint("run-p"))
            assert loaded is not None and loaded.seq == seq
            # compare the JSON texts too: equal as values is not enough (1 == 1.0 == True)
            assert json.dumps(loaded.state, sort_keys=True) == json.dumps(state, sort_keys=True)
            assert loaded.state == state

        round_trip()
    finally:
        loop.run_until_complete(store.close())
        loop.close()
