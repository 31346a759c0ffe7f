"""The Weaviate backend without a Weaviate server (none can run here): URL parsing, the reversible
collection and tenant names, metadata-filter tokens, that construction and argument checks do no
I/O, that an unreachable server is a located `StoreUnavailable`, and, against a recording fake
Weaviate (REST on asyncio streams, gRPC on grpc.aio with the client's own protos), the requests the
real client builds and how replies map back. What Weaviate itself does with those requests (BM25,
fusion scores, null-state filters, tenants) is the shared contract suite's, run with WEAVIATE_URL."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import grpc
import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import given, settings
from hypothesis import strategies as st
from weaviate.proto.v1 import (
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)
from weaviate.util import generate_uuid5

from agent_platform._memory.items import MemoryItem, Namespace, Provenance, WriteAck, content_hash
from agent_platform._memory.stores import (
    DimensionMismatch,
    InvalidStoreUrl,
    StoreTimeout,
    StoreUnavailable,
    VectorStoreError,
    open_vector_store,
)
from agent_platform._memory.stores.weaviate import (
    DEFAULT_GRPC_PORT,
    WeaviateStore,
    bm25_score,
    collection_class_name,
    collection_from_class_name,
    item_from_properties,
    item_properties,
    metadata_token,
    namespace_from_tenant,
    parse_weaviate_url,
    tenant_name,
    vector_hit,
)

CLASS_NAME = re.compile(r"[A-Z][_0-9A-Za-z]{0,254}")
TENANT = re.compile(r"[A-Za-z0-9_-]{1,64}")
SPEC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # spec/common.py NAME_PATTERN


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- URLs -----------------------------------------------------------------------------------------


def test_http_url_with_port() -> None:
    endpoint = parse_weaviate_url("http://localhost:8080")
    assert (endpoint.http_host, endpoint.http_port, endpoint.http_secure) == ("localhost", 8080, False)
    assert (endpoint.grpc_host, endpoint.grpc_port, endpoint.grpc_secure) == ("localhost", 50051, False)
    assert DEFAULT_GRPC_PORT == 50051


def test_https_url_defaults_to_443_and_secure_grpc() -> None:
    endpoint = parse_weaviate_url("https://Weaviate.Example.com/")
    assert (endpoint.http_host, endpoint.http_port, endpoint.http_secure) == (
        "weaviate.example.com",
        443,
        True,
    )
    assert (endpoint.grpc_port, endpoint.grpc_secure) == (DEFAULT_GRPC_PORT, True)
    assert endpoint.rest == "https://weaviate.example.com:443"


def test_http_url_without_port_is_port_80() -> None:
    assert parse_weaviate_url("http://weaviate").http_port == 80


def test_grpc_port_and_host_parameters() -> None:
    endpoint = parse_weaviate_url("https://c1.example.io?grpc_port=443&grpc_host=grpc-c1.example.io")
    assert (endpoint.grpc_host, endpoint.grpc_port, endpoint.grpc_secure) == ("grpc-c1.example.io", 443, True)
    assert parse_weaviate_url("http://h:8080/?grpc_port=50052").grpc_port == 50052


def test_ipv6_hosts_are_bracketed() -> None:
    endpoint = parse_weaviate_url("http://[::1]:8080")
    assert endpoint.http_host == "[::1]"
    assert endpoint.grpc == "[::1]:50051"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://h:8080", "http:// or https://"),
        ("localhost:8080", "http:// or https://"),
        ("weaviate://h:8080", "http:// or https://"),
        ("http://", "no host"),
        ("http://h:99999", "not a valid URL"),
        ("http://h:port", "not a valid URL"),
        ("http://h:0", "port 0"),
        ("http://h:8080/v1", "path"),
        ("http://h:8080#x", "fragment"),
        ("http://h:8080?grpc_port=0", "grpc_port"),
        ("http://h:8080?grpc_port=70000", "grpc_port"),
        ("http://h:8080?grpc_port=fifty", "grpc_port"),
        ("http://h:8080?grpc_port=", "grpc_port"),
        ("http://h:8080?grpcport=50051", "unknown query parameter grpcport"),
        ("http://h:8080?grpc_port=1&grpc_port=2", "given 2 times"),
        ("http://h:8080?grpc_host=a/b", "grpc_host"),
        ("http://h:8080?grpc_port", "malformed query"),
        ("http://[::1:8080", "not a valid URL"),
    ],
)
def test_invalid_urls(url: str, why: str) -> None:
    with pytest.raises(InvalidStoreUrl) as raised:
        parse_weaviate_url(url)
    assert why in str(raised.value)
    assert raised.value.backend == "weaviate"
    assert raised.value.operation == "open"
    with pytest.raises(InvalidStoreUrl):
        WeaviateStore(url)


def test_credentials_in_the_url_are_refused_without_echoing_the_password() -> None:
    with pytest.raises(InvalidStoreUrl) as raised:
        WeaviateStore("https://admin:s3cret@weaviate.example.com")
    assert "s3cret" not in str(raised.value)
    assert raised.value.location == "https://admin:***@weaviate.example.com"
    assert "api_key_env" in str(raised.value)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf")])
def test_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        WeaviateStore("http://localhost:8080", timeout_s=timeout)


def test_open_vector_store_builds_this_backend() -> None:
    store = open_vector_store("weaviate", "http://localhost:8080?grpc_port=50052")
    assert isinstance(store, WeaviateStore)
    assert (store.backend, store.location) == ("weaviate", "http://localhost:8080?grpc_port=50052")
    assert store.endpoint.grpc_port == 50052


# --- names ----------------------------------------------------------------------------------------


def test_spec_names_map_readably() -> None:
    assert collection_class_name("support-episodes") == "Memory_support_episodes"
    assert collection_class_name("a--b-") == "Memory_a__b_"
    assert collection_from_class_name("Memory_a__b_") == "a--b-"
    assert collection_class_name("kb2") == "Memory_kb2"
    assert collection_from_class_name("Memory_support_episodes") == "support-episodes"


def test_other_names_map_to_hex() -> None:
    assert collection_class_name("My.Docs") == "Memory__4d792e446f6373"
    assert collection_class_name("-a") == "Memory__2d61"  # a plain tail never starts with `_`
    assert collection_class_name("a_b") == "Memory__615f62"  # nor holds one of its own
    assert collection_from_class_name("Memory__4d792e446f6373") == "My.Docs"


@pytest.mark.parametrize(
    "name",
    [
        "Article",
        "Memory",
        "Memory_",
        "Memory_Docs",
        "Memory__zz",
        "Memory__",
        "Memory_A_b",
        "Memory__6b6232",
    ],
)
def test_foreign_class_names_map_to_nothing(name: str) -> None:
    # "Memory__6b6232" is hex for "kb2", whose canonical name is Memory_kb2.
    assert collection_from_class_name(name) is None


def test_collection_name_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        collection_class_name("")
    with pytest.raises(ValueError, match="at most 255"):
        collection_class_name("é" * 100)


@given(st.from_regex(SPEC_NAME, fullmatch=True))
def test_spec_names_round_trip(name: str) -> None:
    mapped = collection_class_name(name)
    assert CLASS_NAME.fullmatch(mapped)
    assert mapped == "Memory_" + name.replace("-", "_")
    assert collection_from_class_name(mapped) == name


@given(st.text(min_size=1, max_size=30))  # 30 characters of up to 4 UTF-8 bytes always fit
def test_collection_names_round_trip_and_are_valid(name: str) -> None:
    mapped = collection_class_name(name)
    assert CLASS_NAME.fullmatch(mapped)
    assert mapped[len("Memory_") :] == mapped[len("Memory_") :].lower()  # Weaviate ignores case
    assert collection_from_class_name(mapped) == name


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_distinct_collections_never_share_a_weaviate_collection(a: str, b: str) -> None:
    if a != b:
        assert collection_class_name(a).lower() != collection_class_name(b).lower()


def test_tenant_names_of_namespace_keys() -> None:
    assert tenant_name("tenant=acme/agent=support") == "tenant_3dacme_2fagent_3dsupport"
    assert tenant_name("_shared") == "_5fshared"
    assert tenant_name("Acme") == "_41cme"
    assert namespace_from_tenant("tenant_3dacme_2fagent_3dsupport") == "tenant=acme/agent=support"
    with pytest.raises(ValueError, match="empty"):
        tenant_name("")


@pytest.mark.parametrize("name", ["", "A", "x_", "x_4", "x_zz", "_61", "_h" + "0" * 32, "tenant.a"])
def test_foreign_tenant_names_decode_to_nothing(name: str) -> None:
    # "_61" is "a" escaped, but tenant_name("a") is "a": not a name this store makes.
    assert namespace_from_tenant(name) is None


def test_long_namespace_keys_are_hashed() -> None:
    key = Namespace(tenant="t" * 128, agent="a" * 128).key()
    name = tenant_name(key)
    assert TENANT.fullmatch(name) and len(name) == 64
    assert name.startswith("tenant_3d" + "t" * 21 + "_h")
    assert tenant_name(key) == name  # deterministic
    assert namespace_from_tenant(name) is None  # read back from the objects' namespace property
    assert tenant_name(key + "x") != name


@settings(max_examples=300)
@given(st.text(min_size=1, max_size=100))
def test_tenant_names_are_valid_and_reversible_unless_hashed(namespace: str) -> None:
    name = tenant_name(namespace)
    assert TENANT.fullmatch(name)
    assert name == name.lower()
    decoded = namespace_from_tenant(name)
    if decoded is None:
        assert re.search(r"_h[0-9a-f]{32}$", name)  # hashed: a prefix of whole escapes, then the digest
    else:
        assert decoded == namespace


namespace_parts = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}", fullmatch=True)
namespaces = st.builds(Namespace, agent=st.none() | namespace_parts, tenant=st.none() | namespace_parts).map(
    lambda ns: ns.key()
)


@settings(max_examples=300)
@given(namespaces, namespaces)
def test_distinct_namespace_keys_get_distinct_tenants(a: str, b: str) -> None:
    assert TENANT.fullmatch(tenant_name(a))
    assert (tenant_name(a) == tenant_name(b)) == (a == b)


@given(st.lists(st.text(min_size=1, max_size=90), min_size=2, max_size=40, unique=True))
def test_no_tenant_collisions_in_a_batch(keys: list[str]) -> None:
    assert len({tenant_name(key) for key in keys}) == len(keys)


# --- items and metadata ---------------------------------------------------------------------------


def test_metadata_tokens_follow_json_equality() -> None:
    assert metadata_token("n", 1) == metadata_token("n", 1.0)
    assert metadata_token("n", True) != metadata_token("n", 1)
    assert metadata_token("n", "1") != metadata_token("n", 1)
    assert metadata_token("n", None) != metadata_token("m", None)
    assert metadata_token("d", {"a": 1, "b": [1, 2.0]}) == metadata_token("d", {"b": [1, 2], "a": 1.0})
    with pytest.raises(ValueError):
        metadata_token("n", float("nan"))
    with pytest.raises(TypeError):
        metadata_token("n", {1: "x"})


def make_item(namespace: str = "tenant=acme", content: str = "The cat sat.", **fields: Any) -> MemoryItem:
    return MemoryItem.new(
        namespace=namespace,
        kind="fact",
        content=content,
        provenance=Provenance(source="user", user="u1", run_id="r1"),
        **fields,
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@given(
    content=st.text(min_size=1, max_size=50),
    metadata=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    importance=st.floats(0, 1),
    expires_in=st.none() | st.integers(-10_000, 10_000),
)
def test_items_round_trip_through_properties(
    content: str, metadata: dict[str, Any], importance: float, expires_in: int | None
) -> None:
    created = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    expires = None if expires_in is None else created + timedelta(seconds=expires_in)
    item = make_item(
        content=content, metadata=metadata, importance=importance, created_at=created, expires_at=expires
    )
    properties = item_properties(item)
    assert ("expires_at" in properties) == (expires is not None)
    assert "id" not in properties and "vector" not in properties  # reserved by Weaviate
    assert len(properties["meta_pairs"]) == len(metadata)
    assert item_from_properties(properties) == item
    # as the client returns it: dates parsed back, a null for "never expires"
    returned = {**properties, "created_at": created.isoformat(), "expires_at": properties.get("expires_at")}
    assert item_from_properties(returned) == item


def test_metadata_must_be_json() -> None:
    # as in the pgvector backend: NaN and infinities are not JSON
    with pytest.raises(ValueError, match="metadata is not JSON"):
        item_properties(make_item(metadata={"ratio": float("inf")}))


def test_naive_datetimes_are_stored_as_utc() -> None:
    item = make_item(created_at=datetime(2025, 1, 1, 9, 0))
    assert item_properties(item)["created_at"] == datetime(2025, 1, 1, 9, 0, tzinfo=UTC)


def test_scores() -> None:
    item = make_item()
    assert vector_hit(item, 0.25).score == pytest.approx(0.75)
    hit = vector_hit(item, 1.5)  # opposite-ish vectors: similarity -0.5, score clipped
    assert (hit.score, hit.vector_score) == (0.0, pytest.approx(-0.5))
    assert vector_hit(item, -1e-7).score == 1.0
    explain_new = (
        "\nHybrid (Result Set keyword,bm25) Document 1b2c: original score 2.4130, normalized score: 0.3"
    )
    explain_old = "(Result Set 'vector,hybridVector') Document x: original score 0.9, normalized score: 0.7 - (Result Set 'keyword,bm25') Document x: original score 1e-05, normalized score: 0"
    assert bm25_score(explain_new) == pytest.approx(2.413)
    assert bm25_score(explain_old) == pytest.approx(1e-05)
    assert bm25_score("(Result Set vector,hybridVector) Document x: original score 0.9") is None
    assert bm25_score(None) is None


# --- no I/O ---------------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fails (and records) any name lookup or connection attempt."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def blocked(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise AssertionError(f"unexpected network I/O: {what}{args[:2]}")

        return blocked

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", refuse("loop.create_connection"))
    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", refuse("loop.getaddrinfo"))
    yield attempts
    assert attempts == []


async def test_construction_does_no_io(no_network: list[str]) -> None:
    store = WeaviateStore("https://weaviate.invalid:8443?grpc_port=50052", api_key_env="NO_SUCH_VARIABLE_X")
    assert store._client is None
    async with store:  # closing a store that never connected does nothing
        pass
    assert store._client is None


async def test_caller_mistakes_are_value_errors_before_io(no_network: list[str]) -> None:
    # The same split as the pgvector backend: a wrong call raises ValueError/TypeError at once.
    store = WeaviateStore("http://weaviate.invalid:8080")
    one = np.ones(4, np.float32)
    items = [make_item(content="one"), make_item(content="two")]
    calls = [
        (store.upsert("docs", items, np.ones((3, 4), np.float32)), ValueError, "expected 2 vector row"),
        (store.search("docs", namespace="n", vector=one, alpha=1.5), ValueError, "alpha"),
        (store.search("docs", namespace="n", vector=one, k=0), ValueError, "k must be at least 1"),
        (store.search("docs", namespace="n", vector=None, text="cat", alpha=0.5), ValueError, "alpha 0"),
        (store.search("docs", namespace="n", vector=None), ValueError, "needs a vector"),
        (store.search("docs", namespace="n", vector=np.ones((2, 4), np.float32)), ValueError, "one row"),
        (store.search("docs", namespace="", vector=one), ValueError, "exactly one namespace"),
        (
            store.search("docs", namespace="n", vector=one, filters={"x": float("nan")}),
            ValueError,
            "filter on 'x'",
        ),
        (
            store.search("docs", namespace="n", vector=one, now=datetime(2025, 1, 1)),
            ValueError,
            "timezone-aware",
        ),
        (store.purge_expired("docs", datetime(2025, 1, 1)), ValueError, "timezone-aware"),
        (store.delete("docs"), ValueError, "ids, a namespace, or both"),
        (store.delete("docs", ids="abc"), TypeError, "not a string"),
        (store.get("docs", "abc"), TypeError, "not a string"),
        (store.ensure_collection("docs", 0), ValueError, "positive integer"),
        (store.list_items("docs", offset=-1), ValueError, "must not be negative"),
    ]
    for call, expected, message in calls:
        with pytest.raises(expected, match=re.escape(message)):
            await call


async def test_unusable_vectors_and_items_are_store_errors_before_io(no_network: list[str]) -> None:
    store = WeaviateStore("http://weaviate.invalid:8080")
    items = [make_item(content="one"), make_item(content="two")]
    calls = [
        ("upsert", store.upsert("docs", items, np.zeros((2, 4), np.float32)), "all zeros"),
        ("upsert", store.upsert("docs", items, np.full((2, 4), np.nan, np.float32)), "finite"),
        (
            "upsert",
            store.upsert("docs", [make_item(metadata={"r": float("nan")})], np.ones((1, 4), np.float32)),
            "metadata is not JSON",
        ),
        ("search", store.search("docs", namespace="n", vector=np.zeros(4, np.float32)), "all zeros"),
    ]
    for operation, call, message in calls:
        with pytest.raises(VectorStoreError) as raised:
            await call
        error = raised.value
        assert type(error) is VectorStoreError, (operation, error)
        assert (error.collection, error.operation, error.location) == ("docs", operation, store.location)
        assert message in str(error), (operation, str(error))
    assert await store.upsert("docs", [], np.empty((0, 4), np.float32)) == WriteAck()
    assert await store.upsert("docs", [], np.empty((0,), np.float32)) == WriteAck()


# --- unreachable ----------------------------------------------------------------------------------


async def test_unreachable_server_is_store_unavailable_quickly() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with WeaviateStore(url, timeout_s=3) as store:
        for operation, call in [
            ("ensure_collection", store.ensure_collection("docs", 4)),
            ("search", store.search("docs", namespace="n", vector=np.ones(4, np.float32))),
            ("namespaces", store.namespaces("docs")),
        ]:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as raised:
                await call
            assert time.monotonic() - started < 2.5
            error = raised.value
            assert (error.backend, error.location, error.collection, error.operation) == (
                "weaviate",
                url,
                "docs",
                operation,
            )
            assert str(error).startswith(
                f"weaviate at {url}: collection 'docs': {operation}: cannot use Weaviate"
            )
            assert "Connect" in str(error)  # the network error, not only the client's summary
            assert type(error.__cause__).__module__.startswith("weaviate")
        with pytest.raises(StoreUnavailable) as raised:
            await store.collections()
        assert (raised.value.collection, raised.value.operation) == (None, "collections")


async def test_missing_api_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVIATE_TEST_KEY_UNSET", raising=False)
    store = WeaviateStore(f"http://127.0.0.1:{closed_port()}", api_key_env="WEAVIATE_TEST_KEY_UNSET")
    with pytest.raises(StoreUnavailable, match="WEAVIATE_TEST_KEY_UNSET is not set"):
        await store.namespaces("docs")


# --- a recording fake Weaviate --------------------------------------------------------------------


class FakeRest:
    """Weaviate's REST endpoints this backend uses: meta, schema, tenant existence and removal."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.classes: dict[str, dict[str, Any]] = {}
        self.tenants: dict[str, set[str]] = {}
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    def schema(self, body: dict[str, Any]) -> dict[str, Any]:
        """The class as Weaviate returns it (defaults filled in; vector config left out)."""
        properties = [
            {"indexFilterable": True, "indexSearchable": False, **prop} for prop in body.get("properties", [])
        ]
        return {"class": body["class"], "description": body.get("description"), "properties": properties}

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        parts = path.strip("/").split("/")[1:]  # after v1
        if parts == ["meta"]:
            return 200, {"version": "1.32.0", "hostname": "fake"}
        if parts == ["schema"] and method == "GET":
            return 200, {"classes": [self.schema(body) for body in self.classes.values()]}
        if parts == ["schema"] and method == "POST":
            self.classes[body["class"]] = body
            self.tenants.setdefault(body["class"], set())
            return 200, body
        if len(parts) == 2 and parts[0] == "schema":
            if parts[1] not in self.classes:
                return 404, None
            if method == "DELETE":
                del self.classes[parts[1]]
                return 200, None
            return 200, self.schema(self.classes[parts[1]])
        if len(parts) == 4 and parts[2] == "tenants" and method == "HEAD":
            return (200 if parts[3] in self.tenants.get(parts[1], set()) else 404), None
        if len(parts) == 3 and parts[2] == "tenants" and method == "DELETE":
            self.tenants[parts[1]] -= set(body)
            return 200, None
        return 404, {"error": [{"message": f"fake has no {method} {path}"}]}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                method, target, _ = line.decode().split(" ", 2)
                headers = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload = self.route(method, urlsplit(target).path, json.loads(raw) if raw else None)
                data = b"" if payload is None or method == "HEAD" else json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class FakeGrpc(weaviate_pb2_grpc.WeaviateServicer):
    """Weaviate's gRPC service: records requests and answers with what a test queued."""

    def __init__(self, rest: FakeRest) -> None:
        self.rest = rest
        self.requests: list[tuple[str, Any]] = []
        self.search_replies: list[search_get_pb2.SearchReply | str] = []  # a str is an error
        self.search_answer: Callable[[Any], search_get_pb2.SearchReply] | None = None
        self.batch_errors: dict[int, str] = {}
        self.search_delay = 0.0

    def named(self, kind: str) -> list[Any]:
        return [request for name, request in self.requests if name == kind]

    async def Search(self, request: Any, context: Any) -> Any:
        self.requests.append(("Search", request))
        await asyncio.sleep(self.search_delay)
        if self.search_answer is not None:
            return self.search_answer(request)
        reply = self.search_replies.pop(0) if self.search_replies else search_get_pb2.SearchReply()
        if isinstance(reply, str):
            await context.abort(grpc.StatusCode.UNKNOWN, reply)
        return reply

    async def BatchObjects(self, request: Any, context: Any) -> Any:
        self.requests.append(("BatchObjects", request))
        for obj in request.objects:
            self.rest.tenants.setdefault(obj.collection, set()).add(obj.tenant)
        errors = [
            batch_pb2.BatchObjectsReply.BatchError(index=i, error=e) for i, e in self.batch_errors.items()
        ]
        return batch_pb2.BatchObjectsReply(errors=errors)

    async def BatchDelete(self, request: Any, context: Any) -> Any:
        self.requests.append(("BatchDelete", request))
        return batch_delete_pb2.BatchDeleteReply(matches=2, successful=2)

    async def TenantsGet(self, request: Any, context: Any) -> Any:
        self.requests.append(("TenantsGet", request))
        known = self.rest.tenants.get(request.collection, set())
        names = (
            [n for n in request.names.values if n in known] if request.HasField("names") else sorted(known)
        )
        hot = tenants_pb2.TENANT_ACTIVITY_STATUS_HOT
        return tenants_pb2.TenantsGetReply(
            tenants=[tenants_pb2.Tenant(name=n, activity_status=hot) for n in names]
        )


