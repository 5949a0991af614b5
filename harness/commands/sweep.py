"""``bench sweep``: every cell of a grid or design (``harness.plan.cells``) as an ordinary run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.plan import Design, build_plan, cells


@dataclass
class SweepCell:
    overrides: dict[str, Any]
    run_id: str
    status: str
    error: str | None


def run_sweep(task: str, method: str, grid: dict[str, list[Any]], design: Design, profile: str | None, seed: int,
              store: Any, runs_root: Any, model_path: Any = None, data_root: Any = None,
              force: bool = False, progress: Any = None) -> list[SweepCell]:
    """Plan every cell first (so a bad spec fails before any training), then run them in order. ``progress``
    (``harness.progress.RichProgress``): one bar over the cells, and each run's stage bars under it."""
    from harness.runner import run

    plans = [build_plan(task, method, profile, seed, model_path, data_root, overrides=cell)  # type: ignore[arg-type]
             for cell in cells(grid, design)]
    results = []
    tick = progress.stage(f"sweep {task} / {method}: cells", len(plans)) if progress is not None else None
    for plan in plans:
        outcome = run(plan, store, runs_root, force=force, progress=progress)
        results.append(SweepCell(plan.overrides, outcome.run_id, outcome.status, outcome.error))
        if tick is not None:
            tick(1)
    return results


def run_sweep_cells(task: str, method: str, grid: dict[str, list[Any]], design: Design, profile: str | None,
                    seed: int, db: Any, executor: str, jobs: int = 1, model_path: Any = None, data_root: Any = None,
                    force: bool = False, resources: Any = None, on_cell: Any = None) -> list[SweepCell]:
    """``bench sweep --executor local|ray|slurm``: the same cells, each in its own process on that engine
    (``harness.commands.executors``), ingested into ``db`` as they finish."""
    from harness.commands.executors import Cell, run_cells

    todo = [Cell(task, method, seed, profile, cell, str(model_path) if model_path else None,
                 str(data_root) if data_root else None) for cell in cells(grid, design)]
    done = run_cells(todo, db, executor, jobs, force, resources, on_cell)
    return [SweepCell(r.cell.overrides, r.run_id or "-", r.status, r.error) for r in done]
