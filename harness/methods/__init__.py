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


def check_method(method: Any, source: str) -> None:
    """Check a method spec's params with its kind's schema (``Method.validate_params``): the spec itself and
    each of its profiles and family recipes merged over it. Raises SpecError (one line, naming the field)."""
    from harness.specs import SpecError, resolve_method_profile

    implementation = method_class(method.kind)
    variants = [("", method.params)]
    for family in [None, *getattr(method, "families", {})]:
        for profile in ["full", *getattr(method, "profiles", {})]:
            label = "".join([f" (families.{family})" if family else "",
                             f" (profiles.{profile})" if profile != "full" else ""])
            if label:
                variants.append((label, resolve_method_profile(method, profile, family).params))
    for label, params in variants:
        try:
            implementation.validate_params(dict(params))
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{source}{label}: method kind '{method.kind}' rejects its params: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
