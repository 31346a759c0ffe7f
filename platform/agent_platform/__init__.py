"""Declarative AI agent platform.

Layers follow the data: load -> validate -> compile -> deploy -> run -> observe.
Importing this package must stay cheap: `platform validate` runs on every CI commit.
"""

__version__ = "0.1.0"
API_VERSION = "agents.platform/v1"
