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


class SubjectBitFitMethod(BitFitMethod):
    """BitFit per subject (DreamBooth-style): one set of biases per subject, trained on its photos captioned
    with this method's own identifier word, plus frozen-base images of the subject's class to keep the
    class prior. Shows the per-subject half of the contract: ``per_subject``, ``identifier``, ``training_set``.
    """

    per_subject = True

    def identifier(self, task):
        return str(self.spec.params.get("identifier", "zwx"))

    def training_set(self, ctx):
        """The subject's photos (default captioning with ``identifier``) followed by ``class_images``
        frozen-base images of "a photo of a {class}", generated through ``ctx.generate`` (charged to the
        unit's budget)."""
        import numpy as np

        from harness.data import CaptionedImages
        from harness.prompts import EvalPrompt

        instances = super().training_set(ctx)
        count = int(self.spec.params.get("class_images", 0))
        if not count:
            return instances
        noun = ctx.unit.subject.class_noun
        prompt = EvalPrompt("class_prior", f"prior.{noun}", f"a photo of a {noun}", noun, count)
        spec = ctx.plan.task.data
        size = spec.resolution
        generated = [np.asarray(im.convert("RGB").resize((size, size)), dtype=np.uint8)
                     for im in ctx.generate(prompt, ctx.folder / "class_images")]
        images = np.concatenate([np.stack(ctx.unit.photos), np.stack(generated)])
        captions = list(instances.captions) + [prompt.text] * count
        return CaptionedImages(images, captions, list(instances.groups) + [noun] * count, spec.resolution,
                               spec.interpolation)
