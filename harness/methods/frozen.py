"""``frozen``: the base model as is; the reference every method is compared against."""

from harness.methods.base import Method, Params


class FrozenMethod(Method):
    """No training; everything frozen."""

    params_schema = Params  # no params
