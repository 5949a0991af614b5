"""Metrics: per-sample scores, aggregates, and the metric card that goes with every number.

Contract: a task names metrics in YAML (``evaluation.metrics: [{name: fid, prompt_sets: [A]}, ...]``,
see ``specs.MetricSpec``). Each name is declared once, next to its code, with ``@register_metric`` (see
``harness.metric_registry`` and docs/metrics.md); the declared function is called as
``fn(ctx, spec, records) -> ScoreResult`` and returns per-sample scores (where the metric has them) and
``Aggregate`` rows, each with N, CI and a metric card. Reference-based metrics (fid, kid, clip_i, dino,
face_distance) read ``ctx.references()``, loaded once per ``ScoringContext``; subject metrics match a
sample's ``group`` to the reference ``groups``.

``score(ctx, records)`` scores every checkpoint's samples (``SampleRecord.checkpoint``; None = final
weights) on its own; when every sample comes from an explicit checkpoint, the method's headline rule
picks one, whose rows are repeated as the headline rows (checkpoint None) and recorded in
``ScoreResult.headline``; ``headline_records`` gives the matching sample records.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from statistics import fmean
from typing import Any

from harness.metric_registry import scorer
from harness.metrics.context import ScoringContext, neutral_prompt
from harness.records import ALL, Aggregate, MetricCard, SampleRecord, ScoreResult

__all__ = ["ALL", "ScoringContext", "aggregate_means", "choose_headline", "headline_records", "neutral_prompt",
           "records_for", "score"]


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


def records_for(spec: Any, records: list[SampleRecord]) -> list[SampleRecord]:
    """The samples a metric applies to: those of its prompt sets (all when it names none)."""
    if spec.prompt_sets is None:
        return list(records)
    return [r for r in records if r.prompt_set in spec.prompt_sets]


def score(ctx: ScoringContext, records: list[SampleRecord], on_metric: Any = None) -> ScoreResult:
    """Every metric of the task on the run's samples, checkpoint by checkpoint, plus the near-black counts
    and, when every sample has a checkpoint, the headline rows; ``on_metric(1)`` after each metric of
    each checkpoint (a pass calls it len(metrics) x number of distinct checkpoints times).

    Under several processes (``harness.distributed``) the (checkpoint, metric) passes are dealt out across
    them and their results gathered in the one-process order, so every process returns the same result."""
    from harness import distributed

    by_checkpoint: dict[int | None, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_checkpoint[record.checkpoint].append(record)
    passes = [(checkpoint, index) for checkpoint in by_checkpoint
              for index in range(len(ctx.plan.task.evaluation.metrics) + 1)]  # the last index: near-black counts
    mine = [(item, _score_pass(ctx, by_checkpoint[item[0]], item[1], on_metric)) for item in distributed.shard(passes)]
    done = dict(item for part in distributed.gather(mine) for item in part)
    result = ScoreResult()
    for item in passes:
        part = done[item]
        result.per_sample += [replace(s, checkpoint=item[0]) for s in part.per_sample]
        result.aggregates += [replace(a, checkpoint=item[0]) for a in part.aggregates]
    if by_checkpoint and None not in by_checkpoint:
        add_headline(result, ctx.headline_rule(), sorted(by_checkpoint))  # type: ignore[arg-type]
    return result


def _score_pass(ctx: ScoringContext, records: list[SampleRecord], index: int, on_metric: Any) -> ScoreResult:
    """One set of weights' samples through the task's ``index``-th metric (the near-black counts after
    the last one)."""
    from harness.metrics import near_black

    specs = ctx.plan.task.evaluation.metrics
    if index == len(specs):
        return ScoreResult(aggregates=list(near_black.counts(ctx, records)))
    spec = specs[index]
    part = scorer(spec.name)(ctx, spec, records_for(spec, records))
    if on_metric is not None:
        on_metric(1)
    return ScoreResult(per_sample=list(part.per_sample), aggregates=list(part.aggregates))


def choose_headline(rule: dict[str, Any], aggregates: list[Aggregate]) -> int:
    """The checkpoint the rule picks: ``final`` = the last one; ``best`` = the best overall value of
    ``metric`` on ``prompt_set`` (in the direction its metric card records; ties go to the earlier step)."""
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


def add_headline(result: ScoreResult, rule: dict[str, Any], checkpoints: list[int]) -> None:
    """Repeat the rule-picked checkpoint's scores and aggregates as headline rows (checkpoint None; cards
    carry ``headline_rule`` and ``headline_checkpoint``) and record the choice in ``result.headline``."""
    chosen = choose_headline(rule, result.aggregates)
    result.headline = {"rule": rule, "checkpoint": chosen, "checkpoints": checkpoints}
    result.per_sample += [replace(s, checkpoint=None) for s in result.per_sample if s.checkpoint == chosen]
    result.aggregates += [replace(a, checkpoint=None, card={**a.card, "headline_rule": rule,
                                                              "headline_checkpoint": chosen})
                          for a in result.aggregates if a.checkpoint == chosen]


def headline_records(records: list[SampleRecord], headline: dict[str, Any] | None) -> list[SampleRecord]:
    """Copies (checkpoint None) of the samples of the headline checkpoint, to store beside the
    per-checkpoint ones; empty when the pass had no headline (the samples already are the final ones)."""
    if headline is None:
        return []
    return [replace(r, checkpoint=None) for r in records if r.checkpoint == headline["checkpoint"]]
