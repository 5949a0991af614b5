"""Feasibility check: does LoRA fine-tuning of the microworld base close the held-out-concept gap?

    python -m harness.micro.finetune_check --concept colour=purple --seeds 0 1 2

Trains peft LoRA (r4, alpha 4) on the UNet attention projections (to_q, to_k, to_v, to_out.0) with
``DiffusionBundle.training_loss`` on 40 images of the held-out concept, then compares the CLIP judge's
score of base vs adapted samples on held-out-concept prompts (and on held-in prompts: forgetting).
Not part of the test suite (about a minute per seed on one CPU thread).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from harness.micro import world


def finetune_lora(bundle: Any, images: np.ndarray, captions: list[str], seed: int, steps: int = 200,
                  batch: int = 16, lr: float = 3e-3, rank: int = 4) -> Any:
    """The bundle's UNet with a trained LoRA adapter attached (peft); the bundle is modified in place."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model

    from harness.micro.train import to_unit

    torch.manual_seed(seed)  # seed before attaching adapters (their init draws from the global RNG)
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                        target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    bundle.unet.requires_grad_(False)
    inject_adapter_in_model(config, bundle.unet)
    params = [p for n, p in bundle.unet.named_parameters() if "lora" in n]
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    pixels = to_unit(images) * 2 - 1
    bundle.unet.train()
    modules = bundle.modules()
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=generator)
        loss = bundle.training_loss({"pixel_values": pixels[idx], "caption": [captions[i] for i in idx.tolist()]},
                                    modules, generator, "cpu")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if (step + 1) % 50 == 0:
            print(f"[lora seed {seed}] step {step + 1}/{steps} loss {loss.item():.4f}", flush=True)
    bundle.unet.eval()
    return bundle


def run(concept: dict[str, Any], seeds: list[int], prompts_n: int = 20, per_prompt: int = 4,
        train_images: int = 40, steps: int = 200, weights: str | None = None) -> dict[str, Any]:
    import torch

    from harness.micro import base, judges, quality

    torch.set_num_threads(1)
    scorer = quality.ClipScorer(judges.load_clip_model())
    folder = weights
    target = quality.prompts_with(prompts_n, 7001, **concept)
    held_in = quality.prompts_held_in(prompts_n, 7002)
    rng = np.random.default_rng(7003)
    train = []
    while len(train) < train_images:  # the concept with otherwise held-in values (texture plain unless fixed)
        a = world.sample_attributes(rng, texture=concept.get("texture", "plain"),
                                    **{k: v for k, v in concept.items() if k != "texture"})
        if not any(a[k] in world.HELD_OUT.get(k, ()) for k in world.CAPTIONED if k not in concept):
            train.append(a)
    images = np.stack([world.render(a) for a in train])
    captions = [world.caption(a) for a in train]

    def evaluate(bundle: Any) -> dict[str, Any]:
        out = {}
        for name, prompts in (("concept", target), ("held_in", held_in)):
            repeated = [p for p in prompts for _ in range(per_prompt)]
            samples = base.sample(bundle, repeated, list(range(len(repeated))))
            out[name] = quality.bootstrap(scorer.paired(samples, repeated))
            out[name]["scores"] = scorer.paired(samples, repeated).tolist()
        return out

    result: dict[str, Any] = {"concept": concept, "train_images": train_images, "steps": steps,
                              "prompts": prompts_n, "per_prompt": per_prompt}
    start = time.time()
    frozen = evaluate(base.load_base(folder))
    result["frozen"] = {k: {m: v[m] for m in ("mean", "ci_low", "ci_high")} for k, v in frozen.items()}
    result["frozen_s"] = round(time.time() - start, 1)
    for seed in seeds:
        start = time.time()
        bundle = finetune_lora(base.load_base(folder), images, captions, seed, steps=steps)
        adapted = evaluate(bundle)
        row = {k: {m: v[m] for m in ("mean", "ci_low", "ci_high")} for k, v in adapted.items()}
        for k in ("concept", "held_in"):
            diff = np.array(adapted[k]["scores"]) - np.array(frozen[k]["scores"])
            row[k]["paired_difference"] = quality.bootstrap(diff)
        row["wall_s"] = round(time.time() - start, 1)
        result[f"lora_seed_{seed}"] = row
        print(json.dumps({f"lora_seed_{seed}": row}), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.micro.finetune_check")
    parser.add_argument("--concept", default="colour=purple", help="attribute=value, e.g. shape=star")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default=None, help="write the JSON result here")
    parser.add_argument("--weights", default=None, help="base weights folder (default: the shipped one)")
    args = parser.parse_args(argv)
    name, value = args.concept.split("=")
    concept = {name: int(value) if name == "person" else value}
    result = run(concept, args.seeds, steps=args.steps, weights=args.weights)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
