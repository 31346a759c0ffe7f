"""Side-effect-free code tools for the code-review supervisor's agents.

- `read_file` reads a file inside the workspace, with line numbers so reviews can cite lines.
- `run_linter` checks Python source statically: syntax errors (via `compile`) and a few common
  problems (via `ast` and the compiler's warnings): unused imports, bare `except:`, mutable default
  arguments, `== None`, `== True`, asserts on tuples, invalid escape sequences, long lines,
  trailing whitespace.
- `collect_tests` lists pytest-style test functions *without running anything* (executing code
  a model wrote is not side-effect-free; a sandboxed runner would be a separate tool).

Paths are resolved inside the workspace: `$PLATFORM_WORKSPACE`, default the current directory.
A path that leads outside it (`../`, absolute paths elsewhere, symlinks out) is refused: least
privilege for tools a model drives.
"""

from __future__ import annotations

import ast
import asyncio
import os
import warnings
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

WORKSPACE_ENV = "PLATFORM_WORKSPACE"
MAX_FILE_BYTES = 1024 * 1024

Severity = Literal["error", "warning"]


# --- models -----------------------------------------------------------------------------------


class FileContent(BaseModel):
    """A slice of a text file."""

    path: str = Field(description="The path relative to the workspace.")
    start_line: int
    end_line: int = Field(description="Last line included (0 for an empty file).")
    total_lines: int
    truncated: bool = Field(description="True if the file continues after end_line.")
    text: str


class LintIssue(BaseModel):
    """One problem found by the linter."""

    line: int
    column: int
    code: str = Field(
        description="E999 syntax error, F401, E722, B006, E711, E712, F631, E501, W291, "
        "W605 invalid escape sequence, W001 other compiler warning."
    )
    severity: Severity
    message: str


class LintReport(BaseModel):
    """The linter's findings, ordered by position."""

    path: str = Field(description="The file checked, or '<source>' for inline source.")
    ok: bool = Field(description="True if there is no error (warnings allowed).")
    error_count: int
    warning_count: int
    issues: list[LintIssue]


class TestCase(BaseModel):
    """A test function as pytest would collect it."""

    __test__ = False  # not a test class itself

    name: str = Field(description="'test_x' or 'TestClass::test_x'.")
    line: int
    is_async: bool
    parametrized: bool
    has_assert: bool = Field(description="Contains an assert statement or a pytest.raises/warns block.")


class TestCollection(BaseModel):
    """Test functions found in a file, without running it."""

    __test__ = False

    path: str
    count: int
    tests: list[TestCase]
    warnings: list[str] = Field(description="Likely mistakes: shadowed names, tests that assert nothing.")


# --- workspace --------------------------------------------------------------------------------


def workspace_root() -> Path:
    """The directory tools may read: `$PLATFORM_WORKSPACE`, default the current directory."""
    return Path(os.environ.get(WORKSPACE_ENV) or os.getcwd()).resolve()


def resolve_in_workspace(path: str) -> tuple[Path, str]:
    """Resolve `path` inside the workspace; refuse anything outside it.

    Args:
        path: A path relative to the workspace (or absolute, inside it).

    Returns:
        The absolute path and the path relative to the workspace.
    """
    root = workspace_root()
    full = (root / path).resolve()
    if not full.is_relative_to(root):
        raise PermissionError(f"{path!r} is outside the workspace")
    return full, full.relative_to(root).as_posix()


def _read_text(path: str) -> tuple[str, str]:
    full, relative = resolve_in_workspace(path)
    if not full.is_file():
        raise FileNotFoundError(f"no such file in the workspace: {relative}")
    size = full.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{relative} is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}")
    try:
        return full.read_bytes().decode("utf-8"), relative
    except UnicodeDecodeError:
        raise ValueError(f"{relative} is not a UTF-8 text file") from None


def _source_of(path: str | None, source: str | None) -> tuple[str, str]:
    if (path is None) == (source is None):
        raise ValueError("give exactly one of 'path' or 'source'")
    if path is not None:
        return _read_text(path)
    return source or "", "<source>"


# --- read_file --------------------------------------------------------------------------------


