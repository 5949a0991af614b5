"""Metrics: per-sample scores, aggregates, and the metric card that goes with every number.

Contract: a task names metrics in YAML (``evaluation.metrics: [{name: fid, prompt_sets: [A]}, ...]``,
see ``specs.MetricSpec``); ``METRIC_MODULES`` maps each name to a module of this package whose
``score(plan, spec, records, run_dir) -> ScoreResult`` returns per-sample scores (where a metric has
them) and ``Aggregate`` rows, each with N, CI and a ``MetricCard``. Reference-based metrics (fid, kid,
clip_i, dino, face_distance) read ``harness.data.load_references(plan)`` once per scoring pass; subject
metrics match a sample's ``group`` to the reference ``groups``.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from harness.plan import RunPlan
from harness.sampling import SampleRecord

ALL = "__all__"


@dataclass(frozen=True)
class MetricCard:
    """What a number means: backbone, weights identity, preprocessing, scale, N, library version."""

    metric: str
    backbone: str
    weights: str
    preprocessing: str
    scale: str
    library: str
    higher_is_better: bool
    n: int = 0
    flags: tuple[str, ...] = ()  # e.g. "biased_small_n", "random_init", "reference_cache_hit"
    notes: str = ""  # uncertainty method, denominators, estimator details

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SampleScore:
    metric: str
    prompt_set: str
    prompt_id: str
    sample_idx: int
    value: float | None  # None: no value for this image (e.g. no face found); it still counts in N shown
    checkpoint: int | None = None


@dataclass(frozen=True)
class Aggregate:
    """Mean of a metric over a prompt set (``group == ALL``) or over one class/group of it."""

    metric: str
    prompt_set: str
    group: str
    value: float | None
    n: int
    card: dict[str, Any]
    ci_low: float | None = None
    ci_high: float | None = None
    checkpoint: int | None = None
    std: float | None = None  # KID: std over subsets (torch-fidelity's convention)


@dataclass
class ScoreResult:
    per_sample: list[SampleScore] = field(default_factory=list)
    aggregates: list[Aggregate] = field(default_factory=list)
    headline: dict[str, Any] | None = None  # {"rule", "checkpoint", "checkpoints"} when checkpoints were scored


def aggregate_means(metric: str, records: list[SampleRecord], values: list[float], card: MetricCard,
                    per_group: bool = True, resamples: int | None = None,
                    subjects_are_groups: bool = False) -> list[Aggregate]:
    """Means per prompt set and (optionally) per group, each with its N, bootstrap CI and card.

    The CI resamples prompts; with ``subjects_are_groups`` the overall row resamples groups (subjects)
    first, then prompts within them.
    """
    from harness.metrics.uncertainty import DEFAULT_RESAMPLES, bootstrap_mean

    buckets: dict[tuple[str, str], list[tuple[SampleRecord, float]]] = defaultdict(list)
    for record, value in zip(records, values, strict=True):
        buckets[(record.prompt_set, ALL)].append((record, value))
        if per_group:
            buckets[(record.prompt_set, record.group)].append((record, value))
    rows = []
    for (prompt_set, group), bucket in sorted(buckets.items()):
        subjects = [r.group for r, _ in bucket] if subjects_are_groups and group == ALL else None
        interval = bootstrap_mean([v for _, v in bucket], [r.prompt_id for r, _ in bucket], subjects,
                                  resamples or DEFAULT_RESAMPLES)
        row_card = {**card.as_dict(), "n": len(bucket), "notes": _join(card.notes, f"CI: {interval.method}")}
        rows.append(Aggregate(metric, prompt_set, group, fmean(v for _, v in bucket), len(bucket), row_card,
                              interval.low, interval.high))
    return rows


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def near_black_counts(plan: RunPlan, records: list[SampleRecord]) -> list[Aggregate]:
    """Near-black samples per prompt set: degenerate outputs are counted, not averaged away."""
    card = MetricCard("near_black_count", "none", "none",
                      f"mean uint8 intensity < {plan.task.sampling.near_black_threshold}",
                      "count of samples", "harness", higher_is_better=False)
    counts: dict[str, list[int]] = defaultdict(list)
    for record in records:
        counts[record.prompt_set].append(int(record.near_black))
    return [Aggregate("near_black_count", s, ALL, float(sum(v)), len(v), {**card.as_dict(), "n": len(v)})
            for s, v in sorted(counts.items())]


# metric name -> module of harness.metrics that scores it: ``score(plan, spec, records, run_dir)``.
METRIC_MODULES: dict[str, str] = {
    "clip_score": "clip_score",
    "clip_score_all_pairs": "clip_score",
    "clip_t": "clip_score",
    "clip_i": "subject",
    "dino": "subject",
    "fid": "fidelity",
    "kid": "fidelity",
    "face_distance": "face",
}


def records_for(spec: Any, records: list[SampleRecord]) -> list[SampleRecord]:
    """The samples a metric applies to: those of its prompt sets (all when it names none)."""
    if spec.prompt_sets is None:
        return list(records)
    return [r for r in records if r.prompt_set in spec.prompt_sets]


_REFERENCES: dict[str, tuple[Any, str]] | None = None  # set only while ``score`` runs


def references(plan: RunPlan) -> tuple[Any, str]:
    """The plan's ReferenceSet and its digest; loaded once per scoring pass however many metrics use it."""
    from harness import data

    if _REFERENCES is None:
        loaded = data.load_references(plan)
        return loaded, loaded.digest()
    if plan.plan_hash not in _REFERENCES:
        loaded = data.load_references(plan)
        _REFERENCES[plan.plan_hash] = (loaded, loaded.digest())
    return _REFERENCES[plan.plan_hash]


