"""Microworld benchmark cells: wall time per cell split by stage, and harness sampling against a bare diffusers
pipeline call on the same micro model, prompts and seeds (ratio; target <= 1.1).

Usage: .venv/bin/python benchmarks/micro_cells.py [--task micro_alignment] [--methods frozen,lora_unet_r4]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def cell_timings(task: str, methods: list[str], folder: Path) -> Table:
    from harness.plan import build_plan
    from harness.runner import run
    from harness.store import Store

    table = Table(title=f"{task}: wall seconds per cell by stage (1 process, {_threads()} torch threads)")
    for column in ("method", "load", "train", "sample", "score", "other", "total", "samples"):
        table.add_column(column, justify="left" if column == "method" else "right")
    store = Store(folder / "bench.duckdb")
    for method in methods:
        outcome = run(build_plan(task, method), store, folder / "runs", force=True)
        t = outcome.timings
        n = len(store.samples(outcome.run_id))
        table.add_row(method, *(f"{t.get(k, 0.0):.1f}" for k in ("load", "train", "sample", "score", "other",
                                                                   "total")), str(n))
    return table


def sampling_overhead(task: str, folder: Path) -> Table:
    """The harness's generate() against one bare StableDiffusionPipeline call per batch, same prompts and seeds."""
    import torch

    from harness import models
    from harness.plan import build_plan
    from harness.prompts import plan_prompts
    from harness.sampling import generate, sample_generator

    plan = build_plan(task, "frozen")
    bundle = models.load(plan)
    prompts = plan_prompts(plan)
    spec = plan.task.sampling
    jobs = [(p, i) for p in prompts for i in range(p.samples)]
    start = time.perf_counter()
    generate(plan, bundle, prompts, folder / "harness")
    harness_s = time.perf_counter() - start
    pipeline = bundle.build_pipeline(spec.scheduler)
    start = time.perf_counter()
    for first in range(0, len(jobs), spec.batch_size):
        chunk = jobs[first:first + spec.batch_size]
        with torch.no_grad():
            pipeline(prompt=[p.text for p, _ in chunk], num_inference_steps=spec.steps,
                     guidance_scale=spec.guidance_scale, height=spec.height, width=spec.width,
                     generator=[sample_generator(plan.seed, p.prompt_id, i) for p, i in chunk], output_type="pil")
    bare_s = time.perf_counter() - start
    table = Table(title=f"{task}: sampling {len(jobs)} images, harness vs bare diffusers pipeline")
    for column in ("harness s", "bare pipeline s", "ratio (target <= 1.1)", "harness images/s"):
        table.add_column(column, justify="right")
    table.add_row(f"{harness_s:.1f}", f"{bare_s:.1f}", f"{harness_s / bare_s:.2f}", f"{len(jobs) / harness_s:.1f}")
    return table


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="micro_alignment")
    parser.add_argument("--methods", default="frozen,lora_unet_r4")
    args = parser.parse_args()
    console = Console()
    folder = Path(tempfile.mkdtemp(prefix="bench_micro_"))
    try:
        console.print(cell_timings(args.task, args.methods.split(","), folder))
        console.print(sampling_overhead(args.task, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
