"""Uncertainty of aggregates: cluster bootstrap for per-image metrics, resampling for set metrics.

Per-image metrics: samples of one prompt are not independent (same text), so the bootstrap resamples
prompts with all their samples; with several subjects (groups) it first resamples subjects, then
prompts within each drawn subject. Set metrics have no per-image value: FID's interval comes from a
bootstrap of the generated images at full N, bias-corrected (``shifted_interval``: duplicates in a
resample inflate FID, so the replicates are shifted by their mean's offset from the estimate); KID's
from torch-fidelity's subsets (``subsample_indices``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
DEFAULT_RESAMPLES = 1000
SEED = 0


@dataclass(frozen=True)
class Interval:
    low: float | None
    high: float | None
    resamples: int
    method: str


def _percentiles(stats: np.ndarray, level: float) -> tuple[float | None, float | None]:
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return None, None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean(values: Sequence[float | None], prompt_ids: Sequence[str], subjects: Sequence[str] | None = None,
                   resamples: int = DEFAULT_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> Interval:
    """Percentile interval of the mean of ``values`` under a prompt (and subject) cluster bootstrap.

    ``None`` values (e.g. a generated image without a face) stay in their prompt but add nothing to
    the mean, exactly as in the point estimate. ``subjects`` with a single distinct value resample
    prompts only; a single prompt resamples its samples (there is no between-prompt spread to use);
    fewer than two values give no interval.
    """
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return Interval(None, None, 0, "none (fewer than two values)")
    if len(set(prompt_ids)) == 1:
        rng = np.random.default_rng(seed)
        draws = np.asarray(present)[rng.integers(0, len(present), size=(resamples, len(present)))]
        low, high = _percentiles(draws.mean(axis=1), level)
        return Interval(low, high, resamples, f"bootstrap over the samples of a single prompt, {resamples} resamples")
    sums: dict[tuple[str, str], float] = defaultdict(float)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    subject_of = subjects if subjects is not None else ["_"] * len(values)
    for value, prompt, subject in zip(values, prompt_ids, subject_of, strict=True):
        sums[(subject, prompt)] += 0.0 if value is None else float(value)
        counts[(subject, prompt)] += 0 if value is None else 1
    keys = sorted(sums)
    prompt_sum = np.array([sums[k] for k in keys])
    prompt_n = np.array([counts[k] for k in keys], dtype=float)
    by_subject: dict[str, list[int]] = defaultdict(list)
    for i, (subject, _) in enumerate(keys):
        by_subject[subject].append(i)
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    if len(by_subject) > 1:
        groups = [np.array(v) for _, v in sorted(by_subject.items())]
        method = f"cluster bootstrap over subjects then prompts, {resamples} resamples"
        for r in range(resamples):
            chosen = rng.integers(0, len(groups), size=len(groups))
            idx = np.concatenate([rng.choice(groups[g], size=len(groups[g]), replace=True) for g in chosen])
            n = prompt_n[idx].sum()
            stats[r] = prompt_sum[idx].sum() / n if n else np.nan
    else:
        method = f"bootstrap over prompts, {resamples} resamples"
        idx = rng.integers(0, len(keys), size=(resamples, len(keys)))
        n = prompt_n[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = prompt_sum[idx].sum(axis=1) / n
    low, high = _percentiles(stats, level)
    return Interval(low, high, resamples, method)


def bootstrap_indices(n: int, repeats: int, seed: int = SEED) -> list[np.ndarray]:
    """``repeats`` index sets of ``n`` drawn from ``range(n)`` with replacement (a bootstrap at full N)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, size=n) for _ in range(repeats)]


def shifted_interval(estimate: float, replicates: Sequence[float], method: str, level: float = LEVEL) -> Interval:
    """Percentile interval of bootstrap replicates shifted by their bias (mean replicate - estimate), so that
    a statistic biased by resampling (FID rises with duplicated images) gets an interval around its estimate."""
    stats = np.asarray(replicates, dtype=float)
    if len(stats) < 2:
        return Interval(None, None, len(stats), method)
    bias = float(stats.mean()) - estimate
    low, high = _percentiles(stats - bias, level)
    return Interval(low, high, len(stats), f"{method}; bias {bias:+.4g} removed")


def percentile_interval(stats: Sequence[float], method: str, level: float = LEVEL) -> Interval:
    """Percentile interval of already computed replicate statistics."""
    low, high = _percentiles(np.asarray(stats, dtype=float), level)
    return Interval(low, high, len(stats), method)
