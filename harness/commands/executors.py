"""Run many cells (task x method x seed x overrides) on an engine: local processes, Ray, or SLURM (submitit).

    driver: plan every cell -> ingest finished folders left by an earlier attempt -> skip completed cells
            -> dispatch the others -> ingest each cell's run folder as it finishes (the only DB writer)
    worker: one cell = one ordinary run in its own process against ``FolderStore`` (never the database),
            through ``torchrun`` when the cell asks for several processes

Each cell runs in a process of its own (a subprocess locally, a Ray worker that exits after one task, a
SLURM / submitit job), so mixed precision and every other process-wide state never leak between runs.
Workers and driver share the results folder (``<db folder>/runs``); on a cluster it must be on a shared
filesystem. A cell whose plan hash has a completed run is skipped, so a matrix resumes after a crash or a
cancelled allocation. ``python -m harness.commands.executors CELL_JSON RUNS_ROOT OUT_JSON`` runs one cell.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import BenchError

EXECUTORS = ("local", "ray", "slurm")


@dataclass(frozen=True)
class Cell:
    """One run of a matrix or a sweep."""

    task: str
    method: str
    seed: int = 0
    profile: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    model_path: str | None = None
    data_root: str | None = None
    world_size: int = 1  # processes of the run (torchrun); GPUs it asks for on a GPU profile

    def label(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))
        return " ".join(p for p in (self.task, self.method, f"seed={self.seed}", extra) if p)


@dataclass
class CellResult:
    cell: Cell
    status: str  # completed | skipped | failed
    run_id: str | None = None
    error: str | None = None
    attempts: int = 0
    stored: str = ""  # what ingesting its folder did


@dataclass
class Resources:
    """What each cell asks of the engine and how the engine is reached."""

    gpus_per_cell: float | None = None  # None: the cell's world size on a full-profile run, 0 on tiny
    cpus_per_cell: float = 1.0
    retries: int = 2  # further attempts of a cell whose worker died (Ray / SLURM) or crashed (local)
    address: str | None = None  # Ray: "auto", "ray://host:10001", ...; None: a local Ray started here
    partition: str | None = None  # SLURM
    time_min: int = 24 * 60
    slurm_array: bool = True  # one job array for all cells (else one job per cell)
    slurm_folder: str | None = None  # submitit's logs (default: <results>/slurm)
    slurm_cluster: str | None = None  # submitit cluster: None = auto (slurm if sbatch exists), "local", "debug"
    extra: dict[str, Any] = field(default_factory=dict)  # more submitit parameters (slurm_account, ...)


def load_matrix(path: Path) -> dict[str, Any]:
    """A matrix file: ``tasks``, ``methods``, ``seeds`` (lists), optional ``profile``, ``world_size``,
    ``grid`` ({key: [values]} as ``bench sweep --grid``)."""
    from harness.specs import SpecError, read_yaml

    data = read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a matrix file is a mapping (tasks, methods, seeds, profile, world_size, grid)")
    unknown = set(data) - {"tasks", "methods", "seeds", "profile", "world_size", "grid"}
    if unknown:
        raise SpecError(f"{path}: field '{sorted(unknown)[0]}': not a matrix field (tasks, methods, seeds, profile, "
                        "world_size, grid)")
    for key in ("tasks", "methods", "seeds"):
        if key in data and not isinstance(data[key], list):
            raise SpecError(f"{path}: field '{key}': expected a list")
    return data


def matrix_cells(tasks: list[str], methods: list[str], seeds: list[int], profile: str | None = None,
                 world_size: int = 1, grid: dict[str, list[Any]] | None = None, model_path: str | None = None,
                 data_root: str | None = None) -> list[Cell]:
    """tasks x methods x seeds (x grid cells), task-major."""
    from harness.plan import cells as grid_cells

    overrides = grid_cells(grid, "full") if grid else [{}]
    return [Cell(t, m, int(s), profile, dict(o), model_path, data_root, world_size)
            for t in tasks for m in methods for s in seeds for o in overrides]


def build_plans(cells: list[Cell]) -> list[Any]:
    """Plan every cell first, so that a bad spec fails before anything runs."""
    from harness.plan import build_plan

    return [build_plan(c.task, c.method, c.profile, c.seed, Path(c.model_path) if c.model_path else None,  # type: ignore[arg-type]
                       Path(c.data_root) if c.data_root else None, overrides=c.overrides or None)
            for c in cells]


def run_cells(cells: list[Cell], db: Path, executor: str = "local", jobs: int = 1, force: bool = False,
              resources: Resources | None = None, on_cell: Callable[[CellResult], None] | None = None
              ) -> list[CellResult]:
    """Run every cell not completed yet on ``executor``; every finished cell's folder is ingested into ``db``
    by this process as it finishes, then ``on_cell`` is called. Results in the order of ``cells``."""
    from harness.store import Store

    if executor not in EXECUTORS:
        raise BenchError(f"--executor '{executor}': expected one of {', '.join(EXECUTORS)}")
    resources = resources or Resources()
    plans = build_plans(cells)
    store = Store(db)
    runs_root = db.parent / "runs"
    runs_root.mkdir(parents=True, exist_ok=True)
    ingest_finished(store, runs_root)
    results: list[CellResult | None] = [None] * len(cells)
    todo: list[int] = []
    for index, (cell, plan) in enumerate(zip(cells, plans, strict=True)):
        existing = None if force else store.completed_run(plan.plan_hash)
        if existing:
            results[index] = CellResult(cell, "skipped", existing)
            if on_cell:
                on_cell(results[index])  # type: ignore[arg-type]
        else:
            todo.append(index)
    lock = threading.Lock()

    def finished(index: int, outcome: dict[str, Any], attempts: int) -> None:
        with lock:
            result = CellResult(cells[index], outcome.get("status", "failed"), outcome.get("run_id"),
                                outcome.get("error"), attempts)
            result.stored = _ingest_outcome(store, outcome)
            results[index] = result
            if on_cell:
                on_cell(result)

    specs = {i: {**asdict(cells[i]), "force": force} for i in todo}
    if todo:
        {"local": _run_local, "ray": _run_ray, "slurm": _run_slurm}[executor](specs, runs_root, jobs, resources,
                                                                              plans, finished)
    return [r if r is not None else CellResult(cells[i], "failed", error="never reported")
            for i, r in enumerate(results)]


def ingest_finished(store: Any, runs_root: Path) -> int:
    """Store the complete run folders under ``runs_root`` that the database lacks (a driver that stopped
    before ingesting what its workers finished); returns how many were added."""
    from harness import runfolder

    if not runs_root.is_dir():
        return 0
    known = {Path(r["run_dir"]).name for r in store.runs() if r["status"] == "completed"}
    added = 0
    for folder in sorted(runs_root.iterdir()):
        if folder.name not in known and runfolder.is_complete(folder):
            try:
                added += store.ingest(folder) == "stored"
            except runfolder.RunFolderError:
                continue
    return added


def _ingest_outcome(store: Any, outcome: dict[str, Any]) -> str:
    from harness import runfolder
    from harness.store import ingest_failed

    folder = outcome.get("run_dir")
    if not folder:
        return "no run folder"
    try:
        if runfolder.is_complete(Path(folder)):
            return store.ingest(Path(folder))
        return ingest_failed(store, Path(folder))
    except (runfolder.RunFolderError, BenchError) as exc:
        return f"not stored: {exc}"


# --- a worker: one cell ------------------------------------------------------------------------------

def execute_cell(spec: dict[str, Any], runs_root: str) -> dict[str, Any]:
    """Run one cell in this process (or, for a multi-process cell, under ``torchrun`` from here) against the
    run folders only; its outcome as a dict."""
    from harness import distributed

    if int(spec.get("world_size") or 1) > 1 and not distributed.is_distributed():
        return _torchrun_cell(spec, runs_root)
    from harness.runner import run
    from harness.store import FolderStore

    cell = Cell(**{k: v for k, v in spec.items() if k != "force"})
    (plan,) = build_plans([cell])
    try:
        outcome = run(plan, FolderStore(Path(runs_root)), Path(runs_root), force=bool(spec.get("force")))
    except BenchError as exc:  # nothing stored (missing weights or data, bad spec)
        return {"status": "failed", "error": str(exc), "run_id": None, "run_dir": None}
    return {"status": outcome.status, "run_id": outcome.run_id, "error": outcome.error,
            "run_dir": str(outcome.run_dir) if outcome.run_dir else None, "host": os.uname().nodename,
            "pid": os.getpid()}


class CellCrashed(RuntimeError):
    """A cell's process ended without an outcome (killed, out of memory): worth another attempt."""


