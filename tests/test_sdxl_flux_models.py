"""SDXL and FLUX families: real-architecture accounting on the meta device, weights-missing
messages, spec wiring, sweep grids, and the fp32 VAE decode."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from harness import models
from harness.accounting import count_task_methods
from harness.cli import app
from harness.errors import WeightsMissingError
from harness.models import flux, sdxl
from harness.plan import FACE_STUDY, build_plan, cells, parse_grid
from harness.specs import SpecError


def _lora_params(module: torch.nn.Module, names: tuple[str, ...], rank: int) -> int:
    """Independent count: rank x (in + out) for every Linear whose name ends with a target."""
    return sum(rank * (m.in_features + m.out_features) for n, m in module.named_modules()
               if isinstance(m, torch.nn.Linear) and n.endswith(names))


def test_sdxl_real_architecture_counts() -> None:
    methods = ["frozen", "lora_unet_r1", "lora_te_r8", "lora_unet_r1_te_r4"]
    accounts = {a.method: a for a in count_task_methods([build_plan("deepfashion", m, "full") for m in methods])}
    meta = models.build_meta("sdxl")
    assert sum(p.numel() for m in meta.values() for p in m.parameters()) == 3_468_837_867
    assert sum(p.numel() for p in meta["unet"].parameters()) == 2_567_463_684
    unet_targets = ("to_q", "to_k", "to_v", "to_out.0")
    text_targets = ("q_proj", "k_proj", "v_proj", "out_proj")
    unet_r1 = _lora_params(meta["unet"], unet_targets, 1)
    text_r1 = sum(_lora_params(meta[r], text_targets, 1) for r in ("text_encoder", "text_encoder_2"))
    assert accounts["lora_unet_r1"].count.trainable == unet_r1 == 1_451_520
    assert accounts["lora_te_r8"].count.trainable == 8 * text_r1
    assert accounts["lora_unet_r1_te_r4"].count.trainable == unet_r1 + 4 * text_r1
    assert accounts["lora_te_r8"].count.component == "text_encoder+text_encoder_2"
    assert accounts["frozen"].count.trainable == 0 and accounts["frozen"].adapter_bytes is None
    assert accounts["lora_unet_r1"].adapter_bytes == 4 * unet_r1


def test_flux_real_architecture_counts() -> None:
    accounts = count_task_methods([build_plan("face_identity", "flux_lora", "full", overrides={"rank": r})
                                   for r in (8, 16)])
    meta = models.build_meta("flux")
    assert sum(p.numel() for p in meta["transformer"].parameters()) == 11_901_408_320
    targets = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")
    assert [a.count.trainable for a in accounts] == [_lora_params(meta["transformer"], targets, r) for r in (8, 16)]
    assert accounts[0].count.component == "transformer"


@pytest.mark.parametrize(("task", "hub_id"), [("deepfashion", "stabilityai/stable-diffusion-xl-base-1.0"),
                                              ("face_identity", "black-forest-labs/FLUX.1-dev")])
def test_full_profile_offline_weights_missing_message(task: str, hub_id: str) -> None:
    with pytest.raises(WeightsMissingError) as info:
        models.load(build_plan(task, "frozen", "full"))
    message = str(info.value)
    assert hub_id in message and "HF_HUB_OFFLINE=1" in message and "--profile tiny" in message
    assert f"hf download {hub_id}" in message and "\n" not in message


def test_cli_run_full_without_weights_is_one_line(tmp_path) -> None:
    """Data is checked before any model loads (seconds, not minutes); with the data in place, the missing
    weights are the one line."""
    import numpy as np
    from PIL import Image

    args = ["run", "--task", "face_identity", "--method", "flux_lora", "--profile", "full",
            "--db", str(tmp_path / "b.duckdb"), "--data-root", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3 and "person photos missing" in result.output and "Traceback" not in result.output
    (tmp_path / "person").mkdir()
    for index in range(4):
        Image.fromarray(np.full((64, 64, 3), 40 * index, dtype=np.uint8)).save(tmp_path / "person" / f"{index}.jpg")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3
    assert "FLUX.1-dev" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b.duckdb").exists()  # nothing stored


def test_sweep_grid_and_designs() -> None:
    grid = parse_grid(["lr=1e-3,5e-4,1e-4", "rank=8,16,32", "steps=500,1000,1500"])
    assert grid == {"lr": [1e-3, 5e-4, 1e-4], "rank": [8, 16, 32], "steps": [500, 1000, 1500]}
    full = cells(grid, "full")
    assert len(full) == 27 and len({tuple(sorted(c.items())) for c in full}) == 27
    study = cells(grid, "face-study")
    assert len(study) == 11 and study == FACE_STUDY
    assert sum(c["schedule"] == "constant" for c in study) == 1
    with pytest.raises(SpecError, match="unknown key 'alpha'"):
        parse_grid(["alpha=1,2"])
    with pytest.raises(SpecError, match="must be ints"):
        parse_grid(["rank=8,big"])
    with pytest.raises(SpecError, match="excludes"):
        cells({"lr": [1e-3]}, "face-study")


def test_overrides_change_plan_and_hash() -> None:
    base = build_plan("face_identity", "flux_lora", "tiny")
    cell = build_plan("face_identity", "flux_lora", "tiny", overrides={"lr": 1e-4, "rank": 32, "steps": 1500})
    assert (cell.training.learning_rate, cell.training.max_steps, cell.method.params["rank"]) == (1e-4, 1500, 32)
    assert (base.method.params["rank"], base.training.learning_rate) == (16, 5e-4)
    assert cell.plan_hash != base.plan_hash and cell.overrides == {"lr": 1e-4, "rank": 32, "steps": 1500}
    with pytest.raises(SpecError, match="params.rank"):
        build_plan("deepfashion", "frozen", "tiny", overrides={"rank": 8})


def test_protocol_settings_are_in_the_specs() -> None:
    deepfashion = build_plan("deepfashion", "lora_unet_r1", "full")
    assert deepfashion.task.sampling.refine_fraction == 0.2 and deepfashion.task.sampling.guidance_scale == 5
    assert deepfashion.training.lr_schedule == "cosine" and deepfashion.training.max_grad_norm == 1.0
    assert deepfashion.task.data.train_crop == (512, 360) and deepfashion.task.data.max_aspect_ratio == 0.69
    coco = build_plan("coco_generalization", "lora_unet_r1", "full")
    assert coco.task.adapter_from_task == "deepfashion" and not coco.trains
    assert coco.task.data.eval_crop == (480, 640) and coco.task.data.min_aspect_ratio == 1.33
    garment = build_plan("garment", "garment_lora", "full")
    assert (garment.training.learning_rate, garment.training.lr_schedule, garment.training.epochs) == (
        1e-4, "constant", 2000)
    face = build_plan("face_identity", "flux_lora", "full")
    assert face.method.params["alpha_equals_rank"] and face.task.sampling.guidance_scale == 5


def test_sdxl_decode_upcasts_a_half_precision_vae() -> None:
    from harness.models.sdxl import build_tiny, decode_fp32

    bundle = build_tiny()
    pipeline = bundle.build_pipeline("ddim").base
    bundle.vae.to(torch.float16)
    latents = torch.randn(1, 4, 8, 6, dtype=torch.float16) * 60  # large values overflow in fp16
    images = decode_fp32(pipeline, latents)
    assert bundle.vae.dtype == torch.float32 and images[0].size == (12, 16)


@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_load_real_reads_a_local_diffusers_folder(tmp_path, family: str) -> None:
    """The full-profile loader (subfolders, classes) reads a pipeline folder; here one saved from the tiny sibling."""
    tiny = models._family(family).build_tiny()
    pipeline = tiny.build_pipeline("ddim" if family == "sdxl" else "flow_match_euler")
    if family == "sdxl":
        pipeline.base.save_pretrained(tmp_path / "base")
        tiny.refiner_unet.save_pretrained(tmp_path / "refiner" / "unet")
        loaded = sdxl.load_real(str(tmp_path / "base"), None, str(tmp_path / "refiner"), None)
    else:
        pipeline.save_pretrained(tmp_path / "base")
        loaded = flux.load_real(str(tmp_path / "base"), None)
        assert loaded.transformer.dtype == loaded.text_encoder_2.dtype == torch.bfloat16  # FLUX loads in bf16
    for role, module in tiny.modules().items():
        theirs = dict(loaded.modules()[role].named_parameters())
        assert all(torch.equal(p.to(theirs[n].dtype), theirs[n]) for n, p in module.named_parameters()), role
    prompt = "a photo of cr7man"
    assert loaded.tokenizer(prompt).input_ids == tiny.tokenizer(prompt).input_ids
    assert loaded.tokenizer_2(prompt).input_ids == tiny.tokenizer_2(prompt).input_ids


def test_lora_params_typo_is_an_error() -> None:
    from harness.methods.lora import LoraMethod
    from harness.specs import MethodSpec

    spec = MethodSpec(name="bad", version=1, kind="lora", params={"component": "unet", "rnk": 8})
    with pytest.raises(SpecError, match="unknown key 'rnk'"):
        LoraMethod(spec).adapters  # noqa: B018


def test_flux_training_timesteps_are_the_reference_scripts() -> None:
    """Same generator -> the same (timesteps, sigmas) as diffusers' train_dreambooth_lora_flux.py computes them
    with FLUX.1-dev's scheduler config (use_dynamic_shifting: the training schedule is not shifted)."""
    import copy

    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.training_utils import compute_density_for_timestep_sampling

    from harness.models.flux import SCHEDULER_CONFIG, FluxBundle

    scheduler = FlowMatchEulerDiscreteScheduler.from_config(SCHEDULER_CONFIG)
    bundle = FluxBundle(family="flux", unet=None, vae=None, text_encoder=None, tokenizer=None,
                        noise_scheduler=scheduler, weights_identity="test")
    noise_scheduler_copy = copy.deepcopy(scheduler)  # the script's copy
    for bsz, seed in ((1, 0), (4, 1), (16, 2)):
        # --- the reference script, weighting_scheme "none" (its default) ---
        u = compute_density_for_timestep_sampling(weighting_scheme="none", batch_size=bsz, logit_mean=0.0,
                                                  logit_std=1.0, mode_scale=1.29,
                                                  generator=torch.Generator().manual_seed(seed))
        indices = (u * noise_scheduler_copy.config.num_train_timesteps).long()
        timesteps = noise_scheduler_copy.timesteps[indices]
        schedule_timesteps = noise_scheduler_copy.timesteps
        step_indices = [(schedule_timesteps == t).nonzero().item() for t in timesteps]
        sigmas = noise_scheduler_copy.sigmas[step_indices].flatten()
        # --- the harness ---
        ours_t, ours_s = bundle.training_timesteps(bsz, torch.Generator().manual_seed(seed))
        assert torch.equal(ours_t, timesteps) and torch.equal(ours_s, sigmas)
    assert torch.allclose(ours_s, ours_t / 1000)  # dynamic shifting: no shift=3 at training time
    uniform = torch.rand(16, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(ours_s, 3 * uniform / (1 + 2 * uniform), atol=1e-2)  # the old, always-shifted draw


def test_flux_text_encoder_lora_trains(tmp_path) -> None:
    """A CLIP text-encoder LoRA on FLUX receives gradients and changes (it used to fail: 'element 0 of tensors
    does not require grad')."""
    import torch

    from harness import data, models
    from harness.methods import method_class
    from harness.plan import build_plan
    from harness.training import train

    spec = tmp_path / "flux_te_lora.yaml"
    spec.write_text("name: flux_te_lora\nversion: 1\nkind: lora\nparams:\n  component: text_encoders\n  rank: 2\n"
                    "  alpha_equals_rank: true\ntraining:\n  max_steps: 2\n")
    plan = build_plan("face_identity", str(spec), "tiny")
    bundle = models.load(plan)
    method = method_class(plan.method.kind)(plan.method)
    modules = bundle.modules()
    method.prepare(modules)
    lora = {n: p.detach().clone() for n, p in modules["text_encoder"].named_parameters() if p.requires_grad}
    assert lora and not any(p.requires_grad for p in modules["transformer"].parameters())
    report = train(plan, bundle, data.training_set(plan), method, modules)
    assert report.steps == 2 and report.unreachable_params == 0
    after = dict(modules["text_encoder"].named_parameters())
    assert any(not torch.equal(lora[n], after[n].detach()) for n in lora)
    assert method.save(modules, tmp_path / "adapter").is_file()


def test_weights_of_sdxl_tasks_include_the_refiner() -> None:
    from harness.registry import get_task
    from harness.weights import needed_keys, task_families

    keys = needed_keys([], ["sdxl"])
    assert any(k.startswith("sdxl_refiner:") for k in keys) and any(k.startswith("sdxl:") for k in keys)
    assert task_families(get_task("deepfashion").model) == ["sdxl", "sdxl_refiner"]
    assert not any(k.startswith("sdxl_refiner:") for k in needed_keys([], ["sd21"]))


def test_unreachable_hub_fails_at_once(monkeypatch) -> None:
    """Not offline by the environment, files not cached, hub unreachable: the missing-weights line comes at once
    (no huggingface_hub retries) and HF_HUB_OFFLINE=1 is implied for the rest of the process."""
    import socket
    import time

    from diffusers import UNet2DConditionModel

    from harness.errors import WeightsMissingError
    from harness.models import common

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(common, "_offline", lambda: False)
    monkeypatch.setattr(common, "_REACHABLE", None)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.perf_counter()
    with pytest.raises(WeightsMissingError, match="hub is unreachable"):
        common.hub_load(UNet2DConditionModel, "nobody/not-a-model", "unet", None, "sd21")
    assert time.perf_counter() - started < 10
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
