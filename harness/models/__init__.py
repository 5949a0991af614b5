"""Model families: ``load(plan)`` gives real weights or the tiny sibling; ``build_meta`` the real
architecture on the meta device."""

from __future__ import annotations

from typing import Any

from harness.models.common import DiffusionBundle
from harness.plan import RunPlan

FAMILIES = ("sd15", "sd21", "sdxl", "flux", "micro")  # each a module of this package


def _family(name: str) -> Any:
    import importlib

    if name not in FAMILIES:
        raise ValueError(f"unknown model family '{name}'")
    return importlib.import_module(f"harness.models.{name}")


def load(plan: RunPlan) -> DiffusionBundle:
    """The base model of the plan: tiny sibling on ``tiny``, real weights on ``full``."""
    family = _family(plan.task.model.family)
    if plan.profile == "tiny":
        return family.build_tiny()
    model = plan.task.model
    if model.refiner_hub_id:  # SDXL: the refiner comes from its own repository
        return family.load_real(plan.model_source, model.revision, model.refiner_hub_id, model.refiner_revision)
    return family.load_real(plan.model_source, model.revision)


def build_meta(family_name: str) -> dict[str, Any]:
    """Real-architecture modules of a family on the meta device."""
    return _family(family_name).build_meta()


def build_tiny_modules(family_name: str) -> dict[str, Any]:
    """Tiny-sibling modules of a family (for accounting on the tiny profile)."""
    return _family(family_name).build_tiny().modules()
