"""Tool registry: argument schemas derived by pydantic from signatures and docstrings, validation
before the call, sync/async/inline execution, spec loading (python, mcp) and the real plugins."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from agent_platform._compile.plan import ToolBinding
from agent_platform._runtime.clock import FakeClock
from agent_platform._runtime.tools import (
    PythonTool,
    ToolArgumentsInvalid,
    ToolExecutor,
    ToolRegistry,
    ToolUnavailable,
    tool,
)
from agent_platform._spec.kinds import ToolSpec

REPO = Path(__file__).resolve().parents[2]


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: int = 0


class Style(TypedDict):
    dashed: bool


@dataclasses.dataclass
class Box:
    width: float
    height: float


def draw(
    points: list[Point],
    colour: Colour,
    origin: Point,
    mode: Literal["fast", "precise"] = "fast",
    label: str | None = None,
    style: Style | None = None,
    box: Box | None = None,
    weights: dict[str, float] | None = None,
    repeat: Annotated[int, Field(ge=1, le=10, description="How often (explicit).")] = 1,
) -> dict[str, Any]:
    """Draw points on a canvas.

    Longer explanation that the model also sees.

    Args:
        points: The points to draw, in order.
        colour: Stroke colour.
        origin: Where the canvas starts.
        mode: Speed or precision.
        label: An optional caption,
            which may wrap onto a second line.
        repeat: This docstring text loses to the explicit Field description.
    """
    return {"n": len(points), "colour": colour.value, "box": dataclasses.asdict(box) if box else None}


def spec(**fields: Any) -> ToolSpec:
    fields.setdefault("description", "A test tool.")
    if not any(k in fields for k in ("python", "http", "mcp")):
        fields["python"] = "testing:registered"  # the registered function under the name wins
    return ToolSpec.model_validate(fields)


def executor_for(registry: ToolRegistry, name: str, **fields: Any) -> ToolExecutor:
    return ToolExecutor([ToolBinding(name, spec(**fields))], registry, clock=FakeClock())


# --- schema derivation ------------------------------------------------------------------------


def test_schema_is_derived_by_pydantic_with_nested_types_and_docstring_descriptions() -> None:
    t = ToolRegistry(plugin_paths=[]).register(draw)
    schema = t.json_schema()
    props = schema["properties"]
    defs = schema["$defs"]

    assert t.name == "draw"
    assert t.description == "Draw points on a canvas.\n\nLonger explanation that the model also sees."
    assert set(schema["required"]) == {"points", "colour", "origin"}
    assert schema["additionalProperties"] is False
    # nested models and list[Model]
    assert props["points"]["type"] == "array"
    assert props["points"]["items"] == {"$ref": "#/$defs/Point"}
    assert defs["Point"]["properties"]["x"]["type"] == "integer"
    assert defs["Point"]["required"] == ["x"]
    assert props["origin"]["$ref"] == "#/$defs/Point"
    # enum and Literal
    assert defs["Colour"]["enum"] == ["red", "blue"]
    assert props["mode"]["enum"] == ["fast", "precise"]
    assert props["mode"]["default"] == "fast"
    # Optional with default None
    assert {"type": "null"} in props["label"]["anyOf"]
    assert props["label"]["default"] is None
    assert "label" not in schema["required"]
    # TypedDict, dataclass, dict
    assert defs["Style"]["properties"]["dashed"]["type"] == "boolean"
    assert defs["Box"]["properties"]["width"]["type"] == "number"
    assert {"type": "object", "additionalProperties": {"type": "number"}} in props["weights"]["anyOf"]
    # Annotated constraints; Field description wins over the docstring
    assert props["repeat"]["minimum"] == 1 and props["repeat"]["maximum"] == 10
    assert props["repeat"]["description"] == "How often (explicit)."
    # docstring Args: descriptions, wrapped lines joined
    assert props["points"]["description"] == "The points to draw, in order."
    assert props["colour"]["description"] == "Stroke colour."
    assert props["label"]["description"] == "An optional caption, which may wrap onto a second line."


def test_arguments_are_validated_into_typed_values() -> None:
    t = ToolRegistry(plugin_paths=[]).register(draw)
    args = t.validate(
        {
            "points": [{"x": 1}, {"x": 2, "y": 3}],
            "colour": "blue",
            "origin": {"x": 0},
            "box": {"width": 2, "height": 1.5},
            "style": {"dashed": True},
        }
    )
    assert args.kwargs["points"] == [Point(x=1), Point(x=2, y=3)]
    assert args.kwargs["colour"] is Colour.BLUE
    assert args.kwargs["box"] == Box(2.0, 1.5)
    assert args.kwargs["repeat"] == 1
    assert asyncio.run(t.invoke(args)) == {"n": 2, "colour": "blue", "box": {"width": 2.0, "height": 1.5}}


def test_invalid_arguments_list_every_error_for_the_model() -> None:
    t = ToolRegistry(plugin_paths=[]).register(draw)
    with pytest.raises(ToolArgumentsInvalid) as caught:
        t.validate({"points": [{"x": "one"}], "colour": "green", "repeat": 11, "zoom": 2})
    errors = "\n".join(caught.value.errors)
    assert "points.0.x: Input should be a valid integer" in errors
    assert "colour: Input should be 'red' or 'blue'" in errors
    assert "repeat: Input should be less than or equal to 10" in errors
    assert "origin: Field required" in errors
    assert "zoom: Extra inputs are not permitted" in errors
    assert "fix them" in caught.value.for_model()


async def test_invalid_arguments_never_reach_the_function() -> None:
    calls: list[int] = []

    def count(n: int) -> int:
        calls.append(n)
        return n

    registry = ToolRegistry(plugin_paths=[])
    registry.register(count, name="count")
    executor = executor_for(registry, "count")
    result = await executor.call("count", {"n": "not a number"}, run_id="r1")
    assert result.is_error and isinstance(result.error, ToolArgumentsInvalid)
    assert result.attempts == 0
    assert calls == []
    ok = await executor.call("count", {"n": 3}, run_id="r1")
    assert ok.output == 3 and calls == [3]


def test_decorator_bare_and_with_options() -> None:
    @tool
    def plain(text: str) -> str:
        """Echo the text."""
        return text

    @tool(name="adder", description="Adds two integers.", inline=True)
    def add(a: int, b: int) -> int:
        return a + b

    assert plain("x") == "x" and add(1, 2) == 3  # still plain functions
    registry = ToolRegistry(plugin_paths=[])
    first, second = registry.register(plain), registry.register(add)
    assert (first.name, first.description) == ("plain", "Echo the text.")
    assert (second.name, second.description, second.runs_inline) == ("adder", "Adds two integers.", True)
    assert registry.names() == ["adder", "plain"]
    with pytest.raises(ValueError, match="already registered"):
        registry.register(plain)

    with pytest.raises(TypeError, match="sync functions"):

        @tool(inline=True)
        async def bad() -> None:
            return None


def test_parameters_need_type_hints_and_names() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    def star(*items: int) -> int:
        return len(items)

    registry = ToolRegistry(plugin_paths=[])
    with pytest.raises(TypeError, match="no type hint"):
        registry.register(untyped)
    with pytest.raises(TypeError, match="named parameters"):
        registry.register(star)


def test_awkward_parameter_names_and_positional_only() -> None:
    def odd(json: int, schema: str, model_id: str, /, copy: bool = False) -> list[Any]:
        return [json, schema, model_id, copy]

    t = ToolRegistry(plugin_paths=[]).register(odd)
    assert set(t.json_schema()["properties"]) == {"json", "schema", "model_id", "copy"}
    args = t.validate({"json": 1, "schema": "s", "model_id": "m", "copy": True})
    assert asyncio.run(t.invoke(args)) == [1, "s", "m", True]
    assert args.jsonable() == {"json": 1, "schema": "s", "model_id": "m", "copy": True}


# --- where functions run ----------------------------------------------------------------------


async def test_sync_tools_run_off_the_loop_and_inline_ones_on_it() -> None:
    seen: dict[str, int] = {}

    def blocking(tag: str) -> str:
        seen[tag] = threading.get_ident()
        return tag

    @tool(inline=True)
    def trivial(tag: str) -> str:
        seen[tag] = threading.get_ident()
        return tag

    async def asynchronous(tag: str) -> str:
        seen[tag] = threading.get_ident()
        return tag

    registry = ToolRegistry(plugin_paths=[])
    registry.register(blocking, name="blocking")
    registry.register(trivial, name="trivial")
    registry.register(asynchronous, name="asynchronous")
    bindings = [ToolBinding(n, spec()) for n in ("blocking", "trivial", "asynchronous")]
    executor = ToolExecutor(bindings, registry, clock=FakeClock())
    for name in ("blocking", "trivial", "asynchronous"):
        result = await executor.call(name, {"tag": name}, run_id="r")
        assert result.output == name, result.error
    loop_thread = threading.get_ident()
    assert seen["blocking"] != loop_thread
    assert seen["trivial"] == loop_thread
    assert seen["asynchronous"] == loop_thread


# --- specs ------------------------------------------------------------------------------------


async def test_a_declared_input_schema_is_enforced_as_well_as_the_signature() -> None:
    def greet(name: str, times: int = 1) -> str:
        return " ".join(["hello " + name] * times)

    registry = ToolRegistry(plugin_paths=[])
    registry.register(greet, name="greet")
    declared = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {"name": {"type": "string", "maxLength": 5}, "times": {"type": "integer"}},
    }
    executor = executor_for(registry, "greet", input_schema=declared)
    assert executor.tool("greet").json_schema() == declared  # the declared schema is what the model sees

    too_long = await executor.call("greet", {"name": "Bartholomew"}, run_id="r")
    assert isinstance(too_long.error, ToolArgumentsInvalid)
    assert any("name" in e and "longer than 5" in e for e in too_long.error.errors)
    # the derived model still applies: "2" is a string to the declared schema
    wrong_type = await executor.call("greet", {"name": "Ann", "times": "2"}, run_id="r")
    assert isinstance(wrong_type.error, ToolArgumentsInvalid)
    ok = await executor.call("greet", {"name": "Ann", "times": 2}, run_id="r")
    assert ok.output == "hello Ann hello Ann"


async def test_an_mcp_tool_without_its_server_is_listed_but_unavailable_with_a_clear_reason() -> None:
    """A binding built by hand, not compiled from an McpServer spec and its lock (tests/mcp runs
    real MCP servers)."""
    registry = ToolRegistry(plugin_paths=[])
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    executor = executor_for(
        registry, "lookup", mcp={"server": "some-server", "tool": "lookup"}, input_schema=schema
    )
    assert executor.describe(["lookup"])[0]["input_schema"] == schema
    result = await executor.call("lookup", {"q": "x"}, run_id="r")
    assert isinstance(result.error, ToolUnavailable)
    assert "through its McpServer 'some-server'" in result.error.message


async def test_an_unimportable_tool_reports_why_per_call() -> None:
    registry = ToolRegistry(plugin_paths=[REPO])
    binding = ToolBinding("ghost", spec(python="plugins.search:no_such_function"))
    executor = ToolExecutor([binding], registry, clock=FakeClock())
    result = await executor.call("ghost", {}, run_id="r")
    assert isinstance(result.error, ToolUnavailable)
    assert "no attribute 'no_such_function'" in result.error.message
    unknown = await executor.call("web-serch", {}, run_id="r")
    assert isinstance(unknown.error, ToolUnavailable) and "no tool named" in unknown.error.message


# --- the real plugins -------------------------------------------------------------------------


def _tool_spec_from(path: Path, name: str) -> ToolSpec:
    for document in yaml.safe_load_all(path.read_text()):
        if document and document.get("kind") == "Tool" and document["metadata"]["name"] == name:
            return ToolSpec.model_validate(document["spec"])
    raise AssertionError(f"no Tool {name} in {path}")


async def test_real_web_search_plugin_loads_from_its_spec_and_runs() -> None:
    registry = ToolRegistry(plugin_paths=[REPO])
    web = _tool_spec_from(REPO / "specs" / "research-agent.yaml", "web-search")
    executor = ToolExecutor([ToolBinding("web-search", web)], registry, clock=FakeClock())
    loaded = executor.tool("web-search")
    assert isinstance(loaded, PythonTool) and loaded.ref == "plugins.search:web_search"
    derived = loaded.derived_json_schema()["properties"]
    assert derived["query"]["description"].startswith("What to search for")
    assert derived["max_results"]["maximum"] == 10

    result = await executor.call("web-search", {"query": "idempotency keys retries"}, run_id="r")
    assert not result.is_error, result.error
    assert result.output["query"] == "idempotency keys retries"
    assert 1 <= len(result.output["results"]) <= 5
    assert {"id", "title", "url", "snippet", "score"} <= set(result.output["results"][0])
    again = await executor.call(
        "web-search", {"max_results": 5, "query": "idempotency keys retries"}, run_id="r"
    )
    assert again.cached and again.output == result.output  # the spec's cache mode, canonical key

    bad = await executor.call("web-search", {"query": "x", "max_results": 50}, run_id="r")
    assert isinstance(bad.error, ToolArgumentsInvalid)


async def test_real_chunk_text_plugin_runs_through_the_registry() -> None:
    registry = ToolRegistry(plugin_paths=[REPO])
    chunk = spec(python="plugins.documents:chunk_text", description="Chunk documents.")
    executor = ToolExecutor([ToolBinding("chunk-text", chunk)], registry, clock=FakeClock())
    schema = executor.tool("chunk-text").json_schema()
    assert schema["properties"]["documents"]["items"] == {"$ref": "#/$defs/TextDocument"}
    assert schema["properties"]["size"]["minimum"] == 50
    text = " ".join(f"word{i}" for i in range(200))
    result = await executor.call(
        "chunk-text",
        {"documents": [{"id": "doc", "text": text}], "size": 100, "overlap": 10, "batch_size": 4},
        run_id="r",
    )
    assert not result.is_error, result.error
    assert result.output["document_count"] == 1
    chunks = [c for batch in result.output["batches"] for c in batch]
    assert result.output["chunk_count"] == len(chunks) > 1
    assert all(len(c["text"]) <= 100 for c in chunks)
    assert all(len(batch) <= 4 for batch in result.output["batches"])
    refused = await executor.call("chunk-text", {"documents": [{"text": "no id"}]}, run_id="r")
    assert isinstance(refused.error, ToolArgumentsInvalid)
    assert any("documents.0.id" in e for e in refused.error.errors)
