"""RunPlan: the one frozen, fully resolved record that every stage reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from harness import __version__
from harness.registry import get_method, get_task
from harness.specs import MethodSpec, SpecError, TaskSpec, resolve_method_profile, resolve_profile

Profile = Literal["full", "tiny"]


class ResolvedTraining(BaseModel):
    """Training recipe after the method's overrides are applied to the task's defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: float
    betas: tuple[float, float]
    weight_decay: float
    batch_size: int
    max_steps: int
    mixed_precision: Literal["no", "fp16", "bf16"]
    max_grad_norm: float | None
    lr_schedule: Literal["constant", "cosine"] = "constant"
    epochs: int | None = None
    gradient_checkpointing: bool = False


class RunPlan(BaseModel):
    """Everything a run needs, resolved; its hash identifies the experiment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: TaskSpec
    method: MethodSpec
    profile: Profile
    seed: int
    training: ResolvedTraining
    model_source: str
    data_root: str | None = None
    harness_version: str = __version__
    # Sweep cell overrides (e.g. {"lr": 1e-4, "rank": 16}); already applied to ``method``, kept as a record.
    overrides: dict[str, Any] = {}

    @property
    def plan_hash(self) -> str:
        """Content hash over everything that changes results (not where data lives)."""
        payload = self.model_dump(mode="json", exclude={"data_root"})
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def trains(self) -> bool:
        """False for the frozen base and for evaluation-only tasks (they borrow another task's adapter)."""
        return self.method.kind != "frozen" and self.task.adapter_from_task is None


_TRAINING_REQUIRED = ("learning_rate", "betas", "weight_decay", "batch_size", "max_steps", "mixed_precision")


def resolve_training(task: TaskSpec, method: MethodSpec) -> ResolvedTraining:
    """Overlay the method's training fields on the task's; every required field must end up set."""
    merged = {k: v for k, v in task.training.model_dump().items() if v is not None} | {
        k: v for k, v in method.training.model_dump().items() if v is not None
    }
    missing = [name for name in _TRAINING_REQUIRED if merged.get(name) is None]
    if missing:
        raise SpecError(
            f"task '{task.name}' + method '{method.name}': field 'training.{missing[0]}' "
            "is set by neither the task nor the method"
        )
    merged.setdefault("max_grad_norm", None)
    return ResolvedTraining(**merged)


def build_plan(
    task_ref: str,
    method_ref: str,
    profile: Profile = "tiny",
    seed: int = 0,
    model_path: Path | None = None,
    data_root: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunPlan:
    """Load the specs, resolve the profile and training recipe, and freeze a plan.

    ``overrides`` (sweep cells: lr, rank, steps, schedule) are applied to the method spec after its
    profile (a sweep cell wins over the method's tiny profile).
    """
    from harness.sweep import apply_overrides

    task = resolve_profile(get_task(task_ref), profile)
    method = apply_overrides(resolve_method_profile(get_method(method_ref), profile), overrides or {})
    if profile == "tiny":
        model_source = f"tiny:{task.model.family}"
    else:
        model_source = str(model_path) if model_path else task.model.hub_id
    return RunPlan(
        task=task,
        method=method,
        profile=profile,
        seed=seed,
        training=resolve_training(task, method),
        model_source=model_source,
        data_root=str(data_root) if data_root else None,
        overrides=dict(overrides or {}),
    )

