"""`synthesize`: a deterministic, schema-valid instance of any pydantic model."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Literal
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_schema_to_pydantic import create_model
from pydantic import BaseModel, Field

from agent_platform._runtime.models.synthesize import (
    SynthesisError,
    prefers_final_answer,
    regex_examples,
    synthesize,
)


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Inner(BaseModel):
    count: int = Field(gt=3, le=9)
    ratio: float = Field(gt=0, lt=1)
    floor: float = Field(ge=2.5)
    tags: list[str] = Field(min_length=3)
    distinct: set[int] = Field(min_length=3)


class Everything(BaseModel):
    name: str = Field(pattern=r"^test_")
    code: str = Field(pattern=r"^[A-Z]{2}-\d{3}$")
    when: datetime
    day: date
    uid: UUID
    colour: Colour
    choice: Literal["a", "b"]
    inner: Inner
    maybe: int | None
    defaulted: int = 5
    sized: str = Field(min_length=10, max_length=12)
    stepped: int = Field(multiple_of=7, ge=10)
    negative: int = Field(lt=-3)
    mapping: dict[str, int] = Field(min_length=2)


def test_constraints_are_respected() -> None:
    value = synthesize(Everything)
    assert isinstance(value, Everything)
    assert value.name.startswith("test_")
    assert re.fullmatch(r"[A-Z]{2}-\d{3}", value.code)
    assert value.colour is Colour.RED and value.choice == "a"
    assert value.inner.count == 4 and 0 < value.inner.ratio < 1 and value.inner.floor == 2.5
    assert len(value.inner.tags) == 3 and len(value.inner.distinct) == 3
    assert value.defaulted == 5 and "defaulted" not in value.model_fields_set  # optional: default kept
    assert 10 <= len(value.sized) <= 12
    assert value.stepped % 7 == 0 and value.stepped >= 10
    assert value.negative < -3
    assert len(value.mapping) == 2


def test_deterministic() -> None:
    assert synthesize(Everything).model_dump_json() == synthesize(Everything).model_dump_json()


class Search(BaseModel):
    action: Literal["web-search"]
    query: str


class Final(BaseModel):
    action: Literal["final_answer"]
    answer: str


class Decision(BaseModel):
    thought: str
    action: Annotated[Search | Final, Field(discriminator="action")]


class PlainUnion(BaseModel):
    value: int | str


def test_unions_take_the_first_branch_unless_preferred() -> None:
    assert isinstance(synthesize(Decision).action, Search)
    assert isinstance(synthesize(Decision, prefer=prefers_final_answer).action, Final)
    assert synthesize(PlainUnion).value == 0
    assert synthesize(PlainUnion, prefer=lambda s: s.get("type") == "string").value == "text"


class Tree(BaseModel):
    label: str
    children: list[Tree] = Field(default_factory=list)
    parent: Tree | None = None


class Loop(BaseModel):
    again: Loop


def test_recursive_models() -> None:
    assert synthesize(Tree) == Tree(label="text")
    with pytest.raises(SynthesisError, match="Loop"):
        synthesize(Loop)


class Impossible(BaseModel):
    text: str = Field(min_length=5, max_length=2)


class Hidden(BaseModel):
    text: str

    def model_post_init(self, context: Any) -> None:
        if self.text == "text":
            raise ValueError("no")


def test_impossible_models_raise_a_clear_error() -> None:
    with pytest.raises(SynthesisError, match=r"Impossible at text: no string found"):
        synthesize(Impossible)
    with pytest.raises(SynthesisError, match="does not validate"):
        synthesize(Hidden)


@pytest.mark.parametrize(
    "pattern",
    [
        r"^test_",
        r"^[a-z]+$",
        r"^(foo|bar)baz\d+$",
        r"[^,]{3}",
        r"^\w+@\w+\.com$",
        r"^(?:ab)+c?$",
        r"^x{2,}y$",
    ],
)
def test_regex_examples_match(pattern: str) -> None:
    examples = regex_examples(pattern)
    assert examples and all(re.search(pattern, e) for e in examples[:3])


# --- property: random JSON schemas -> json_schema_to_pydantic -> a valid instance ---------------

PATTERNS = [
    r"^test_",
    r"^[a-z]+$",
    r"^[A-Z]{2,4}-[0-9]{3}$",
    r"\d{3}",
    r"^(foo|bar)_\w+$",
    r"^[^@\s]+@[a-z]+\.com$",
]


@st.composite
def string_schemas(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["plain", "bounded", "pattern", "pattern+min", "format"]))
    if kind == "plain":
        return {"type": "string"}
    if kind == "bounded":
        low = draw(st.integers(0, 12))
        schema: dict[str, Any] = {"type": "string", "minLength": low}
        if draw(st.booleans()):
            schema["maxLength"] = draw(st.integers(max(low, 1), low + 12))
        return schema
    if kind == "pattern":
        return {"type": "string", "pattern": draw(st.sampled_from(PATTERNS))}
    if kind == "pattern+min":  # an unbounded pattern long enough for any minLength
        return {"type": "string", "pattern": r"^[a-z]+$", "minLength": draw(st.integers(1, 15))}
    return {"type": "string", "format": draw(st.sampled_from(["date-time", "date", "uuid", "uri", "email"]))}


@st.composite
def integer_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    low = draw(st.none() | st.integers(-1000, 1000))
    high = draw(st.none() | st.integers(-1000, 1000))
    step = draw(st.none() | st.integers(1, 7))
    if low is not None and high is not None and high < low + 2 * (step or 1) + 2:
        high = low + 2 * (step or 1) + 2
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if high is not None:
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    if step is not None and (low is None or high is None or high - low > 2 * step + 2):
        schema["multipleOf"] = step
    return schema


@st.composite
def number_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    low = draw(st.none() | finite)
    high = draw(st.none() | finite)
    if low is not None and high is not None and high <= low + 1e-3:
        high = low + 1.0
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if high is not None:
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    return schema


enum_schemas = st.one_of(
    st.lists(st.text("abcxyz", min_size=1, max_size=5), min_size=1, max_size=4, unique=True),
    st.lists(st.integers(-50, 50), min_size=1, max_size=4, unique=True),
).map(lambda values: {"enum": values})

scalar_schemas = st.one_of(
    string_schemas(),
    integer_schemas(),
    number_schemas(),
    st.just({"type": "boolean"}),
    enum_schemas,
)


@st.composite
def array_schemas(draw: st.DrawFn, items: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    unique = draw(st.booleans())
    if unique:  # distinct items must exist: unbounded strings or integers
        item = draw(st.sampled_from([{"type": "string"}, {"type": "integer", "minimum": 0}]))
    else:
        item = draw(items)
    return {"type": "array", "items": item, "minItems": draw(st.integers(0, 4)), "uniqueItems": unique}


def object_schemas(values: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        props = draw(st.lists(values, min_size=1, max_size=5))
        names = [f"p{i}" for i in range(len(props))]
        required = [n for n in names if draw(st.booleans())]
        return {"type": "object", "properties": dict(zip(names, props, strict=True)), "required": required}

    return build()


schemas = st.recursive(
    scalar_schemas,
    lambda inner: st.one_of(array_schemas(inner), object_schemas(inner)),
    max_leaves=12,
).filter(lambda s: s.get("type") == "object") | object_schemas(scalar_schemas)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemas)
def test_any_generated_schema_gets_a_valid_instance(schema: dict[str, Any]) -> None:
    model: type[BaseModel] = create_model(schema)
    value = synthesize(model)
    assert isinstance(value, model)
    model.model_validate_json(value.model_dump_json(exclude_unset=True))  # round-trips
    assert synthesize(model).model_dump_json(exclude_unset=True) == value.model_dump_json(exclude_unset=True)
