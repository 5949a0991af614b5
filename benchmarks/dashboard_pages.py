"""Time every dashboard page on a results database (Streamlit AppTest, no browser): the first render with
an empty query cache (what a new visitor waits for), a warm render (what a widget change costs) and the
slowest page, per task.

    .venv/bin/python benchmarks/dashboard_pages.py --db results/bench.duckdb [--task T ...] [--repeat 3]

Without --task: every task of the database. Prints figures; not a timed test.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from statistics import median

import streamlit as st
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = ["Leaderboard", "Compare", "Disagreement", "Samples", "Sweeps", "Reported vs measured"]


def render(page: str, task: str | None, profile: str | None) -> tuple[float, AppTest]:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"page": page, **({"task": task} if task else {}),
                            **({"profile": profile} if profile else {})})
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    if at.exception:
        raise SystemExit(f"{page} {task}: {at.exception[0].value}")
    return seconds, at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--task", action="append")
    parser.add_argument("--profile")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["BENCH_DB"] = str(args.db)
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    from harness.store import Store

    tasks = args.task or sorted({c["task"] for c in Store(args.db).task_profiles()})
    worst = (0.0, "")
    print(f"{'task':22} {'page':22} {'first (cold cache)':>18} {'warm (median)':>14}")
    for task in tasks:
        for page in PAGES:
            st.cache_data.clear()
            first, _ = render(page, task, args.profile)
            warm = median(render(page, task, args.profile)[0] for _ in range(args.repeat))
            worst = max(worst, (first, f"{task} / {page}"))
            print(f"{task:22} {page:22} {first:17.3f}s {warm:13.3f}s", flush=True)
    print(f"slowest first render: {worst[0]:.3f} s ({worst[1]})")


if __name__ == "__main__":
    main()
