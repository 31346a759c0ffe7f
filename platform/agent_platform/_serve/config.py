"""What an ingress replica is built with, resolved where `apply` (or `platform serve --api`) runs.

The bearer token is read from the environment there and only its SHA-256 digest travels: Ray
Serve keeps a deployment's arguments in the cluster's own storage, where a token would be
readable by anyone who can read that."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from agent_platform._spec.kinds import EndpointSpec


class EndpointConfigError(ValueError):
    """The endpoint cannot be served as configured (its token variable is unset)."""


@dataclass(frozen=True)
class EndpointConfig:
    name: str
    namespace: str
    units: tuple[str, ...]  # "Kind/name", in the order served
    token_digest: bytes | None  # sha256 of the bearer token; None: insecure (no token)
    host: str = "127.0.0.1"
    port: int = 8000
    route_prefix: str = "/"
    max_body: int = 1024 * 1024
    concurrency: int = 64
    wait_timeout: float = 300.0
    replicas: int = 1
    num_cpus: float = 0.1
    token_env: str | None = None
    dev: bool = False  # run by `platform serve --api`, removed when it stops

    @property
    def app_name(self) -> str:
        """The Ray Serve application: one per endpoint and deployment namespace (and one more
        for `platform serve --api`, which must not replace, nor on exit delete, an applied one)."""
        return app_name(self.namespace, self.name) + ("-dev" if self.dev else "")

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}{self.route_prefix.rstrip('/')}"

    @classmethod
    def from_spec(
        cls,
        name: str,
        spec: EndpointSpec,
        units: list[str],
        namespace: str,
        environ: Mapping[str, str] | None = None,
    ) -> EndpointConfig:
        environ = os.environ if environ is None else environ
        digest = None
        if spec.auth.token_env is not None:
            token = environ.get(spec.auth.token_env, "")
            if not token:
                raise EndpointConfigError(
                    f"Endpoint/{name} takes its bearer token from ${spec.auth.token_env}, which is not "
                    "set here: set it (the endpoint refuses to start without a token), or mark the "
                    "endpoint `auth: {insecure: true}` for local development"
                )
            digest = token_digest(token)
        return cls(
            name=name,
            namespace=namespace,
            units=tuple(units),
            token_digest=digest,
            host=spec.host,
            port=spec.port,
            route_prefix=spec.route_prefix,
            max_body=spec.max_body,
            concurrency=spec.concurrency,
            wait_timeout=spec.wait_timeout,
            replicas=spec.replicas,
            num_cpus=spec.num_cpus,
            token_env=spec.auth.token_env,
        )


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def app_name(namespace: str, endpoint: str) -> str:
    return f"platform-{namespace}-{endpoint}"
