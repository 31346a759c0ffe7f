"""Check `python: module:attr` references.

By default nothing is imported (plugins may import heavy libraries or have side effects): the
module's file is located under the plugin paths and its top level is read with `ast`. With
`import_plugins=True` the module is imported and the attribute's signature is checked.

A pipeline step's arguments are always checked against the parameters of the tool function it
calls. Importing is what `--import-plugins` asks for, so without it the parameters are read from
the `def` in the module's source, which is already parsed: their names, which have defaults, and
whether the function takes `*args` or `**kwargs` (the runtime refuses those: tool arguments must be
named). A decorated function, a name bound more than once at the top level, or anything but a
plain `def` may have another signature once imported, so it is left to `--import-plugins`, which
also checks the argument types the type hints give."""

from __future__ import annotations

import ast
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_platform._diagnostics import did_you_mean
from agent_platform._plugin_loader import find_installed_module, find_module_file, import_plugin_module
from agent_platform._validate.jsonschemas import check_schema, required_of

PLUGIN_PATH_ENV = "PLATFORM_PLUGIN_PATH"


def default_plugin_paths() -> list[Path]:
    """The working directory, then each entry of $PLATFORM_PLUGIN_PATH."""
    paths = [Path.cwd()]
    extra = os.environ.get(PLUGIN_PATH_ENV, "")
    paths.extend(Path(p) for p in extra.split(os.pathsep) if p)
    return paths


def module_not_found(module: str, roots: Sequence[Path]) -> str:
    """Where `module` was looked for, and how to make the plugin paths include it."""
    listed = ", ".join(str(root) for root in roots) or "none"
    file = module.replace(".", "/")
    return (
        f"python module '{module}' not found under the plugin paths ({listed}) nor installed: "
        f"looked for {file}.py and {file}/__init__.py; to look elsewhere, pass --plugin-path DIR "
        f"or add DIR to ${PLUGIN_PATH_ENV}"
    )


