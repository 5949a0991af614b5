"""Method kinds. Each implements the contract in ``harness.methods.base``; ``method_class`` resolves a kind
(built in, ``registry.METHOD_KINDS``, or a plugin's ``bench.methods`` entry point) to its class."""

from __future__ import annotations

import importlib
from typing import Any

from harness.errors import PluginError
from harness.registry import METHOD_KINDS, known_kinds, plugin_kinds, unknown_name


def method_class(kind: str) -> Any:
    """Import and return the implementation class of a method kind (built-in or plugin)."""
    if kind in METHOD_KINDS:
        module_name, attribute = METHOD_KINDS[kind].split(":")
        return getattr(importlib.import_module(module_name), attribute)
    plugin = plugin_kinds().get(kind)
    if plugin is None:
        raise unknown_name("method kind", kind, known_kinds())
    try:
        implementation = plugin.load()
    except Exception as exc:
        raise PluginError(f"method kind '{kind}': plugin entry point '{plugin.value}' failed to load "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    from harness.methods.base import Method

    if not (isinstance(implementation, type) and issubclass(implementation, Method)):
        raise PluginError(f"method kind '{kind}': plugin entry point '{plugin.value}' is not a subclass of "
                          "harness.methods.base.Method")
    return implementation
