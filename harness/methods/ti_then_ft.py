"""``ti_then_ft``: textual inversion of an adjective token, then UNet fine-tuning with it frozen.

Stage 1 adds ``params.token`` (``<rare>``) initialised from ``params.init_word`` ("rare") and trains only
its embedding row on "a photo of <rare> {class}" (``params.stage1``: ~100 steps at 5e-4). Stage 2 freezes
the text encoder (the learned row included) and fine-tunes the whole UNet (``params.stage2``: 200-400
steps at 5e-6), no prior preservation. Every ``params.checkpoint_every`` stage-2 steps, and at the end,
the subject's prompts are sampled (recorded with ``checkpoint`` = stage-2 step); ``params.headline``
states which checkpoint becomes the headline row (the metrics layer applies the rule). Both stages share
the subject's budget meter; checkpoint sampling pauses it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.methods.base import FitContext, Method, Modules, Params, instance_dataset
from harness.methods.dreambooth import DreamBoothMethod
from harness.methods.textual_inversion import TextualInversionMethod
from harness.plan import RunPlan
from harness.specs import MAX_STEPS, MethodSpec, TaskSpec, TrainingSpec
from harness.specs_data import Int


class HeadlineParams(Params):
    rule: Literal["final", "best"] = "final"
    metric: str | None = None
    prompt_set: str | None = None


class TiThenFtParams(Params):
    token: str = Field(default="<rare>", pattern=r"^\S+$", max_length=100)
    init_word: str = Field(default="rare", min_length=1, max_length=100)
    stage1: TrainingSpec = TrainingSpec()
    stage2: TrainingSpec = TrainingSpec()
    checkpoint_every: Int = Field(default=200, ge=1, le=MAX_STEPS)
    headline: HeadlineParams = HeadlineParams()
    save_unet: bool = True


def stage_plan(plan: RunPlan, overrides: dict[str, Any]) -> RunPlan:
    """The plan with one stage's training fields (learning rate, steps, ...) in place of the method's."""
    training = plan.training.model_copy(update=overrides)
    return plan.model_copy(update={"training": training})


class TiThenFtMethod(Method):
    """Two stages on one subject; what each stage trains is a TextualInversionMethod / DreamBoothMethod."""

    per_subject = True
    params_schema = TiThenFtParams

    @property
    def component(self) -> str:
        return "unet"

    @property
    def token(self) -> str:
        return str(self.spec.params.get("token", "<rare>"))

    @property
    def checkpoint_every(self) -> int:
        return int(self.spec.params.get("checkpoint_every", 200))

    def identifier(self, task: TaskSpec) -> str:
        return self.token

    def targets(self) -> str:
        return f"stage 1: the embedding row of '{self.token}'; stage 2: every UNet parameter"

    def stage_methods(self) -> tuple[TextualInversionMethod, DreamBoothMethod]:
        """The two stages as methods of their own (the spec's name and version, stage suffixes)."""
        params = self.spec.params
        token = {"token": self.token, "init_word": str(params.get("init_word", "rare"))}
        stage1 = MethodSpec(name=f"{self.spec.name}_stage1", version=self.spec.version, kind="textual_inversion",
                            params=token)
        stage2 = MethodSpec(name=f"{self.spec.name}_stage2", version=self.spec.version, kind="dreambooth",
                            params={"prior_preservation": False, "save_unet": params.get("save_unet", False)})
        return TextualInversionMethod(stage1), DreamBoothMethod(stage2)

    def attach(self, modules: Modules) -> None:
        """Accounting view (both stages' parameters): the token's row and the UNet."""
        self._embedding = modules["text_encoder"].get_input_embeddings().weight
        self._embedding.requires_grad_(True)
        modules["unet"].requires_grad_(True)

    def trainable_count(self, params: list[Any]) -> int:
        """Every UNet parameter plus one embedding row (the matrix itself is restored but for that row)."""
        return sum(p.numel() if p is not self._embedding else p.shape[1] for p in params)

    def adapter_size(self, trainable: int) -> tuple[int, str] | None:
        """The token row in float32, plus the UNet in float16 only when ``params.save_unet`` is true (default
        false: the UNet is not kept)."""
        row = self._embedding.shape[1]
        if not self.spec.params.get("save_unet", False):
            return 4 * row, (f"computed: token row x 4 B (fp32); UNet not kept (params.save_unet: false, the "
                             f"default; true adds {2 * (trainable - row) / 2**20:,.1f} MiB fp16 per subject)")
        return 2 * (trainable - row) + 4 * row, "computed: UNet params x 2 B (fp16) + token row x 4 B (fp32)"

    def fit(self, ctx: FitContext) -> list[Any]:
        """Stage 1 (the token), then stage 2 (the UNet) with checkpoints every ``checkpoint_every`` steps."""
        stage1, stage2 = self.stage_methods()
        params = self.spec.params
        modules = ctx.bundle.modules()
        stage1.bind(ctx)
        stage1.prepare(modules)
        dataset = instance_dataset(ctx, self.token)
        first = ctx.train(stage1, dataset, modules, plan=stage_plan(ctx.plan, dict(params.get("stage1", {}))))
        ctx.details["token_file"] = str(stage1.save(modules, ctx.folder))
        stage2.prepare(modules)  # freezes everything (text encoder, learned row) and unfreezes the UNet
        start = ctx.meter.steps
        sampled: list[int] = []

        def checkpoint(total_steps: int) -> None:
            step = total_steps - start
            if step % self.checkpoint_every == 0:
                ctx.checkpoint(step)
                sampled.append(step)

        second = ctx.train(stage2, dataset, modules, plan=stage_plan(ctx.plan, dict(params.get("stage2", {}))),
                           on_step=checkpoint)
        final = ctx.meter.steps - start
        if final not in sampled:
            ctx.checkpoint(final)
            sampled.append(final)
        ctx.save(stage2, modules)
        ctx.details |= {"stage_steps": [first.steps, final], "checkpoints": sampled}
        return [first, second]
