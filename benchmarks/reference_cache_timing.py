"""Time FID scoring of a task twice: the first call computes the reference statistics, the second
(another "method" on the same task) loads them from the cache.

    .venv/bin/python benchmarks/reference_cache_timing.py [--references 512] [--generated 50] [--size 256]

Runs on the tiny profile (random-init extractor through torch-fidelity) with random uint8 images, so it
needs no weights; on ``full`` the saving is larger (InceptionV3 at 299x299 per reference image).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, default=512)
    parser.add_argument("--generated", type=int, default=50)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="refcache_"))
    os.environ["BENCH_CACHE"] = str(work / "cache")

    from PIL import Image

    import harness.data
    from harness.data import ReferenceSet
    from harness.metrics import ScoringContext, fidelity
    from harness.plan import build_plan
    from harness.records import SampleRecord

    rng = np.random.default_rng(0)
    references = ReferenceSet("random", [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
                                         for _ in range(args.references)])
    harness.data.load_references = lambda plan: references
    plan = build_plan("tests/specs/cifar_fid.yaml", "frozen", "tiny")
    spec = next(m for m in plan.task.evaluation.metrics if m.name == "fid")
    timings = []
    for method in ("method_1", "method_2"):
        run_dir = work / method
        (run_dir / "samples").mkdir(parents=True)
        records = []
        for i in range(args.generated):
            name = f"samples/A.p{i}__000.png"
            Image.fromarray(rng.integers(0, 160, (args.size, args.size, 3), dtype=np.uint8)).save(run_dir / name)
            records.append(SampleRecord("A", f"A.p{i}", "prompt", "g", 0, i, name, 127.0, False))
        start = time.perf_counter()
        row = fidelity.score(ScoringContext(plan, run_dir), spec, records).aggregates[0]
        timings.append(time.perf_counter() - start)
        print(f"{method}: FID {row.value:.6f} (N={row.n}) scored in {timings[-1]:.2f} s; flags {row.card['flags']}")
    print(f"references {args.references} x {args.size}px, generated {args.generated}: first {timings[0]:.2f} s, "
          f"second {timings[1]:.2f} s (cache hit)")


if __name__ == "__main__":
    main()
