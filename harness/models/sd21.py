"""Stable Diffusion 2.1-base: real loading by hub id / local path, a tiny sibling from config, and
the real architecture on the meta device for parameter accounting.

SD 2.1-base is SD-1.5-shaped (UNet2DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer) with
an OpenCLIP ViT-H/14 text tower (stored by diffusers as a ``CLIPTextModel``: 1024 wide, 23 layers,
gelu), linear-projection transformer blocks, per-block head counts, and epsilon prediction at 512 px
(the 768-px ``stable-diffusion-2-1`` is the v-prediction one). Its tokenizer pads with ``!`` (id 0).
"""

from __future__ import annotations

from typing import Any

from harness.models import sd15
from harness.models.common import DiffusionBundle

FAMILY = "sd21"
PAD_TOKEN = "!"

# scheduler/scheduler_config.json of stabilityai/stable-diffusion-2-1-base: a PNDM config with SD 1.5's
# betas, offset and epsilon prediction, i.e. the same training schedule.
SCHEDULER_CONFIG: dict[str, Any] = dict(sd15.SCHEDULER_CONFIG)

# unet/config.json of stabilityai/stable-diffusion-2-1-base: SD 1.5's blocks with a 1024-wide context,
# per-block head counts and linear projections in the transformer blocks.
SD21_UNET_CHANGES: dict[str, Any] = {
    "attention_head_dim": [5, 10, 20, 20],
    "use_linear_projection": True,
    "upcast_attention": False,
}
REAL_UNET_CONFIG: dict[str, Any] = sd15.REAL_UNET_CONFIG | SD21_UNET_CHANGES | {"cross_attention_dim": 1024}
# vae/config.json: the SD 1.x autoencoder (same layout and scaling factor), sample size 768.
REAL_VAE_CONFIG: dict[str, Any] = sd15.REAL_VAE_CONFIG | {"sample_size": 768}
# text_encoder/config.json: the OpenCLIP ViT-H/14 text tower in CLIPTextModel form.
REAL_TEXT_CONFIG: dict[str, Any] = sd15.REAL_TEXT_CONFIG | {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "hidden_act": "gelu",
    "projection_dim": 512,
}

# Tiny sibling: SD 1.5's tiny sizes with SD 2.1's switches (head counts scaled to the tiny widths).
TINY_UNET_CONFIG: dict[str, Any] = sd15.TINY_UNET_CONFIG | SD21_UNET_CHANGES | {"attention_head_dim": [2, 4]}
TINY_VAE_CONFIG: dict[str, Any] = dict(sd15.TINY_VAE_CONFIG)
TINY_TEXT_CONFIG: dict[str, Any] = sd15.TINY_TEXT_CONFIG | {"hidden_act": REAL_TEXT_CONFIG["hidden_act"]}


def build_tiny() -> DiffusionBundle:
    """Tiny SD 2.1 sibling with deterministic random-init weights and the real CLIP BPE tokenizer."""
    return sd15.build_tiny_bundle(FAMILY, (TINY_UNET_CONFIG, TINY_VAE_CONFIG, TINY_TEXT_CONFIG), SCHEDULER_CONFIG,
                                  pad_token=PAD_TOKEN)


def load_real(source: str, revision: str | None) -> DiffusionBundle:
    """Load SD 2.1-base from a hub id (HF cache under HF_HOME) or a local diffusers folder."""
    return sd15.load_sd_shaped(FAMILY, source, revision)


def build_meta() -> dict[str, Any]:
    """The real SD 2.1-base modules on the meta device (no memory, no weights) for accounting."""
    return sd15.build_meta_modules((REAL_UNET_CONFIG, REAL_VAE_CONFIG, REAL_TEXT_CONFIG))
