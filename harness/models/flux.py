"""FLUX.1-dev: real loading, a tiny sibling from config, the real architecture on the meta device,
and FLUX's flow-matching loss and sampling.

Components as in ``FluxPipeline``: ``transformer`` (FluxTransformer2DModel, guidance-distilled:
guidance is an embedding input, not classifier-free), ``vae`` (16 latent channels, shift and
scale), ``text_encoder`` (CLIP ViT-L, pooled output) and ``text_encoder_2`` (T5-XXL encoder,
never trained). Training loss (rectified flow), timesteps exactly as diffusers'
``examples/dreambooth/train_dreambooth_lora_flux.py`` draws them (``training_timesteps``: diffusers'
``compute_density_for_timestep_sampling`` with weighting scheme ``none``, indices into a copy of the
scheduler's ``timesteps``, sigmas looked up in its ``sigmas``; with FLUX.1-dev's config,
``use_dynamic_shifting: true``, the training schedule is NOT shifted, unlike ``shift=3`` applied
always); latents ``x0 = (vae(x) - shift) * scale``, ``x_sigma = (1 - sigma) x0 + sigma noise``, packed 2x2
into tokens with image ids, ``timestep = t / 1000``; target ``noise - x0``. The CLIP text encoder is
encoded with gradients when it carries trainable parameters (text-encoder LoRA trains). The ``unet``
field of the bundle is None: the denoiser is ``transformer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.models.common import DiffusionBundle, diffusion_mse, hub_load
from harness.models.sd15 import REAL_TEXT_CONFIG as CLIP_L_CONFIG

FAMILY = "flux"
MAX_SEQUENCE_LENGTH = 512  # FLUX.1-dev's T5 prompt length
TRAIN_GUIDANCE = 1.0  # guidance embedding value while training (the distilled guidance is a sampling knob)

# scheduler/scheduler_config.json of black-forest-labs/FLUX.1-dev
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
REAL_TRANSFORMER_CONFIG: dict[str, Any] = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "guidance_embeds": True,
    "axes_dims_rope": [16, 56, 56],
}
REAL_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 16,
    "sample_size": 1024,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "force_upcast": True,
}
REAL_TEXT_CONFIG: dict[str, Any] = dict(CLIP_L_CONFIG)
REAL_T5_CONFIG: dict[str, Any] = {  # google/t5-v1_1-xxl encoder (text_encoder_2/config.json)
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "dense_act_fn": "gelu_new",
    "is_gated_act": True,
    "layer_norm_epsilon": 1e-6,
    "tie_word_embeddings": False,
}

TINY_TRANSFORMER_CONFIG = REAL_TRANSFORMER_CONFIG | {
    "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16, "num_attention_heads": 2,
    "joint_attention_dim": 32, "pooled_projection_dim": 32, "axes_dims_rope": [4, 6, 6],
}
TINY_VAE_CONFIG = REAL_VAE_CONFIG | {
    "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
    "block_out_channels": [32, 64], "layers_per_block": 1, "sample_size": 32,
}
TINY_TEXT_CONFIG = REAL_TEXT_CONFIG | {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                       "num_attention_heads": 4, "projection_dim": 32}
TINY_T5_CONFIG = REAL_T5_CONFIG | {"vocab_size": 6144, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2,
                                   "num_heads": 4}
TINY_MAX_SEQUENCE_LENGTH = 64
TINY_INIT_SEED = 0


@dataclass
class FluxBundle(DiffusionBundle):
    """FLUX: transformer denoiser, CLIP + T5 encoders; ``unet`` is None."""

    transformer: Any = None
    text_encoder_2: Any = None
    tokenizer_2: Any = None
    max_sequence_length: int = MAX_SEQUENCE_LENGTH
    train_guidance: float = TRAIN_GUIDANCE
    sampling_autocast_dtype = "bfloat16"  # T5 overflows in float16

    def modules(self) -> dict[str, Any]:
        return {"transformer": self.transformer, "vae": self.vae, "text_encoder": self.text_encoder,
                "text_encoder_2": self.text_encoder_2}

    def build_pipeline(self, scheduler_kind: str) -> Any:
        from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

        if scheduler_kind != "flow_match_euler":
            raise ValueError(f"flux: unsupported sampling scheduler '{scheduler_kind}' (use flow_match_euler)")
        pipeline = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_config(self.noise_scheduler.config),
                                vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
                                text_encoder_2=self.text_encoder_2, tokenizer_2=self.tokenizer_2,
                                transformer=self.transformer)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def training_timesteps(self, batch_size: int, generator: Any) -> tuple[Any, Any]:
        """(timesteps, sigmas) of one training batch, as diffusers' FLUX DreamBooth/LoRA script draws them:
        ``u = compute_density_for_timestep_sampling("none", ...)``, ``indices = (u * num_train_timesteps).long()``,
        ``timesteps = scheduler_copy.timesteps[indices]``, sigmas at those timesteps' positions in
        ``scheduler_copy.sigmas`` (the script's ``get_sigmas``). The copy is a fresh scheduler from the
        bundle's config, never touched by ``set_timesteps``."""
        from diffusers import FlowMatchEulerDiscreteScheduler
        from diffusers.training_utils import compute_density_for_timestep_sampling

        if getattr(self, "_train_scheduler", None) is None:
            self._train_scheduler = FlowMatchEulerDiscreteScheduler.from_config(self.noise_scheduler.config)
        scheduler = self._train_scheduler
        u = compute_density_for_timestep_sampling(weighting_scheme="none", batch_size=batch_size, logit_mean=0.0,
                                                  logit_std=1.0, mode_scale=1.29, generator=generator)
        indices = (u * scheduler.config.num_train_timesteps).long()
        timesteps = scheduler.timesteps[indices]
        step_indices = [(scheduler.timesteps == t).nonzero().item() for t in timesteps]
        return timesteps, scheduler.sigmas[step_indices].flatten()

    def training_loss(self, batch: dict[str, Any], modules: dict[str, Any], generator: Any, device: Any) -> Any:
        """Rectified-flow MSE on packed latents with image / text ids and the guidance embedding."""
        import torch

        from harness.models.common import requires_grad

        pipeline = self.build_pipeline("flow_match_euler")
        with torch.no_grad():
            pixels = batch["pixel_values"].to(device, dtype=self.vae.dtype)
            latents = self.vae.encode(pixels).latent_dist.sample(generator=generator)
            latents = (latents - self.vae.config.shift_factor) * self.vae.config.scaling_factor
        with torch.set_grad_enabled(requires_grad(modules["text_encoder"])):  # text-encoder LoRA trains
            prompt_embeds, pooled, text_ids = pipeline.encode_prompt(
                list(batch["caption"]), prompt_2=None, device=device, max_sequence_length=self.max_sequence_length)
        batch_size, channels, height, width = latents.shape
        noise = torch.randn(latents.shape, generator=generator).to(device, latents.dtype)
        timesteps, sigmas = self.training_timesteps(batch_size, generator)
        timesteps = timesteps.to(device)
        sigmas = sigmas.to(device, latents.dtype).view(-1, 1, 1, 1)
        noisy = (1 - sigmas) * latents + sigmas * noise
        packed = pipeline._pack_latents(noisy, batch_size, channels, height, width)
        image_ids = pipeline._prepare_latent_image_ids(batch_size, height // 2, width // 2, device, latents.dtype)
        transformer = modules["transformer"]
        guidance = torch.full((batch_size,), self.train_guidance, device=device) if (
            self.transformer.config.guidance_embeds) else None
        prediction = transformer(hidden_states=packed, timestep=timesteps / 1000, guidance=guidance,
                                 pooled_projections=pooled, encoder_hidden_states=prompt_embeds, txt_ids=text_ids,
                                 img_ids=image_ids, return_dict=False)[0]
        scale = pipeline.vae_scale_factor
        prediction = pipeline._unpack_latents(prediction, height * scale, width * scale, scale)
        return diffusion_mse(prediction, noise - latents, batch)

    def generate_images(self, pipeline: Any, prompts: list[str], negative: list[str] | None, generators: list[Any],
                        spec: Any) -> list[Any]:
        """FluxPipeline with distilled guidance (``guidance_scale``); FLUX-dev takes no negative prompt."""
        if negative:
            raise ValueError("flux: FLUX.1-dev is guidance-distilled and takes no negative prompt; "
                             "remove sampling.negative_prompt from the task")
        return pipeline(prompt=prompts, num_inference_steps=spec.steps, guidance_scale=spec.guidance_scale,
                        height=spec.height, width=spec.width, generator=generators, output_type="pil",
                        max_sequence_length=self.max_sequence_length).images

    def load_lora(self, folder: Any) -> None:
        self.build_pipeline("flow_match_euler").load_lora_weights(str(folder))


def _build(transformer_cfg: dict, vae_cfg: dict, text_cfg: dict, t5_cfg: dict) -> dict[str, Any]:
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    return {"transformer": FluxTransformer2DModel.from_config(transformer_cfg),
            "vae": AutoencoderKL.from_config(vae_cfg),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**text_cfg)),
            "text_encoder_2": T5EncoderModel(T5Config(**t5_cfg))}


