"""Per-subject training (dreambooth_subjects): the context a method trains one subject in, and the
default recipe (instance photos captioned "a photo of {identifier} {class}", the task's loop).

A ``SubjectMethod`` may replace ``fit_subject`` (class images, stages, checkpoints); any other method
kind (``lora``, ``attn_finetune``) trains a subject through ``fit_default``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.methods.base import Method
from harness.models.common import DiffusionBundle
from harness.plan import RunPlan
from harness.specs import TaskSpec
from harness.specs_data import SubjectSpec


@dataclass
class SubjectContext:
    """Everything one subject's training sees; ``sample(step)`` generates and records a checkpoint."""

    plan: RunPlan
    bundle: DiffusionBundle
    subject: SubjectSpec
    photos: list[np.ndarray]
    folder: Path  # run_dir / "subjects" / <subject>: adapters and logs of this subject
    run_dir: Path
    meter: Any  # harness.training.BudgetMeter shared by every stage (and class-image generation)
    sample: Callable[[int], None]
    class_cache: dict[str, Any] = field(default_factory=dict)  # class noun -> generated class images (run-wide)
    details: dict[str, Any] = field(default_factory=dict)  # recorded in the run's details under the subject


def instance_dataset(ctx: SubjectContext, identifier: str) -> Any:
    """The subject's photos, each captioned with the task's instance caption."""
    from harness.data import CaptionedImages

    spec = ctx.plan.task.data
    caption = spec.instance_caption.format(identifier, ctx.subject.class_noun)
    count = len(ctx.photos)
    return CaptionedImages(np.stack(ctx.photos), [caption] * count, [ctx.subject.name] * count, spec.resolution,
                           spec.interpolation)


def fit_default(method: Method, ctx: SubjectContext, identifier: str) -> list[Any]:
    """Prepare the method, train it on the subject's photos under the shared meter, save its adapter."""
    from harness.training import train

    modules = ctx.bundle.modules()
    method.prepare(modules)
    report = train(ctx.plan, ctx.bundle, instance_dataset(ctx, identifier), method, modules, meter=ctx.meter)
    adapter = method.save(modules, ctx.folder)
    if adapter is not None:
        ctx.details["adapter_file"] = str(adapter)
    return [report]


class SubjectMethod(Method):
    """A method that knows about subjects: its own identifier and, optionally, its own recipe."""

    needs_subjects = True

    def identifier(self, task: TaskSpec) -> str:
        """The word or token that stands for the subject in prompts (the task's ``sks`` by default)."""
        return task.data.identifier

    def bind(self, bundle: DiffusionBundle, subject: SubjectSpec) -> None:
        """Adapt the tokenizer / text encoder to the subject before anything is prepared (TI adds its token)."""

    def fit_subject(self, ctx: SubjectContext) -> list[Any]:
        """Train one subject; returns the TrainReports of its stages."""
        self.bind(ctx.bundle, ctx.subject)
        return fit_default(self, ctx, self.identifier(ctx.plan.task))
