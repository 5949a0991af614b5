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
        return self.trainable / self.component_total if self.component_total else 0.0


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
    trainable = sum(p.numel() for p in method.prepare(modules))
    trained = [role for role, m in modules.items() if any(p.requires_grad for p in m.parameters())] or [
        role for role in method.component.split("+") if role in totals]
    return ParamCount(trainable, sum(totals.values()), "+".join(trained), sum(totals[r] for r in trained),
                      architecture)


@dataclass(frozen=True)
class MethodAccount:
    """One method's count on a task's architecture and the size of its adapter file."""

    method: str
    count: ParamCount
    adapter_bytes: int | None
    adapter_source: str


# LoRA weights are trained and saved in float32 (harness.methods.lora casts them).
ADAPTER_BYTES_PER_PARAM = 4


def count_task_methods(plans: list[RunPlan]) -> list[MethodAccount]:
    """Counts for several methods of one task, building the architecture once (deep copies per method).

    The adapter size is computed as trainable parameters x 4 bytes (float32 safetensors, header
    excluded); the frozen base has no adapter.
    """
    import copy

    from harness import models

    if not plans:
        return []
    family, profile = plans[0].task.model.family, plans[0].profile
    if profile == "full":
        pristine, architecture = models.build_meta(family), f"real {family} (meta device, no weights)"
    else:
        pristine, architecture = models.build_tiny_modules(family), f"tiny {family} sibling"
    totals = {role: sum(p.numel() for p in m.parameters()) for role, m in pristine.items()}
    accounts = []
    for plan in plans:
        modules = copy.deepcopy(pristine)
        method = method_class(plan.method.kind)(plan.method)
        trainable = sum(p.numel() for p in method.prepare(modules))
        trained = [role for role, m in modules.items() if any(p.requires_grad for p in m.parameters())]
        count = ParamCount(trainable, sum(totals.values()), "+".join(trained) or "-",
                           sum(totals[r] for r in trained), architecture)
        size = trainable * ADAPTER_BYTES_PER_PARAM if trainable else None
        accounts.append(MethodAccount(plan.method.name, count, size,
                                      "computed: params x 4 B (fp32)" if size else "no adapter"))
    return accounts
