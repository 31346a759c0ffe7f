"""What `platform validate` says about the files it was given: which spec files the paths hold
(none, or a path that is not there, is not "valid"), and a summary line that counts the files
with errors apart from the files checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_platform._diagnostics import Diagnostic, Severity, SourceLocation
from agent_platform._load import find_spec_files
from agent_platform._render import summary
from agent_platform._validate import validate_paths

API = "apiVersion: agents.platform/v1\n"
VALID_MODEL = f"{API}kind: Model\nmetadata: {{name: m}}\nspec: {{provider: scripted, on_script_exhausted: synthesize}}\n"


# --- the summary line -----------------------------------------------------------------------------


def _error(file: str | None) -> Diagnostic:
    return Diagnostic(Severity.ERROR, "x", "wrong", SourceLocation(file) if file else None)


HINT = Diagnostic(Severity.HINT, "x", "consider", SourceLocation("a.yaml"))
WARNING = Diagnostic(Severity.WARNING, "x", "careful", SourceLocation("a.yaml"))


@pytest.mark.parametrize(
    ("diagnostics", "specs", "files", "line"),
    [
        ([_error("a.yaml")] * 3, 1, 2, "3 errors in 1 of 2 files"),
        ([_error("a.yaml"), _error("b.yaml")], 1, 2, "2 errors in 2 files"),
        ([_error("a.yaml"), _error("b.yaml")], 1, 3, "2 errors in 2 of 3 files"),
        ([_error("a.yaml")], 0, 1, "1 error in 1 file"),
        ([_error("a.yaml"), HINT, WARNING], 1, 2, "1 error in 1 of 2 files (1 warning, 1 hint)"),
        ([_error(None)], 2, 3, "1 error (3 files checked)"),
        ([_error("missing.yaml")], 0, 0, "1 error in 1 file (no spec files checked)"),
        ([_error("a.yaml"), _error("missing.yaml")], 1, 1, "2 errors in 2 files (1 file checked)"),
        ([], 1, 1, "1 spec in 1 file valid"),
        ([HINT, HINT], 3, 2, "3 specs in 2 files valid (2 hints)"),
        ([], 0, 0, "no spec files checked"),
    ],
)
def test_summary_counts_the_files_with_errors_apart_from_the_files_checked(
    diagnostics: list[Diagnostic], specs: int, files: int, line: str
) -> None:
    assert summary(diagnostics, specs, files) == line


def test_errors_in_one_of_two_files_are_summarised_as_such(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(VALID_MODEL, encoding="utf-8")
    bad = f"{API}kind: Agent\nmetadata: {{name: a}}\nspec:\n  model: m\n  instructions: Go.\n"
    bad += "  tools: [x, y]\n  limits: {max_iterations: none}\n"
    (tmp_path / "bad.yaml").write_text(bad, encoding="utf-8")
    report = validate_paths([tmp_path])
    shown = report.diagnostics.sorted()
    assert summary(shown, len(report.specs.specs), len(report.files)) == "3 errors in 1 of 2 files"


# --- which spec files the paths hold --------------------------------------------------------------


def test_spec_files_missing_paths_and_directories_without_specs(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    (specs / "sub").mkdir(parents=True)
    (specs / "b.yaml").write_text(VALID_MODEL)
    (specs / "sub" / "a.yml").write_text(VALID_MODEL)
    (specs / "notes.txt").write_text("not a spec")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("not a spec")
    named = tmp_path / "odd.spec"
    named.write_text(VALID_MODEL)

    found = find_spec_files([specs, tmp_path / "nope.yaml", docs, specs / "b.yaml", named, tmp_path / "gone"])

    assert found.files == [specs / "b.yaml", specs / "sub" / "a.yml", named]
    assert found.missing == [tmp_path / "nope.yaml", tmp_path / "gone"]
    assert found.without_specs == [docs]


@pytest.mark.parametrize("layout", ["empty", "no-yaml"])
def test_paths_without_spec_files_hold_none(tmp_path: Path, layout: str) -> None:
    if layout == "no-yaml":
        (tmp_path / "README.md").write_text("not a spec")
    found = find_spec_files([tmp_path])
    assert found.files == [] and found.missing == [] and found.without_specs == [tmp_path]
    # validating them is not "valid": no file was checked, and the summary says so
    report = validate_paths([tmp_path])
    assert report.files == []
    assert summary(report.diagnostics.sorted(), 0, 0) == "no spec files checked (1 warning)"


def test_a_missing_path_is_not_a_file_with_specs(tmp_path: Path) -> None:
    found = find_spec_files([tmp_path / "nope.yaml"])
    assert found.files == [] and found.missing == [tmp_path / "nope.yaml"]
    report = validate_paths([tmp_path / "nope.yaml"])
    assert report.files == []
    assert [(d.code, d.message) for d in report.diagnostics] == [
        ("file-not-found", "no such file or directory")
    ]
