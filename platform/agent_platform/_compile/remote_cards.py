"""Plan-time checks of RemoteAgent specs against the A2A agent cards they point at: `platform
plan` and `apply` fetch each card (`validate` stays offline and never does) and report, at the
spec's own lines, a card that cannot be fetched, a name or skill the card does not have, an
interface the platform cannot call, an interface on a host no delegating Agent's `egress` lists,
and inputs or output that do not fit the card's schemas.

The card is read as JSON (A2A v1.0's field names); the schemas come from the platform's schema
extension (serve/a2a_card.py) when the card has it: another server's card without it is checked
for its name, skills and interface only."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from agent_platform._diagnostics import Diagnostics
from agent_platform._spec.kinds import AgentDocument, RemoteAgentDocument, RemoteAgentSpec
from agent_platform._spec.policy import ContextPolicy, endpoint_of, remote_agent_endpoints
from agent_platform._validate.documents import TypedSpec
from agent_platform._validate.jsonschemas import incompatibilities
from agent_platform._validate.references import SpecSet

# The same URI as serve/a2a_card.SCHEMAS_EXTENSION (not imported: that module needs the a2a-sdk).
SCHEMAS_EXTENSION = "https://agents.platform/a2a/extensions/schemas/v1"
WELL_KNOWN_CARD = "/.well-known/agent-card.json"
FETCH_TIMEOUT_S = 10.0

CardFetcher = Callable[[str, dict[str, str]], dict[str, Any]]


class CardUnavailable(Exception):
    """The card could not be fetched or is not a JSON object (the message says which)."""


def card_url(spec: RemoteAgentSpec) -> str:
    return spec.card.url or spec.url.rstrip("/") + WELL_KNOWN_CARD


def fetch_card(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """GET the card over HTTP. Raises CardUnavailable."""
    import httpx

    try:
        answer = httpx.get(url, headers=headers, timeout=FETCH_TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise CardUnavailable(f"{type(exc).__name__}: {exc or 'no answer'}") from None
    if answer.status_code != 200:
        raise CardUnavailable(f"HTTP {answer.status_code}")
    try:
        card = answer.json()
    except ValueError:
        raise CardUnavailable("the answer is not JSON") from None
    if not isinstance(card, dict):
        raise CardUnavailable("the answer is not a JSON object")
    return card


def check_remote_agents(
    specs: SpecSet,
    diags: Diagnostics,
    *,
    fetch: CardFetcher = fetch_card,
    environ: dict[str, str] | None = None,
) -> None:
    """Fetch the card of every RemoteAgent and check the spec against it."""
    import os

    env = os.environ if environ is None else environ
    callers = _delegating_policies(specs)
    for spec in specs.of_kind("RemoteAgent"):
        assert isinstance(spec.model, RemoteAgentDocument)
        remote = spec.model.spec
        url = card_url(remote)
        headers = {}
        if remote.auth is not None and env.get(remote.auth.token_env):
            headers["Authorization"] = f"Bearer {env[remote.auth.token_env]}"
        try:
            card = fetch(url, headers)
        except CardUnavailable as exc:
            where = ("spec", "card", "url") if remote.card.url else ("spec", "url")
            diags.error(
                "remote-card-unreachable",
                f"the agent card at {url} could not be fetched: {exc}",
                spec.locate(*where),
                spec.kind,
                spec.name,
            )
            continue
        check_card(spec, card, diags)
        check_card_interfaces(spec, card, callers.get(spec.name, []), diags)


def _delegating_policies(specs: SpecSet) -> dict[str, list[ContextPolicy]]:
    """The untrusted-context policy of each Agent that delegates to a RemoteAgent, by its name."""
    found: dict[str, list[ContextPolicy]] = {}
    for agent in specs.of_kind("Agent"):
        if not isinstance(agent.model, AgentDocument):
            continue
        policy = ContextPolicy.resolve(f"Agent/{agent.name}", agent.model.spec.untrusted_context)
        for name in agent.model.spec.delegates:
            if specs.get("Agent", name) is None:  # an Agent of that name wins over a RemoteAgent
                found.setdefault(name, []).append(policy)
    return found


def check_card_interfaces(
    spec: TypedSpec, card: dict[str, Any], callers: list[ContextPolicy], diags: Diagnostics
) -> None:
    """The card names where tasks go (its JSON-RPC interface URLs), which `validate` cannot know:
    each must be on the RemoteAgent's own hosts (its url's and card url's, which `validate`
    checked against the callers' `egress`) or listed in the `untrusted_context.egress` of every
    Agent delegating to it. A call refuses the others too (_runtime/remote_agent.py), so a card that
    names such a host only would make every call fail."""
    assert isinstance(spec.model, RemoteAgentDocument)
    own = remote_agent_endpoints(spec.model.spec)
    for interface in card.get("supportedInterfaces") or []:
        if not isinstance(interface, dict) or interface.get("protocolBinding") != "JSONRPC":
            continue
        url = str(interface.get("url", ""))
        endpoint = endpoint_of(url)
        if endpoint is not None and endpoint in own:
            continue
        unlisted = [p for p in callers if p.refused_egress((endpoint,)) is not None]
        if callers and not unlisted:
            continue
        why = (
            f"untrusted_context.egress of {', '.join(p.owners[0] for p in unlisted)} does not list it"
            if callers
            else "no Agent delegating to it lists it in untrusted_context.egress"
        )
        diags.error(
            "remote-egress",
            f"the card sends tasks to {url or '(no url)'}, on a host other than the RemoteAgent's url, "
            f"and {why}: a call would not send a task there",
            spec.locate(*(("spec", "card", "url") if spec.model.spec.card.url else ("spec", "url"))),
            spec.kind,
            spec.name,
        )


def check_card(spec: TypedSpec, card: dict[str, Any], diags: Diagnostics) -> None:
    """The RemoteAgent `spec` against its fetched `card` (pure)."""
    assert isinstance(spec.model, RemoteAgentDocument)
    remote = spec.model.spec

    def error(code: str, message: str, *path: str | int) -> None:
        diags.error(code, message, spec.locate(*path), spec.kind, spec.name)

    name = card.get("name")
    if remote.card.name is not None and name != remote.card.name:
        error(
            "remote-card-mismatch",
            f"the card is named {name!r}, not {remote.card.name!r}",
            "spec",
            "card",
            "name",
        )
    skills = [s for s in card.get("skills") or [] if isinstance(s, dict)]
    offered = {str(s.get(k)) for s in skills for k in ("id", "name") if s.get(k)}
    for index, skill in enumerate(remote.card.skills):
        if skill not in offered:
            error(
                "remote-card-mismatch",
                f"the card offers no skill {skill!r} (it offers: {', '.join(sorted(offered)) or 'none'})",
                "spec",
                "card",
                "skills",
                index,
            )
    interfaces = [i for i in card.get("supportedInterfaces") or [] if isinstance(i, dict)]
    if not any(i.get("protocolBinding") == "JSONRPC" for i in interfaces):
        bindings = sorted({str(i.get("protocolBinding")) for i in interfaces})
        error(
            "remote-card-mismatch",
            f"the card offers no JSON-RPC interface, which is what the platform calls "
            f"(it offers: {', '.join(bindings) or 'none'})",
            "spec",
            "url",
        )
    schemas = _card_schemas(card)
    card_inputs = schemas.get("input_schema")
    if isinstance(card_inputs, dict):
        # What callers send (our inputs) must be accepted by the remote agent's inputs.
        for reason in incompatibilities(remote.inputs, card_inputs):
            error(
                "remote-card-schema", f"inputs do not fit the card's input schema: {reason}", "spec", "inputs"
            )
    card_output = schemas.get("output_schema")
    if remote.output is not None and isinstance(card_output, dict):
        # What the remote agent answers must be accepted as our declared output.
        for reason in incompatibilities(card_output, remote.output):
            error(
                "remote-card-schema",
                f"the card's output schema does not fit output: {reason}",
                "spec",
                "output",
            )


def _card_schemas(card: dict[str, Any]) -> dict[str, Any]:
    capabilities = card.get("capabilities")
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    for extension in extensions or []:
        if isinstance(extension, dict) and extension.get("uri") == SCHEMAS_EXTENSION:
            params = extension.get("params")
            if isinstance(params, dict):
                return dict(_whole_numbers(params))
    return {}


def _whole_numbers(value: Any) -> Any:
    """A card's extension params are a protobuf Struct, whose numbers are doubles: `minimum: 1`
    arrives as 1.0 and would not compare equal as an integer bound."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value
