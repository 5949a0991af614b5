"""Trainable-parameter accounting of a method on the real architecture (meta device) or the tiny one."""

from __future__ import annotations

from dataclasses import dataclass

from harness.plan import RunPlan
from harness.registry import method_class


@dataclass(frozen=True)
class ParamCount:
    """Trainable parameters of a method and their share of the base model and of the trained part."""

    trainable: int
    base_total: int
    component: str
    component_total: int
    architecture: str

    @property
    def share_of_base(self) -> float:
        return self.trainable / self.base_total

    @property
    def share_of_component(self) -> float:
        return self.trainable / self.component_total


def count_params(plan: RunPlan) -> ParamCount:
    """Attach the method to the plan's architecture without weights and count what it trains."""
    from harness import models

    family = plan.task.model.family
    if plan.profile == "full":
        modules, architecture = models.build_meta(family), f"real {family} (meta device, no weights)"
    else:
        modules, architecture = models.build_tiny_modules(family), f"tiny {family} sibling"
    totals = {role: sum(p.numel() for p in m.parameters()) for role, m in modules.items()}
    method = method_class(plan.method.kind)(plan.method)
    trainable = method.trainable_count(method.prepare(modules))
    return ParamCount(trainable, sum(totals.values()), method.component, totals[method.component], architecture)
