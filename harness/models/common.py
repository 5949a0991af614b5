"""What every model family returns, and hub / local-path loading with a clear failure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import WeightsMissingError


@dataclass
class DiffusionBundle:
    """The components of a latent diffusion base model, as one record."""

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

    def to(self, device: Any) -> DiffusionBundle:
        for module in (self.unet, self.vae, self.text_encoder):
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


def _hf_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def missing_weights_message(family: str, source: str, subfolder: str, reason: str) -> str:
    """One message: what is missing, how to fetch it, where to put it, and the tiny fallback."""
    return (
        f"{family} weights missing: '{source}' (component '{subfolder}') {reason}. "
        f"On a machine with network run `hf download {source} --local-dir /models/{family}` "
        f"and pass `--model-path /models/{family}`, or fill the Hugging Face cache ({_hf_cache()}, "
        "set by HF_HOME) and keep HF_HUB_OFFLINE=1. `--profile tiny` runs anywhere without weights."
    )


def hub_load(cls: Any, source: str, subfolder: str, revision: str | None, family: str) -> Any:
    """``cls.from_pretrained`` from the local cache or folder first, then the hub unless offline."""
    import warnings

    warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
    is_local_dir = Path(source).exists()
    try:
        return cls.from_pretrained(source, subfolder=subfolder, revision=revision, local_files_only=True)
    except (OSError, ValueError) as exc:
        if is_local_dir:
            raise WeightsMissingError(
                missing_weights_message(family, source, subfolder, f"is not a complete diffusers folder ({exc})")
            ) from None
        if _offline():
            raise WeightsMissingError(
                missing_weights_message(family, source, subfolder, "is not in the cache (HF_HUB_OFFLINE=1)")
            ) from None
    try:
        return cls.from_pretrained(source, subfolder=subfolder, revision=revision)
    except Exception as exc:  # network errors come in many types; all mean "not available"
        reason = f"is not in the cache and the hub could not be reached ({type(exc).__name__})"
        raise WeightsMissingError(missing_weights_message(family, source, subfolder, reason)) from None
