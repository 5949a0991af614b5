"""Every (task, method) pair of PROTOCOLS.md sections 2, 3 and 5 on tiny, end to end into DuckDB,
and the face-study sweep's 11 runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.commands.sweep import run_sweep
from harness.errors import BenchError
from harness.plan import FACE_STUDY, build_plan
from harness.runner import run
from harness.store import Store

PAIRS = [
    *[("deepfashion", m) for m in ("frozen", "lora_unet_r1", "lora_unet_r2", "lora_unet_r4", "lora_unet_r8",
                                   "lora_unet_r64", "lora_te_r8", "lora_unet_r1_te_r4")],
    # evaluation-only: scores the deepfashion adapters above (UNet-only and UNet + text encoders)
    *[("coco_generalization", m) for m in ("frozen", "lora_unet_r1", "lora_unet_r1_te_r4")],
    ("garment", "frozen"),
    ("garment", "garment_lora"),
    ("face_identity", "frozen"),
    ("face_identity", "flux_lora"),
]


@pytest.fixture(scope="module")
def protocol_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("protocol_runs")
    store = Store(root / "bench.duckdb")
    outcomes = {pair: run(build_plan(*pair, "tiny"), store, root / "runs") for pair in PAIRS}
    return {"store": store, "root": root, "outcomes": outcomes}


def test_every_pair_completes_into_duckdb(protocol_runs: dict) -> None:
    store: Store = protocol_runs["store"]
    failed = {pair: o.error for pair, o in protocol_runs["outcomes"].items() if o.status != "completed"}
    assert failed == {}
    rows = {(r["task"], r["method"]): r for r in store.runs()}
    assert set(rows) == set(PAIRS)
    assert {r["status"] for r in rows.values()} == {"completed"}
    expected_samples = {"deepfashion": 4, "coco_generalization": 4, "garment": 4, "face_identity": 11}
    for (task, method), row in rows.items():
        samples = store.samples(row["run_id"])
        assert len(samples) == expected_samples[task], (task, method)
        clip = [a for a in store.aggregates(row["run_id"], group="__all__") if a["metric"] == "clip_score"]
        assert len(clip) == 1 and clip[0]["n"] == expected_samples[task]
        trains = method != "frozen" and task != "coco_generalization"
        assert (row["steps"] > 0) == trains, (task, method)


def test_trainable_counts_and_adapters(protocol_runs: dict) -> None:
    rows = {(r["task"], r["method"]): r for r in protocol_runs["store"].runs()}
    r1, r2 = rows[("deepfashion", "lora_unet_r1")], rows[("deepfashion", "lora_unet_r2")]
    assert r2["trainable_params"] == 2 * r1["trainable_params"] > 0
    assert rows[("deepfashion", "lora_unet_r64")]["trainable_params"] == 64 * r1["trainable_params"]
    assert rows[("deepfashion", "frozen")]["trainable_params"] == 0
    for pair in [("deepfashion", "lora_unet_r1"), ("face_identity", "flux_lora"), ("garment", "garment_lora")]:
        adapter = Path(rows[pair]["adapter_file"])
        assert adapter.name == "pytorch_lora_weights.safetensors" and adapter.stat().st_size == rows[pair][
            "adapter_bytes"]


def test_coco_scores_the_deepfashion_adapter(protocol_runs: dict) -> None:
    rows = {(r["task"], r["method"]): r for r in protocol_runs["store"].runs()}
    for method in ("lora_unet_r1", "lora_unet_r1_te_r4"):
        coco, source = rows[("coco_generalization", method)], rows[("deepfashion", method)]
        assert coco["adapter_file"] == source["adapter_file"]
        assert source["run_id"] in coco["stopped_by"]
    assert rows[("coco_generalization", "frozen")]["adapter_file"] is None


def test_coco_without_deepfashion_run_names_the_command(tmp_path: Path) -> None:
    store = Store(tmp_path / "bench.duckdb")
    with pytest.raises(BenchError) as info:
        run(build_plan("coco_generalization", "lora_unet_r8", "tiny"), store, tmp_path / "runs")
    message = str(info.value)
    assert "\n" not in message
    assert "bench run --task deepfashion --method lora_unet_r8 --profile tiny --seed 0" in message
    assert store.runs() == []  # nothing stored for a run that could not start


def test_negative_prompt_only_for_the_frozen_base(protocol_runs: dict) -> None:
    from harness.sampling import uses_negative_prompt

    assert uses_negative_prompt(build_plan("deepfashion", "frozen", "tiny"))
    assert not uses_negative_prompt(build_plan("deepfashion", "lora_unet_r1", "tiny"))
    assert not uses_negative_prompt(build_plan("face_identity", "flux_lora", "tiny"))


def test_face_study_sweep_gives_eleven_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / "bench.duckdb")
    cells = run_sweep("face_identity", "flux_lora", {}, "face-study", "tiny", 0, store, tmp_path / "runs")
    assert [c.status for c in cells] == ["completed"] * 11
    rows = {r["run_id"]: r for r in store.runs()}
    assert len(rows) == 11 and len({r["plan_hash"] for r in rows.values()}) == 11
    for cell, wanted in zip(cells, FACE_STUDY, strict=True):
        plan = rows[cell.run_id]["plan"]
        assert plan["overrides"] == wanted
        assert plan["method"]["params"]["rank"] == wanted["rank"]
        assert plan["training"]["learning_rate"] == wanted["lr"]
        assert plan["training"]["max_steps"] == wanted["steps"]
        assert plan["training"]["lr_schedule"] == wanted["schedule"]
        assert rows[cell.run_id]["trainable_params"] == wanted["rank"] * rows[cells[0].run_id][
            "trainable_params"] // FACE_STUDY[0]["rank"]


def test_coco_rescores_when_deepfashion_is_trained_again(tmp_path: Path) -> None:
    store, runs = Store(tmp_path / "bench.duckdb"), tmp_path / "runs"
    run(build_plan("deepfashion", "lora_te_r8", "tiny"), store, runs)
    coco = build_plan("coco_generalization", "lora_te_r8", "tiny")
    first = run(coco, store, runs)
    assert first.status == "completed" and run(coco, store, runs).status == "skipped"
    retrained = run(build_plan("deepfashion", "lora_te_r8", "tiny"), store, runs, force=True)
    again = run(coco, store, runs)
    assert again.status == "completed" and again.run_id != first.run_id
    assert store.run_row(again.run_id)["adapter_file"] == store.run_row(retrained.run_id)["adapter_file"]