@dataclass
class PluginResolver:
    roots: Sequence[Path]
    import_plugins: bool = False
    _module_cache: dict[str, tuple[Path | None, frozenset[str] | None, str | None]] = field(
        default_factory=dict
    )
    _signature_schemas: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # module -> its top-level plain `def`s (undecorated, the name bound by nothing else)
    _plain_functions: dict[str, dict[str, ast.FunctionDef | ast.AsyncFunctionDef]] = field(
        default_factory=dict
    )

    def _find_file(self, module: str) -> Path | None:
        try:
            return find_module_file(module, self.roots)
        except (OSError, ValueError):  # a name the OS cannot look up (too long): no such file
            return None

    def _top_level_names(self, module: str) -> tuple[Path | None, frozenset[str] | None, str | None]:
        if module in self._module_cache:
            return self._module_cache[module]
        path = self._find_file(module)
        result: tuple[Path | None, frozenset[str] | None, str | None]
        if path is None:
            result = (None, None, None)
        else:
            try:
                source = path.read_bytes()
            except OSError as exc:
                result = (path, None, f"cannot read {path}: {exc.strerror}")
            else:
                parsed = _parse_module(source, str(path))
                if isinstance(parsed, str):
                    result = (path, None, parsed)
                else:
                    names, functions = parsed
                    result = (path, names, None)
                    self._plain_functions[module] = functions
        self._module_cache[module] = result
        return result

    def _plain_function(self, ref: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        module, _, attr = ref.partition(":")
        self._top_level_names(module)
        return self._plain_functions.get(module, {}).get(attr)

    def check(
        self, ref: str, input_schema: dict[str, Any] | None = None, *, expect: str = "tool"
    ) -> str | None:
        """An error message for `module:attr`, or None when it resolves. With `import_plugins`,
        the function's signature is also checked against the tool's declared `input_schema`."""
        module, _, attr = ref.partition(":")
        path, names, error = self._top_level_names(module)
        if path is None:
            if find_installed_module(module):
                # An installed module (e.g. an exception class in retry_on): not read statically.
                return (
                    self._check_imported(module, attr, input_schema, expect) if self.import_plugins else None
                )
            return module_not_found(module, self.roots)
        if error is not None:
            return f"python module '{module}' cannot be read: {error}"
        assert names is not None
        if attr not in names:
            public = sorted(n for n in names if not n.startswith("_"))
            return f"'{module}' ({path}) has no top-level '{attr}'{did_you_mean(attr, public)}"
        if self.import_plugins:
            return self._check_imported(module, attr, input_schema, expect)
        if expect == "tool" and (function := self._plain_function(ref)) is not None:
            return _static_signature_problem(function, ref)
        return None

    def arguments_schema(self, ref: str) -> dict[str, Any] | None:
        """The JSON Schema a tool function's signature gives its arguments (what the runtime
        validates a call with), or None: this one cannot be imported (its problem is reported by
        `check`), or without `import_plugins` its source does not show its signature. Without
        `import_plugins` the schema names the parameters and which are required, not their types."""
        if ref not in self._signature_schemas:
            if self.import_plugins:
                self._signature_schemas[ref] = self._derive_arguments_schema(ref)
            else:
                function = self._plain_function(ref)
                self._signature_schemas[ref] = _static_arguments_schema(function) if function else None
        return self._signature_schemas[ref]

    def _derive_arguments_schema(self, ref: str) -> dict[str, Any] | None:
        from agent_platform._tool_functions import build_arguments_model

        module, _, attr = ref.partition(":")
        try:
            target = getattr(import_plugin_module(module, self.roots), attr)
            model, _ = build_arguments_model(getattr(target, "__wrapped_tool__", target), attr)
            schema: dict[str, Any] = model.model_json_schema()
        except Exception:  # a plugin that does not import or has no usable signature: reported by check()
            return None
        return schema

    def _check_imported(
        self, module: str, attr: str, input_schema: dict[str, Any] | None, expect: str = "tool"
    ) -> str | None:
        try:
            loaded = import_plugin_module(module, self.roots)
        except Exception as exc:  # a plugin's import error is the user's to see, located
            return f"importing python module '{module}' failed: {type(exc).__name__}: {exc}"
        target = getattr(loaded, attr, None)
        if target is None:
            return f"'{module}' has no attribute '{attr}' after import"
        if expect == "exception":
            if isinstance(target, type) and issubclass(target, BaseException):
                return None
            return f"'{module}:{attr}' is not an exception class (retry_on names exception classes)"
        if expect == "callable":
            return None if callable(target) else f"'{module}:{attr}' is not callable"
        return check_tool_signature(target, f"{module}:{attr}", input_schema)


def check_tool_signature(target: Any, ref: str, input_schema: dict[str, Any] | None = None) -> str | None:
    """Tools need every parameter annotated: the argument schema is derived from the hints."""
    import inspect

    func = getattr(target, "__wrapped_tool__", target)
    if not callable(func):
        return f"'{ref}' is not callable"
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        return f"cannot read the signature of '{ref}': {exc}"
    for parameter in signature.parameters.values():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            stars = "*" if parameter.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            return f"'{ref}' takes {stars}{parameter.name}; tool arguments must be named parameters"
        if parameter.annotation is inspect.Parameter.empty:
            return f"parameter '{parameter.name}' of '{ref}' has no type hint; tool arguments need one"
    from agent_platform._tool_functions import build_arguments_model

    try:  # what the runtime's registry builds from the signature, built the same way
        model, _ = build_arguments_model(func, ref)
        model.model_json_schema()
    except Exception as exc:  # an unresolvable hint, a type with no JSON Schema, ...
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"the arguments of '{ref}' cannot be built from its signature: {first_line}"
    if input_schema is None or check_schema(input_schema):
        return None  # no schema to compare with, or an invalid one (reported as such)
    properties = input_schema.get("properties")
    if not isinstance(properties, dict):
        return None
    required = set(required_of(input_schema))
    parameters = signature.parameters
    for name in properties:
        if name not in parameters:
            return f"input_schema declares '{name}' but '{ref}' has no such parameter{did_you_mean(name, parameters)}"
    for name, parameter in parameters.items():
        if name not in properties:
            if parameter.default is inspect.Parameter.empty:
                return f"parameter '{name}' of '{ref}' is required but not declared in input_schema"
        elif parameter.default is inspect.Parameter.empty and name not in required:
            return f"parameter '{name}' of '{ref}' has no default but input_schema does not require it"
    return None


_ParsedModule = tuple[frozenset[str], dict[str, "ast.FunctionDef | ast.AsyncFunctionDef"]]


# Keyed by the source itself: a watch loop (`platform dev`) or a long fuzz session re-validates the
# same plugins many times, and parsing them is most of what checking them costs. The parsed trees
# are only read, never changed.
@functools.lru_cache(maxsize=256)
def _parse_module(source: bytes, filename: str) -> _ParsedModule | str:
    """A module's top-level names and plain functions, or the message saying why it cannot be read."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        return f"{filename}:{exc.lineno}: syntax error: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        return f"cannot parse {filename}: {type(exc).__name__}: {exc}"
    return frozenset(_defined_names(tree)), _plain_functions(tree)


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[ast.arg, bool]]:
    """(parameter, has a default) for each named parameter, in order."""
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    first_default = len(positional) - len(arguments.defaults)
    named = [(arg, index >= first_default) for index, arg in enumerate(positional)]
    named += [
        (arg, default is not None)
        for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
    ]
    return named


def _static_signature_problem(function: ast.FunctionDef | ast.AsyncFunctionDef, ref: str) -> str | None:
    """What the runtime's registry refuses in a signature that the source shows (the messages of
    `check_tool_signature`)."""
    for stars, star in (("*", function.args.vararg), ("**", function.args.kwarg)):
        if star is not None:
            return f"'{ref}' takes {stars}{star.arg}; tool arguments must be named parameters"
    for parameter, _ in _parameters(function):
        if parameter.annotation is None:
            return f"parameter '{parameter.arg}' of '{ref}' has no type hint; tool arguments need one"
    return None


def _static_arguments_schema(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, Any] | None:
    """The arguments a plain `def` accepts, as the runtime's arguments model does (named
    parameters only, no others): names and which are required; types are left open."""
    if function.args.vararg is not None or function.args.kwarg is not None:
        return None  # refused as a tool (reported by `check`): no call to compare with
    named = _parameters(function)
    return {
        "type": "object",
        "properties": {parameter.arg: {} for parameter, _ in named},
        "required": [parameter.arg for parameter, has_default in named if not has_default],
        "additionalProperties": False,
    }


def _plain_functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """The module's top-level `def`s whose signature the source shows: undecorated, and the only
    top-level binding of their name (a later `f = wrap(f)`, a second `def f` or a star import
    after it may replace it)."""
    bindings: dict[str, int] = {}
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for statement in tree.body:
        names = _defined_names(ast.Module(body=[statement], type_ignores=[]))
        if "*" in names:
            functions.clear()
        for name in names:
            bindings[name] = bindings.get(name, 0) + 1
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) and not statement.decorator_list:
            functions[statement.name] = statement
    return {name: function for name, function in functions.items() if bindings[name] == 1}


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.If | ast.Try):
            # names defined under `if TYPE_CHECKING`/try-import are still module attributes
            inner = ast.Module(body=[*node.body, *getattr(node, "orelse", [])], type_ignores=[])
            names |= _defined_names(inner)
    return names
