"""The spec set as a whole: unique names, references that resolve, and no cycles."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from agent_platform._diagnostics import Diagnostics, did_you_mean
from agent_platform._load import Document
from agent_platform._spec.kinds import (
    DEPLOYABLE_KINDS,
    KINDS,
    AgentDocument,
    GuardrailDocument,
    InjectionClassifierGuardrail,
    McpServerDocument,
    MemoryDocument,
    PipelineDocument,
    SupervisorDocument,
    ToolAllowlistGuardrail,
    ToolDocument,
)
from agent_platform._validate.documents import CheckedSpec, PartialSpec, TypedSpec


@dataclass
class SpecSet:
    """Every valid spec, indexed by kind and name (the first definition of a name wins), and what
    is valid of the documents that failed their kind's model."""

    # What `plan` compiles and `apply` deploys. A Test is checked with them but is neither, so it
    # is only in `by_kind`: `apply` on a path holding only tests finds no specs and refuses, as it
    # must (with --prune, applying nothing would delete every deployed spec).
    specs: list[TypedSpec] = field(default_factory=list)
    by_kind: dict[str, dict[str, TypedSpec]] = field(default_factory=dict)
    # (kind, name) of documents that failed their own validation: references to them are not
    # reported again as unknown (one mistake, one message).
    invalid: set[tuple[str, str]] = field(default_factory=set)
    # Those of them with a spec to check field by field (see PartialSpec); never compiled.
    partial: list[PartialSpec] = field(default_factory=list)

    def add(self, spec: TypedSpec, diags: Diagnostics) -> None:
        table = self.by_kind.setdefault(spec.kind, {})
        first = table.get(spec.name)
        if first is not None:
            diags.error(
                "duplicate-name",
                f"duplicate {spec.kind} name '{spec.name}' (first defined at {first.locate('metadata', 'name')})",
                spec.locate("metadata", "name"),
                spec.kind,
                spec.name,
            )
            return
        table[spec.name] = spec
        if spec.kind in DEPLOYABLE_KINDS:
            self.specs.append(spec)

    def add_invalid(self, document: Document, partial: PartialSpec | None) -> None:
        """A document that failed its own validation (already reported)."""
        # Only a known kind can be what a reference meant; an unknown kind is reported by itself.
        if document.kind in KINDS and document.name is not None:
            self.invalid.add((document.kind, document.name))
        if partial is not None:
            self.partial.append(partial)

    def get(self, kind: str, name: str) -> TypedSpec | None:
        return self.by_kind.get(kind, {}).get(name)

    def lookup(self, kind: str, name: str) -> CheckedSpec | None:
        """The spec `kind/name`, whole or partial: for checks that read single fields of it."""
        return self.get(kind, name) or next(
            (p for p in self.partial if p.kind == kind and p.name == name), None
        )

    def names(self, kind: str) -> list[str]:
        return list(self.by_kind.get(kind, {}))

    def defined_names(self, kind: str) -> list[str]:
        """Names defined for `kind`, valid or not: what a misspelt reference may have meant."""
        valid = self.by_kind.get(kind, {})
        return [*valid, *sorted(n for k, n in self.invalid if k == kind and n not in valid)]

    def kinds_named(self, name: str) -> list[str]:
        """The kinds that define `name`, valid or not."""
        kinds = [k for k, table in self.by_kind.items() if name in table]
        return kinds + sorted({k for k, n in self.invalid if n == name and k not in kinds})

    def of_kind(self, kind: str) -> list[TypedSpec]:
        return list(self.by_kind.get(kind, {}).values())

    def checked(self, kind: str | None = None) -> list[CheckedSpec]:
        """Whole and partial specs (of `kind`, or all): what field-level checks run on."""
        whole: list[CheckedSpec] = list(self.specs if kind is None else self.of_kind(kind))
        return whole + [p for p in self.partial if kind is None or p.kind == kind]


@dataclass(frozen=True, slots=True)
class Reference:
    path: tuple[str | int, ...]
    kind: str
    name: str
    # Other kinds the name may also resolve to (a delegate is an Agent or a RemoteAgent).
    also: tuple[str, ...] = ()

    def resolved_kind(self, specs: SpecSet) -> str:
        """The kind the name resolves to: `kind`, else the first of `also` defining it."""
        for kind in (self.kind, *self.also):
            if specs.get(kind, self.name) is not None or (kind, self.name) in specs.invalid:
                return kind
        return self.kind


