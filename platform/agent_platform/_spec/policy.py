"""What a unit may do to the world, resolved from its specs at compile time.

Two policies, both plain data that crosses processes (a deployed hand-off carries the caller's
policy over Ray as JSON):

* `ToolPolicy`, per tool: whether it has side effects, whether each call needs a person's
  approval (`requires_approval` left unset means "yes" for a tool with side effects: approval is
  the default, and opting out is explicit and reported by `validate`), how far its output is
  trusted, which host an `http:` tool reaches, and how much of its output a model may see. A
  RemoteAgent gets one too (`ToolPolicy.of_remote_agent`): sending it a task is a call with side
  effects and egress, governed like the most sensitive tool call.
* `ContextPolicy`, per agent or pipeline: what a run may still do once content it cannot trust
  (an untrusted tool's output, retrieved memory, a tainted delegate's answer) is in its context:
  calls of tools with side effects follow its `side_effects` rule, and so do requests to hosts
  its `egress` list does not name (a request can carry out whatever the run has read).
  Delegation never widens it: a sub-run runs under its caller's policy tightened by its own
  (`tighten`), so an agent without a side-effecting tool gains nothing by delegating to one that
  has it.

Nothing here imports the runtime: the plan, `plan`'s output and the runtime read the same types."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from agent_platform._spec.kinds import RemoteAgentSpec, ToolOutputLimit, ToolSpec, UntrustedContextSpec


class Trust(StrEnum):
    """How far content from a source may be believed. Untrusted content may carry instructions
    written by someone other than the run's user (a web page, an email, a ticket, a document)."""

    TRUSTED = "trusted"
    UNTRUSTED = "untrusted"


class SideEffectRule(StrEnum):
    """What happens to a call of a side-effecting tool once untrusted content is in the run's
    context. Ordered from the most to the least permissive (see `strictest`)."""

    ALLOW = "allow"
    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"


_STRICTNESS = {SideEffectRule.ALLOW: 0, SideEffectRule.REQUIRE_APPROVAL: 1, SideEffectRule.DENY: 2}


def strictest(a: SideEffectRule, b: SideEffectRule) -> SideEffectRule:
    return a if _STRICTNESS[a] >= _STRICTNESS[b] else b


# --- tools ------------------------------------------------------------------------------------

DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


def endpoint_of(url: str) -> str | None:
    """`host:port` of a URL whose scheme, host and port are written out (the port defaulted from
    the scheme); None when a template may produce any of them, so the host is not known before
    the call."""
    origin = _ORIGIN.match(url)
    if origin is None or "{" in origin.group(0) or "%" in origin.group(0):
        return None
    try:
        parts = urlsplit(origin.group(0))
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return None
    return f"{parts.hostname.lower()}:{port or DEFAULT_PORTS[parts.scheme.lower()]}"


def _redirect_endpoint(host: str, url: str) -> str:
    """An `allowed_hosts` entry (`host` for the url's default port, or `host:port`) as `host:port`."""
    bare = host.lower()
    if bare.startswith("["):  # [v6]:port
        address, _, port = bare[1:].partition("]")
        return f"{address}:{port.lstrip(':') or _default_port(url)}"
    return bare if ":" in bare else f"{bare}:{_default_port(url)}"


def _default_port(url: str) -> int:
    return DEFAULT_PORTS.get(url.partition(":")[0].lower(), 443)


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """One tool's safety settings as the runtime applies them (see the module docstring)."""

    side_effects: bool
    requires_approval: bool
    # The spec says `requires_approval: false` on a tool with side effects: `validate` warns, and
    # `plan` says the call is made without asking unless the run's context is untrusted.
    approval_opted_out: bool
    trust: Trust
    # Reaches the network through endpoints its spec declares (http, MCP over HTTP): subject to
    # the egress policy of a tainted run.
    egress: bool
    # `host:port` of each endpoint (an http tool's url and the hosts its redirects may lead to);
    # None for one a template chooses at call time.
    endpoints: tuple[str | None, ...]
    max_output_bytes: int
    max_output_tokens: int

    @classmethod
    def of(cls, spec: ToolSpec, *, mcp_url: str | None = None) -> ToolPolicy:
        """`mcp_url`: the endpoint of the MCP server an `mcp:` tool is served by, when it is
        reached over HTTP (a stdio server is a local process: no egress of its own to govern)."""
        requires_approval = (
            spec.requires_approval if spec.requires_approval is not None else spec.side_effects
        )
        endpoints: tuple[str | None, ...] = ()
        if spec.http is not None:
            url = spec.http.url
            redirects = getattr(spec.http, "allowed_hosts", ())
            endpoints = (endpoint_of(url), *(_redirect_endpoint(h, url) for h in redirects))
        elif spec.mcp is not None and mcp_url is not None:
            endpoints = (endpoint_of(mcp_url),)
        return cls(
            side_effects=spec.side_effects,
            requires_approval=requires_approval,
            approval_opted_out=spec.side_effects and spec.requires_approval is False,
            trust=Trust(spec.trust),
            egress=bool(endpoints),
            endpoints=endpoints,
            max_output_bytes=spec.max_output.bytes,
            max_output_tokens=spec.max_output.tokens,
        )

    @classmethod
    def of_remote_agent(cls, spec: RemoteAgentSpec) -> ToolPolicy:
        """Sending a task to a remote agent hands it whatever the run put in the task, and the
        remote agent may act on it: a side effect with egress to its hosts. Not asked about in a
        run whose context is clean (as a local delegate is not); once the run is tainted, its
        `untrusted_context` rule applies to every task, whichever hosts `egress` lists."""
        default_output = ToolOutputLimit()  # the caps a delegate's answer gets
        return cls(
            side_effects=True,
            requires_approval=False,
            approval_opted_out=False,
            trust=Trust.UNTRUSTED,
            egress=True,
            endpoints=remote_agent_endpoints(spec),
            max_output_bytes=default_output.bytes,
            max_output_tokens=default_output.tokens,
        )


