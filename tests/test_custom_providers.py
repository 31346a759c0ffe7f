"""Custom model providers by name: a provider the platform does not ship, registered in code
(`Runtime(providers=...)`, `load_project(providers=...)`) or named by its factory in a Model
spec's `python:`, validates and runs an agent end to end; an unknown name is a located error that
lists the known ones."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import agent_platform as ap
from agent_platform._spec.kinds import ModelSpec

SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: house}
spec: {provider: rules, name: rules-v1}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: greeter}
spec:
  model: house
  instructions: Greet {{ inputs.who }}.
  inputs: {type: object, properties: {who: {type: string}}, required: [who]}
  output: {type: object, properties: {reply: {type: string}}, required: [reply]}
"""


class RulesProvider:
    """A provider written by the user: it answers by rule, and counts what it was asked."""

    instances: list[RulesProvider] = []

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.is_scripted = False
        self.asked: list[str] = []
        self.closed = False
        RulesProvider.instances.append(self)

    async def complete(self, request: ap.ModelRequest[Any]) -> ap.ModelResult[Any]:
        self.asked.append(request.system)
        answer = {"action": {"action": "final_answer", "answer": {"reply": f"hello from {self.spec.name}"}}}
        output = request.response_model.model_validate(answer)
        return ap.ModelResult(output, ap.Usage(12, 5), 0.0, self.spec.provider, self.spec.name or "")

    async def aclose(self) -> None:
        self.closed = True


def write_specs(folder: Path, text: str = SPECS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "specs.yaml").write_text(text)
    return folder


def test_a_provider_registered_in_code_validates_and_runs_an_agent(tmp_path: Path) -> None:
    RulesProvider.instances.clear()
    providers = {"rules": RulesProvider}
    project = ap.load_project(write_specs(tmp_path / "specs"), plugin_paths=[], providers=providers)
    assert project.ok, project.errors

    async def main() -> ap.RunResult:
        async with ap.Runtime(project.plan, plugin_paths=[], providers=providers) as runtime:
            return await runtime.run("greeter", {"who": "Ada"})

    result = asyncio.run(main())
    assert result.outcome is ap.Outcome.COMPLETED, result.error
    assert result.output == {"reply": "hello from rules-v1"}
    assert result.usage.input_tokens == 12 and result.usage.output_tokens == 5
    (provider,) = RulesProvider.instances
    assert provider.spec.name == "rules-v1"
    assert len(provider.asked) == 1 and "Greet Ada." in provider.asked[0]
    assert provider.closed  # the runtime closes the providers it made


def test_an_unknown_provider_name_is_a_located_error_listing_the_known_ones(tmp_path: Path) -> None:
    project = ap.load_project(write_specs(tmp_path / "specs"), plugin_paths=[])
    assert not project.ok
    (error,) = project.errors
    assert error.startswith(f"{tmp_path / 'specs' / 'specs.yaml'}:4:18: Model/house: ")
    assert "unknown model provider 'rules'" in error
    assert "the known ones are anthropic, openai, scripted" in error
    typo = ap.load_project(
        write_specs(tmp_path / "typo", SPECS.replace("provider: rules", "provider: rulez")),
        plugin_paths=[],
        providers=["rules"],
    )
    (error,) = typo.errors
    assert "unknown model provider 'rulez' (did you mean 'rules'?)" in error
    assert "the known ones are anthropic, openai, rules, scripted" in error


def test_an_inline_model_with_an_unknown_provider_is_located_too(tmp_path: Path) -> None:
    inline = SPECS.split("---\n")[1].replace("model: house", "model: {provider: nobody}")
    project = ap.load_project(write_specs(tmp_path / "specs", inline), plugin_paths=[])
    (error,) = project.errors
    assert ":5:21: Agent/greeter: unknown model provider 'nobody'" in error


def test_the_runtime_refuses_a_provider_it_was_not_given(tmp_path: Path) -> None:
    project = ap.load_project(write_specs(tmp_path / "specs"), plugin_paths=[], providers=["rules"])

    async def main() -> ap.RunResult:
        async with ap.Runtime(project.plan, plugin_paths=[]) as runtime:
            return await runtime.run("greeter", {"who": "Ada"})

    result = asyncio.run(main())
    assert result.outcome is ap.Outcome.FAILED
    assert "unknown model provider 'rules'" in str(result.error)
    assert "register it with Runtime(providers=...)" in str(result.error)


FACTORY_MODULE = """\
from agent_platform._runtime.models.base import ModelResult, Usage


class PluginProvider:
    def __init__(self, spec):
        self.spec = spec
        self.is_scripted = False

    async def complete(self, request):
        answer = {"action": {"action": "final_answer", "answer": {"reply": f"{self.spec.name} via a plugin"}}}
        return ModelResult(request.response_model.model_validate(answer), Usage(1, 1), 0.0, "rules", "x")

    async def aclose(self):
        return None


def make_provider(spec):
    return PluginProvider(spec)
"""


def test_a_python_factory_named_in_the_spec_validates_and_runs(tmp_path: Path) -> None:
    (tmp_path / "house_models.py").write_text(FACTORY_MODULE)
    specs = SPECS.replace(
        "{provider: rules, name: rules-v1}",
        "{provider: rules, name: rules-v1, python: house_models:make_provider}",
    )
    folder = write_specs(tmp_path / "specs", specs)
    project = ap.load_project(folder, plugin_paths=[tmp_path])
    assert project.ok, project.errors

    async def main() -> ap.RunResult:
        async with ap.Runtime(project.plan, plugin_paths=[tmp_path]) as runtime:
            return await runtime.run("greeter", {"who": "Ada"})

    result = asyncio.run(main())
    assert result.outcome is ap.Outcome.COMPLETED, result.error
    assert result.output == {"reply": "rules-v1 via a plugin"}

    # `platform validate` checks the same reference, from the plugin path it is given.
    cli = [str(Path(sys.executable).with_name("platform")), "validate", str(folder), "--plugin-path"]
    assert subprocess.run([*cli, str(tmp_path)], capture_output=True, text=True).returncode == 0
    missing = subprocess.run([*cli, str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert missing.returncode == 1
    assert ":4:49: Model/house: python module 'house_models' not found" in missing.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{provider: anthropic, name: x, python: m:f}", "'python' names the factory of a custom provider"),
        ("{provider: rules, script: s.jsonl}", "'script' applies only to provider 'scripted'"),
        ("{provider: Rules}", "a provider: anthropic, openai, scripted, or a custom provider's name"),
    ],
)
def test_provider_fields_are_checked_where_they_are_written(tmp_path: Path, spec: str, message: str) -> None:
    text = SPECS.replace("{provider: rules, name: rules-v1}", spec)
    project = ap.load_project(write_specs(tmp_path / "specs", text), plugin_paths=[], providers=["rules"])
    assert any(message in error and ":4:" in error for error in project.errors), project.errors
