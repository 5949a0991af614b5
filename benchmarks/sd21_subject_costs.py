"""Per-step time and peak GPU memory of the dreambooth_subjects recipes on the REAL SD 2.1-base
architecture with random weights (no download needed), to turn into run-time estimates.

    .venv/bin/python benchmarks/sd21_subject_costs.py --steps 20

Measures, at 512x512 and bf16 autocast: one DreamBooth step (full UNet, AdamW, instance + class image),
one textual-inversion step (one embedding row, gradients through the frozen UNet), one LoRA step,
and DDIM sampling time per image (50 steps, guidance 7.5, batch 16). Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import time

import torch


def _modules():
    from harness.models import sd21
    from harness.models.sd15 import _build_from_configs

    unet, vae, text_encoder = _build_from_configs(sd21.REAL_UNET_CONFIG, sd21.REAL_VAE_CONFIG,
                                                  sd21.REAL_TEXT_CONFIG)
    return unet.cuda(), vae.cuda(), text_encoder.cuda()


def _train_step_seconds(unet, text_encoder, batch: int, params: list, steps: int, text_grad: bool) -> float:
    optimizer = torch.optim.AdamW(params, lr=1e-6)
    latents = torch.randn(batch, 4, 64, 64, device="cuda")
    ids = torch.randint(0, 49408, (batch, 77), device="cuda")
    timesteps = torch.randint(0, 1000, (batch,), device="cuda")
    for i in range(steps + 3):
        if i == 3:
            torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            with torch.set_grad_enabled(text_grad):
                hidden = text_encoder(ids)[0]
            loss = torch.nn.functional.mse_loss(unet(latents, timesteps, hidden).sample.float(), latents)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sample-batches", type=int, default=2)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    from diffusers import DDPMScheduler

    from harness.models import sd21
    from harness.models.common import DiffusionBundle
    from harness.models.tokenizer import build_clip_tokenizer

    unet, vae, text_encoder = _modules()
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
    results = {}
    unet.requires_grad_(True)
    torch.cuda.reset_peak_memory_stats()
    results["dreambooth step (batch 1+1)"] = _train_step_seconds(unet, text_encoder, 2, list(unet.parameters()),
                                                                 args.steps, False)
    results["dreambooth peak GiB"] = torch.cuda.max_memory_allocated() / 2**30
    unet.requires_grad_(False)
    embedding = text_encoder.get_input_embeddings().weight
    embedding.requires_grad_(True)
    torch.cuda.reset_peak_memory_stats()
    results["textual inversion step (batch 1)"] = _train_step_seconds(unet, text_encoder, 1, [embedding],
                                                                      args.steps, True)
    results["textual inversion peak GiB"] = torch.cuda.max_memory_allocated() / 2**30
    embedding.requires_grad_(False)
    tokenizer = build_clip_tokenizer()
    tokenizer.pad_token = sd21.PAD_TOKEN
    bundle = DiffusionBundle(sd21.FAMILY, unet, vae, text_encoder, tokenizer,
                             DDPMScheduler.from_config(sd21.SCHEDULER_CONFIG), "random-init real sd21")
    pipeline = bundle.build_pipeline("ddim")
    prompts = ["a photo of sks dog"] * 16
    with torch.no_grad(), torch.autocast("cuda"):
        pipeline(prompts[:2], num_inference_steps=2, height=512, width=512)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(args.sample_batches):
            pipeline(prompts, num_inference_steps=50, guidance_scale=7.5, height=512, width=512)
        torch.cuda.synchronize()
    results["sampling s/image (50 DDIM steps, CFG, batch 16)"] = (time.perf_counter() - started) / (
        16 * args.sample_batches)
    print(torch.cuda.get_device_name())
    for name, value in results.items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    main()
