"""End-to-end tiny runs: store round trip, skip / --force, determinism, aligned generators, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from harness import data
from harness.analysis.leaderboard import latest_runs
from harness.metrics import clip_score
from harness.paths import PROJECT_ROOT
from harness.plan import build_plan
from harness.runner import run
from harness.sampling import sample_generator, sample_seed
from harness.store import Store
from tests.conftest import TASK, png_bytes

N_A, N_B = 50, 12  # tiny profile: 50 class prompts x 1, 6 marketing prompts x 2


def test_three_methods_complete_in_one_db(tiny_runs: dict) -> None:
    store: Store = tiny_runs["store"]
    assert {m: o.status for m, o in tiny_runs["outcomes"].items()} == dict.fromkeys(
        ("frozen", "xattn_ft", "lora_unet_r1"), "completed")
    board = latest_runs(store, TASK)
    assert sorted(r["method"] for r in board) == ["frozen", "lora_unet_r1", "xattn_ft"]
    for row in board:
        overall = {(m["metric"], m["prompt_set"]): m for m in row["metrics"]}
        assert overall[("clip_score", "A")]["n"] == N_A and overall[("clip_score", "B")]["n"] == N_B
        assert overall[("near_black_count", "A")]["n"] == N_A
        assert row["profile"] == "tiny" and row["versions"]["torch_build"].startswith(torch.__version__)
        assert row["git_commit"] and row["timings"]["total"] > 0


def test_budget_and_params_recorded(tiny_runs: dict) -> None:
    runs = {r["method"]: r for r in tiny_runs["store"].runs(TASK)}
    assert (runs["xattn_ft"]["steps"], runs["xattn_ft"]["samples_seen"], runs["xattn_ft"]["stopped_by"]) == (
        8, 32, "steps")
    assert runs["frozen"]["steps"] == 0 and runs["frozen"]["trainable_params"] == 0
    assert runs["xattn_ft"]["trainable_params"] == 61_792 and runs["lora_unet_r1"]["trainable_params"] == 5_376
    assert runs["xattn_ft"]["peak_memory_bytes"] > 0 and runs["xattn_ft"]["adapter_bytes"] > 0
    assert runs["lora_unet_r1"]["adapter_file"].endswith("pytorch_lora_weights.safetensors")


def test_db_round_trip_matches_run_folder_and_pngs(tiny_runs: dict) -> None:
    store: Store = tiny_runs["store"]
    outcome = tiny_runs["outcomes"]["xattn_ft"]
    samples = store.samples(outcome.run_id)
    scores = {(s["prompt_id"], s["sample_idx"]): s["value"] for s in store.sample_scores(outcome.run_id)}
    assert len(samples) == len(scores) == N_A + N_B
    stored = json.loads((outcome.run_dir / "result.json").read_text())["aggregates"]
    db_rows = store.aggregates(outcome.run_id)
    assert len(stored) == len(db_rows)
    by_key = {(r["metric"], r["prompt_set"], r["grp"]): r["value"] for r in db_rows}
    for row in stored:
        assert by_key[(row["metric"], row["prompt_set"], row["grp"])] == pytest.approx(row["value"])
    # The mean of the stored per-sample scores of a class is the stored class aggregate.
    cats = [scores[(s["prompt_id"], s["sample_idx"])] for s in samples if s["grp"] == "cat" and s["prompt_set"] == "A"]
    assert len(cats) == 5 and by_key[("clip_score", "A", "cat")] == pytest.approx(sum(cats) / 5)
    # Each score is the cosine of the image with its OWN prompt: recompute a few from the PNGs.
    backbone = clip_score.build_tiny()
    picked = samples[:3]
    images = [Image.open(outcome.run_dir / s["file"]).convert("RGB") for s in picked]
    recomputed = clip_score.cosine_scores(backbone, images, [s["prompt"] for s in picked])
    for sample, value in zip(picked, recomputed, strict=True):
        assert scores[(sample["prompt_id"], sample["sample_idx"])] == pytest.approx(value, abs=1e-6)
    shuffled = clip_score.cosine_scores(backbone, images, [picked[1]["prompt"], picked[2]["prompt"],
                                                           picked[0]["prompt"]])
    assert shuffled != pytest.approx(recomputed)


def test_generators_aligned_across_methods(tiny_runs: dict) -> None:
    store: Store = tiny_runs["store"]
    seeds = {m: {(s["prompt_id"], s["sample_idx"]): s["seed"] for s in store.samples(o.run_id)}
             for m, o in tiny_runs["outcomes"].items()}
    assert seeds["frozen"] == seeds["xattn_ft"] == seeds["lora_unet_r1"]
    assert len(set(seeds["frozen"].values())) == N_A + N_B  # distinct per (prompt, index)
    a = torch.randn(4, generator=sample_generator(0, "A.cat.t0", 0))
    b = torch.randn(4, generator=sample_generator(0, "A.cat.t0", 0))
    c = torch.randn(4, generator=sample_generator(0, "A.cat.t0", 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sample_seed(0, "A.cat.t0", 0) != sample_seed(1, "A.cat.t0", 0)


def test_training_changes_the_images(tiny_runs: dict) -> None:
    frozen = png_bytes(tiny_runs["outcomes"]["frozen"].run_dir)
    tuned = png_bytes(tiny_runs["outcomes"]["xattn_ft"].run_dir)
    assert frozen.keys() == tuned.keys()
    assert sum(frozen[k] != tuned[k] for k in frozen) > len(frozen) // 2


def test_skip_then_force_gives_byte_identical_pngs(tiny_runs: dict) -> None:
    store: Store = tiny_runs["store"]
    first = tiny_runs["outcomes"]["frozen"]
    plan = build_plan(TASK, "frozen", "tiny", seed=0)
    skipped = run(plan, store, tiny_runs["root"] / "runs")
    assert (skipped.status, skipped.run_id) == ("skipped", first.run_id)
    forced = run(plan, store, tiny_runs["root"] / "runs", force=True)
    assert forced.status == "completed" and forced.run_id != first.run_id
    assert png_bytes(forced.run_dir) == png_bytes(first.run_dir)
    bound = data.bind(plan).plan_hash  # the hash the run stores: the plan with its data fingerprint
    hashes = [r for r in store.runs(TASK) if r["plan_hash"] == bound and r["status"] == "completed"]
    assert len(hashes) == 2  # append-only: the earlier run is kept


def test_zero_trainable_run_is_stored_as_failed_and_not_ranked(tiny_runs: dict, tmp_path: Path) -> None:
    spec = {"name": "xattn_nothing", "version": 1, "kind": "attn_finetune",
            "params": {"component": "unet", "target_patterns": ["no_such_module"]}}
    path = tmp_path / "xattn_nothing.yaml"
    path.write_text(yaml.safe_dump(spec))
    store: Store = tiny_runs["store"]
    before = len(store.runs(TASK))
    outcome = run(build_plan(TASK, str(path), "tiny"), store, tiny_runs["root"] / "runs")
    assert outcome.status == "failed"
    assert "zero trainable parameters" in outcome.error and "no_such_module" in outcome.error
    runs = store.runs(TASK)
    assert len(runs) == before + 1
    failed = next(r for r in runs if r["run_id"] == outcome.run_id)
    assert failed["status"] == "failed" and "no_such_module" in failed["error"]
    assert "xattn_nothing" not in {r["method"] for r in latest_runs(store, TASK)}
    assert store.aggregates(outcome.run_id) == [] and store.samples(outcome.run_id) == []
    assert (outcome.run_dir / "error.log").read_text().startswith("Traceback")


def test_registered_task_file_is_what_runs() -> None:
    plan = build_plan(TASK, "xattn_ft", "tiny")
    assert plan.task.data.templates == yaml.safe_load((PROJECT_ROOT / "tasks" / f"{TASK}.yaml").read_text())[
        "data"]["templates"]
