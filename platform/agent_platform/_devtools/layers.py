"""The package's layers and the imports between them: `python -m agent_platform._devtools.layers`
prints which layer imports which, and every import that goes up (a lower layer importing a higher
one), with the module and line. Exit 1 when there is one that `KNOWN_UPWARD` does not list.

The layers follow the data, lowest first; a module may import its own layer and any lower one."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "agent_platform"

# (layer, the modules in it, as prefixes of their dotted names below the package).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "_diagnostics",
            "_faults",
            "_redaction",
            "_state_files",
            "_processes",
            "_regexes",
            "_text_tokens",
            "_template_sandbox",
            "_plugin_loader",
            "_extras",
            "_http_util",
            "_tool_functions",
        ),
    ),
    ("load", ("_load",)),
    ("spec", ("_spec",)),
    ("validate", ("_validate",)),
    ("compile", ("_compile", "_render")),
    ("durability", ("_runstore",)),
    ("memory", ("_memory",)),
    ("runtime", ("_runtime", "_spectest", "_evals")),
    ("deploy", ("_deploy",)),
    ("serve", ("_serve",)),
    ("interface", ("_cli", "_api", "_schema_export", "_devtools.docs_gen", "local_llm", "_devtools", "")),
)

# Upward imports still to be removed: each is debt, listed so that no new one slips in (the test
# fails on any other). Empty: every layer imports only its own and lower ones.
KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Edge:
    module: str
    line: int
    imported: str
    source: str  # layer of `module`
    target: str  # layer of `imported`


def layer_of(module: str) -> str:
    if module == PACKAGE:  # the package itself: constants, and names it imports on first use
        return "base"
    below = module[len(PACKAGE) + 1 :] if module.startswith(PACKAGE + ".") else ""
    best, best_len = "interface", -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (below == prefix or below.startswith(prefix + ".") or prefix == "") and len(prefix) > best_len:
                best, best_len = name, len(prefix)
    return best


RANK = {name: index for index, (name, _) in enumerate(LAYERS)}


def edges(root: Path) -> list[Edge]:
    found: list[Edge] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
                if node.module == PACKAGE:  # `from agent_platform import api`, or a constant
                    names = [
                        f"{PACKAGE}.{alias.name}"
                        if (root / f"{alias.name}.py").exists() or (root / alias.name).is_dir()
                        else PACKAGE
                        for alias in node.names
                    ]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name == PACKAGE or name.startswith(PACKAGE + "."):
                    # The package's own face re-exports (lazily) from every layer; what others
                    # import from it directly are constants.
                    source = "interface" if module == PACKAGE else layer_of(module)
                    found.append(Edge(module, node.lineno, name, source, layer_of(name)))
    return found


def upward(all_edges: list[Edge]) -> list[Edge]:
    return [e for e in all_edges if RANK[e.target] > RANK[e.source]]


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    all_edges = edges(root)
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in all_edges:
        if edge.target != edge.source:
            graph[edge.source].add(edge.target)
    print("layers, lowest first; each line: the layers it imports")
    for name, _ in LAYERS:
        print(f"  {name:<11} -> {', '.join(sorted(graph[name], key=RANK.__getitem__)) or '-'}")
    up = upward(all_edges)
    new = [e for e in up if (e.module, e.imported) not in KNOWN_UPWARD]
    print(f"upward imports: {len(up)} ({len(new)} not known)")
    for e in up:
        mark = "" if (e.module, e.imported) in KNOWN_UPWARD else "  NEW"
        print(f"  {e.module}:{e.line} ({e.source}) imports {e.imported} ({e.target}){mark}")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
