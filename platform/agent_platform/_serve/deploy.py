"""Endpoints on a cluster: deployed by `platform apply` (the Endpoint specs), run for local
development by `platform serve --api`, removed by `delete`/`apply --prune`.

Ray Serve runs one HTTP proxy per cluster, on the head node; every endpoint of every namespace is
an application behind it, under its own route prefix."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_platform._deploy.bundle import SpecBundle
from agent_platform._serve.config import EndpointConfig, EndpointConfigError, app_name
from agent_platform._spec.kinds import EndpointDocument, EndpointSpec
from agent_platform._validate.documents import TypedSpec
from agent_platform._validate.references import SpecSet

if TYPE_CHECKING:
    from agent_platform._deploy.applied import AppliedBundle

READY_TIMEOUT_S = 120.0


class EndpointError(RuntimeError):
    """Reported to the user as is."""


def endpoint_configs(
    specs: SpecSet, namespace: str, environ: Mapping[str, str] | None = None
) -> list[EndpointConfig]:
    """The Endpoint specs as configs. Raises EndpointConfigError (a token variable unset)."""
    return [_config(specs, spec, namespace, environ) for spec in specs.of_kind("Endpoint")]


def _config(
    specs: SpecSet, spec: TypedSpec, namespace: str, environ: Mapping[str, str] | None
) -> EndpointConfig:
    from agent_platform._validate.endpoints import served_units

    assert isinstance(spec.model, EndpointDocument)
    units = [f"{u.kind}/{u.name}" for u in served_units(specs, spec)]
    return EndpointConfig.from_spec(spec.name, spec.model.spec, units, namespace, environ)


def dev_config(
    specs: SpecSet, namespace: str, *, token_env: str | None, insecure: bool, port: int | None
) -> list[EndpointConfig]:
    """`platform serve --api`: the specs' endpoints, else one serving every unit."""
    configs = endpoint_configs(specs, namespace)
    if not configs:
        from agent_platform._spec.kinds import UNIT_KINDS

        units = [f"{kind}/{s.name}" for kind in UNIT_KINDS for s in specs.of_kind(kind)]
        auth: dict[str, Any] = {"insecure": True} if insecure else {"token_env": token_env}
        spec = EndpointSpec.model_validate({"auth": auth})
        configs = [EndpointConfig.from_spec("dev", spec, units, namespace)]
    return [_with(c, dev=True, **({"port": port} if port is not None else {})) for c in configs]


def _with(config: EndpointConfig, **changes: Any) -> EndpointConfig:
    from dataclasses import replace

    return replace(config, **changes)


def start_serve(configs: Iterable[EndpointConfig]) -> None:
    import logging

    from ray import serve

    # Ray Serve narrates every deployment at INFO on stderr; `apply` says what matters itself.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)

    first = next(iter(configs))
    # One proxy, on the head node: it is where the embedded head's port is, and it outlives
    # worker nodes.
    serve.start(http_options={"host": first.host, "port": first.port}, proxy_location="HeadOnly")


def deploy(
    configs: list[EndpointConfig],
    bundle: SpecBundle,
    store_url: str,
    *,
    cwd: str | None,
    changed: Callable[[EndpointConfig], bool] = lambda _: True,
    note: Callable[[str], None] | None = None,
) -> list[EndpointConfig]:
    """Deploy (or update) each endpoint whose spec or units changed, whose application is not
    running, or whose token changed; returns the ones (re)deployed. Waits until each answers its
    health check."""
    from ray import serve

    from agent_platform._serve.ingress import endpoint_application

    if not configs:
        return []
    start_serve(configs)
    done = []
    for config in configs:
        if not changed(config) and _running(config) and _same_token(config):
            continue
        try:
            serve.run(
                endpoint_application(bundle, config, store_url, cwd),
                name=config.app_name,
                route_prefix=config.route_prefix,
                blocking=False,
            )
        except Exception as exc:  # Ray Serve's own errors: a route prefix taken, a replica failing
            raise EndpointError(f"Endpoint/{config.name}: Ray Serve refused it: {_first_line(exc)}") from None
        wait_healthy(config)
        done.append(config)
        if note is not None:
            note(
                f"Endpoint/{config.name} serving {', '.join(config.units)} at {config.url}/v1 (OpenAPI: {config.url}/openapi.json)"
            )
    return done


def wait_healthy(config: EndpointConfig, timeout: float = READY_TIMEOUT_S) -> None:
    import httpx

    from agent_platform._serve.api import HEALTH_PATH

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(config.url + HEALTH_PATH, timeout=5)
            if answer.status_code == 200 and answer.json().get("endpoint") == config.name:
                return
            last = f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.25)
    raise EndpointError(
        f"Endpoint/{config.name} did not answer at {config.url}{HEALTH_PATH} within {timeout:g}s ({last}); "
        "Ray Serve's HTTP proxy keeps the host and port it was first started with on this cluster "
        "(`platform down` stops it)"
    )


