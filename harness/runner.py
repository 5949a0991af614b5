"""The only orchestration: one path for every task and method.

    skip if done -> data units -> load base -> for each unit: fit (method) -> sample -> score -> store

A unit is what one ``Method.fit`` trains: the task's training set (``all``) or one subject. Every unit
starts from the frozen base (reloaded after a unit changed it), has its own budget meter (sampling pauses
it; shared class images are charged to it) and samples its prompts with its final weights unless the
method sampled checkpoints. Scoring sees every sample of the run at once; the metrics layer scores each
checkpoint and applies the method's headline rule. Failures after the run row exists are stored as failed.

Every run folder is complete on its own (``harness.runfolder``): the run is stored from it, and when the
database is busy its results stay there for the next command (or ``bench ingest``) to store. A run holds a
lease (host, pid, heartbeat) while it executes; SIGTERM / SIGINT store it as ``failed: interrupted``.

Under ``torchrun`` / ``accelerate launch`` (``harness.distributed``) every process executes the same units:
training is data-parallel, sampling and scoring are split across the processes and gathered; the main
process alone decides whether to skip, names the run, writes its folder's JSON files and its one row.
"""

from __future__ import annotations

import json
import signal
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from harness import distributed, runfolder
from harness.envinfo import git_commit, package_versions
from harness.errors import RunInterrupted
from harness.plan import RunPlan
from harness.store import Store, StoreBusyError, StoreError

CHECKPOINTS_FOLDER = "checkpoints"
SUBJECTS_FOLDER = "subjects"

Tick = Callable[[int], None]


class ProgressSink(Protocol):
    """What the runner reports to (``harness.progress.RichProgress`` draws it as bars)."""

    def stage(self, name: str, total: int | None) -> Tick:
        """Open a stage of ``total`` units (None: unknown) and return the function that advances it."""
        ...


@dataclass
class RunOutcome:
    run_id: str
    status: str  # completed | skipped | failed
    run_dir: Path | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # a completed run whose results could not reach a busy database: where they are kept, and what stores them
    pending: str | None = None


