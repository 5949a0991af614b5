"""A results database filled by real tiny runs of every task the dashboard shows (its test fixture).

cifar_alignment (frozen, xattn_ft, lora_unet_r1, from ``tiny_runs``) with a stored ``bench disagree``;
dreambooth_subjects (frozen, ti_then_ft: per-checkpoint rows plus headline rows); face_identity (frozen
and a ``bench sweep`` of flux_lora cells); deepfashion (frozen, lora_unet_r1, with FID/KID) and
coco_generalization (frozen, lora_unet_r1 scoring deepfashion's adapter).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from harness.plan import build_plan
from harness.runner import run
from harness.store import Store

RUNS = [("dreambooth_subjects", "frozen"), ("dreambooth_subjects", "ti_then_ft"),
        ("deepfashion", "frozen"), ("deepfashion", "lora_unet_r1"),
        ("coco_generalization", "frozen"), ("coco_generalization", "lora_unet_r1"),
        ("face_identity", "frozen")]
# Face-study cells swept on tiny: the study's 11 cells with design "face-study" (measured: about 0.6 s a
# cell on tiny), or with design "full" this 2 x 2 grid over lr and rank.
SWEEP_GRID = ["lr=1e-3,1e-4", "rank=8,32"]


def build(root: Path, cifar_db: Path, design: str = "full") -> dict:
    """Copy the cifar database, add the runs above, the sweep and a stored disagreement; returns paths
    and timings (seconds per step) so a slow fixture shows where its time goes."""
    from typer.testing import CliRunner

    from harness.cli import app

    db = root / "bench.duckdb"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cifar_db, db)
    # the run folders too: paths in the database are relative to its folder (a results folder moves whole)
    if (cifar_db.parent / "runs").is_dir():
        shutil.copytree(cifar_db.parent / "runs", root / "runs", dirs_exist_ok=True)
    store = Store(db)
    timings: dict[str, float] = {}
    outcomes = {}
    for task, method in RUNS:
        started = time.monotonic()
        outcomes[(task, method)] = run(build_plan(task, method, "tiny"), store, root / "runs")
        timings[f"{task}/{method}"] = time.monotonic() - started
    cli = CliRunner()
    started = time.monotonic()
    grid = [] if design == "face-study" else [arg for item in SWEEP_GRID for arg in ("--grid", item)]
    sweep = cli.invoke(app, ["sweep", "--task", "face_identity", "--method", "flux_lora", "--design", design,
                             *grid, "--profile", "tiny", "--db", str(db)])
    timings["face_identity/sweep"] = time.monotonic() - started
    started = time.monotonic()
    disagree = cli.invoke(app, ["disagree", "--task", "cifar_alignment", "--profile", "tiny", "--resamples", "200",
                                "--db", str(db)])
    timings["cifar_alignment/disagree"] = time.monotonic() - started
    print(f"study db timings (s): {timings}", file=sys.stderr)
    return {"db": db, "store": store, "outcomes": outcomes, "sweep": sweep, "disagree": disagree,
            "timings": timings}
