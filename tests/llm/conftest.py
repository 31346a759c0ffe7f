"""Real-model tests (`make test-llm`): a llama-cpp-python server with Gemma 3 270M, started here
from the installed `local-llm` extra (`python -m agent_platform.local_llm`); nothing is downloaded.

Opt-in, like the Weaviate contract tests: without PLATFORM_TEST_LLM=1 every test here is skipped
with the reason. The model is slow on CPU, so each case runs a few times (LLM_RUNS, default 2)
under a time bound, and the figures (time per step, tokens, completion rate) go to
LLM_REPORT (default .platform/llm/figures.json) and to the terminal."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_REASON = (
    "real-model test: run `make test-llm` (PLATFORM_TEST_LLM=1; needs the local-llm extra: "
    "llama-cpp-python and the Gemma 3 270M packages)"
)
# The research agent and what it uses, from the examples; the small cases are tests/llm/specs.
EXAMPLE_SPECS = ("research-agent.yaml", "memory.yaml", "guardrails.yaml")
MODEL_NAMES = ("reasoning", "fast")
MODELS_YAML = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {{name: {name}}}
spec:
  provider: openai
  name: gemma-3-270m
  base_url: {base_url}
  # llama-cpp-python refuses json_schema, and a forced tool call left the 270M model's answers
  # unfinished; JSON mode with the schema as a grammar keeps every answer in shape.
  structured_output: json_object_schema
  max_tokens: 512
  # Sampled, so N runs measure a completion rate instead of repeating one trajectory.
  temperature: 0.8
  timeout: 5m
  context_window: 16384
  max_reasks: 1
  retry: {{max_attempts: 2, backoff: {{initial: 1s, max: 5s}}}}
  # A local model costs nothing per token; budgets in the examples need a price to check.
  pricing: {{input_per_mtok: 0, output_per_mtok: 0}}
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PLATFORM_TEST_LLM") == "1":
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def llm_server() -> Iterator[str]:
    """The server's base URL. The GGUF is assembled once under .platform/llm (kept between runs)."""
    port = _free_port()
    log = ROOT / ".platform" / "llm" / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PLATFORM_STATE_DIR": str(ROOT / ".platform")}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent_platform.local_llm", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"the model server exited with {process.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the model server did not answer within 180s; see {log}")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def llm_specs(llm_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spec folder: the small cases, the research agent, and Models on the local server."""
    folder = tmp_path_factory.mktemp("llm-specs")
    for name in EXAMPLE_SPECS:
        shutil.copy(ROOT / "specs" / name, folder / name)
    shutil.copy(Path(__file__).parent / "specs" / "cases.yaml", folder / "cases.yaml")
    (folder / "models.yaml").write_text(
        "---\n".join(MODELS_YAML.format(name=name, base_url=llm_server) for name in MODEL_NAMES)
    )
    return folder


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llm-state")
