"""Which process of a multi-process run this is, and the few collectives the runner needs.

A run launched by ``torchrun`` / ``accelerate launch`` has ``WORLD_SIZE`` > 1 processes: training is
data-parallel (accelerate's DDP wrapper), sampling and scoring are split across processes (``shard``) and
gathered (``gather``); only the main process writes the run's row, its ``run.json`` / ``result.json`` and
talks to the database. With one process every function here is the identity (no process group is created).

The process group is the one accelerate creates (``PartialState``): gloo on CPU, nccl on CUDA. Nothing here
imports torch at module level.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

T = TypeVar("T")


def world_size() -> int:
    """Processes in this run (``WORLD_SIZE`` set by torchrun / accelerate launch; 1 otherwise)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def rank() -> int:
    """This process's global rank (0 = main)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def local_rank() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Create the process group (through accelerate, so that its Accelerator later finds it) when launched
    with several processes; a no-op otherwise or when it exists."""
    if not is_distributed():
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return
    import torch
    from accelerate import PartialState

    # cpu=True is what makes accelerate see a multi-process CPU launch (MULTI_CPU, gloo); without it every
    # process of a CPU torchrun trains alone on the whole data set (DistributedType.NO).
    PartialState(cpu=not torch.cuda.is_available())


def device() -> Any:
    """The device of this process: its local GPU under CUDA, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", local_rank() if is_distributed() else torch.cuda.current_device())
    return torch.device("cpu")


def shard(items: list[T]) -> list[T]:
    """This process's share of ``items``: every ``world_size()``-th item from its rank (all of them with one
    process). Each item keeps its identity (its seed), so the union over processes is the one-process list."""
    return list(items[rank()::world_size()]) if is_distributed() else list(items)


def shard_indices(count: int) -> list[int]:
    return list(range(rank(), count, world_size())) if is_distributed() else list(range(count))


def gather(value: T) -> list[T]:
    """``value`` of every process, by rank (``[value]`` with one process). Every process must call it."""
    if not is_distributed():
        return [value]
    import torch.distributed as dist

    init()
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def unshard(parts: list[list[T]]) -> list[T]:
    """The inverse of ``shard``: per-rank lists (from ``gather``) back in the original order."""
    total = sum(len(p) for p in parts)
    out: list[Any] = [None] * total
    for r, part in enumerate(parts):
        for i, item in enumerate(part):
            out[r + i * len(parts)] = item
    return out


def broadcast(value: T) -> T:
    """The main process's ``value`` on every process."""
    if not is_distributed():
        return value
    import torch.distributed as dist

    init()
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if not is_distributed():
        return
    import torch.distributed as dist

    init()
    dist.barrier()
