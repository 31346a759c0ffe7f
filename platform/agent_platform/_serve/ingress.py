"""The Ray Serve deployment of an endpoint: each replica compiles the deployed specs (as a unit's
replica does), builds the FastAPI application of `api.py` on them and serves it behind Ray
Serve's HTTP proxy. Importing this module imports Ray Serve."""

from __future__ import annotations

from typing import Any

from ray import serve

from agent_platform._deploy.bundle import SpecBundle
from agent_platform._serve.config import EndpointConfig

# Ray Serve's own queueing would answer 503 in its own shape before our 429: let every request
# reach the application, which bounds runs per unit itself.
MAX_ONGOING_REQUESTS = 100_000


@serve.ingress()
class ApiIngress:
    def __init__(self, bundle: SpecBundle, config: EndpointConfig, store_url: str, cwd: str | None) -> None:
        import os

        if cwd:
            os.chdir(cwd)  # relative paths in specs mean what they meant where apply ran
        from agent_platform._compile.plan import SpecRef
        from agent_platform._serve.service import RunService

        plan = bundle.compile()
        self.config = config
        self.units: dict[str, Any] = {}
        names = [ref.partition("/")[2] for ref in config.units]
        for ref in config.units:
            kind, _, name = ref.partition("/")
            # A name two kinds share is routed as Kind/name; any other by its name alone.
            self.units[ref if names.count(name) > 1 else name] = plan.units[SpecRef(kind, name)]
        self.service = RunService(config.namespace, store_url, config.concurrency)
        from agent_platform._serve.a2a_card import spec_descriptions

        self.descriptions = spec_descriptions(bundle.files)

    def __serve_build_asgi_app__(self) -> Any:
        from agent_platform._serve.api import build_app

        return build_app(self.config, self.units, self.service, self.descriptions)

    def token_fingerprint(self) -> str:
        """What `apply` compares to tell a rotated token (the digest of a digest: never the token)."""
        import hashlib

        return hashlib.sha256(self.config.token_digest or b"").hexdigest()[:16]


def endpoint_application(bundle: SpecBundle, config: EndpointConfig, store_url: str, cwd: str | None) -> Any:
    # Any: Ray's stubs type `serve.deployment` as the decorator factory, not the Deployment it returns.
    wrapped: Any = serve.deployment(ApiIngress)
    deployment = wrapped.options(
        name=f"api-{config.name}",
        num_replicas=config.replicas,
        max_ongoing_requests=MAX_ONGOING_REQUESTS,
        ray_actor_options={"num_cpus": config.num_cpus},
    )
    return deployment.bind(bundle, config, store_url, cwd)
