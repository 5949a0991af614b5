"""Execution of a subject task (``dreambooth_subjects``): one adapter per subject, each trained from the
frozen base under its own budget meter, sampled on that subject's prompts and scored.

Every sample's ``group`` is its subject, so the metrics give per-subject rows and overall rows.
Text-image scores (CLIP-T) use the prompt with the method's identifier removed ("a dog in the snow"),
the same text for every method (``ScoringContext.identifiers``). A method that samples checkpoints
(``ti_then_ft``) has every checkpoint scored (``checkpoint`` = step); the checkpoint its
``params.headline`` rule picks is repeated as the headline rows (``checkpoint`` NULL) with the rule and
the step in their metric cards (``harness.metrics.score``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.models.common import DiffusionBundle
from harness.plan import RunPlan
from harness.prompts import EvalPrompt, plan_prompts
from harness.records import SampleRecord, ScoreResult

CHECKPOINTS_FOLDER = "checkpoints"


def _sample(plan: RunPlan, bundle: DiffusionBundle, prompts: list[EvalPrompt], run_dir: Path,
            checkpoint: int | None, progress: Any) -> list[SampleRecord]:
    """Generate the prompts with the current weights (in eval mode); files of a checkpoint get their folder."""
    from harness.sampling import generate

    prefix = "" if checkpoint is None else f"{CHECKPOINTS_FOLDER}/step_{checkpoint:05d}/"
    modes = [(module, module.training) for module in (bundle.unet, bundle.text_encoder)]
    for module, _ in modes:
        module.eval()
    try:
        made = generate(plan, bundle, prompts, run_dir / prefix if prefix else run_dir, progress)
    finally:
        for module, was_training in modes:
            module.train(was_training)
    return [replace(r, file=prefix + r.file, checkpoint=checkpoint) for r in made]


def _release_memory() -> None:
    """Free the previous subject's modules and optimizer state before loading the next base."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def execute_subjects(plan: RunPlan, bundle: DiffusionBundle, photos: dict | None, run_dir: Path, timer: Any,
                     progress: Any) -> tuple[dict, list[SampleRecord], ScoreResult]:
    """Train, sample and score every subject; returns the run fields, the samples and the scores."""
    from harness import metrics, models
    from harness.methods.subject import SubjectContext, SubjectMethod, fit_default
    from harness.registry import method_class
    from harness.training import BudgetMeter

    task, budget = plan.task, plan.task.budget
    records: list[SampleRecord] = []
    identifiers: dict[str, str] = {}
    per_subject: dict[str, Any] = {}
    class_cache: dict[str, Any] = {}
    totals = {"steps": 0, "samples_seen": 0, "train_seconds": 0.0, "trainable_params": 0, "adapter_bytes": 0}
    stopped: set[str] = set()
    for index, subject in enumerate(task.data.subjects):
        with timer.stage("load"):
            if index > 0:
                _release_memory()
            base = bundle if index == 0 else models.load(plan)
        method = method_class(plan.method.kind)(plan.method)
        identifier = method.identifier(task) if isinstance(method, SubjectMethod) else task.data.identifier
        identifiers[subject.name] = identifier
        prompts = [p for p in plan_prompts(plan, {subject.name: identifier}) if p.group == subject.name]
        folder = run_dir / "subjects" / subject.name
        folder.mkdir(parents=True, exist_ok=True)
        meter = BudgetMeter(budget.max_samples, budget.max_steps, budget.max_seconds)
        sampling_seconds = [0.0]

        def sample(checkpoint: int | None, base: Any = base, prompts: list = prompts, meter: Any = meter,
                   spent: list = sampling_seconds) -> None:
            started = time.perf_counter()
            records.extend(_sample(plan, base, prompts, run_dir, checkpoint, progress))
            elapsed = time.perf_counter() - started
            spent[0] += elapsed
            meter.started += elapsed  # evaluation is not training: not charged to the budget

        ctx = SubjectContext(plan, base, subject, (photos or {}).get(subject.name, []), folder, run_dir, meter,
                             sample, class_cache)
        before = len(records)
        started = time.perf_counter()
        reports = []
        if plan.trains:
            reports = method.fit_subject(ctx) if isinstance(method, SubjectMethod) else \
                fit_default(method, ctx, identifier)
        fit_seconds = time.perf_counter() - started
        timer.timings["train"] = round(timer.timings.get("train", 0.0) + fit_seconds - sampling_seconds[0], 3)
        timer.timings["sample"] = round(timer.timings.get("sample", 0.0) + sampling_seconds[0], 3)
        if len(records) == before:
            with timer.stage("sample"):
                sample(None)
        spent = reports[-1].seconds if reports else 0.0  # budget seconds at the end of the last stage
        if reports:
            totals["steps"] += meter.steps
            totals["samples_seen"] += meter.samples
            totals["train_seconds"] = round(totals["train_seconds"] + spent, 3)
            totals["trainable_params"] = sum(r.trainable_params for r in reports)
            stopped.add(reports[-1].stopped_by)
        for key in ("adapter_file", "token_file"):
            if ctx.details.get(key):
                totals["adapter_bytes"] += Path(ctx.details[key]).stat().st_size
        per_subject[subject.name] = {"identifier": identifier, "budget_seconds": spent,
                                     "stages": [r.as_dict() for r in reports], **ctx.details}
        base.to("cpu")  # the runner keeps the first bundle alive; later ones are dropped on rebinding
        del ctx, sample
    with timer.stage("score"):
        result = metrics.score(metrics.ScoringContext(plan, run_dir, identifiers), records)
    records += metrics.headline_records(records, result.headline)
    fields = {**totals, "stopped_by": ",".join(sorted(stopped)) or "no training",
              "details": {"subjects": per_subject, "headline": result.headline}}
    if plan.trains and totals["adapter_bytes"]:
        fields["adapter_file"] = str(run_dir / "subjects")
    return fields, records, result
