"""The A2A agent card of a served unit, built from its spec (`metadata.description`, the unit's
input and output JSON Schemas) and the endpoint it is served at.

A card has no field for JSON Schemas: the unit's go in an `AgentExtension` (`SCHEMAS_EXTENSION`,
`params: {"input_schema", "output_schema"}`), which a platform's `RemoteAgent` reads back at plan
time and any other client may ignore."""

from __future__ import annotations

from typing import Any

from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
)
from a2a.utils.constants import PROTOCOL_VERSION_1_0, TransportProtocol

from agent_platform._compile.plan import AnyUnit, SupervisorUnit
from agent_platform._serve.openapi import unit_input_schema, unit_output_schema

SCHEMAS_EXTENSION = "https://agents.platform/a2a/extensions/schemas/v1"
A2A_PREFIX = "/a2a"
CARD_PATH = "/.well-known/agent-card.json"
BEARER_SCHEME = "bearer"
CARD_VERSION = "1.0.0"


def a2a_base_path(unit_name: str) -> str:
    """Where a unit's JSON-RPC binding is served, relative to the endpoint's route prefix (its
    card is under it, at `CARD_PATH`)."""
    return f"{A2A_PREFIX}/{unit_name}"


def is_card_path(path: str) -> bool:
    """The cards are read without the token: a client learns from one how to authenticate (its
    security schemes name the bearer token)."""
    return path.startswith(A2A_PREFIX + "/") and path.endswith(CARD_PATH)


def single_string_input(unit: AnyUnit) -> str | None:
    """The name of the unit's one input when it has exactly one and it is a string: a text part
    of a message fills it."""
    schema = unit_input_schema(unit)
    properties = schema.get("properties")
    if not isinstance(properties, dict) or len(properties) != 1:
        return None
    (name, prop), *_ = properties.items()
    return str(name) if isinstance(prop, dict) and prop.get("type") == "string" else None


def build_agent_card(
    unit_name: str, unit: AnyUnit, *, description: str, endpoint_url: str, secured: bool
) -> AgentCard:
    """`endpoint_url`: the endpoint's absolute URL with its route prefix (EndpointConfig.url)."""
    text_input = single_string_input(unit)
    input_modes = ["application/json"] + (["text/plain"] if text_input else [])
    output_modes = ["application/json"]
    kind = unit.ref.kind
    about = description or f"The platform's {kind} {unit.ref.name}."
    if isinstance(unit, SupervisorUnit):
        about += " Send a data part {'tasks': [...]} (see the input schema extension)."
    elif text_input:
        about += f" A text part fills its input {text_input!r}; a data part is the inputs object."
    skill = AgentSkill(
        id=unit.ref.name,
        name=unit.ref.name,
        description=about,
        tags=[kind.lower()],
        input_modes=input_modes,
        output_modes=output_modes,
    )
    schemas: dict[str, Any] = {"input_schema": unit_input_schema(unit)}
    output = unit_output_schema(unit)
    if output is not None:
        schemas["output_schema"] = output
    extension = AgentExtension(
        uri=SCHEMAS_EXTENSION, description="The unit's input and output JSON Schemas", required=False
    )
    extension.params.update(schemas)
    card = AgentCard(
        name=unit.ref.name,
        description=about,
        version=CARD_VERSION,
        supported_interfaces=[
            AgentInterface(
                url=endpoint_url.rstrip("/") + a2a_base_path(unit_name),
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=PROTOCOL_VERSION_1_0,
            )
        ],
        capabilities=AgentCapabilities(
            streaming=True,
            push_notifications=False,
            extensions=[extension],
        ),
        default_input_modes=input_modes,
        default_output_modes=output_modes,
        skills=[skill],
    )
    if secured:
        card.security_schemes[BEARER_SCHEME].CopyFrom(
            SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="Bearer",
                    description="The endpoint's bearer token (the variable its `auth.token_env` names)",
                )
            )
        )
        requirement = SecurityRequirement()
        requirement.schemes[BEARER_SCHEME].SetInParent()
        card.security_requirements.append(requirement)
    return card


def spec_descriptions(files: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """`metadata.description` of each spec in a bundle's files ((path, text) pairs), by
    "Kind/name": the plan keeps no metadata, and a card's description comes from it."""
    from agent_platform._load import load_text

    found: dict[str, str] = {}
    for path, text in files:
        for document in load_text(text, path).documents:
            data = document.data if isinstance(document.data, dict) else {}
            metadata = data.get("metadata")
            if isinstance(metadata, dict) and isinstance(data.get("kind"), str):
                description = metadata.get("description")
                if isinstance(description, str) and description:
                    found.setdefault(f"{data['kind']}/{metadata.get('name')}", description)
    return found
