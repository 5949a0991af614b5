"""One leaderboard for the CLI and the dashboard: headline rows, ranking by the declared direction,
borrowed budgets of evaluation-only tasks. Runs are written through ``Store`` directly (no models)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from harness.analysis.leaderboard import (
    MetricColumn,
    board_runs,
    headline,
    latest_runs,
    leaderboard_rows,
    metric_columns,
    ranked,
)
from harness.report import print_leaderboard
from harness.store import Store

FID = "fid [test] ↓"


def _run(store: Store, run_id: str, task: str, method: str, fid: float | None, fields: dict,
         checkpoints: tuple[int, ...] = ()) -> None:
    store.start_run({"run_id": run_id, "plan_hash": run_id, "task": task, "task_version": 1, "method": method,
                     "method_version": 1, "method_kind": method, "profile": "tiny", "seed": 0, "plan": {},
                     "run_dir": f"/runs/{run_id}"})
    card = {"backbone": "b", "weights": "w", "flags": []}  # no direction in the card: the declaration says it

    def row(metric: str, value: float | None, checkpoint: int | None = None, extra: dict | None = None) -> dict:
        return {"metric": metric, "prompt_set": "test", "grp": "__all__", "value": value, "n": 20, "ci_low": None,
                "ci_high": None, "card": {**card, **(extra or {})}, "checkpoint": checkpoint, "std": None}

    rows = [row("near_black_count", 1.0)]
    for step in checkpoints:
        rows.append(row("fid", fid + step, step))
    if fid is not None:
        rows.append(row("fid", fid, None, {"headline_checkpoint": checkpoints[-1]} if checkpoints else None))
    base = {"steps": 0, "samples_seen": 0, "train_seconds": 0.0, "stopped_by": "no training", "trainable_params": 0,
            "base_params": 1000, "peak_memory_bytes": 0, "memory_kind": "cpu"}
    store.complete_run(run_id, {**base, **fields}, [], [], rows)


def _db(tmp_path: Path) -> Store:
    store = Store(tmp_path / "bench.duckdb")
    adapter = "/runs/df-lora/pytorch_lora_weights.safetensors"
    _run(store, "df-lora", "deepfashion", "lora_unet_r1", 30.0,
         {"steps": 100, "samples_seen": 800, "train_seconds": 60.0, "trainable_params": 10, "adapter_file": adapter,
          "adapter_bytes": 4096, "stopped_by": "max_steps"})
    _run(store, "coco-frozen", "coco_generalization", "frozen", 50.0, {})
    _run(store, "coco-lora", "coco_generalization", "lora_unet_r1", 40.0,
         {"adapter_file": adapter, "adapter_bytes": 4096, "stopped_by": "no training (adapter of run df-lora)"})
    _run(store, "coco-ckpt", "coco_generalization", "ti_then_ft", 45.0, {}, checkpoints=(2, 4))
    return store


def test_headline_rows_and_ranking_follow_the_declaration(tmp_path: Path) -> None:
    store = _db(tmp_path)
    runs = latest_runs(store, "coco_generalization", "tiny")
    ckpt = next(r for r in runs if r["method"] == "ti_then_ft")
    assert [(m["metric"], m["checkpoint"]) for m in ckpt["metrics"]] == [("fid", None), ("near_black_count", None)]
    assert headline(ckpt["metrics"])[("fid", "test")]["value"] == 45.0
    columns = metric_columns(runs)
    assert [(c.metric, c.higher_is_better, c.is_count) for c in columns] == [("fid", False, False),
                                                                             ("near_black_count", False, True)]
    assert [r["method"] for r in ranked(runs, columns[0])] == ["lora_unet_r1", "ti_then_ft", "frozen"]
    # a run stored without headline rows falls back to its latest checkpoint
    assert headline([{"metric": "fid", "prompt_set": "t", "grp": "__all__", "checkpoint": c, "value": c}
                     for c in (2, 4)])[("fid", "t")]["value"] == 4


def test_cli_and_dashboard_show_the_same_ranking_and_borrowed_budget(tmp_path: Path) -> None:
    store = _db(tmp_path)
    runs = board_runs(store, "coco_generalization", "tiny")
    lora = next(r for r in runs if r["method"] == "lora_unet_r1")
    assert (lora["steps"], lora["samples_seen"], lora["budget_of"]) == (100, 800, "deepfashion run df-lora")
    rows = leaderboard_rows(runs, MetricColumn.of("fid", "test"))
    assert [r["method"] for r in rows] == ["lora_unet_r1", "ti_then_ft", "frozen"]
    assert rows[0]["budget of"] == "deepfashion run df-lora" and rows[0]["samples seen"] == 800
    assert rows[0]["gain over frozen"] == "+10.0000" and rows[0]["gain per 1k samples"] == "+12.5000"
    assert FID in rows[0] and rows[1][FID].startswith("45.0000 no CI N=20 (headline: step 4")
    console = Console(record=True, width=600)
    print_leaderboard(console, store, "coco_generalization", "tiny", wide=True)
    text = console.export_text()
    lines = [line for line in text.splitlines() if "│" in line and "real vs real" not in line]
    assert [line.split("│")[2].strip() for line in lines] == ["lora_unet_r1", "ti_then_ft", "frozen"]
    assert "fid [test] ↓" in text and "budget of" in text
    cells = [c.strip() for c in lines[0].split("│")]
    assert [c.strip() for c in lines[0].split("│")][1] == "=1"  # no interval stored: FID cannot separate them
    assert "deepfashion run df-lora" in cells and "100" in cells and "800" in cells  # the source run's budget
