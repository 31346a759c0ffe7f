"""The located YAML loader: positions, YAML 1.2 core schema, refusals, limits, discovery."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_platform._diagnostics import Severity, SourceLocation
from agent_platform._load import (
    DEFAULT_LIMITS,
    Document,
    LoadLimits,
    discover,
    load_paths,
    load_text,
    resolve_plain_scalar,
)

F = "spec.yaml"


def _one(text: str | bytes, limits: LoadLimits = DEFAULT_LIMITS) -> Document:
    result = load_text(text, F, limits)
    assert not result.diagnostics.items, [str(d) for d in result.diagnostics]
    assert len(result.documents) == 1
    return result.documents[0]


def _errors(text: str | bytes, limits: LoadLimits = DEFAULT_LIMITS) -> list[tuple[str, str, int, int]]:
    result = load_text(text, F, limits)
    out = []
    for d in result.diagnostics:
        assert d.severity is Severity.ERROR
        assert d.location is not None
        out.append((d.code, d.message, d.location.line, d.location.column))
    return out


def _at(line: int, column: int) -> SourceLocation:
    return SourceLocation(F, line, column)


# Positions are read through the public `locate` / `key_location` (how they are stored is the
# loader's business); membership in value_positions / key_positions says the node has its own.
def _val(doc: Document, path: tuple[str | int, ...]) -> SourceLocation:
    assert path in doc.value_positions, path
    return doc.locate(path)


def _key(doc: Document, path: tuple[str | int, ...]) -> SourceLocation:
    assert path in doc.key_positions, path
    return doc.key_location(path)


# --- positions --------------------------------------------------------------------------------


NESTED = """\
a:
  b: [1, {c: d}]
  e:
    - x
    - y: z
      w: 'q'
