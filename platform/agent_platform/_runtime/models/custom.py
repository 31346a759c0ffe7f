"""Custom model providers: those the platform does not ship, found by the name a Model spec gives.

A provider factory is a callable that takes the Model spec and returns a `ModelProvider` (a
provider class is one). It is found, in order, among the factories registered in code
(`Runtime(providers={"mycorp": factory})`), then through the Model spec's `python:` reference
(`module:function`, imported from the plugin paths as tools are). `validate` checks the same two
ways (`_validate/providers.py`), so a name it accepts is one the runtime finds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent_platform._plugin_loader import import_plugin_module
from agent_platform._runtime.models.base import ModelConfigError, ModelProvider
from agent_platform._spec.kinds import BUILTIN_PROVIDERS, ModelSpec

ProviderFactory = Callable[[ModelSpec], ModelProvider]


class CustomProviders:
    """Provider factories by name (those given in code), and the plugin paths `python:` factories
    are imported from (default: the working directory, then `$PLATFORM_PLUGIN_PATH`)."""

    def __init__(
        self,
        factories: Mapping[str, ProviderFactory] | None = None,
        plugin_paths: Sequence[Path] | None = None,
    ) -> None:
        self.factories = dict(factories or {})
        for name, factory in self.factories.items():
            if name in BUILTIN_PROVIDERS:
                raise ValueError(
                    f"providers: '{name}' is a built-in provider; give a custom one another name"
                )
            if not callable(factory):
                raise TypeError(f"providers: the factory of '{name}' is not callable: {factory!r}")
        self._plugin_paths = plugin_paths

    def names(self) -> list[str]:
        return sorted(self.factories)

    def create(self, spec: ModelSpec) -> ModelProvider:
        """The provider for a Model spec naming a custom provider. Raises `ModelConfigError` when
        the name is not registered and the spec names no factory, or the factory fails."""
        factory = self.factories.get(spec.provider) or self._imported(spec)
        try:
            provider = factory(spec)
        except ModelConfigError:
            raise
        except Exception as exc:
            raise ModelConfigError(
                f"the factory of provider '{spec.provider}' failed: {type(exc).__name__}: {exc}",
                provider=spec.provider,
                model=spec.name,
            ) from exc
        if not callable(getattr(provider, "complete", None)):
            raise ModelConfigError(
                f"the factory of provider '{spec.provider}' returned {provider!r}, which has no "
                "complete(request) method (see ModelProvider)",
                provider=spec.provider,
                model=spec.name,
            )
        return provider

    def _imported(self, spec: ModelSpec) -> ProviderFactory:
        if spec.python is None:
            known = ", ".join([*BUILTIN_PROVIDERS, *self.names()])
            raise ModelConfigError(
                f"unknown model provider '{spec.provider}' (known: {known}): register it with "
                "Runtime(providers=...) or name its factory in the Model spec's `python:`",
                provider=spec.provider,
                model=spec.name,
            )
        module_name, _, attr = spec.python.partition(":")
        roots = self._plugin_paths
        if roots is None:
            from agent_platform._validate.plugins import default_plugin_paths

            roots = default_plugin_paths()
        try:
            found: Any = getattr(import_plugin_module(module_name, [Path(r).resolve() for r in roots]), attr)
        except Exception as exc:
            raise ModelConfigError(
                f"cannot load the factory of provider '{spec.provider}' ({spec.python}): "
                f"{type(exc).__name__}: {exc}",
                provider=spec.provider,
                model=spec.name,
            ) from exc
        if not callable(found):
            raise ModelConfigError(
                f"'{spec.python}' is not callable (a provider factory takes the Model spec)",
                provider=spec.provider,
                model=spec.name,
            )
        factory: ProviderFactory = found
        return factory