def build_tiny() -> FluxBundle:
    """Tiny FLUX sibling (same classes) with the real CLIP tokenizer and an offline T5Tokenizer."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    from harness.models.t5_tokenizer import build_t5_tokenizer
    from harness.models.tokenizer import build_clip_tokenizer

    torch.manual_seed(TINY_INIT_SEED)
    parts = _build(TINY_TRANSFORMER_CONFIG, TINY_VAE_CONFIG, TINY_TEXT_CONFIG, TINY_T5_CONFIG)
    for module in parts.values():
        module.eval()  # as from_pretrained leaves them (T5's dropout must be off outside training)
    return FluxBundle(family=FAMILY, unet=None, tokenizer=build_clip_tokenizer(),
                      tokenizer_2=build_t5_tokenizer(TINY_MAX_SEQUENCE_LENGTH),
                      noise_scheduler=FlowMatchEulerDiscreteScheduler.from_config(SCHEDULER_CONFIG),
                      max_sequence_length=TINY_MAX_SEQUENCE_LENGTH,
                      weights_identity=f"random-init (tiny flux, seed {TINY_INIT_SEED})", **parts)


def load_real(source: str, revision: str | None) -> FluxBundle:
    """FLUX.1-dev from a hub id or local diffusers folder. Transformer and T5 load in bfloat16 (the
    released dtype; float32 would need ~70 GB for them alone); LoRA weights are kept in float32."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    bf16 = {"torch_dtype": torch.bfloat16}
    parts = {
        "transformer": (FluxTransformer2DModel, "transformer", bf16),
        "vae": (AutoencoderKL, "vae", bf16),
        "text_encoder": (CLIPTextModel, "text_encoder", bf16),
        "text_encoder_2": (T5EncoderModel, "text_encoder_2", bf16),
        "tokenizer": (CLIPTokenizer, "tokenizer", {}),
        "tokenizer_2": (T5TokenizerFast, "tokenizer_2", {}),
        "noise_scheduler": (FlowMatchEulerDiscreteScheduler, "scheduler", {}),
    }
    loaded = {key: hub_load(cls, source, sub, revision, FAMILY, **kw) for key, (cls, sub, kw) in parts.items()}
    return FluxBundle(family=FAMILY, unet=None, weights_identity=f"{source}@{revision or 'main'}", **loaded)


def build_meta() -> dict[str, Any]:
    """The real FLUX.1-dev modules on the meta device (no weights), for accounting."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        return _build(REAL_TRANSFORMER_CONFIG, REAL_VAE_CONFIG, REAL_TEXT_CONFIG, REAL_T5_CONFIG)