def references(spec: CheckedSpec) -> Iterator[Reference]:
    """Every by-name reference a spec makes in its valid fields, with the path of the name in
    its document."""
    model = spec.model
    has = spec.has
    if isinstance(model, AgentDocument):
        s = model.spec
        if has("model") and isinstance(s.model, str):
            yield Reference(("spec", "model"), "Model", s.model)
        if has("tools"):
            for i, name in enumerate(s.tools):
                yield Reference(("spec", "tools", i), "Tool", name)
        if has("mcp"):
            for i, selection in enumerate(s.mcp):
                yield Reference(("spec", "mcp", i, "server"), "McpServer", selection.server)
        if has("delegates"):
            for i, name in enumerate(s.delegates):
                yield Reference(("spec", "delegates", i), "Agent", name, also=("RemoteAgent",))
        if has("memory") and s.memory is not None:
            yield Reference(("spec", "memory"), "Memory", s.memory)
        if has("guardrails"):
            for i, name in enumerate(s.guardrails):
                yield Reference(("spec", "guardrails", i), "Guardrail", name)
    elif isinstance(model, ToolDocument):
        if has("guardrails"):
            for i, name in enumerate(model.spec.guardrails):
                yield Reference(("spec", "guardrails", i), "Guardrail", name)
        if has("mcp") and model.spec.mcp is not None:
            yield Reference(("spec", "mcp", "server"), "McpServer", model.spec.mcp.server)
    elif isinstance(model, McpServerDocument):
        if has("guardrails"):
            for i, name in enumerate(model.spec.guardrails):
                yield Reference(("spec", "guardrails", i), "Guardrail", name)
    elif isinstance(model, MemoryDocument):
        working = model.spec.working if has("working") else None
        if (
            working is not None
            and working.compaction is not None
            and isinstance(working.compaction.model, str)
        ):
            yield Reference(("spec", "working", "compaction", "model"), "Model", working.compaction.model)
    elif isinstance(model, GuardrailDocument):
        if isinstance(model.spec, ToolAllowlistGuardrail) and has("tools"):
            for i, name in enumerate(model.spec.tools):
                yield Reference(("spec", "tools", i), "Tool", name)
        if isinstance(model.spec, InjectionClassifierGuardrail) and has("model"):
            if isinstance(model.spec.model, str):
                yield Reference(("spec", "model"), "Model", model.spec.model)
    elif isinstance(model, PipelineDocument):
        if has("steps"):
            for i, step in enumerate(model.spec.steps):
                base = ("spec", "steps", i)
                if step.tool is not None:
                    yield Reference((*base, "tool"), "Tool", step.tool)
                if step.agent is not None:
                    yield Reference((*base, "agent"), "Agent", step.agent)
                if step.pipeline is not None:
                    yield Reference((*base, "pipeline"), "Pipeline", step.pipeline)
                if step.llm is not None and isinstance(step.llm.model, str):
                    yield Reference((*base, "llm", "model"), "Model", step.llm.model)
                if step.memory is not None:
                    yield Reference((*base, "memory", "name"), "Memory", step.memory.name)
                    if step.memory.agent is not None:
                        yield Reference((*base, "memory", "agent"), "Agent", step.memory.agent)
        if has("guardrails"):
            for i, name in enumerate(model.spec.guardrails):
                yield Reference(("spec", "guardrails", i), "Guardrail", name)
    elif isinstance(model, SupervisorDocument):
        if has("routes"):
            for task_type, route in model.spec.routes.items():
                kind, name = route.target
                key = "remote_agent" if kind == "RemoteAgent" else kind.lower()
                yield Reference(("spec", "routes", task_type, key), kind, name)


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "AEIOU" else f"a {word}"


def check_references(specs: SpecSet, diags: Diagnostics) -> None:
    for spec in specs.checked():
        for ref in references(spec):
            kind = ref.resolved_kind(specs)
            if specs.get(kind, ref.name) is not None or (kind, ref.name) in specs.invalid:
                continue
            other_kinds = [k for k in specs.kinds_named(ref.name) if k not in (ref.kind, *ref.also)]
            if other_kinds:
                hint = f" ('{ref.name}' is {_a(other_kinds[0])}, not {_a(ref.kind)})"
            else:
                defined = [n for k in (ref.kind, *ref.also) for n in specs.defined_names(k)]
                hint = did_you_mean(ref.name, defined)
                if not defined:
                    hint += f" (no {ref.kind} is defined in the given files)"
            diags.error(
                "unresolved-reference",
                f"unknown {ref.kind} '{ref.name}'{hint}",
                spec.locate(*ref.path),
                spec.kind,
                spec.name,
            )


def _find_cycles(graph: dict[str, list[tuple[str, tuple[str | int, ...]]]]) -> list[list[str]]:
    """Elementary cycles found by an iterative DFS, each reported once (rotation-normalised)."""
    cycles: list[list[str]] = []
    seen_cycles: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}  # 0/absent: new, 1: on stack, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        state[start] = 1
        while stack:
            node, index = stack[-1]
            edges = graph.get(node, [])
            if index < len(edges):
                stack[-1] = (node, index + 1)
                nxt = edges[index][0]
                if state.get(nxt) == 1:
                    cycle = path[path.index(nxt) :]
                    pivot = cycle.index(min(cycle))
                    normal = tuple(cycle[pivot:] + cycle[:pivot])
                    if normal not in seen_cycles:
                        seen_cycles.add(normal)
                        cycles.append([*normal, normal[0]])
                elif not state.get(nxt) and nxt in graph:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return cycles


def check_cycles(specs: SpecSet, diags: Diagnostics) -> None:
    """Delegation among agents and inclusion among pipelines must be acyclic."""
    delegation: dict[str, list[tuple[str, tuple[str | int, ...]]]] = {}
    for spec in specs.of_kind("Agent"):
        assert isinstance(spec.model, AgentDocument)
        delegation[spec.name] = [
            (d, ("spec", "delegates", i))
            for i, d in enumerate(spec.model.spec.delegates)
            if specs.get("Agent", d)
        ]
    inclusion: dict[str, list[tuple[str, tuple[str | int, ...]]]] = {}
    for spec in specs.of_kind("Pipeline"):
        assert isinstance(spec.model, PipelineDocument)
        inclusion[spec.name] = [
            (step.pipeline, ("spec", "steps", i, "pipeline"))
            for i, step in enumerate(spec.model.spec.steps)
            if step.pipeline is not None and specs.get("Pipeline", step.pipeline)
        ]
    for kind, graph, what in (
        ("Agent", delegation, "delegation"),
        ("Pipeline", inclusion, "pipeline inclusion"),
    ):
        for cycle in _find_cycles(graph):
            head = specs.get(kind, cycle[0])
            assert head is not None
            path = next(p for target, p in graph[cycle[0]] if target == cycle[1])
            diags.error(
                f"{what.replace(' ', '-')}-cycle",
                f"{what} cycle: {' -> '.join(cycle)}",
                head.locate(*path),
                kind,
                cycle[0],
            )
