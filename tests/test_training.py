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
