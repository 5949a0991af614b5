"""The microworld base diffusion model: SD-1.5-shaped (VAE, UNet, CLIP text encoder, DDPM schedule), tiny.

Module definitions (configs), construction, the loader of the shipped fp16 weights (upcast to fp32) and a
sampling helper over diffusers' ``StableDiffusionPipeline``. The text encoder is frozen at a seeded random
init: its 49,408 x 64 token table is never stored but regenerated from ``TOKEN_TABLE_SEED`` at load time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).parent / "weights"
FAMILY = "micro"
MAX_LENGTH = 16  # tokenizer pads / truncates to 16 (every world caption is <= 13 tokens with BOS/EOS)
INIT_SEED = 0
TOKEN_TABLE_SEED = 1234
SAMPLING_STEPS = 25
GUIDANCE = 4.0
RESOLUTION = 32

VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [16, 32, 64],
    "layers_per_block": 1,
    "latent_channels": 16,
    "norm_num_groups": 8,
    "sample_size": RESOLUTION,
    "scaling_factor": 1.0,  # replaced by 1 / std of training latents when the VAE is built
}
UNET_CONFIG: dict[str, Any] = {
    "sample_size": RESOLUTION // 4,
    "in_channels": 16,
    "out_channels": 16,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 64,
    "attention_head_dim": 8,
    "norm_num_groups": 8,
}
TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": MAX_LENGTH,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}
TOKEN_TABLE_KEY = "token_embedding.weight"  # matched as a key suffix (transformers 4 and 5 name it differently)


def scheduler_config() -> dict[str, Any]:
    from harness.models.sd15 import SCHEDULER_CONFIG

    return dict(SCHEDULER_CONFIG)


def token_table() -> Any:
    """The frozen random token table (49408 x 64), regenerated from its seed (never stored)."""
    import torch

    generator = torch.Generator().manual_seed(TOKEN_TABLE_SEED)
    return torch.randn(TEXT_CONFIG["vocab_size"], TEXT_CONFIG["hidden_size"], generator=generator) * 0.02


def build_modules(vae_scaling: float | None = None, seed: int = INIT_SEED) -> tuple[Any, Any, Any]:
    """Random-init (unet, vae, text_encoder) from the configs; the text encoder gets the seeded token table."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    vae_config = dict(VAE_CONFIG)
    if vae_scaling is not None:
        vae_config["scaling_factor"] = float(vae_scaling)
    vae = AutoencoderKL(**vae_config)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    with torch.no_grad():
        text_encoder.get_input_embeddings().weight.copy_(token_table())
    text_encoder.requires_grad_(False).eval()
    return unet, vae, text_encoder


def build_tokenizer() -> Any:
    from harness.models.tokenizer import build_clip_tokenizer

    return build_clip_tokenizer(max_length=MAX_LENGTH)


def _load_fp16(module: Any, path: Path, strict: bool = True) -> None:
    import torch
    from safetensors.torch import load_file

    state = {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(TOKEN_TABLE_KEY)]
    if strict and (missing or unexpected):
        raise RuntimeError(f"{path.name}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def save_fp16(module: Any, path: Path, skip: tuple[str, ...] = ()) -> None:
    import torch
    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()
             if not any(k.endswith(x) for x in skip)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))


def vae_scaling_from(folder: Path) -> float:
    import json

    return float(json.loads((folder / "vae_scaling.json").read_text())["scaling_factor"])


def weights_identity(folder: Path = WEIGHTS_DIR) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name in ("vae.safetensors", "unet.safetensors", "text_encoder.safetensors"):
        digest.update((folder / name).read_bytes())
    return f"microworld base {digest.hexdigest()[:16]}"


def load_base(folder: Path | str | None = None, with_unet: bool = True) -> Any:
    """The shipped microworld base as a ``DiffusionBundle(family="micro")`` (fp16 files upcast to fp32)."""
    from diffusers import DDPMScheduler

    from harness.errors import WeightsMissingError
    from harness.models.common import DiffusionBundle

    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    needed = ["vae.safetensors", "text_encoder.safetensors", "vae_scaling.json"]
    needed += ["unet.safetensors"] if with_unet else []
    absent = [n for n in needed if not (folder / n).is_file()]
    if absent:
        raise WeightsMissingError(f"microworld base: {absent} missing in {folder}; run `python -m harness.micro.build`")
    unet, vae, text_encoder = build_modules(vae_scaling_from(folder))
    _load_fp16(vae, folder / "vae.safetensors")
    _load_fp16(text_encoder, folder / "text_encoder.safetensors")
    if with_unet:
        _load_fp16(unet, folder / "unet.safetensors")
    ident = weights_identity(folder) if with_unet else "microworld base (no unet)"
    return DiffusionBundle(family=FAMILY, unet=unet.eval(), vae=vae.eval(), text_encoder=text_encoder.eval(),
                           tokenizer=build_tokenizer(), noise_scheduler=DDPMScheduler.from_config(scheduler_config()),
                           weights_identity=ident)


def encode_text(bundle: Any, prompts: list[str]) -> Any:
    import torch

    with torch.no_grad():
        return bundle.encode_prompts(prompts)


def sample(bundle: Any, prompts: list[str], seeds: list[int], steps: int = SAMPLING_STEPS,
           guidance: float = GUIDANCE, batch_size: int = 64) -> Any:
    """N x 32 x 32 x 3 uint8 samples, one per (prompt, seed), DDIM through ``StableDiffusionPipeline``."""
    import numpy as np
    import torch

    pipeline = bundle.build_pipeline("ddim")
    out = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds[start:start + batch_size]]
        with torch.no_grad():
            images = pipeline(prompt=chunk, num_inference_steps=steps, guidance_scale=guidance,
                              height=RESOLUTION, width=RESOLUTION, generator=generators, output_type="np").images
        out.append(np.clip(np.rint(images * 255), 0, 255).astype(np.uint8))
    return np.concatenate(out)
