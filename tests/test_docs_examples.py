"""The examples a reader copies: README's tour spec works on its own, the tour shows the commands
`platform init` prints, and docs/scripted-provider.md's scripts and Model are valid."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent_platform._cli import init as cli_init
from agent_platform._runtime.models.scripted import Script

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SCRIPTED_DOC = (ROOT / "docs" / "scripted-provider.md").read_text(encoding="utf-8")
PLATFORM = Path(sys.executable).parent / "platform"


def fenced_blocks(markdown: str, language: str, *, after: str = "") -> list[str]:
    """The bodies of the ```language blocks in `markdown`, from the heading `after` to the next
    heading of the same level (the whole text when `after` is empty)."""
    if after:
        start = markdown.index(after)
        level = after.split(" ", 1)[0]
        end = markdown.find(f"\n{level} ", start + len(after))
        markdown = markdown[start : end if end != -1 else None]
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)


def platform(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PLATFORM), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


# --- README: the tour ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tour_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tour's spec block alone in specs/, with the one plugin module it names."""
    (spec,) = fenced_blocks(README, "yaml", after="### 1. Write a spec")
    root = tmp_path_factory.mktemp("tour")
    (root / "specs").mkdir()
    (root / "specs" / "tour.yaml").write_text(spec, encoding="utf-8")
    assert "python: plugins.search:web_search" in spec
    (root / "plugins").mkdir()
    shutil.copy2(ROOT / "plugins" / "search.py", root / "plugins" / "search.py")
    return root


def test_the_tour_spec_validates_on_its_own(tour_project: Path) -> None:
    result = platform("validate", "specs/", cwd=tour_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 specs in 1 file valid" in result.stdout + result.stderr


def test_the_tour_spec_validates_with_its_plugin_imported(tour_project: Path) -> None:
    result = platform("validate", "--import-plugins", "specs/", cwd=tour_project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tour_agent_runs(tour_project: Path) -> None:
    result = platform("run", "researcher", "--local", "--input", '{"topic": "retries"}', cwd=tour_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["outcome"] == "completed"


def test_the_tour_starts_with_the_commands_init_prints() -> None:
    (session,) = fenced_blocks(README, "console", after="### 0. Start a project")
    assert "$ platform init myproj && cd myproj\n" in session
    assert "$ platform validate specs/\n" in session
    run = f"$ platform run {cli_init.AGENT_NAME} --local --input @{cli_init.INPUT_FILE}\n"
    assert run in session
    final = json.loads(cli_init.SCRIPT_JSONL.splitlines()[-1])["action"]["answer"]
    assert json.dumps(final, ensure_ascii=False) in session


# --- docs/scripted-provider.md -------------------------------------------------------------------


def test_the_scripted_provider_doc_is_linked_from_the_readme_and_the_scaffold() -> None:
    assert "(docs/scripted-provider.md)" in README
    assert "docs/scripted-provider.md" in cli_init.MODELS_YAML


@pytest.mark.parametrize(("language", "suffix"), [("json", ".jsonl"), ("yaml", ".yaml")])
def test_the_doc_scripts_parse(language: str, suffix: str, tmp_path: Path) -> None:
    blocks = [b for b in fenced_blocks(SCRIPTED_DOC, language) if '"key"' in b or b.startswith("responses:")]
    assert len(blocks) == 1
    path = tmp_path / f"script{suffix}"
    path.write_text(blocks[0], encoding="utf-8")
    script = Script.load(path)
    assert [len(script.entries[key]) for key in ("researcher", "ingest/summarise")] == [3, 1]


def test_the_doc_model_validates(tmp_path: Path) -> None:
    (model,) = [b for b in fenced_blocks(SCRIPTED_DOC, "yaml") if "kind: Model" in b]
    (script,) = [b for b in fenced_blocks(SCRIPTED_DOC, "json") if '"key"' in b]
    (tmp_path / "specs" / "scripts").mkdir(parents=True)
    (tmp_path / "specs" / "models.yaml").write_text(model, encoding="utf-8")
    (tmp_path / "specs" / "scripts" / "demo.jsonl").write_text(script, encoding="utf-8")
    result = platform("validate", "specs/", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