def _worker_env(jobs: int = 1) -> dict[str, str]:
    """The driver's environment with this checkout importable and, for ``jobs`` cells side by side, the CPU
    threads shared out (unless OMP_NUM_THREADS is set)."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, jobs))))
    return env


def _cell_command(spec: dict[str, Any], runs_root: str, out: Path) -> list[str]:
    args = ["-m", "harness.commands.executors", json.dumps(spec), runs_root, str(out)]
    world = int(spec.get("world_size") or 1)
    if world > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world), *args]
    return [sys.executable, *args]


def _subprocess_cell(spec: dict[str, Any], runs_root: str, jobs: int = 1) -> dict[str, Any]:
    """The cell in a fresh process; CellCrashed if it ended without writing its outcome."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-cell-") as scratch:
        out = Path(scratch) / "outcome.json"
        done = subprocess.run(_cell_command(spec, runs_root, out), env=_worker_env(jobs), capture_output=True,
                              text=True)
        if out.is_file():
            return json.loads(out.read_text())
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or [""]
        raise CellCrashed(f"cell process exited with code {done.returncode} without an outcome ({tail[0][:300]})")


def _torchrun_cell(spec: dict[str, Any], runs_root: str) -> dict[str, Any]:
    return _subprocess_cell(spec, runs_root)


# --- engines ---------------------------------------------------------------------------------------

