"""Trainable-parameter accounting of a method on the real architecture (meta device) or the tiny one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.methods import method_class
from harness.plan import RunPlan
from harness.training import trained_roles


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
        return self.trainable / self.component_total if self.component_total else 0.0


def _architecture(plan: RunPlan) -> tuple[dict, str]:
    from harness import models

    family = plan.task.model.family
    if plan.profile == "full":
        return models.build_meta(family), f"real {family} (meta device, no weights)"
    return models.build_tiny_modules(family), f"tiny {family} sibling"


def _count(plan: RunPlan, modules: dict, architecture: str, name_idle_component: bool) -> tuple[ParamCount, Any]:
    """Attach the plan's method to ``modules`` and count what it trains (``trainable_count``: a method that
    restores all but some rows of a matrix counts those rows) and the modules it trains; a method that
    trains nothing is shown against its nominal ``component`` if ``name_idle_component``, else as '-'."""
    totals = {role: sum(p.numel() for p in m.parameters()) for role, m in modules.items()}
    method = method_class(plan.method.kind)(plan.method)
    trainable = method.trainable_count(method.prepare(modules))
    trained = trained_roles(modules)
    if not trained and name_idle_component:
        trained = [role for role in method.component.split("+") if role in totals]
    count = ParamCount(trainable, sum(totals.values()), "+".join(trained) or "-", sum(totals[r] for r in trained),
                       architecture)
    return count, method


def count_params(plan: RunPlan) -> ParamCount:
    """Attach the method to the plan's architecture without weights and count what it trains."""
    modules, architecture = _architecture(plan)
    return _count(plan, modules, architecture, name_idle_component=True)[0]


@dataclass(frozen=True)
class MethodAccount:
    """One method's count on a task's architecture and the size of its adapter file."""

    method: str
    count: ParamCount
    adapter_bytes: int | None
    adapter_source: str


def count_task_methods(plans: list[RunPlan]) -> list[MethodAccount]:
    """Counts for several methods of one task, building the architecture once (deep copies per method).

    The adapter size is computed by the method (``Method.adapter_size``: trainable parameters x 4 bytes
    of float32 safetensors unless it saves otherwise, header excluded); the frozen base has no adapter.
    """
    import copy

    if not plans:
        return []
    pristine, architecture = _architecture(plans[0])
    accounts = []
    for plan in plans:
        count, method = _count(plan, copy.deepcopy(pristine), architecture, name_idle_component=False)
        size, source = method.adapter_size(count.trainable) or (None, "no adapter")
        accounts.append(MethodAccount(plan.method.name, count, size, source))
    return accounts
