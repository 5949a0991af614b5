"""``lora``: LoRA through peft on named projections of the denoiser and / or the CLIP text encoders.

Params, either one adapter inline::

    component: unet | transformer | text_encoders
    rank: 8
    alpha: 1                 # or alpha_equals_rank: true (FLUX convention)
    target_modules: [to_q, to_k, to_v, to_out.0]

or several under ``adapters:`` (a list of such mappings), e.g. UNet rank 1 + text encoders rank 4.
``text_encoders`` means every CLIP text encoder of the model (both for SDXL, the CLIP one for FLUX:
T5 is never trained). Adapters are saved with ``save_lora_weights`` of the family's diffusers
pipeline, with each adapter's LoraConfig as metadata so that alpha survives reloading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from harness.methods.base import Method, Modules, Params
from harness.specs import SpecError
from harness.specs_data import Float, Int

MAX_RANK = 4096

DEFAULT_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
TEXT_ENCODER_CLASSES = ("CLIPTextModel", "CLIPTextModelWithProjection")


@dataclass(frozen=True)
class AdapterSpec:
    """One LoRA adapter: where, which projections, rank and alpha."""

    component: str
    rank: int
    alpha: float
    target_modules: list[str]


ADAPTER_KEYS = {"component", "rank", "alpha", "alpha_equals_rank", "target_modules"}


class LoraAdapterParams(Params):
    """One adapter's params (inline, or one item of ``adapters``)."""

    component: str = Field(default="unet", pattern=r"^[a-z0-9_]+$")
    rank: Int = Field(default=1, ge=1, le=MAX_RANK)
    alpha: Float = Field(default=1.0, gt=0, le=1e6, allow_inf_nan=False)
    alpha_equals_rank: bool = False
    target_modules: list[str] | None = Field(default=None, min_length=1)


class LoraParams(LoraAdapterParams):
    adapters: list[LoraAdapterParams] | None = Field(default=None, min_length=1)


def _adapter(params: dict[str, Any]) -> AdapterSpec:
    unknown = sorted(set(params) - ADAPTER_KEYS - {"adapters"})
    if unknown:
        raise SpecError(f"lora params: unknown key '{unknown[0]}' (expected {', '.join(sorted(ADAPTER_KEYS))} "
                        "or a list under 'adapters')")
    component = str(params.get("component", "unet"))
    rank = int(params.get("rank", 1))
    alpha = float(rank) if params.get("alpha_equals_rank") else float(params.get("alpha", 1))
    default_targets = TEXT_TARGETS if component == "text_encoders" else DEFAULT_TARGETS
    return AdapterSpec(component, rank, alpha, list(params.get("target_modules", default_targets)))


def text_encoder_roles(modules: Modules) -> list[str]:
    """Roles of the CLIP text encoders (T5 excluded: it is never trained)."""
    return [role for role, module in modules.items() if type(module).__name__ in TEXT_ENCODER_CLASSES]


class LoraMethod(Method):
    """One implementation for every placement and rank."""

    params_schema = LoraParams

    def lora_params(self) -> dict[str, Any]:
        """The spec params that describe the adapters (a subclass with params of its own leaves those out)."""
        return dict(self.spec.params)

    @property
    def adapters(self) -> list[AdapterSpec]:
        params = self.lora_params()
        listed = params.get("adapters")
        return [_adapter(item) for item in listed] if listed else [_adapter(params)]

    @property
    def component(self) -> str:
        return "+".join(a.component for a in self.adapters)

    def roles(self, modules: Modules) -> dict[str, AdapterSpec]:
        """Module role -> the adapter it carries."""
        placed: dict[str, AdapterSpec] = {}
        for adapter in self.adapters:
            roles = text_encoder_roles(modules) if adapter.component == "text_encoders" else [adapter.component]
            for role in roles:
                if role not in modules:
                    raise ValueError(f"lora: component '{adapter.component}' is not a module of this model "
                                     f"(modules: {', '.join(modules)})")
                placed[role] = adapter
        return placed

    def targets(self) -> str:
        return "; ".join(f"LoRA rank {a.rank} alpha {a.alpha:g} on {a.component} modules {a.target_modules}"
                         for a in self.adapters)

    def lora_config(self, adapter: AdapterSpec) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=adapter.rank, lora_alpha=adapter.alpha, target_modules=adapter.target_modules)

    def attach(self, modules: Modules) -> None:
        import torch
        from diffusers.training_utils import cast_training_params

        for role, adapter in self.roles(modules).items():
            modules[role].add_adapter(self.lora_config(adapter))
            cast_training_params(modules[role], dtype=torch.float32)  # trainable LoRA weights stay fp32

    def save(self, modules: Modules, folder: Path) -> Path | None:
        from peft.utils import get_peft_model_state_dict

        kwargs: dict[str, Any] = {}
        for role in self.roles(modules):
            module = modules[role]
            kwargs[f"{role}_lora_layers"] = get_peft_model_state_dict(module)
            kwargs[f"{role}_lora_adapter_metadata"] = module.peft_config["default"].to_dict()
        lora_pipeline_class(modules).save_lora_weights(folder, safe_serialization=True, **kwargs)
        return folder / "pytorch_lora_weights.safetensors"



def lora_pipeline_class(modules: Modules) -> Any:
    """The diffusers pipeline whose ``save_lora_weights`` / ``load_lora_weights`` fit these modules."""
    from diffusers import FluxPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    if "transformer" in modules:
        return FluxPipeline
    if "text_encoder_2" in modules:
        return StableDiffusionXLPipeline
    return StableDiffusionPipeline
