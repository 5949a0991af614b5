"""Stable Diffusion 1.5: real loading by hub id / local path, a tiny sibling from config, and
the real architecture on the meta device for parameter accounting.

The tiny sibling uses the very same classes (UNet2DConditionModel, AutoencoderKL, CLIPTextModel,
CLIPTokenizer, DDPM/DDIM schedulers); only the sizes and the weights differ.
"""

from __future__ import annotations

from typing import Any

from harness.models.common import DiffusionBundle, hub_load

FAMILY = "sd15"

# Noise schedule of SD 1.5 (scheduler/scheduler_config.json of runwayml/stable-diffusion-v1-5).
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

# Real architecture (unet/config.json, vae/config.json, text_encoder/config.json of SD 1.5).
REAL_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
REAL_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
REAL_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}

# Tiny sibling: same block types, a fraction of the width and depth.
TINY_UNET_CONFIG: dict[str, Any] = REAL_UNET_CONFIG | {
    "sample_size": 16,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
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


def _build_from_configs(unet_cfg: dict, vae_cfg: dict, text_cfg: dict) -> tuple[Any, Any, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel.from_config(unet_cfg)
    vae = AutoencoderKL.from_config(vae_cfg)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
    return unet, vae, text_encoder


def build_tiny_bundle(family: str, configs: tuple[dict, dict, dict], scheduler_config: dict,
                      pad_token: str | None = None) -> DiffusionBundle:
    """A tiny SD-1.x/2.x-shaped sibling: deterministic random-init (unet, vae, text) configs, the real
    CLIP BPE tokenizer (with the family's pad token, if it differs), a DDPM training scheduler."""
    import torch
    from diffusers import DDPMScheduler

    from harness.models.tokenizer import build_clip_tokenizer

    torch.manual_seed(TINY_INIT_SEED)
    unet, vae, text_encoder = _build_from_configs(*configs)
    tokenizer = build_clip_tokenizer()
    if pad_token is not None:
        tokenizer.pad_token = pad_token
    return DiffusionBundle(
        family=family,
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        noise_scheduler=DDPMScheduler.from_config(scheduler_config),
        weights_identity=f"random-init (tiny {family}, seed {TINY_INIT_SEED})",
    )


def sd_parts() -> dict[str, tuple[Any, str]]:
    """Bundle field -> (diffusers / transformers class, repository subfolder) of an SD-shaped model."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    return {
        "unet": (UNet2DConditionModel, "unet"),
        "vae": (AutoencoderKL, "vae"),
        "text_encoder": (CLIPTextModel, "text_encoder"),
        "tokenizer": (CLIPTokenizer, "tokenizer"),
        "noise_scheduler": (DDPMScheduler, "scheduler"),
    }


def load_sd_shaped(family: str, source: str, revision: str | None) -> DiffusionBundle:
    """Load an SD-1.x/2.x-shaped diffusers model from a hub id (HF cache under HF_HOME) or a local folder."""
    loaded = {key: hub_load(cls, source, sub, revision, family) for key, (cls, sub) in sd_parts().items()}
    return DiffusionBundle(family=family, weights_identity=f"{source}@{revision or 'main'}", **loaded)


def build_meta_modules(configs: tuple[dict, dict, dict]) -> dict[str, Any]:
    """SD-1.x/2.x-shaped modules from (unet, vae, text) configs on the meta device (no memory, no weights)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        unet, vae, text_encoder = _build_from_configs(*configs)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder}


def build_tiny() -> DiffusionBundle:
    """Tiny SD 1.5 sibling with deterministic random-init weights and the real CLIP tokenizer."""
    return build_tiny_bundle(FAMILY, (TINY_UNET_CONFIG, TINY_VAE_CONFIG, TINY_TEXT_CONFIG), SCHEDULER_CONFIG)


def load_real(source: str, revision: str | None) -> DiffusionBundle:
    """Load SD 1.5 from a hub id (HF cache under HF_HOME) or a local diffusers folder."""
    return load_sd_shaped(FAMILY, source, revision)


def build_meta() -> dict[str, Any]:
    """The real SD 1.5 modules on the meta device (no memory, no weights) for accounting."""
    return build_meta_modules((REAL_UNET_CONFIG, REAL_VAE_CONFIG, REAL_TEXT_CONFIG))
