"""Sum the figures of the shards of a `make fuzz` session: `python tests/support/fuzz_figures.py DIR`
reads DIR/shard-*.json (each written by tests/test_fuzz_specs.py), prints the totals as JSON,
writes them to DIR/figures.json and exits 1 unless every shard finished with 0 internal errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def total(shards: list[dict[str, Any]]) -> dict[str, Any]:
    slowest = max(shards, key=lambda s: s["slowest_s"])
    operations: dict[str, int] = {}
    for shard in shards:
        for name, count in shard["operations"].items():
            operations[name] = operations.get(name, 0) + count
    return {
        "shards": len(shards),
        "finished": all(s["finished"] for s in shards),
        **{
            key: sum(s[key] for s in shards)
            for key in ("mutants", "clean", "with_diagnostics", "internal_errors")
        },
        "slowest_s": slowest["slowest_s"],
        "slowest": slowest["slowest"],
        "slowest_wall_s": max(s["slowest_wall_s"] for s in shards),
        "operations": dict(sorted(operations.items())),
    }


def main(directory: Path) -> int:
    shards = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("shard-*.json"))]
    if not shards:
        print(f"no shard figures in {directory}", file=sys.stderr)
        return 1
    figures = total(shards)
    text = json.dumps(figures, indent=2)
    (directory / "figures.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if figures["finished"] and figures["internal_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
