"""Orchestration of one run: skip / execute the stages / store, with failure capture."""

from __future__ import annotations

import json
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.envinfo import git_commit, package_versions
from harness.plan import RunPlan
from harness.store import Store


@dataclass
class RunOutcome:
    run_id: str
    status: str  # completed | skipped | failed
    run_dir: Path | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


class StageTimer:
    """Wall time per stage; ``other`` is whatever the named stages do not cover."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)

    def finish(self) -> dict[str, float]:
        total = round(time.perf_counter() - self.started, 3)
        covered = sum(self.timings.values())
        return {**self.timings, "other": round(total - covered, 3), "total": total}


def new_run_id(plan: RunPlan) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    return f"{stamp}-{plan.task.name}-{plan.method.name}-{plan.profile}-{plan.plan_hash[:8]}"


def run(plan: RunPlan, store: Store, runs_root: Path, force: bool = False, progress: Any = None) -> RunOutcome:
    """Execute the plan unless a completed run with the same hash exists (or ``force``).

    Missing weights or data raise before anything is stored; any later failure is stored as failed.
    """
    from harness import data, models

    _check_method_fits_task(plan)
    adapter_run = borrowed_adapter_run(plan, store)
    existing = store.completed_run(plan.plan_hash)
    if existing and adapter_run is not None and store.run_row(existing)["adapter_file"] != adapter_run["adapter_file"]:
        existing = None  # the source task was trained again since: score its newer adapter
    if existing and not force:
        return RunOutcome(existing, "skipped")
    timer = StageTimer()
    with timer.stage("load"):
        bundle = models.load(plan)
        dataset = data.load(plan) if plan.trains else None
    run_id = new_run_id(plan)
    run_dir = runs_root / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "plan.json").write_text(plan.model_dump_json(indent=2))
    store.start_run({
        "run_id": run_id, "plan_hash": plan.plan_hash, "task": plan.task.name, "task_version": plan.task.version,
        "method": plan.method.name, "method_version": plan.method.version, "method_kind": plan.method.kind,
        "profile": plan.profile, "seed": plan.seed, "versions": package_versions(), "git_commit": git_commit(),
        "plan": plan.model_dump(mode="json"), "run_dir": str(run_dir),
    })
    try:
        fields, samples, scores, aggregates = _execute(plan, bundle, dataset, run_dir, timer, progress, adapter_run)
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        (run_dir / "error.log").write_text(traceback.format_exc())
        store.fail_run(run_id, message)
        if isinstance(exc, Exception):
            return RunOutcome(run_id, "failed", run_dir, message)
        raise
    fields["timings"] = timer.finish()
    (run_dir / "result.json").write_text(json.dumps({"run": fields, "aggregates": aggregates}, indent=2))
    store.complete_run(run_id, fields, samples, scores, aggregates)
    return RunOutcome(run_id, "completed", run_dir, timings=fields["timings"])


def _check_method_fits_task(plan: RunPlan) -> None:
    from harness.registry import method_class
    from harness.specs import SpecError

    if method_class(plan.method.kind).needs_subjects and plan.task.data.adapter != "dreambooth":
        raise SpecError(f"method '{plan.method.name}' (kind {plan.method.kind}) trains one subject at a time; "
                        f"task '{plan.task.name}' has no subjects (data adapter '{plan.task.data.adapter}', "
                        "expected 'dreambooth')")


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


def _execute(plan: RunPlan, bundle: Any, dataset: Any, run_dir: Path, timer: StageTimer,
             progress: Any, adapter_run: dict[str, Any] | None = None) -> tuple[dict, list, list, list]:
    from harness import metrics, sampling
    from harness.progress import open_stage
    from harness.prompts import plan_prompts
    from harness.registry import method_class
    from harness.training import peak_memory, train

    modules = bundle.modules()
    base_params = sum(p.numel() for m in modules.values() for p in m.parameters())
    if plan.task.data.adapter == "dreambooth":
        from harness.subjects import execute_subjects

        sampling_tick = open_stage(progress, "sampling (all subjects and checkpoints)", None)
        fields, records, result = execute_subjects(plan, bundle, dataset, run_dir, timer, sampling_tick)
        memory, memory_kind = peak_memory()
        fields |= {"base_params": base_params, "peak_memory_bytes": memory, "memory_kind": memory_kind}
        return (fields, *store_rows(records, result))
    method = method_class(plan.method.kind)(plan.method)
    fields: dict[str, Any] = {"base_params": base_params}
    with timer.stage("train"):
        if adapter_run is not None:
            adapter = Path(adapter_run["adapter_file"])
            bundle.load_lora(adapter.parent)
            fields |= {"trainable_params": 0, "steps": 0, "samples_seen": 0, "train_seconds": 0.0,
                       "stopped_by": f"no training (adapter of run {adapter_run['run_id']})",
                       "adapter_file": str(adapter), "adapter_bytes": adapter.stat().st_size}
        else:
            trainable = method.prepare(modules)
            fields["trainable_params"] = sum(p.numel() for p in trainable)
        if plan.trains:
            step_limit = min(plan.task.budget.max_steps, plan.training.max_steps)
            report = train(plan, bundle, dataset, method, modules, tick=open_stage(progress, "training", step_limit))
            (run_dir / "train_log.json").write_text(json.dumps(report.as_dict(), indent=2))
            adapter = method.save(modules, run_dir)
            fields |= {"steps": report.steps, "samples_seen": report.samples_seen,
                       "train_seconds": report.seconds, "stopped_by": report.stopped_by}
            if adapter is not None:
                fields |= {"adapter_file": str(adapter), "adapter_bytes": adapter.stat().st_size}
        elif adapter_run is None:
            fields |= {"steps": 0, "samples_seen": 0, "train_seconds": 0.0, "stopped_by": "no training"}
    with timer.stage("sample"):
        prompts = plan_prompts(plan)
        records = sampling.generate(plan, bundle, prompts, run_dir,
                                    open_stage(progress, "sampling", sum(p.samples for p in prompts)))
    with timer.stage("score"):
        result = metrics.score(metrics.ScoringContext(plan, run_dir), records,
                               open_stage(progress, "scoring", len(plan.task.evaluation.metrics)))
    memory, memory_kind = peak_memory()
    fields |= {"peak_memory_bytes": memory, "memory_kind": memory_kind}
    return (fields, *store_rows(records, result))


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
