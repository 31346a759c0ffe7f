"""Property: whatever a user does to a valid spec set, `validate` answers with located, readable
diagnostics (never an exception), and a set it calls valid compiles.

A valid set covering every kind is parsed once; hypothesis then mutates the documents (drops,
copies, renames and retypes keys and values, swaps list items, inserts unknown keys and deeply
nested garbage, duplicates keys in the text, drops whole documents) and the result is written to
a file and validated."""

from __future__ import annotations

import copy
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from agent_platform._compile import build_output_models, compile_specs
from agent_platform._diagnostics import Severity
from agent_platform._load import load_text
from agent_platform._validate import ValidationOptions, validate_paths

VALID_SPECS = """\
apiVersion: agents.platform/v1
kind: Model
metadata: {name: fast, description: A scripted model for tests.}
spec:
  provider: scripted
  on_script_exhausted: synthesize
  context_window: 100000
---
apiVersion: agents.platform/v1
kind: Tool
metadata: {name: search}
spec:
  description: Search the corpus.
  python: tools:search
  input_schema:
    type: object
    required: [query]
    properties:
      query: {type: string}
  output_schema:
    type: object
    required: [hits]
    properties:
      hits: {type: array, items: {type: string}}
  timeout: 10s
  retry: {max_attempts: 2, backoff: {initial: 100ms, max: 1s}}
  idempotency: {mode: cache, ttl: 5m}
  guardrails: [injection]
---
apiVersion: agents.platform/v1
kind: Memory
metadata: {name: mem}
spec:
  working:
    max_tokens: 4000
    compaction: {model: fast, trigger_ratio: 0.8, target_ratio: 0.5}
  episodic:
    store: {backend: pgvector}
    top_k: 3
---
apiVersion: agents.platform/v1
kind: Guardrail
metadata: {name: injection}
spec:
  type: prompt_injection
  applies_to: [tool_output]
  action: redact
  patterns: ['(?i)ignore previous']
---
apiVersion: agents.platform/v1
kind: Guardrail
metadata: {name: budget}
spec: {type: budget, max_total_tokens: 10000, max_tool_calls: 5}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: helper}
spec:
  model: fast
  instructions: |
    Answer the question:
    {{ inputs.question }}
    {% if inputs.detail %}Be thorough.{% endif %}
  inputs:
    type: object
    required: [question]
    properties:
      question: {type: string}
      detail: {type: boolean, default: false}
  output:
    type: object
    required: [answer, confidence]
    properties:
      answer: {type: string}
      confidence: {type: number, minimum: 0, maximum: 1}
  tools: [search]
  memory: mem
  guardrails: [injection, budget]
  limits: {max_iterations: 5, timeout: 60s}
  runtime:
    replicas: 2
    resources: {num_cpus: 0.5, memory: 512Mi}
---
apiVersion: agents.platform/v1
kind: Agent
metadata: {name: lead}
spec:
  model: fast
  instructions: "Coordinate the work on {{ inputs.topic }}."
  inputs:
    type: object
    required: [topic]
    properties:
      topic: {type: string}
  delegates: [helper]
  runtime: {placement: pack}
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {name: batch}
spec:
  inputs:
    type: object
    required: [queries]
    properties:
      queries: {type: array, items: {type: string}}
  steps:
    - name: fan
      tool: search
      map: {over: '{{ inputs.queries }}', as: q, concurrency: 2}
      input: {query: '{{ q }}'}
    - name: summarize
      llm:
        model: fast
        prompt: |
          Summarise these hits:
          {{ steps.fan.output }}
      output:
        type: object
        required: [summary]
        properties:
          summary: {type: string}
  returns: '{{ steps.summarize.output }}'
  timeout: 5m
---
apiVersion: agents.platform/v1
kind: Supervisor
metadata: {name: desk}
spec:
  routes:
    ask: {agent: lead, priority_boost: 2}
    bulk: {pipeline: batch, timeout: 10m}
  concurrency: 2
  distribution: spread
"""

