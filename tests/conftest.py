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
    mp.setenv("BENCH_HOME", str(tmp_path_factory.mktemp("bench_home")))  # user method registry
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


@pytest.fixture(scope="session")
def bitfit_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin package (tests/plugins/bench_bitfit) pip-installed into a temporary target on
    sys.path: a real dist-info with its ``bench.methods`` entry point; the venv is left untouched."""
    import importlib
    import shutil
    import subprocess
    import sys

    source = Path(__file__).parent / "plugins" / "bench_bitfit"
    work = tmp_path_factory.mktemp("plugin")
    shutil.copytree(source, work / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(work / "src")], check=True, capture_output=True)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    yield source / "bitfit_attn.yaml"
    sys.path.remove(str(site))


@pytest.fixture(scope="session")
def board_db(tiny_runs: dict, bitfit_plugin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A copy of the tiny_runs database plus, through `bench submit`: the bitfit plugin method twice
    (learning rates 1e-3 and 3e-3: a sweep) and a method that matches nothing (stored as failed); and one
    run in progress (the row the runner writes when a run starts); a frozen run of a copy of the task
    whose near-black threshold flags every sample (task 'cifar_nearblack'). Progress stages are recorded."""
    import shutil

    import yaml
    from typer.testing import CliRunner

    from harness import progress
    from harness.cli import app

    root = tmp_path_factory.mktemp("board")
    db = root / "bench.duckdb"
    shutil.copyfile(tiny_runs["store"].path, db)
    # the run folders too: paths in the database are relative to its folder (a results folder moves whole)
    shutil.copytree(tiny_runs["root"] / "runs", root / "runs")
    specs = {"bitfit_attn_lr3e3": {"kind": "bitfit", "params": {"target_patterns": ["attn1", "attn2"]},
                                   "training": {"learning_rate": 3.0e-3}},
             "xattn_nothing": {"kind": "attn_finetune", "params": {"target_patterns": ["no_such_module"]}}}
    paths = [bitfit_plugin]
    for name, spec in specs.items():
        paths.append(root / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump({"name": name, "version": 1, **spec}))
    stages: dict[str, list[dict]] = {}
    submitting = [""]

    class Recording(progress.RichProgress):
        def stage(self, name: str, total: int | None):
            record = {"stage": name, "total": total, "ticks": 0}
            stages.setdefault(submitting[0], []).append(record)
            advance = super().stage(name, total)

            def tick(n: int) -> None:
                record["ticks"] += n
                advance(n)

            return tick

    mp = pytest.MonkeyPatch()
    mp.setattr(progress, "RichProgress", Recording)
    results = {}
    for path in paths:
        submitting[0] = path.stem
        results[path.stem] = CliRunner().invoke(app, ["submit", str(path), "--task", TASK, "--profile", "tiny",
                                                      "--db", str(db)])
    mp.undo()
    task = yaml.safe_load((Path(__file__).parents[1] / "tasks" / f"{TASK}.yaml").read_text())
    task["name"], task["sampling"]["near_black_threshold"] = "cifar_nearblack", 255  # every sample flagged
    (root / "cifar_nearblack.yaml").write_text(yaml.safe_dump(task))
    results["cifar_nearblack"] = CliRunner().invoke(app, ["run", "--task", str(root / "cifar_nearblack.yaml"),
                                                          "--method", "frozen", "--db", str(db)])
    store = Store(db)
    plan = build_plan(TASK, "frozen", "tiny", seed=1)
    store.start_run({"run_id": "in-progress-frozen-seed1", "plan_hash": plan.plan_hash, "task": TASK,
                     "task_version": plan.task.version, "method": "frozen", "method_version": 1,
                     "method_kind": "frozen", "profile": "tiny", "seed": 1, "plan": plan.model_dump(mode="json"),
                     "run_dir": str(root / "runs" / "in-progress")})
    return {"db": db, "store": store, "results": results, "stages": stages}


@pytest.fixture(scope="session")
def study_db(board_db: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """board_db plus real tiny runs of every other task the dashboard shows, the face study's 11-cell
    ``bench sweep`` and a stored ``bench disagree`` of cifar_alignment (see tests/study_db.py)."""
    from tests.study_db import build

    return build(tmp_path_factory.mktemp("study"), board_db["db"], design="face-study")


@pytest.fixture(scope="session")
def micro_runs(tmp_path_factory: pytest.TempPathFactory):
    """Real runs on the shipped microworld, made on first use and shared by the session (tests/micro_db.py)."""
    from tests.micro_db import MicroRuns

    return MicroRuns(tmp_path_factory.mktemp("micro"))
