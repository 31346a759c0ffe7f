"""The HTTP API from the command line: `apply`'s Endpoint specs (deployed after the units), their
removal on `delete`, and `platform serve --api` (local development against the local deployment).
Ray and Ray Serve are imported only once a command runs."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import typer

from agent_platform.cli import EXIT_INVALID, EXIT_USAGE
from agent_platform.cli_output import note


def _fail(command: str, message: str, code: int = EXIT_INVALID) -> typer.Exit:
    typer.echo(f"platform {command}: {message}", err=True)
    return typer.Exit(code)


# What Ray Serve needs beyond Ray itself (the `serve` extra). Looked up, not imported: Ray must
# not be imported before `connect` has set its authentication mode.
SERVE_MODULES = ("fastapi", "starlette", "uvicorn", "grpc_reflection")


def require_serve(command: str) -> None:
    """Ray Serve comes with the `serve` extra: without it, say so instead of a traceback."""
    from importlib.util import find_spec

    missing = [name for name in SERVE_MODULES if find_spec(name) is None]
    if missing:
        raise _fail(
            command,
            f"serving the HTTP API needs Ray Serve ({', '.join(missing)} missing): "
            "pip install 'agent-platform[serve]'",
        )


def check_endpoint_tokens(specs: Any, namespace: str) -> None:
    """Before anything is applied: an endpoint whose token variable is unset, or Ray Serve
    missing, stops the apply."""
    from agent_platform.serve.config import EndpointConfigError
    from agent_platform.serve.deploy import endpoint_configs

    try:
        configs = endpoint_configs(specs, namespace)
    except EndpointConfigError as exc:
        raise _fail("apply", str(exc)) from None
    if configs:
        require_serve("apply")


def apply_endpoints_after(deployment: Any, specs: Any, bundle: Any, actions: list[Any]) -> None:
    from agent_platform.serve.config import EndpointConfigError
    from agent_platform.serve.deploy import EndpointError, apply_endpoints

    try:
        apply_endpoints(deployment, specs, bundle, actions, note=lambda text: note(f"platform apply: {text}"))
    except (EndpointError, EndpointConfigError) as exc:
        raise _fail("apply", str(exc)) from None


def remove_deleted_endpoints(namespace: str, refs: list[str]) -> None:
    from agent_platform.serve.config import app_name
    from agent_platform.serve.deploy import remove

    names = [ref.partition("/")[2] for ref in refs if ref.startswith("Endpoint/")]
    if names:
        remove([app_name(namespace, name) for name in names])


def serve_api(
    spec_paths: list[Path],
    *,
    address: str | None,
    namespace: str,
    insecure: bool,
    token_env: str | None,
    port: int | None,
    plugin_path: list[Path] | None,
) -> None:
    """Serve the specs' endpoints (or one serving every unit) on the local deployment until
    interrupted; their units must be deployed (`platform apply`)."""
    from agent_platform.cli import _options
    from agent_platform.cli_deploy import _deploy_errors, _notes
    from agent_platform.deploy.bundle import SpecBundle
    from agent_platform.deploy.client import Deployment
    from agent_platform.serve.config import EndpointConfigError
    from agent_platform.serve.deploy import EndpointError, deploy, dev_config, remove, store_url_of
    from agent_platform.validate.plugins import default_plugin_paths

    if insecure and token_env:
        raise _fail("serve", "give --token-env or --insecure, not both", EXIT_USAGE)
    require_serve("serve")
    from agent_platform.cli import compile_or_exit

    options = _options(plugin_path, False)
    report, _ = compile_or_exit(spec_paths, options, "serve")
    roots = list(options.plugin_paths) if options.plugin_paths is not None else default_plugin_paths()
    bundle = SpecBundle.from_files(report.files, [p for p in roots if Path(p).exists()])
    try:
        configs = dev_config(report.specs, namespace, token_env=token_env, insecure=insecure, port=port)
    except EndpointConfigError as exc:
        raise _fail("serve", str(exc)) from None
    except ValueError:  # neither a token nor insecure for the default endpoint
        raise _fail(
            "serve",
            "the specs have no Endpoint: give --token-env VAR (a bearer token from $VAR) or --insecure",
            EXIT_USAGE,
        ) from None
    stop = threading.Event()
    # Set before deploying: Ctrl-C while Ray Serve is still starting the endpoint must still
    # remove it (as an exception, it would leave it behind).
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    with _deploy_errors("serve"):
        deployment = Deployment.connect(address, namespace, start=False, create=False, note=_notes("serve"))
        records = deployment.records()
        missing = sorted({u for c in configs for u in c.units if not (records.get(u) or {}).get("actors")})
        if missing:
            raise _fail(
                "serve",
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not deployed in namespace "
                f"{namespace!r}: run `platform apply` first",
            )
        try:
            deploy(configs, bundle, store_url_of(deployment.settings()), cwd=str(Path.cwd()), note=note)
        except EndpointError as exc:
            remove([c.app_name for c in configs])
            raise _fail("serve", str(exc)) from None
    note("platform serve: serving until interrupted (Ctrl-C)")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        remove([c.app_name for c in configs])
        note("platform serve: stopped")
