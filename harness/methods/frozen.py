"""``frozen``: the base model as is; the reference every method is compared against."""

from harness.methods.base import Method


class FrozenMethod(Method):
    """No training; everything frozen."""