async def read_file(
    path: Annotated[str, Field(min_length=1)],
    start_line: Annotated[int, Field(ge=1)] = 1,
    max_lines: Annotated[int, Field(ge=1, le=2000)] = 400,
    line_numbers: bool = True,
) -> FileContent:
    """Read a text file from the workspace, optionally with line numbers.

    Args:
        path: File path relative to the workspace root (e.g. "src/app/main.py").
        start_line: First line to return (1-based).
        max_lines: Maximum number of lines to return; read further with a larger start_line.
        line_numbers: Prefix each line with its number ("  12 | code"), to cite lines in a review.

    Returns:
        The requested lines and whether the file continues.
    """
    text, relative = await asyncio.to_thread(_read_text, path)
    lines = text.splitlines()
    selected = lines[start_line - 1 : start_line - 1 + max_lines]
    end_line = start_line - 1 + len(selected) if selected else 0
    if line_numbers:
        width = len(str(max(end_line, 1)))
        selected = [f"{start_line + i:>{width}} | {line}" for i, line in enumerate(selected)]
    return FileContent(
        path=relative,
        start_line=start_line,
        end_line=end_line,
        total_lines=len(lines),
        truncated=end_line < len(lines) and bool(selected),
        text="\n".join(selected),
    )


# --- run_linter -------------------------------------------------------------------------------


def _imported_names(tree: ast.Module) -> list[tuple[str, ast.stmt]]:
    names: list[tuple[str, ast.stmt]] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.extend(((alias.asname or alias.name).split(".")[0], node) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names.extend((alias.asname or alias.name, node) for alias in node.names if alias.name != "*")
    return names


def _exported_names(tree: ast.Module) -> set[str]:
    exported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            if isinstance(node.value, ast.List | ast.Tuple):
                exported.update(
                    e.value
                    for e in node.value.elts
                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                )
    return exported


def _is_mutable_default(node: ast.expr) -> bool:
    if isinstance(node, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp | ast.SetComp):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"list", "dict", "set"}
        and not node.args
    )


def _ast_issues(tree: ast.Module) -> list[LintIssue]:
    issues: list[LintIssue] = []

    def warn(node: ast.AST, code: str, message: str) -> None:
        line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1
        issues.append(LintIssue(line=line, column=col, code=code, severity="warning", message=message))

    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    # Names used only inside string annotations ("Path") count as used too.
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            used.add(node.value)
    exported = _exported_names(tree)
    for name, stmt in _imported_names(tree):
        if name not in used and name not in exported:
            warn(stmt, "F401", f"'{name}' imported but unused")

    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is None:
            warn(node, "E722", "bare 'except:' also catches KeyboardInterrupt and SystemExit")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
                if _is_mutable_default(default):
                    warn(
                        default, "B006", f"mutable default argument in '{node.name}' is shared between calls"
                    )
        elif isinstance(node, ast.Compare):
            for op, right in zip(node.ops, node.comparators, strict=True):
                if not isinstance(op, ast.Eq | ast.NotEq) or not isinstance(right, ast.Constant):
                    continue
                if right.value is None:
                    warn(node, "E711", "comparison to None: use 'is None' / 'is not None'")
                elif isinstance(right.value, bool):
                    warn(node, "E712", f"comparison to {right.value}: use the value itself or 'is'")
        elif isinstance(node, ast.Assert) and isinstance(node.test, ast.Tuple) and node.test.elts:
            warn(node, "F631", "assert on a non-empty tuple is always true")
    return issues


def _line_issues(source: str, max_line_length: int) -> list[LintIssue]:
    issues: list[LintIssue] = []
    for number, line in enumerate(source.splitlines(), start=1):
        if len(line) > max_line_length:
            issues.append(
                LintIssue(
                    line=number,
                    column=max_line_length + 1,
                    code="E501",
                    severity="warning",
                    message=f"line too long ({len(line)} > {max_line_length} characters)",
                )
            )
        stripped = line.rstrip()
        if stripped != line:
            issues.append(
                LintIssue(
                    line=number,
                    column=len(stripped) + 1,
                    code="W291",
                    severity="warning",
                    message="trailing whitespace",
                )
            )
    return issues


def _compiler_warnings(caught: list[warnings.WarningMessage]) -> list[LintIssue]:
    issues: list[LintIssue] = []
    seen: set[tuple[int, str]] = set()
    for warning in caught:
        message = str(warning.message)
        if (warning.lineno, message) in seen:
            continue
        seen.add((warning.lineno, message))
        escape = "invalid escape sequence" in message
        if not (issubclass(warning.category, SyntaxWarning) or escape):
            continue
        if "assertion is always true" in message:
            continue  # reported as F631
        code = "W605" if escape else "W001"
        issues.append(
            LintIssue(
                line=warning.lineno,
                column=1,
                code=code,
                severity="warning",
                message=f"{warning.category.__name__}: {message}",
            )
        )
    return issues


