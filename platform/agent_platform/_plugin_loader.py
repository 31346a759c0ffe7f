"""Find and import plugin modules (`python: package.module:attr`) from the plugin paths.

Shared by the validator (which locates modules without importing them, and imports them with
`--import-plugins`) and the runtime's tool registry. A process may see the same module name under
several plugin roots (two projects, two test directories): an import must read the file that was
resolved, not whatever `sys.modules` cached first, so stale entries of that name are dropped and
the resolving root goes to the front of `sys.path`."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

_lock = threading.Lock()
# The plugin roots this process put on `sys.path`: a module found there is a plugin, not installed.
_plugin_roots: set[str] = set()


def find_module_file(module: str, roots: Sequence[Path]) -> Path | None:
    """The file of `module` under the first root that has it (a module or a package)."""
    parts = module.split(".")
    for root in roots:
        base = Path(root).joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def find_installed_module(module: str) -> bool:
    """Whether `module` is importable from the environment (the standard library or an installed
    package), found without importing it or its parents."""
    import importlib.machinery

    top, _, rest = module.partition(".")
    if not top.isidentifier():
        return False
    if top in sys.builtin_module_names:
        return not rest
    # The path finder, not `importlib.util.find_spec`: that one answers from `sys.modules`, where a
    # plugin imported earlier in this process (from any root) would pass for an installed module.
    search_path = [entry for entry in sys.path if entry not in _plugin_roots]
    try:
        spec = importlib.machinery.PathFinder.find_spec(top, search_path)
    except (ImportError, ValueError, OSError):
        return False
    if spec is None:
        return not rest and importlib.machinery.FrozenImporter.find_spec(top) is not None
    if not rest:
        return True
    locations = list(spec.submodule_search_locations or [])
    parts = rest.split(".")
    for location in locations:
        base = Path(location).joinpath(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return True
        if any(base.parent.glob(base.name + ".*.so")) or any(base.parent.glob(base.name + ".*.pyd")):
            return True
    return False


def _root_of(path: Path, module: str) -> Path:
    depth = len(module.split(".")) if path.name == "__init__.py" else len(module.split(".")) - 1
    return path.resolve().parents[depth]


def _forget_stale_modules(module: str, root: Path) -> None:
    parts = module.split(".")
    for index in range(1, len(parts) + 1):
        name = ".".join(parts[:index])
        cached = sys.modules.get(name)
        origin = getattr(cached, "__file__", None)
        if cached is not None and (origin is None or root not in Path(origin).resolve().parents):
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[key]
            return


def import_plugin_module(module: str, roots: Sequence[Path]) -> ModuleType:
    """Import `module` from the plugin roots; ImportError (naming the roots) when it is not there."""
    path = find_module_file(module, roots)
    if path is None:  # not a plugin: the standard library or an installed package
        if find_installed_module(module):
            try:
                return importlib.import_module(module)
            except ModuleNotFoundError:
                pass
        listing = ", ".join(str(r) for r in roots)
        raise ImportError(
            f"python module '{module}' not found under the plugin paths ({listing}) nor installed"
        )
    root = _root_of(path, module)
    with _lock:
        _forget_stale_modules(module, root)
        text = str(root)
        if text in sys.path:
            sys.path.remove(text)
        sys.path.insert(0, text)
        _plugin_roots.add(text)
        importlib.invalidate_caches()
        return importlib.import_module(module)
