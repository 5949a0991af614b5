"""Every method kind learns on its microworld task: the gain over frozen on the task's headline metric, paired on
prompts and seeds, has a bootstrap CI (over prompts) above 0. The same check on a run whose trained weights are
not applied at sampling (a control) finds no gain, so the check can fail.

Each cell is a real run of the real runner on the shipped microworld (20-35 s on 2 CPU cores); the runs share
one database per session (``micro_runs``, tests/micro_db.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.analysis.compare import paired_gains
from harness.plan import build_plan
from harness.runner import run
from harness.store import Store

# task -> (headline metric, prompt set), and the method kinds trained on it
HEADLINE = {"micro_alignment": ("clip_score", "A"), "micro_domain": ("clip_score", "domain"),
            "micro_subjects": ("clip_i", "simple"), "micro_identity": ("face_distance", "identity")}
# one cell per method kind (LoRA also on the domain and identity tasks, whose headline metrics differ)
CELLS = [("micro_alignment", "xattn_ft"), ("micro_alignment", "lora_unet_r4"),
         ("micro_domain", "lora_unet_r4"), ("micro_identity", "lora_unet_r4"),
         ("micro_subjects", "textual_inversion"), ("micro_subjects", "dreambooth"),
         ("micro_subjects", "dreambooth_lora"), ("micro_subjects", "ti_then_ft")]


def _gain(micro_runs, task: str, run_id: str) -> dict:
    metric, prompt_set = HEADLINE[task]
    frozen = micro_runs.run(task, "frozen")
    [gain] = [g for g in paired_gains(micro_runs.store, run_id, frozen)
              if g["metric"] == metric and g["prompt_set"] == prompt_set]
    return gain


def learned(gain: dict) -> bool:
    """The method beat frozen: the paired gain's 95% CI lies above 0."""
    return gain["ci_low"] is not None and gain["ci_low"] > 0


@pytest.mark.parametrize(("task", "method"), CELLS, ids=[f"{t}-{m}" for t, m in CELLS])
def test_method_learns_on_its_micro_task(micro_runs, task: str, method: str) -> None:
    gain = _gain(micro_runs, task, micro_runs.run(task, method))
    assert gain["n_prompts"] >= 3
    assert learned(gain), gain


def test_the_check_fails_when_trained_weights_are_not_applied(micro_runs, monkeypatch) -> None:
    """Control: LoRA trains as usual, but its adapter is disabled before sampling. The samples are then the
    frozen base's (same seeds), the paired gain is 0 and ``learned`` says no. (Its own database: the control
    has the plan of the real cell; the frozen reference is ingested from its run folder.)"""
    from harness import runner

    real_sample = runner.Execution._sample

    def sample_without_adapter(self, prompts, checkpoint, tick):
        self.bundle.unet.disable_adapters()
        return real_sample(self, prompts, checkpoint, tick)

    frozen_id = micro_runs.run("micro_alignment", "frozen")
    store = Store(micro_runs.root / "control.duckdb")
    store.ingest(Path(micro_runs.store.run_row(frozen_id)["run_dir"]))
    monkeypatch.setattr(runner.Execution, "_sample", sample_without_adapter)
    outcome = run(build_plan("micro_alignment", "lora_unet_r4"), store, micro_runs.root / "control_runs")
    monkeypatch.undo()
    assert outcome.status == "completed" and store.run_row(outcome.run_id)["steps"] > 0
    [gain] = [g for g in paired_gains(store, outcome.run_id, frozen_id)
              if (g["metric"], g["prompt_set"]) == HEADLINE["micro_alignment"]]
    assert abs(gain["gain"]) < 1e-6 and not learned(gain)


def test_rank_and_placement_runs_write_their_adapters(micro_runs) -> None:
    run_id = micro_runs.run("micro_domain", "lora_unet_r4")
    row = micro_runs.store.run_row(run_id)
    assert Path(row["adapter_file"]).is_file() and row["trainable_params"] > 0
    metrics = {(r["metric"], r["prompt_set"]) for r in micro_runs.store.aggregates(run_id, group="__all__")}
    assert {("fid", "domain"), ("kid", "domain"), ("clip_score", "domain")} <= metrics
