"""The LoRA rank ablation of micro_domain on two training seeds: each seed's leaderboard order by each metric,
and the Kendall tau between the two seeds' orders (1 = the same order; the order is only a finding if it holds
across seeds). Prints the tables and the per-cell values; about a minute per cell on 2 CPU cores.

Usage: .venv/bin/python benchmarks/micro_rank_ablation.py [--seeds 0,1] [--db results/micro_ablation.duckdb]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

METHODS = ["frozen", "lora_unet_r1", "lora_unet_r2", "lora_unet_r4", "lora_unet_r8", "lora_unet_r64"]
METRICS = [("clip_score", "domain"), ("fid", "domain"), ("kid", "domain")]


def main() -> None:
    from scipy.stats import kendalltau

    from harness.metric_registry import higher_is_better
    from harness.plan import build_plan
    from harness.runner import run
    from harness.store import Store

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--db", type=Path, default=Path("results/micro_ablation.duckdb"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    store = Store(args.db)
    values: dict[tuple[str, str, int], float] = {}
    for seed in seeds:
        for method in METHODS:
            outcome = run(build_plan("micro_domain", method, seed=seed), store, args.db.parent / "runs")
            for row in store.aggregates(outcome.run_id, group="__all__"):
                if row["checkpoint"] is None:
                    values[(row["metric"], method, seed)] = row["value"]
    console = Console()
    cells = Table(title="micro_domain rank ablation: value per seed")
    cells.add_column("method")
    for metric, prompt_set in METRICS:
        for seed in seeds:
            cells.add_column(f"{metric} [{prompt_set}] s{seed}", justify="right")
    for method in METHODS:
        cells.add_row(method, *(f"{values[(metric, method, seed)]:.4f}" for metric, _ in METRICS for seed in seeds))
    console.print(cells)
    taus = Table(title=f"order stability across seeds {seeds[0]} and {seeds[1]} (Kendall tau over {len(METHODS)} "
                       "methods)")
    for column in ("metric", "order seed " + str(seeds[0]), "order seed " + str(seeds[1]), "tau", "p"):
        taus.add_column(column)
    for metric, _ in METRICS:
        sign = -1.0 if higher_is_better(metric) else 1.0
        orders = [sorted(METHODS, key=lambda m, s=seed: sign * values[(metric, m, s)]) for seed in seeds[:2]]
        tau = kendalltau([values[(metric, m, seeds[0])] for m in METHODS],
                         [values[(metric, m, seeds[1])] for m in METHODS])
        taus.add_row(metric, " > ".join(orders[0]), " > ".join(orders[1]), f"{tau.statistic:.2f}",
                     f"{tau.pvalue:.3f}")
    console.print(taus)


if __name__ == "__main__":
    main()
