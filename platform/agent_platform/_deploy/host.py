"""A unit's actor: the runtime core hosted in a Ray actor.

`UnitHost` is a plain class; `client.py` makes it a Ray actor class with the unit's options.
One replica hosts whole runs of its unit (the model and tool calls of a run never cross actors:
a Ray round trip costs as much as a whole agent step); only hand-offs to *other* units (a
supervisor's tasks, a delegate, a pipeline's agent step) go to those units' actors, through the
`Router`, carrying the trace context so that one run stays one trace across nodes.

Durability: every run (top-level or hand-off) has a record in the run store. A call for a run
that already finished returns the stored result (a retried hand-off never runs twice); otherwise
the replica takes a new *attempt* (a fencing token) and runs it."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_platform._compile.plan import SpecRef, SupervisorUnit
from agent_platform._deploy.bundle import SpecBundle
from agent_platform._deploy.router import HandoffFailed, Router, Unanswered
from agent_platform._runtime.durable import (
    MAX_REST_S,
    CheckpointWriter,
    Durable,
    DurableRunner,
    RunRequest,
    Superseded,
)
from agent_platform._runtime.engine import Runtime
from agent_platform._runtime.inputs import InputError
from agent_platform._runtime.outcomes import Outcome, RunResult
from agent_platform._runtime.services import RunState
from agent_platform._runtime.supervisor import TaskError
from agent_platform._runtime.tracing import (
    TracingHandle,
    capture_content_from_env,
    configure_tracing,
    extract_context,
    inject_context,
)

log = logging.getLogger(__name__)

# Re-exported: hand-offs, the control plane and tests name them from here.
__all__ = ["MAX_REST_S", "CheckpointWriter", "Durable", "RunRequest", "Superseded"]


@dataclass(frozen=True)
class HostConfig:
    namespace: str
    state_dir: str  # absolute: PLATFORM_STATE_DIR of the actor (idempotency store, default run store)
    run_store_url: str | None = None
    trace_file: str | None = None  # JSONL spans, appended by every actor (one machine / shared FS)
    approve_all: bool = False
    cwd: str | None = None
    # Content capture in the actors' spans. An actor does not inherit the environment of the
    # process that applies the deployment, so the driver's OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
    # is read where this config is made and travels with it.
    capture_content: bool = field(default_factory=capture_content_from_env)


CANCELLED_BY_USER = "cancelled by `platform cancel`"


class RayRuntime(Runtime):
    """The runtime core with hand-offs to other units going to their actors, and a checkpoint
    of every agent run after every step."""

    def __init__(self, *args: Any, router: Router, **kwargs: Any) -> None:
        super().__init__(*args, durable=True, **kwargs)
        self.router = router

    async def run_unit(self, ref: SpecRef, inputs: dict[str, Any], *, parent: RunState) -> RunResult:
        if ref not in self.plan.units or isinstance(self.plan.units[ref], SupervisorUnit):
            return await super().run_unit(ref, inputs, parent=parent)
        parent.sub_runs += 1  # the same deterministic sub-run ids as in-process
        run_id = f"{parent.run_id}/{ref.name}-{parent.sub_runs}"
        request = RunRequest(
            run_id,
            str(ref),
            dict(inputs),
            parent.run_id,
            inject_context(),
            tenant=parent.tenant,
            taint=parent.taint.sources,
            policy=parent.policy.to_json() if parent.policy is not None else None,
        )
        try:
            result = await self.router.call(request)
        except HandoffFailed as exc:
            result = RunResult(run_id, str(ref), Outcome.FAILED, error=str(exc))
            await self.router.record_failure(request, str(exc))
        parent.add_sub_run(result)
        placements = parent.resources.setdefault("placements", {})
        placements[run_id] = result.details.get("placement")
        for sub_id, where in result.details.get("placements", {}).items():
            placements[sub_id] = where
        return result


class UnitHost:
    """Hosts one replica of one unit. Constructed by Ray on some node; holds no run state."""

    def __init__(
        self, bundle: SpecBundle, unit: str, replica: int, generation: int, config: HostConfig
    ) -> None:
        os.environ["PLATFORM_STATE_DIR"] = config.state_dir
        if config.cwd:
            os.chdir(config.cwd)
        self.unit_name = unit
        self.replica = replica
        self.generation = generation
        self.config = config
        self.actor_name = actor_name(unit, generation, replica)
        self.plan = bundle.compile()
        self.tracing: TracingHandle = configure_tracing(
            jsonl_path=Path(config.trace_file) if config.trace_file else None,
            service_name="agent-platform",
            resource_attributes={"platform.actor": self.actor_name, "platform.unit": unit},
            capture_content=config.capture_content,
        )
        from agent_platform._deploy.isolated import isolating
        from agent_platform._runstore import open_idempotency_store, url_scheme
        from agent_platform._runtime.engine import tune_gc_for_runs

        # Tool-call records live where every replica can read them: beside the runs in
        # PostgreSQL on a cluster; in the state directory's SQLite file on one machine.
        shared = (
            config.run_store_url
            if config.run_store_url and url_scheme(config.run_store_url) == "postgresql"
            else None
        )
        self.runtime = RayRuntime(
            self.plan,
            plugin_paths=[Path(p) for p in bundle.plugin_paths],
            tracing=self.tracing,
            approve_all=config.approve_all,
            router=Router(config.namespace, self._store_url()),
            idempotency_store=open_idempotency_store(shared) if shared else None,
            wrap_tool=isolating(bundle.plugin_paths),
        )
        self._store: Any = None
        self._runner: DurableRunner | None = None
        self._in_flight = 0
        self._max_concurrency = self.plan.units[_ref(unit)].actor.max_concurrency
        self._slots: asyncio.Semaphore | None = None
        self._runs: set[asyncio.Future[RunResult]] = set()
        # The task driving each run in flight here, for `platform cancel`.
        self._run_tasks: dict[str, asyncio.Task[Any]] = {}
        self._cancelling: set[str] = set()
        self._node = _node_info()
        tune_gc_for_runs()

    # --- introspection ----------------------------------------------------------------------

    def where(self) -> dict[str, Any]:
        return {
            **self._node,
            "actor": self.actor_name,
            "unit": self.unit_name,
            "replica": self.replica,
            "generation": self.generation,
            "in_flight": self._in_flight,
            "pid": os.getpid(),
        }

    async def warm_up(self) -> list[str]:
        """Loads what this replica's first run would otherwise wait for (its agent's embedder
        model, vector store connections). Called by `apply` without waiting for it."""
        return await self.runtime.warm_up(self.unit_name)

    def check_inputs(self, unit: str, inputs: Mapping[str, Any]) -> str | None:
        """Why `inputs` would be refused before the run starts (None when they are fine): the
        same checks as `platform run --local`, for the CLI to report as a usage error."""
        found = self.plan.units.get(_ref(unit))
        if found is None:
            return f"{unit} is not in this deployment"
        try:
            self.runtime.prepare_inputs(found, inputs)
        except (InputError, TaskError) as exc:
            return str(exc)
        return None

    async def drain(self, timeout: float) -> int:
        """Wait until no call is in flight (or `timeout`); returns the calls still running."""
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.tracing.force_flush()
        return self._in_flight

    def flush(self) -> bool:
        return bool(self.tracing.force_flush())

    # --- runs ---------------------------------------------------------------------------------

    def _store_url(self) -> str:
        from agent_platform._runstore import default_run_store_url

        return self.config.run_store_url or default_run_store_url(Path(self.config.state_dir))

    async def _run_store(self) -> Any:
        if self._store is None:
            from agent_platform._runstore import open_run_store

            self._store = open_run_store(self._store_url())
        return self._store

    async def run_batch(
        self, requests: list[RunRequest]
    ) -> AsyncIterator[list[tuple[int, RunResult | BaseException]]]:
        """Many runs from one Ray call (the `Router` batches its hand-offs): all start at once,
        at most the unit's `max_concurrency` at a time (what Ray enforces for single calls), and
        each chunk of results yielded is what finished since the previous one, so an answer is
        never held back for a slower run. A run that raised yields a `HandoffFailed` naming the
        error (an exception with arguments of its own may not survive pickling)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_concurrency)
        slots = self._slots
        finished: list[tuple[int, RunResult | BaseException]] = []
        wake = asyncio.Event()

        async def bounded(request: RunRequest) -> RunResult:
            async with slots:
                return await self.run(request)

        def done(index: int, task: asyncio.Task[RunResult]) -> None:
            self._runs.discard(task)
            if task.cancelled():
                finished.append((index, Unanswered(f"run {requests[index].run_id} was cancelled")))
            elif (error := task.exception()) is not None:
                finished.append((index, HandoffFailed(f"{type(error).__name__}: {error}")))
            else:
                finished.append((index, task.result()))
            wake.set()

        for index, request in enumerate(requests):
            task = asyncio.ensure_future(bounded(request))
            self._runs.add(task)  # runs go on should the caller stop listening
            task.add_done_callback(functools.partial(done, index))
        left = len(requests)
        while left:
            await wake.wait()
            wake.clear()
            chunk = finished[:]
            finished.clear()
            left -= len(chunk)
            yield chunk

    def holding(self, run_ids: list[str]) -> list[str]:
        """Which of these runs this replica is running now (the control plane's recovery sweep)."""
        return [run_id for run_id in run_ids if run_id in self._run_tasks]

    async def cancel(self, run_id: str) -> bool:
        """Cancel the run if it is in flight on this replica (True), else False. The run ends
        `cancelled` in the run store, with the reason, and its hand-offs are cancelled with it."""
        task = self._run_tasks.get(run_id)
        if task is None or task.done():
            return False
        self._cancelling.add(run_id)
        task.cancel()
        return True

    async def run(self, request: RunRequest) -> RunResult:
        from opentelemetry import context as otel_context

        self._in_flight += 1
        token = otel_context.attach(extract_context(request.trace_carrier))
        task = asyncio.current_task()
        if task is not None:
            self._run_tasks[request.run_id] = task
        try:
            result = await self._run(request)
        finally:
            otel_context.detach(token)
            self._in_flight -= 1
            if self._run_tasks.get(request.run_id) is task:
                del self._run_tasks[request.run_id]
        result.details["placement"] = {
            "node": self._node["node_ip"],
            "node_id": self._node["node_id"],
            "actor": self.actor_name,
        }
        return result

    async def _run(self, request: RunRequest) -> RunResult:
        if self._runner is None:
            self._runner = DurableRunner(
                self.runtime,
                await self._run_store(),
                self.actor_name,
                cancel_requested=self._cancelling.__contains__,
                cancelled_error=CANCELLED_BY_USER,
            )
        try:
            return await self._runner.run(request)
        finally:
            self._cancelling.discard(request.run_id)


def actor_name(unit: str, generation: int, replica: int) -> str:
    kind, _, name = unit.partition("/")
    return f"{kind.lower()}-{name}-g{generation}-r{replica}"


def _ref(unit: str) -> SpecRef:
    kind, _, name = unit.partition("/")
    return SpecRef(kind, name)


def _node_info() -> dict[str, Any]:
    try:
        import ray

        if not ray.is_initialized():  # a host used outside Ray (tests): never start a Ray here
            raise RuntimeError("not in Ray")
        context = ray.get_runtime_context()
        node_id = context.get_node_id()
        ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    except Exception:  # outside Ray (tests of the class itself)
        node_id, ip = "local", socket.gethostname()
    return {"node_id": node_id, "node_ip": ip}
