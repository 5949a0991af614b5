"""What every model family returns, and hub / local-path loading with a clear failure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import WeightsMissingError


@dataclass
class DiffusionBundle:
    """The components of a latent diffusion base model, as one record.

    This base class is SD 1.x / 2.x shaped (one CLIP text encoder, UNet, noise prediction). A family
    that differs (SDXL, FLUX) subclasses it and overrides ``modules``, ``training_loss``,
    ``build_pipeline`` and ``generate_images``; training and sampling only call these four.
    """

    family: str
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    noise_scheduler: Any
    weights_identity: str

    @property
    def latent_scale(self) -> float:
        return float(self.vae.config.scaling_factor)

    # dtype of torch.autocast when sampling on a GPU (FLUX needs bfloat16; T5 overflows in float16)
    sampling_autocast_dtype = "float16"

    def modules(self) -> dict[str, Any]:
        """The model's modules by role; methods freeze / adapt these, accounting counts them."""
        return {"unet": self.unet, "vae": self.vae, "text_encoder": self.text_encoder}

    def to(self, device: Any) -> DiffusionBundle:
        for module in self.modules().values():
            module.to(device)
        return self

    def encode_prompts(self, prompts: list[str]) -> Any:
        """Last hidden states of the text encoder for padded prompts (SD 1.x / 2.x style)."""
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.text_encoder.device)
        return self.text_encoder(ids)[0]

    def training_loss(self, batch: dict[str, Any], modules: dict[str, Any], generator: Any, device: Any) -> Any:
        """MSE of the UNet's noise (or v) prediction at a uniform timestep; ``modules`` are the prepared ones."""
        import torch

        with torch.no_grad():
            pixels = batch["pixel_values"].to(device, dtype=self.vae.dtype)
            latents = self.vae.encode(pixels).latent_dist.sample(generator=generator) * self.latent_scale
        with torch.set_grad_enabled(requires_grad(modules["text_encoder"])):
            hidden = self.encode_prompts(list(batch["caption"]))
        scheduler = self.noise_scheduler
        noise = torch.randn(latents.shape, generator=generator).to(device, latents.dtype)
        steps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],),
                              generator=generator).to(device)
        noisy = scheduler.add_noise(latents, noise, steps)
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(latents, noise, steps)
        else:
            target = noise
        prediction = modules["unet"](noisy, steps, hidden).sample
        return diffusion_mse(prediction, target, batch)

    def build_pipeline(self, scheduler_kind: str) -> Any:
        """A diffusers text-to-image pipeline over the bundle's (possibly adapted) modules."""
        from diffusers import DDIMScheduler, StableDiffusionPipeline

        if scheduler_kind != "ddim":
            raise ValueError(f"{self.family}: unsupported sampling scheduler '{scheduler_kind}'")
        pipeline = StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=self.unet,
            scheduler=DDIMScheduler.from_config(self.noise_scheduler.config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def generate_images(self, pipeline: Any, prompts: list[str], negative: list[str] | None, generators: list[Any],
                        spec: Any) -> list[Any]:
        """PIL images for a batch of prompts under the task's sampling spec."""
        return pipeline(prompt=prompts, negative_prompt=negative, num_inference_steps=spec.steps,
                        guidance_scale=spec.guidance_scale, height=spec.height, width=spec.width,
                        generator=generators, output_type="pil").images

    def load_lora(self, folder: Any) -> None:
        """Attach a saved LoRA adapter (diffusers ``load_lora_weights`` layout) to the bundle's modules."""
        self.build_pipeline("ddim").load_lora_weights(str(folder))


def diffusion_mse(prediction: Any, target: Any, batch: dict[str, Any]) -> Any:
    """MSE of a family's prediction; a prior-preservation batch (``prior_weight`` set, class half appended
    by ``harness.training.with_prior_half``) gives instance MSE + weight x class MSE, each over its half."""
    import torch.nn.functional as F

    prior_weight = batch.get("prior_weight")
    if prior_weight is None:
        return F.mse_loss(prediction.float(), target.float())
    instance_pred, class_pred = prediction.float().chunk(2)
    instance_target, class_target = target.float().chunk(2)
    return F.mse_loss(instance_pred, instance_target) + prior_weight * F.mse_loss(class_pred, class_target)


def requires_grad(module: Any) -> bool:
    """True if any parameter of the module is trainable (e.g. a text encoder carrying LoRA)."""
    return any(p.requires_grad for p in module.parameters())


def _hf_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _hub_reachable() -> bool:
    """Whether the Hugging Face endpoint answers a TCP connect within 3 s (checked once per process). An
    unreachable hub means the files are clearly missing: fail at once instead of spending ~46 s in
    huggingface_hub's retries, and set HF_HUB_OFFLINE=1 for the rest of the process."""
    import os
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    global _REACHABLE
    if _REACHABLE is None:
        url = urlparse(constants.ENDPOINT)
        try:
            socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=3).close()
            _REACHABLE = True
        except OSError:
            _REACHABLE = False
            os.environ["HF_HUB_OFFLINE"] = "1"
    return _REACHABLE


_REACHABLE: bool | None = None


def missing_weights_message(family: str, source: str, subfolder: str, reason: str) -> str:
    """One message: what is missing, how to fetch it, where to put it, and the tiny fallback."""
    return (
        f"{family} weights missing: '{source}' (component '{subfolder}') {reason}. "
        f"On a machine with network run `hf download {source} --local-dir /models/{family}` "
        f"and pass `--model-path /models/{family}`, or fill the Hugging Face cache ({_hf_cache()}, "
        "set by HF_HOME) and keep HF_HUB_OFFLINE=1. `--profile tiny` runs anywhere without weights."
    )


def hub_load(cls: Any, source: str, subfolder: str, revision: str | None, family: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` from the local cache or folder first, then the hub unless offline.

    ``kwargs`` go to ``from_pretrained`` (e.g. ``torch_dtype``).
    """
    import warnings

    warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
    is_local_dir = Path(source).exists()
    try:
        return cls.from_pretrained(source, subfolder=subfolder, revision=revision, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        if is_local_dir:
            raise WeightsMissingError(
                missing_weights_message(family, source, subfolder, f"is not a complete diffusers folder ({exc})")
            ) from None
        if _offline():
            raise WeightsMissingError(
                missing_weights_message(family, source, subfolder, "is not in the cache (HF_HUB_OFFLINE=1)")
            ) from None
        if not _hub_reachable():
            raise WeightsMissingError(missing_weights_message(
                family, source, subfolder, "is not in the cache and the hub is unreachable (offline: HF_HUB_OFFLINE=1 "
                "implied)")) from None
    try:
        return cls.from_pretrained(source, subfolder=subfolder, revision=revision, **kwargs)
    except Exception as exc:  # network errors come in many types; all mean "not available"
        reason = f"is not in the cache and the hub could not be reached ({type(exc).__name__})"
        raise WeightsMissingError(missing_weights_message(family, source, subfolder, reason)) from None
