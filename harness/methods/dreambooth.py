"""``dreambooth`` and ``dreambooth_lora``: the subject's photos captioned "a photo of sks {class}",
plus the prior-preservation loss on class images ("a photo of a {class}") that the FROZEN base
generates before anything is attached.

Prior preservation is a detail of the training set and the loss (as in diffusers' DreamBooth script):
``training_set`` pairs each instance example with a class example and the family's loss weighs the
class half by ``prior_loss_weight``. Class images are generated once per class noun and run (seeded per
image like every sample), reused by later subjects of the same class, and their generation time is
charged to the budget meter of every subject that uses them (count and time recorded in its details).
``dreambooth`` fine-tunes the whole UNet (kept as a diffusers UNet folder, fp16 weights, only with
``params.save_unet: true``; by default nothing is kept per subject);
``dreambooth_lora`` trains peft LoRA on the UNet instead (saved in the ``load_lora_weights`` format).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from harness.methods.base import FitContext, Method, Modules, Params, instance_dataset
from harness.methods.lora import LoraMethod, LoraParams
from harness.prompts import EvalPrompt
from harness.specs_data import Float, Int

UNET_FOLDER = "unet"
# Params read by DreamBoothMethod (the rest of a ``dreambooth_lora`` spec's params describe its LoRA).
DREAMBOOTH_PARAMS = frozenset({"prior_preservation", "class_images", "class_prompt", "prior_loss_weight", "save_unet"})


class DreamBoothParams(Params):
    prior_preservation: bool = True
    class_images: Int = Field(default=200, ge=1, le=100_000)
    class_prompt: str = Field(default="a photo of a {1}", max_length=1000)
    prior_loss_weight: Float = Field(default=1.0, ge=0, le=1000, allow_inf_nan=False)
    save_unet: bool = True


class DreamBoothLoraParams(DreamBoothParams, LoraParams):
    """DreamBooth's params plus one LoRA adapter's (or ``adapters``)."""


class PriorPairs:
    """Instance examples paired with class examples; a batch carries both halves and the prior weight."""

    def __init__(self, instance: Any, classes: Any, prior_weight: float) -> None:
        self.instance, self.classes, self.prior_weight = instance, classes, prior_weight

    def __len__(self) -> int:
        return max(len(self.instance), len(self.classes))

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.instance[index % len(self.instance)]
        prior = self.classes[index % len(self.classes)]
        return {**item, "class_pixel_values": prior["pixel_values"], "class_caption": prior["caption"],
                "prior_weight": self.prior_weight}


def class_images(ctx: FitContext, count: int, prompt_template: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Class images of the subject's class from the frozen base (cached per class noun within the run); the
    generation time is charged to this unit's budget meter whether the images were made now or reused."""
    noun = ctx.unit.subject.class_noun
    cache = ctx.shared.setdefault("class_images", {})
    cached = cache.get(noun)
    reused = cached is not None and cached["count"] >= count
    if not reused:
        slug = "_".join(noun.split())
        prompt = EvalPrompt("class_prior", f"prior.{slug}", prompt_template.format("", noun).replace("  ", " "),
                            noun, count)
        folder = ctx.run_dir / "class_images" / slug
        started = ctx.meter.seconds
        size = ctx.plan.task.data.resolution
        arrays = [np.asarray(image.convert("RGB").resize((size, size)), dtype=np.uint8)
                  for image in ctx.generate(prompt, folder)]
        cached = {"images": arrays, "count": count, "seconds": round(ctx.meter.seconds - started, 3),
                  "prompt": prompt.text, "folder": str(folder)}
        cache[noun] = cached
    else:
        ctx.meter.charge(cached["seconds"])
    record = {"class_images": count, "class_image_seconds": cached["seconds"], "class_prompt": cached["prompt"],
              "class_images_reused": reused, "class_image_folder": cached["folder"]}
    return cached["images"][:count], record


def class_dataset(ctx: FitContext, images: list[np.ndarray], prompt: str) -> Any:
    from harness.data.datasets import CaptionedImages

    spec = ctx.plan.task.data
    return CaptionedImages(np.stack(images), [prompt] * len(images), [ctx.unit.subject.class_noun] * len(images),
                           spec.resolution, spec.interpolation)


class DreamBoothMethod(Method):
    """Full UNet fine-tuning with identifier ``sks`` and (optionally) prior preservation, per subject."""

    per_subject = True
    params_schema = DreamBoothParams

    @property
    def component(self) -> str:
        return "unet"

    @property
    def prior_preservation(self) -> bool:
        return bool(self.spec.params.get("prior_preservation", True))

    def targets(self) -> str:
        return "every UNet parameter"

    def attach(self, modules: Modules) -> None:
        modules["unet"].requires_grad_(True)

    def training_set(self, ctx: FitContext) -> Any:
        """Instance photos, paired with frozen-model class images when prior preservation is on."""
        instances = instance_dataset(ctx, self.identifier(ctx.plan.task))
        if not self.prior_preservation:
            return instances
        params = self.spec.params
        template = str(params.get("class_prompt", "a photo of a {1}"))
        images, record = class_images(ctx, int(params.get("class_images", 200)), template)
        ctx.details |= record
        prompt = record["class_prompt"]
        return PriorPairs(instances, class_dataset(ctx, images, prompt), float(params.get("prior_loss_weight", 1.0)))

    @property
    def save_unet(self) -> bool:
        """Keep the fine-tuned UNet per subject? Default no: on SD 2.1 it is 1.7 GB (fp16) per subject, about
        52 GB for the 30 subjects of one method; samples and scores do not need it."""
        return bool(self.spec.params.get("save_unet", False))

    def adapter_size(self, trainable: int) -> tuple[int, str] | None:
        if not trainable:
            return None
        if not self.save_unet:
            return 0, (f"nothing kept per subject (params.save_unet: false, the default; true keeps the fp16 "
                       f"UNet: {2 * trainable / 2**20:,.1f} MiB per subject)")
        return 2 * trainable, "computed: params x 2 B (fp16 UNet) per subject"

    def save(self, modules: Modules, folder: Path) -> Path | None:
        """The UNet as a diffusers folder with fp16 weights (``UNet2DConditionModel.from_pretrained(dir,
        variant='fp16')``) when ``params.save_unet`` is true; by default nothing (1.7 GB per subject on SD 2.1)."""
        import torch
        from safetensors.torch import save_file

        if not self.save_unet:
            return None
        target = folder / UNET_FOLDER
        target.mkdir(parents=True, exist_ok=True)
        unet = modules["unet"]
        unet.save_config(target)
        state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in unet.state_dict().items()}
        path = target / "diffusion_pytorch_model.fp16.safetensors"
        save_file(state, str(path), metadata={"format": "pt"})
        return path


class DreamBoothLoraMethod(DreamBoothMethod, LoraMethod):
    """DreamBooth with peft LoRA on the UNet attention projections instead of the full UNet."""

    params_schema = DreamBoothLoraParams

    component = LoraMethod.component
    targets = LoraMethod.targets
    attach = LoraMethod.attach
    save = LoraMethod.save
    adapter_size = LoraMethod.adapter_size

    def lora_params(self) -> dict[str, Any]:
        """The LoRA keys of the params (rank, alpha, target_modules, ...); the DreamBooth ones are read above."""
        return {k: v for k, v in self.spec.params.items() if k not in DREAMBOOTH_PARAMS}
