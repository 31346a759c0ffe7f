"""Document ingestion tools: extract text, chunk it, embed the chunks, store the vectors.

Used by the `ingest-documents` pipeline (`specs/ingest-documents.yaml`). Everything here runs
offline and deterministically:

- `extract_text` reads plain text and Markdown (from a path or given inline) and strips markup.
- `chunk_text` cuts texts into chunks of at most `size` characters that start and end on word
  boundaries, consecutive chunks sharing at most `overlap` characters, and groups the chunks
  into evenly sized batches for embedding.
- `embed_chunks` computes **hashed bag-of-words vectors**: an offline stand-in for a neural
  embedder (e.g. all-MiniLM-L6-v2, also 384 dimensions), good enough for term-overlap retrieval
  and fully reproducible across processes and machines. Swap in a real embedder for semantic search.
- `store_vectors` appends records to `<state dir>/vectors/<collection>.jsonl`, skipping ids that
  are already stored.
- `chunks_to_memory` turns chunk batches into items for a pipeline `memory` step, which embeds
  them with the Memory spec's embedder (all-MiniLM-L6-v2 by default) and stores them in its vector
  store: the path the example pipeline takes.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from plugins._state import state_dir as _state_dir

MediaType = Literal["text/plain", "text/markdown"]

EMBEDDER_NAME = "hashed-bow-v1"
DEFAULT_DIMENSIONS = 384
MAX_FILE_BYTES = 10 * 1024 * 1024

_SUFFIX_MEDIA_TYPES: dict[str, MediaType] = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".log": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
}

COLLECTION_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
CollectionName = Annotated[str, Field(pattern=COLLECTION_PATTERN)]


# --- models -----------------------------------------------------------------------------------


class DocumentSource(BaseModel):
    """A document to ingest: a file path or inline text (exactly one of them)."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, description="Stable id of the document, used in chunk ids.")]
    path: str | None = Field(default=None, description="A .txt, .md or .markdown file to read.")
    text: str | None = Field(default=None, description="The document's content, given inline.")
    title: str | None = Field(default=None, description="Title; default: the first heading or line.")
    media_type: MediaType | None = Field(
        default=None, description="Default: from the file suffix; text/plain for inline text."
    )

    @model_validator(mode="after")
    def _path_or_text(self) -> DocumentSource:
        if (self.path is None) == (self.text is None):
            raise ValueError("give exactly one of 'path' or 'text'")
        return self


class ExtractedDocument(BaseModel):
    """Plain text extracted from one document."""

    id: str
    title: str
    text: str
    media_type: MediaType
    source: str = Field(description="The file path, or 'inline'.")
    char_count: int


class Chunk(BaseModel):
    """A piece of a document; `text == document_text[start:end]`."""

    id: str = Field(description="'<document_id>#<index>', stable across runs.")
    document_id: str
    index: int
    text: str
    start: int
    end: int


class TextDocument(BaseModel):
    """The part of a document the chunker needs (other fields are ignored)."""

    id: Annotated[str, Field(min_length=1)]
    text: str


class ChunkBatches(BaseModel):
    """Chunks of several documents, grouped into batches for embedding."""

    document_count: int
    chunk_count: int
    batches: list[list[Chunk]]


class EmbeddedChunk(Chunk):
    """A chunk with its embedding vector (L2-normalised)."""

    vector: list[float]
    embedder: str = EMBEDDER_NAME


class StoreResult(BaseModel):
    """What `store_vectors` wrote."""

    collection: str
    path: str
    stored: int = Field(description="Records appended by this call.")
    skipped: int = Field(description="Records whose id was already stored.")
    ids: list[str] = Field(description="Ids of the records appended by this call.")


# --- extract ----------------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_QUOTE = re.compile(r"^\s{0,3}>\s?")
_BULLET = re.compile(r"^(\s*)([-*+]|\d{1,9}[.)])\s+")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_LINK_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+.*$")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])")
_CODE_SPAN = re.compile(r"`([^`]+)`")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_BLANK_RUNS = re.compile(r"\n{3,}")


