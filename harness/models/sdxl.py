"""Stable Diffusion XL base 1.0 (+ refiner): real loading, a tiny sibling from config, the real
architecture on the meta device, and the SDXL-specific prompt encoding, loss and sampling.

Prompt encoding as in SDXL: penultimate hidden states of CLIP ViT-L (``text_encoder``) and of
OpenCLIP ViT-bigG (``text_encoder_2``, ``CLIPTextModelWithProjection``) concatenated; the pooled,
projected output of the second; ``add_time_ids`` = original size, crop top-left, target size.

The refiner (``StableDiffusionXLImg2ImgPipeline``) takes over for the last ``refine_fraction`` of
denoising (``denoising_end`` / ``denoising_start``), for every method of a task alike; adapters
are never attached to it. It shares the base's VAE and second text encoder (as the refiner
release does). VAE and NaNs: the SDXL VAE overflows in float16, so latents are always decoded
here in float32 with autocast off (the VAE is upcast if it was loaded in half precision); a
NaN in a decoded image raises instead of producing a black PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.models.common import DiffusionBundle, diffusion_mse, hub_load, requires_grad
from harness.models.sd15 import REAL_TEXT_CONFIG as CLIP_L_CONFIG
from harness.models.sd15 import REAL_VAE_CONFIG as SD_VAE_CONFIG
from harness.models.sd15 import SCHEDULER_CONFIG as SD15_SCHEDULER_CONFIG

FAMILY = "sdxl"

# scheduler/scheduler_config.json of stabilityai/stable-diffusion-xl-base-1.0 (training schedule):
# SD 1.5's noise schedule with "leading" timestep spacing.
SCHEDULER_CONFIG: dict[str, Any] = SD15_SCHEDULER_CONFIG | {"timestep_spacing": "leading"}
REAL_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,  # 6 time ids x 256 + 1280 pooled
    "norm_num_groups": 32,
}
REAL_REFINER_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [384, 768, 1536, 1536],
    "layers_per_block": 2,
    "transformer_layers_per_block": 4,
    "attention_head_dim": [6, 12, 24, 24],
    "cross_attention_dim": 1280,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2560,  # 5 time ids (with aesthetic score) x 256 + 1280
    "norm_num_groups": 32,
}
REAL_VAE_CONFIG: dict[str, Any] = SD_VAE_CONFIG | {"sample_size": 1024, "scaling_factor": 0.13025,
                                                   "force_upcast": True}
REAL_TEXT_CONFIG: dict[str, Any] = dict(CLIP_L_CONFIG)
REAL_TEXT_2_CONFIG: dict[str, Any] = {  # OpenCLIP ViT-bigG/14 text tower
    "vocab_size": 49408,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}

TINY_TEXT_CONFIG = REAL_TEXT_CONFIG | {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                       "num_attention_heads": 4, "projection_dim": 32}
TINY_TEXT_2_CONFIG = REAL_TEXT_2_CONFIG | {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                           "num_attention_heads": 4, "projection_dim": 32}
TINY_UNET_CONFIG: dict[str, Any] = REAL_UNET_CONFIG | {
    "sample_size": 16,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "transformer_layers_per_block": [1, 1],
    "attention_head_dim": [4, 8],
    "cross_attention_dim": 64,  # 32 + 32, the two tiny encoders concatenated
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 6 * 8 + 32,
}
TINY_REFINER_UNET_CONFIG: dict[str, Any] = REAL_REFINER_UNET_CONFIG | {
    "sample_size": 16,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "transformer_layers_per_block": 1,
    "attention_head_dim": [4, 8],
    "cross_attention_dim": 32,
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 5 * 8 + 32,
}
TINY_VAE_CONFIG: dict[str, Any] = REAL_VAE_CONFIG | {
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "sample_size": 32,
}
TINY_INIT_SEED = 0


@dataclass
class SDXLPipelines:
    """The base text-to-image pipeline and (optionally) the refiner's image-to-image pipeline."""

    base: Any
    refiner: Any | None

    def to(self, device: Any) -> SDXLPipelines:
        self.base.to(device)
        if self.refiner is not None:
            self.refiner.to(device)
        return self