PLUGIN = "def search(query: str) -> dict:\n    return {'hits': []}\n"

_loaded = load_text(VALID_SPECS, "valid.yaml")
assert not _loaded.diagnostics.items, [str(d) for d in _loaded.diagnostics]
BASE_DOCS: list[Any] = [d.data for d in _loaded.documents]
NAMES = sorted({d["metadata"]["name"] for d in BASE_DOCS})


class _Dumper(yaml.SafeDumper):
    """safe_dump, but multi-line strings as block scalars (as people write templates)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=False)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="validate-props-") as name:
        root = Path(name)
        (root / "tools.py").write_text(PLUGIN)
        yield root


def validation_options(root: Path) -> ValidationOptions:
    return ValidationOptions(plugin_paths=[root])


# --- mutations --------------------------------------------------------------------------------

PathT = tuple[str | int, ...]


def _walk(node: Any, prefix: PathT = ()) -> Iterator[tuple[PathT, Any]]:
    yield prefix, node
    if isinstance(node, dict):
        for key, sub in list(node.items()):
            yield from _walk(sub, (*prefix, key))
    elif isinstance(node, list):
        for index, sub in enumerate(node):
            yield from _walk(sub, (*prefix, index))


def _get(root: Any, path: PathT) -> Any:
    for part in path:
        root = root[part]
    return root


# Keys never contain a line break: messages quote unknown keys verbatim, so a key with a newline
# makes a two-line message (a reported bug, pinned by
# test_user_text_with_a_newline_is_escaped_in_messages); such examples would only be discarded.
_key_chars = st.characters(blacklist_characters="\n\r", blacklist_categories=["Cs"])


def _key_text(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(_key_chars, min_size=min_size, max_size=max_size)


_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(NAMES)
)
_garbage = st.recursive(
    _leaf,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_key_text(8), children, max_size=3),
    max_leaves=40,
)
_deep_garbage = st.integers(min_value=5, max_value=40).flatmap(
    lambda depth: _leaf.map(lambda leaf: _nest(leaf, depth))
)


# Template-ish text: Jinja2 delimiters, names the scopes know, filters, line breaks.
_TEMPLATE_BITS = [
    "{{", "}}", "{%", "%}", "{#", "#}", " ", "inputs", "steps", "fan", "summarize", "output", ".",
    "q", "question", "|", "join", "upper", "nope", "(", ")", "'", "if ", "endif", "for x in ", "endfor",
    "[", "]", "0", "\n", "loop.index", "-", "hits",
]  # fmt: skip
_template_text = st.lists(st.sampled_from(_TEMPLATE_BITS), max_size=16).map("".join)


def _nest(leaf: Any, depth: int) -> Any:
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"x": leaf}
    return leaf


def _retyped(value: Any) -> st.SearchStrategy[Any]:
    options: list[st.SearchStrategy[Any]] = []
    if not isinstance(value, str):
        options.append(st.text(max_size=10) | st.sampled_from(["5", "true", "off", "10s", "fast"]))
    if not isinstance(value, int) or isinstance(value, bool):
        options.append(st.integers(min_value=-5, max_value=10**6))
    if not isinstance(value, bool):
        options.append(st.booleans())
    if not isinstance(value, float):
        options.append(st.floats(allow_nan=False, allow_infinity=False))
    if not isinstance(value, list):
        options.append(st.lists(_leaf, max_size=3))
    if not isinstance(value, dict):
        options.append(st.dictionaries(_key_text(6), _leaf, max_size=3))
    if value is not None:
        options.append(st.none())
    return st.one_of(options)


def _typo(word: str) -> st.SearchStrategy[str]:
    n = len(word)
    options: list[st.SearchStrategy[str]] = [
        _key_text(1, min_size=1).map(lambda c: word + c),
        st.just(word.upper()),
        st.just(word + "s"),
        st.just(word.replace("_", "-") if "_" in word else word.replace("-", "_")),
    ]
    if n >= 1:
        options.append(st.integers(0, n - 1).map(lambda i: word[:i] + word[i + 1 :]))
    if n >= 2:
        options.append(st.integers(0, n - 2).map(lambda i: word[:i] + word[i + 1] + word[i] + word[i + 2 :]))
    return st.one_of(options)


OPS = (
    "drop_key",
    "copy_key",
    "retype",
    "rename_key",
    "rename_value",
    "swap_items",
    "unknown_key",
    "garbage",
    "deep_garbage",
    "drop_document",
)


def _mutate(data: st.DataObject, docs: list[Any]) -> str:
    """Apply one mutation chosen by hypothesis; returns a description for failure reports."""
    op = data.draw(st.sampled_from(OPS), label="op")
    if op == "drop_document":
        if len(docs) <= 1:
            return "noop"
        index = data.draw(st.integers(0, len(docs) - 1), label="doc")
        docs.pop(index)
        return f"drop document {index}"
    index = data.draw(st.integers(0, len(docs) - 1), label="doc")
    root = docs[index]
    nodes = list(_walk(root))
    entries = [p for p, _ in nodes if p and isinstance(p[-1], str)]
    dicts = [p for p, v in nodes if isinstance(v, dict)]
    lists = [p for p, v in nodes if isinstance(v, list) and len(v) >= 2]
    strings = [p for p, v in nodes if isinstance(v, str)]
    children = [p for p, _ in nodes if p]

    def replace(path: PathT, value: Any) -> None:
        if not path:
            docs[index] = value
        else:
            _get(root, path[:-1])[path[-1]] = value

    if op == "drop_key" and entries:
        path = data.draw(st.sampled_from(entries), label="path")
        del _get(root, path[:-1])[path[-1]]
        return f"drop {path}"
    if op == "copy_key" and entries and dicts:
        path = data.draw(st.sampled_from(entries), label="path")
        target = data.draw(st.sampled_from(dicts), label="target")
        dest = _get(root, target)
        dest[path[-1]] = copy.deepcopy(_get(root, path))
        return f"copy {path} into {target}"
    if op == "retype":
        path = data.draw(st.sampled_from([(), *children]), label="path")
        value = data.draw(_retyped(_get(root, path)), label="value")
        replace(path, value)
        return f"retype {path} -> {value!r}"
    if op == "rename_key" and entries:
        path = data.draw(st.sampled_from(entries), label="path")
        parent = _get(root, path[:-1])
        key = str(path[-1])
        new = data.draw(_typo(key), label="new key")
        if new in parent:
            return "noop"
        # keep the order of keys, so the typo sits where the original was
        items = [(new if k == key else k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)
        return f"rename key {path} -> {new!r}"
    if op == "rename_value" and strings:
        path = data.draw(st.sampled_from(strings), label="path")
        old = _get(root, path)
        new = data.draw(
            _typo(old) | st.sampled_from(NAMES) | st.text(max_size=10) | _template_text, label="new value"
        )
        replace(path, new)
        return f"rename value {path} -> {new!r}"
    if op == "swap_items" and lists:
        path = data.draw(st.sampled_from(lists), label="path")
        items = _get(root, path)
        i = data.draw(st.integers(0, len(items) - 1), label="i")
        j = data.draw(st.integers(0, len(items) - 1), label="j")
        items[i], items[j] = items[j], items[i]
        return f"swap {path}[{i}] <-> [{j}]"
    if op == "unknown_key" and dicts:
        path = data.draw(st.sampled_from(dicts), label="path")
        key = data.draw(
            _key_text(12) | st.sampled_from(["spec", "kind", "nmae", "tool", "agent", "as", "schema"]),
            label="key",
        )
        value = data.draw(_garbage, label="value")
        _get(root, path)[key] = value
        return f"insert {key!r} at {path}"
    if op in ("garbage", "deep_garbage") and children:
        path = data.draw(st.sampled_from(children), label="path")
        value = data.draw(_garbage if op == "garbage" else _deep_garbage, label="value")
        replace(path, value)
        return f"{op} at {path}"
    return "noop"


def _text_of(data: st.DataObject, docs: list[Any]) -> str:
    parts = [_dump(doc) for doc in docs]
    # A duplicate key cannot be produced through yaml.dump: add one to the text.
    if parts and data.draw(st.integers(0, 9), label="duplicate key?") == 0:
        index = data.draw(st.integers(0, len(parts) - 1), label="dup doc")
        doc = docs[index]
        if isinstance(doc, dict) and doc:
            key = data.draw(st.sampled_from(list(doc)), label="dup key")
            if isinstance(key, str) and key.isidentifier():
                parts[index] += f"{key}: duplicate\n"
    return "---\n".join(parts)


# --- checks -----------------------------------------------------------------------------------


# Bugs this test found, each reported and pinned by an xfail(strict) test below. Inputs that hit
# one are discarded here (so the property keeps testing everything else); remove an entry when
# its xfail test starts passing.
KNOWN_BUGS: tuple[tuple[type[BaseException], str], ...] = ()  # none open


def _known_bug(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return any(isinstance(exc, kind) and frames[-1].name == where for kind, where in KNOWN_BUGS)


def _strings_with_breaks(node: Any) -> set[str]:
    found: set[str] = set()
    for path, value in _walk(node):
        for text in (value, path[-1] if path else None):
            if isinstance(text, str) and ("\n" in text or "\r" in text):
                found.add(text)
    return found


def _check_one_line(message: str, user_texts: set[str]) -> None:
    if "\n" not in message and "\r" not in message:
        return
    quoted_removed = message
    for text in sorted(user_texts, key=len, reverse=True):
        quoted_removed = quoted_removed.replace(f"'{text}'", "'...'")
    if "\n" not in quoted_removed and "\r" not in quoted_removed:
        # Known bug: a message quotes the user's text verbatim
        # (test_user_text_with_a_newline_is_escaped_in_messages); discard the example.
        reject()
    raise AssertionError(f"message is not one line: {message!r}")


def _check_report(path: Path, text: str, root: Path, docs: Any = None) -> list[str]:
    user_texts = _strings_with_breaks(docs)
    try:
        report = validate_paths([str(path)], validation_options(root))
    except Exception as exc:
        if _known_bug(exc):
            reject()
        raise
    line_count = text.count("\n") + 1
    messages = []
    for d in report.diagnostics:
        loc = d.location
        assert loc is not None, d
        assert loc.file == str(path), d
        assert 1 <= loc.line <= line_count, (str(d), text)
        assert loc.column >= 1, d
        assert d.message, d
        _check_one_line(d.message, user_texts)
        assert "Traceback" not in d.message, d
        assert "For further information visit" not in d.message, d
        assert "errors.pydantic.dev" not in d.message, d
        messages.append(str(d))
    if report.ok:
        plan = compile_specs(report.specs)
        assert plan.units
        build_output_models(plan, report.diagnostics)
        for d in report.diagnostics:
            if d.severity is Severity.ERROR:
                assert d.location is not None, d
                _check_one_line(d.message, user_texts)
    return messages


def test_base_spec_set_is_valid_and_compiles(workdir: Path) -> None:
    path = workdir / "base.yaml"
    text = "---\n".join(_dump(doc) for doc in BASE_DOCS)
    path.write_text(text)
    report = validate_paths([str(path)], validation_options(workdir))
    assert report.ok, [str(d) for d in report.diagnostics]
    assert not [d for d in report.diagnostics if d.severity is not Severity.HINT]
    assert sorted(s.kind for s in report.specs.specs) == sorted(
        ["Model", "Tool", "Memory", "Guardrail", "Guardrail", "Agent", "Agent", "Pipeline", "Supervisor"]
    )
    plan = compile_specs(report.specs)
    assert {str(r) for r in plan.units} == {"Agent/helper", "Agent/lead", "Pipeline/batch", "Supervisor/desk"}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_mutated_specs_give_located_diagnostics_and_never_raise(data: st.DataObject, workdir: Path) -> None:
    docs = copy.deepcopy(BASE_DOCS)
    count = data.draw(st.integers(1, 3), label="mutations")
    done = [_mutate(data, docs) for _ in range(count)]
    text = _text_of(data, docs)
    path = workdir / "mutated.yaml"
    path.write_text(text)
    note = f"mutations: {done}"
    try:
        _check_report(path, text, workdir, docs)
    except AssertionError as exc:
        raise AssertionError(f"{note}\n{exc}") from None


def test_alias_deepened_step_input_does_not_raise(workdir: Path) -> None:
    n = 55
    anchors = ["      a0: &a0 x"] + [
        f"      a{k}: &a{k} " + "[" * n + f"*a{k - 1}" + "]" * n for k in range(1, 51)
    ]
    text = (
        "apiVersion: agents.platform/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  steps:\n"
        "  - name: s\n    tool: search\n    input:\n"
        + "\n".join(anchors)
        + "\n---\n"
        + VALID_SPECS.split("---\n")[1]
    )
    path = workdir / "deep.yaml"
    path.write_text(text)
    report = validate_paths([str(path)], validation_options(workdir))
    assert not report.ok


@pytest.mark.parametrize("required", ["null", "5", "[[q]]"])
def test_step_agreement_with_invalid_required_does_not_raise(workdir: Path, required: str) -> None:
    text = f"""\
