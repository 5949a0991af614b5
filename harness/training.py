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


def train(plan: RunPlan, bundle: DiffusionBundle, dataset: Any, method: Method, modules: dict,
          on_step: Any = None) -> TrainReport:
    """Train the method's parameters with the noise-prediction loss until the budget runs out.

    ``on_step(1)`` is called after every optimizer step (progress reporting), if given."""
    import torch
    import torch.nn.functional as F

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
    noise_rng = torch.Generator().manual_seed(plan.seed + 1)
    scheduler = bundle.noise_scheduler
    meter = BudgetMeter(plan.task.budget.max_samples, min(plan.task.budget.max_steps, recipe.max_steps),
                        plan.task.budget.max_seconds)
    losses: list[float] = []
    while not meter.exhausted():
        for batch in loader:
            if meter.exhausted():
                break
            with accelerator.accumulate(trained):
                with torch.no_grad():
                    pixels = batch["pixel_values"].to(device, dtype=bundle.vae.dtype)
                    latents = bundle.vae.encode(pixels).latent_dist.sample(generator=noise_rng) * bundle.latent_scale
                    hidden = bundle.encode_prompts(list(batch["caption"]))
                noise = torch.randn(latents.shape, generator=noise_rng).to(device, latents.dtype)
                steps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],),
                                      generator=noise_rng).to(device)
                noisy = scheduler.add_noise(latents, noise, steps)
                if scheduler.config.prediction_type == "v_prediction":
                    target = scheduler.get_velocity(latents, noise, steps)
                else:
                    target = noise
                prediction = trained(noisy, steps, hidden).sample
                loss = F.mse_loss(prediction.float(), target.float())
                accelerator.backward(loss)
                if recipe.max_grad_norm and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(trainable, recipe.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            meter.steps += 1
            meter.samples += latents.shape[0] * accelerator.num_processes
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(1)
    trained.eval()
    changed = sum(int(not torch.equal(b, p.detach().to(b.device))) for b, p in zip(before, trainable, strict=True))
    if changed < len(trainable):
        raise TrainingError(
            f"method '{plan.method.name}': {len(trainable) - changed} of {len(trainable)} trainable tensors "
            f"did not change after {meter.steps} steps"
        )
    memory, memory_kind = peak_memory()
    return TrainReport(steps=meter.steps, samples_seen=meter.samples, seconds=round(meter.seconds, 3),
                       stopped_by=meter.stopped_by, peak_memory_bytes=memory, memory_kind=memory_kind,
                       trainable_params=sum(p.numel() for p in trainable), changed_tensors=changed, losses=losses)