def remote_agent_endpoints(spec: RemoteAgentSpec) -> tuple[str | None, ...]:
    """`host:port` of the remote agent's URL and, when it is elsewhere, of its card's URL: what a
    call reaches before the card names anything else (a host the card names is checked when it
    is known: by `plan`, and by the call itself)."""
    endpoints = [endpoint_of(spec.url)]
    if spec.card.url is not None and endpoint_of(spec.card.url) not in endpoints:
        endpoints.append(endpoint_of(spec.card.url))
    return tuple(endpoints)


# --- runs -------------------------------------------------------------------------------------


def _host_matches(pattern: str, endpoint: str) -> bool:
    """`pattern` is `host`, `host:port`, `*.domain` (any subdomain, any port) or `*`."""
    if pattern == "*":
        return True
    host = endpoint.rsplit(":", 1)[0]
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == endpoint if ":" in pattern else pattern == host


@dataclass(frozen=True, slots=True)
class EgressRule:
    """The hosts one spec lets a tainted run reach without asking; `hosts` None: any host."""

    owner: str  # "Agent/x": whose policy this is, for messages and `plan`
    hosts: frozenset[str] | None

    def allows(self, endpoint: str | None) -> bool:
        if self.hosts is None:
            return True
        if endpoint is None:  # a host known only at call time cannot be checked
            return False
        return any(_host_matches(p, endpoint) for p in self.hosts)

    def describe(self) -> str:
        if self.hosts is None:
            return "any host"
        return ", ".join(sorted(self.hosts)) or "no host"


@dataclass(frozen=True, slots=True)
class ContextPolicy:
    """What a run may do once untrusted content is in its context: calls of side-effecting tools,
    and requests to hosts the `egress` rules do not all allow, follow `side_effects`. `egress`
    holds one rule per spec the run is subject to (its own and its callers')."""

    side_effects: SideEffectRule
    egress: tuple[EgressRule, ...]
    owners: tuple[str, ...]  # the specs whose policies were combined, caller first

    @classmethod
    def resolve(cls, owner: str, spec: UntrustedContextSpec) -> ContextPolicy:
        """`*` in `spec.egress` allows any host."""
        hosts = None if "*" in spec.egress else frozenset(h.lower() for h in spec.egress)
        return cls(SideEffectRule(spec.side_effects), (EgressRule(owner, hosts),), (owner,))

    def tighten(self, other: ContextPolicy | None) -> ContextPolicy:
        """Both policies at once: the stricter side-effect rule, and every egress rule."""
        if other is None or other is self:
            return self
        egress = self.egress + tuple(r for r in other.egress if r not in self.egress)
        owners = self.owners + tuple(o for o in other.owners if o not in self.owners)
        return ContextPolicy(strictest(self.side_effects, other.side_effects), egress, owners)

    def refused_egress(self, endpoints: Iterable[str | None]) -> tuple[EgressRule, str | None] | None:
        """The first rule that does not list one of `endpoints`, and that endpoint; None when every
        rule allows all of them."""
        for endpoint in endpoints:
            for rule in self.egress:
                if not rule.allows(endpoint):
                    return rule, endpoint
        return None

    def describe_egress(self) -> str:
        if len(self.egress) == 1:
            return self.egress[0].describe()
        return " and ".join(f"{r.owner}: {r.describe()}" for r in self.egress)

    def to_json(self) -> dict[str, Any]:
        return {
            "side_effects": self.side_effects.value,
            "egress": [
                {"owner": r.owner, "hosts": None if r.hosts is None else sorted(r.hosts)} for r in self.egress
            ],
            "owners": list(self.owners),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ContextPolicy | None:
        if not data:
            return None
        egress = tuple(
            EgressRule(str(r["owner"]), None if r.get("hosts") is None else frozenset(map(str, r["hosts"])))
            for r in data.get("egress", ())
        )
        return cls(SideEffectRule(data["side_effects"]), egress, tuple(map(str, data.get("owners", ()))))
