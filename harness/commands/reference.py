"""The reference a run is compared with: the same task, profile and seed under another method (``frozen``),
run first when the store has none, so that every trained run can show its gain on the same prompts and seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.plan import RunPlan, build_plan


def reference_plan(plan: RunPlan, method: str) -> RunPlan:
    """The plan of the reference method on the same task (the plan's own spec file), profile, seed, model
    and data."""
    task_ref = plan.task.name
    model_path = Path(plan.model_source) if Path(plan.model_source).exists() else None
    data_root = Path(plan.data_root) if plan.data_root else None
    return build_plan(task_ref, method, plan.profile, plan.seed, model_path, data_root)


def ensure_reference(plan: RunPlan, method: str, store: Any, runs_root: Path, progress: Any = None) -> Any:
    """The completed reference run (run now unless one with the same plan hash exists): a RunOutcome."""
    from harness.runner import run

    return run(reference_plan(plan, method), store, runs_root, progress=progress)
