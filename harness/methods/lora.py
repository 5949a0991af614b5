"""``lora``: LoRA through peft on named projections of the UNet; rank and alpha are parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.methods.base import Method, Modules

DEFAULT_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


class LoraMethod(Method):
    """One implementation for every rank: ``params.rank``, ``params.alpha``, ``params.target_modules``."""

    @property
    def rank(self) -> int:
        return int(self.spec.params.get("rank", 1))

    @property
    def alpha(self) -> float:
        return float(self.spec.params.get("alpha", 1))

    @property
    def target_modules(self) -> list[str]:
        return list(self.spec.params.get("target_modules", DEFAULT_TARGETS))

    def targets(self) -> str:
        return f"LoRA rank {self.rank} on {self.component} modules {self.target_modules}"

    def lora_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.alpha, target_modules=self.target_modules)

    def attach(self, modules: Modules) -> None:
        if self.component != "unet":
            raise ValueError(f"lora: component '{self.component}' is not supported yet (only 'unet')")
        modules["unet"].add_adapter(self.lora_config())

    def save(self, modules: Modules, folder: Path) -> Path | None:
        from diffusers import StableDiffusionPipeline
        from peft.utils import get_peft_model_state_dict

        layers = get_peft_model_state_dict(modules["unet"])
        StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)
        return folder / "pytorch_lora_weights.safetensors"

    def extra_state(self) -> dict[str, Any]:
        return {"rank": self.rank, "alpha": self.alpha, "target_modules": self.target_modules}
