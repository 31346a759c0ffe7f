"""The credentials a deployed unit reads from its environment, and how a rotation reaches it.

A Ray actor inherits the environment of the process that started the raylet, not of the one that
runs `platform apply`: a key rotated in the shell would never reach the replicas, and runs would
fail with 401 until `platform down`. So `apply` passes each unit the variables its specs name
(`api_key_env`, the providers' default key variables, `{{ env.X }}` in tool templates) as the
replicas' `runtime_env`, taken from its own environment, and records a fingerprint of each value.
When a value differs from the recorded one, the unit is updated (its replicas replaced) and the
apply output says which variable changed. Values never leave this module except to Ray; only
their fingerprints are stored."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_KEY_VARS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
_ENV_REFERENCE = re.compile(r"\benv\.([A-Za-z_][A-Za-z0-9_]*)")


def credential_vars(snapshots: Iterable[Mapping[str, Any]]) -> list[str]:
    """The environment variables the specs (their snapshots, as deployed) read at run time."""
    found: set[str] = set()
    stack: list[Any] = list(snapshots)
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            named = value.get("api_key_env")
            if isinstance(named, str) and named:
                found.add(named)
            elif value.get("provider") in DEFAULT_KEY_VARS and "api_key_env" not in value:
                found.add(DEFAULT_KEY_VARS[str(value["provider"])])
            # An McpServer's: a stdio server's `env` (its variables, each read from a named one) and
            # an HTTP server's headers (`{env: NAME, prefix: ...}`).
            passed = value.get("env")
            if "command" in value and isinstance(passed, Mapping):
                found.update(v for v in passed.values() if isinstance(v, str))
            elif isinstance(passed, str) and set(value) <= {"env", "prefix"}:
                found.add(passed)
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, str) and "env." in value:
            found.update(_ENV_REFERENCE.findall(value))
    return sorted(found)


def fingerprint(value: str) -> str:
    """A value's fingerprint: enough to notice a change, useless to recover a (high-entropy) key."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def fingerprints(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The fingerprint of each variable that is set in `environ`."""
    return {name: fingerprint(environ[name]) for name in names if environ.get(name)}


def changed(recorded: Mapping[str, str] | None, current: Mapping[str, str]) -> list[str]:
    """Variables whose value differs from the recorded one. A variable unset here is not a change
    (a CI dry run without the keys must not report every unit as changed)."""
    before = recorded or {}
    return sorted(name for name, print_ in current.items() if before.get(name) != print_)


def runtime_env(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The `runtime_env` that hands the replicas the current values (None when there are none)."""
    values = {name: environ[name] for name in names if environ.get(name)}
    return {"env_vars": values} if values else None