def markdown_to_text(markdown: str) -> tuple[str, str | None]:
    """Strip Markdown markup, keeping the readable text (and code blocks' content).

    Args:
        markdown: Markdown source.

    Returns:
        The plain text, and the first heading (or None if there is none).
    """
    lines: list[str] = []
    title: str | None = None
    in_fence = False
    for raw in markdown.splitlines():
        if _FENCE.match(raw):
            in_fence = not in_fence
            continue
        if in_fence:
            lines.append(raw)
            continue
        if _LINK_DEF.match(raw):
            continue
        if _SETEXT.match(raw) and lines and lines[-1].strip():
            title = title or lines[-1].strip()
            continue
        if _RULE.match(raw):
            continue
        line = _QUOTE.sub("", raw)
        heading = _HEADING.match(line)
        if heading:
            line = heading.group(1)
            title = title or line
        line = _BULLET.sub(r"\1", line)
        line = _IMAGE.sub(r"\1", line)
        line = _LINK.sub(r"\1", line)
        line = _REF_LINK.sub(r"\1", line)
        line = _CODE_SPAN.sub(r"\1", line)
        line = _STRONG.sub(r"\2", line)
        line = _EMPHASIS.sub(r"\1", line)
        line = _HTML_TAG.sub("", line)
        lines.append(line.rstrip())
    text = _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
    return text, title


def _first_line(text: str, limit: int = 120) -> str:
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""


def _read_source(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path} is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start})") from None


async def extract_text(document: DocumentSource) -> ExtractedDocument:
    """Extract the plain text of a plain-text or Markdown document.

    Markdown markup (headings, emphasis, links, images, lists, quotes, HTML tags, code fences) is
    stripped; the text of links and code blocks is kept. Other formats (PDF, HTML, Word) are not
    supported by this offline implementation and raise an error.

    Args:
        document: The document: its id and either a file path or inline text.

    Returns:
        The extracted text with its title and media type.
    """
    if document.path is not None:
        path = Path(document.path)
        media_type = document.media_type or _SUFFIX_MEDIA_TYPES.get(path.suffix.lower())
        if media_type is None:
            supported = ", ".join(sorted(_SUFFIX_MEDIA_TYPES))
            raise ValueError(f"unsupported file type '{path.suffix}' for {path} (supported: {supported})")
        raw = await asyncio.to_thread(_read_source, path)
        source = str(path)
    else:
        raw = document.text or ""
        media_type = document.media_type or "text/plain"
        source = "inline"
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    heading: str | None = None
    if media_type == "text/markdown":
        text, heading = markdown_to_text(raw)
    else:
        text = raw.strip()
    title = document.title or heading or _first_line(text) or document.id
    return ExtractedDocument(
        id=document.id,
        title=title,
        text=text,
        media_type=media_type,
        source=source,
        char_count=len(text),
    )


# --- chunk ------------------------------------------------------------------------------------

_WORD = re.compile(r"\S+")


def _word_spans(text: str, size: int) -> list[tuple[int, int]]:
    """(start, end) of each whitespace-separated word; words longer than `size` are cut."""
    spans: list[tuple[int, int]] = []
    for match in _WORD.finditer(text):
        start, end = match.span()
        while end - start > size:  # a URL or base64 blob longer than a chunk: the only cut mid-word
            spans.append((start, start + size))
            start += size
        spans.append((start, end))
    return spans


