"""`platform memory ls / search / forget` and `platform down` stopping the embedded server, against
a real embedded pgvector server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_platform._cli import app
from agent_platform._memory.items import Provenance
from agent_platform._memory.manager import MemoryEntry
from agent_platform._memory.registry import MemoryRegistry
from agent_platform._memory.stores.base import VectorStoreError
from agent_platform._spec.kinds import MemorySpec


def memory_yaml(url: str, tag: str) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: agents.platform/v1
        kind: Memory
        metadata: {{name: kb}}
        spec:
          knowledge:
            store: {{backend: pgvector, url: "{url}", collection: k-{tag}}}
            namespace_by: [tenant]
          episodic:
            store: {{backend: pgvector, url: "{url}", collection: e-{tag}}}
            retention: 30d
        """
    )


@pytest.fixture
def specs(tmp_path: Path, pg_url: str) -> Path:
    path = tmp_path / "memory.yaml"
    path.write_text(memory_yaml(pg_url, uuid.uuid4().hex[:10]))
    return path


def seed(specs: Path) -> None:
    """Two tenants' documents and one agent's facts, through the manager."""
    import yaml

    spec = MemorySpec.model_validate(yaml.safe_load(specs.read_text())["spec"])

    async def go() -> None:
        registry = MemoryRegistry({"kb": spec})
        manager = registry.manager("kb")
        try:
            ingest = Provenance(source="pipeline", pipeline="ingest", run_id="run-1")
            for tenant, text in [
                ("acme", "Acme invoices are due within 30 days."),
                ("acme", "Acme's support hours are 9 to 5 on weekdays."),
                ("initech", "Initech invoices are due within 60 days."),
            ]:
                await manager.write("knowledge", [MemoryEntry(text, "document", ingest)], tenant=tenant)
            await manager.write(
                "episodic",
                [MemoryEntry("The customer prefers e-mail.", "fact", Provenance(source="tool", tool="crm"))],
                agent="support",
                tenant="acme",
            )
        finally:
            await registry.close()

    asyncio.run(go())


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_ls_lists_memories_layers_and_namespaces(specs: Path) -> None:
    seed(specs)
    code, out, _ = invoke("memory", "ls", "--specs", str(specs))
    assert code == 0, out
    assert "kb knowledge: pgvector collection 'k-" in out
    assert "3 item(s) in 2 namespace(s): tenant=acme, tenant=initech" in out
    assert "kb episodic: pgvector" in out and "1 item(s) in 1 namespace(s): tenant=acme/agent=support" in out

    code, out, _ = invoke(
        "memory",
        "ls",
        "kb",
        "--layer",
        "knowledge",
        "--namespace",
        "tenant=acme",
        "--json",
        "--specs",
        str(specs),
    )
    rows = json.loads(out)
    assert [len(r["items"]) for r in rows] == [2]
    assert rows[0]["item_count"] == 3, "the count is the layer's, every namespace"
    assert {i["namespace"] for i in rows[0]["items"]} == {"tenant=acme"}
    assert rows[0]["items"][0]["provenance"]["pipeline"] == "ingest"


def test_search_ranks_within_one_tenant_with_scores_and_provenance(specs: Path) -> None:
    seed(specs)
    code, out, _ = invoke(
        "memory",
        "search",
        "kb",
        "when are invoices due",
        "--tenant",
        "acme",
        "--layer",
        "knowledge",
        "--specs",
        str(specs),
    )
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("2 result(s) for 'when are invoices due' in kb")
    assert lines[1].startswith(" 1. score ") and "relevance" in lines[1] and "knowledge" in lines[1]
    assert "from pipeline pipeline=ingest run_id=run-1" in lines[2]
    assert "Acme invoices are due within 30 days." in lines[3]
    assert "Initech" not in out

    code, out, _ = invoke(
        "memory",
        "search",
        "kb",
        "invoices",
        "--tenant",
        "initech",
        "--layer",
        "knowledge",
        "--json",
        "--specs",
        str(specs),
    )
    found = json.loads(out)
    assert [r["content"] for r in found["results"]] == ["Initech invoices are due within 60 days."]
    assert found["results"][0]["score"] > 0 and found["results"][0]["namespace"] == "tenant=initech"


def test_search_of_a_per_agent_layer_needs_the_agent(specs: Path) -> None:
    code, _, err = invoke("memory", "search", "kb", "contact", "--tenant", "acme", "--specs", str(specs))
    assert code == 1 and "namespaced by agent: name the agent" in err
    seed(specs)
    code, out, _ = invoke(
        "memory", "search", "kb", "how to contact the customer", "--tenant", "acme", "--agent", "support",
        "--layer", "episodic", "--specs", str(specs),
    )  # fmt: skip
    assert code == 0 and "The customer prefers e-mail." in out and "from tool tool=crm" in out


def test_forget_a_tenant_then_by_id(specs: Path) -> None:
    seed(specs)
    code, out, _ = invoke("memory", "forget", "kb", "--tenant", "acme", "--specs", str(specs))
    assert (code, out.strip()) == (0, "deleted 3 item(s) from kb")
    code, out, _ = invoke("memory", "ls", "kb", "--json", "--specs", str(specs))
    remaining = [i for row in json.loads(out) for i in row["items"]]
    assert [i["namespace"] for i in remaining] == ["tenant=initech"]
    code, out, _ = invoke("memory", "forget", "kb", "--id", remaining[0]["id"], "--specs", str(specs))
    assert out.strip() == "deleted 1 item(s) from kb"
    code, out, _ = invoke("memory", "forget", "kb", "--expired", "--specs", str(specs))
    assert out.strip() == "deleted 0 item(s) from kb"


def test_forget_needs_a_target(specs: Path) -> None:
    code, _, err = invoke("memory", "forget", "kb", "--specs", str(specs))
    assert code == 2 and "say what to forget" in err


def test_unknown_memory_and_unreachable_store_are_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "memory.yaml"
    path.write_text(memory_yaml("postgresql://u:hunter2@127.0.0.1:9/x?connect_timeout=2", "x"))
    code, _, err = invoke("memory", "ls", "nope", "--specs", str(path))
    assert code == 1 and err.strip() == "platform memory: no memory named 'nope' (known: kb)"
    code, _, err = invoke("memory", "ls", "--specs", str(path))
    assert code == 1 and err.startswith("platform memory: pgvector at postgresql://u:***@127.0.0.1:9/x")
    assert "hunter2" not in err and "Traceback" not in err


@pytest.fixture
def state_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Not under pytest's tmp dir: as root the server runs as its own user, who must reach it.
    state = Path(tempfile.mkdtemp(prefix="memory-down-"))
    monkeypatch.setenv("PLATFORM_STATE_DIR", str(state))
    try:
        yield state
    finally:
        from agent_platform._memory.stores.embedded import stop_embedded_server

        with contextlib.suppress(VectorStoreError):
            stop_embedded_server(state)
        shutil.rmtree(state, ignore_errors=True)


def test_platform_down_stops_the_embedded_server(state_dir: Path) -> None:
    from agent_platform._memory.stores.embedded import embedded_server_url, ensure_embedded_server

    ensure_embedded_server(state_dir)
    code, out, _ = invoke("down")
    assert code == 0 and "stopped the embedded pgvector server" in out
    assert embedded_server_url(state_dir) is None
    code, out, _ = invoke("down")
    assert code == 0 and "pgvector" not in out
