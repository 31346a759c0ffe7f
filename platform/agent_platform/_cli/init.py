"""`platform init [DIR]`: start a project that validates and runs offline straight away.

    DIR/
      specs/models.yaml                 Model `reasoning`: the scripted provider (a test/demo stand-in)
      specs/scripts/text-analyst.jsonl  the answers it replays
      specs/tools.yaml                  Tool `word-stats`, implemented by ...
      plugins/text_tools.py             ... a typed Python function (plugins/__init__.py beside it)
      specs/agents.yaml                 Agent `text-analyst`, using both
      inputs/text-analyst.json          an input for it
      schemas/*.json                    the JSON Schemas the specs' `$schema` comments point at

Then, in DIR: `platform validate specs/` and
`platform run text-analyst --local --input @inputs/text-analyst.json`.

Nothing is overwritten unless `--force`: when any of these files exists, nothing is written.
Commands run from DIR, because `python:` tools are looked up under the working directory.

This module is imported by every `platform` command (it registers `init` on `app`), so it imports
nothing heavy at the top: the schema generator is imported when `init` runs.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from agent_platform._cli.common import EXIT_INVALID

app = typer.Typer()


SPECS_DIR = PurePosixPath("specs")
SCHEMAS_DIR = PurePosixPath("schemas")
DOCUMENT_SCHEMA = SCHEMAS_DIR / "document.json"
AGENT_NAME = "text-analyst"
INPUT_FILE = PurePosixPath("inputs") / f"{AGENT_NAME}.json"


@dataclass(frozen=True)
class ScaffoldFile:
    """One file `init` writes: where (relative to the project directory), what, and what it is for."""

    path: PurePosixPath
    text: str
    role: str


def schema_modeline(spec_file: PurePosixPath) -> str:
    """The yaml-language-server comment that points a spec file at the document schema."""
    relative = PurePosixPath(os.path.relpath(DOCUMENT_SCHEMA, spec_file.parent))
    return f"# yaml-language-server: $schema={relative}\n"


MODELS_YAML = """\
#
# The model the agent uses, by name. `provider: scripted` is NOT a language model: it is a
# deterministic stand-in for tests, demos and offline runs. It replays the answers written in
# scripts/text-analyst.jsonl, in order, whatever the input, so this project validates and runs
# with no API key and no network. The script format (answers, usage, errors, matching, latency):
# docs/scripted-provider.md in the agent-platform sources, or
#     python -m pydoc agent_platform._runtime.models.scripted
#
# For a real model keep the name and replace the spec, for example:
#   spec:
#     provider: anthropic
#     name: claude-sonnet-4-5
#     api_key_env: ANTHROPIC_API_KEY    # read from the environment; secrets never go in YAML
#     pricing: {input_per_mtok: 3.0, output_per_mtok: 15.0}
apiVersion: agents.platform/v1
kind: Model
metadata:
  name: reasoning
  description: Offline stand-in for a strong model (scripted provider, for tests and demos).
spec:
  provider: scripted
  # JSON lines rather than YAML: every *.yaml file under specs/ is read as a spec.
  script: scripts/text-analyst.jsonl
  # When a caller has no answer left in the script, fail and say so (`synthesize` would make up
  # an answer that fits the caller's schema instead).
  on_script_exhausted: error
"""

SCRIPT_JSONL = """\
{"key": "text-analyst", "thought": "Measure the first text.", "action": {"action": "word-stats", "arguments": {"text": "Agents are loops around one probabilistic step."}}}
{"key": "text-analyst", "thought": "Now the second text.", "action": {"action": "word-stats", "arguments": {"text": "Everything else is engineering: state, retries, budgets and tracing."}}}
{"key": "text-analyst", "thought": "Text 2 has 9 words, text 1 has 7.", "action": {"action": "final_answer", "answer": {"longest": 2, "comparison": "Text 2 is the longer one, with 9 words against 7."}}}
"""

TOOLS_YAML = """\
#
# A tool implemented by a typed Python function, `module:function`. Its argument schema comes from
# the function's type hints and the `Args:` section of its docstring, and the platform checks the
# model's arguments against it before each call (add `output_schema` to check results too).
# Modules are looked up under the working directory (and $PLATFORM_PLUGIN_PATH): run `platform`
# from the project's root.
apiVersion: agents.platform/v1
kind: Tool
metadata:
  name: word-stats
spec:
  description: Count the words, sentences and characters of a text.
  python: plugins.text_tools:word_stats
  timeout: 5s
"""

AGENTS_YAML = """\
#
# An agent loop: at each step the model either calls one of the agent's tools or gives the final
# answer, which must match `output`. Run it with
#   platform run text-analyst --local --input @inputs/text-analyst.json --trace
apiVersion: agents.platform/v1
kind: Agent
metadata:
  name: text-analyst
  description: Compares the length of a few texts, measuring each with the word-stats tool.
spec:
  model: reasoning
  instructions: |
    Compare the length of the texts below. Call word-stats once for each text, then answer with
    the number of the longest text (counting from 1) and one sentence on how they compare.
    {% for text in inputs.texts %}
    Text {{ loop.index }}: {{ text }}
    {% endfor %}
  inputs:
    type: object
    additionalProperties: false
    required: [texts]
    properties:
      texts:
        type: array
        minItems: 1
        maxItems: 5
        items: {type: string, minLength: 1}
  output:
    type: object
    additionalProperties: false
    required: [longest, comparison]
    properties:
      longest:
        type: integer
        minimum: 1
        description: The number of the longest text, counting from 1.
      comparison:
        type: string
        description: One sentence on how the texts compare.
  tools: [word-stats]
  limits: {max_iterations: 8, timeout: 1m}
