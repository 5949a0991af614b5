"""Time every dashboard page on a results database (Streamlit AppTest, no browser).

    .venv/bin/python benchmarks/dashboard_pages.py --db results/bench.duckdb [--task T] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from statistics import median

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = ["Leaderboard", "Compare", "Disagreement", "Samples", "Sweeps", "Reported vs measured"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--task")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["BENCH_DB"] = str(args.db)
    for page in PAGES:
        seconds = []
        for _ in range(args.repeat):
            at = AppTest.from_file(APP, default_timeout=300)
            at.query_params.update({"page": page, **({"task": args.task} if args.task else {})})
            start = time.perf_counter()
            at.run()
            seconds.append(time.perf_counter() - start)
            if at.exception:
                raise SystemExit(f"{page}: {at.exception[0].value}")
        print(f"{page:22} median {median(seconds):.3f} s over {args.repeat} renders")


if __name__ == "__main__":
    main()
