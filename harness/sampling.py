"""Seeded generation: one CPU ``torch.Generator`` per (prompt id, sample index), PNG files.

Under several processes (``harness.distributed``) the samples are dealt out round-robin: each process
generates its share in batches (every sample with its own generator, so the PNGs are those of a one-process
run) and the records are gathered, in the one-process order, on every process. ``made_by`` records which
process made which file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from harness.models.common import DiffusionBundle
from harness.plan import RunPlan
from harness.prompts import EvalPrompt
from harness.records import SampleRecord


def sample_seed(run_seed: int, prompt_id: str, sample_idx: int) -> int:
    """Seed of one sample: the same for every method given the run seed, prompt id and index."""
    digest = hashlib.sha256(f"{run_seed}:{prompt_id}:{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def sample_generator(run_seed: int, prompt_id: str, sample_idx: int) -> Any:
    """The CPU generator of one sample (CPU so that noise is identical on every device)."""
    import torch

    return torch.Generator(device="cpu").manual_seed(sample_seed(run_seed, prompt_id, sample_idx))


def build_pipeline(bundle: DiffusionBundle, scheduler_kind: str) -> Any:
    """A diffusers text-to-image pipeline over the bundle's (possibly adapted) modules (the family's own)."""
    return bundle.build_pipeline(scheduler_kind)


def uses_negative_prompt(plan: RunPlan) -> bool:
    """Whether this run samples with the task's negative prompt (some protocols give it to the frozen base only)."""
    spec = plan.task.sampling
    return bool(spec.negative_prompt) and (spec.negative_prompt_for == "all" or plan.method.kind == "frozen")


def generate(plan: RunPlan, bundle: DiffusionBundle, prompts: list[EvalPrompt], run_dir: Path,
             progress: Any = None, made_by: dict[int, list[str]] | None = None) -> list[SampleRecord]:
    """Generate every (prompt, sample index) of the plan into ``run_dir/samples`` as PNG (this process's
    share of the batches when there are several; the records of all of them are returned)."""
    import torch

    from harness import distributed

    spec = plan.task.sampling
    pipeline = build_pipeline(bundle, spec.scheduler)
    device = distributed.device()
    pipeline.to(device)
    jobs = [(p, i) for p in prompts for i in range(p.samples)]
    out_dir = run_dir / "samples"
    out_dir.mkdir(parents=True, exist_ok=True)
    share = distributed.shard(jobs)
    records: list[SampleRecord] = []
    for start in range(0, len(share), spec.batch_size):
        chunk = share[start : start + spec.batch_size]
        generators = [sample_generator(plan.seed, p.prompt_id, i) for p, i in chunk]
        negative = [spec.negative_prompt] * len(chunk) if uses_negative_prompt(plan) else None
        autocast_dtype = getattr(torch, bundle.sampling_autocast_dtype)
        with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype, enabled=device.type == "cuda"):
            images = bundle.generate_images(pipeline, [p.text for p, _ in chunk], negative, generators, spec)
        for (prompt, idx), image in zip(chunk, images, strict=True):
            name = f"{prompt.prompt_id}__{idx:03d}.png"
            image.save(out_dir / name, format="PNG")
            mean = float(np.asarray(image, dtype=np.float32).mean())
            records.append(SampleRecord(prompt.prompt_set, prompt.prompt_id, prompt.text, prompt.group, idx,
                                        sample_seed(plan.seed, prompt.prompt_id, idx), f"samples/{name}",
                                        round(mean, 3), mean < spec.near_black_threshold))
        if progress is not None:
            progress(len(chunk))
    parts = distributed.gather(records)  # every process's samples (its files are written before it gets here)
    if made_by is not None:
        for rank, part in enumerate(parts):
            made_by.setdefault(rank, []).extend(r.file for r in part)
    return distributed.unshard(parts)
