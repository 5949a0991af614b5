"""RunPlan: the one frozen, fully resolved record that every stage reads; sweep overrides and grids.

A sweep cell (``--grid lr=1e-3,5e-4`` or a named design such as the face study's 11 runs) is a set of
overrides applied to the method spec and recorded in the plan, so it changes the plan hash. Nothing here
imports torch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from harness import __version__
from harness.registry import get_method, get_task
from harness.specs import MethodSpec, SpecError, TaskSpec, TrainingSpec, resolve_method_profile, resolve_profile

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
    # Identity of the data the run reads (``harness.data.fingerprint``), set by ``harness.data.bind`` when the
    # run starts: content hashes of the files used, or the hash of a procedural data spec. In the plan hash.
    data_fingerprint: str | None = None
    harness_version: str = __version__
    # Sweep cell overrides (e.g. {"lr": 1e-4, "rank": 16}); already applied to ``method``, kept as a record.
    overrides: dict[str, Any] = {}

    @property
    def plan_hash(self) -> str:
        """Content hash over everything that changes results: not where data lives, but what it is (the data
        fingerprint, once ``harness.data.bind`` has set it). Fields that are already resolved into others (a
        method's family recipes, the task's default profile) stay out, so plans made before they existed keep
        their hash; so does an unset fingerprint."""
        exclude: dict[str, Any] = {"data_root": True, "method": {"families"}, "task": {"default_profile"}}
        if self.data_fingerprint is None:
            exclude["data_fingerprint"] = True
        payload = self.model_dump(mode="json", exclude=exclude)
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
    profile: Profile | None = None,
    seed: int = 0,
    model_path: Path | None = None,
    data_root: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunPlan:
    """Load the specs, resolve the profile (the task's ``default_profile`` when None) and training recipe,
    and freeze a plan.

    ``overrides`` (sweep cells: lr, rank, steps, schedule) are applied to the method spec after its
    profile (a sweep cell wins over the method's tiny profile).
    """
    spec = get_task(task_ref)
    profile = profile or spec.default_profile
    task = resolve_profile(spec, profile)
    method = apply_overrides(resolve_method_profile(get_method(method_ref), profile, task.model.family),
                             overrides or {})
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


Design = Literal["full", "face-study"]

# Sweep key -> where it lands: ("training", field) or ("params", key).
OVERRIDE_TARGETS: dict[str, tuple[str, str]] = {
    "lr": ("training", "learning_rate"),
    "steps": ("training", "max_steps"),
    "schedule": ("training", "lr_schedule"),
    "rank": ("params", "rank"),
}
_PARSERS = {"lr": float, "steps": int, "schedule": str, "rank": int}

# PROTOCOLS.md section 5: the study's 11 runs instead of the 27-run grid (lr, rank, steps, schedule).
FACE_STUDY: list[dict[str, Any]] = [
    {"lr": lr, "rank": rank, "steps": steps, "schedule": schedule}
    for lr, rank, steps, schedule in [
        (1e-3, 8, 500, "cosine"),
        (1e-4, 32, 1500, "cosine"),
        (5e-4, 16, 1000, "cosine"),
        (1e-3, 8, 1000, "cosine"),
        (1e-4, 32, 1000, "cosine"),
        (5e-4, 16, 500, "cosine"),
        (5e-4, 16, 1500, "cosine"),
        (1e-3, 32, 1000, "cosine"),
        (1e-4, 8, 1000, "cosine"),
        (1e-3, 32, 500, "cosine"),
        (5e-4, 16, 1000, "constant"),
    ]
]


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["lr=1e-3,5e-4", "rank=8,16"]`` -> ``{"lr": [0.001, 0.0005], "rank": [8, 16]}``; one-line errors."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not values.strip():
            raise SpecError(f"--grid '{item}': expected KEY=V1,V2,... (keys: {', '.join(OVERRIDE_TARGETS)})")
        if key not in OVERRIDE_TARGETS:
            raise SpecError(f"--grid '{item}': unknown key '{key}' (expected one of {', '.join(OVERRIDE_TARGETS)})")
        try:
            grid[key] = [_PARSERS[key](v.strip()) for v in values.split(",")]
        except ValueError:
            raise SpecError(f"--grid '{item}': values of '{key}' must be {_PARSERS[key].__name__}s") from None
    return grid


def cells(grid: dict[str, list[Any]], design: Design) -> list[dict[str, Any]]:
    """The runs of a sweep: every grid combination (``full``) or the face study's 11 rows.

    With ``face-study`` the grid, if given, must be the study's grid (or a superset of its values).
    """
    if design == "full":
        if not grid:
            raise SpecError("bench sweep: give at least one --grid KEY=V1,V2 (or --design face-study)")
        keys = list(grid)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]
    for row in FACE_STUDY:
        for key, values in grid.items():
            if key in row and row[key] not in values:
                raise SpecError(f"--design face-study uses {key}={row[key]}, which --grid {key}=... excludes")
    return [dict(row) for row in FACE_STUDY]


def apply_overrides(method: MethodSpec, overrides: dict[str, Any]) -> MethodSpec:
    """The method spec with a sweep cell's values written into its training recipe or params."""
    if not overrides:
        return method
    training = method.training.model_dump()
    params = dict(method.params)
    for key, value in overrides.items():
        if key not in OVERRIDE_TARGETS:
            raise SpecError(f"override '{key}': unknown key (expected one of {', '.join(OVERRIDE_TARGETS)})")
        where, field = OVERRIDE_TARGETS[key]
        if where == "params":
            if field not in params:
                raise SpecError(f"method '{method.name}': override '{key}' needs a 'params.{field}' to replace")
            params[field] = value
        else:
            training[field] = value
    return method.model_copy(update={"params": params, "training": TrainingSpec(**training)})