"""

PLUGINS_INIT_PY = '''\
"""Tool implementations for specs/ (`python: plugins.<module>:<function>`)."""
'''

# Generated into the user's project: kept within the 88 columns of ruff's and black's default.
TEXT_TOOLS_PY = '''\
"""Text tools (`python: plugins.text_tools:<function>` in specs/tools.yaml).

A tool is a plain typed function: the platform builds its argument schema from the
type hints and the `Args:` section of the docstring (both are shown to the model)
and checks the model's arguments against it before calling. The return value (here
a pydantic model) goes back to the model as JSON.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

# A sentence ends at one or more of . ! ? before white space or the end of the text.
_SENTENCE_END = re.compile(r"[.!?]+(?=\\s|$)")


class WordStats(BaseModel):
    """How long a text is."""

    words: int = Field(description="Runs of characters between white space.")
    sentences: int = Field(description="Sentences; the last may lack its stop.")
    characters: int = Field(description="Characters, white space included.")


def word_stats(text: str) -> WordStats:
    """Count the words, sentences and characters of a text.

    Args:
        text: The text to measure, verbatim.
    """
    sentences = [part for part in _SENTENCE_END.split(text) if part.strip()]
    return WordStats(
        words=len(text.split()), sentences=len(sentences), characters=len(text)
    )
'''

INPUT_JSON = """\
{
  "texts": [
    "Agents are loops around one probabilistic step.",
    "Everything else is engineering: state, retries, budgets and tracing."
  ]
}
"""


def _spec_file(name: str, body: str, role: str) -> ScaffoldFile:
    path = SPECS_DIR / name
    return ScaffoldFile(path, schema_modeline(path) + body, role)


SCAFFOLD: tuple[ScaffoldFile, ...] = (
    _spec_file("models.yaml", MODELS_YAML, "Model reasoning: scripted, a test/demo stand-in (no API calls)"),
    ScaffoldFile(
        SPECS_DIR / "scripts" / f"{AGENT_NAME}.jsonl", SCRIPT_JSONL, "the answers it replays, in order"
    ),
    _spec_file("tools.yaml", TOOLS_YAML, "Tool word-stats"),
    ScaffoldFile(PurePosixPath("plugins") / "__init__.py", PLUGINS_INIT_PY, "makes plugins/ a package"),
    ScaffoldFile(PurePosixPath("plugins") / "text_tools.py", TEXT_TOOLS_PY, "the tool's Python function"),
    _spec_file("agents.yaml", AGENTS_YAML, f"Agent {AGENT_NAME}, using both"),
    ScaffoldFile(INPUT_FILE, INPUT_JSON, "an input for it"),
)


EXISTS = "exists"


def _blocked(root: Path, relative: PurePosixPath) -> str | None:
    """Why `relative` cannot be written: `EXISTS` (only with --force), or a reason no option gets
    round (a directory on its way is a file, or the path is a directory); None when it is free."""
    for parent in reversed(relative.parents[:-1]):  # outermost first, without '.'
        if (root / parent).exists() and not (root / parent).is_dir():
            return f"{parent} is a file, not a directory"
    path = root / relative
    if path.is_dir():
        return "is a directory"
    if path.exists() or path.is_symlink():
        return EXISTS
    return None


def _fail(message: str) -> typer.Exit:
    typer.echo(f"platform init: {message}", err=True)
    return typer.Exit(EXIT_INVALID)


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="The project directory (created if missing).", show_default=True)
    ] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")] = False,
) -> None:
    """Create a project that validates and runs offline: specs (a scripted Model, a Python Tool and
    an Agent using both), the tool's plugin, an input and the JSON Schemas for editors.

    Refuses to overwrite existing files (exit 1, nothing written) unless --force."""
    from agent_platform._schema_export import render_schemas

    if directory.exists() and not directory.is_dir():
        raise _fail(f"{directory} exists and is not a directory")
    files: dict[PurePosixPath, str] = {item.path: item.text for item in SCAFFOLD}
    files.update({SCHEMAS_DIR / name: text for name, text in render_schemas().items()})

    problems = {relative: why for relative in files if (why := _blocked(directory, relative)) is not None}
    unwritable = {relative: why for relative, why in problems.items() if why != EXISTS}
    if unwritable:
        listing = "; ".join(f"{relative}: {why}" for relative, why in unwritable.items())
        raise _fail(f"cannot create the project in {directory} ({listing}); nothing was written")
    if problems and not force:
        listing = "\n".join(f"  {directory / relative}" for relative in problems)
        raise _fail(
            f"{len(problems)} file(s) already exist; nothing was written "
            f"(--force overwrites them):\n{listing}"
        )

    for relative, text in files.items():
        path = directory / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot write {path}: {exc.strerror or exc}") from None

    overwritten = f" (overwrote {len(problems)} existing file(s))" if problems else ""
    typer.echo(f"Created a project in {directory}{overwritten}:")
    width = max(len(str(item.path)) for item in SCAFFOLD)
    for item in SCAFFOLD:
        typer.echo(f"  {item.path!s:<{width}}  {item.role}")
    schemas = f"{SCHEMAS_DIR}/"
    typer.echo(f"  {schemas:<{width}}  JSON Schemas for editors (refresh: platform schema --out {schemas})")
    typer.echo("Next:")
    if directory.resolve() != Path.cwd().resolve():
        typer.echo(f"  cd {shlex.quote(str(directory))}")
    typer.echo(f"  platform validate {SPECS_DIR}/")
    typer.echo(f"  platform run {AGENT_NAME} --local --input @{INPUT_FILE} --trace")