class StageTimer:
    """Wall time per stage; a stage opened inside another is not counted in the outer one; ``other`` is
    whatever the named stages do not cover."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}
        self._nested: list[float] = []  # time spent in inner stages, per open stage

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        self._nested.append(0.0)
        try:
            yield
        finally:
            inner = self._nested.pop()
            elapsed = time.perf_counter() - start
            self.timings[name] = round(self.timings.get(name, 0.0) + elapsed - inner, 3)
            if self._nested:
                self._nested[-1] += elapsed

    def finish(self) -> dict[str, float]:
        total = round(time.perf_counter() - self.started, 3)
        covered = sum(self.timings.values())
        return {**self.timings, "other": round(total - covered, 3), "total": total}


def new_run_id(plan: RunPlan) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    return f"{stamp}-{plan.task.name}-{plan.method.name}-{plan.profile}-{plan.plan_hash[:8]}"


def run(plan: RunPlan, store: Store, runs_root: Path, force: bool = False,
        progress: ProgressSink | None = None) -> RunOutcome:
    """Execute the plan unless a completed run with the same hash exists (or ``force``).

    Missing weights or data raise before anything is stored; any later failure is stored as failed.
    """
    from harness import data, models

    distributed.init()
    main = distributed.is_main()
    _check_method_fits_task(plan)
    plan = data.bind(plan)  # data root, real subjects / prompt lists, data fingerprint (in the plan hash)
    adapter_run = existing = None
    if main:
        adapter_run = borrowed_adapter_run(plan, store)
        existing = store.completed_run(plan.plan_hash)
        if (existing and adapter_run is not None
                and store.run_row(existing)["adapter_file"] != adapter_run["adapter_file"]):
            existing = None  # the source task was trained again since: score its newer adapter
    adapter_run, existing = distributed.broadcast((adapter_run, existing))
    if existing and not force:
        return RunOutcome(existing, "skipped")
    timer = StageTimer()
    with timer.stage("load"):
        units = data.units(plan)  # data before models: a missing dataset fails in seconds
        bundle = models.load(plan)
    if not main:  # the other processes of a multi-process run follow the main one's run
        run_id = distributed.broadcast(None)
        return _follow(plan, bundle, units, runs_root / run_id, run_id, timer, adapter_run)
    run_id = new_run_id(plan)
    run_dir = runs_root / run_id
    run_dir.mkdir(parents=True)
    row = {
        "run_id": run_id, "plan_hash": plan.plan_hash, "task": plan.task.name, "task_version": plan.task.version,
        "method": plan.method.name, "method_version": plan.method.version, "method_kind": plan.method.kind,
        "profile": plan.profile, "seed": plan.seed, "versions": package_versions(), "git_commit": git_commit(),
        "plan": plan.model_dump(mode="json"), "run_dir": str(run_dir), "created_at": runfolder.utcnow(),
        "world_size": distributed.world_size(), **runfolder.lease(),
    }
    runfolder.write_start(run_dir, plan.model_dump_json(indent=2), row)
    try:
        store.start_run(row)
    finally:
        distributed.broadcast(run_id)
    lease = Lease(store, run_id, run_dir)
    try:
        with lease, interruptible():
            execution = Execution(plan, bundle, run_dir, timer, progress, adapter_run)
            fields, samples, scores, aggregates = execution.execute(units)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            exc = RunInterrupted(signal.SIGINT, "interrupted by SIGINT")
        message = (f"interrupted: {signal.Signals(exc.signum).name}" if isinstance(exc, RunInterrupted)
                   else f"{type(exc).__name__}: {exc}").splitlines()[0]
        (run_dir / "error.log").write_text(traceback.format_exc())
        runfolder.write_failure(run_dir, run_id, message)
        with ignoring_interrupts():
            try:
                store.fail_run(run_id, message)
            except StoreError:
                pass  # the next command that opens the database for writing stores failed.json's error
        if isinstance(exc, RunInterrupted):
            name = signal.Signals(exc.signum).name
            raise RunInterrupted(exc.signum, f"run {run_id} interrupted by {name}; stored as failed "
                                 f"(interrupted: {name}; folder {run_dir})") from None
        if isinstance(exc, Exception):
            return RunOutcome(run_id, "failed", run_dir, message)
        raise
    fields["timings"] = timer.finish()
    with ignoring_interrupts():  # the results are written: finish storing them
        runfolder.write_result(run_dir, run_id, fields, samples, scores, aggregates)
        try:
            store.ingest(run_dir)
        except StoreBusyError as exc:
            return RunOutcome(run_id, "completed", run_dir, timings=fields["timings"],
                              pending=f"{exc}; its results are kept, complete, in {run_dir} and the next bench "
                                      "command that opens the database for writing stores them (or: bench ingest "
                                      f"{run_dir})")
    return RunOutcome(run_id, "completed", run_dir, timings=fields["timings"])


def _follow(plan: RunPlan, bundle: Any, units: list[Any], run_dir: Path, run_id: str, timer: StageTimer,
            adapter_run: dict[str, Any] | None) -> RunOutcome:
    """A non-main process of a multi-process run: execute its share; the main process stores the run (a
    failure here ends this process, and the launcher then stops the main one: stored as interrupted)."""
    try:
        execution = Execution(plan, bundle, run_dir, timer, None, adapter_run)
        execution.execute(units)
    except Exception:
        (run_dir / f"error.rank{distributed.rank()}.log").write_text(traceback.format_exc())
        raise
    return RunOutcome(run_id, "completed", run_dir, timings=timer.finish())


class Lease:
    """While a run executes: renew its lease every ``heartbeat_seconds()`` (its folder's heartbeat file, and
    the row's heartbeat when the database is free) from a daemon thread."""

    def __init__(self, store: Store, run_id: str, run_dir: Path) -> None:
        import threading

        self.store, self.run_id, self.run_dir = store, run_id, run_dir
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"lease-{run_id}", daemon=True)

    def _beat(self) -> None:
        from harness.store import heartbeat_seconds

        while not self.stop.wait(heartbeat_seconds()):
            runfolder.touch_heartbeat(self.run_dir)
            self.store.heartbeat(self.run_id)

    def __enter__(self) -> Lease:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@contextmanager