"""


def test_positions_of_keys_and_values_in_nested_block_and_flow_collections() -> None:
    doc = _one(NESTED)
    assert doc.data == {"a": {"b": [1, {"c": "d"}], "e": ["x", {"y": "z", "w": "q"}]}}
    assert _key(doc, ("a",)) == _at(1, 1)
    assert _key(doc, ("a", "b")) == _at(2, 3)
    assert _val(doc, ("a", "b")) == _at(2, 6)  # the '[' of the flow sequence
    assert _val(doc, ("a", "b", 0)) == _at(2, 7)
    assert _val(doc, ("a", "b", 1)) == _at(2, 10)  # the '{' of the flow mapping
    assert _key(doc, ("a", "b", 1, "c")) == _at(2, 11)
    assert _val(doc, ("a", "b", 1, "c")) == _at(2, 14)
    assert _key(doc, ("a", "e")) == _at(3, 3)
    assert _val(doc, ("a", "e", 0)) == _at(4, 7)
    assert _key(doc, ("a", "e", 1, "y")) == _at(5, 7)
    assert _val(doc, ("a", "e", 1, "y")) == _at(5, 10)
    assert _key(doc, ("a", "e", 1, "w")) == _at(6, 7)
    assert _val(doc, ("a", "e", 1, "w")) == _at(6, 10)  # the opening quote
    assert _val(doc, ()) == _at(1, 1)
    # list items have no key position
    assert ("a", "e", 0) not in doc.key_positions


def test_locate_prefers_value_and_key_location_prefers_key() -> None:
    doc = _one(NESTED)
    assert doc.locate(("a", "b")) == _at(2, 6)
    assert doc.key_location(("a", "b")) == _at(2, 3)
    # list items have no key: key_location falls back to the value
    assert doc.key_location(("a", "e", 0)) == _at(4, 7)


def test_locate_skips_unknown_path_parts_and_falls_back_to_ancestors() -> None:
    doc = _one(NESTED)
    # union tags and discriminators from pydantic are not in the data: skipped
    assert doc.locate(("a", "function-after[x]", "b", 0)) == _at(2, 7)
    # a missing leaf points at its deepest existing ancestor
    assert doc.locate(("a", "e", 1, "missing")) == _at(5, 7)
    assert doc.locate(("nothing", "here")) == _at(1, 1)
    assert doc.locate(("a", "e", 99)) == _val(doc, ("a", "e"))


def test_positions_survive_comments_blank_lines_and_crlf() -> None:
    text = "# header\r\n\r\nkey:   value   # trailing\r\nother:\r\n  - 1\r\n"
    doc = _one(text)
    assert doc.data == {"key": "value", "other": [1]}
    assert _key(doc, ("key",)) == _at(3, 1)
    assert _val(doc, ("key",)) == _at(3, 8)
    assert _val(doc, ("other", 0)) == _at(5, 5)


def test_positions_count_characters_not_bytes() -> None:
    doc = _one("é: ünïcode\nb: 2\n".encode())
    assert _val(doc, ("é",)) == _at(1, 4)
    assert _val(doc, ("b",)) == _at(2, 4)


def test_bom_is_ignored() -> None:
    doc = _one(b"\xef\xbb\xbfa: 1\n")
    assert doc.data == {"a": 1}
    assert _key(doc, ("a",)) == _at(1, 1)


def test_top_level_sequence_and_scalar_documents() -> None:
    assert _one("- a\n- b\n").data == ["a", "b"]
    assert _one("just text\n").data == "just text"


# --- multi-document files ---------------------------------------------------------------------


def test_multi_document_indices_and_starts() -> None:
    text = "a: 1\n---\nb: 2\n---\n# only a comment\n---\nc: 3\n...\n"
    result = load_text(text, F)
    assert not result.diagnostics.items
    docs = result.documents
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}, {"c": 3}]
    # indices count every document in the file, empty ones included
    assert [d.index for d in docs] == [0, 1, 3]
    assert [d.start for d in docs] == [_at(1, 1), _at(2, 1), _at(6, 1)]
    assert _key(docs[2], ("c",)) == _at(7, 1)
    assert all(d.file == F for d in docs)


def test_anchor_is_local_to_its_document() -> None:
    text = "a: &x 1\n---\nb: *x\n"
    assert _errors(text) == [("yaml-alias", "alias '*x' refers to no anchor", 3, 4)]
    # the documents before the broken one are still returned
    assert [d.data for d in load_text(text, F).documents] == [{"a": 1}]


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n", "---\n...\n", "~\n", "null\n"])
def test_empty_file_is_an_error(text: str) -> None:
    assert _errors(text) == [("empty-file", "file contains no spec documents", 1, 1)]


def test_document_properties() -> None:
    doc = _one("kind: Agent\nmetadata:\n  name: bot\n")
    assert doc.kind == "Agent"
    assert doc.name == "bot"
    odd = _one("kind: 5\nmetadata: [x]\n")
    assert odd.kind is None
    assert odd.name is None
    assert _one("- 1\n").kind is None


# --- block scalars and quoted scalars ---------------------------------------------------------


BLOCK = """\
spec:
  instructions: |
    first line {{ a }}
    second {{ x }} here
      indented {{ y }}
    again {{ x }}
  other: plain {{ z }}
  quoted: 'q {{ w }}'
  dquoted: "d\\t{{ v }}"
  folded: >
    one
    two {{ u }}
  multiline plain: first
    then {{ t }}
