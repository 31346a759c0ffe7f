"""The HTTP API from the command line: `apply`'s Endpoint specs (deployed after the units), their
removal on `delete`, and `platform serve --api` (local development against the local deployment).
Ray and Ray Serve are imported only once a command runs."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from agent_platform._cli.common import (
    EXIT_INVALID,
    EXIT_USAGE,
    PluginPathOpt,
    ValidateOutput,
    print_diagnostics,
    require_spec_files,
    validation_options,
)
from agent_platform._cli.output import note, warn_approve_all

app = typer.Typer()


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
    from agent_platform._serve.config import EndpointConfigError
    from agent_platform._serve.deploy import endpoint_configs

    try:
        configs = endpoint_configs(specs, namespace)
    except EndpointConfigError as exc:
        raise _fail("apply", str(exc)) from None
    if configs:
        require_serve("apply")


def apply_endpoints_after(deployment: Any, specs: Any, bundle: Any, actions: list[Any]) -> None:
    from agent_platform._serve.config import EndpointConfigError
    from agent_platform._serve.deploy import EndpointError, apply_endpoints

    try:
        apply_endpoints(deployment, specs, bundle, actions, note=lambda text: note(f"platform apply: {text}"))
    except (EndpointError, EndpointConfigError) as exc:
        raise _fail("apply", str(exc)) from None


def remove_deleted_endpoints(namespace: str, refs: list[str]) -> None:
    from agent_platform._serve.config import app_name
    from agent_platform._serve.deploy import remove

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
    from agent_platform._cli.common import validation_options
    from agent_platform._cli.deploy import deploy_errors, deploy_notes
    from agent_platform._deploy.bundle import SpecBundle
    from agent_platform._deploy.client import Deployment
    from agent_platform._serve.config import EndpointConfigError
    from agent_platform._serve.deploy import EndpointError, deploy, dev_config, remove, store_url_of
    from agent_platform._validate.plugins import default_plugin_paths

    if insecure and token_env:
        raise _fail("serve", "give --token-env or --insecure, not both", EXIT_USAGE)
    require_serve("serve")
    from agent_platform._cli.common import compile_or_exit

    options = validation_options(plugin_path, False)
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
    with deploy_errors("serve"):
        deployment = Deployment.connect(
            address, namespace, start=False, create=False, note=deploy_notes("serve")
        )
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


@app.command()
def serve(
    mcp: Annotated[
        bool,
        typer.Option("--mcp", help="Serve the units as MCP tools (with --stdio or --http)."),
    ] = False,
    stdio: Annotated[
        bool, typer.Option("--stdio", help="Over stdin/stdout (for Claude Desktop, IDEs).")
    ] = False,
    http: Annotated[
        str | None,
        typer.Option("--http", metavar="HOST:PORT", help="Over streamable HTTP at http://HOST:PORT/mcp."),
    ] = None,
    local: Annotated[bool, typer.Option("--local", help="Run the units in this process (no Ray).")] = False,
    specs: Annotated[
        list[Path] | None, typer.Option("--specs", "-s", help="Spec files or directories (default: specs/).")
    ] = None,
    approve_all: Annotated[
        bool, typer.Option("--approve-all", help="Approve every tool that requires approval.")
    ] = False,
    plugin_path: PluginPathOpt = None,
    api: Annotated[
        bool,
        typer.Option(
            "--api",
            help="Serve the HTTP API (runs, approvals, OpenAPI) on Ray Serve, against the local "
            "deployment: the specs' Endpoints, else one serving every unit.",
        ),
    ] = False,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env", metavar="VAR", help="--api without an Endpoint: the bearer token is $VAR."
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="--api without an Endpoint: no token (local development only).")
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="--api: the HTTP port.")
    ] = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="The deployment namespace.")] = (
        "agent-platform"
    ),
) -> None:
    """Serve every Agent, Pipeline and Supervisor of the specs as an MCP tool: its input schema is
    the unit's inputs, its output schema the unit's output, its description metadata.description.

    With --api, serve the HTTP API on Ray Serve instead, for local development against the local
    deployment (`platform apply` the specs first), until interrupted.

    A run that needs approval (without --approve-all) or does not complete is an error result
    naming its outcome. Units run on the deployment (`platform apply` them first; only what is
    deployed is served), or in this process with --local."""
    from agent_platform._cli.mcp import parse_address, serve_mcp
    from agent_platform._compile import compile_specs
    from agent_platform._validate import validate_paths

    if api:
        if mcp:
            raise typer.BadParameter("give one of --mcp and --api", param_hint="--api")
        from agent_platform._cli.serve import serve_api

        serve_api(
            specs or [Path("specs")],
            address=None,
            namespace=namespace,
            insecure=insecure,
            token_env=token_env,
            port=port,
            plugin_path=plugin_path,
        )
        return
    if not mcp:
        raise typer.BadParameter("say which protocol to serve: --mcp or --api", param_hint="--mcp")
    if stdio == (http is not None):
        raise typer.BadParameter("give one of --stdio and --http HOST:PORT", param_hint="--stdio")
    try:
        address = parse_address(http) if http is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--http") from None
    if approve_all:
        warn_approve_all("serve")
    spec_paths = specs or [Path("specs")]
    require_spec_files("serve", spec_paths)
    report = validate_paths(spec_paths, validation_options(plugin_path, False))
    if not report.ok:
        print_diagnostics(report, ValidateOutput.text, hints=False, err=True)
        raise typer.Exit(EXIT_INVALID)
    plan = compile_specs(report.specs)
    plugins = list(plugin_path) if plugin_path else None
    deployment = None
    if not local:  # each call a run on the deployment the specs were applied to
        from agent_platform._cli.deploy import deploy_errors
        from agent_platform._deploy.client import Deployment

        with deploy_errors("serve"):
            deployment = Deployment.connect(None, namespace, start=False, create=False)
    serve_mcp(
        plan, report.specs, http=address, approve_all=approve_all, plugins=plugins, deployment=deployment
    )