@dataclass
class SDXLBundle(DiffusionBundle):
    """SDXL base: two text encoders and tokenizers, plus the refiner UNet (never trained)."""

    text_encoder_2: Any = None
    tokenizer_2: Any = None
    refiner_unet: Any = None

    def modules(self) -> dict[str, Any]:
        return {"unet": self.unet, "vae": self.vae, "text_encoder": self.text_encoder,
                "text_encoder_2": self.text_encoder_2}

    def encode_prompts(self, prompts: list[str], encoders: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
        """(penultimate hidden states of both encoders concatenated, pooled projection of the second)."""
        import torch

        hidden, pooled = [], None
        pairs = zip((self.tokenizer, self.tokenizer_2), encoders or (self.text_encoder, self.text_encoder_2),
                    strict=True)
        for tokenizer, encoder in pairs:
            ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids.to(self.unet.device)
            output = encoder(ids, output_hidden_states=True)
            hidden.append(output.hidden_states[-2])
            pooled = output[0]  # text_embeds of CLIPTextModelWithProjection (the second encoder)
        return torch.cat(hidden, dim=-1), pooled

    def training_loss(self, batch: dict[str, Any], modules: dict[str, Any], generator: Any, device: Any) -> Any:
        """Noise-prediction MSE with SDXL conditioning (both encoders, pooled embeds, add_time_ids)."""
        import torch

        with torch.no_grad():
            pixels = batch["pixel_values"].to(device, dtype=self.vae.dtype)
            latents = self.vae.encode(pixels).latent_dist.sample(generator=generator) * self.latent_scale
        encoders = (modules["text_encoder"], modules["text_encoder_2"])
        with torch.set_grad_enabled(any(requires_grad(e) for e in encoders)):
            hidden, pooled = self.encode_prompts(list(batch["caption"]), encoders)
        target_size = torch.tensor(pixels.shape[-2:]).expand(len(pixels), 2)
        time_ids = torch.cat([batch["original_size"], batch["crop_top_left"], target_size], dim=1)
        scheduler = self.noise_scheduler
        noise = torch.randn(latents.shape, generator=generator).to(device, latents.dtype)
        steps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],),
                              generator=generator).to(device)
        noisy = scheduler.add_noise(latents, noise, steps)
        target = scheduler.get_velocity(latents, noise, steps) if (
            scheduler.config.prediction_type == "v_prediction") else noise
        conditions = {"text_embeds": pooled, "time_ids": time_ids.to(device, hidden.dtype)}
        prediction = modules["unet"](noisy, steps, hidden, added_cond_kwargs=conditions).sample
        return diffusion_mse(prediction, target, batch)

    def build_pipeline(self, scheduler_kind: str) -> SDXLPipelines:
        from diffusers import DDIMScheduler, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

        if scheduler_kind != "ddim":
            raise ValueError(f"sdxl: unsupported sampling scheduler '{scheduler_kind}'")
        base = StableDiffusionXLPipeline(
            vae=self.vae, text_encoder=self.text_encoder, text_encoder_2=self.text_encoder_2,
            tokenizer=self.tokenizer, tokenizer_2=self.tokenizer_2, unet=self.unet,
            scheduler=DDIMScheduler.from_config(self.noise_scheduler.config), add_watermarker=False,
        )
        base.set_progress_bar_config(disable=True)
        refiner = None
        if self.refiner_unet is not None:
            refiner = StableDiffusionXLImg2ImgPipeline(
                vae=self.vae, text_encoder=None, text_encoder_2=self.text_encoder_2, tokenizer=None,
                tokenizer_2=self.tokenizer_2, unet=self.refiner_unet,
                scheduler=DDIMScheduler.from_config(self.noise_scheduler.config),
                requires_aesthetics_score=True, force_zeros_for_empty_prompt=False, add_watermarker=False,
            )
            refiner.set_progress_bar_config(disable=True)
        return SDXLPipelines(base, refiner)

    def generate_images(self, pipeline: SDXLPipelines, prompts: list[str], negative: list[str] | None,
                        generators: list[Any], spec: Any) -> list[Any]:
        """Base for the first ``1 - refine_fraction`` of denoising, refiner for the rest, fp32 VAE decode."""
        refine = spec.refine_fraction > 0
        if refine and pipeline.refiner is None:
            raise ValueError("sdxl: the task asks for a refiner (refine_fraction > 0) but none was loaded "
                             "(set model.refiner_hub_id)")
        common = {"prompt": prompts, "negative_prompt": negative, "num_inference_steps": spec.steps,
                  "guidance_scale": spec.guidance_scale, "generator": generators, "output_type": "latent"}
        latents = pipeline.base(**common, height=spec.height, width=spec.width,
                                denoising_end=1 - spec.refine_fraction if refine else None).images
        if refine:
            latents = pipeline.refiner(**common, image=latents, denoising_start=1 - spec.refine_fraction).images
        return decode_fp32(pipeline.base, latents)

    def load_lora(self, folder: Any) -> None:
        self.build_pipeline("ddim").base.load_lora_weights(str(folder))


