"""What a user installs: the license, the build configuration, the pins, the wheel's contents, and
the schemas an installed platform prints or writes (generated from its models, not shipped)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from typer.testing import CliRunner

from agent_platform import __version__
from agent_platform import _schema_export as schema_export
from agent_platform._cli import app
from agent_platform._spec import KINDS

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the standard text, byte for byte.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
# The first setuptools that reads an SPDX `license` string and `license-files` (PEP 639).
SETUPTOOLS_PEP_639 = Version("77")


# --- license and build configuration --------------------------------------------------------------


def test_license_is_the_full_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256, "LICENSE is not the standard Apache-2.0 text"


def test_license_metadata_is_an_spdx_expression_with_its_file() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    # PEP 639: a license expression replaces license classifiers; setuptools rejects both together.
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]


def test_build_requires_a_setuptools_that_understands_the_license_fields() -> None:
    requirements = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    (setuptools,) = [r for r in requirements if r.name == "setuptools"]
    assert SETUPTOOLS_PEP_639 in setuptools.specifier
    assert Version("76.1") not in setuptools.specifier, "setuptools < 77 warns or fails on the license"


def _constraints() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: not a pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _declared_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    requirements = [Requirement(r) for r in [*project["dependencies"], *extras]]
    # `all` names the other extras of this package itself: nothing to pin.
    return [r for r in requirements if canonicalize_name(r.name) != canonicalize_name(project["name"])]


@pytest.mark.parametrize("requirement", _declared_requirements(), ids=str)
def test_constraints_pin_every_dependency_within_its_lower_bound(requirement: Requirement) -> None:
    """`make setup` installs with `-c constraints.txt`: every dependency needs a pin there, and the
    pin must satisfy pyproject's range, or the install fails (or the lower bound is untested)."""
    pins = _constraints()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"constraints.txt has no pin for {requirement.name}"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"constraints.txt pins {requirement.name}=={pins[name]}, outside pyproject's {requirement}"
    )
    for extra in requirement.extras:  # e.g. psycopg[binary] -> psycopg-binary, pinned alike
        if f"{name}-{extra}" in pins:
            assert pins[f"{name}-{extra}"] == pins[name], f"{name}[{extra}] pinned apart from {name}"


# --- the schemas of an installed platform ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "filename"),
    [
        ("Agent", "agent.json"),
        ("agent", "agent.json"),
        ("agent.json", "agent.json"),
        ("Supervisor", "supervisor.json"),
        ("document", "document.json"),
        ("Document.json", "document.json"),
    ],
)
def test_schema_names_as_users_type_them(name: str, filename: str) -> None:
    assert schema_export.schema_file_for(name) == filename


def test_every_kind_and_the_document_schema_can_be_rendered_alone() -> None:
    rendered = schema_export.render_schemas()
    assert sorted(f"{name}.json" for name in schema_export.schema_names()) == sorted(rendered)
    for kind in KINDS:
        assert schema_export.render_schema(kind) == rendered[schema_export.schema_filename(kind)]
    assert schema_export.render_schema("document") == rendered[schema_export.DOCUMENT_SCHEMA_FILE]


def test_an_unknown_schema_name_lists_the_choices() -> None:
    with pytest.raises(schema_export.UnknownSchema) as caught:
        schema_export.render_schema("agnet")
    message = str(caught.value)
    assert "did you mean 'agent'?" in message
    assert all(kind in message for kind in KINDS) and "'document'" in message


def test_schema_print_writes_one_schema_to_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["schema", "--print", "Tool"])
    assert result.exit_code == 0, result.output
    assert result.stdout == schema_export.render_schema("tool")
    document = runner.invoke(app, ["schema", "--print", "document"])
    assert document.exit_code == 0
    assert json.loads(document.stdout)["$id"] == schema_export.schema_id("document.json")
    assert not list(tmp_path.iterdir()), "--print wrote files"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--print", "agnet"], "no schema named 'agnet' (did you mean 'agent'?)"),
        (["--print", "agent", "--check"], "give --print or --check, not both"),
    ],
)
def test_schema_print_usage_errors(
    args: list[str], reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["schema", *args])
    assert result.exit_code == 2, result.output
    # Usage errors come in a box that wraps lines: compare the words.
    assert reason in " ".join(result.output.replace("│", " ").split())


def test_schema_without_out_still_writes_to_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    written = {path.name: path.read_text(encoding="utf-8") for path in (tmp_path / "schemas").iterdir()}
    assert written == schema_export.render_schemas()


# --- the wheel -------------------------------------------------------------------------------------

