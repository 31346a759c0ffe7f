"""What a unit's actors are built from: the spec sources themselves, not a pickled Plan.

An actor re-validates and re-compiles the bundle in its constructor (cheap: see
bench/validate_bench.py), so it holds exactly the Plan `apply` checked, with no pickled pydantic classes or plugin functions
crossing the wire. Paths are absolute: a scripted model's script and `python:` plugins are found
on every node of a single machine or of a cluster sharing the project directory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent_platform._compile.plan import Plan


class BundleError(ValueError):
    """The bundle does not validate (on a node, it must have validated where `apply` ran)."""


@dataclass(frozen=True)
class SpecBundle:
    files: tuple[tuple[str, str], ...]  # (absolute path, text)
    plugin_paths: tuple[str, ...]

    @classmethod
    def from_files(cls, files: Iterable[str | Path], plugin_paths: Sequence[str | Path]) -> SpecBundle:
        entries = []
        for file in sorted({str(Path(f).resolve()) for f in files}):
            entries.append((file, Path(file).read_text(encoding="utf-8")))
        return cls(tuple(entries), tuple(str(Path(p).resolve()) for p in plugin_paths))

    def digest(self) -> str:
        sha = hashlib.sha256()
        for path, text in self.files:
            sha.update(path.encode())
            sha.update(b"\0")
            sha.update(text.encode())
            sha.update(b"\0")
        return sha.hexdigest()[:16]

    def compile(self) -> Plan:
        from agent_platform._compile import build_output_models, compile_specs
        from agent_platform._diagnostics import Diagnostics
        from agent_platform._load import load_text
        from agent_platform._validate import ValidationOptions, validate_documents

        diagnostics = Diagnostics()
        documents = []
        for path, text in self.files:
            loaded = load_text(text, path)
            documents.extend(loaded.documents)
            diagnostics.extend(loaded.diagnostics)
        options = ValidationOptions(plugin_paths=[Path(p) for p in self.plugin_paths])
        report = validate_documents(documents, diagnostics, options)
        if report.ok:
            plan = compile_specs(report.specs)
            build_output_models(plan, report.diagnostics)
            if not report.diagnostics.has_errors:
                return plan
        errors = "; ".join(str(d) for d in report.diagnostics.sorted()[:5])
        raise BundleError(f"the deployed specs do not validate here: {errors}")
