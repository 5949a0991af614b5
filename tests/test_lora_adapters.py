"""LoRA on SDXL / FLUX: only ``lora_`` weights change; saved adapters keep alpha and reload to
byte-identical samples."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
import torch

from harness import data, models
from harness.methods.lora import LoraMethod
from harness.models.sdxl import TINY_TEXT_CONFIG
from harness.plan import build_plan
from harness.sampling import sample_generator
from harness.training import train

PROMPTS = ["The person is wearing a red T-shirt with stripe patterns.", "a blue ball on grass"]


def _snapshot(modules: dict) -> dict[str, torch.Tensor]:
    return {f"{role}.{name}": p.detach().clone() for role, m in modules.items() for name, p in m.named_parameters()}


def test_lora_changes_only_lora_weights_of_unet_and_both_text_encoders() -> None:
    plan = build_plan("deepfashion", "lora_unet_r1_te_r4", "tiny")
    bundle = models.load(plan)
    modules = bundle.modules()
    method = LoraMethod(plan.method)
    method.prepare(modules)
    before = _snapshot(modules)
    report = train(plan, bundle, data.training_set(plan), method, modules)
    after = _snapshot(modules)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(".lora_" in name for name in changed)
    assert {name.split(".")[0] for name in changed} == {"unet", "text_encoder", "text_encoder_2"}
    assert not any(name.startswith("vae.") for name in changed)
    # every LoRA tensor changed except those the loss cannot reach (last layer of text encoder 1,
    # whose penultimate hidden states SDXL uses), which the report counts
    lora = {name for name in before if ".lora_" in name}
    unreached = lora - changed
    assert len(unreached) == report.unreachable_tensors == 8
    last_layer = f".layers.{TINY_TEXT_CONFIG['num_hidden_layers'] - 1}."
    assert all(name.startswith("text_encoder.") and last_layer in name for name in unreached)


def _randomise_lora(modules: dict) -> None:
    """Make the adapter non-trivial (lora_B starts at zero) so that a wrong alpha would show."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in modules.values():
            for name, param in module.named_parameters():
                if ".lora_" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def _png_bytes(bundle, plan) -> list[bytes]:
    pipeline = bundle.build_pipeline(plan.task.sampling.scheduler)
    generators = [sample_generator(0, f"p{i}", 0) for i in range(len(PROMPTS))]
    with torch.no_grad():
        images = bundle.generate_images(pipeline, PROMPTS, None, generators, plan.task.sampling)
    out = []
    for image in images:
        buffer = BytesIO()
        image.save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


@pytest.mark.parametrize(("task", "method", "overrides", "alphas"), [
    ("deepfashion", "lora_unet_r1_te_r4", {}, {"unet": (1, 1), "text_encoder": (4, 1), "text_encoder_2": (4, 1)}),
    ("deepfashion", "lora_unet_r8", {}, {"unet": (8, 1)}),
    ("face_identity", "flux_lora", {"rank": 4}, {"transformer": (4, 4)}),
])
def test_saved_adapter_keeps_alpha_and_reloads_byte_identical(tmp_path: Path, task: str, method: str,
                                                              overrides: dict, alphas: dict) -> None:
    plan = build_plan(task, method, "tiny", overrides=overrides)
    base_images = _png_bytes(models.load(plan), plan)
    trained = models.load(plan)
    lora = LoraMethod(plan.method)
    lora.prepare(trained.modules())
    _randomise_lora(trained.modules())
    in_memory = _png_bytes(trained, plan)
    adapter = lora.save(trained.modules(), tmp_path)
    assert adapter is not None and adapter.is_file()

    reloaded = models.load(plan)
    reloaded.load_lora(tmp_path)
    modules = reloaded.modules()
    for role, (rank, alpha) in alphas.items():
        config = next(iter(modules[role].peft_config.values()))
        assert (config.r, config.lora_alpha) == (rank, alpha), role
    assert _png_bytes(reloaded, plan) == in_memory
    assert in_memory != base_images  # the adapter matters, so equality above is not vacuous
