"""Tests of the example tool implementations in `plugins/` and of their agreement with `specs/`."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import math
import os
import re
import subprocess
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from plugins import code, documents, search, support
from plugins.documents import DocumentSource, EmbeddedChunk
from pydantic import BaseModel, ValidationError, create_model

from agent_platform._load import NOT_SPEC_FILES
from agent_platform._spec.kinds import MEMORY_WRITE_INPUT_SCHEMA

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def spec_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(SPECS.glob("*.yaml")):
        if path.name in NOT_SPEC_FILES:  # mcp.lock.yaml, written by `platform plan`
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


def spec(kind: str, name: str) -> dict[str, Any]:
    for doc in spec_documents():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc["spec"]  # type: ignore[no-any-return]
    raise LookupError(f"{kind}/{name} not found in specs/")


def assert_valid(schema: dict[str, Any], value: Any) -> None:
    errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(value)]
    assert not errors, errors


# --- extract ----------------------------------------------------------------------------------


def test_extract_text_strips_markdown_from_file(tmp_path: Path) -> None:
    source = tmp_path / "guide.md"
    source.write_text(
        "# Install guide\n\nRun **pip install** and read [the docs](https://example.org).\n\n"
        "- first item\n- second `item`\n\n![diagram](d.png)\n\n```bash\nmake demo\n```\n<br/>\n",
        encoding="utf-8",
    )
    doc = run(documents.extract_text(DocumentSource(id="guide", path=str(source))))
    assert doc.title == "Install guide"
    assert doc.media_type == "text/markdown"
    assert doc.source == str(source)
    assert doc.text == (
        "Install guide\n\nRun pip install and read the docs.\n\nfirst item\nsecond item\n\ndiagram\n\nmake demo"
    )
    assert doc.char_count == len(doc.text)


def test_extract_text_inline_plain_text_keeps_text_and_uses_first_line_as_title() -> None:
    doc = run(documents.extract_text(DocumentSource(id="n1", text="  Release notes\r\nFixed *two* bugs.\n")))
    assert doc.media_type == "text/plain"
    assert doc.source == "inline"
    assert doc.title == "Release notes"
    assert doc.text == "Release notes\nFixed *two* bugs."  # plain text is not treated as Markdown


def test_extract_text_rejects_unsupported_files_and_bad_sources(tmp_path: Path) -> None:
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.7")
    with pytest.raises(ValueError, match=re.escape("unsupported file type '.pdf'")):
        run(documents.extract_text(DocumentSource(id="p", path=str(pdf))))
    with pytest.raises(FileNotFoundError):
        run(documents.extract_text(DocumentSource(id="p", path=str(tmp_path / "missing.txt"))))
    with pytest.raises(ValidationError, match="exactly one of 'path' or 'text'"):
        DocumentSource(id="p", path="a.txt", text="both")
    with pytest.raises(ValidationError):
        DocumentSource(id="p")


# --- chunk ------------------------------------------------------------------------------------


def test_chunk_document_exact_boundaries_and_overlap() -> None:
    chunks = documents.chunk_document("d", "alpha beta gamma delta epsilon", size=16, overlap=6)
    assert [c.text for c in chunks] == ["alpha beta gamma", "gamma delta", "delta epsilon"]
    assert [(c.start, c.end) for c in chunks] == [(0, 16), (11, 22), (17, 30)]
    assert [c.id for c in chunks] == ["d#0000", "d#0001", "d#0002"]


def test_chunk_document_without_overlap_partitions_the_words() -> None:
    text = "one two three four five six seven"
    chunks = documents.chunk_document("d", text, size=10, overlap=0)
    assert [c.text for c in chunks] == ["one two", "three four", "five six", "seven"]


@pytest.mark.parametrize(("size", "overlap"), [(50, 0), (60, 15), (80, 40), (120, 30), (200, 199)])
def test_chunks_respect_size_word_boundaries_and_overlap(size: int, overlap: int) -> None:
    words = [f"w{i}" + "x" * (i * 7 % 9) for i in range(300)]
    text = " ".join(words).replace("x w1", "x\n\nw1")  # some paragraph breaks
    chunks = documents.chunk_document("doc", text, size=size, overlap=overlap)
    assert chunks
    covered: set[int] = set()
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert len(chunk.text) <= size
        assert chunk.start == 0 or text[chunk.start - 1].isspace()  # starts at a word
        assert chunk.end == len(text) or text[chunk.end].isspace()  # ends after a word
        covered.update(range(chunk.start, chunk.end))
    for previous, current in itertools.pairwise(chunks):
        assert current.start > previous.start
        assert current.end > previous.end  # every chunk adds new text
        shared = max(0, previous.end - current.start)
        assert shared <= overlap
        if overlap >= 20:  # words here are at most 12 characters: an overlap that fits a word is used
            assert shared > 0
    every_word = {i for m in re.finditer(r"\S+", text) for i in range(*m.span())}
    assert every_word <= covered


def test_a_word_longer_than_a_chunk_is_cut() -> None:
    chunks = documents.chunk_document("d", "short " + "x" * 130 + " tail", size=50, overlap=10)
    assert [c.text for c in chunks] == ["short", "x" * 50, "x" * 50, "x" * 30 + " tail"]


def test_chunk_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="overlap"):
        documents.chunk_document("d", "some text", size=50, overlap=50)
    with pytest.raises(ValueError, match="overlap"):
        documents.chunk_text([documents.TextDocument(id="d", text="x")], size=60, overlap=80)
    assert documents.chunk_document("d", "   \n ", size=50, overlap=0) == []


def test_chunk_text_batches_chunks_across_documents_in_order() -> None:
    docs = [
        documents.TextDocument(id=f"doc{i}", text="lorem ipsum dolor sit amet " * (i + 2)) for i in range(3)
    ]
    result = documents.chunk_text(docs, size=60, overlap=0, batch_size=2)
    per_document = [documents.chunk_document(d.id, d.text, size=60, overlap=0) for d in docs]
    assert [len(chunks) for chunks in per_document] == [1, 2, 2]
    assert (result.document_count, result.chunk_count) == (3, 5)
    assert [[c.id for c in batch] for batch in result.batches] == [
        ["doc0#0000", "doc1#0000"],
        ["doc1#0001", "doc2#0000"],
        ["doc2#0001"],
    ]
    assert [c for batch in result.batches for c in batch] == [c for chunks in per_document for c in chunks]


# --- embed ------------------------------------------------------------------------------------


def test_embeddings_are_deterministic_normalised_and_of_the_requested_dimension() -> None:
    a = documents.embed_text("Idempotency keys make retries safe", 384)
    assert a == documents.embed_text("Idempotency keys make retries safe", 384)
    assert len(a) == 384
    assert math.isclose(math.sqrt(sum(v * v for v in a)), 1.0, abs_tol=1e-5)
    assert len(documents.embed_text("Idempotency keys make retries safe", 64)) == 64
    assert documents.embed_text("", 32) == [0.0] * 32
    # Case and punctuation do not matter; shared words make texts similar.
    assert documents.embed_text("RETRIES, safe!", 128) == documents.embed_text("retries safe", 128)
    related = documents.cosine(a, documents.embed_text("retries are safe with idempotency keys", 384))
    unrelated = documents.cosine(a, documents.embed_text("the weather in spring is mild", 384))
    assert related > 0.5 > unrelated


def test_embeddings_do_not_depend_on_the_process_hash_seed() -> None:
    script = "from plugins.documents import embed_text; print(embed_text('vector search offline', 16))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == documents.embed_text("vector search offline", 16)


def test_embed_chunks_keeps_chunk_fields_and_order() -> None:
    chunks = documents.chunk_document("d", "alpha beta gamma delta epsilon", size=16, overlap=6)
    embedded = documents.embed_chunks(chunks, dimensions=32)
    assert [e.id for e in embedded] == [c.id for c in chunks]
    assert all(len(e.vector) == 32 and e.embedder == "hashed-bow-v1" for e in embedded)
    assert embedded[0].vector == documents.embed_text("alpha beta gamma", 32)


# --- store ------------------------------------------------------------------------------------


def _records(dimensions: int = 16) -> list[EmbeddedChunk]:
    chunks = documents.chunk_document("doc", "one two three four five six", size=10, overlap=0)
    return documents.embed_chunks(chunks, dimensions=dimensions)


def test_store_vectors_appends_jsonl_and_skips_stored_ids(tmp_path: Path) -> None:
    records = _records()
    first = run(documents.store_vectors("kb", records, state_dir=str(tmp_path)))
    path = tmp_path / "vectors" / "kb.jsonl"
    assert first.path == str(path)
    assert (first.stored, first.skipped) == (3, 0)
    assert first.ids == ["doc#0000", "doc#0001", "doc#0002"]
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == first.ids
    assert lines[0]["text"] == "one two" and len(lines[0]["vector"]) == 16

    again = run(documents.store_vectors("kb", records, state_dir=str(tmp_path)))
    assert (again.stored, again.skipped, again.ids) == (0, 3, [])
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3


def test_store_vectors_uses_the_state_dir_env_and_checks_its_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    result = run(documents.store_vectors("docs", _records()))
    assert Path(result.path) == tmp_path / "state" / "vectors" / "docs.jsonl"
    with pytest.raises(ValueError, match="dimensions"):
        run(documents.store_vectors("docs", [r.model_copy(update={"id": "other"}) for r in _records(8)]))
    with pytest.raises(ValueError, match="invalid collection name"):
        run(documents.store_vectors("../escape", _records()))


def test_concurrent_stores_to_one_collection_lose_nothing(tmp_path: Path) -> None:
    batches = [
        documents.embed_chunks(documents.chunk_document(f"d{i}", "a b c d e f g h", size=5, overlap=0), 8)
        for i in range(6)
    ]

    async def store_all() -> list[documents.StoreResult]:
        return await asyncio.gather(
            *(documents.store_vectors("c", b, state_dir=str(tmp_path)) for b in batches)
        )

    results = run(store_all())
    lines = (tmp_path / "vectors" / "c.jsonl").read_text(encoding="utf-8").splitlines()
    assert sum(r.stored for r in results) == len(lines) == sum(len(b) for b in batches)
    assert len({json.loads(line)["id"] for line in lines}) == len(lines)


# --- search -----------------------------------------------------------------------------------


def test_corpus_is_bundled_and_well_formed() -> None:
    corpus = search.load_corpus()
    assert 25 <= len(corpus) <= 40
    assert len({e.id for e in corpus}) == len(corpus)
    assert {e.collection for e in corpus} == {"web", "support"}


def test_web_search_ranks_by_term_overlap() -> None:
    response = run(search.web_search("idempotency keys retries side effects", max_results=3))
    assert [r.id for r in response.results] == ["web-003", "web-004", "kb-006"]
    assert [r.score for r in response.results] == [7.0, 4.0, 2.0]
    assert response.total_matches > 3
    assert response.results[0].snippet == "A retried or resumed run must never repeat a side effect."


def test_web_search_orders_ties_by_id_and_limits_results() -> None:
    response = run(search.web_search("vector", max_results=10))
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)
    for a, b in itertools.pairwise(response.results):
        assert a.score > b.score or a.id < b.id
    assert len(run(search.web_search("vector", max_results=1)).results) == 1


def test_web_search_without_matches_and_without_words() -> None:
    assert run(search.web_search("zebra xylophone")).results == []
    with pytest.raises(ValueError, match="no searchable words"):
        run(search.web_search("the of and"))


# --- code -------------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLATFORM_WORKSPACE", str(tmp_path))
    return tmp_path


def test_read_file_numbers_lines_and_pages(workspace: Path) -> None:
    (workspace / "pkg").mkdir()
    (workspace / "pkg" / "mod.py").write_text("\n".join(f"line {i}" for i in range(1, 13)) + "\n")
    page = run(code.read_file("pkg/mod.py", start_line=9, max_lines=2))
    assert (page.path, page.start_line, page.end_line, page.total_lines) == ("pkg/mod.py", 9, 10, 12)
    assert page.truncated is True
    assert page.text == " 9 | line 9\n10 | line 10"
    last = run(code.read_file("pkg/mod.py", start_line=11, line_numbers=False))
    assert (last.text, last.truncated) == ("line 11\nline 12", False)


def test_read_file_refuses_paths_outside_the_workspace(workspace: Path) -> None:
    (workspace.parent / "secret.txt").write_text("token")
    with pytest.raises(PermissionError, match="outside the workspace"):
        run(code.read_file("../secret.txt"))
    with pytest.raises(FileNotFoundError):
        run(code.read_file("missing.py"))


def test_linter_reports_a_syntax_error_with_its_line() -> None:
    report = code.run_linter(source="import os\n\ndef broken(:\n    return os.sep\n")
    assert report.ok is False
    assert report.error_count == 1
    [issue] = report.issues
    assert (issue.code, issue.line, issue.severity) == ("E999", 3, "error")
    assert issue.message.startswith("SyntaxError")
    compiled = code.run_linter(source="x = 1\nreturn x\n")  # only the compiler rejects this one
    assert [(i.code, i.line) for i in compiled.issues] == [("E999", 2)]


def test_linter_reports_compiler_warnings_without_printing_them(recwarn: pytest.WarningsRecorder) -> None:
    report = code.run_linter(source='import re\n\nDIGITS = re.compile("\\d+")\nassert (DIGITS, "x")\n')
    assert [(i.line, i.code) for i in report.issues] == [(3, "W605"), (4, "F631")]
    assert len(recwarn) == 0


def test_linter_finds_common_problems_in_a_file(workspace: Path) -> None:
    (workspace / "app.py").write_text(
        "import os\n"
        "import sys\n"
        "\n"
        "def f(items=[], flag=None):  \n"
        "    try:\n"
        "        return sys.argv == None\n"
        "    except:\n"
        "        assert (flag, 'message')\n"
        "    return flag == True\n"
    )
    report = code.run_linter(path="app.py", max_line_length=40)
    assert report.ok is True  # warnings only
    assert [(i.line, i.code) for i in report.issues] == [
        (1, "F401"),
        (4, "B006"),
        (4, "W291"),
        (6, "E711"),
        (7, "E722"),
        (8, "F631"),
        (9, "E712"),
    ]
    assert report.warning_count == 7
    with pytest.raises(ValueError, match="exactly one"):
        code.run_linter()


def test_collect_tests_lists_tests_without_running_them() -> None:
    source = (
        "import pytest\n"
        "raise SystemExit('this module is never executed')\n"
        "def helper(): pass\n"
        "def test_one():\n    assert 1\n"
        "@pytest.mark.parametrize('x', [1, 2])\n"
        "async def test_two(x):\n    with pytest.raises(ValueError):\n        int('x')\n"
        "class TestGroup:\n    def test_three(self):\n        pass\n    def helper(self): pass\n"
        "class TestSkipped:\n    def __init__(self): pass\n    def test_never(self): assert 1\n"
        "def test_one():\n    assert 2\n"
    )
    collection = code.collect_tests(source=source)
    assert [(t.name, t.line) for t in collection.tests] == [
        ("test_two", 7),
        ("TestGroup::test_three", 11),
        ("test_one", 17),
    ]
    assert collection.count == 3
    two = collection.tests[0]
    assert (two.is_async, two.parametrized, two.has_assert) == (True, True, True)
    assert collection.tests[1].has_assert is False
    assert len(collection.warnings) == 3
    assert any("redefines the test at line 4" in w for w in collection.warnings)
    assert any("TestGroup::test_three' asserts nothing" in w for w in collection.warnings)
    assert any("TestSkipped' has __init__" in w for w in collection.warnings)


# --- support ----------------------------------------------------------------------------------


def test_search_knowledge_base_returns_only_help_articles() -> None:
    results = run(support.search_knowledge_base("forgot password reset email", top_k=3))
    assert results.articles[0].id == "kb-001"
    assert all(a.id.startswith("kb-") for a in results.articles)
    assert len(results.articles) <= 3


def test_create_ticket_writes_a_record_per_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path))
    receipt = run(
        support.create_ticket(
            customer_id="cus_42",
            subject="Cannot export data",
            description="The export link in the email has expired twice.",
            priority="high",
            category="data",
            kb_articles=["kb-007"],
        )
    )
    pattern = spec("Agent", "support-agent")["output"]["properties"]["ticket_id"]["pattern"]
    assert re.match(pattern, receipt.ticket_id)
    path = tmp_path / "tickets" / f"{receipt.ticket_id}.json"
    assert receipt.path == str(path)
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["ticket_id"] == receipt.ticket_id
    assert record["customer_id"] == "cus_42"
    assert record["status"] == "open" and record["priority"] == "high"
    assert record["kb_articles"] == ["kb-007"]
    assert record["created_at"].endswith("+00:00")  # timezone-aware UTC
    # Deduplication is the platform's job (idempotency: {mode: key}); the tool itself is safe to
    # call again: a second call opens a second ticket and never overwrites the first.
    second = run(support.create_ticket("cus_42", "Cannot export data", "The export link expired again."))
    assert second.ticket_id != receipt.ticket_id
    assert sorted(p.name for p in (tmp_path / "tickets").iterdir()) == sorted(
        [f"{receipt.ticket_id}.json", f"{second.ticket_id}.json"]
    )


# --- agreement between the tool specs and the functions ---------------------------------------


def _derived_input_schema(func: Callable[..., Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {
        name: (hints[name], ... if p.default is inspect.Parameter.empty else p.default)
        for name, p in inspect.signature(func).parameters.items()
    }
    arguments: type[BaseModel] = create_model(func.__name__, **fields)
    return arguments.model_json_schema()


def _json_type(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        options = [_json_type(s, defs) for s in schema["anyOf"] if s.get("type") != "null"]
        return options[0] if len(options) == 1 else options
    return schema.get("type")


def _python_tools() -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"])
        for d in spec_documents()
        if d["kind"] == "Tool" and "python" in d["spec"]
    ]


def _function(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    return getattr(__import__(module, fromlist=[attr]), attr)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("name", "tool"), [pytest.param(n, t, id=n) for n, t in _python_tools()])
def test_tool_input_schema_matches_the_function_signature(name: str, tool: dict[str, Any]) -> None:
    derived = _derived_input_schema(_function(tool["python"]))
    declared = tool["input_schema"]
    defs = derived.get("$defs", {})
    assert set(declared["properties"]) == set(derived["properties"]), name
    assert set(declared.get("required", [])) == set(derived.get("required", [])), name
    for prop, schema in declared["properties"].items():
        assert schema.get("type") == _json_type(derived["properties"][prop], defs), f"{name}.{prop}"


def test_the_ingestion_pipeline_chain_produces_what_its_step_schemas_declare(tmp_path: Path) -> None:
    """Run the pipeline's tools in order, as its steps wire them, checking every step's output
    against the schema the spec declares for it."""
    pipeline = spec("Pipeline", "ingest-documents")
    steps = {step["name"]: step for step in pipeline["steps"]}
    (tmp_path / "a.md").write_text(
        "# Retries\n\n" + "Retry with **backoff** and jitter. " * 20, encoding="utf-8"
    )
    inputs: dict[str, Any] = {
        "documents": [{"id": "a", "path": str(tmp_path / "a.md")}, {"id": "b", "text": "Short note. " * 30}],
    }
    assert_valid(pipeline["inputs"], inputs)

    async def extract_all() -> list[Any]:
        return await asyncio.gather(
            *(documents.extract_text(DocumentSource(**d)) for d in inputs["documents"])
        )

    extracted = [d.model_dump() for d in run(extract_all())]
    assert_valid(steps["extract"]["output"], extracted)
    chunked = documents.chunk_text(
        [documents.TextDocument(**d) for d in extracted], size=200, overlap=40, batch_size=4
    ).model_dump()
    assert_valid(spec("Tool", "chunk-text")["output_schema"], chunked)
    prepared = documents.chunks_to_memory(
        [[documents.Chunk(**c) for c in batch] for batch in chunked["batches"]],
        [documents.TitledDocument(**d) for d in extracted],
    ).model_dump()
    assert_valid(spec("Tool", "chunks-to-memory")["output_schema"], prepared)
    assert prepared["item_count"] == chunked["chunk_count"] > 2
    # Each batch is what the `memory` step takes as its items.
    for batch in prepared["batches"]:
        assert_valid(MEMORY_WRITE_INPUT_SCHEMA, {"items": batch})
    first = prepared["batches"][0][0]
    assert first["id"] == "a#0000" and first["content"].startswith("Retries: ")
    assert first["metadata"]["document_id"] == "a" and first["metadata"]["title"] == "Retries"


def test_tool_outputs_match_their_declared_output_schemas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "test_x.py").write_text("def test_x():\n    assert True\n")
    outputs = {
        "web-search": run(search.web_search("agent loop")),
        "search-knowledge-base": run(support.search_knowledge_base("invoice")),
        "create-ticket": run(
            support.create_ticket("c1", "Invoice wrong", "The invoice lists a project twice.")
        ),
        "read-file": run(code.read_file("test_x.py")),
        "run-linter": code.run_linter(path="test_x.py"),
        "collect-tests": code.collect_tests(path="test_x.py"),
        "extract-text": run(documents.extract_text(DocumentSource(id="d", text="Hello world"))),
    }
    for name, output in outputs.items():
        assert_valid(spec("Tool", name)["output_schema"], output.model_dump())