def interruptible():
    """SIGTERM raises RunInterrupted in the main thread (SIGINT raises KeyboardInterrupt as always), so
    that the run is stored as failed: interrupted before the process exits."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise RunInterrupted(signum, f"interrupted by {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def ignoring_interrupts():
    """Defer SIGTERM / SIGINT while the outcome of a run is being stored; re-delivered afterwards."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])


def _check_method_fits_task(plan: RunPlan) -> None:
    from harness.data import has_subjects
    from harness.methods import check_method, method_class
    from harness.specs import SpecError

    check_method(plan.method, f"method '{plan.method.name}'")
    if method_class(plan.method.kind).per_subject and not has_subjects(plan):
        raise SpecError(f"method '{plan.method.name}' (kind {plan.method.kind}) trains one subject at a time; "
                        f"task '{plan.task.name}' has no subjects (data adapter '{plan.task.data.adapter}', "
                        "expected one that lists subjects, e.g. 'dreambooth')")


def borrowed_adapter_run(plan: RunPlan, store: Store) -> dict[str, Any] | None:
    """For an evaluation-only task, the completed run (same method, profile, seed) whose adapter it scores."""
    from harness.errors import BenchError

    source_task = plan.task.adapter_from_task
    if not source_task or plan.method.kind == "frozen":
        return None
    found = store.latest_completed(source_task, plan.method.name, plan.profile, plan.seed)
    if found is None or not found.get("adapter_file"):
        raise BenchError(
            f"task '{plan.task.name}' scores the adapter of a completed '{source_task}' run of method "
            f"'{plan.method.name}' ({plan.profile}, seed {plan.seed}), and there is none in {store.path}; run first: "
            f"bench run --task {source_task} --method {plan.method.name} --profile {plan.profile} "
            f"--seed {plan.seed} --db {store.path}"
        )
    return found


