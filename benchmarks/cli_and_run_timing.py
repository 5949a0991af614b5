"""Print the wall time of `bench ls tasks` next to `python -c "import diffusers"`, and split a tiny
run's wall time into load / train / sample / score / everything else.

Usage: .venv/bin/python benchmarks/cli_and_run_timing.py [--repeats 5] [--method xattn_ft]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def wall(cmd: list[str], repeats: int) -> tuple[float, float]:
    """Median and min wall seconds of a command."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--method", default="xattn_ft")
    args = parser.parse_args()
    bench = str(Path(sys.executable).with_name("bench"))
    console = Console()

    startup = Table(title=f"command start-up (median / min of {args.repeats})")
    for column in ("command", "median s", "min s"):
        startup.add_column(column)
    for label, cmd in (("bench ls tasks", [bench, "ls", "tasks"]),
                       ("python -c 'import diffusers'", [sys.executable, "-c", "import diffusers"]),
                       ("python -c 'import torch'", [sys.executable, "-c", "import torch"])):
        median, best = wall(cmd, args.repeats)
        startup.add_row(label, f"{median:.3f}", f"{best:.3f}")
    console.print(startup)

    from harness.plan import build_plan
    from harness.runner import run
    from harness.store import Store

    folder = Path(tempfile.mkdtemp(prefix="bench_timing_"))
    try:
        plan = build_plan("cifar_alignment", args.method, "tiny")
        start = time.perf_counter()
        outcome = run(plan, Store(folder / "bench.duckdb"), folder / "runs", force=True)
        outer = time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    stages = Table(title=f"tiny run cifar_alignment / {args.method}: wall time by stage ({outcome.status})")
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    stages.add_column("share", justify="right")
    total = outcome.timings["total"]
    for name in ("load", "train", "sample", "score", "other"):
        value = outcome.timings.get(name, 0.0)
        stages.add_row(name, f"{value:.2f}", f"{100 * value / total:.0f}%")
    stages.add_row("total (runner)", f"{total:.2f}", "100%")
    stages.add_row("total (incl. store write)", f"{outer:.2f}", "")
    console.print(stages)


if __name__ == "__main__":
    main()
