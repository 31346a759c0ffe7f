"""`platform validate` on http tools and template bombs: a url whose scheme, host or port a template
could produce, and resource limits a template's text breaks, are located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_platform._diagnostics import Severity
from agent_platform._validate import validate_paths

TOOL = """\
apiVersion: agents.platform/v1
kind: Tool
metadata:
  name: fetch
spec:
  description: Fetch an item.
  input_schema: {{type: object, properties: {{id: {{type: string}}, host: {{type: string}}}}}}
  http:
    method: GET
    url: "{url}"
    headers:
      Authorization: "Bearer {{{{ env.API_TOKEN }}}}"
"""


def _errors(tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    report = validate_paths([path])
    return [
        (d.location.line, d.location.column, d.message)
        for d in report.diagnostics
        if d.severity is Severity.ERROR and d.location is not None
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://{{ args.host }}/items/{{ args.id }}",
        "https://api.example.com{{ args.id }}",
        "http://127.0.0.1:{{ args.host }}/items",
    ],
)
def test_a_url_a_template_could_send_elsewhere_is_an_error_at_the_url(tmp_path: Path, url: str) -> None:
    errors = _errors(tmp_path, TOOL.format(url=url))
    assert len(errors) == 1, errors
    line, column, message = errors[0]
    assert (line, column) == (10, 10)
    assert "a template may not produce" in message


def test_a_fixed_origin_with_templated_path_and_query_is_valid(tmp_path: Path) -> None:
    url = "https://api.example.com:8443/v1/items/{{ args.id }}?expand={{ args.host }}"
    assert _errors(tmp_path, TOOL.format(url=url)) == []


AGENT = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: m}
spec: {provider: scripted, on_script_exhausted: synthesize}
---
apiVersion: agents.platform/v1
kind: Agent
metadata:
  name: a
spec:
  model: m
  instructions: |
    Research {{ inputs.topic }}.
    {% for c in 'x' * 10**6 %}{{ c }}{% endfor %}
  inputs: {type: object, required: [topic], properties: {topic: {type: string}}}
"""


def test_a_template_bomb_is_an_error_at_the_offending_text(tmp_path: Path) -> None:
    errors = _errors(tmp_path, AGENT)
    assert len(errors) == 1, errors
    line, column, message = errors[0]
    assert line == 14 and AGENT.splitlines()[13][column - 1 :].startswith("* 10**6")
    assert message == "the template would build a string of 1,000,000 characters, over the limit of 500,000"