def split_text(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of chunks: each at most `size` long, on word boundaries, overlapping by
    at most `overlap` characters (whole words only), every word in at least one chunk.

    Args:
        text: The text to split.
        size: Maximum chunk length in characters.
        overlap: Maximum characters shared by consecutive chunks; below `size`.

    Returns:
        (start, end) offsets into `text`, in order.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and less than size")
    words = _word_spans(text, size)
    spans: list[tuple[int, int]] = []
    i, n = 0, len(words)
    while i < n:
        start = words[i][0]
        j = i
        while j + 1 < n and words[j + 1][1] - start <= size:
            j += 1
        end = words[j][1]
        spans.append((start, end))
        if j == n - 1:
            break
        # Step back over whole words that fit in the overlap, but always move forward and make
        # sure the next chunk reaches the first word this one did not include.
        k = j + 1
        while k - 1 > i and words[k - 1][0] >= end - overlap:
            k -= 1
        while k <= j and words[j + 1][1] - words[k][0] > size:
            k += 1
        i = k
    return spans


def chunk_document(
    document_id: str,
    text: str,
    size: int = 800,
    overlap: int = 100,
) -> list[Chunk]:
    """Split one document's text into overlapping chunks that respect word boundaries.

    Args:
        document_id: Id of the document the text belongs to; chunk ids are derived from it.
        text: The document's plain text.
        size: Maximum chunk length in characters.
        overlap: Maximum number of characters consecutive chunks share (whole words); less than size.

    Returns:
        The chunks in document order (an empty list for empty text).
    """
    return [
        Chunk(
            id=f"{document_id}#{index:04d}",
            document_id=document_id,
            index=index,
            text=text[start:end],
            start=start,
            end=end,
        )
        for index, (start, end) in enumerate(split_text(text, size, overlap))
    ]


def chunk_text(
    documents: list[TextDocument],
    size: Annotated[int, Field(ge=50, le=20_000)] = 800,
    overlap: Annotated[int, Field(ge=0, le=5_000)] = 100,
    batch_size: Annotated[int, Field(ge=1, le=1_000)] = 32,
) -> ChunkBatches:
    """Split documents into overlapping chunks on word boundaries, grouped into embedding batches.

    Batches hold up to `batch_size` chunks regardless of which document they come from, so an
    embedding step that fans out over batches gets evenly sized work even when documents differ
    wildly in length.

    Args:
        documents: The documents to chunk (each needs an id and its plain text).
        size: Maximum chunk length in characters.
        overlap: Maximum number of characters consecutive chunks share (whole words); less than size.
        batch_size: Maximum number of chunks per batch.

    Returns:
        The chunks in document order, grouped into batches.
    """
    if overlap >= size:
        raise ValueError(f"overlap ({overlap}) must be less than size ({size})")
    chunks = [chunk for doc in documents for chunk in chunk_document(doc.id, doc.text, size, overlap)]
    batches = [chunks[i : i + batch_size] for i in range(0, len(chunks), batch_size)]
    return ChunkBatches(document_count=len(documents), chunk_count=len(chunks), batches=batches)


# --- to memory --------------------------------------------------------------------------------


class MemoryItemInput(BaseModel):
    """One item for a pipeline `memory` step."""

    id: str
    content: str
    metadata: dict[str, str | int]


class MemoryBatches(BaseModel):
    item_count: int
    batches: list[list[MemoryItemInput]]


class TitledDocument(BaseModel):
    """The part of an extracted document `chunks_to_memory` uses (other fields are ignored)."""

    id: str
    title: str = ""


def chunks_to_memory(
    batches: list[list[Chunk]], documents: list[TitledDocument] | None = None
) -> MemoryBatches:
    """Turn chunk batches into memory items, batch for batch.

    The item id is the chunk's stable id, so ingesting a document again replaces its chunks instead
    of adding copies; the content starts with the document's title (when known), which helps
    retrieval of chunks that do not repeat it.

    Args:
        batches: Chunk batches, as chunk_text returns them.
        documents: The extracted documents, for their titles.

    Returns:
        The items in the same batches and order.
    """
    titles = {doc.id: doc.title for doc in documents or []}
    out: list[list[MemoryItemInput]] = []
    for batch in batches:
        items = []
        for chunk in batch:
            title = titles.get(chunk.document_id, "")
            items.append(
                MemoryItemInput(
                    id=chunk.id,
                    content=f"{title}: {chunk.text}" if title else chunk.text,
                    metadata={
                        "document_id": chunk.document_id,
                        "chunk": chunk.index,
                        "start": chunk.start,
                        "end": chunk.end,
                        **({"title": title} if title else {}),
                    },
                )
            )
        out.append(items)
    return MemoryBatches(item_count=sum(len(b) for b in out), batches=out)


# --- embed ------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric tokens of `text`.

    Args:
        text: Any text.
    """
    return _TOKEN.findall(text.lower())


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A deterministic hashed bag-of-words vector (signed feature hashing, L2-normalised).

    Each token is hashed with BLAKE2b (not Python's per-process salted `hash`), giving an index
    and a sign; counts are damped with 1 + log(count). Texts sharing words get a positive cosine
    similarity; synonyms do not. Empty text gives the zero vector.

    Args:
        text: The text to embed.
        dimensions: Length of the vector.
    """
    if dimensions < 1:
        raise ValueError("dimensions must be at least 1")
    vector = [0.0] * dimensions
    for token, count in Counter(tokenize(text)).items():
        digest = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")
        sign = 1.0 if digest >> 63 else -1.0
        vector[digest % dimensions] += sign * (1.0 + math.log(count))
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        return vector
    return [round(v / norm, 6) for v in vector]


def embed_chunks(
    chunks: list[Chunk],
    dimensions: Annotated[int, Field(ge=8, le=4096)] = DEFAULT_DIMENSIONS,
) -> list[EmbeddedChunk]:
    """Embed chunks with the offline hashed bag-of-words embedder (a stand-in for a neural model).

    Args:
        chunks: The chunks to embed, as produced by chunk_text.
        dimensions: Length of each vector; must match the vector collection.

    Returns:
        The chunks with their vectors, in the same order.
    """
    return [
        EmbeddedChunk(**chunk.model_dump(), vector=embed_text(chunk.text, dimensions)) for chunk in chunks
    ]


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors of the same length (0.0 if either is zero).

    Args:
        a: A vector.
        b: Another vector of the same length.
    """
    if len(a) != len(b):
        raise ValueError("vectors differ in length")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


# --- store ------------------------------------------------------------------------------------


def _append_records(path: Path, collection: str, records: list[EmbeddedChunk]) -> StoreResult:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        # An exclusive lock makes check-then-append atomic across threads and processes
        # (map steps store several batches at once, possibly from different actors).
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            existing: set[str] = set()
            stored_dimensions: int | None = None
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    existing.add(record["id"])
                    stored_dimensions = stored_dimensions or len(record["vector"])
            ids: list[str] = []
            skipped = 0
            for record in records:
                if stored_dimensions is not None and len(record.vector) != stored_dimensions:
                    raise ValueError(
                        f"record {record.id} has {len(record.vector)} dimensions; collection "
                        f"'{collection}' holds {stored_dimensions}"
                    )
                if record.id in existing:
                    skipped += 1
                    continue
                handle.write(json.dumps(record.model_dump(), separators=(",", ":")) + "\n")
                existing.add(record.id)
                ids.append(record.id)
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return StoreResult(collection=collection, path=str(path), stored=len(ids), skipped=skipped, ids=ids)


async def store_vectors(
    collection: CollectionName,
    records: list[EmbeddedChunk],
    state_dir: str | None = None,
) -> StoreResult:
    """Append embedded chunks to a vector collection (a JSONL file), skipping ids already stored.

    The file is `<state_dir>/vectors/<collection>.jsonl`; the state directory defaults to
    `$PLATFORM_STATE_DIR`, else `.platform/`. All vectors of a collection must have one length.

    Args:
        collection: Name of the vector collection (lowercase letters, digits and '-').
        records: Embedded chunks to store, as produced by embed_chunks.
        state_dir: Directory for platform state; default: $PLATFORM_STATE_DIR or .platform/.

    Returns:
        How many records were stored and skipped, and where.
    """
    if not re.match(COLLECTION_PATTERN, collection):  # also checked here: it becomes a file name
        raise ValueError(f"invalid collection name {collection!r}: use lowercase letters, digits and '-'")
    path = _state_dir(state_dir) / "vectors" / f"{collection}.jsonl"
    return await asyncio.to_thread(_append_records, path, collection, records)
