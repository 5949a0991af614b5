"""Shared fixtures: isolated cache and a DuckDB filled by real tiny runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.plan import build_plan
from harness.runner import run
from harness.store import Store

TASK = "cifar_alignment"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Synthetic data and the derived tokenizer go to a per-session folder, never ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BENCH_CACHE", str(tmp_path_factory.mktemp("bench_cache")))
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """Tiny models on a shared CPU: one intra-op thread avoids oversubscription (measured: a tiny SDXL
    training call took 8 s with torch's default threads under load, 0.3 s with one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """frozen, xattn_ft and lora_unet_r1 on tiny cifar_alignment, in one DuckDB file."""
    root = tmp_path_factory.mktemp("tiny_runs")
    store = Store(root / "bench.duckdb")
    outcomes = {}
    for method in ("frozen", "xattn_ft", "lora_unet_r1"):
        plan = build_plan(TASK, method, "tiny", seed=0)
        outcomes[method] = run(plan, store, root / "runs")
    return {"store": store, "root": root, "outcomes": outcomes}


def png_bytes(run_dir: Path) -> dict[str, bytes]:
    """Every sample PNG of a run folder by file name."""
    return {p.name: p.read_bytes() for p in sorted((run_dir / "samples").glob("*.png"))}
