"""What a run stores, in a form that survives refactors: every row of its samples, per-sample scores and
aggregates, plus the budget fields of its run row, without run ids, timings, paths or versions.

``python -m tests.pipeline_snapshot OUT.json`` runs one pair per task on the tiny profile (a fresh
database under a temporary folder) and writes their snapshots; ``tests/test_pipeline_rows.py`` compares
the same pairs run by the current code with ``tests/fixtures/pipeline_rows.json``, written by the
pre-refactor pipeline (commit 3e8ea9a). Its LoRA values were rewritten once, when runs began seeding adapter
init from the plan seed (rows, ids and counts unchanged). Rewrite the fixture only for a change meant to
alter results, and say so in the commit.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

# One pair per task; dreambooth_subjects twice: the checkpointed two-stage method and prior preservation.
PAIRS = [("cifar_alignment", "xattn_ft"), ("deepfashion", "lora_unet_r1"), ("coco_generalization", "lora_unet_r1"),
         ("garment", "garment_lora"), ("face_identity", "flux_lora"), ("dreambooth_subjects", "ti_then_ft"),
         ("dreambooth_subjects", "dreambooth_lora")]
RUN_FIELDS = ("status", "steps", "samples_seen", "stopped_by", "trainable_params", "base_params", "adapter_bytes")
VOLATILE_CARD_KEYS = ("library", "reference_cache_hit")


RUN_ID = re.compile(r"\d{8}T\d{6,}-[\w.-]+")
CACHE_NOTE = re.compile(r"reference stats (loaded from|computed into) the cache")  # depends on earlier runs


def _rounded(value: Any) -> Any:
    if isinstance(value, str):
        return CACHE_NOTE.sub("reference stats <cache>", RUN_ID.sub("<run_id>", value))
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in sorted(value.items()) if k not in VOLATILE_CARD_KEYS}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def snapshot(store: Any, run_id: str) -> dict[str, Any]:
    """The stored rows of one run, sorted, rounded to 5 decimals, without volatile fields."""
    run = store.run_row(run_id)
    samples = sorted((_rounded({k: v for k, v in row.items() if k != "run_id"}) for row in store.samples(run_id)),
                     key=json.dumps)
    scores = sorted((_rounded({k: v for k, v in row.items() if k != "run_id"})
                     for row in store.sample_scores(run_id)), key=json.dumps)
    aggregates = []
    for row in store.aggregates(run_id):
        card = row.get("card") or {}
        card = json.loads(card) if isinstance(card, str) else card
        flags = [f for f in card.get("flags", []) if not f.startswith("reference_cache_")]
        kept = {k: v for k, v in row.items() if k not in ("run_id", "card")}
        kept["card"] = {**{k: v for k, v in card.items() if k not in VOLATILE_CARD_KEYS}, "flags": flags}
        aggregates.append(_rounded(kept))
    return {"run": _rounded({k: run.get(k) for k in RUN_FIELDS}), "samples": samples, "sample_scores": scores,
            "metrics": sorted(aggregates, key=json.dumps)}


def run_pairs(root: Path) -> dict[str, Any]:
    """Run every pair of PAIRS on the tiny profile into one database; snapshots by 'task/method'."""
    from harness.plan import build_plan
    from harness.runner import run
    from harness.store import Store

    store = Store(root / "bench.duckdb")
    out = {}
    for task, method in PAIRS:
        outcome = run(build_plan(task, method, "tiny"), store, root / "runs")
        if outcome.status != "completed":
            raise RuntimeError(f"{task}/{method}: {outcome.status} {outcome.error}")
        out[f"{task}/{method}"] = snapshot(store, outcome.run_id)
    return out


if __name__ == "__main__":
    import os

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("BENCH_CACHE", str(Path(tmp) / "cache"))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        Path(sys.argv[1]).write_text(json.dumps(run_pairs(Path(tmp)), indent=1, sort_keys=True) + "\n")