def _run_local(specs: dict[int, dict], runs_root: Path, jobs: int, resources: Resources, plans: list[Any],
               finished: Callable[[int, dict, int], None]) -> None:
    """``jobs`` cells at a time, each in its own process; a crashed process is retried."""
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> None:
        attempts = 0
        while True:
            attempts += 1
            try:
                outcome = _subprocess_cell(specs[index], str(runs_root), jobs)
                break
            except CellCrashed as exc:
                if attempts > resources.retries:
                    outcome = {"status": "failed", "error": str(exc)}
                    break
        finished(index, outcome, attempts)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(one, index) for index in specs]:
            future.result()


def _gpus(resources: Resources, spec: dict[str, Any], plan: Any) -> float:
    if resources.gpus_per_cell is not None:
        return resources.gpus_per_cell
    return float(spec.get("world_size") or 1) if plan.profile == "full" else 0.0


def _ray_cell(spec: dict[str, Any], runs_root: str) -> dict[str, Any]:
    """A Ray task: the cell in the Ray worker process itself (which exits after it: ``max_calls=1``)."""
    return execute_cell(spec, runs_root)


def _run_ray(specs: dict[int, dict], runs_root: Path, jobs: int, resources: Resources, plans: list[Any],
             finished: Callable[[int, dict, int], None]) -> None:
    """Each cell a Ray task with its GPU / CPU request; a task whose worker dies is retried by Ray
    (``max_retries``); results are handled as tasks finish."""
    try:
        import ray
    except ImportError:
        raise BenchError("--executor ray needs Ray: pip install -e '.[cluster]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=resources.address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        remote = ray.remote(max_calls=1, max_retries=resources.retries)(_ray_cell)
        refs = {}
        for index, spec in specs.items():
            options = {"num_cpus": resources.cpus_per_cell, "num_gpus": _gpus(resources, spec, plans[index])}
            refs[remote.options(**options).remote(spec, str(runs_root))] = index
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # retries exhausted (worker died each time) or a task error
                    outcome = {"status": "failed", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
                finished(refs[ref], outcome, 0)
    finally:
        if started_here:
            ray.shutdown()


def _run_slurm(specs: dict[int, dict], runs_root: Path, jobs: int, resources: Resources, plans: list[Any],
               finished: Callable[[int, dict, int], None]) -> None:
    """Through submitit: a job array of all cells (or one job per cell), partition / time / GPUs as asked; a
    job that failed without an outcome (preempted, node failure, killed) is submitted again."""
    try:
        import submitit
    except ImportError:
        raise BenchError("--executor slurm needs submitit: pip install -e '.[cluster]'") from None
    folder = Path(resources.slurm_folder or runs_root.parent / "slurm") / "%j"
    cluster = resources.slurm_cluster or os.environ.get("BENCH_SUBMITIT_CLUSTER")
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    first = next(iter(specs))
    world = max(int(spec.get("world_size") or 1) for spec in specs.values())
    gpus = int(_gpus(resources, specs[first], plans[first]))
    params: dict[str, Any] = {"timeout_min": resources.time_min, "cpus_per_task": max(1, int(resources.cpus_per_cell)),
                              "nodes": 1, "tasks_per_node": 1, "name": "bench-cell"}
    if gpus:
        params["gpus_per_node"] = gpus
    if executor.cluster == "slurm":
        if resources.partition:
            params["slurm_partition"] = resources.partition
        params["slurm_array_parallelism"] = max(1, jobs) if jobs > 1 else len(specs)
    params.update(resources.extra)
    executor.update_parameters(**params)
    del world  # each job starts torchrun itself when its cell has several processes (execute_cell)
    attempts = dict.fromkeys(specs, 0)

    def submit(indices: list[int]) -> dict[Any, int]:
        for index in indices:
            attempts[index] += 1
        if resources.slurm_array and len(indices) > 1:
            with executor.batch():
                submitted = [(executor.submit(execute_cell, specs[i], str(runs_root)), i) for i in indices]
        else:
            submitted = [(executor.submit(execute_cell, specs[i], str(runs_root)), i) for i in indices]
        return {job: i for job, i in submitted}

    running = submit(list(specs))
    while running:
        time.sleep(0.5)
        for job in [j for j in running if j.done()]:
            index = running.pop(job)
            try:
                outcome = job.result()
            except Exception as exc:  # the job died without a result: again, while attempts remain
                if attempts[index] <= resources.retries:
                    running.update(submit([index]))
                    continue
                outcome = {"status": "failed", "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"}
            finished(index, outcome, attempts[index])


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.commands.executors CELL_JSON RUNS_ROOT OUT_JSON``: run one cell, write its outcome
    (the main process of a multi-process cell writes it)."""
    from harness import distributed

    spec_json, runs_root, out = (argv if argv is not None else sys.argv[1:])[:3]
    outcome = execute_cell(json.loads(spec_json), runs_root)
    if distributed.is_main():
        Path(out).write_text(json.dumps(outcome))
    return 0


if __name__ == "__main__":  # pragma: no cover - a cell's process
    sys.exit(main())