"""


def _value(doc: Document, path: tuple[str | int, ...]) -> Any:
    value = doc.data
    for part in path:
        value = value[part]
    return value


def _loc_of(doc: Document, path: tuple[str | int, ...], needle: str, occurrence: int = 1) -> SourceLocation:
    """Where the `occurrence`-th `needle` of the value is, asked as the validator asks: by line and
    column inside the value, plus the text itself."""
    value = _value(doc, path)
    seen = 0
    for number, line in enumerate(value.split("\n"), 1):
        column = line.find(needle)
        while column >= 0:
            seen += 1
            if seen == occurrence:
                return doc.text_location(path, number, column, needle)
            column = line.find(needle, column + 1)
    raise AssertionError(f"{needle!r} not in {value!r}")


def _text_at(text: str, loc: SourceLocation, length: int) -> str:
    line = text.splitlines()[loc.line - 1]
    return line[loc.column - 1 : loc.column - 1 + length]


@pytest.mark.parametrize(
    ("path", "needle", "line"),
    [
        (("spec", "instructions"), "{{ a }}", 3),
        (("spec", "instructions"), "{{ x }}", 4),
        (("spec", "instructions"), "{{ y }}", 5),
        (("spec", "other"), "{{ z }}", 7),
        (("spec", "quoted"), "{{ w }}", 8),
        (("spec", "dquoted"), "{{ v }}", 9),
        (("spec", "folded"), "{{ u }}", 12),
        (("spec", "multiline plain"), "{{ t }}", 14),
    ],
)
def test_text_location_points_at_the_text_in_the_file(path: tuple[str, ...], needle: str, line: int) -> None:
    doc = _one(BLOCK)
    loc = _loc_of(doc, path, needle)
    assert loc.file == F
    assert loc.line == line
    assert _text_at(BLOCK, loc, len(needle)) == needle


def test_text_location_finds_the_right_occurrence() -> None:
    doc = _one(BLOCK)
    first = _loc_of(doc, ("spec", "instructions"), "{{ x }}", 1)
    second = _loc_of(doc, ("spec", "instructions"), "{{ x }}", 2)
    assert (first.line, second.line) == (4, 6)
    assert _text_at(BLOCK, second, 7) == "{{ x }}"


def test_text_location_by_line_without_needle() -> None:
    doc = _one(BLOCK)
    loc = doc.text_location(("spec", "instructions"), 2)
    assert (loc.line, loc.column) == (4, 5)


def test_text_location_falls_back_to_the_value_position() -> None:
    doc = _one("a: no braces here\nb: [1]\nc: '{{ x }}'\n")
    assert doc.text_location(("a",), 1, 3) == _val(doc, ("a",))
    assert doc.text_location(("b",), 1, 0) == _val(doc, ("b",))
    assert doc.text_location(("missing",), 1, 0, "x") == doc.locate(("missing",))
    # a needle that is not in the source (e.g. produced by an escape) falls back too
    assert doc.text_location(("c",), 1, 0, "{{ nope }}") == _val(doc, ("c",))


def test_value_position_of_a_block_scalar_is_its_indicator() -> None:
    doc = _one(BLOCK)
    assert _val(doc, ("spec", "instructions")) == _at(2, 17)
    assert _val(doc, ("spec", "quoted")) == _at(8, 11)  # the opening quote


def test_text_location_on_a_later_line_of_a_double_quoted_scalar() -> None:
    text = 'a: "one\n  two {{ x }}"\n'
    doc = _one(text)
    assert doc.data == {"a": "one two {{ x }}"}
    loc = _loc_of(doc, ("a",), "{{ x }}")
    assert _text_at(text, loc, 7) == "{{ x }}"


def test_block_scalar_with_chomping_indicators_and_comment_on_indicator_line() -> None:
    text = "a: |- # a comment\n  one\n  two {{ t }}\nb: |+\n  keep\n\nc: 1\n"
    doc = _one(text)
    assert doc.data == {"a": "one\ntwo {{ t }}", "b": "keep\n\n", "c": 1}
    loc = _loc_of(doc, ("a",), "{{ t }}")
    assert _text_at(text, loc, 7) == "{{ t }}"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a: |\n\n  line {{ x }}\n", "\nline {{ x }}\n"),  # leading blank line
        ("a: |2\n    line {{ x }}\n", "  line {{ x }}\n"),  # indentation indicator
        ("a: >\n  one\n  two {{ x }}\n", "one two {{ x }}\n"),  # folded
        ("a: >-\n  one\n\n  two {{ x }}\n", "one\ntwo {{ x }}"),  # folded with a kept break
        ("a: |\n  # not a comment {{ x }}\n", "# not a comment {{ x }}\n"),
    ],
)
def test_text_location_in_block_scalar_styles(text: str, value: str) -> None:
    doc = _one(text)
    assert doc.data == {"a": value}
    loc = _loc_of(doc, ("a",), "{{ x }}")
    assert 1 <= loc.line <= len(text.splitlines())
    assert _text_at(text, loc, 7) == "{{ x }}"


def test_text_location_in_a_later_document() -> None:
    text = "a: '{{ x }}'\n---\nb: |\n  {{ x }}\n"
    second = load_text(text, F).documents[1]
    loc = _loc_of(second, ("b",), "{{ x }}")
    assert (loc.line, loc.column) == (4, 3)


# --- YAML 1.2 core schema ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML 1.1 booleans are strings under the core schema
        ("NO", "NO"),
        ("no", "no"),
        ("off", "off"),
        ("Off", "Off"),
        ("yes", "yes"),
        ("on", "on"),
        ("y", "y"),
        ("n", "n"),
        # core booleans and nulls
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("tRUE", "tRUE"),
        ("~", None),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("", None),
        ("nULL", "nULL"),
        # integers
        ("0", 0),
        ("-7", -7),
        ("+12", 12),
        ("012", 12),  # no YAML 1.1 octal: a leading zero is decimal
        ("0o17", 15),
        ("0x1F", 31),
        ("0xff", 255),
        ("-0x1F", "-0x1F"),  # hex and octal take no sign in the core schema
        ("0o8", "0o8"),
        ("0b101", "0b101"),  # no binary in the core schema
        ("1_000", "1_000"),  # no digit separators
        ("1:20", "1:20"),  # no sexagesimal
        # floats
        ("1e3", 1000.0),
        ("1E3", 1000.0),
        ("-1.5e-3", -0.0015),
        (".5", 0.5),
        ("5.", 5.0),
        ("1.0", 1.0),
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        ("+.INF", math.inf),
        ("1,5", "1,5"),
        # things YAML 1.1 would turn into other types
        ("2001-12-14", "2001-12-14"),
        ("=", "="),
        ("<<", "<<"),
        ("0.1.2", "0.1.2"),
        ("v1", "v1"),
    ],
)
def test_resolve_plain_scalar(text: str, expected: Any) -> None:
    value = resolve_plain_scalar(text)
    assert value == expected
    assert type(value) is type(expected)


def test_resolve_nan() -> None:
    for text in (".nan", ".NaN", ".NAN"):
        value = resolve_plain_scalar(text)
        assert isinstance(value, float)
        assert math.isnan(value)
    assert resolve_plain_scalar("nan") == "nan"


def test_values_resolve_by_core_schema_and_keys_keep_their_text() -> None:
    doc = _one("no: NO\nyes: off\n1: one\n~: tilde\ntrue: t\nnull: n\n012: z\nv: 012\nw: 0o17\n")
    assert doc.data == {
        "no": "NO",
        "yes": "off",
        "1": "one",
        "~": "tilde",
        "true": "t",
        "null": "n",
        "012": "z",
        "v": 12,
        "w": 15,
    }


def test_quoted_and_block_scalars_are_strings() -> None:
    doc = _one("a: '5'\nb: \"true\"\nc: |\n  7\nd: >-\n  null\ne: 'null'\n")
    assert doc.data == {"a": "5", "b": "true", "c": "7\n", "d": "null", "e": "null"}


def test_empty_values_are_null() -> None:
    doc = _one("a:\nb: []\nc: {}\nd: ''\n")
    assert doc.data == {"a": None, "b": [], "c": {}, "d": ""}
    assert _val(doc, ("a",)).line in (1, 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!str 5", {"a": "5"}),
        ("a: !!str true", {"a": "true"}),
        ("a: !!int '7'", {"a": 7}),
        ("a: !!int 0x10", {"a": 16}),
        ("a: !!float 3", {"a": 3.0}),
        ("a: !!bool true", {"a": True}),
        ("a: !!null ''", {"a": None}),
        ("a: !!map {b: 1}", {"a": {"b": 1}}),
        ("a: !!seq [1]", {"a": [1]}),
        ("a: ! 5", {"a": "5"}),  # the non-specific tag forces a string
    ],
)
def test_standard_tags(text: str, expected: Any) -> None:
    value = _one(text + "\n").data
    assert value == expected
    assert type(value["a"]) is type(expected["a"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!int x", "value 'x' is not a valid !!int"),
        ("a: !!int 1.5", "value '1.5' is not a valid !!int"),
        ("a: !!bool yes", "value 'yes' is not a valid !!bool"),
        ("a: !!float abc", "value 'abc' is not a valid !!float"),
        ("a: !!null x", "value 'x' is not a valid !!null"),
        ("a: !!python/object:os.system x", "tag '!!python/object:os.system' is not allowed in specs"),
        ("a: !!python/name:os.system ''", "tag '!!python/name:os.system' is not allowed in specs"),
        ("a: !custom x", "tag '!custom' is not allowed in specs"),
        ("a: !!binary aGk=", "tag '!!binary' is not allowed in specs"),
        ("a: !!timestamp 2001-01-01", "tag '!!timestamp' is not allowed in specs"),
        ("a: !!set {x}", "tag '!!set' is not allowed in specs"),
        ("a: !!omap [x: 1]", "tag '!!omap' is not allowed in specs"),
        ("a: !!seq {b: 1}", "tag '!!seq' is not allowed in specs"),
    ],
)
def test_refused_tags_are_located(text: str, message: str) -> None:
    errors = _errors(text + "\n")
    assert len(errors) == 1
    code, got, line, column = errors[0]
    assert code == "yaml-tag"
    assert message in got
    assert (line, column) == (1, 4)


# --- refusals: duplicate keys, merge keys, collection keys ---------------------------------------


def test_duplicate_key_is_an_error_at_the_second_key() -> None:
    errors = _errors("spec:\n  a: 1\n  b: 2\n  a: 3\n")
    assert errors == [("yaml-duplicate-key", "duplicate key 'a' (first defined at line 2)", 4, 3)]


def test_duplicate_key_regardless_of_quoting_and_in_flow_style() -> None:
    assert _errors("a: 1\n'a': 2\n")[0][0] == "yaml-duplicate-key"
    assert _errors("x: {a: 1, a: 2}\n")[0][:2] == (
        "yaml-duplicate-key",
        "duplicate key 'a' (first defined at line 1)",
    )


def test_duplicate_key_message_is_one_line() -> None:
    (code, message, line, column) = _errors('"a\\nb": 1\n"a\\nb": 2\n')[0]
    assert (code, line, column) == ("yaml-duplicate-key", 2, 1)
    assert "\n" not in message


def test_same_key_in_different_mappings_is_fine() -> None:
    assert _one("a: {k: 1}\nb: {k: 2}\nc: [{k: 1}, {k: 2}]\n").data["c"] == [{"k": 1}, {"k": 2}]


def test_merge_key_is_refused() -> None:
    errors = _errors("base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n")
    assert errors[0][0] == "yaml-merge-key"
    assert errors[0][2:] == (3, 3)


def test_quoted_double_angle_key_is_a_plain_key() -> None:
    assert _one("'<<': 1\n").data == {"<<": 1}


@pytest.mark.parametrize("text", ["? [a]\n: b\n", "? {a: 1}\n: b\n", "{[a]: b}\n"])
def test_collection_keys_are_refused(text: str) -> None:
    errors = _errors(text)
    assert errors[0][0] == "yaml-key"


# --- aliases ----------------------------------------------------------------------------------


def test_ordinary_alias_loads_as_a_shared_value() -> None:
    doc = _one("a: &x {k: [1, 2]}\nb: *x\nc: &s text\nd: *s\n")
    assert doc.data["b"] == {"k": [1, 2]}
    assert doc.data["b"] is doc.data["a"]
    assert doc.data["d"] == "text"
    assert _val(doc, ("b",)) == _at(2, 4)
    assert _val(doc, ("d",)) == _at(4, 4)


def test_alias_as_a_key() -> None:
    assert _one("a: &k name\nb: {*k : 1}\n").data == {"a": "name", "b": {"name": 1}}


def test_anchor_on_a_key() -> None:
    assert _one("&k a: 1\nb: *k\n").data == {"a": 1, "b": "a"}


def test_unknown_and_recursive_aliases_are_errors() -> None:
    assert _errors("a: *nope\n") == [("yaml-alias", "alias '*nope' refers to no anchor", 1, 4)]
    assert _errors("a: &x [1, *x]\n") == [("yaml-alias", "alias '*x' refers to itself", 1, 11)]


def _laughs(levels: int, fan: int = 10) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * fan) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_by_the_node_limit() -> None:
    text = _laughs(9)  # 10**10 leaves if expanded
    assert len(text) < 1000
    errors = _errors(text)
    assert len(errors) == 1
    code, message, line, _ = errors[0]
    assert code == "yaml-too-large"
    assert "100,000 nodes" in message
    assert 1 <= line <= text.count("\n")


def test_small_anchor_reused_many_times_is_fine() -> None:
    text = "base: &b {cpu: 1, memory: 512Mi}\n" + "".join(f"r{i}: *b\n" for i in range(200))
    doc = _one(text)
    assert doc.data["r199"] == {"cpu": 1, "memory": "512Mi"}


def test_alias_expansion_counts_against_a_configured_node_limit() -> None:
    text = _laughs(2, fan=3)  # 3 + 9 + 27 leaves plus the lists
    assert load_text(text, F).documents
    errors = _errors(text, LoadLimits(max_nodes_per_document=30))
    assert errors[0][0] == "yaml-too-large"
    assert "30 nodes" in errors[0][1]


# --- limits -----------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth + "\n"


def test_depth_limit() -> None:
    assert _one(_nested(DEFAULT_LIMITS.max_depth)).data is not None
    errors = _errors(_nested(DEFAULT_LIMITS.max_depth + 1))
    assert errors == [
        (
            "yaml-too-deep",
            "nesting deeper than 64 levels is not allowed in specs",
            1,
            DEFAULT_LIMITS.max_depth + 1,
        )
    ]


def test_very_deep_input_does_not_crash() -> None:
    # far beyond what PyYAML's recursive composer survives (libyaml's scanner refuses flow
    # nesting past 1,000 levels before our limit sees it: either error is fine, a crash is not)
    assert _errors(_nested(1000))[0][0] == "yaml-too-deep"
    assert _errors(_nested(100_000))[0][0] in ("yaml-too-deep", "yaml-syntax")
    block = "".join(" " * i + "a:\n" for i in range(1200))  # < 1 MiB
    assert _errors(block)[0][0] == "yaml-too-deep"


def test_depth_limit_is_configurable() -> None:
    limits = LoadLimits(max_depth=3)
    assert _one("a: {b: [1]}\n", limits).data == {"a": {"b": [1]}}
    errors = _errors("a: {b: [[1]]}\n", limits)
    assert errors[0][:2] == ("yaml-too-deep", "nesting deeper than 3 levels is not allowed in specs")
    assert errors[0][2:] == (1, 9)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_aliases_cannot_exceed_the_depth_limit() -> None:
    n = 55
    lines = ["a0: &a0 x"] + [f"a{k}: &a{k} " + "[" * n + f"*a{k - 1}" + "]" * n for k in range(1, 51)]
    result = load_text("\n".join(lines) + "\n", F)
    assert result.diagnostics.has_errors or all(
        _depth(d.data) <= DEFAULT_LIMITS.max_depth for d in result.documents
    )


def test_small_alias_nesting_within_the_limit_is_fine() -> None:
    doc = _one("a: &a [[x]]\nb: [*a, *a]\n", LoadLimits(max_depth=5))
    assert doc.data["b"] == [[["x"]], [["x"]]]


def test_file_size_limit_for_text_and_bytes() -> None:
    limits = LoadLimits(max_file_bytes=10)
    assert _one("a: 1\n", limits).data == {"a": 1}
    for content in ("a: 12345678\n", b"a: 12345678\n"):
        errors = _errors(content, limits)
        assert errors[0][0] == "file-too-large"
        assert errors[0][2:] == (1, 1)


def test_document_count_limit() -> None:
    text = "a: 1\n---\nb: 2\n---\nc: 3\n"
    result = load_text(text, F, LoadLimits(max_documents_per_file=2))
    assert [d.code for d in result.diagnostics] == ["yaml-too-large"]
    assert "more than 2 documents" in result.diagnostics.items[0].message
    assert result.diagnostics.items[0].location == _at(4, 1)
    assert len(load_text(text, F).documents) == 3


def test_file_size_limit_in_load_paths(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 100 + "\n")
    small = tmp_path / "small.yaml"
    small.write_text("a: 1\n")
    result = load_paths([tmp_path], LoadLimits(max_file_bytes=50))
    assert [d.code for d in result.diagnostics] == ["file-too-large"]
    assert result.diagnostics.items[0].location == SourceLocation(str(big), 1, 1)
    assert [d.data for d in result.documents] == [{"a": 1}]
    assert result.files == [str(big), str(small)]


# --- syntax and encoding errors ---------------------------------------------------------------


def test_syntax_error_is_located() -> None:
    errors = _errors("a:\n  - b\n  c: 1\n")
    assert errors[0][0] == "yaml-syntax"
    assert errors[0][1].startswith("invalid YAML: ")
    assert errors[0][2:] == (3, 3)


def test_unclosed_flow_collection() -> None:
    errors = _errors("a: [1, 2\nb: 3\n")
    assert errors[0][0] == "yaml-syntax"
    assert errors[0][2] >= 1


def test_tab_indentation_gets_its_own_message() -> None:
    errors = _errors("a:\n\tb: 1\n")
    assert errors == [("yaml-tab", "tab character in indentation; YAML requires spaces", 2, 1)]


@pytest.mark.parametrize(
    ("data", "message", "line", "column"),
    [
        (b"\xff\xfea\x00:\x00", "file is UTF-16 encoded; specs must be UTF-8", 1, 1),
        (b"a: 1\nb: \xc3\x28\n", "invalid UTF-8 byte 0xc3; specs must be UTF-8 text", 2, 4),
        (b"a: 1\nbb: x\x00\n", "file looks binary (contains a NUL byte); specs must be UTF-8 text", 2, 6),
    ],
)
def test_encoding_errors_are_located(data: bytes, message: str, line: int, column: int) -> None:
    assert _errors(data) == [("encoding", message, line, column)]


def test_control_character_is_an_error() -> None:
    errors = _errors("a: 'x\x07'\n")
    assert errors[0][0] == "yaml-character"


def test_control_character_error_is_one_located_line() -> None:
    (code, message, line, column) = _errors("a: 1\nb: 'x\x07'\n")[0]
    assert code == "yaml-character"
    assert "\n" not in message
    assert "<unicode string>" not in message
    assert (line, column) == (2, 6)


def test_lone_surrogate_in_text_is_a_diagnostic() -> None:
    result = load_text("a: \ud800\n", F)
    assert result.diagnostics.has_errors


@pytest.mark.skip(reason="CParser absence cannot be tested in-process: the fallback is chosen at import time")
def test_pure_python_parser_fallback() -> None:  # pragma: no cover
    pass


# --- discovery --------------------------------------------------------------------------------


def test_discover_order_recursion_suffixes_and_dedupe(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    files = [
        tmp_path / "b.yaml",
        tmp_path / "a.yml",
        tmp_path / "sub" / "z.yaml",
        tmp_path / "sub" / "deeper" / "c.yaml",
    ]
    for f in files:
        f.write_text("a: 1\n")
    (tmp_path / "notes.txt").write_text("a: 1\n")
    (tmp_path / "upper.YAML").write_text("a: 1\n")
    (tmp_path / "dir.yaml").mkdir()  # a directory named like a spec file is not a file
    found, diags = discover([tmp_path, tmp_path / "b.yaml", tmp_path / "sub"])
    assert not diags.items
    assert found == sorted(files)  # each once, in a stable order
    assert len({f.resolve() for f in found}) == len(found)
    # explicit files keep the order they were given in; dedupe keeps the first
    found2, _ = discover([tmp_path / "b.yaml", tmp_path / "a.yml", tmp_path / "./b.yaml"])
    assert found2 == [tmp_path / "b.yaml", tmp_path / "a.yml"]
    # an explicit file is taken whatever its suffix
    found3, _ = discover([tmp_path / "notes.txt"])
    assert found3 == [tmp_path / "notes.txt"]


def test_discover_is_stable_across_calls(tmp_path: Path) -> None:
    for name in ("m.yaml", "a.yaml", "q.yml", "B.yaml"):
        (tmp_path / name).write_text("a: 1\n")
    assert discover([tmp_path])[0] == discover([tmp_path])[0]


def test_discover_directory_without_specs_warns(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("# hi\n")
    found, diags = discover([tmp_path])
    assert found == []
    assert [(d.severity, d.code) for d in diags] == [(Severity.WARNING, "no-specs")]
    loc = diags.items[0].location
    assert loc is not None
    assert loc.file == str(tmp_path)
    assert loc.line >= 1
    assert loc.column >= 1


def test_discover_missing_path_is_an_error(tmp_path: Path) -> None:
    found, diags = discover([tmp_path / "missing.yaml"])
    assert found == []
    assert [(d.severity, d.code) for d in diags] == [(Severity.ERROR, "file-not-found")]


def test_load_paths_collects_documents_and_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x: 1\n---\ny: 2\n")
    (tmp_path / "b.yaml").write_text("x: [\n")
    result = load_paths([tmp_path])
    assert [d.data for d in result.documents] == [{"x": 1}, {"y": 2}]
    assert [d.file for d in result.documents] == [str(tmp_path / "a.yaml")] * 2
    assert result.files == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    assert [d.code for d in result.diagnostics] == ["yaml-syntax"]
    assert result.diagnostics.items[0].location is not None
    assert result.diagnostics.items[0].location.file == str(tmp_path / "b.yaml")


# --- properties -------------------------------------------------------------------------------

# PyYAML's safe_dump writes YAML 1.1: it quotes strings that YAML 1.1 would read as another type,
# but leaves plain the strings that only YAML 1.2 reads as numbers ('1e3' has no dot, so it is not
# a YAML 1.1 float; '0o17' is not a YAML 1.1 octal). Our loader reads those as 1000.0 and 15, as
# YAML 1.2 says it must, so such strings cannot round-trip through safe_dump; they are excluded
# (checked with a regex written here, independently of the loader). Also excluded: the key '<<'
# (see test_quoted_double_angle_key_is_a_plain_key).
_YAML12_ONLY_NUMBER = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)


def _round_trippable(text: str) -> bool:
    return _YAML12_ONLY_NUMBER.fullmatch(text) is None


_texts = st.text(max_size=30).filter(_round_trippable)
_keys = _texts.filter(lambda k: k != "<<")
_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _texts
)
_json_like = st.recursive(
    _leaves,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=30,
)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            out.extend(_paths(sub, (*prefix, key)))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            out.extend(_paths(sub, (*prefix, index)))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_json_like.filter(lambda v: v is not None))
def test_safe_dump_round_trip_and_every_value_located(data: Any) -> None:
    text = yaml.safe_dump(data)
    result = load_text(text, F)
    assert not result.diagnostics.items, (text, [str(d) for d in result.diagnostics])
    assert len(result.documents) == 1
    doc = result.documents[0]
    assert doc.data == data
    lines = text.count("\n") + 1
    for path in _paths(data):
        assert path in doc.value_positions, (path, text)
        loc = doc.locate(path)
        assert loc.file == F
        assert 1 <= loc.line <= lines
        assert loc.column >= 1
        if path and isinstance(path[-1], str):
            assert path in doc.key_positions, (path, text)
            key_loc = doc.key_location(path)
            assert key_loc <= loc


_FRAGMENTS = [
    ":", ": ", "-", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "&b", "*b", "!!", "!!str ", "!!int ",
    "!x ", "\t", "---\n", "...\n", "|", ">", "|-", "'", '"', "\n", "\n  ", "  ", "#", "? ", "%YAML 1.2\n",
    "a", "key", "0x1F", "no", "~", "<<", "\\", "\u00e9", "\ufeff", "\x00", "\x07", "\r\n", "{{ x }}",
]  # fmt: skip

_yamlish = st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=3), max_size=40).map("".join)


def _check_never_raises(content: str | bytes) -> None:
    result = load_text(content, F)
    for d in result.diagnostics:
        assert d.location is not None
        assert d.location.file == F
        assert d.location.line >= 1
        assert d.location.column >= 1
        assert d.message
    for doc in result.documents:
        assert doc.file == F
        for loc in [doc.locate(p) for p in doc.value_positions] + [
            doc.key_location(p) for p in doc.key_positions
        ]:
            assert loc.line >= 1
            assert loc.column >= 1


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_load_text_never_raises_on_text(content: str) -> None:
    _check_never_raises(content)


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_load_text_never_raises_on_bytes(content: bytes) -> None:
    _check_never_raises(content)


@settings(max_examples=500, deadline=None)
@given(_yamlish)
def test_load_text_never_raises_on_yamlish_text(content: str) -> None:
    _check_never_raises(content)
    _check_never_raises(content.encode("utf-8", "surrogatepass"))
