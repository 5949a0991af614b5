"""The method contract: what a fine-tuning method must provide to the runner.

A method receives the base model's modules by role (``unet``, ``vae``, ``text_encoder``),
freezes what it does not train, attaches whatever it adds, and returns the parameters the
optimizer may touch. Third-party methods implement the same class and expose it through the
``bench.methods`` entry-point group (name = kind); see docs/methods_plugins.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.specs import MethodSpec

Modules = dict[str, Any]  # role -> torch.nn.Module


class Method:
    """Base class: a frozen base with nothing trainable. Subclasses override ``attach``."""

    needs_subjects = False  # True: trains per subject, only on tasks with the dreambooth data adapter

    def __init__(self, spec: MethodSpec) -> None:
        self.spec = spec

    @property
    def component(self) -> str:
        """The module role the method trains (``unet`` unless its params say otherwise)."""
        return str(self.spec.params.get("component", "unet"))

    def targets(self) -> str:
        """Human-readable description of what the method selects, for error messages."""
        return "nothing (frozen base)"

    def prepare(self, modules: Modules) -> list[Any]:
        """Freeze every module, let the method attach or unfreeze its part; return trainable params."""
        for module in modules.values():
            module.requires_grad_(False)
        self.attach(modules)
        return [p for m in modules.values() for p in m.parameters() if p.requires_grad]

    def attach(self, modules: Modules) -> None:
        """Add adapters or unfreeze parameters. The base class trains nothing."""

    def trainable_count(self, params: list[Any]) -> int:
        """How many parameters the method really trains (a method that masks rows counts only those)."""
        return sum(p.numel() for p in params)

    def after_step(self, modules: Modules) -> None:
        """Called after every optimizer step (e.g. to restore embedding rows that must not change)."""

    def adapter_size(self, trainable: int) -> tuple[int, str] | None:
        """Bytes of the tensors ``save`` writes for ``trainable`` parameters (header excluded) and how that
        was computed; trained weights are saved in float32 unless a method says otherwise. None: no file."""
        return (4 * trainable, "computed: params x 4 B (fp32)") if trainable else None

    def save(self, modules: Modules, folder: Path) -> Path | None:
        """Write the trained part in a loadable format; returns the file, or None if nothing to save."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Anything the method wants recorded with the run (e.g. adapter config)."""
        return {}
