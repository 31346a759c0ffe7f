"""`platform memory ...`: look into and prune the long-term memory layers the specs declare.

    platform memory ls [MEMORY]                      memories and their stores; or a memory's items
    platform memory search MEMORY "query"            ranked results with scores and provenance
    platform memory forget MEMORY --tenant T | --agent A | --id ID ... | --expired | --all

The stores are the specs' (`platform memory` reads specs/ like `validate`); the embedded pgvector
server is started when a memory on it is first used and stopped by `platform down`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer

from agent_platform._cli.common import EXIT_INVALID, PluginPathOpt, compile_or_exit, validation_options
from agent_platform._cli.output import DeprecatedJsonOpt, Output, OutputOpt, chosen_output, emit

if TYPE_CHECKING:
    from agent_platform._memory.registry import MemoryRegistry

app = typer.Typer()


T = TypeVar("T")

memory_app = typer.Typer(
    name="memory",
    help="Inspect, search and prune long-term memory (episodic, knowledge).",
    no_args_is_help=True,
)
app.add_typer(memory_app)

SpecsOpt = Annotated[
    list[Path] | None, typer.Option("--specs", "-s", help="Spec files or directories (default: specs/).")
]
LayerOpt = Annotated[
    Literal["episodic", "knowledge"] | None,
    typer.Option("--layer", "-l", help="Only this layer (default: every vector layer)."),
]
TenantOpt = Annotated[str | None, typer.Option("--tenant", "-t", help="The tenant (default: 'default').")]
AgentOpt = Annotated[
    str | None, typer.Option("--agent", "-a", help="The agent, for layers namespaced by agent.")
]
# `--namespace` means the deployment's namespace everywhere else; here it was a memory key.
MemoryNamespaceOpt = Annotated[
    str | None, typer.Option("--memory-namespace", help="Only this memory namespace key (e.g. a tenant's).")
]
DeprecatedNamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", hidden=True, help="Deprecated: use --memory-namespace.")
]


def _with_memories(
    specs: list[Path] | None, plugin_path: list[Path] | None, work: Callable[[MemoryRegistry], Awaitable[T]]
) -> T:
    import asyncio

    from agent_platform._memory.manager import MemoryUsageError
    from agent_platform._memory.registry import MemoryRegistry
    from agent_platform._memory.stores.base import VectorStoreError

    _, plan = compile_or_exit(specs or [Path("specs")], validation_options(plugin_path, False), "memory")
    registry = MemoryRegistry(plan.memories)

    async def go() -> T:
        try:
            return await work(registry)
        finally:
            await registry.close()

    try:
        return asyncio.run(go())
    except (MemoryUsageError, VectorStoreError) as exc:
        typer.echo(f"platform memory: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _preview(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _provenance(item: Any) -> str:
    p = item.provenance
    parts = [p.source]
    for name in ("agent", "pipeline", "tool", "user", "run_id", "document_id"):
        value = getattr(p, name)
        if value:
            parts.append(f"{name}={value}")
    return " ".join(parts)


@memory_app.command("ls")
def ls(
    memory: Annotated[str | None, typer.Argument(help="A memory: list its items.")] = None,
    layer: LayerOpt = None,
    memory_namespace: MemoryNamespaceOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Items per layer.")] = 20,
    specs: SpecsOpt = None,
    output: OutputOpt = Output.text,
    json_out: DeprecatedJsonOpt = False,
    old_namespace: DeprecatedNamespaceOpt = None,
    plugin_path: PluginPathOpt = None,
) -> None:
    """Without MEMORY: every memory, its layers, stores and item counts. With MEMORY: its newest
    items (id, namespace, kind, trust, provenance, content)."""
    fmt = chosen_output("memory ls", output, json_flag=json_out)
    namespace = memory_namespace
    if old_namespace is not None:
        typer.echo("platform memory ls: --namespace is deprecated; use --memory-namespace", err=True)
        namespace = namespace or old_namespace

    async def work(registry: MemoryRegistry) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        names = [memory] if memory else sorted(registry.specs)
        for name in names:
            manager = registry.manager(name)
            for layer_name in manager.layer_names():
                if layer is not None and layer_name != layer:
                    continue
                spec = manager.layer_spec(layer_name)
                row: dict[str, Any] = {
                    "memory": name,
                    "layer": layer_name,
                    "backend": spec.store.backend,
                    "collection": manager.collection(layer_name),
                    "namespaces": await manager.namespaces(layer_name),
                    "item_count": await manager.item_count(layer_name),
                }
                if memory:
                    items = await manager.list_items(layer_name, namespace=namespace, limit=limit)
                    row["items"] = [i.model_dump(mode="json") for i in items]
                rows.append(row)
        return rows

    rows = _with_memories(specs, plugin_path, work)
    emit(rows, fmt, lambda: _ls_text(rows))


def _ls_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no episodic or knowledge layers in these specs"
    lines = []
    for row in rows:
        spaces = row["namespaces"]
        lines.append(
            f"{row['memory']} {row['layer']}: {row['backend']} collection '{row['collection']}', "
            f"{row['item_count']} item(s) in {len(spaces)} namespace(s)"
            f"{': ' + ', '.join(spaces) if spaces else ''}"
        )
        for item in row.get("items", []):
            lines.append(
                f"  {item['id']}  {item['namespace']}  {item['kind']}  {item['trust']}  "
                f"{item['created_at'][:19]}  {_preview(item['content'], 70)}"
            )
    return "\n".join(lines)


@memory_app.command("search")
def search(
    memory: Annotated[str, typer.Argument(help="The memory to search.")],
    query: Annotated[str, typer.Argument(help="What to look for.")],
    tenant: TenantOpt = None,
    agent: AgentOpt = None,
    layer: LayerOpt = None,
    budget: Annotated[int, typer.Option("--budget", min=1, help="Token budget of the results.")] = 4000,
    specs: SpecsOpt = None,
    output: OutputOpt = Output.text,
    json_out: DeprecatedJsonOpt = False,
    plugin_path: PluginPathOpt = None,
) -> None:
    """What an agent of TENANT would recall for QUERY: ranked by relevance x recency x importance,
    de-duplicated and fitted into --budget tokens, with each factor, provenance and trust."""
    fmt = chosen_output("memory search", output, json_flag=json_out)

    async def work(registry: MemoryRegistry) -> dict[str, Any]:
        manager = registry.manager(memory)
        context = await manager.get_context(
            query, budget, agent=agent, tenant=tenant, layers=[layer] if layer else None
        )
        return {
            "memory": memory,
            "query": query,
            "candidates": context.candidates,
            "below_min_score": context.below_min_score,
            "duplicates": context.duplicates,
            "over_budget": context.over_budget,
            "tokens": context.tokens_used,
            "results": [
                {
                    "rank": rank,
                    "score": round(c.score, 4),
                    "relevance": round(c.relevance, 4),
                    "recency": round(c.recency, 4),
                    "importance": c.importance,
                    "layer": c.layer,
                    "id": c.item.id,
                    "namespace": c.item.namespace,
                    "trust": c.item.trust,
                    "provenance": c.item.provenance.model_dump(exclude_none=True),
                    "content": c.item.content,
                    "_item": c.item,
                }
                for rank, c in enumerate(context.items, 1)
            ],
        }

    found = _with_memories(specs, plugin_path, work)
    results = found["results"]
    items = [r.pop("_item") for r in results]

    def text() -> str:
        lines = [
            f"{len(results)} result(s) for {query!r} in {memory} ({found['candidates']} candidates, "
            f"{found['duplicates']} duplicates, {found['below_min_score']} below min_score, "
            f"{found['over_budget']} over budget; {found['tokens']} tokens)"
        ]
        for row, item in zip(results, items, strict=True):
            lines.append(
                f"{row['rank']:>2}. score {row['score']:.3f} (relevance {row['relevance']:.3f}, recency "
                f"{row['recency']:.3f}, importance {row['importance']:.2f})  {row['layer']}  {row['trust']}"
            )
            lines.append(f"    {row['id']}  {row['namespace']}  from {_provenance(item)}")
            lines.append(f"    {_preview(row['content'], 110)}")
        return "\n".join(lines)

    emit(found, fmt, text)


@memory_app.command("forget")
def forget(
    memory: Annotated[str, typer.Argument(help="The memory to delete from.")],
    tenant: TenantOpt = None,
    agent: AgentOpt = None,
    ids: Annotated[list[str] | None, typer.Option("--id", help="An item id (repeatable).")] = None,
    layer: LayerOpt = None,
    expired: Annotated[bool, typer.Option("--expired", help="Delete items past their retention.")] = False,
    everything: Annotated[bool, typer.Option("--all", help="Delete every item of the memory.")] = False,
    specs: SpecsOpt = None,
    output: OutputOpt = Output.text,
    plugin_path: PluginPathOpt = None,
) -> None:
    """Delete items: a tenant's (e.g. a deletion request), an agent's, given ids, expired ones, or
    all. Prints how many were deleted."""
    if not (tenant or agent or ids or expired or everything):
        raise typer.BadParameter("say what to forget: --tenant, --agent, --id, --expired or --all")

    async def work(registry: MemoryRegistry) -> int:
        manager = registry.manager(memory)
        if expired:
            return await manager.purge_expired()
        return await manager.forget(
            layer=layer, agent=agent, tenant=tenant, ids=ids or None, all_namespaces=everything
        )

    deleted = _with_memories(specs, plugin_path, work)
    emit(
        {"memory": memory, "deleted": deleted},
        output.value,
        lambda: f"deleted {deleted} item(s) from {memory}",
    )
