"""`platform dev`: the inner loop of writing specs, against the local deployment.

It applies the specs to the embedded Ray head (starting it, or reusing the one that runs), serves
the HTTP API over them as `platform serve --api` does, then watches the spec paths and the files of
the plugins their `python:` tools name. On each save (once the writes have been quiet for a moment,
so an editor's burst of writes is one change) it validates again and prints the diagnostics as
`platform validate` does. Valid specs are applied through `platform apply`'s own path (the apply
lock, the reconcile and its diff): only the units that changed get a new generation of replicas;
the old ones drain, so a run in flight on a changed unit finishes on the version it started on, and
runs on unchanged units are not touched. A plugin file whose content changed replaces the units
that call its tools (their specs did not change, so the diff alone would keep the old code).
Invalid specs, or an apply that fails, leave the deployment as it was.

Ctrl-C (or SIGTERM) stops the watcher and removes the development endpoint; the deployment stays
up, with whatever runs are in flight (`platform runs` and `platform result` still read them;
`platform down` stops it). Ray is imported only once the command runs."""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from agent_platform._cli.common import (
    DEFAULT_NS,
    EXIT_INVALID,
    EXIT_USAGE,
    NamespaceOpt,
    PluginPathOpt,
    ValidateOutput,
    validation_options,
)
from agent_platform._cli.output import note, warn_approve_all

# The suffixes of what a spec folder holds that validation reads: spec files, and the scripts,
# schemas and MCP locks they point at.
app = typer.Typer()


SPEC_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")
# An apply started by a save waits this long for another apply (or a head restart) to finish.
LOCK_WAIT_S = 120.0


def _say(text: str) -> None:
    note(f"platform dev: {text}")


