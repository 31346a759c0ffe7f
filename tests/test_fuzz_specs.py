"""A mutation fuzzer over the specs in specs/: `validate` and `plan` on damaged specs end in a
clean report or located diagnostics, never an internal error, never slower than 2 s.

Each example takes one file of specs/, applies one to three mutations, and checks the whole
directory with that file replaced (as `platform validate specs/` and `platform plan specs/` would):

- data mutations, on the parsed documents: delete a key, swap a value's type, put in a huge number
  (beyond a float, beyond 4,300 digits, .inf, .nan), nest a value deeply, make a string long, put
  unusual unicode in a string, damage a template, damage a JSON Schema;
- text mutations, on the YAML: delete, insert or swap characters and lines, duplicate a key,
  put in YAML syntax (anchors, aliases, tags, tabs, flow brackets), cut the file short.

Half the examples import the plugins (`--import-plugins`). Then: `validate_paths` must return (any exception is an internal error: exit 3 from the CLI); every
error must carry a location in a file; when validation passes, compiling and building the
structured-output models (`plan`) must add no error; rendering the report (text, GitHub, JSON)
and the plan must work; and all of it within 2 s of CPU time (wall time on a shared machine
measures the neighbours too; it is reported, not asserted).

The default suite runs a short session (FUZZ_EXAMPLES, 60 by default); `make fuzz` runs 100,000
mutants and writes its figures (count, clean, with diagnostics, slowest) to FUZZ_REPORT, also as it
goes (every REPORT_EVERY mutants, `finished: false`)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_platform import _render as render
from agent_platform._compile import build_output_models, compile_specs
from agent_platform._diagnostics import Severity
from agent_platform._validate import ValidationOptions, validate_paths

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
# The spec files as they were when the session started: the mutants are drawn from this copy, and
# the workspace holds it, so that specs edited (or added, or removed) while a long session runs
# change neither (hypothesis replays a failing mutant by drawing it again, and a draw that reads
# the file anew would differ).
CORPUS_TEXT = {
    p.relative_to(SPECS).as_posix(): p.read_text(encoding="utf-8") for p in sorted(SPECS.rglob("*.yaml"))
}
CORPUS = sorted(CORPUS_TEXT)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
REPORT = os.environ.get("FUZZ_REPORT")
TIME_LIMIT_S = 2.0

try:  # libyaml's loader and dumper: mutating is most of the cost of a mutant otherwise
    from yaml import CSafeDumper as _Dumper
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Draw = Callable[[st.SearchStrategy[Any]], Any]
PathKey = tuple[str | int, ...]


# --- the figures of a session ---------------------------------------------------------------


@dataclass
class Figures:
    mutants: int = 0
    clean: int = 0  # validated (and planned) without errors
    with_diagnostics: int = 0  # located errors
    internal_errors: int = 0  # any exception: the CLI's exit 3
    slowest_s: float = 0.0  # CPU time of this process: what the mutant costs, whatever else runs
    slowest: str = ""
    slowest_wall_s: float = 0.0  # wall time, which also counts what the neighbours ran
    operations: dict[str, int] = field(default_factory=dict)
    finished: bool = False  # False in the reports a long session writes as it goes


# A long session writes its figures to FUZZ_REPORT every this many mutants, so one stopped early
# (or ended by a failing mutant) still says how far it got.
REPORT_EVERY = 250


FIGURES = Figures()


# --- data mutations ---------------------------------------------------------------------------


def _nodes(value: Any) -> Iterator[tuple[PathKey, Any]]:
    """Every node with its path, without recursion (mutations nest values deeply)."""
    stack: list[tuple[PathKey, Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, dict):
            stack.extend(((*path, key), sub) for key, sub in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, index), sub) for index, sub in enumerate(node))


def _set(root: Any, path: PathKey, value: Any) -> Any:
    if not path:
        return value
    node = root
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return root


def _pick(
    draw: Draw, docs: list[Any], want: Callable[[Any], bool] = lambda _: True
) -> tuple[PathKey, Any] | None:
    candidates = [(path, value) for path, value in _nodes(docs) if path and want(value)]
    return draw(st.sampled_from(candidates)) if candidates else None


# Text that the dump must carry as written (YAML a safe_dump cannot produce): a placeholder string
# is dumped, then replaced.
RAW_NUMBERS = [
    "1" + "0" * 400,  # an integer beyond the float range
    "9" * 5000,  # beyond Python's int-string conversion limit
    "-" + "9" * 320,
    "0x" + "f" * 3000,
    "1e999",
    ".inf",
    "-.inf",
    ".nan",
    "!!float 1" + "0" * 400,
    '"' + "9" * 300 + 's"',  # a duration string of 300 digits
    "1.7976931348623157e308",
    "-0",
    "0o777777777777777777777777",
]
SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**63,
    "",
    "text",
    "5",
    "off",
    "yes",
    [],
    {},
    [1, "a"],
    {"a": 1},
]


def delete_key(draw: Draw, docs: list[Any], raw: list[str]) -> str:
    found = _pick(draw, docs, lambda v: isinstance(v, dict) and bool(v))
    if found is None:
        return "delete_key: nothing"
    path, mapping = found
    key = draw(st.sampled_from(sorted(mapping)))
    del mapping[key]
    return f"delete_key {'.'.join(map(str, path))}.{key}"


def swap_type(draw: Draw, docs: list[Any], raw: list[str]) -> str:
    found = _pick(draw, docs)
    if found is None:
        return "swap_type: nothing"
    _set(docs, found[0], draw(st.sampled_from(SCALARS)))
    return f"swap_type {found[0]}"


def huge_number(draw: Draw, docs: list[Any], raw: list[str]) -> str:
    found = _pick(draw, docs, lambda v: not isinstance(v, dict | list))
    if found is None:
        return "huge_number: nothing"
    raw.append(draw(st.sampled_from(RAW_NUMBERS)))
    _set(docs, found[0], f"__RAW_{len(raw) - 1}__")
    return f"huge_number {found[0]} = {raw[-1][:20]}"


def deep_nesting(draw: Draw, docs: list[Any], raw: list[str]) -> str:
    found = _pick(draw, docs)
    if found is None:
        return "deep_nesting: nothing"
    depth = draw(st.integers(2, 120))
    value = found[1]
    as_list = draw(st.booleans())
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    _set(docs, found[0], value)
    return f"deep_nesting {found[0]} x{depth}"


def long_string(draw: Draw, docs: list[Any], raw: list[str]) -> str:
    found = _pick(draw, docs, lambda v: isinstance(v, str))
    if found is None:
        return "long_string: nothing"
    size = draw(st.sampled_from([300, 5_000, 70_000, 300_000]))
    text = found[1] or "x"
    _set(docs, found[0], (text * (size // len(text) + 1))[:size])
    return f"long_string {found[0]} {size}"


UNICODE = st.characters() | st.sampled_from(
    [
        "\x00",
        "\x07",
        "\x1b",
        "\u0085",
        "\u2028",
        "\ufeff",
        "\u202e",
        "\U0001f600",
        "\u0301",
        "\ud800",
        "\uffff",
    ]
)  # surrogates included: the file then holds invalid UTF-8


def unicode_text(draw: Draw, docs: list[Any], raw: list[str]) -> str:
    found = _pick(draw, docs, lambda v: isinstance(v, str))
    if found is None:
        return "unicode: nothing"
    raw.append("".join(draw(st.lists(UNICODE, min_size=1, max_size=8))))  # written as is, not escaped
    text = found[1]
    at = draw(st.integers(0, len(text)))
    _set(docs, found[0], text[:at] + f"__RAW_{len(raw) - 1}__" + text[at:])
    return f"unicode {found[0]}"


TEMPLATE_DAMAGE = [
    "{{", "}}", "{%", "%}", "{#", "{{ }}", "{% endfor %}", "{% for x in inputs.xs %}", "{% if %}",
    "{{ inputs.items }}", "{{ inputs.nope }}", "{{ steps.later.output }}", "{{ x | nosuchfilter }}",
    "{{ 'x' * 10**9 }}", "{{ 7 ** 1000000 }}", "{{ range(10**7) | list }}", "{{ '%999999999d' % 1 }}",
    "{% include 'other' %}", "{% extends 'base' %}", "{% block a %}{% endblock %}{% block a %}{% endblock %}",
    "{% macro m(caller) %}{{ caller() }}{% endmacro %}", "{% for loop in inputs.xs %}{% endfor %}",
    "{{ " + "(" * 40 + "1" + ")" * 40 + " }}", "{{ " + "[" * 33 + "]" * 33 + " }}",
    "{{ x" + "|upper" * 70 + " }}", "{{ x" + ".a" * 70 + " }}", "{{ " + "not " * 500 + "x }}",
    "{% for a in b %}" * 20 + "{% endfor %}" * 20, "{% if x %}" * 70 + "{% endif %}" * 70,
    "{{ ''.__class__.__mro__ }}", "{{ lipsum(10**6) }}", "{{ inputs.x.__dict__ }}", "{{ 1/0 }}",
    "{% set loop = 1 %}", "{{ caller() }}", "{{ x }}" * 3000,
]  # fmt: skip


def template_damage(draw: Draw, docs: list[Any], raw: list[str]) -> str:
    found = _pick(draw, docs, lambda v: isinstance(v, str))
    if found is None:
        return "template: nothing"
    text = found[1]
    damage = draw(st.sampled_from(TEMPLATE_DAMAGE))
    at = draw(st.integers(0, len(text)))
    _set(docs, found[0], text[:at] + damage + text[at:])
    return f"template {found[0]} {damage[:30]!r}"


SCHEMA_KEYS = ("inputs", "output", "input_schema", "output_schema", "schema")
SCHEMA_DAMAGE: list[tuple[str, Any]] = [
    ("required", 1.5), ("required", ["nope", "nope"]), ("required", [1]), ("type", "strin"),
    ("type", ["object", "object"]), ("type", 5), ("pattern", "(["), ("pattern", "a{0,18446744073709551617}"),
    ("pattern", "(?<=a)b"), ("$ref", "#/nope"), ("$ref", "#"), ("$ref", "http://example.com/s.json"),
    ("$ref", "#/$defs/a"), ("$defs", {"a": {"$ref": "#/$defs/a"}}), ("$defs", {"a": False}),
    ("properties", {"x": {}}), ("properties", {"__proto__": {"type": "integer"}}), ("properties", []),
    ("properties", {"items": {"type": "array"}}), ("enum", []), ("enum", [[1], {"a": 1}]),
    ("additionalProperties", {"type": "boolean"}), ("additionalProperties", "no"), ("format", "colour"),
    ("format", "date-time"), ("nullable", True), ("example", 1), ("x-order", 3), ("maxLenght", 3),
    ("$id", "x"), ("$dynamicRef", "#a"), ("items", [{"type": "string"}]), ("const", True), ("minimum", "5"),
    ("minimum", 10**400), ("multipleOf", 0), ("$schema", "http://json-schema.org/draft-07/schema#"),
    ("if", {"required": ["a"]}), ("dependencies", {"a": ["b"]}), ("anyOf", []), ("anyOf", [True, {}]),
    ("contentMediaType", "text/plain"), ("optional", True), ("default", {"deep": [1, 2]}),
]  # fmt: skip


def schema_damage(draw: Draw, docs: list[Any], raw: list[str]) -> str:
    def is_schema_holder(value: Any) -> bool:
        return isinstance(value, dict) and any(isinstance(value.get(k), dict) for k in SCHEMA_KEYS)

    found = _pick(draw, docs, is_schema_holder)
    if found is None:
        return "schema: nothing"
    holder = found[1]
    key = draw(st.sampled_from([k for k in SCHEMA_KEYS if isinstance(holder.get(k), dict)]))
    schemas = [(p, v) for p, v in _nodes(holder[key]) if isinstance(v, dict)]
    path, schema = draw(st.sampled_from(schemas))
    keyword, value = draw(st.sampled_from(SCHEMA_DAMAGE))
    schema[keyword] = value
    return f"schema {found[0]}.{key}{list(path)} {keyword}={str(value)[:20]}"


DATA_MUTATIONS = {
    f.__name__: f
    for f in (
        delete_key,
        swap_type,
        huge_number,
        deep_nesting,
        long_string,
        unicode_text,
        template_damage,
        schema_damage,
    )
}


def _dump(docs: list[Any], raw: list[str]) -> str:
    text = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10**9)
    for index, written in enumerate(raw):
        text = text.replace(f"__RAW_{index}__", written)
    return text


# --- text mutations ---------------------------------------------------------------------------

YAML_DAMAGE = [
    ":", "-", "- ", "\t", "'", '"', "&a ", "*a", "&an:chor ", "!!python/object:os.system ", "!!binary ",
    "!custom ", "{", "[", "}", "]", "%YAML 1.1\n", "---\n", "...\n", "? ", "|", ">", "#", "<<: *a\n",
    "\n  ", "\n\t", ",", "\\", "\x00", "\r", "\ufeff", ": &b [*b]", "*nope", "!!int x", "!!float x",
]  # fmt: skip


def text_mutation(draw: Draw, text: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True) or [""]
    kind = draw(st.sampled_from(["insert", "delete", "truncate", "duplicate_line", "swap_lines", "indent"]))
    if kind == "insert":
        at = draw(st.integers(0, len(text)))
        damage = draw(st.sampled_from(YAML_DAMAGE))
        return text[:at] + damage + text[at:], f"insert {damage!r} at {at}"
    if kind == "delete":
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        size = draw(st.integers(1, 20))
        return text[:at] + text[at + size :], f"delete {size} at {at}"
    if kind == "truncate":
        at = draw(st.integers(0, len(text)))
        return text[:at], f"truncate at {at}"
    index = draw(st.integers(0, len(lines) - 1))
    if kind == "duplicate_line":  # a duplicate key, most often
        return "".join(
            [*lines[: index + 1], lines[index], *lines[index + 1 :]]
        ), f"duplicate line {index + 1}"
    if kind == "swap_lines":
        other = draw(st.integers(0, len(lines) - 1))
        lines[index], lines[other] = lines[other], lines[index]
        return "".join(lines), f"swap lines {index + 1} {other + 1}"
    shift = draw(st.sampled_from([" ", "  ", "\t", ""]))
    lines[index] = shift + lines[index].lstrip(" ") if shift else lines[index][1:]
    return "".join(lines), f"indent line {index + 1} by {shift!r}"


# --- one mutant ---------------------------------------------------------------------------------


@st.composite
def mutants(draw: Draw) -> tuple[str, str, list[str]]:
    """(file of specs/, its mutated text, what was done)."""
    name = draw(st.sampled_from(CORPUS))
    text = CORPUS_TEXT[name]
    done: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 3)) == 0:  # a quarter of the mutations damage the text
            text, what = text_mutation(draw, text)
            done.append(what)
            continue
        try:
            docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
        except Exception:  # text an earlier mutation damaged past PyYAML: damage it further as text
            text, what = text_mutation(draw, text)
            done.append(what)
            continue
        raw: list[str] = []
        operation = draw(st.sampled_from(sorted(DATA_MUTATIONS)))
        what = DATA_MUTATIONS[operation](draw, docs, raw)
        try:
            text = _dump(docs, raw)
        except RecursionError:  # nested past what PyYAML's representer recurses through
            text, what = text_mutation(draw, text)
        done.append(what)
    return name, text, done


@dataclass(frozen=True)
class Verdict:
    clean: bool
    cpu_seconds: float
    wall_seconds: float


def check_set(root: Path, *, import_plugins: bool = False) -> Verdict:
    """What `platform validate` and then `platform plan` do with the directory, as the CLI does it
    (an exception here is the CLI's internal error, exit 3)."""
    started, started_cpu = time.perf_counter(), time.process_time()
    report = validate_paths([root], ValidationOptions(plugin_paths=[REPO], import_plugins=import_plugins))
    shown = report.diagnostics.sorted()
    for diagnostic in shown:
        render.diagnostic_line(diagnostic)
        render.github_annotation(diagnostic)
        if diagnostic.severity is Severity.ERROR:
            location = diagnostic.location
            assert location is not None and location.file and location.line >= 1, str(diagnostic)
    render.diagnostics_json(shown, len(report.specs.specs), report.files)
    render.summary(shown, len(report.specs.specs), len(report.files))
    if report.ok:
        plan = compile_specs(report.specs)
        build_output_models(plan, report.diagnostics)
        planned = [str(d) for d in report.diagnostics.errors]
        assert planned == [], f"validate passed but plan failed: {planned}"
        render.plan_text(plan)
        json.dumps(render.plan_json(plan))
    return Verdict(report.ok, time.process_time() - started_cpu, time.perf_counter() - started)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fuzz") / "specs"
    shutil.copytree(SPECS, root, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    for name, text in CORPUS_TEXT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    assert check_set(root).clean and check_set(root, import_plugins=True).clean, "specs/ must validate"
    yield root
    FIGURES.finished = True
    print("\nfuzz figures: " + json.dumps(asdict(FIGURES), indent=2))
    _write_report()


def _write_report() -> None:
    if REPORT:
        Path(REPORT).write_text(json.dumps(asdict(FIGURES), indent=2) + "\n", encoding="utf-8")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(mutant=mutants(), import_plugins=st.booleans())
def test_a_mutated_spec_gets_a_report_never_an_internal_error(
    workspace: Path, mutant: tuple[str, str, list[str]], import_plugins: bool
) -> None:
    name, text, done = mutant
    target = workspace / name
    original = target.read_bytes()
    target.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        verdict = check_set(workspace, import_plugins=import_plugins)
    except BaseException:
        FIGURES.internal_errors += 1
        _write_report()
        raise
    finally:
        target.write_bytes(original)
    FIGURES.mutants += 1
    FIGURES.clean += verdict.clean
    FIGURES.with_diagnostics += not verdict.clean
    for what in done:
        operation = what.split(" ", 1)[0].rstrip(":")
        FIGURES.operations[operation] = FIGURES.operations.get(operation, 0) + 1
    if verdict.cpu_seconds > FIGURES.slowest_s:
        FIGURES.slowest_s = round(verdict.cpu_seconds, 3)
        FIGURES.slowest = f"{name}: {'; '.join(done)}"
    FIGURES.slowest_wall_s = max(FIGURES.slowest_wall_s, round(verdict.wall_seconds, 3))
    if FIGURES.mutants % REPORT_EVERY == 0:
        _write_report()
    assert verdict.cpu_seconds < TIME_LIMIT_S, f"{name} took {verdict.cpu_seconds:.2f}s of CPU after {done}"
