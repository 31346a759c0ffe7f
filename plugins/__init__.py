"""Example tool implementations referenced by the specs in `specs/` (`python: plugins.<module>:<function>`).

Every function here is typed, deterministic and works offline: the platform derives each tool's
argument schema from the type hints and the Google-style docstring (its `Args:` descriptions are
shown to the model), validates the model's arguments before calling, and validates the result.

- `plugins.documents`: extract, chunk, embed and store documents (the ingestion pipeline).
- `plugins.search`: web search over a small bundled corpus (the research agent).
- `plugins.code`: read files, lint Python, list tests (the code-review supervisor's agents).
- `plugins.support`: knowledge-base search and ticket creation (the production support agent).
"""