class DevLoop:
    """One `platform dev` session: each `cycle` validates the specs and, when they are valid,
    applies them and (re)deploys the development endpoint."""

    def __init__(
        self,
        paths: list[Path],
        *,
        namespace: str,
        plugin_path: list[Path] | None,
        token_env: str | None,
        insecure: bool,
        port: int | None,
        prune: bool,
        approve_all: bool,
    ) -> None:
        from agent_platform._validate.plugins import default_plugin_paths

        self.paths = list(paths)  # as given: diagnostics name files as `platform validate` does
        self.watched = [p.resolve() for p in paths]
        self.namespace = namespace
        self.options = validation_options(plugin_path, False)
        roots = self.options.plugin_paths if self.options.plugin_paths is not None else default_plugin_paths()
        self.plugin_roots = [Path(p).resolve() for p in roots]
        self.token_env = token_env
        self.insecure = insecure
        self.port = port
        self.prune = prune
        self.approve_all = approve_all
        self.deployment: Any = None
        self.served: list[Any] = []  # the EndpointConfigs deployed now
        # The plugin files the specs' `python:` tools live in: file -> the Tool refs it implements,
        # and the digest of its content when it was last applied.
        self.plugin_tools: dict[Path, list[str]] = {}
        self.applied_digests: dict[Path, str] = {}
        self.fatal: int | None = None  # an exit code: the session cannot go on

    # --- one save -------------------------------------------------------------------------------

    def cycle(self) -> bool:
        """Validate; when valid, apply and serve. True when the deployment now runs these specs."""
        from agent_platform._cli.common import print_diagnostics
        from agent_platform._compile import build_output_models, compile_specs
        from agent_platform._validate import validate_paths

        report = validate_paths(self.paths, self.options)
        plan = None
        if report.ok:
            plan = compile_specs(report.specs)
            build_output_models(plan, report.diagnostics)
        print_diagnostics(report, ValidateOutput.text, hints=True, err=True)
        self.plugin_tools = self._plugin_files(report.specs)
        if plan is None or report.diagnostics.has_errors:
            _say("the specs are invalid: the deployment is left as it was")
            return False
        if not report.specs.specs:
            _say("no specs found: nothing applied")
            return False
        configs = self._endpoint_configs(report.specs)
        if configs is None:
            return False
        return self._apply(report, plan, configs)

    def _endpoint_configs(self, specs: Any) -> list[Any] | None:
        from agent_platform._serve.config import EndpointConfigError
        from agent_platform._serve.deploy import dev_config

        try:
            return dev_config(
                specs, self.namespace, token_env=self.token_env, insecure=self.insecure, port=self.port
            )
        except EndpointConfigError as exc:
            _say(f"{exc}; nothing applied")
        except ValueError:  # no Endpoint spec, and neither a token nor --insecure for the default one
            _say("the specs have no Endpoint: give --token-env VAR (a bearer token from $VAR) or --insecure")
            if not self.served:
                self.fatal = EXIT_USAGE
        return None

    def _apply(self, report: Any, plan: Any, configs: list[Any]) -> bool:
        from agent_platform._cli.deploy import deploy_notes, embedded_apply_lock
        from agent_platform._deploy.apply_lock import ApplyInProgress
        from agent_platform._deploy.apply_render import apply_text
        from agent_platform._deploy.bundle import SpecBundle
        from agent_platform._deploy.client import DeployError, Deployment
        from agent_platform._deploy.cluster import ClusterError
        from agent_platform._runstore import RunStoreError, run_store_url
        from agent_platform._serve.deploy import EndpointError

        bundle = SpecBundle.from_files(report.files, [p for p in self.plugin_roots if p.exists()])
        digests = {path: _digest(path) for path in self.plugin_tools}
        replace = sorted(
            {
                tool
                for path, tools in self.plugin_tools.items()
                if path in self.applied_digests and self.applied_digests[path] != digests[path]
                for tool in tools
            }
        )
        started = time.perf_counter()
        try:
            with embedded_apply_lock(None, LOCK_WAIT_S):
                if self.deployment is None:
                    self.deployment = Deployment.connect(
                        None,
                        self.namespace,
                        start=True,
                        run_store_url=run_store_url(None),
                        note=deploy_notes("dev"),
                    )
                result = self.deployment.apply(
                    report.specs,
                    plan,
                    bundle,
                    prune=self.prune,
                    approve_all=self.approve_all,
                    lock_wait=LOCK_WAIT_S,
                    replace=replace,
                    note=deploy_notes("dev"),
                )
        except (DeployError, ClusterError, RunStoreError, ApplyInProgress) as exc:
            _say(f"apply failed: {exc}")
            if self.deployment is None:  # no deployment to go back to: nothing to serve
                self.fatal = EXIT_INVALID
            else:
                _say("the deployment is left as it was")
            return False
        note(apply_text(result, self.deployment.address, self.namespace, time.perf_counter() - started))
        self.applied_digests = digests
        changed = any(a.kind in ("create", "update", "delete") for a in result.actions)
        try:
            self._serve(configs, bundle, changed)
        except EndpointError as exc:
            _say(f"the HTTP API could not be updated: {exc}")
            return False
        return True

    def _serve(self, configs: list[Any], bundle: Any, changed: bool) -> None:
        """Deploy the development endpoints when they are new or anything they serve changed
        (each ingress replica compiles the bundle: new schemas, new units); remove those the specs
        no longer give."""
        from agent_platform._serve.deploy import deploy, remove, store_url_of

        gone = {c.app_name for c in self.served} - {c.app_name for c in configs}
        if gone:
            remove(gone)
        redeploy = changed or configs != self.served
        deploy(
            configs,
            bundle,
            store_url_of(self.deployment.settings()),
            cwd=str(Path.cwd()),
            changed=lambda _config: redeploy,
            note=lambda text: _say(text),
        )
        self.served = configs

    def stop(self) -> None:
        """Remove the development endpoints (the units stay deployed)."""
        if self.served:
            from agent_platform._serve.deploy import remove

            remove([c.app_name for c in self.served])
            self.served = []

    # --- what to watch --------------------------------------------------------------------------

    def _plugin_files(self, specs: Any) -> dict[Path, list[str]]:
        from agent_platform._plugin_loader import find_module_file

        found: dict[Path, list[str]] = {}
        for tool in specs.of_kind("Tool"):
            ref = getattr(tool.model.spec, "python", None)
            if not ref:
                continue
            try:
                path = find_module_file(str(ref).partition(":")[0], self.plugin_roots)
            except (OSError, ValueError):
                path = None
            if path is not None:
                found.setdefault(path.resolve(), []).append(f"Tool/{tool.name}")
        return found

    def watch_targets(self) -> tuple[Path, ...]:
        """The spec paths (a spec file by its folder: an editor may save it by replacing it), the
        folder of each plugin file, or the file itself when its folder is a plugin root (the
        project folder, which holds far more than plugins)."""
        targets: set[Path] = set()
        for path in self.watched:
            targets.add(path if path.is_dir() else path.parent)
        for file in self.plugin_tools:
            targets.add(file if file.parent in self.plugin_roots else file.parent)
        return tuple(sorted(t for t in targets if t.exists()))  # a removed plugin is not watched

    def relevant(self, path: str) -> bool:
        """A change that can change what validates or runs: a spec-folder file validation reads,
        or a watched plugin's Python source."""
        changed = Path(path)
        for spec_path in self.watched:
            if spec_path.is_dir() and changed.is_relative_to(spec_path) and changed.suffix in SPEC_SUFFIXES:
                return True
            if changed == spec_path:
                return True
        if changed.suffix != ".py":
            return False
        for file in self.plugin_tools:
            # A plugin's own folder may hold the modules it imports; a plugin root does not count.
            if changed == file or (
                file.parent not in self.plugin_roots and changed.is_relative_to(file.parent)
            ):
                return True
        return False


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _shown(paths: Iterable[str]) -> str:
    cwd = Path.cwd()
    names = sorted({str(Path(p).relative_to(cwd)) if Path(p).is_relative_to(cwd) else p for p in paths})
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