def score(plan: RunPlan, records: list[SampleRecord], run_dir: Path, on_metric: Any = None) -> ScoreResult:
    """Run every metric of the task on the run's samples; ``on_metric(1)`` after each, if given."""
    global _REFERENCES
    result = ScoreResult()
    _REFERENCES = {}
    try:
        for metric in plan.task.evaluation.metrics:
            if metric.name not in METRIC_MODULES:
                raise ValueError(f"unknown metric '{metric.name}'")
            module = importlib.import_module(f"harness.metrics.{METRIC_MODULES[metric.name]}")
            part = module.score(plan, metric, records_for(metric, records), run_dir)
            result.per_sample.extend(part.per_sample)
            result.aggregates.extend(part.aggregates)
            if on_metric is not None:
                on_metric(1)
    finally:
        _REFERENCES = None
    result.aggregates.extend(near_black_counts(plan, records))
    return result


def neutral_prompt(prompt: str, identifier: str | None) -> str:
    """The prompt without the identifier word / token: the text every method is scored against."""
    if not identifier:
        return prompt
    return " ".join(word for word in prompt.split() if word != identifier)


def choose_headline(rule: dict[str, Any], aggregates: list[Aggregate]) -> int:
    """The checkpoint the rule picks: ``final`` = the last one; ``best`` = the best overall value of
    ``metric`` on ``prompt_set`` (by the metric card's direction; ties go to the earlier step)."""
    steps = sorted({a.checkpoint for a in aggregates if a.checkpoint is not None})
    kind = rule.get("rule", "final")
    if kind == "final":
        return steps[-1]
    if kind != "best":
        raise ValueError(f"headline rule '{kind}' is not one of final, best")
    metric, prompt_set = rule.get("metric"), rule.get("prompt_set")
    overall = {a.checkpoint: a for a in aggregates
               if a.metric == metric and a.prompt_set == prompt_set and a.group == ALL}
    if set(overall) != set(steps):
        raise ValueError(f"headline rule 'best': no overall '{metric}' on prompt set '{prompt_set}' for every "
                         f"checkpoint {steps}")
    sign = 1.0 if overall[steps[0]].card.get("higher_is_better", True) else -1.0
    return max(steps, key=lambda step: (sign * overall[step].value, -step))


def score_run(plan: RunPlan, records: list[SampleRecord], run_dir: Path, identifiers: dict[str, str],
              on_metric: Any = None) -> ScoreResult:
    """Score each checkpoint's samples on identifier-free prompts; add headline rows when checkpoints exist."""
    from dataclasses import replace

    by_checkpoint: dict[int | None, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_checkpoint[record.checkpoint].append(record)
    result = ScoreResult()
    for checkpoint, group in by_checkpoint.items():
        neutral = [replace(r, prompt=neutral_prompt(r.prompt, identifiers.get(r.group))) for r in group]
        part = score(plan, neutral, run_dir, on_metric)
        result.per_sample += [replace(s, checkpoint=checkpoint) for s in part.per_sample]
        result.aggregates += [replace(a, checkpoint=checkpoint) for a in part.aggregates]
    if None in by_checkpoint:
        return result
    rule = dict(plan.method.params.get("headline", {"rule": "final"}))
    chosen = choose_headline(rule, result.aggregates)
    result.headline = {"rule": rule, "checkpoint": chosen, "checkpoints": sorted(by_checkpoint)}
    result.per_sample += [replace(s, checkpoint=None) for s in result.per_sample if s.checkpoint == chosen]
    result.aggregates += [replace(a, checkpoint=None, card={**a.card, "headline_rule": rule,
                                                              "headline_checkpoint": chosen})
                          for a in result.aggregates if a.checkpoint == chosen]
    return result
