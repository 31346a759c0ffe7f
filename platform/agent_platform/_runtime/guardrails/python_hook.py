"""The `python` guardrail: a user function decides.

Contract for the function named by `function: module:attr`:

    def check(context: GuardContext) -> Verdict | Mapping | bool | None
    async def check(context: GuardContext) -> Verdict | Mapping | bool | None

* `None` or `True`: allow.
* `False`: a violation under the guardrail's configured `action`, reason "rejected by module:attr".
* a `Verdict`: used as returned, re-labelled with this guardrail's name and type.
* a mapping (or any object with these attributes): `decision` (`allow | warn | redact | block |
  halt`; default: the configured action), `reason` (str), `content` (str, the new content; required
  for `redact`, which otherwise becomes `block`), `details` (mapping, for traces).

A hook that raises, returns anything else, or (async hooks) runs longer than `timeout` seconds
*fails closed*: the verdict is `halt` when the configured action is `halt`, else `block`, with the
error in the reason. Sync hooks run inline on the event loop, so they must be fast and must not
block on I/O; a hook that needs I/O should be `async def`. The context must be treated as
read-only."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent_platform._runtime.guardrails.base import (
    Decision,
    GuardContext,
    Guardrail,
    GuardrailConfigError,
    Stage,
    Verdict,
)
from agent_platform._spec.kinds import PythonGuardrail

HookFunction = Callable[[GuardContext], Any]
ImportFunction = Callable[[str], Any]

DEFAULT_HOOK_TIMEOUT = 5.0


def load_hook(
    ref: str,
    *,
    import_function: ImportFunction | None = None,
    plugin_paths: Sequence[Path] | None = None,
) -> HookFunction:
    """The callable named by `module:attr`. With `import_function`, that function resolves the
    reference (the runtime passes its plugin loader); otherwise the module is imported with the
    `plugin_paths` put at the front of `sys.path` (as the validator does with --import-plugins)."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise GuardrailConfigError(f"python guardrail function {ref!r} is not 'module:function'")
    try:
        if import_function is not None:
            target = import_function(ref)
        else:
            for root in reversed(list(plugin_paths or ())):
                if str(root) not in sys.path:
                    sys.path.insert(0, str(root))
            module = importlib.import_module(module_name)
            target = getattr(module, attr)
    except GuardrailConfigError:
        raise
    except Exception as exc:
        raise GuardrailConfigError(
            f"cannot load python guardrail {ref!r}: {type(exc).__name__}: {exc}"
        ) from None
    if not callable(target):
        raise GuardrailConfigError(f"python guardrail {ref!r} is not callable")
    return target  # type: ignore[no-any-return]


class PythonHookGuard(Guardrail):
    type = "python"
    is_async = True

    __slots__ = ("function", "ref", "timeout")

    def __init__(
        self,
        name: str,
        function: HookFunction,
        *,
        ref: str = "",
        stages: tuple[Stage, ...] = ("output",),
        action: str = "block",
        timeout: float = DEFAULT_HOOK_TIMEOUT,
    ) -> None:
        super().__init__(name, stages, action)
        self.function = function
        self.ref = ref or getattr(function, "__qualname__", repr(function))
        self.timeout = timeout

    @classmethod
    def from_spec(
        cls,
        name: str,
        spec: PythonGuardrail,
        *,
        import_function: ImportFunction | None = None,
        plugin_paths: Sequence[Path] | None = None,
    ) -> PythonHookGuard:
        function = load_hook(spec.function, import_function=import_function, plugin_paths=plugin_paths)
        return cls(name, function, ref=spec.function, stages=tuple(spec.applies_to), action=spec.action)

    def _failed(self, why: str) -> Verdict:
        decision = Decision.HALT if self.action is Decision.HALT else Decision.BLOCK
        return Verdict(decision, self.name, self.type, f"guardrail hook {self.ref} failed: {why}")

    def check(self, context: GuardContext) -> Verdict:
        """Synchronous use: only for sync hook functions."""
        try:
            result = self.function(context)
        except Exception as exc:
            return self._failed(f"{type(exc).__name__}: {exc}")
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            return self._failed("the hook is async; use the async check")
        return self._interpret(result)

    async def acheck(self, context: GuardContext) -> Verdict:
        try:
            result = self.function(context)
            if inspect.isawaitable(result):
                async with asyncio.timeout(self.timeout):
                    result = await result
        except TimeoutError:
            return self._failed(f"no answer within {self.timeout:g}s")
        except Exception as exc:
            return self._failed(f"{type(exc).__name__}: {exc}")
        return self._interpret(result)

    def _interpret(self, result: Any) -> Verdict:
        if result is None or result is True:
            return self._allow
        if result is False:
            return self.violation(f"rejected by {self.ref}")
        if isinstance(result, Verdict):
            return Verdict(
                result.decision, self.name, self.type, result.reason, result.content, result.details
            )
        get: Callable[[str], Any]
        if isinstance(result, Mapping):
            get = result.get
        elif hasattr(result, "decision") or hasattr(result, "reason"):
            get = lambda key: getattr(result, key, None)  # noqa: E731
        else:
            return self._failed(f"unexpected return value of type {type(result).__name__}")
        raw_decision = get("decision")
        try:
            if raw_decision is None:
                decision = self.action
            elif isinstance(raw_decision, Decision):
                decision = raw_decision
            else:
                decision = Decision.parse(str(getattr(raw_decision, "value", raw_decision)))
        except ValueError as exc:
            return self._failed(str(exc))
        reason = str(get("reason") or f"rejected by {self.ref}")
        content = get("content")
        details = get("details")
        details = dict(details) if isinstance(details, Mapping) else {}
        if decision is Decision.ALLOW:
            return self._allow
        if decision is Decision.REDACT and not isinstance(content, str):
            decision = Decision.BLOCK
        return Verdict(
            decision,
            self.name,
            self.type,
            reason,
            content if decision is Decision.REDACT else None,
            details,
        )
