"""The method contract: what a fine-tuning method provides to the runner, and what the runner gives it.

A run trains one or more *units* (``all`` for most tasks, one per subject on subject tasks). For each
unit the runner builds a ``FitContext`` and calls ``method.fit(ctx)``. The default ``fit`` is the whole
recipe for most methods:

    bind(ctx)                   adapt tokenizer / text encoder first (textual inversion adds its token)
    training_set(ctx)           the unit's captioned images (DreamBooth adds frozen-base class images)
    prepare(modules)            freeze everything, ``attach`` the method's part, return trainable params
    ctx.train(self, dataset)    the task's loop under the unit's budget meter
    ctx.save(self, modules)     ``save`` writes the trained part; its file is recorded

A method declares what it trains (``attach``), what it saves (``save``), the word it adds to prompts
(``identifier``) and, if it differs, its training set; a method with several stages (TI-then-fine-tune)
overrides ``fit`` alone. Methods never import the training loop or the sampler: ``ctx`` carries them.
Third-party methods implement the same class and expose it through the ``bench.methods`` entry-point
group (name = kind); see docs/methods_plugins.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.data.datasets import TrainingUnit
from harness.specs import MethodSpec, TaskSpec, describe_error

Modules = dict[str, Any]  # role -> torch.nn.Module


@dataclass
class FitContext:
    """Everything one unit's training sees. The runner binds the callables:

    - ``train(method, dataset, modules, plan=None, on_step=None) -> TrainReport``: the task's loop under
      ``meter`` (``plan`` replaces the run's plan for a stage with its own recipe);
    - ``checkpoint(step)``: sample the unit's prompts with the current weights, recorded at ``step``;
    - ``generate(prompt, folder) -> list[PIL.Image]``: images of an ``EvalPrompt`` from the current
      (frozen, when called before ``prepare``) weights, charged to the budget meter;
    - ``save(method, modules)``: the method's ``save`` into ``folder``, its file recorded in ``details``.
    """

    plan: Any  # harness.plan.RunPlan
    bundle: Any  # harness.models.common.DiffusionBundle
    unit: TrainingUnit
    folder: Path  # where this unit's adapter goes (the run folder, or run_dir/subjects/<name>)
    run_dir: Path
    meter: Any  # harness.training.BudgetMeter shared by every stage of the unit
    train: Callable[..., Any]
    checkpoint: Callable[[int], None]
    generate: Callable[[Any, Path], list[Any]]
    save: Callable[[Any, Modules], Path | None]
    shared: dict[str, Any] = field(default_factory=dict)  # run-wide cache across units (class images)
    details: dict[str, Any] = field(default_factory=dict)  # recorded in the run's details under the unit


class Method:
    """Base class: a frozen base with nothing trainable. Subclasses override ``attach`` (and ``save``)."""

    per_subject = False  # True: trains one subject at a time, only on tasks whose data has subjects
    # The pydantic model of the kind's ``params`` (unknown keys refused); None: the kind checks nothing.
    params_schema: ClassVar[type[BaseModel] | None] = None

    @classmethod
    def validate_params(cls, params: dict[str, Any]) -> None:
        """Raise ValueError (one line naming the param, e.g. ``field 'params.rank': ...``) when ``params``
        are not what this kind reads. ``bench validate`` / ``run`` / ``submit`` call it before anything runs;
        a plugin may set ``params_schema`` or override this."""
        if cls.params_schema is None:
            return
        try:
            cls.params_schema.model_validate(params)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ValueError(describe_error({**error, "loc": ("params", *error["loc"])})) from None

    def __init__(self, spec: MethodSpec) -> None:
        self.spec = spec

    @property
    def component(self) -> str:
        """The module role the method trains (``unet`` unless its params say otherwise)."""
        return str(self.spec.params.get("component", "unet"))

    def targets(self) -> str:
        """Human-readable description of what the method selects, for error messages."""
        return "nothing (frozen base)"

    def identifier(self, task: TaskSpec) -> str | None:
        """The word or token that stands for the subject in prompts (the task's, e.g. ``sks``); None when
        the task has no subjects."""
        return getattr(task.data, "identifier", None)

    def bind(self, ctx: FitContext) -> None:
        """Adapt the tokenizer / text encoder to the unit before anything is prepared (TI adds its token)."""

    def training_set(self, ctx: FitContext) -> Any:
        """The unit's training set: the task's captioned images, or the subject's photos captioned with the
        task's instance caption and this method's identifier."""
        if ctx.unit.subject is None:
            return ctx.unit.dataset
        return instance_dataset(ctx, self.identifier(ctx.plan.task))

    def prepare(self, modules: Modules) -> list[Any]:
        """Freeze every module, let the method attach or unfreeze its part; return trainable params."""
        for module in modules.values():
            module.requires_grad_(False)
        self.attach(modules)
        return [p for m in modules.values() for p in m.parameters() if p.requires_grad]

    def attach(self, modules: Modules) -> None:
        """Add adapters or unfreeze parameters. The base class trains nothing."""

    def fit(self, ctx: FitContext) -> list[Any]:
        """Train one unit; returns the TrainReports of its stages (the default recipe has one)."""
        self.bind(ctx)
        dataset = self.training_set(ctx)  # before prepare: class images come from the frozen base
        modules = ctx.bundle.modules()
        self.prepare(modules)
        report = ctx.train(self, dataset, modules)
        ctx.save(self, modules)
        return [report]

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


class Params(BaseModel):
    """Base of the kinds' param schemas: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def instance_dataset(ctx: FitContext, identifier: str | None) -> Any:
    """The subject's photos, each captioned with the task's instance caption ("a photo of sks dog")."""
    import numpy as np

    from harness.data.datasets import CaptionedImages

    spec, subject = ctx.plan.task.data, ctx.unit.subject
    caption = spec.instance_caption.format(identifier, subject.class_noun)
    count = len(ctx.unit.photos)
    return CaptionedImages(np.stack(ctx.unit.photos), [caption] * count, [subject.name] * count, spec.resolution,
                           spec.interpolation)
