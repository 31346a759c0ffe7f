"""The `regex` guardrail: the spec's patterns (Python `re` syntax) matched against the raw
content. `redact` replaces each match with `replacement`; block, warn and halt report which
patterns matched (by index, never the matched text)."""

from __future__ import annotations

from collections.abc import Sequence

from agent_platform._regexes import InvalidRegex, compile_regex
from agent_platform._runtime.guardrails.base import (
    Decision,
    GuardContext,
    Guardrail,
    GuardrailConfigError,
    Stage,
    Verdict,
)
from agent_platform._spec.kinds import RegexGuardrail


class RegexGuard(Guardrail):
    type = "regex"

    __slots__ = ("patterns", "replacement")

    def __init__(
        self,
        name: str,
        patterns: Sequence[str],
        *,
        replacement: str = "[REDACTED]",
        stages: tuple[Stage, ...] = ("output",),
        action: str = "block",
    ) -> None:
        super().__init__(name, stages, action)
        compiled = []
        for index, pattern in enumerate(patterns):
            try:
                compiled.append(compile_regex(pattern))
            except InvalidRegex as exc:
                raise GuardrailConfigError(
                    f"guardrail {name!r}: pattern {index} ({pattern!r}) is not a valid regex: {exc}"
                ) from None
        if not compiled:
            raise GuardrailConfigError(f"guardrail {name!r}: no patterns")
        self.patterns = tuple(compiled)
        self.replacement = replacement

    @classmethod
    def from_spec(cls, name: str, spec: RegexGuardrail) -> RegexGuard:
        return cls(
            name,
            spec.patterns,
            replacement=spec.replacement,
            stages=tuple(spec.applies_to),
            action=spec.action,
        )

    def check(self, context: GuardContext) -> Verdict:
        content = context.content
        if not content:
            return self._allow
        hit = [i for i, p in enumerate(self.patterns) if p.search(content)]
        if not hit:
            return self._allow
        redacted = None
        total = 0
        if self.action is Decision.REDACT:
            redacted = content
            for index in hit:
                redacted, count = self.patterns[index].subn(self.replacement, redacted)
                total += count
        indexes = ",".join(str(i) for i in hit)
        return self.violation(
            f"content matches pattern(s) {indexes}", redacted=redacted, patterns=indexes, matches=total
        )