def decode_fp32(pipeline: Any, latents: Any) -> list[Any]:
    """Decode latents with the VAE in float32 and autocast off (the SDXL VAE overflows in float16)."""
    import torch

    vae = pipeline.vae
    if vae.dtype != torch.float32:
        vae.to(torch.float32)
    with torch.no_grad(), torch.autocast(latents.device.type, enabled=False):
        latents = latents.to(vae.device, torch.float32) / vae.config.scaling_factor
        images = vae.decode(latents).sample
    if torch.isnan(images).any():
        raise FloatingPointError("sdxl: the VAE decode produced NaN values")
    return pipeline.image_processor.postprocess(images, output_type="pil")


def _build(unet_cfg: dict, vae_cfg: dict, text_cfg: dict, text_2_cfg: dict) -> dict[str, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    return {"unet": UNet2DConditionModel.from_config(unet_cfg), "vae": AutoencoderKL.from_config(vae_cfg),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**text_cfg)),
            "text_encoder_2": CLIPTextModelWithProjection(CLIPTextConfig(**text_2_cfg))}


def build_tiny() -> SDXLBundle:
    """Tiny SDXL sibling (same classes, two tiny CLIP encoders, tiny refiner) with the real CLIP tokenizer."""
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from harness.models.tokenizer import build_clip_tokenizer

    torch.manual_seed(TINY_INIT_SEED)
    parts = _build(TINY_UNET_CONFIG, TINY_VAE_CONFIG, TINY_TEXT_CONFIG, TINY_TEXT_2_CONFIG)
    refiner = UNet2DConditionModel.from_config(TINY_REFINER_UNET_CONFIG)
    for module in [*parts.values(), refiner]:
        module.eval()  # as from_pretrained leaves them
    return SDXLBundle(family=FAMILY, tokenizer=build_clip_tokenizer(), tokenizer_2=build_clip_tokenizer(),
                      noise_scheduler=DDPMScheduler.from_config(SCHEDULER_CONFIG), refiner_unet=refiner,
                      weights_identity=f"random-init (tiny sdxl + refiner, seed {TINY_INIT_SEED})", **parts)


def load_real(source: str, revision: str | None, refiner_source: str | None = None,
              refiner_revision: str | None = None) -> SDXLBundle:
    """SDXL base from a hub id or local diffusers folder; the refiner's UNet from its own id, if given.

    Weights stay float32 (the VAE too): training autocasts to bf16 through accelerate, sampling to
    fp16 with the VAE decode kept in fp32.
    """
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    from harness.models.sd15 import sd_parts

    parts = sd_parts() | {"text_encoder_2": (CLIPTextModelWithProjection, "text_encoder_2"),
                          "tokenizer_2": (CLIPTokenizer, "tokenizer_2")}
    loaded = {key: hub_load(cls, source, sub, revision, FAMILY) for key, (cls, sub) in parts.items()}
    identity = f"{source}@{revision or 'main'}"
    if refiner_source:
        loaded["refiner_unet"] = hub_load(UNet2DConditionModel, refiner_source, "unet", refiner_revision,
                                          "sdxl-refiner")
        identity += f" + {refiner_source}@{refiner_revision or 'main'}"
    return SDXLBundle(family=FAMILY, weights_identity=identity, **loaded)


def build_meta() -> dict[str, Any]:
    """The real SDXL base modules (UNet, VAE, both text encoders) on the meta device, for accounting."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        return _build(REAL_UNET_CONFIG, REAL_VAE_CONFIG, REAL_TEXT_CONFIG, REAL_TEXT_2_CONFIG)
