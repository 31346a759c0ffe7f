"""The layers follow the data: a lower layer never imports a higher one
(`python -m agent_platform._devtools.layers` prints the graph)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent_platform._devtools import layers

ROOT = Path(layers.__file__).resolve().parents[1]


def test_no_lower_layer_imports_a_higher_one_beyond_the_known_debt() -> None:
    up = layers.upward(layers.edges(ROOT))
    new = sorted(
        f"{e.module}:{e.line} ({e.source}) imports {e.imported} ({e.target})"
        for e in up
        if (e.module, e.imported) not in layers.KNOWN_UPWARD
    )
    assert new == [], "\n".join(new)


def test_no_upward_import_is_left_as_known_debt() -> None:
    assert frozenset() == layers.KNOWN_UPWARD
    assert layers.upward(layers.edges(ROOT)) == []


def test_code_both_validate_and_the_runtime_use_sits_below_them() -> None:
    # Tool signatures (validate --import-plugins, the registry), policies and MCP locks
    # (validate, compile, the runtime): each in the lowest layer that uses it.
    assert layers.layer_of("agent_platform._tool_functions") == "base"
    assert layers.layer_of("agent_platform._spec.policy") == "spec"
    assert layers.layer_of("agent_platform._spec.mcp_lock") == "spec"


def test_every_module_has_a_layer_and_the_tool_runs() -> None:
    assert layers.layer_of("agent_platform._runstore.sqlite") == "durability"
    assert layers.layer_of("agent_platform._runtime.tools.mcp") == "runtime"
    assert layers.layer_of("agent_platform._cli.runs") == "interface"
    assert layers.layer_of("agent_platform") == "base"
    done = subprocess.run(
        [sys.executable, "-m", "agent_platform._devtools.layers"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "durability  -> base" in done.stdout
    assert "upward imports: 0 (0 not known)" in done.stdout
