"""What was applied to the embedded head, kept in the state directory so that a head that died
can be started again with the same deployment.

The control plane already keeps its records (`control-plane/NAMESPACE.json`), but a record names
actors, not what to build them from. So every apply on the embedded head also writes the bundle
it applied (spec texts and plugin paths, never credentials) with the refs it deployed and the
settings its replicas got, to `applied/NAMESPACE.json`. Applies of different directories add
up, as their records do: each ref is rebuilt from the last bundle that applied it. A spec file
edited since is not read: the restore rebuilds exactly what ran.

Nothing here imports Ray."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_platform._deploy.bundle import SpecBundle
from agent_platform._runstore import default_run_store_url
from agent_platform._state_files import create_private_file, make_private_dirs

APPLIED_DIR = "applied"
CONTROL_PLANE_DIR = "control-plane"


@dataclass(frozen=True)
class AppliedBundle:
    bundle: SpecBundle
    refs: tuple[str, ...]  # the specs this apply deployed that no later apply redeployed
    approve_all: bool
    trace_file: str | None
    cwd: str | None
    applied_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "files": [list(entry) for entry in self.bundle.files],
            "plugin_paths": list(self.bundle.plugin_paths),
            "refs": list(self.refs),
            "approve_all": self.approve_all,
            "trace_file": self.trace_file,
            "cwd": self.cwd,
            "applied_at": self.applied_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AppliedBundle:
        bundle = SpecBundle(
            tuple((str(path), str(text)) for path, text in data["files"]),
            tuple(str(p) for p in data.get("plugin_paths", [])),
        )
        return cls(
            bundle,
            tuple(str(r) for r in data.get("refs", [])),
            bool(data.get("approve_all", False)),
            data.get("trace_file"),
            data.get("cwd"),
            float(data.get("applied_at", 0.0)),
        )


def applied_file(state: Path, namespace: str) -> Path:
    return state / APPLIED_DIR / f"{namespace}.json"


def control_state_file(state: Path, namespace: str) -> Path:
    """The control plane's own state file for `namespace` (see control_plane.py)."""
    return state / CONTROL_PLANE_DIR / f"{namespace}.json"


def load(state: Path, namespace: str) -> list[AppliedBundle]:
    """Oldest first. A file that cannot be read restores nothing (the caller says so)."""
    try:
        data = json.loads(applied_file(state, namespace).read_text(encoding="utf-8"))
        return [AppliedBundle.from_json(entry) for entry in data.get("bundles", [])]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError):
        return []


def record_apply(
    state: Path,
    namespace: str,
    bundle: SpecBundle,
    refs: Iterable[str],
    *,
    approve_all: bool,
    trace_file: str | None,
    cwd: str | None,
    deleted: Iterable[str] = (),
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Add an apply: its refs now come from `bundle`; older bundles keep the refs it did not touch
    (and lose `deleted`), and a bundle left with none is dropped."""
    mine = set(refs)
    gone = set(deleted) | mine
    kept = []
    for entry in load(state, namespace):
        left = tuple(r for r in entry.refs if r not in gone)
        if left:
            kept.append(
                AppliedBundle(
                    entry.bundle, left, entry.approve_all, entry.trace_file, entry.cwd, entry.applied_at
                )
            )
    kept.append(AppliedBundle(bundle, tuple(sorted(mine)), approve_all, trace_file, cwd, time.time()))
    _save(state, namespace, kept, dict(settings or load_settings(state, namespace)))


def load_settings(state: Path, namespace: str) -> dict[str, Any]:
    """The deployment-wide settings its control plane had (fixed by its first apply): a restored
    control plane gets the same run store."""
    defaults = {
        "state_dir": str(state),
        "run_store_url": str(default_run_store_url(state)),
        "trace_file": str(state / "traces.jsonl"),
    }
    try:
        data = json.loads(applied_file(state, namespace).read_text(encoding="utf-8"))
        saved = data.get("settings") or {}
    except (OSError, ValueError):
        saved = {}
    return {**defaults, **{k: str(saved[k]) for k in defaults if saved.get(k)}}


def _save(state: Path, namespace: str, entries: list[AppliedBundle], settings: dict[str, Any]) -> None:
    data = {"settings": settings, "bundles": [entry.to_json() for entry in entries]}
    _write(applied_file(state, namespace), data)


def forget(state: Path, namespace: str, refs: Iterable[str]) -> None:
    """Deleted specs: a restore must not bring them back."""
    gone = set(refs)
    entries = load(state, namespace)
    if not entries:
        return
    kept = []
    for entry in entries:
        left = tuple(r for r in entry.refs if r not in gone)
        if left:
            kept.append(
                AppliedBundle(
                    entry.bundle, left, entry.approve_all, entry.trace_file, entry.cwd, entry.applied_at
                )
            )
    _save(state, namespace, kept, load_settings(state, namespace))


def endpoint_tokens_file(state: Path, namespace: str) -> Path:
    return state / APPLIED_DIR / f"{namespace}.endpoint-tokens.json"


def record_endpoint_tokens(state: Path, namespace: str, digests: Mapping[str, str | None]) -> None:
    """The SHA-256 digests (hex) of the bearer tokens the endpoints were last deployed with (None:
    insecure), so a restored endpoint accepts the same token even when the command that restores
    it runs without the token's variable. Only the digest is kept, as Ray Serve itself keeps it,
    in a file only the user can read."""
    kept = load_endpoint_tokens(state, namespace)
    kept.update(digests)
    _write(endpoint_tokens_file(state, namespace), {"digests": kept}, sort_keys=True)


def load_endpoint_tokens(state: Path, namespace: str) -> dict[str, str | None]:
    """Endpoint name -> the digest it was last deployed with; an unreadable file knows none."""
    try:
        data = json.loads(endpoint_tokens_file(state, namespace).read_text(encoding="utf-8"))
        digests = data["digests"]
        return {str(k): (str(v) if v is not None else None) for k, v in digests.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def forget_all(state: Path) -> None:
    """`platform down`: the deployment is gone on purpose; nothing is restored."""
    folder = state / APPLIED_DIR
    if folder.is_dir():
        for path in folder.glob("*.json"):
            path.unlink(missing_ok=True)


def namespaces(state: Path) -> list[str]:
    """Every namespace the control plane keeps records for on this machine."""
    folder = state / CONTROL_PLANE_DIR
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): dict(v) for k, v in data.get("records", {}).items()}


def write_records(path: Path, records: dict[str, dict[str, Any]]) -> None:
    """In the control plane's own format, for the control plane that starts next to load."""
    _write(path, {"records": records}, sort_keys=True)


def _write(path: Path, data: dict[str, Any], *, sort_keys: bool = False) -> None:
    make_private_dirs(path.parent)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    create_private_file(tmp)
    tmp.write_text(json.dumps(data, sort_keys=sort_keys), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a crash leaves the old or the new file
