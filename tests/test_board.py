"""Reported figures as data, leaderboard rules and comparison statistics (no runs needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.analysis.compare import bootstrap_ci, sweep_parameters
from harness.analysis.leaderboard import MetricColumn, leaderboard_rows
from harness.analysis.reported import COLUMNS, load_reported, read_file
from harness.specs import SpecError

HEADER = ",".join(COLUMNS) + "\n"


def test_reported_files_hold_the_published_figures() -> None:
    figures = {(f.task, f.method, f.metric, f.prompt_set, f.group): f for f in load_reported()}
    assert {f.source for f in figures.values()} == {"reported"}
    assert {key[0] for key in figures} == {"cifar_alignment", "deepfashion", "coco_generalization",
                                           "dreambooth_subjects", "face_identity"}
    assert figures[("cifar_alignment", "frozen", "clip_score", "A", "__all__")].value == 0.2452
    assert figures[("cifar_alignment", "xattn_ft", "clip_score", "B", "bar_chart")].value == 0.2372
    lora64 = figures[("deepfashion", "lora_unet_r64", "clip_score", "test", "__all__")]
    assert (lora64.value, lora64.scale) == (23.29, "x100")
    assert figures[("dreambooth_subjects", "ti_then_ft", "dino", "simple", "__all__")].value == 0.718
    face = load_reported("face_identity")
    assert {(f.method, f.prompt_set) for f in face} == {("flux_lora", "identity")}
    assert {f.metric for f in face} == {"clip_score_all_pairs", "face_distance"}  # the study's CLIP is all-pairs
    assert len(face) == 8 and {tuple(sorted(f.overrides.items())) for f in face} >= {
        (("lr", 5e-4), ("rank", 16), ("schedule", "cosine"), ("steps", 1000))}


def test_bad_reported_row_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "cifar_alignment.csv"
    path.write_text(HEADER + "cifar_alignment,frozen,,clip_score,A,cat,0.2,raw,ok\n"
                    "cifar_alignment,frozen,,clip_score,A,dog,high,raw,bad\n")
    with pytest.raises(SpecError, match=rf"^{path}:3: field 'value'"):
        read_file(path)
    path.write_text(HEADER + "cifar_alignment,x,lr=fast,clip_score,A,cat,0.2,raw,bad\n")
    with pytest.raises(SpecError, match=rf"^{path}:2: field 'overrides'.*values of 'lr' must be floats"):
        read_file(path)
    path.write_text(HEADER + "deepfashion,frozen,,fid,test,__all__,1.0,raw,wrong file\n")
    with pytest.raises(SpecError, match="every row must be 'cifar_alignment'"):
        load_reported(folder=tmp_path)
    path.write_text("task,method,value\n")
    with pytest.raises(SpecError, match="header must be"):
        read_file(path)


def _run(method: str, profile: str, value: float, samples: int) -> dict:
    card = {"higher_is_better": True}
    return {"run_id": method, "method": method, "method_kind": method, "profile": profile, "samples_seen": samples,
            "train_seconds": 60.0 if samples else 0.0, "trainable_params": 10, "base_params": 1000,
            "metrics": [{"metric": "clip_score", "prompt_set": "A", "grp": "__all__", "value": value, "n": 50,
                         "ci_low": value - 0.01, "ci_high": value + 0.01, "card": card, "checkpoint": None}]}


def test_leaderboard_refuses_to_rank_profiles_together() -> None:
    column = MetricColumn("clip_score", "A", True)
    with pytest.raises(ValueError, match="refusing to rank profiles together"):
        leaderboard_rows([_run("frozen", "tiny", 0.2, 0), _run("x", "full", 0.3, 100)], column)


def test_gain_per_budget_is_relative_to_frozen() -> None:
    rows = leaderboard_rows([_run("frozen", "full", 0.20, 0), _run("x", "full", 0.26, 2000)],
                            MetricColumn("clip_score", "A", True))
    assert [r["method"] for r in rows] == ["x", "frozen"]
    assert rows[0]["clip_score [A] ↑"] == "0.2600 [0.2500, 0.2700] N=50"
    assert rows[0]["gain over frozen"] == "+0.0600" and rows[0]["gain per 1k samples"] == "+0.0300"
    assert rows[0]["gain per train-minute"] == "+0.0600" and rows[1]["gain over frozen"] == "reference"


def test_bootstrap_ci_needs_two_samples_and_covers_the_difference() -> None:
    assert bootstrap_ci([0.5], [0.4], paired=True) == (None, None)
    low, high = bootstrap_ci([0.5, 0.6, 0.55, 0.52], [0.4, 0.45, 0.41, 0.43], paired=True)
    assert low is not None and 0 < low <= 0.11 <= high


def test_sweep_parameters_read_overrides_over_resolved_fields() -> None:
    run = {"steps": 2, "plan": {"training": {"learning_rate": 1e-4, "max_steps": 1000, "lr_schedule": "cosine"},
                                "method": {"params": {"rank": 8}},
                                "overrides": {"lr": 5e-4, "steps": 1500, "schedule": "constant"}}}
    assert sweep_parameters(run) == {"lr": 5e-4, "rank": 8, "steps": 1500, "schedule": "constant", "steps run": 2}


def test_checkpoint_curves_keep_methods_scored_at_two_or_more_checkpoints() -> None:
    from harness.analysis.compare import checkpoint_curves

    def row(run: str, checkpoint: int | None, value: float) -> dict:
        return {"run_id": run, "metric": "clip_i", "prompt_set": "simple", "grp": "__all__", "value": value,
                "n": 64, "checkpoint": checkpoint}

    rows = [row("r1", 200, 0.80), row("r1", 400, 0.84), row("r1", None, 0.84), row("r2", 200, 0.70)]
    curves = checkpoint_curves(rows, {"r1": "ti_then_ft", "r2": "dreambooth"})
    assert [(c["method"], c["checkpoint"], c["value"]) for c in curves] == [("ti_then_ft", 200, 0.80),
                                                                            ("ti_then_ft", 400, 0.84)]