def _running(config: EndpointConfig) -> bool:
    from ray import serve

    try:
        status = serve.status().applications.get(config.app_name)
    except Exception:
        return False
    return status is not None and str(status.status) in ("RUNNING", "ApplicationStatus.RUNNING")


def _same_token(config: EndpointConfig) -> bool:
    import hashlib

    from ray import serve

    try:
        handle = serve.get_app_handle(config.app_name)
        running = handle.token_fingerprint.remote().result(timeout_s=10)
    except Exception:
        return False
    return bool(running == hashlib.sha256(config.token_digest or b"").hexdigest()[:16])


def remove(app_names: Iterable[str]) -> list[str]:
    """Delete these Serve applications (those that exist); returns those deleted."""
    from ray import serve

    try:
        apps = serve.status().applications
    except Exception:
        return []
    removed = []
    for app in app_names:
        if app in apps:
            serve.delete(app)
            removed.append(app)
    return removed


def store_url_of(settings: Mapping[str, Any]) -> str:
    from agent_platform._runstore import default_run_store_url

    return str(settings.get("run_store_url") or default_run_store_url(Path(settings["state_dir"])))


def apply_endpoints(
    deployment: Any,
    specs: SpecSet,
    bundle: SpecBundle,
    actions: list[Any],
    *,
    note: Callable[[str], None],
) -> list[EndpointConfig]:
    """After `apply`: deploy the Endpoint specs that changed (or whose units did), remove those it
    deleted."""
    deleted = [
        a.ref.partition("/")[2] for a in actions if a.kind == "delete" and a.ref.startswith("Endpoint/")
    ]
    if deleted:
        gone = remove([app_name(deployment.namespace, name) for name in deleted])
        for name in deleted:
            if app_name(deployment.namespace, name) in gone:
                note(f"Endpoint/{name} removed")
    configs = endpoint_configs(specs, deployment.namespace)
    if not configs:
        return []
    kinds = {a.ref: a.kind for a in actions}
    settings = deployment.settings()
    done = deploy(
        configs,
        bundle,
        store_url_of(settings),
        cwd=os.getcwd(),
        changed=lambda c: kinds.get(f"Endpoint/{c.name}") != "unchanged",
        note=note,
    )
    if deployment.embedded:  # kept for a restart of the head (restore_endpoints)
        from agent_platform._deploy import applied

        applied.record_endpoint_tokens(
            Path(settings["state_dir"]),
            deployment.namespace,
            {c.name: c.token_digest.hex() if c.token_digest is not None else None for c in configs},
        )
    return done


def restore_endpoints(
    namespace: str, state: Path, entries: Sequence[AppliedBundle], note: Callable[[str], None]
) -> None:
    """The embedded head died and was started again with the namespace's units: deploy again the
    endpoints the last applies deployed, each from the bundle that applied it, with the token it
    had (its digest was kept; without one, the token variable of this command's environment).
    An endpoint that cannot come back is named, with what to run."""
    from dataclasses import replace

    from agent_platform._deploy import applied
    from agent_platform._deploy.client import compile_bundle

    digests = applied.load_endpoint_tokens(state, namespace)
    store_url = str(applied.load_settings(state, namespace)["run_store_url"])
    for entry in entries:
        names = {ref.partition("/")[2] for ref in entry.refs if ref.startswith("Endpoint/")}
        if not names:
            continue
        specs, _ = compile_bundle(entry.bundle)
        configs = []
        for spec in specs.of_kind("Endpoint"):
            if spec.name not in names:
                continue
            assert isinstance(spec.model, EndpointDocument)
            token_env = spec.model.spec.auth.token_env
            recorded = digests.get(spec.name, "")
            # Built with a stand-in for the token when its digest was kept: only the digest travels.
            environ = {**os.environ, token_env: "kept"} if token_env and recorded else os.environ
            try:
                config = _config(specs, spec, namespace, environ)
            except EndpointConfigError as exc:
                note(f"Endpoint/{spec.name} was not restored: {exc}; then run `platform apply SPECS`")
                continue
            if token_env and recorded:
                config = replace(config, token_digest=bytes.fromhex(recorded))
            configs.append(config)
        if configs:
            deploy(
                configs, entry.bundle, store_url, cwd=entry.cwd, note=lambda text: note(f"restored {text}")
            )


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line
    return lines[0] if lines else type(exc).__name__
