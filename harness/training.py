"""The training loop (accelerate) under a budget meter: samples seen, optimizer steps, seconds."""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import TrainingError
from harness.methods.base import Method
from harness.models.common import DiffusionBundle
from harness.plan import RunPlan


@dataclass
class BudgetMeter:
    """Counts what training spends and says which limit stopped it.

    Seconds run from creation, less the time spent inside ``paused()`` (evaluation is not training),
    plus whatever ``charge`` adds (work done once for several units, e.g. shared class images).
    """

    max_samples: int
    max_steps: int
    max_seconds: float
    steps: int = 0
    samples: int = 0
    started: float = field(default_factory=time.perf_counter)
    stopped_by: str = ""
    excluded: float = 0.0  # seconds spent paused
    charged: float = 0.0  # seconds charged for work done elsewhere

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started - self.excluded + self.charged

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Time inside this block is not charged to the budget."""
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - begin

    def charge(self, seconds: float) -> None:
        """Add seconds of work done outside this meter's clock (e.g. class images generated for another unit)."""
        self.charged += seconds

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
    # Trainable tensors that never received a gradient because the loss does not depend on them
    # (e.g. LoRA on the last layer of SDXL's first text encoder, whose penultimate states are used).
    unreachable_tensors: int = 0
    unreachable_params: int = 0
    # Data parallelism: processes that trained together (their batches summed in samples_seen), how the
    # modules were wrapped, and whether every process ended with the same trained weights.
    world_size: int = 1
    data_parallel: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def peak_memory() -> tuple[int, str]:
    """Peak accelerator memory if on CUDA, else the process's peak resident set size."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated()), "cuda_max_allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process_max_rss"


def _accelerator(plan: RunPlan) -> Any:
    """A fresh Accelerator for this training call, with the plan's mixed precision.

    accelerate keeps one process-wide ``AcceleratorState`` and refuses a second Accelerator with another
    precision ("AcceleratorState has already been initialized and cannot be changed"), so the state of a
    previous call (another run in this process) is dropped first; the process group (``PartialState``)
    is kept. Under several processes, modules are wrapped in DDP with ``find_unused_parameters=True``:
    trainable tensors the loss never reaches (LoRA on the last layer of SDXL's first text encoder) would
    otherwise stop DDP with "Expected to have finished reduction in the prior iteration".
    """
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    from harness import distributed

    precision = plan.training.mixed_precision
    if precision == "fp16" and not torch.cuda.is_available():
        raise TrainingError(
            f"task '{plan.task.name}' ({plan.profile}) asks for fp16 mixed precision, which needs a GPU; "
            "the tiny profile trains in fp32 ('no')"
        )
    distributed.init()
    AcceleratorState._reset_state(reset_partial_state=False)
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if distributed.is_distributed() else []
    return Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available(), kwargs_handlers=handlers)


def step_limit(plan: RunPlan, batches_per_epoch: int) -> int:
    """Optimizer steps allowed: budget, recipe and (if set) epochs x batches per epoch, whichever is least."""
    limits = [plan.task.budget.max_steps, plan.training.max_steps]
    if plan.training.epochs:
        limits.append(plan.training.epochs * batches_per_epoch)
    return min(limits)


def trained_roles(modules: dict) -> list[str]:
    """Roles of the modules holding trainable parameters (e.g. ``unet`` and both text encoders)."""
    return [role for role, module in modules.items() if any(p.requires_grad for p in module.parameters())]


def _lr_scheduler(kind: str, optimizer: Any, max_steps: int) -> Any:
    from diffusers.optimization import get_scheduler

    return get_scheduler(kind, optimizer=optimizer, num_warmup_steps=0, num_training_steps=max_steps)


def _enable_checkpointing(module: Any) -> None:
    if hasattr(module, "enable_gradient_checkpointing"):  # diffusers models
        module.enable_gradient_checkpointing()
    elif hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5
        module.activation_checkpointing_enable()
    elif hasattr(module, "gradient_checkpointing_enable"):  # older transformers
        module.gradient_checkpointing_enable()


def with_prior_half(batch: dict[str, Any]) -> dict[str, Any]:
    """A prior-preservation batch (DreamBooth) as one batch: class images and captions appended after the
    instance ones, ``prior_weight`` kept for the loss (``harness.models.common.diffusion_mse``)."""
    import torch

    if "class_pixel_values" not in batch:
        return batch
    return {"pixel_values": torch.cat([batch["pixel_values"], batch["class_pixel_values"]]),
            "caption": [*batch["caption"], *batch["class_caption"]],
            "prior_weight": float(batch["prior_weight"][0])}


def train(plan: RunPlan, bundle: DiffusionBundle, dataset: Any, method: Method, modules: dict,
          meter: BudgetMeter | None = None, on_step: Any = None, tick: Any = None) -> TrainReport:
    """Train the method's parameters with the family's loss (``bundle.training_loss``) until the budget runs out.

    ``meter`` lets several stages (or class-image generation before them) share one budget; the stage
    itself stops after ``step_limit`` steps of its own. ``on_step(step)`` runs after each step (checkpoints);
    ``tick(1)`` too (progress reporting).
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
    # accelerate deals each process its own batches: an epoch is len(loader) / processes steps
    max_steps = step_limit(plan, math.ceil(len(loader) / accelerator.num_processes))
    # accelerate steps a prepared scheduler once per process per optimizer step
    lr_scheduler = _lr_scheduler(recipe.lr_schedule, optimizer, max_steps * accelerator.num_processes)
    roles = trained_roles(modules)
    for role in roles:
        modules[role].train()
        if recipe.gradient_checkpointing:
            _enable_checkpointing(modules[role])
    *prepared, optimizer, loader, lr_scheduler = accelerator.prepare(*(modules[r] for r in roles), optimizer,
                                                                     loader, lr_scheduler)
    active = {**modules, **dict(zip(roles, prepared, strict=True))}
    device = accelerator.device
    for role, module in modules.items():
        if role not in roles:
            module.to(device)
    noise_rng = torch.Generator().manual_seed(plan.seed + 1 + accelerator.process_index)  # rank 0: as one process
    wrapped = sorted({type(module).__name__ for module in prepared})
    if meter is None:
        meter = BudgetMeter(plan.task.budget.max_samples, max_steps, plan.task.budget.max_seconds)
    stage_end = meter.steps + max_steps
    losses: list[float] = []
    reached = [False] * len(trainable)
    while not meter.exhausted() and meter.steps < stage_end:
        for batch in loader:
            if meter.exhausted() or meter.steps >= stage_end:
                break
            batch = with_prior_half(batch)
            with accelerator.accumulate(*prepared):
                loss = bundle.training_loss(batch, active, noise_rng, device)
                if not torch.isfinite(loss.detach()).all():
                    raise TrainingError(f"method '{plan.method.name}': diverged at step {meter.steps + 1} (loss "
                                        f"{float(loss.detach())}); lower the learning rate "
                                        f"({recipe.learning_rate:g}) or check the data")
                accelerator.backward(loss)
                reached = [seen or p.grad is not None for seen, p in zip(reached, trainable, strict=True)]
                if recipe.max_grad_norm and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(trainable, recipe.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                method.after_step(modules)
            meter.steps += 1
            meter.samples += len(batch["caption"]) * accelerator.num_processes
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(meter.steps)
            if tick is not None:
                tick(1)
    for role, module in zip(roles, prepared, strict=True):
        modules[role].eval()
        accelerator.unwrap_model(module, keep_fp32_wrapper=False)  # sampling must not inherit the training autocast
    if not all(bool(torch.isfinite(p.detach()).all()) for p in trainable):
        raise TrainingError(f"method '{plan.method.name}': diverged: non-finite trained weights after "
                            f"{meter.steps} steps")
    pairs = [(b, p) for b, p, hit in zip(before, trainable, reached, strict=True) if hit]
    changed = sum(int(not torch.equal(b, p.detach().to(b.device))) for b, p in pairs)
    if not pairs or changed < len(pairs):
        raise TrainingError(
            f"method '{plan.method.name}': {len(pairs) - changed} of {len(pairs)} trainable tensors that received "
            f"gradients did not change after {meter.steps} steps ({len(trainable) - len(pairs)} received none)"
        )
    unreachable = [p for p, hit in zip(trainable, reached, strict=True) if not hit]
    memory, memory_kind = peak_memory()
    parallel: dict[str, Any] = {}
    if accelerator.num_processes > 1:
        from harness import distributed

        digests = distributed.gather(_weights_digest(trainable))
        parallel = {"backend": str(accelerator.state.backend), "distributed_type": str(accelerator.distributed_type),
                    "wrapped_as": wrapped, "find_unused_parameters": True,
                    "global_batch": recipe.batch_size * accelerator.num_processes,
                    "weights_in_sync": len(set(digests)) == 1,
                    "losses_by_rank": distributed.gather([round(x, 6) for x in losses])}
    return TrainReport(steps=meter.steps, samples_seen=meter.samples, seconds=round(meter.seconds, 3),
                       stopped_by=meter.stopped_by or "steps", peak_memory_bytes=memory, memory_kind=memory_kind,
                       trainable_params=method.trainable_count(trainable), changed_tensors=changed, losses=losses,
                       unreachable_tensors=len(unreachable), unreachable_params=sum(p.numel() for p in unreachable),
                       world_size=accelerator.num_processes, data_parallel=parallel)


def _weights_digest(tensors: list[Any]) -> str:
    """sha256 over the trained tensors (processes of a data-parallel run must agree on it)."""
    import hashlib

    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()
