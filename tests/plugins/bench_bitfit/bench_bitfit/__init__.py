"""BitFit as a plugin method kind: train only the bias vectors of matching modules.

The contract (``harness.methods.base.Method``): ``attach`` unfreezes or adds what the method
trains (the base class froze everything first), ``save`` writes it and returns the file.
"""

from __future__ import annotations

from pathlib import Path

from harness.methods.base import Method, Modules


class BitFitMethod(Method):
    """Bias-only fine-tuning of the component's modules whose name contains a target pattern."""

    @property
    def patterns(self) -> list[str]:
        return list(self.spec.params.get("target_patterns", ["attn"]))

    def targets(self) -> str:
        return f"bias vectors of {self.component} modules matching {self.patterns}"

    def bias_names(self, modules: Modules) -> list[str]:
        return [name for name, _ in modules[self.component].named_parameters()
                if name.endswith(".bias") and any(p in name.rsplit(".", 1)[0] for p in self.patterns)]

    def attach(self, modules: Modules) -> None:
        wanted = set(self.bias_names(modules))
        for name, param in modules[self.component].named_parameters():
            if name in wanted:
                param.requires_grad_(True)

    def save(self, modules: Modules, folder: Path) -> Path | None:
        from safetensors.torch import save_file

        wanted = set(self.bias_names(modules))
        state = {n: p.detach().cpu().contiguous() for n, p in modules[self.component].named_parameters()
                 if n in wanted}
        path = folder / "bitfit_biases.safetensors"
        save_file(state, str(path), metadata={"method": self.spec.name})
        return path
