"""Print the CPU throughput (images/s) of each microworld judge and of base-model sampling.

Usage: PYTHONPATH=. .venv/bin/python benchmarks/micro_judges.py [--n 1024] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from harness.micro import base, judges, quality, world


def rate(function, n: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` images per second of ``function()`` over ``n`` images."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=64, help="images for the base sampling rate")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, captions, _ = world.make_arrays(args.n, seed=9901)
    scorer = quality.ClipScorer(judges.load_clip_model())
    dino = judges.load_dino()
    face = judges.load_face()
    extractor = judges.create_feature_extractor()
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()

    def fidelity() -> None:
        with torch.no_grad():
            for i in range(0, len(nchw), 256):
                extractor(nchw[i:i + 256])

    rows = [
        ("world render", rate(lambda: world.make_arrays(args.n // 4, seed=1), args.n // 4, 1)),
        ("clip judge: paired score (image + text)", rate(lambda: scorer.paired(images, captions), args.n)),
        ("clip judge: zero-shot over 1,472 captions", rate(lambda: scorer.classify(images), args.n)),
        ("microdino embed", rate(lambda: dino.embed(list(images)), args.n)),
        ("microdino torch-fidelity features", rate(fidelity, args.n)),
        ("microface detect + embed", rate(lambda: face.embed(list(images)), args.n)),
    ]
    bundle = base.load_base()
    prompts = quality.prompts_held_in(args.samples, seed=1)
    rows.append((f"base sampling (DDIM {base.SAMPLING_STEPS}, cfg {base.GUIDANCE})",
                 rate(lambda: base.sample(bundle, prompts, list(range(len(prompts)))), len(prompts), 1)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), n={args.n}")
    for name, value in rows:
        print(f"{name:<48} {value:10.1f} images/s")


if __name__ == "__main__":
    main()