# What the build needs from the repository; the build runs on a copy, so it leaves no build/ or
# egg-info behind in the work tree and cannot pick up a stale build/lib from an earlier build.
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "platform")


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the wheel, the build's output) built by pip as a user's pip would build it (isolated)."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("wheel")
    # Byte-compiling off makes setuptools print a warning of its own that says nothing about us.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps", "--wheel-dir", str(out)]
    result = subprocess.run(
        [*pip_wheel, str(source)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    (wheel,) = out.glob("agent_platform-*.whl")
    return wheel, log


@pytest.mark.slow
def test_wheel_builds_without_deprecation_or_warnings(built_wheel: tuple[Path, str]) -> None:
    _, log = built_wheel
    suspicious = [line for line in log.splitlines() if re.search(r"deprecat|warning", line, re.IGNORECASE)]
    assert not suspicious, "\n".join(suspicious)


@pytest.mark.slow
def test_wheel_contents(built_wheel: tuple[Path, str]) -> None:
    wheel, _ = built_wheel
    dist_info = f"agent_platform-{__version__}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        top_level = archive.read(f"{dist_info}/top_level.txt").decode().split()
        license_text = archive.read(f"{dist_info}/licenses/LICENSE")
    required = {
        "agent_platform/py.typed",
        "agent_platform/_memory/data/all-MiniLM-L6-v2.tokenizer.json",
        "agent_platform/_memory/data/NOTICE",
        "agent_platform/_cli/init.py",
        "agent_platform/_schema_export.py",
    }
    assert required <= names, f"missing from the wheel: {sorted(required - names)}"
    assert hashlib.sha256(license_text).hexdigest() == APACHE_2_SHA256
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
    assert re.search(r"^platform = agent_platform\._cli:main$", entry_points, re.MULTILINE)
    assert top_level == ["agent_platform"], "the repository's plugins/ or tests/ leaked into the wheel"
    # The JSON Schemas are generated from the installed models when asked, never shipped: a copy
    # could disagree with the validator it came with.
    shipped_json = sorted(n for n in names if n.endswith(".json") and "/_memory/data/" not in n)
    assert shipped_json == []


@pytest.mark.slow
def test_the_wheel_alone_writes_schemas_and_a_project(built_wheel: tuple[Path, str], tmp_path: Path) -> None:
    """The wheel's own modules (imported from the wheel file, with this environment's
    dependencies) write the same schemas as this repository's and a project that validates."""
    wheel, _ = built_wheel
    env = {**os.environ, "PYTHONPATH": str(wheel)}
    command = [sys.executable, "-c", "from agent_platform._cli import main; main()"]
    where = subprocess.run(
        [sys.executable, "-c", "import agent_platform; print(agent_platform.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert where.stdout.strip().startswith(str(wheel)), where.stdout

    written = subprocess.run(
        [*command, "schema", "--out", "schemas"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert written.returncode == 0, written.stderr
    for checked_in in (ROOT / "schemas").glob("*.json"):
        generated = tmp_path / "schemas" / checked_in.name
        assert generated.read_text(encoding="utf-8") == checked_in.read_text(encoding="utf-8")

    init = subprocess.run([*command, "init", "proj"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    valid = subprocess.run(
        [*command, "validate", "specs/"], cwd=tmp_path / "proj", env=env, capture_output=True, text=True
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr


# --- installs sized to the job ----------------------------------------------------------------------


def _site_packages_mb(venv: Path) -> float:
    (site,) = venv.glob("lib/python*/site-packages")
    return sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 2**20


@pytest.mark.slow
def test_the_core_install_validates_specs_and_names_the_extra_a_run_needs(
    built_wheel: tuple[Path, str], tmp_path: Path
) -> None:
    """`pip install agent-platform` (no extra) in a fresh venv: `validate`, `plan` and `schema` work
    on specs/; `run --local` says it needs the 'run' extra. Ray, the SDKs, OpenTelemetry and the
    memory stack are not installed."""
    wheel, _ = built_wheel
    venv = tmp_path / "core"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "-c",
        str(ROOT / "constraints.txt"),
    ]
    installed = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    platform = str(venv / "bin" / "platform")
    env = {**os.environ, "PLATFORM_STATE_DIR": str(tmp_path / "state")}
    env.pop("PYTHONPATH", None)
    for command in (["validate", "specs/"], ["plan", "specs/"], ["schema", "--out", str(tmp_path / "s")]):
        done = subprocess.run([platform, *command], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    run = subprocess.run(
        [platform, "run", "researcher", "--local", "--input", '{"topic": "retries"}'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "pip install 'agent-platform[run]'" in run.stderr, run.stderr
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    for heavy in ("ray", "anthropic", "openai", "opentelemetry", "onnxruntime", "psycopg", "weaviate"):
        assert f"\n{heavy}" not in f"\n{freeze}", f"{heavy} is in the core install"
    print(f"\ncore install: {_site_packages_mb(venv):.0f} MB of site-packages")
