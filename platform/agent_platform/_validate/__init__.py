"""Validate layer: located documents -> typed specs, then the spec set checked as a whole.

Every problem is collected (never raised) so that one run reports all of them at once."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent_platform._diagnostics import Diagnostics
from agent_platform._load import DEFAULT_LIMITS, Document, LoadLimits, load_paths
from agent_platform._validate.checks import (
    check_agent_templates,
    check_guardrails,
    check_memory_steps,
    check_models,
    check_pipeline,
    check_plugins,
    check_schemas,
    check_tool_templates,
    check_untrusted_context,
    hint_pipelines,
)
from agent_platform._validate.documents import PartialSpec, TypedSpec, validate_document
from agent_platform._validate.endpoints import check_endpoints
from agent_platform._validate.mcp import check_mcp
from agent_platform._validate.plugins import PluginResolver, default_plugin_paths
from agent_platform._validate.providers import check_providers
from agent_platform._validate.references import SpecSet, check_cycles, check_references
from agent_platform._validate.spec_tests import check_tests


@dataclass(frozen=True)
class ValidationOptions:
    plugin_paths: Sequence[Path] | None = None  # default: cwd + $PLATFORM_PLUGIN_PATH
    import_plugins: bool = False
    # Tools the caller implements in code (the Python API's `load_project(tools=...)`): the
    # `python:` references of Tool specs of these names are not looked for.
    provided_tools: frozenset[str] = frozenset()
    # Custom model providers the caller registers in code (`load_project(providers=...)`): Model
    # specs may name them.
    provided_providers: frozenset[str] = frozenset()
    limits: LoadLimits = DEFAULT_LIMITS


@dataclass
class ValidationReport:
    specs: SpecSet
    diagnostics: Diagnostics
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors


def validate_documents(
    documents: Iterable[Document],
    diagnostics: Diagnostics | None = None,
    options: ValidationOptions = ValidationOptions(),
) -> ValidationReport:
    diags = diagnostics if diagnostics is not None else Diagnostics()
    specs = SpecSet()
    for document in documents:
        checked = validate_document(document, diags)
        if isinstance(checked, TypedSpec):
            specs.add(checked, diags)
        else:
            specs.add_invalid(document, checked)
    check_references(specs, diags)
    check_cycles(specs, diags)
    check_schemas(specs, diags)
    check_agent_templates(specs, diags)
    check_tool_templates(specs, diags)
    roots = list(options.plugin_paths) if options.plugin_paths is not None else default_plugin_paths()
    resolver = PluginResolver(roots, options.import_plugins)
    for pipeline in specs.checked("Pipeline"):
        check_pipeline(specs, pipeline, diags, resolver.arguments_schema)
    check_models(specs, diags)
    check_memory_steps(specs, diags)
    check_guardrails(specs, diags)
    check_plugins(specs, resolver, diags, provided_tools=options.provided_tools)
    check_providers(specs, resolver, diags, options.provided_providers)
    check_mcp(specs, diags)
    check_untrusted_context(specs, diags)
    check_tests(specs, diags)
    check_endpoints(specs, diags)
    hint_pipelines(specs, diags)
    return ValidationReport(specs=specs, diagnostics=diags)


def validate_paths(
    paths: Iterable[str | os.PathLike[str]], options: ValidationOptions = ValidationOptions()
) -> ValidationReport:
    """Load and validate files and directories (recursively, *.yaml / *.yml)."""
    loaded = load_paths(paths, options.limits)
    report = validate_documents(loaded.documents, loaded.diagnostics, options)
    report.files = loaded.files
    return report


__all__ = [
    "PartialSpec",
    "SpecSet",
    "TypedSpec",
    "ValidationOptions",
    "ValidationReport",
    "validate_documents",
    "validate_paths",
]
