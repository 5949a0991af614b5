"""Multi-process runs: ``torchrun --nproc_per_node 2`` on CPU (gloo, the code path of two GPUs).

One completed run row (the main process stores), world size 2, training data-parallel (DDP wrapper, the
same weights on both processes, the budget's samples counting both), every process sampling only its share
(from the stored record), and PNGs byte-for-byte those that one process makes from the same weights and seed.
Plus the pieces of ``harness.distributed`` that run without a launcher.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import distributed
from harness.store import Store

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(":"),
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "-m", "harness.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def one_process_samples(task: str, method: str, run: dict, out: Path) -> dict[str, bytes]:
    """The run's prompts sampled in this (one) process from the run's trained adapter, same seed."""
    from harness import models
    from harness.plan import build_plan
    from harness.prompts import plan_prompts
    from harness.sampling import generate

    plan = build_plan(task, method, "tiny", seed=0)
    bundle = models.load(plan)
    bundle.load_lora(Path(run["adapter_file"]).parent)
    for module in (bundle.unet, bundle.text_encoder):
        if module is not None:
            module.eval()
    generate(plan, bundle, plan_prompts(plan), out)
    return {p.name: p.read_bytes() for p in sorted((out / "samples").glob("*.png"))}


@pytest.mark.parametrize(("task", "method"), [("deepfashion", "lora_te_r8"), ("cifar_alignment", "lora_unet_r1")])
def test_torchrun_two_processes_store_one_data_parallel_run(task: str, method: str, tmp_path: Path) -> None:
    db = tmp_path / "results" / "bench.duckdb"
    done = torchrun(["run", "-t", task, "-m", method, "--profile", "tiny", "--db", str(db), "--vs", "none"], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    store = Store(db)
    runs = store.runs(task)
    assert len(runs) == 1, runs
    run = runs[0]
    assert run["status"] == "completed" and run["world_size"] == 2
    record = run["details"]["distributed"]
    assert record["world_size"] == 2
    # training was data-parallel: DDP over gloo, both processes ended with the same weights, and the budget
    # counted the batches of both processes
    (training,) = record["training"]
    assert training["wrapped_as"] == ["DistributedDataParallel"] and training["backend"] == "gloo"
    assert training["weights_in_sync"] is True and training["find_unused_parameters"] is True
    assert training["losses_by_rank"][0] != training["losses_by_rank"][1]  # different batches per process
    plan = run["plan"]
    assert run["samples_seen"] == run["steps"] * plan["training"]["batch_size"] * 2
    # each process sampled only its share, together every sample once
    shares = record["sampled_by_rank"]
    files = sorted(s["file"] for s in store.samples(run["run_id"]) if s["checkpoint"] is None)
    assert set(shares) == {"0", "1"} and all(shares.values())
    assert not set(shares["0"]) & set(shares["1"])
    assert sorted(shares["0"] + shares["1"]) == files
    assert abs(len(shares["0"]) - len(shares["1"])) <= 1
    # the stored PNGs are those one process makes from the same weights and seeds
    stored = {p.name: p.read_bytes() for p in sorted((Path(run["run_dir"]) / "samples").glob("*.png"))}
    assert stored and stored == one_process_samples(task, method, run, tmp_path / "one")
    # one folder, one row; no other process wrote a run folder
    assert [p.name for p in (db.parent / "runs").iterdir()] == [run["run_id"]]


def test_shard_and_unshard_without_a_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    items = list(range(7))
    assert distributed.shard(items) == items and distributed.gather(3) == [3] and distributed.broadcast(5) == 5
    parts = []
    for rank in (0, 1, 2):
        monkeypatch.setenv("WORLD_SIZE", "3")
        monkeypatch.setenv("RANK", str(rank))
        parts.append(distributed.shard(items))
        assert distributed.is_main() is (rank == 0)
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert distributed.unshard(parts) == items


def test_two_precisions_in_one_process(tmp_path: Path) -> None:
    """accelerate's state is reset between training calls: fp32 then bf16 autocast in one process."""
    from harness.plan import build_plan
    from harness.runner import run

    store = Store(tmp_path / "bench.duckdb")
    spec = tmp_path / "lora_bf16.yaml"
    shutil.copyfile(ROOT / "baselines" / "lora_unet_r1.yaml", spec)
    text = spec.read_text().replace("name: lora_unet_r1", "name: lora_unet_r1_bf16")
    spec.write_text(text + "training:\n  mixed_precision: bf16\nprofiles:\n  tiny:\n    training:\n"
                    "      mixed_precision: bf16\n")
    first = run(build_plan("cifar_alignment", "lora_unet_r1", "tiny", 0), store, tmp_path / "runs")
    second = run(build_plan("cifar_alignment", str(spec), "tiny", 0), store, tmp_path / "runs")
    assert (first.status, second.status) == ("completed", "completed"), (first.error, second.error)
    plans = {r["method"]: r["plan"]["training"]["mixed_precision"] for r in store.runs()}
    assert plans == {"lora_unet_r1": "no", "lora_unet_r1_bf16": "bf16"}
