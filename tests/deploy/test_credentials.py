"""Which environment variables a unit reads, and when a changed value counts as a rotation."""

from __future__ import annotations

from agent_platform._deploy.credentials import changed, credential_vars, fingerprints, runtime_env


def test_the_variables_a_unit_reads_are_found_wherever_the_specs_name_them() -> None:
    snapshots = [
        {"kind": "Model", "spec": {"provider": "openai", "name": "x", "api_key_env": "MY_KEY"}},
        {"kind": "Model", "spec": {"provider": "anthropic", "name": "c"}},  # the default variable
        {"kind": "Model", "spec": {"provider": "scripted"}},
        {"kind": "Tool", "spec": {"http": {"headers": {"Authorization": "Bearer {{ env.SEARCH_TOKEN }}"}}}},
        {"kind": "Memory", "spec": {"layers": [{"embedder": {"provider": "openai", "api_key_env": "EMB"}}]}},
    ]
    assert credential_vars(snapshots) == ["ANTHROPIC_API_KEY", "EMB", "MY_KEY", "SEARCH_TOKEN"]


def test_a_changed_value_is_a_rotation_and_an_unset_one_is_not() -> None:
    before = fingerprints(["A", "B"], {"A": "one", "B": "two"})
    assert changed(before, fingerprints(["A", "B"], {"A": "one", "B": "two"})) == []
    assert changed(before, fingerprints(["A", "B"], {"A": "uno", "B": "two"})) == ["A"]
    assert changed(before, fingerprints(["A", "B"], {})) == [], "a CI dry run without the keys"
    assert changed(None, fingerprints(["A"], {"A": "one"})) == ["A"], "a record from before keys were tracked"
    assert "one" not in str(before), "only fingerprints are recorded"


def test_replicas_get_the_values_of_the_applying_process() -> None:
    assert runtime_env(["A", "B"], {"A": "one", "C": "three"}) == {"env_vars": {"A": "one"}}
    assert runtime_env(["B"], {}) is None
