"""Checks of Endpoint documents against the rest of the specs: every unit they serve exists, and
endpoints that one deployment serves together fit on Ray Serve's one HTTP proxy."""

from __future__ import annotations

from agent_platform._diagnostics import Diagnostics
from agent_platform._spec.kinds import UNIT_KINDS, EndpointDocument
from agent_platform._validate.documents import TypedSpec
from agent_platform._validate.references import SpecSet
from agent_platform._validate.spec_tests import resolve_unit


def served_units(specs: SpecSet, endpoint: TypedSpec) -> list[TypedSpec]:
    """The units an endpoint serves (its `units`, or every unit of the specs), resolved."""
    model = endpoint.model
    assert isinstance(model, EndpointDocument)
    if not model.spec.units:
        return [spec for kind in UNIT_KINDS for spec in specs.of_kind(kind)]
    found = [resolve_unit(specs, ref)[0] for ref in model.spec.units]
    return [unit for unit in found if unit is not None]


def check_endpoints(specs: SpecSet, diags: Diagnostics) -> None:
    served: dict[str, str] = {}  # route prefix -> the endpoint serving under it
    listening: tuple[str, int, str] | None = None
    for spec in specs.checked("Endpoint"):
        model = spec.model
        if not isinstance(model, EndpointDocument) or not spec.has("units"):
            continue
        seen: set[str] = set()
        for i, ref in enumerate(model.spec.units):
            unit, problem = resolve_unit(specs, ref)
            if problem is not None:
                problem = problem.replace("a test runs", "an endpoint serves")
                diags.error(
                    "unresolved-reference", problem, spec.locate("spec", "units", i), spec.kind, spec.name
                )
            elif unit is not None:
                full = f"{unit.kind}/{unit.name}"
                if full in seen:
                    diags.error(
                        "duplicate-unit",
                        f"{full} is listed twice",
                        spec.locate("spec", "units", i),
                        spec.kind,
                        spec.name,
                    )
                seen.add(full)
    for spec in specs.of_kind("Endpoint"):
        model = spec.model
        assert isinstance(model, EndpointDocument)
        endpoint = model.spec
        # Ray Serve runs one HTTP proxy per cluster: every endpoint shares its host and port.
        if listening is None:
            listening = (endpoint.host, endpoint.port, spec.name)
        elif (endpoint.host, endpoint.port) != listening[:2]:
            diags.error(
                "endpoint-conflict",
                f"Endpoint '{spec.name}' listens on {endpoint.host}:{endpoint.port} but Endpoint "
                f"'{listening[2]}' on {listening[0]}:{listening[1]}: Ray Serve has one HTTP proxy, so "
                "endpoints share host and port (give them different route_prefix values instead)",
                spec.locate("spec", "port"),
                spec.kind,
                spec.name,
            )
        other = served.get(endpoint.route_prefix)
        if other is not None:
            diags.error(
                "endpoint-conflict",
                f"route_prefix {endpoint.route_prefix!r} is already served by Endpoint '{other}'",
                spec.locate("spec", "route_prefix"),
                spec.kind,
                spec.name,
            )
        else:
            served[endpoint.route_prefix] = spec.name
        if endpoint.auth.insecure:
            diags.warning(
                "insecure-endpoint",
                f"Endpoint '{spec.name}' checks no token: anyone who reaches "
                f"{endpoint.host}:{endpoint.port} may start runs and decide approvals (local development only)",
                spec.locate("spec", "auth", "insecure"),
                spec.kind,
                spec.name,
            )
