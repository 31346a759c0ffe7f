"""Validation of memory use: pipeline `memory` steps, an agent's `remember` list, and the
MemorySpec itself. All errors located (line:column) and found before anything runs."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent_platform._diagnostics import Severity
from agent_platform._validate import ValidationOptions, validate_paths

MEMORY = """\
apiVersion: agents.platform/v1
kind: Memory
metadata: {name: kb}
spec:
  knowledge:
    store: {backend: pgvector, collection: kb-docs}
    namespace_by: [tenant]
  episodic:
    store: {backend: pgvector}
    namespace_by: [agent, tenant]
---
apiVersion: agents.platform/v1
kind: Memory
metadata: {name: working-only}
spec:
  working: {max_tokens: 4000}
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: lookup}
spec:
  description: Looks a thing up.
  python: pl.tools:lookup
  input_schema: {type: object, properties: {q: {type: string}}, required: [q]}
"""

PLUGIN = "def lookup(q: str) -> str:\n    return q\n"


def _errors(tmp_path: Path, extra: str) -> list[str]:
    (tmp_path / "pl").mkdir(exist_ok=True)
    (tmp_path / "pl" / "__init__.py").write_text("")
    (tmp_path / "pl" / "tools.py").write_text(PLUGIN)
    spec = tmp_path / "specs.yaml"
    spec.write_text(MEMORY + "---\n" + textwrap.dedent(extra))
    report = validate_paths([spec], ValidationOptions(plugin_paths=[tmp_path]))
    return [
        f"{d.location.line}:{d.location.column}: {d.message}"
        for d in report.diagnostics.sorted()
        if d.severity is Severity.ERROR and d.location is not None
    ]


def _pipeline(memory: str, items: str = '"{{ inputs.items }}"') -> str:
    return f"""\
    apiVersion: agents.platform/v1
    kind: Pipeline
    metadata: {{name: p}}
    spec:
      inputs: {{type: object, properties: {{items: {{type: array}}}}}}
      steps:
        - name: store
          memory: {memory}
          input:
            items: {items}
    """


def test_a_memory_step_writing_a_layer_that_exists_is_valid(tmp_path: Path) -> None:
    assert _errors(tmp_path, _pipeline("{name: kb, layer: knowledge}")) == []


def test_a_memory_step_naming_an_unknown_memory_is_located(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _pipeline("{name: kbb}"))
    assert len(errors) == 1 and "unknown Memory 'kbb'" in errors[0] and "did you mean 'kb'" in errors[0]


def test_a_memory_step_on_a_missing_layer_is_located(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _pipeline("{name: working-only}"))
    assert len(errors) == 1 and "memory 'working-only' has no knowledge layer" in errors[0]


def test_a_memory_step_on_a_per_agent_layer_must_name_the_agent(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _pipeline("{name: kb, layer: episodic}"))
    assert len(errors) == 1 and "namespaced by agent" in errors[0]


def test_a_memory_step_whose_input_is_not_items_is_reported(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        """\
        apiVersion: agents.platform/v1
        kind: Pipeline
        metadata: {name: p}
        spec:
          steps:
            - name: store
              memory: {name: kb}
              input: {documents: [{content: x}]}
        """,
    )
    assert errors and any("items" in e for e in errors)


def _agent(remember: str, memory: str = "kb") -> str:
    return f"""\
    apiVersion: agents.platform/v1
    kind: Agent
    metadata: {{name: a}}
    spec:
      model: m
      instructions: Answer.
      tools: [lookup]
      memory: {memory}
      remember: {remember}
    """


def test_remember_names_one_of_the_agents_tools(tmp_path: Path) -> None:
    assert _errors(tmp_path, _agent("[lookup]")) == []
    errors = _errors(tmp_path, _agent("[search]"))
    assert any("'search' is not one of the agent's tools (lookup)" in e for e in errors)


def test_remember_needs_an_episodic_layer(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _agent("[lookup]", memory="working-only"))
    assert any("needs a memory with an episodic layer ('working-only' has none)" in e for e in errors)


@settings(max_examples=25, deadline=None)
@given(layer=st.sampled_from(["episodic", "knowledge", "semantic", ""]), extra=st.booleans())
def test_memory_step_layers_are_checked_by_the_schema_and_the_cross_checks(layer: str, extra: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        agent = ", agent: a" if extra else ""
        errors = _errors(Path(tmp), _pipeline(f"{{name: kb, layer: {layer or 'null'}{agent}}}"))
        if extra and layer in ("knowledge", "episodic"):  # a valid step naming an undeclared agent
            assert any("unknown Agent 'a'" in e for e in errors)
        if layer == "knowledge":
            assert all("layer" not in e for e in errors)
        elif layer == "episodic" and not extra:
            assert any("namespaced by agent" in e for e in errors)
        elif layer not in ("knowledge", "episodic"):
            assert errors, layer


def _memory(layer: str) -> str:
    return f"""\
    apiVersion: agents.platform/v1
    kind: Memory
    metadata: {{name: extra}}
    spec:
      knowledge: {layer}
    """


def test_a_local_embedder_must_be_an_installed_model_with_its_dimensions(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _memory("{embedder: {provider: local, model: bge-large}}"))
    assert any("no local embedder 'bge-large' (installed: all-MiniLM-L6-v2" in e for e in errors)
    errors = _errors(tmp_path, _memory("{embedder: {dimensions: 768}}"))
    assert any("all-MiniLM-L6-v2 returns 384-dimensional vectors, not 768" in e for e in errors)
    errors = _errors(tmp_path, _memory("{embedder: {base_url: 'http://x:1/v1'}}"))
    assert any("'base_url' applies to provider openai, not local" in e for e in errors)


def test_pgvector_takes_at_most_2000_dimensions(tmp_path: Path) -> None:
    big = "{embedder: {provider: openai, model: text-embedding-3-large, base_url: 'http://x:1/v1', dimensions: 3072}}"
    errors = _errors(tmp_path, _memory(big))
    assert any("pgvector indexes at most 2000 dimensions; the embedder makes 3072" in e for e in errors)
    assert _errors(tmp_path, _memory(big.replace("3072", "1536"))) == []


def test_an_api_key_variable_is_for_weaviate(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _memory("{store: {backend: pgvector, api_key_env: PG_KEY}}"))
    assert any("api_key_env applies to the weaviate backend" in e for e in errors)
    weaviate = "{store: {backend: weaviate, url: 'http://w:8080', api_key_env: WEAVIATE_API_KEY}}"
    assert _errors(tmp_path, _memory(weaviate)) == []
