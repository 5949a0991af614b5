"""Metrics: per-sample scores, aggregates, and the metric card that goes with every number."""

from __future__ import annotations

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SampleScore:
    metric: str
    prompt_set: str
    prompt_id: str
    sample_idx: int
    value: float
    checkpoint: int | None = None


@dataclass(frozen=True)
class Aggregate:
    """Mean of a metric over a prompt set (``group == ALL``) or over one class/group of it."""

    metric: str
    prompt_set: str
    group: str
    value: float
    n: int
    card: dict[str, Any]
    ci_low: float | None = None
    ci_high: float | None = None
    checkpoint: int | None = None


@dataclass
class ScoreResult:
    per_sample: list[SampleScore] = field(default_factory=list)
    aggregates: list[Aggregate] = field(default_factory=list)


def aggregate_means(metric: str, records: list[SampleRecord], values: list[float], card: MetricCard,
                    per_group: bool = True) -> list[Aggregate]:
    """Means per prompt set and (optionally) per group, each with its N and card."""
    buckets: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record, value in zip(records, values, strict=True):
        buckets[(record.prompt_set, ALL)].append(value)
        if per_group:
            buckets[(record.prompt_set, record.group)].append(value)
    rows = []
    for (prompt_set, group), bucket in sorted(buckets.items()):
        row_card = {**card.as_dict(), "n": len(bucket)}
        rows.append(Aggregate(metric, prompt_set, group, fmean(bucket), len(bucket), row_card))
    return rows


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


def score(plan: RunPlan, records: list[SampleRecord], run_dir: Path, on_metric: Any = None) -> ScoreResult:
    """Run every metric of the task on the run's samples; ``on_metric(1)`` after each, if given."""
    result = ScoreResult()
    for metric in plan.task.evaluation.metrics:
        if metric.name == "clip_score":
            from harness.metrics import clip_score

            part = clip_score.score(plan, metric, records, run_dir)
        else:
            raise ValueError(f"unknown metric '{metric.name}'")
        result.per_sample.extend(part.per_sample)
        result.aggregates.extend(part.aggregates)
        if on_metric is not None:
            on_metric(1)
    result.aggregates.extend(near_black_counts(plan, records))
    return result
