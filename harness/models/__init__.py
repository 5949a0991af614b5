"""Model families: ``load(plan)`` gives real weights or the tiny sibling; ``build_meta`` the real
architecture on the meta device."""

from __future__ import annotations

from typing import Any

from harness.models.common import DiffusionBundle
from harness.plan import RunPlan


def _family(name: str) -> Any:
    if name == "sd15":
        from harness.models import sd15

        return sd15
    if name == "sd21":
        from harness.models import sd21

        return sd21
    raise ValueError(f"unknown model family '{name}'")


def load(plan: RunPlan) -> DiffusionBundle:
    """The base model of the plan: tiny sibling on ``tiny``, real weights on ``full``."""
    family = _family(plan.task.model.family)
    if plan.profile == "tiny":
        return family.build_tiny()
    return family.load_real(plan.model_source, plan.task.model.revision)


def build_meta(family_name: str) -> dict[str, Any]:
    """Real-architecture modules of a family on the meta device."""
    return _family(family_name).build_meta()


def build_tiny_modules(family_name: str) -> dict[str, Any]:
    """Tiny-sibling modules of a family (for accounting on the tiny profile)."""
    bundle = _family(family_name).build_tiny()
    return {"unet": bundle.unet, "vae": bundle.vae, "text_encoder": bundle.text_encoder}