@app.command()
def dev(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Spec files or directories to watch (default: specs/)."),
    ] = None,
    namespace: NamespaceOpt = DEFAULT_NS,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env", metavar="VAR", help="Without an Endpoint spec: the bearer token is $VAR."
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Without an Endpoint spec: no token (local development only).")
    ] = False,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="The HTTP port.")] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete deployed specs of the namespace absent from PATHS.")
    ] = False,
    approve_all: Annotated[
        bool, typer.Option("--approve-all", help="Deployed agents approve every tool needing approval.")
    ] = False,
    quiet_ms: Annotated[
        int,
        typer.Option(
            "--debounce",
            min=10,
            metavar="MS",
            help="Re-validate once the files have been quiet this many milliseconds.",
        ),
    ] = 300,
    plugin_path: PluginPathOpt = None,
) -> None:
    """Apply the specs to the local deployment, serve the HTTP API, and re-apply on every save.

    Each save re-validates (diagnostics as `platform validate` prints them); valid specs are
    applied as `platform apply` does, so only changed units get new replicas, and runs in flight
    finish on the version they started on. Invalid specs leave the deployment as it was.

    Ctrl-C stops watching and removes the development endpoint; the deployment stays up
    (`platform down` stops it)."""
    import watchfiles

    from agent_platform._cli.common import require_paths
    from agent_platform._cli.serve import require_serve

    spec_paths = paths or [Path("specs")]
    if insecure and token_env:
        raise typer.BadParameter("give --token-env or --insecure, not both", param_hint="--insecure")
    require_paths("dev", spec_paths)
    require_serve("dev")
    if approve_all:
        warn_approve_all("dev")
    loop = DevLoop(
        spec_paths,
        namespace=namespace,
        plugin_path=plugin_path,
        token_env=token_env,
        insecure=insecure,
        port=port,
        prune=prune,
        approve_all=approve_all,
    )
    stop = threading.Event()
    # Set before anything is deployed: Ctrl-C while an apply or Ray Serve is still starting ends
    # the session once that step is done, and still removes the endpoint.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    default_filter = watchfiles.DefaultFilter()
    try:
        loop.cycle()
        if loop.fatal is not None:
            raise typer.Exit(loop.fatal)
        while not stop.is_set():
            targets = loop.watch_targets()
            _say(f"watching {_shown(str(t) for t in targets)} for changes (Ctrl-C stops)")
            for changes in watchfiles.watch(
                *targets,
                watch_filter=lambda change, path: default_filter(change, path) and loop.relevant(path),
                step=quiet_ms,
                debounce=max(1600, 4 * quiet_ms),
                stop_event=stop,
                raise_interrupt=False,
            ):
                _say(f"{_shown(path for _, path in changes)} changed")
                loop.cycle()
                if stop.is_set() or loop.watch_targets() != targets:
                    break
                _say("watching for changes (Ctrl-C stops)")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        loop.stop()
    _say("stopped; the deployment stays up (`platform down` stops it)")
