"""The training loop (accelerate) under a budget meter: samples seen, optimizer steps, seconds."""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import TrainingError
from harness.methods.base import Method
from harness.models.common import DiffusionBundle
from harness.plan import RunPlan


@dataclass
class BudgetMeter:
    """Counts what training spends and says which limit stopped it."""

    max_samples: int
    max_steps: int
    max_seconds: float
    steps: int = 0
    samples: int = 0
    started: float = field(default_factory=time.perf_counter)
    stopped_by: str = ""

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def exhausted(self) -> bool:
        """True once any limit is reached; records the first one that was."""
        for name, spent, limit in (("steps", self.steps, self.max_steps),
                                   ("samples", self.samples, self.max_samples),
                                   ("seconds", self.seconds, self.max_seconds)):
            if spent >= limit:
                self.stopped_by = self.stopped_by or name
                return True
        return False


@dataclass
class TrainReport:
    """Budget spent and what happened to the weights."""

    steps: int
    samples_seen: int
    seconds: float
    stopped_by: str
    peak_memory_bytes: int
    memory_kind: str
    trainable_params: int
    changed_tensors: int
    losses: list[float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def peak_memory() -> tuple[int, str]:
    """Peak accelerator memory if on CUDA, else the process's peak resident set size."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated()), "cuda_max_allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process_max_rss"


def _accelerator(plan: RunPlan) -> Any:
    import torch
    from accelerate import Accelerator

    precision = plan.training.mixed_precision
    if precision == "fp16" and not torch.cuda.is_available():
        raise TrainingError(
            f"task '{plan.task.name}' ({plan.profile}) asks for fp16 mixed precision, which needs a GPU; "
            "the tiny profile trains in fp32 ('no')"
        )
    return Accelerator(mixed_precision=precision)


def _instance_and_prior(batch: dict) -> tuple[Any, list[str], float | None]:
    """Pixels and captions of a batch; a prior-preservation batch appends its class half (DreamBooth)."""
    import torch

    if "class_pixel_values" not in batch:
        return batch["pixel_values"], list(batch["caption"]), None
    pixels = torch.cat([batch["pixel_values"], batch["class_pixel_values"]])
    return pixels, [*batch["caption"], *batch["class_caption"]], float(batch["prior_weight"][0])


def _loss(prediction: Any, target: Any, prior_weight: float | None) -> Any:
    """MSE; with prior preservation, instance MSE + weight x class MSE (each over its half of the batch)."""
    import torch.nn.functional as F

    if prior_weight is None:
        return F.mse_loss(prediction.float(), target.float())
    instance_pred, class_pred = prediction.float().chunk(2)
    instance_target, class_target = target.float().chunk(2)
    return F.mse_loss(instance_pred, instance_target) + prior_weight * F.mse_loss(class_pred, class_target)


def train(plan: RunPlan, bundle: DiffusionBundle, dataset: Any, method: Method, modules: dict,
          meter: BudgetMeter | None = None, on_step: Any = None) -> TrainReport:
    """Train the method's parameters with the noise-prediction loss until the budget runs out.

    ``meter`` lets several stages (or class-image generation before them) share one budget; the stage
    itself stops after ``plan.training.max_steps`` steps. ``on_step(step)`` runs after each step.
    """
    import torch

    trainable = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    if not trainable:
        raise TrainingError(
            f"method '{plan.method.name}' has zero trainable parameters: {method.targets()} matched nothing; "
            "refusing to train"
        )
    before = [p.detach().clone() for p in trainable]
    accelerator = _accelerator(plan)
    recipe = plan.training
    optimizer = torch.optim.AdamW(trainable, lr=recipe.learning_rate, betas=recipe.betas,
                                  weight_decay=recipe.weight_decay)
    loader = torch.utils.data.DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(plan.seed))
    if len(loader) == 0:
        raise TrainingError(f"task '{plan.task.name}': {len(dataset)} training images < batch size "
                            f"{recipe.batch_size}")
    trained = modules[method.component]
    trained.train()
    trained, optimizer, loader = accelerator.prepare(trained, optimizer, loader)
    device = accelerator.device
    for role, module in modules.items():
        if role != method.component:
            module.to(device)
    unet = trained if method.component == "unet" else modules["unet"]
    text_trains = any(p.requires_grad for p in modules["text_encoder"].parameters())
    noise_rng = torch.Generator().manual_seed(plan.seed + 1)
    scheduler = bundle.noise_scheduler
    if meter is None:
        meter = BudgetMeter(plan.task.budget.max_samples, min(plan.task.budget.max_steps, recipe.max_steps),
                            plan.task.budget.max_seconds)
    stage_end = meter.steps + recipe.max_steps
    losses: list[float] = []
    while not meter.exhausted() and meter.steps < stage_end:
        for batch in loader:
            if meter.exhausted() or meter.steps >= stage_end:
                break
            with accelerator.accumulate(trained):
                pixels, captions, prior_weight = _instance_and_prior(batch)
                with torch.no_grad():
                    pixels = pixels.to(device, dtype=bundle.vae.dtype)
                    latents = bundle.vae.encode(pixels).latent_dist.sample(generator=noise_rng) * bundle.latent_scale
                with torch.set_grad_enabled(text_trains):
                    hidden = bundle.encode_prompts(captions)
                noise = torch.randn(latents.shape, generator=noise_rng).to(device, latents.dtype)
                steps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],),
                                      generator=noise_rng).to(device)
                noisy = scheduler.add_noise(latents, noise, steps)
                if scheduler.config.prediction_type == "v_prediction":
                    target = scheduler.get_velocity(latents, noise, steps)
                else:
                    target = noise
                prediction = unet(noisy, steps, hidden).sample
                loss = _loss(prediction, target, prior_weight)
                accelerator.backward(loss)
                if recipe.max_grad_norm and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(trainable, recipe.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                method.after_step(modules)
            meter.steps += 1
            meter.samples += latents.shape[0] * accelerator.num_processes
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(meter.steps)
    trained.eval()
    accelerator.unwrap_model(trained, keep_fp32_wrapper=False)  # sampling must not inherit the training autocast
    changed = sum(int(not torch.equal(b, p.detach().to(b.device))) for b, p in zip(before, trainable, strict=True))
    if changed < len(trainable):
        raise TrainingError(
            f"method '{plan.method.name}': {len(trainable) - changed} of {len(trainable)} trainable tensors "
            f"did not change after {meter.steps} steps"
        )
    memory, memory_kind = peak_memory()
    return TrainReport(steps=meter.steps, samples_seen=meter.samples, seconds=round(meter.seconds, 3),
                       stopped_by=meter.stopped_by or "steps", peak_memory_bytes=memory, memory_kind=memory_kind,
                       trainable_params=method.trainable_count(trainable), changed_tensors=changed, losses=losses)
