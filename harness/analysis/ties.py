"""When is one method better than another? One rule for the leaderboard's ranks and ``bench disagree``'s flips.

Per-image metrics: the difference of two runs is the mean of their paired per-image differences (paired on
prompt id, sample index and seed: the aligned generators give both the same noise), its 95% interval a
bootstrap over prompts (the same prompt draws for every pair, seeded). The order of two runs is *decided*
when that interval excludes 0; otherwise they tie. Set-level metrics (FID, KID) have no per-image values:
two runs tie when their stored intervals overlap (a conservative test, said as such), and a run without a
stored interval cannot be separated from another by this rule (it ties). Ranks: runs sorted by value,
a run shares the rank of the group above it unless that group's leader is decidedly better; runs that
share a rank are shown with ``=``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

RESAMPLES = 1000
CONFIDENCE = 0.95
PAIRED = "paired bootstrap over prompts"
OVERLAP = "stored intervals overlap"
NO_INTERVAL = "no interval stored"


@dataclass(frozen=True)
class Difference:
    """Oriented difference a - b (positive: a is better), its interval and how it was obtained."""

    delta: float | None
    low: float | None
    high: float | None
    rule: str
    n_pairs: int = 0

    @property
    def decided(self) -> bool:
        """The interval excludes 0 (for set-level metrics: the two stored intervals do not overlap)."""
        if self.delta is None or self.low is None or self.high is None:
            return False
        return self.low > 0 or self.high < 0


def paired_values(scores: list[dict[str, Any]]) -> dict[str, dict[tuple[str, int, int], float]]:
    """Per run: (prompt id, sample index, seed) -> value of the headline per-image scores (checkpoint NULL)."""
    out: dict[str, dict[tuple[str, int, int], float]] = defaultdict(dict)
    for s in scores:
        if s.get("checkpoint") is None and s.get("value") is not None:
            out[s["run_id"]][(s["prompt_id"], int(s["sample_idx"]), int(s.get("seed") or 0))] = float(s["value"])
    return out


def _draws(n_prompts: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_prompts, (RESAMPLES, n_prompts))


def paired_difference(a: dict[tuple[str, int, int], float], b: dict[tuple[str, int, int], float],
                      higher_is_better: bool, seed: int = 0) -> Difference:
    """Mean paired difference a - b (oriented) with a percentile bootstrap interval over prompts."""
    sign = 1.0 if higher_is_better else -1.0
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for key, value in a.items():
        other = b.get(key)
        if other is not None:
            sums[key[0]][0] += sign * (value - other)
            sums[key[0]][1] += 1
    if not sums:
        return Difference(None, None, None, PAIRED)
    prompts = sorted(sums)
    total = np.array([sums[p][0] for p in prompts])
    count = np.array([sums[p][1] for p in prompts], dtype=float)
    delta = float(total.sum() / count.sum())
    if len(prompts) < 2:
        return Difference(delta, None, None, PAIRED, int(count.sum()))
    draws = _draws(len(prompts), seed)
    means = total[draws].sum(axis=1) / count[draws].sum(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Difference(delta, float(low), float(high), PAIRED, int(count.sum()))


def interval_difference(a: dict[str, Any], b: dict[str, Any], higher_is_better: bool) -> Difference:
    """Set-level rows (FID, KID): the oriented difference of the values; ``low``/``high`` bound it by the
    stored intervals (low = worst case gap, high = best case): the order is decided when they do not overlap."""
    if a.get("value") is None or b.get("value") is None:
        return Difference(None, None, None, NO_INTERVAL)
    sign = 1.0 if higher_is_better else -1.0
    delta = sign * (a["value"] - b["value"])
    if None in (a.get("ci_low"), a.get("ci_high"), b.get("ci_low"), b.get("ci_high")):
        return Difference(delta, None, None, NO_INTERVAL)
    if higher_is_better:
        low, high = a["ci_low"] - b["ci_high"], a["ci_high"] - b["ci_low"]
    else:
        low, high = b["ci_low"] - a["ci_high"], b["ci_high"] - a["ci_low"]
    return Difference(delta, low, high, OVERLAP)


def grouped_ranks(order: list[str], decided: Any) -> dict[str, tuple[int, bool]]:
    """Ranks of ``order`` (best first by value): walking down, a key joins the group of the current group's
    leader unless ``decided(leader, key)`` (the leader is decidedly better), in which case it leads a new
    group. A group's rank is its leader's position; (rank, shared) per key. Monotonic by construction."""
    ranks: dict[str, int] = {}
    leader, rank = None, 0
    for position, key in enumerate(order, start=1):
        if leader is None or decided(leader, key):
            leader, rank = key, position
        ranks[key] = rank
    sizes = defaultdict(int)
    for r in ranks.values():
        sizes[r] += 1
    return {k: (r, sizes[r] > 1) for k, r in ranks.items()}


def rank_label(rank: int, tied: bool) -> str:
    """``=2`` for a shared rank, ``2`` otherwise."""
    return f"={rank}" if tied else str(rank)


def digits_to_separate(values: list[float | None], minimum: int = 4, maximum: int = 8) -> int:
    """Decimals that make every difference between distinct values visible (at least ``minimum``)."""
    finite = sorted({v for v in values if v is not None and math.isfinite(v)})
    gaps = [b - a for a, b in zip(finite, finite[1:], strict=False) if b - a > 0]
    if not gaps:
        return minimum
    needed = math.ceil(-math.log10(min(gaps))) + 1 if min(gaps) < 1 else 1
    return max(minimum, min(maximum, needed))
