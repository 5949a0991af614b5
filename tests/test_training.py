"""Trainer: what each method changes, zero-trainable refusal, the weights-changed check, the budget meter."""

from __future__ import annotations

import pytest
import torch

from harness import data, models
from harness.errors import TrainingError
from harness.methods import method_class
from harness.plan import build_plan
from harness.training import BudgetMeter, train


def _setup(method: str, **training_updates):
    plan = build_plan("cifar_alignment", method, "tiny")
    if training_updates:
        plan = plan.model_copy(update={"training": plan.training.model_copy(update=training_updates)})
    bundle = models.load(plan)
    modules = {"unet": bundle.unet, "vae": bundle.vae, "text_encoder": bundle.text_encoder}
    impl = method_class(plan.method.kind)(plan.method)
    impl.prepare(modules)
    return plan, bundle, modules, impl


def _snapshot(modules: dict) -> dict[str, torch.Tensor]:
    return {f"{role}.{n}": p.detach().clone() for role, m in modules.items() for n, p in m.named_parameters()}


def test_xattn_ft_changes_only_attn2() -> None:
    plan, bundle, modules, impl = _setup("xattn_ft")
    before = _snapshot(modules)
    report = train(plan, bundle, data.training_set(plan), impl, modules)
    after = _snapshot(modules)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("unet.") and ".attn2." in k for k in changed)
    attn2 = {k for k in before if k.startswith("unet.") and ".attn2." in k}
    assert changed == attn2
    assert report.trainable_params == sum(before[k].numel() for k in attn2)
    assert report.steps == 8 and report.stopped_by == "steps" and len(report.losses) == 8


def test_lora_changes_only_lora_weights() -> None:
    plan, bundle, modules, impl = _setup("lora_unet_r1")
    before = _snapshot(modules)
    train(plan, bundle, data.training_set(plan), impl, modules)
    after = _snapshot(modules)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(".lora_" in k for k in changed)
    assert changed == {k for k in before if ".lora_" in k}


def test_weights_that_do_not_change_fail_the_run() -> None:
    plan, bundle, modules, impl = _setup("xattn_ft", learning_rate=0.0, weight_decay=0.0)
    with pytest.raises(TrainingError, match="did not change"):
        train(plan, bundle, data.training_set(plan), impl, modules)


def test_zero_trainable_refusal_names_the_targets() -> None:
    plan, bundle, modules, impl = _setup("frozen")
    with pytest.raises(TrainingError, match="zero trainable parameters"):
        train(plan, bundle, data.training_set(plan), impl, modules)


def test_budget_meter_stops_at_first_limit() -> None:
    meter = BudgetMeter(max_samples=10, max_steps=100, max_seconds=1e9)
    while not meter.exhausted():
        meter.steps += 1
        meter.samples += 4
    assert (meter.steps, meter.samples, meter.stopped_by) == (3, 12, "samples")
    timed = BudgetMeter(max_samples=10, max_steps=100, max_seconds=0.0)
    assert timed.exhausted() and timed.stopped_by == "seconds"


def test_sample_budget_stops_training() -> None:
    plan, bundle, modules, impl = _setup("xattn_ft")
    plan = plan.model_copy(update={"task": plan.task.model_copy(
        update={"budget": plan.task.budget.model_copy(update={"max_samples": 8})})})
    report = train(plan, bundle, data.training_set(plan), impl, modules)
    assert (report.steps, report.samples_seen, report.stopped_by) == (2, 8, "samples")


def test_budget_meter_pauses_and_charges() -> None:
    import time

    meter = BudgetMeter(max_samples=10, max_steps=100, max_seconds=1e9)
    with meter.paused():
        time.sleep(0.2)
    assert meter.seconds < 0.1  # sampling inside paused() is not training time
    meter.charge(5.0)
    assert 5.0 <= meter.seconds < 5.1


def test_non_finite_loss_stops_training_as_diverged(monkeypatch) -> None:
    plan, bundle, modules, impl = _setup("xattn_ft")
    real_loss = type(bundle).training_loss
    calls = []

    def loss_going_nan(self, *args, **kwargs):
        calls.append(1)
        loss = real_loss(self, *args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(type(bundle), "training_loss", loss_going_nan)
    with pytest.raises(TrainingError, match=r"diverged at step 3 \(loss nan\)"):
        train(plan, bundle, data.training_set(plan), impl, modules)


def test_diverged_run_is_stored_failed_never_completed(tmp_path, monkeypatch) -> None:
    from harness.models.common import DiffusionBundle
    from harness.runner import run
    from harness.store import Store

    real_loss = DiffusionBundle.training_loss
    monkeypatch.setattr(DiffusionBundle, "training_loss",
                        lambda self, *a, **k: real_loss(self, *a, **k) * float("inf"))
    store = Store(tmp_path / "bench.duckdb")
    outcome = run(build_plan("cifar_alignment", "xattn_ft", "tiny"), store, tmp_path / "runs")
    assert outcome.status == "failed" and "diverged at step 1" in outcome.error
    assert [r["status"] for r in store.runs("cifar_alignment")] == ["failed"]
    assert store.latest_runs("cifar_alignment", "tiny") == []


@pytest.mark.parametrize("bad", [".inf", ".nan", "0", "-1.0e-3", "100"])
def test_learning_rate_must_be_finite_positive_and_sane(tmp_path, bad: str) -> None:
    from harness.specs import SpecError, load_method

    path = tmp_path / "m.yaml"
    path.write_text(f"name: m\nversion: 1\nkind: lora\ntraining:\n  learning_rate: {bad}\n")
    with pytest.raises(SpecError, match="training.learning_rate"):
        load_method(path)


def test_same_plan_after_other_work_gives_identical_adapter_and_samples(tmp_path, monkeypatch) -> None:
    """Every source of randomness derives from the plan's seed: LoRA's initial matrices come from torch's global
    RNG, which the runner seeds before the method attaches, whatever the process did before. The tiny loader
    seeds the RNG itself, so the load is wrapped to leave the RNG in a different state each time, as loading
    real (or microworld) weights from files does."""
    from safetensors.torch import load_file

    from harness.runner import run
    from harness.store import Store

    real_load, draws = models.load, iter([10, 1000])

    def load_then_other_work(plan):
        bundle = real_load(plan)
        torch.randn(next(draws))
        return bundle

    monkeypatch.setattr(models, "load", load_then_other_work)
    plan = build_plan("cifar_alignment", "lora_unet_r1", "tiny")
    first = run(plan, Store(tmp_path / "a.duckdb"), tmp_path / "a")
    second = run(plan, Store(tmp_path / "b.duckdb"), tmp_path / "b")
    assert first.status == second.status == "completed"
    # tensors bit-identical (the file header's metadata order is diffusers' and may differ)
    a, b = (load_file(str(o.run_dir / "pytorch_lora_weights.safetensors")) for o in (first, second))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pngs = sorted((first.run_dir / "samples").glob("*.png"))
    assert pngs and all(p.read_bytes() == (second.run_dir / "samples" / p.name).read_bytes() for p in pngs)