apiVersion: agents.platform/v1
kind: Tool
metadata: {{name: t}}
spec:
  description: d
  http: {{url: "http://x"}}
  input_schema: {{type: object, properties: {{q: {{type: string}}}}, required: {required}}}
---
apiVersion: agents.platform/v1
kind: Pipeline
metadata: {{name: p}}
spec:
  steps:
  - {{name: s, tool: t, input: {{q: x}}}}
"""
    path = workdir / "required.yaml"
    path.write_text(text)
    report = validate_paths([str(path)], validation_options(workdir))
    assert [d.code for d in report.diagnostics.errors] == ["json-schema"]


@pytest.mark.parametrize("required", ["5", "{q: true}", "q"])
def test_optional_input_warning_with_invalid_required_does_not_raise(workdir: Path, required: str) -> None:
    """Found by the property once documents failing their model still had their templates checked."""
    text = f"""\
apiVersion: agents.platform/v1
kind: Agent
metadata: {{name: a}}
spec:
  model: {{provider: scripted, on_script_exhausted: synthesize}}
  instructions: "{{{{ inputs.q }}}}"
  inputs: {{type: object, properties: {{q: {{type: string}}}}, required: {required}}}
"""
    path = workdir / "required.yaml"
    path.write_text(text)
    report = validate_paths([str(path)], validation_options(workdir))
    assert [d.code for d in report.diagnostics.errors] == ["json-schema"]


@pytest.mark.parametrize(
    "spec",
    [
        "apiVersion: agents.platform/v1\nkind: Model\nmetadata: {name: m}\nspec:\n"
        '  provider: scripted\n  on_script_exhausted: synthesize\n  "bad\\nkey": 1\n',
        "apiVersion: agents.platform/v1\nkind: Guardrail\nmetadata: {name: g}\nspec:\n"
        '  type: "regx\\nz"\n  applies_to: [input]\n',
    ],
    ids=["unknown-field", "unknown-discriminator"],
)
def test_user_text_with_a_newline_is_escaped_in_messages(workdir: Path, spec: str) -> None:
    path = workdir / "newline.yaml"
    path.write_text(spec)
    report = validate_paths([str(path)], validation_options(workdir))
    (error,) = report.diagnostics.errors
    assert "\n" not in error.message
