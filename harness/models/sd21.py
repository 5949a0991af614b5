"""Stable Diffusion 2.1-base: real loading by hub id / local path, a tiny sibling from config, and
the real architecture on the meta device for parameter accounting.

SD 2.1-base is SD-1.5-shaped (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer) with
an OpenCLIP ViT-H/14 text tower (stored by diffusers as a ``CLIPTextModel``: 1024 wide, 23 layers,
gelu), linear-projection transformer blocks, per-block head counts, and epsilon prediction at 512 px
(the 768-px ``stable-diffusion-2-1`` is the v-prediction one). Its tokenizer pads with ``!`` (id 0).
"""

from __future__ import annotations

from typing import Any

from harness.models.common import DiffusionBundle, hub_load
from harness.models.sd15 import REAL_VAE_CONFIG as SD15_VAE_CONFIG
from harness.models.sd15 import _build_from_configs

FAMILY = "sd21"
PAD_TOKEN = "!"

# scheduler/scheduler_config.json of stabilityai/stable-diffusion-2-1-base (a PNDM config; same betas).
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

# unet/config.json of stabilityai/stable-diffusion-2-1-base.
REAL_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
    "upcast_attention": False,
    "norm_num_groups": 32,
}
# vae/config.json: the SD 1.x autoencoder (same layout and scaling factor), sample size 768.
REAL_VAE_CONFIG: dict[str, Any] = SD15_VAE_CONFIG | {"sample_size": 768}
# text_encoder/config.json: the OpenCLIP ViT-H/14 text tower in CLIPTextModel form.
REAL_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 512,
}

# Tiny sibling: same block types and switches, a fraction of the width and depth.
TINY_UNET_CONFIG: dict[str, Any] = REAL_UNET_CONFIG | {
    "sample_size": 16,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4],
}
TINY_VAE_CONFIG: dict[str, Any] = REAL_VAE_CONFIG | {
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "sample_size": 32,
}
TINY_TEXT_CONFIG: dict[str, Any] = REAL_TEXT_CONFIG | {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "projection_dim": 32,
}
TINY_INIT_SEED = 0


def build_tiny() -> DiffusionBundle:
    """Tiny SD 2.1 sibling with deterministic random-init weights and the real CLIP BPE tokenizer."""
    import torch
    from diffusers import DDPMScheduler

    from harness.models.tokenizer import build_clip_tokenizer

    torch.manual_seed(TINY_INIT_SEED)
    unet, vae, text_encoder = _build_from_configs(TINY_UNET_CONFIG, TINY_VAE_CONFIG, TINY_TEXT_CONFIG)
    tokenizer = build_clip_tokenizer()
    tokenizer.pad_token = PAD_TOKEN
    return DiffusionBundle(
        family=FAMILY,
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        noise_scheduler=DDPMScheduler.from_config(SCHEDULER_CONFIG),
        weights_identity=f"random-init (tiny sd21, seed {TINY_INIT_SEED})",
    )


def load_real(source: str, revision: str | None) -> DiffusionBundle:
    """Load SD 2.1-base from a hub id (HF cache under HF_HOME) or a local diffusers folder."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    parts = {
        "unet": (UNet2DConditionModel, "unet"),
        "vae": (AutoencoderKL, "vae"),
        "text_encoder": (CLIPTextModel, "text_encoder"),
        "tokenizer": (CLIPTokenizer, "tokenizer"),
        "noise_scheduler": (DDPMScheduler, "scheduler"),
    }
    loaded = {key: hub_load(cls, source, sub, revision, FAMILY) for key, (cls, sub) in parts.items()}
    return DiffusionBundle(family=FAMILY, weights_identity=f"{source}@{revision or 'main'}", **loaded)


def build_meta() -> dict[str, Any]:
    """The real SD 2.1-base modules on the meta device (no memory, no weights) for accounting."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        unet, vae, text_encoder = _build_from_configs(REAL_UNET_CONFIG, REAL_VAE_CONFIG, REAL_TEXT_CONFIG)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder}
