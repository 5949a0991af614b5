"""The microworld base model (``harness.micro``): the SD-1.x-shaped classes (UNet2DConditionModel,
AutoencoderKL, CLIPTextModel, the real CLIP BPE tokenizer), pretrained by ``bench micro build`` on the
held-in part of the procedural world and shipped with the project.

Its protocol is the CPU one: micro tasks run on their ``full`` profile. ``--model-path DIR`` loads a
rebuilt set of weights (``bench micro build --out DIR``) instead of the shipped files.
"""

from __future__ import annotations

from typing import Any

from harness.models.common import DiffusionBundle

FAMILY = "micro"
SHIPPED = "microworld"  # the task's hub_id: the weights shipped in harness/micro/weights


def load_real(source: str, revision: str | None) -> DiffusionBundle:
    """The shipped microworld base (``source == 'microworld'``) or one rebuilt into the folder ``source``."""
    from harness.micro.base import load_base

    return load_base(None if source == SHIPPED else source)


def build_tiny() -> DiffusionBundle:
    """Micro tasks have no tiny sibling: their full protocol already runs on a CPU."""
    from harness.specs import SpecError

    raise SpecError("microworld tasks have no 'tiny' profile: their full protocol runs on a CPU in about a "
                    "minute (drop --profile)")


def build_meta() -> dict[str, Any]:
    """The microworld architecture without weights (small enough to build for real)."""
    from harness.micro.base import build_modules

    unet, vae, text_encoder = build_modules()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder}