async def health_check(request: Any, context: Any) -> Any:
    return health_weaviate_pb2.WeaviateHealthCheckResponse(
        status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
    )


class FakeWeaviate:
    def __init__(self, rest: FakeRest, service: FakeGrpc, grpc_port: int) -> None:
        self.rest, self.grpc = rest, service
        self.url = f"http://127.0.0.1:{rest.port}?grpc_port={grpc_port}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeaviate]:
    rest = FakeRest()
    await rest.start()
    service = FakeGrpc(rest)
    server = grpc.aio.server()
    weaviate_pb2_grpc.add_WeaviateServicer_to_server(service, server)
    health = grpc.unary_unary_rpc_method_handler(
        health_check,
        request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
        response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": health}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield FakeWeaviate(rest, service, port)
    await server.stop(None)
    await rest.stop()


def value(field: Any) -> properties_pb2.Value:
    if field is None:
        return properties_pb2.Value(null_value=0)
    if isinstance(field, datetime):
        return properties_pb2.Value(date_value=field.isoformat())
    if isinstance(field, float):
        return properties_pb2.Value(number_value=field)
    return properties_pb2.Value(text_value=str(field))


def result(
    properties: dict[str, Any], *, vector: np.ndarray | None = None, **metadata: Any
) -> search_get_pb2.SearchResult:
    meta: dict[str, Any] = {"id_as_bytes": uuid.uuid4().bytes}
    for name, field in metadata.items():
        meta[name], meta[f"{name}_present"] = field, True
    if vector is not None:
        meta["vectors"] = [
            base_pb2.Vectors(
                name="default",
                vector_bytes=vector.astype(np.float32).tobytes(),
                type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32,
            )
        ]
    return search_get_pb2.SearchResult(
        properties=search_get_pb2.PropertiesResult(
            non_ref_props=properties_pb2.Properties(fields={k: value(v) for k, v in properties.items()})
        ),
        metadata=search_get_pb2.MetadataResult(**meta),
    )


def item_result(item: MemoryItem, **metadata: Any) -> search_get_pb2.SearchResult:
    properties = item_properties(item)
    properties.pop("meta_pairs")
    properties.setdefault("expires_at", None)
    return result(properties, **metadata)


async def test_rest_up_grpc_down_is_store_unavailable(fake: FakeWeaviate) -> None:
    url = f"http://127.0.0.1:{fake.rest.port}?grpc_port={closed_port()}"
    started = time.monotonic()
    async with WeaviateStore(url, timeout_s=5) as store:
        with pytest.raises(StoreUnavailable) as raised:
            await store.ensure_collection("docs", 4)
    assert time.monotonic() - started < 4
    assert "gRPC 127.0.0.1:" in str(raised.value)
    assert "WeaviateGRPCUnavailableError" in str(raised.value)


async def test_ensure_collection_schema_and_dimensions(fake: FakeWeaviate) -> None:
    async with WeaviateStore(fake.url, timeout_s=5) as store:
        await store.ensure_collection("support-episodes", 4)
        created = [body for method, path, body in fake.rest.requests if method == "POST"]
        assert len(created) == 1
        body = created[0]
        assert body["class"] == "Memory_support_episodes"
        assert json.loads(body["description"]) == {
            "agent_platform_memory": 1,
            "collection": "support-episodes",
            "dimensions": 4,
        }
        assert body["multiTenancyConfig"] == {
            "enabled": True,
            "autoTenantCreation": True,
            "autoTenantActivation": True,
        }
        assert body["invertedIndexConfig"]["indexNullState"] is True
        vector = body["vectorConfig"]["default"]
        assert vector["vectorizer"] == {"none": {}}
        assert vector["vectorIndexType"] == "hnsw" and vector["vectorIndexConfig"]["distance"] == "cosine"
        properties = {p["name"]: p for p in body["properties"]}
        assert set(properties) == {
            "item_id",
            "namespace",
            "kind",
            "content",
            "content_hash",
            "importance",
            "trust",
            "provenance",
            "metadata",
            "meta_pairs",
            "created_at",
            "expires_at",
        }
        assert properties["content"]["tokenization"] == "word" and properties["content"]["indexSearchable"]
        assert properties["content_hash"]["tokenization"] == "field"
        assert properties["meta_pairs"]["dataType"] == ["text[]"]
        assert properties["created_at"]["dataType"] == ["date"] == properties["expires_at"]["dataType"]

        await store.ensure_collection("support-episodes", 4)  # same dimensions: nothing to do
        assert len([1 for method, _, _ in fake.rest.requests if method == "POST"]) == 1
        with pytest.raises(DimensionMismatch) as raised:
            await store.ensure_collection("support-episodes", 8)
        assert "holds 4-dimensional vectors, not 8" in str(raised.value)

    async with WeaviateStore(fake.url, timeout_s=5) as other:  # a fresh process reads the record
        with pytest.raises(DimensionMismatch):
            await other.upsert("support-episodes", [make_item()], np.ones((1, 8), np.float32))
        assert [info.name for info in await other.collections()] == ["support-episodes"]

    fake.rest.classes["Memory_foreign"] = {"class": "Memory_foreign", "description": "someone else's"}
    async with WeaviateStore(fake.url, timeout_s=5) as store:
        with pytest.raises(VectorStoreError, match="not created by this store"):
            await store.ensure_collection("foreign", 4)
        with pytest.raises(VectorStoreError, match="no such collection"):
            await store.search("missing", namespace="n", vector=np.ones(4, np.float32))


async def test_upsert_requests_duplicates_and_object_errors(fake: FakeWeaviate) -> None:
    a_old = make_item(namespace="tenant=a", content="alpha", id="old")
    a_dup = make_item(namespace="tenant=a", content="ALPHA ", metadata={"topic": "x"})
    a_new = make_item(namespace="tenant=a", content="beta", expires_at=datetime(2030, 1, 1, tzinfo=UTC))
    b_one = make_item(namespace="tenant=b", content="gamma", metadata={"topic": "y", "n": 1})
    b_dup = make_item(namespace="tenant=b", content="Gamma", id="b-dup")
    rows = np.arange(1, 21, dtype=np.float32).reshape(5, 4)
    async with WeaviateStore(fake.url, timeout_s=5) as store:
        await store.ensure_collection("docs", 4)
        fake.rest.tenants["Memory_docs"] = {"tenant_3da"}  # namespace a exists, b does not yet
        fake.grpc.search_replies.append(
            search_get_pb2.SearchReply(
                results=[result({"item_id": "old", "content_hash": content_hash("alpha")})]
            )
        )
        ack = await store.upsert("docs", [a_dup, a_new, b_one, b_dup, a_old], rows)

    # a_old is stored already, unchanged: a duplicate of itself, not rewritten.
    assert ack.duplicates == {a_dup.id: "old", "b-dup": b_one.id, "old": "old"}
    assert ack.written == [a_new.id, b_one.id]
    [tenants_request] = fake.grpc.named("TenantsGet")
    assert sorted(tenants_request.names.values) == ["tenant_3da", "tenant_3db"]
    [lookup] = fake.grpc.named("Search")  # only the tenant that exists is asked for hashes
    assert (lookup.collection, lookup.tenant) == ("Memory_docs", "tenant_3da")
    assert sorted(MessageToDict(lookup.filters)["valueTextArray"]["values"]) == sorted(
        {content_hash("alpha"), content_hash("beta")}
    )

    sent = {obj.uuid: obj for batch in fake.grpc.named("BatchObjects") for obj in batch.objects}
    assert set(sent) == {generate_uuid5(i) for i in (a_new.id, b_one.id)}
    for item, row in [(a_new, rows[1]), (b_one, rows[2])]:
        obj = sent[generate_uuid5(item.id)]
        assert (obj.collection, obj.tenant) == ("Memory_docs", tenant_name(item.namespace))
        [vector] = obj.vectors
        assert vector.name == "default"
        np.testing.assert_array_equal(np.frombuffer(vector.vector_bytes, dtype=np.float32), row)
        scalars = MessageToDict(obj.properties.non_ref_properties)
        assert scalars["item_id"] == item.id and scalars["content"] == item.content
        assert scalars["namespace"] == item.namespace and scalars["content_hash"] == item.content_hash
        assert datetime.fromisoformat(scalars["created_at"]) == item.created_at
        assert ("expires_at" in scalars) == (item.expires_at is not None)
        assert json.loads(scalars["metadata"]) == item.metadata
        assert Provenance.model_validate_json(scalars["provenance"]) == item.provenance
        arrays = {a.prop_name: list(a.values) for a in obj.properties.text_array_properties}
        if item.metadata:
            assert sorted(arrays["meta_pairs"]) == sorted(
                metadata_token(k, v) for k, v in item.metadata.items()
            )
        else:
            assert "meta_pairs" in obj.properties.empty_list_props

    fake.grpc.requests.clear()
    fake.grpc.batch_errors = {1: "vector lengths don't match"}
    async with WeaviateStore(fake.url, timeout_s=5) as store:
        with pytest.raises(VectorStoreError) as raised:
            await store.upsert("docs", [a_new, a_old], rows[:2])
    error = raised.value
    assert type(error) is VectorStoreError and error.operation == "upsert"
    assert "did not write 1 of 2 items ('old')" in str(error)
    assert "vector lengths don't match" in str(error)


async def test_search_requests_and_hits(fake: FakeWeaviate) -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    item = make_item(namespace="tenant=a", content="the cat sat on the mat", created_at=now)
    query = np.array([1, 0, 0, 0], np.float32)
    stored = np.array([1, 1, 0, 0], np.float32)
    async with WeaviateStore(fake.url, timeout_s=5) as store:
        await store.ensure_collection("docs", 4)

        explain = "\nHybrid (Result Set keyword,bm25) Document x: original score 1.75, normalized score: 0.4"
        fake.grpc.search_replies.append(
            search_get_pb2.SearchReply(
                results=[item_result(item, score=0.9, explain_score=explain, vector=stored)]
            )
        )
        [hit] = await store.search(
            "docs",
            namespace="tenant=a",
            vector=query,
            text="cat",
            k=3,
            alpha=0.6,
            filters={"topic": "x"},
            now=now,
        )
        assert hit.item == item
        assert hit.score == pytest.approx(0.9)
        assert hit.vector_score == pytest.approx(1 / np.sqrt(2))
        assert hit.text_score == pytest.approx(1.75)
        [request] = fake.grpc.named("Search")
        assert (request.collection, request.tenant, request.limit) == ("Memory_docs", "tenant_3da", 3)
        hybrid = request.hybrid_search
        assert (hybrid.query, hybrid.fusion_type) == ("cat", hybrid.FUSION_TYPE_RELATIVE_SCORE)
        assert hybrid.alpha == pytest.approx(0.6)  # servers before 1.36.6 get the plain field
        assert list(hybrid.properties) == ["content"]
        assert list(hybrid.targets.target_vectors) == ["default"]
        assert np.frombuffer(hybrid.vector_bytes, np.float32).tolist() == query.tolist()
        assert list(request.metadata.vectors) == ["default"]
        filters = str(request.filters)
        for needle in (
            "expires_at",
            "OPERATOR_IS_NULL",
            "OPERATOR_GREATER_THAN",
            "meta_pairs",
            "OPERATOR_CONTAINS_ALL",
        ):
            assert needle in filters
        assert metadata_token("topic", "x") in filters
        assert "2025-06-01T00:00:00" in filters
        assert request.metadata.score and request.metadata.explain_score

        fake.grpc.requests.clear()
        fake.grpc.search_replies.append(search_get_pb2.SearchReply(results=[item_result(item, distance=0.2)]))
        [hit] = await store.search("docs", namespace="tenant=a", vector=query, text="cat", alpha=1.0)
        assert (hit.score, hit.vector_score, hit.text_score) == (pytest.approx(0.8), pytest.approx(0.8), None)
        [request] = fake.grpc.named("Search")
        assert request.HasField("near_vector") and not request.HasField("hybrid_search")
        assert request.metadata.distance

        fake.grpc.requests.clear()
        fake.grpc.search_replies.append(search_get_pb2.SearchReply(results=[item_result(item, score=1.0)]))
        [hit] = await store.search("docs", namespace="tenant=a", vector=None, text="mat", alpha=0.0)
        assert (hit.score, hit.vector_score) == (1.0, None)
        [request] = fake.grpc.named("Search")
        text_only = request.hybrid_search
        assert text_only.query == "mat" and not text_only.vector_bytes
        assert text_only.alpha == 0.0  # unset on the wire: Weaviate reads it as 0, keyword only

        # A namespace never written to has no tenant: Weaviate refuses the query, the store says "no hits".
        fake.grpc.search_replies.append('tenant not found: "tenant_3dnew"')
        assert await store.search("docs", namespace="tenant=new", vector=query) == []
        # Any other refusal is an error naming the operation.
        fake.rest.tenants["Memory_docs"].add("tenant_3da")
        fake.grpc.search_replies.append("something broke")
        with pytest.raises(VectorStoreError) as raised:
            await store.search("docs", namespace="tenant=a", vector=query)
        assert type(raised.value) is VectorStoreError
        assert "something broke" in str(raised.value) and raised.value.operation == "search"


async def test_slow_answers_are_store_timeout(fake: FakeWeaviate) -> None:
    fake.grpc.search_delay = 5.0
    async with WeaviateStore(fake.url, timeout_s=0.5) as store:
        await store.ensure_collection("docs", 4)
        started = time.monotonic()
        with pytest.raises(StoreTimeout) as raised:
            await store.search("docs", namespace="n", vector=np.ones(4, np.float32))
        assert time.monotonic() - started < 3
    assert raised.value.operation == "search" and "no answer within 0.5s" in str(raised.value)


async def test_namespaces_come_from_non_empty_tenants(fake: FakeWeaviate) -> None:
    long_key = Namespace(tenant="t" * 100).key()
    async with WeaviateStore(fake.url, timeout_s=5) as store:
        await store.ensure_collection("docs", 4)
        fake.rest.tenants["Memory_docs"] = {
            tenant_name("tenant=a"),
            tenant_name("tenant=emptied"),
            tenant_name(long_key),
        }
        by_tenant = {
            tenant_name("tenant=a"): [result({"namespace": "tenant=a"})],
            tenant_name("tenant=emptied"): [],
            tenant_name(long_key): [result({"namespace": long_key})],
        }
        fake.grpc.search_answer = lambda request: search_get_pb2.SearchReply(
            results=by_tenant[request.tenant]
        )
        assert await store.namespaces("docs") == sorted(["tenant=a", long_key])
        assert {r.limit for r in fake.grpc.named("Search")} == {1}


def test_offsets_in_utc_compare_as_instants() -> None:
    # What a server returning UTC for a +02:00 write gives back is the same item.
    local = make_item(created_at=datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    properties = item_properties(local)
    properties["created_at"] = properties["created_at"].astimezone(UTC)
    assert item_from_properties(properties) == local


async def test_reads_across_tenants(fake: FakeWeaviate) -> None:
    day = datetime(2025, 5, 1, tzinfo=UTC)
    a_old = make_item(namespace="tenant=a", content="one", id="x", created_at=day)
    a_new = make_item(namespace="tenant=a", content="two", id="b", created_at=day + timedelta(days=2))
    b_tie = make_item(namespace="tenant=b", content="three", id="a", created_at=day + timedelta(days=2))
    b_same_id = make_item(namespace="tenant=b", content="four", id="x", created_at=day + timedelta(days=1))
    stored = {tenant_name("tenant=a"): [a_new, a_old], tenant_name("tenant=b"): [b_tie, b_same_id]}
    async with WeaviateStore(fake.url, timeout_s=5) as store:
        await store.ensure_collection("docs", 4)
        fake.rest.tenants["Memory_docs"] = set(stored)
        fake.grpc.search_answer = lambda request: search_get_pb2.SearchReply(
            results=[item_result(item) for item in stored[request.tenant]]
        )

        # newest first, ties by id, across namespaces; offset and limit over the merged order
        listed = await store.list_items("docs", limit=3, offset=0)
        assert [(i.namespace, i.id) for i in listed] == [
            ("tenant=b", "a"),
            ("tenant=a", "b"),
            ("tenant=b", "x"),
        ]
        assert [i.id for i in await store.list_items("docs", limit=2, offset=2)] == ["x", "x"]
        for request in fake.grpc.named("Search"):
            assert [(list(s.path), s.ascending) for s in request.sort_by] == [
                (["created_at"], False),
                (["item_id"], True),
            ]

        # one namespace: Weaviate pages
        fake.grpc.requests.clear()
        await store.list_items("docs", namespace="tenant=a", limit=5, offset=1)
        [request] = fake.grpc.named("Search")
        assert (request.tenant, request.limit, request.offset) == (tenant_name("tenant=a"), 5, 1)

        # get: in the order asked, missing ids left out; an id in two namespaces gives the newest
        fake.grpc.requests.clear()
        got = await store.get("docs", ["b", "missing", "x"])
        assert [(i.namespace, i.id) for i in got] == [("tenant=a", "b"), ("tenant=b", "x")]
        uuids = {
            str(u)
            for r in fake.grpc.named("Search")
            for u in MessageToDict(r.filters)["valueTextArray"]["values"]
        }
        assert uuids == {generate_uuid5(i) for i in ("b", "missing", "x")}

        # delete ids in every namespace: one batch delete per tenant, counts summed
        assert await store.delete("docs", ids=["x"]) == 4
        deletes = fake.grpc.named("BatchDelete")
        assert sorted(d.tenant for d in deletes) == sorted(stored)
        assert all(generate_uuid5("x") in str(d.filters) for d in deletes)
        assert not any(d.dry_run for d in deletes)
        # ... or in one namespace, which must exist
        assert await store.delete("docs", namespace="tenant=zzz", ids=["x"]) == 0