class Execution:
    """The stages of one run over its units; collects samples, budget totals and per-unit details."""

    def __init__(self, plan: RunPlan, bundle: Any, run_dir: Path, timer: StageTimer, progress: ProgressSink | None,
                 adapter_run: dict[str, Any] | None) -> None:
        self.plan, self.bundle, self.run_dir, self.timer = plan, bundle, run_dir, timer
        self.progress, self.adapter_run = progress, adapter_run
        self.records: list[Any] = []
        self.identifiers: dict[str, str] = {}  # subject -> the word its method put in prompts
        self.units: dict[str, Any] = {}  # unit -> what its fit recorded
        self.shared: dict[str, Any] = {}  # run-wide cache the method may use across units (class images)
        self.reports: list[Any] = []  # TrainReports of the last unit
        self.made_by: dict[int, list[str]] = {}  # process rank -> sample files it generated
        self.parallel: list[dict[str, Any]] = []  # each training call's data-parallel record

    def execute(self, units: list[Any]) -> tuple[dict, list, list, list]:
        """Fit, sample and score every unit; the run's fields and its rows for the store."""
        from harness.training import peak_memory

        modules = self.bundle.modules()
        base_params = sum(p.numel() for m in modules.values() for p in m.parameters())
        totals: dict[str, Any] = {"steps": 0, "samples_seen": 0, "train_seconds": 0.0, "adapter_bytes": 0}
        stopped: set[str] = set()
        for index, unit in enumerate(units):
            if index > 0 and self.plan.trains:  # the previous unit changed the weights: back to the base
                with self.timer.stage("load"):
                    self._reload()
            meter = self.fit_unit(unit)
            if self.reports:
                totals["steps"] += meter.steps
                totals["samples_seen"] += meter.samples
                totals["train_seconds"] = round(totals["train_seconds"] + self.reports[-1].seconds, 3)
                stopped.add(self.reports[-1].stopped_by)
            for key in ("adapter_file", "token_file"):
                if self.units[unit.name].get(key):
                    totals["adapter_bytes"] += Path(self.units[unit.name][key]).stat().st_size
        from harness.metrics import headline_records

        result = self._score()
        self.records += headline_records(self.records, result.headline)
        memory, memory_kind = peak_memory()
        fields = {**totals, "base_params": base_params, "peak_memory_bytes": memory, "memory_kind": memory_kind,
                  "trainable_params": sum(r.trainable_params for r in self.reports),
                  "stopped_by": ",".join(sorted(stopped)) or "no training"}
        fields |= self._adapter_fields(units, totals["adapter_bytes"])
        fields["world_size"] = distributed.world_size()
        details = {"headline": result.headline} if result.headline else {}
        if distributed.is_distributed():
            details["distributed"] = {
                "world_size": distributed.world_size(),
                "sampled_by_rank": {str(rank): files for rank, files in sorted(self.made_by.items())},
                "training": self.parallel}
        if any(unit.subject is not None for unit in units):
            details["subjects"] = self.units
        if details:
            fields["details"] = details
        return (fields, *store_rows(self.records, result))

    def _adapter_fields(self, units: list[Any], adapter_bytes: int) -> dict[str, Any]:
        if self.adapter_run is not None:
            adapter = Path(self.adapter_run["adapter_file"])
            return {"stopped_by": f"no training (adapter of run {self.adapter_run['run_id']})",
                    "adapter_file": str(adapter), "adapter_bytes": adapter.stat().st_size}
        if not adapter_bytes:
            return {}
        if len(units) == 1 and units[0].subject is None:
            return {"adapter_file": self.units[units[0].name]["adapter_file"], "adapter_bytes": adapter_bytes}
        return {"adapter_file": str(self.run_dir / SUBJECTS_FOLDER), "adapter_bytes": adapter_bytes}

    def _reload(self) -> None:
        """Free the previous unit's modules and optimizer state, then load the frozen base again."""
        import gc

        import torch

        from harness import models

        self.bundle.to("cpu")
        self.bundle = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.bundle = models.load(self.plan)

    def fit_unit(self, unit: Any) -> Any:
        """Fit one unit (if the run trains) and sample its prompts; returns the unit's budget meter."""
        from harness.methods import method_class
        from harness.methods.base import FitContext
        from harness.prompts import plan_prompts
        from harness.training import BudgetMeter

        plan, budget = self.plan, self.plan.task.budget
        method = method_class(plan.method.kind)(plan.method)
        per_subject = unit.subject is not None
        identifier = method.identifier(plan.task)
        if per_subject:
            self.identifiers[unit.name] = identifier
        prompts = [p for p in plan_prompts(plan, {unit.name: identifier} if per_subject else None)
                   if not per_subject or p.group == unit.name]
        folder = self.run_dir / SUBJECTS_FOLDER / unit.name if per_subject else self.run_dir
        folder.mkdir(parents=True, exist_ok=True)
        meter = BudgetMeter(budget.max_samples, budget.max_steps, budget.max_seconds)
        details: dict[str, Any] = {"identifier": identifier} if per_subject else {}
        suffix = f" {unit.name}" if per_subject else ""
        train_tick = self._stage(f"training{suffix}", None if per_subject else
                                 min(budget.max_steps, plan.training.max_steps))
        sample_tick = self._stage(f"sampling{suffix}", None if per_subject else sum(p.samples for p in prompts))

        def train(method_: Any, dataset: Any, modules: dict, plan: RunPlan | None = None,
                  on_step: Any = None) -> Any:
            from harness.training import train as train_loop

            report = train_loop(plan or self.plan, self.bundle, dataset, method_, modules, meter=meter,
                                on_step=on_step, tick=train_tick)
            if report.data_parallel:
                self.parallel.append({"unit": unit.name, **report.data_parallel})
            return report

        def checkpoint(step: int | None) -> None:
            with self.timer.stage("sample"), meter.paused():
                self.records.extend(self._sample(prompts, step, sample_tick))

        def generate(prompt: Any, out: Path) -> list[Any]:
            from PIL import Image

            from harness.sampling import generate as generate_images

            made = generate_images(plan, self.bundle, [prompt], out)
            return [Image.open(out / record.file) for record in made]

        def save(method_: Any, modules: dict) -> Path | None:
            if distributed.is_main():
                path = method_.save(modules, folder)
            else:  # the same weights as the main process's (data parallel): saved there; only the name here
                import tempfile

                with tempfile.TemporaryDirectory(prefix=f"rank{distributed.rank()}-") as scratch:
                    saved = method_.save(modules, Path(scratch))
                    path = None if saved is None else folder / Path(saved).relative_to(scratch)
            distributed.barrier()
            if path is not None:
                details["adapter_file"] = str(path)
            return path

        ctx = FitContext(plan, self.bundle, unit, folder, self.run_dir, meter, train, checkpoint, generate, save,
                         self.shared, details)
        if self.adapter_run is not None:
            self.bundle.load_lora(Path(self.adapter_run["adapter_file"]).parent)
        before = len(self.records)
        self.reports = []
        if plan.trains:
            seed_everything(unit_seed(plan.seed, unit.name))  # adapter init, new tokens: from the plan's seed
            with self.timer.stage("train"):
                self.reports = method.fit(ctx)
        if len(self.records) == before:
            checkpoint(None)
        if per_subject:
            details = {**details, "budget_seconds": self.reports[-1].seconds if self.reports else 0.0,
                       "stages": [r.as_dict() for r in self.reports]}
            self.units[unit.name] = {"identifier": details.pop("identifier"), **details}
        else:
            self.units[unit.name] = details
            if self.reports and distributed.is_main():
                (folder / "train_log.json").write_text(json.dumps(self.reports[-1].as_dict(), indent=2))
        return meter

    def _stage(self, name: str, total: int | None) -> Tick | None:
        return self.progress.stage(name, total) if self.progress is not None else None

    def _sample(self, prompts: list[Any], checkpoint: int | None, tick: Any) -> list[Any]:
        """Generate the prompts with the current weights in eval mode; checkpoint files get their folder."""
        from harness.sampling import generate

        prefix = "" if checkpoint is None else f"{CHECKPOINTS_FOLDER}/step_{checkpoint:05d}/"
        modules = [m for m in (self.bundle.unet, self.bundle.text_encoder) if m is not None]
        modes = [(module, module.training) for module in modules]
        for module, _ in modes:
            module.eval()
        # A checkpoint sampled mid-training: accelerate has wrapped the trained modules' forward in the training
        # autocast (bf16 / fp16); sample with the plain forward, as final samples are (same dtype, same autocast).
        wrapped = [(m, m.__dict__["forward"]) for m in self.bundle.modules().values()
                   if m is not None and "_original_forward" in m.__dict__]
        for module, _ in wrapped:
            module.forward = module.__dict__["_original_forward"]
        try:
            made_by: dict[int, list[str]] = {}
            made = generate(self.plan, self.bundle, prompts, self.run_dir / prefix if prefix else self.run_dir, tick,
                            made_by)
            for rank, files in made_by.items():
                self.made_by.setdefault(rank, []).extend(prefix + file for file in files)
        finally:
            for module, forward in wrapped:
                module.forward = forward
            for module, was_training in modes:
                module.train(was_training)
        return [replace(r, file=prefix + r.file, checkpoint=checkpoint) for r in made]

    def _score(self) -> Any:
        from harness import metrics

        checkpoints = len({r.checkpoint for r in self.records})
        with self.timer.stage("score"):
            tick = self._stage("scoring", len(self.plan.task.evaluation.metrics) * checkpoints)
            context = metrics.ScoringContext(self.plan, self.run_dir, self.identifiers)
            return metrics.score(context, self.records, tick)


def unit_seed(run_seed: int, unit: str) -> int:
    """The seed of one unit's fit: the same for every method given the run seed and the unit's name."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{run_seed}:fit:{unit}".encode()).digest()[:4], "big")


def seed_everything(seed: int) -> None:
    """Seed torch's global RNGs (peft draws LoRA's initial A matrices from them) and Python's / numpy's."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def store_rows(records: list, result: Any) -> tuple[list, list, list]:
    """Samples, per-sample scores and aggregates as rows of the store's tables."""
    samples = [r.as_dict() | {"grp": r.group} for r in records]
    for row in samples:
        del row["group"]
    scores = [{"metric": s.metric, "prompt_set": s.prompt_set, "prompt_id": s.prompt_id,
               "sample_idx": s.sample_idx, "value": s.value, "checkpoint": s.checkpoint} for s in result.per_sample]
    aggregates = [{"metric": a.metric, "prompt_set": a.prompt_set, "grp": a.group, "value": a.value, "n": a.n,
                   "ci_low": a.ci_low, "ci_high": a.ci_high, "card": a.card, "checkpoint": a.checkpoint,
                   "std": a.std}
                  for a in result.aggregates]
    return samples, scores, aggregates
