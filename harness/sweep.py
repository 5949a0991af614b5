"""Hyperparameter sweeps: a grid (``--grid lr=1e-3,5e-4``) or a named design (the face study's 11 runs).

Each cell is an ordinary run: its overrides are applied to the method spec and recorded in the
RunPlan, so they change the plan hash. Nothing here imports torch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

from harness.specs import MethodSpec, SpecError, TrainingSpec

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


@dataclass
class SweepCell:
    overrides: dict[str, Any]
    run_id: str
    status: str
    error: str | None


def run_sweep(task: str, method: str, grid: dict[str, list[Any]], design: Design, profile: str, seed: int,
              store: Any, runs_root: Any, model_path: Any = None, data_root: Any = None,
              force: bool = False) -> list[SweepCell]:
    """Plan every cell first (so a bad spec fails before any training), then run them in order."""
    from harness.plan import build_plan
    from harness.runner import run

    plans = [build_plan(task, method, profile, seed, model_path, data_root, overrides=cell)  # type: ignore[arg-type]
             for cell in cells(grid, design)]
    results = []
    for plan in plans:
        outcome = run(plan, store, runs_root, force=force)
        results.append(SweepCell(plan.overrides, outcome.run_id, outcome.status, outcome.error))
    return results
