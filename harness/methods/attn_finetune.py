"""``attn_finetune``: unfreeze the parameters of modules whose name matches a pattern
(``attn2`` = the UNet's cross-attention layers in the CIFAR study)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness.methods.base import Method, Modules, Params


class AttnFinetuneParams(Params):
    component: str = Field(default="unet", pattern=r"^[a-z0-9_]+$")
    target_patterns: list[str] = Field(default=["attn2"], min_length=1)


class AttnFinetuneMethod(Method):
    """Full fine-tuning of the selected modules' own parameters, nothing else."""

    params_schema = AttnFinetuneParams

    @property
    def patterns(self) -> list[str]:
        return list(self.spec.params.get("target_patterns", ["attn2"]))

    def targets(self) -> str:
        return f"{self.component} modules whose name contains any of {self.patterns}"

    def selected_names(self, modules: Modules) -> list[str]:
        """Parameter names (within the component) that this method trains."""
        names = []
        for name, _ in modules[self.component].named_parameters():
            module_path = name.rsplit(".", 1)[0]
            if any(pattern in module_path for pattern in self.patterns):
                names.append(name)
        return names

    def attach(self, modules: Modules) -> None:
        selected = set(self.selected_names(modules))
        for name, param in modules[self.component].named_parameters():
            if name in selected:
                param.requires_grad_(True)

    def save(self, modules: Modules, folder: Path) -> Path | None:
        from safetensors.torch import save_file

        component = modules[self.component]
        selected = set(self.selected_names(modules))
        state = {n: p.detach().cpu().contiguous() for n, p in component.named_parameters() if n in selected}
        path = folder / f"{self.component}_finetuned.safetensors"
        save_file(state, str(path), metadata={"method": self.spec.name, "component": self.component})
        return path
