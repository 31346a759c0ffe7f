"""Names in Weaviate: a memory collection's class name and a namespace's tenant name, both
reversible (see the package docstring)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

COLLECTION_PREFIX = "Memory_"
_CLASS_NAME_MAX = 255  # Weaviate: ^[A-Z][_0-9A-Za-z]{0,254}$
_PLAIN_COLLECTION = re.compile(r"[a-z0-9][a-z0-9-]*")

TENANT_NAME_MAX = 64
_TENANT_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_HEX = frozenset("0123456789abcdef")
_DIGEST_BYTES = 16
_HASHED_MARK = "_h"
_HASHED_PREFIX_MAX = TENANT_NAME_MAX - len(_HASHED_MARK) - 2 * _DIGEST_BYTES  # 30


def collection_class_name(collection: str) -> str:
    """The Weaviate collection holding memory collection `collection` (see the package docstring).
    `ValueError` for an empty name or one too long for Weaviate."""
    if not collection:
        raise ValueError("a collection name cannot be empty")
    if _PLAIN_COLLECTION.fullmatch(collection):
        tail = collection.replace("-", "_")
    else:
        tail = "_" + collection.encode("utf-8", "surrogatepass").hex()
    name = COLLECTION_PREFIX + tail
    if len(name) > _CLASS_NAME_MAX:
        raise ValueError(
            f"collection name {collection[:40]!r}... maps to a {len(name)}-character Weaviate collection "
            f"name (at most {_CLASS_NAME_MAX})"
        )
    return name


def collection_from_class_name(name: str) -> str | None:
    """The memory collection a Weaviate collection name holds, or None when `collection_class_name`
    does not produce that name (another application's collection)."""
    if not name.startswith(COLLECTION_PREFIX):
        return None
    tail = name[len(COLLECTION_PREFIX) :]
    if tail.startswith("_"):
        try:
            candidate = bytes.fromhex(tail[1:]).decode("utf-8", "surrogatepass")
        except ValueError:
            return None
    else:
        candidate = tail.replace("_", "-")
    try:
        return candidate if collection_class_name(candidate) == name else None
    except ValueError:
        return None


def _escaped(namespace: str) -> Iterator[str]:
    for ch in namespace:
        if ch in _TENANT_SAFE:
            yield ch
        else:
            yield from (f"_{byte:02x}" for byte in ch.encode("utf-8", "surrogatepass"))


def tenant_name(namespace: str) -> str:
    """The tenant holding a namespace's objects (see the package docstring): `[a-z0-9_-]`, 1-64
    characters, distinct for distinct keys. `ValueError` for an empty key."""
    if not namespace:
        raise ValueError("a namespace cannot be empty")
    pieces = list(_escaped(namespace))
    encoded = "".join(pieces)
    if len(encoded) <= TENANT_NAME_MAX:
        return encoded
    prefix = ""
    for piece in pieces:  # whole escapes only, so the prefix stays a plain encoding
        if len(prefix) + len(piece) > _HASHED_PREFIX_MAX:
            break
        prefix += piece
    digest = hashlib.blake2b(namespace.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_BYTES)
    return f"{prefix}{_HASHED_MARK}{digest.hexdigest()}"


def namespace_from_tenant(name: str) -> str | None:
    """The namespace key a tenant name encodes, or None when it is not `tenant_name`'s plain form
    (a hashed long key, whose key is read from the objects, or a foreign tenant)."""
    out = bytearray()
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "_":
            pair = name[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                return None
            out.append(int(pair, 16))
            i += 3
        elif ch in _TENANT_SAFE:
            out.append(ord(ch))
            i += 1
        else:
            return None
    try:
        namespace = out.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    return namespace if namespace and tenant_name(namespace) == name else None
