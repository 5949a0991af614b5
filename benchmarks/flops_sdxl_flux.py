"""Forward FLOPs of the real SDXL UNet / refiner and FLUX transformer at the protocols' sizes, counted
on the meta device (no weights, no GPU) with torch's FlopCounterMode. The GPU time estimates in
docs/tasks-sdxl-flux.md are derived from these counts.

Usage: .venv/bin/python benchmarks/flops_sdxl_flux.py
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def _count(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def sdxl_unet(unet_config: dict, height: int, width: int, batch: int, time_ids: int, text_dim: int) -> float:
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(unet_config)
    meta = {"device": "meta"}
    latents = torch.empty(batch, 4, height // 8, width // 8, **meta)
    hidden = torch.empty(batch, 77, unet_config["cross_attention_dim"], **meta)
    conditions = {"text_embeds": torch.empty(batch, text_dim, **meta), "time_ids": torch.empty(batch, time_ids, **meta)}
    return _count(lambda: unet(latents, torch.zeros(batch, **meta), hidden, added_cond_kwargs=conditions))


def vae(config: dict, height: int, width: int) -> tuple[float, float]:
    """(encoder, decoder) FLOPs of one image."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL

    with init_empty_weights():
        model = AutoencoderKL.from_config(config)
    meta = {"device": "meta"}
    pixels = torch.empty(1, 3, height, width, **meta)
    latents = torch.empty(1, config["latent_channels"], height // 8, width // 8, **meta)
    return _count(lambda: model.encode(pixels)), _count(lambda: model.decode(latents))


def flux_transformer(height: int, width: int, batch: int, text_tokens: int = 512) -> float:
    from accelerate import init_empty_weights
    from diffusers import FluxTransformer2DModel

    from harness.models.flux import REAL_TRANSFORMER_CONFIG

    with init_empty_weights():
        model = FluxTransformer2DModel.from_config(REAL_TRANSFORMER_CONFIG)
    meta = {"device": "meta"}
    tokens = (height // 16) * (width // 16)
    return _count(lambda: model(
        hidden_states=torch.empty(batch, tokens, 64, **meta), timestep=torch.empty(batch, **meta),
        guidance=torch.empty(batch, **meta), pooled_projections=torch.empty(batch, 768, **meta),
        encoder_hidden_states=torch.empty(batch, text_tokens, 4096, **meta),
        txt_ids=torch.zeros(text_tokens, 3, **meta), img_ids=torch.zeros(tokens, 3, **meta)))


def main() -> None:
    from harness.models.flux import REAL_VAE_CONFIG as FLUX_VAE
    from harness.models.sdxl import REAL_REFINER_UNET_CONFIG, REAL_UNET_CONFIG
    from harness.models.sdxl import REAL_VAE_CONFIG as SDXL_VAE

    torch.set_num_threads(1)

    rows = [
        ("SDXL UNet, 512x360, batch 1 (deepfashion)", sdxl_unet(REAL_UNET_CONFIG, 512, 360, 1, 6, 1280)),
        ("SDXL UNet, 480x640, batch 1 (coco_generalization)", sdxl_unet(REAL_UNET_CONFIG, 480, 640, 1, 6, 1280)),
        ("SDXL UNet, 1024x720, batch 1 (garment)", sdxl_unet(REAL_UNET_CONFIG, 1024, 720, 1, 6, 1280)),
        ("SDXL refiner UNet, 512x360, batch 1", sdxl_unet(REAL_REFINER_UNET_CONFIG, 512, 360, 1, 5, 1280)),
        ("FLUX.1-dev transformer, 1024x1024, batch 1 (face_identity)", flux_transformer(1024, 1024, 1)),
    ]
    for name, config, (h, w) in (("SDXL VAE", SDXL_VAE, (512, 360)), ("FLUX VAE", FLUX_VAE, (1024, 1024))):
        encode, decode = vae(config, h, w)
        rows += [(f"{name} encoder, {h}x{w}", encode), (f"{name} decoder, {h}x{w}", decode)]
    for name, flops in rows:
        print(f"{name}: {flops / 1e12:.2f} TFLOPs per forward")


if __name__ == "__main__":
    main()
