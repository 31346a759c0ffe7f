"""Model providers: one small async interface (`ModelProvider.complete(ModelRequest)` ->
`ModelResult` with a validated pydantic object, usage and cost) over

* `anthropic` -- the real Anthropic SDK with instructor (`anthropic_provider.py`);
* `openai` -- any OpenAI-compatible server with instructor (`openai_provider.py`);
* `scripted` -- deterministic replay of a script, for tests, demos and offline runs (`scripted.py`).

`create_provider(spec, base_dir=...)` builds the right one; the SDKs are imported only then.
"""

from agent_platform._runtime.models.base import (
    ModelAuthError,
    ModelConfigError,
    ModelConnectionError,
    ModelError,
    ModelOutputInvalid,
    ModelOverloaded,
    ModelProvider,
    ModelRateLimited,
    ModelRequest,
    ModelRequestError,
    ModelResult,
    ModelServerError,
    ModelTimeout,
    ScriptExhausted,
    Usage,
    cost_usd,
)
from agent_platform._runtime.models.factory import create_provider

__all__ = [
    "ModelAuthError",
    "ModelConfigError",
    "ModelConnectionError",
    "ModelError",
    "ModelOutputInvalid",
    "ModelOverloaded",
    "ModelProvider",
    "ModelRateLimited",
    "ModelRequest",
    "ModelRequestError",
    "ModelResult",
    "ModelServerError",
    "ModelTimeout",
    "ScriptExhausted",
    "Usage",
    "cost_usd",
    "create_provider",
]
