"""The vector store contract on every backend: the tests live in tests/memory/contract.py and run
here on the `store` fixture (pgvector on the session's embedded server; weaviate when
`WEAVIATE_URL` is set)."""

from tests.memory.contract import *  # noqa: F403