def run_linter(
    path: str | None = None,
    source: str | None = None,
    max_line_length: Annotated[int, Field(ge=40, le=400)] = 100,
) -> LintReport:
    """Lint Python code without running it: syntax errors first, then common problems.

    Give either a workspace file `path` or inline `source` (e.g. test code you just wrote).
    A syntax error is reported alone (with its line and column), since the rest cannot be parsed.

    Args:
        path: A Python file relative to the workspace root.
        source: Python source code to check instead of a file.
        max_line_length: Lines longer than this are reported (E501).

    Returns:
        The issues, ordered by line and column; ok is false if there is a syntax error.
    """
    text, name = _source_of(path, source)
    try:
        # A full compile (never executed) also catches errors the parser alone accepts,
        # such as 'return' outside a function; its warnings are collected, not printed.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SyntaxWarning)
            warnings.simplefilter("always", DeprecationWarning)  # invalid escapes before 3.12
            compile(text, name, "exec", dont_inherit=True)
            tree = ast.parse(text, filename=name)  # warns again: duplicates are dropped below
    except SyntaxError as exc:
        issue = LintIssue(
            line=exc.lineno or 1,
            column=exc.offset or 1,
            code="E999",
            severity="error",
            message=f"SyntaxError: {exc.msg}",
        )
        return LintReport(path=name, ok=False, error_count=1, warning_count=0, issues=[issue])
    issues = sorted(
        [*_ast_issues(tree), *_line_issues(text, max_line_length), *_compiler_warnings(caught)],
        key=lambda i: (i.line, i.column, i.code),
    )
    errors = sum(1 for i in issues if i.severity == "error")
    return LintReport(
        path=name, ok=errors == 0, error_count=errors, warning_count=len(issues) - errors, issues=issues
    )


# --- collect_tests ----------------------------------------------------------------------------


def _is_parametrized(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "parametrize":
            return True
    return False


def _asserts_something(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Assert):
            return True
        if isinstance(child, ast.Call):
            func = child.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"raises", "warns", "deprecated_call"} or name.startswith("assert"):
                return True
    return False


def _collect(
    body: list[ast.stmt], prefix: str, tests: list[TestCase], warnings: list[str], path: str
) -> None:
    seen: dict[str, int] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            name = f"{prefix}{node.name}"
            if node.name in seen:
                warnings.append(
                    f"{path}:{node.lineno}: '{name}' redefines the test at line {seen[node.name]}; "
                    "pytest only runs the last one"
                )
                tests[:] = [t for t in tests if t.name != name]
            seen[node.name] = node.lineno
            case = TestCase(
                name=name,
                line=node.lineno,
                is_async=isinstance(node, ast.AsyncFunctionDef),
                parametrized=_is_parametrized(node),
                has_assert=_asserts_something(node),
            )
            if not case.has_assert:
                warnings.append(f"{path}:{node.lineno}: '{name}' asserts nothing")
            tests.append(case)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test") and not prefix:
            has_init = any(isinstance(n, ast.FunctionDef) and n.name == "__init__" for n in node.body)
            if has_init:
                warnings.append(f"{path}:{node.lineno}: class '{node.name}' has __init__; pytest skips it")
                continue
            _collect(node.body, f"{node.name}::", tests, warnings, path)


def collect_tests(path: str | None = None, source: str | None = None) -> TestCollection:
    """List the pytest tests in a file statically (nothing is imported or executed).

    Finds module-level functions named test* and test* methods of classes named Test* (without
    __init__), as pytest collects them by default, and flags likely mistakes.

    Args:
        path: A test file relative to the workspace root (e.g. "tests/test_app.py").
        source: Test source code to inspect instead of a file.

    Returns:
        The tests in file order, their count, and warnings.
    """
    text, name = _source_of(path, source)
    try:
        tree = ast.parse(text, filename=name)
    except SyntaxError as exc:
        raise ValueError(f"{name}:{exc.lineno}: SyntaxError: {exc.msg}; run the linter first") from None
    tests: list[TestCase] = []
    warnings: list[str] = []
    _collect(tree.body, "", tests, warnings, name)
    return TestCollection(path=name, count=len(tests), tests=tests, warnings=warnings)
