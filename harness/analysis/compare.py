"""Comparisons computed from stored scores: deltas against ``frozen`` with bootstrap CIs, checkpoint
curves, per-prompt points of two metrics, and the swept parameters of runs. (Kendall tau and rank
flips are ``harness.analysis.disagree``'s, stored by ``bench disagree``.)"""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import fmean
from typing import Any

import numpy as np

N_RESAMPLES = 2000
ANCHOR_SET = "real_vs_real"  # subject metrics' reference-only rows (harness.metrics.subject)
CONFIDENCE = 0.95


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def bootstrap_ci(method: list[float], reference: list[float], paired: bool) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI (scipy) of mean(method) - mean(reference); None when N < 2 or degenerate."""
    import warnings

    from scipy.stats import bootstrap

    if len(method) < 2 or len(reference) < 2:
        return None, None

    def diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(a, axis=axis) - np.mean(b, axis=axis)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap((np.asarray(method), np.asarray(reference)), diff, paired=paired, vectorized=True,
                           n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
                           rng=np.random.default_rng(0))
    return _finite(result.confidence_interval.low), _finite(result.confidence_interval.high)


def deltas_vs_reference(scores: list[dict[str, Any]], method_of: dict[str, str], reference_run: str,
                        level: str = "grp") -> list[dict[str, Any]]:
    """Per group (``grp``) or per prompt (``prompt_id``): mean(method) - mean(reference) with a CI.

    Samples are paired on (prompt id, sample index) when both runs drew them from the same seed (the
    aligned generators make this the same noise); otherwise the CI is an unpaired bootstrap.
    """
    by_run: dict[str, dict[tuple[str, int], dict[str, Any]]] = defaultdict(dict)
    for row in scores:
        if row.get("checkpoint") is None:
            by_run[row["run_id"]][(row["prompt_id"], row["sample_idx"])] = row
    reference = by_run.get(reference_run, {})
    ref_buckets: dict[str, list[float]] = defaultdict(list)
    for row in reference.values():
        ref_buckets[row[level]].append(row["value"])
    out = []
    for run_id, samples in by_run.items():
        if run_id == reference_run:
            continue
        buckets: dict[str, tuple[list[float], list[float], list[bool]]] = defaultdict(lambda: ([], [], []))
        for key, row in samples.items():
            mine, theirs, aligned = buckets[row[level]]
            mine.append(row["value"])
            partner = reference.get(key)
            aligned.append(partner is not None and partner["seed"] == row["seed"])
            theirs.append(partner["value"] if partner is not None else math.nan)
        for group, (mine, theirs, aligned) in sorted(buckets.items()):
            paired = all(aligned) and len(mine) == len(ref_buckets[group])
            ref_values = theirs if paired else ref_buckets[group]
            if not ref_values:
                continue
            low, high = bootstrap_ci(mine, ref_values, paired)
            out.append({"method": method_of[run_id], level: group, "delta": fmean(mine) - fmean(ref_values),
                        "ci_low": low, "ci_high": high, "n": len(mine), "paired": paired})
    return out


def checkpoint_curves(rows: list[dict[str, Any]], method_of: dict[str, str]) -> list[dict[str, Any]]:
    """Overall metric rows at explicit checkpoints, for methods scored at two or more of them; ``headline``
    marks the checkpoint the run's headline rows (checkpoint NULL, card ``headline_checkpoint``) repeat."""
    picked = [r for r in rows if r.get("checkpoint") is not None and r["grp"] == "__all__"]
    chosen = {(r["run_id"], r["metric"], r["prompt_set"]): (r.get("card") or {}).get("headline_checkpoint")
              for r in rows if r.get("checkpoint") is None and r["grp"] == "__all__"}
    counts: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    for row in picked:
        counts[(row["run_id"], row["metric"], row["prompt_set"])].add(row["checkpoint"])
    return [{"method": method_of[r["run_id"]], "metric": r["metric"], "prompt_set": r["prompt_set"],
             "checkpoint": r["checkpoint"], "value": r["value"], "ci_low": r.get("ci_low"),
             "ci_high": r.get("ci_high"), "n": r["n"],
             "headline": chosen.get((r["run_id"], r["metric"], r["prompt_set"])) == r["checkpoint"]}
            for r in picked if len(counts[(r["run_id"], r["metric"], r["prompt_set"])]) >= 2]


def per_prompt_points(x_scores: list[dict[str, Any]], y_scores: list[dict[str, Any]],
                      method_of: dict[str, str]) -> list[dict[str, Any]]:
    """Mean of two per-sample metrics per (method, prompt) of one prompt set, final weights only."""

    def means(scores: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
        buckets: dict[tuple[str, str], list[float]] = defaultdict(list)
        for row in scores:
            if row.get("checkpoint") is None:
                buckets[(method_of[row["run_id"]], row["prompt_id"])].append(row["value"])
        return {key: fmean(values) for key, values in buckets.items()}

    x, y = means(x_scores), means(y_scores)
    return [{"method": m, "prompt_id": p, "x": x[(m, p)], "y": y[(m, p)]} for m, p in sorted(x) if (m, p) in y]


def sweep_parameters(run: dict[str, Any]) -> dict[str, Any]:
    """Swept parameters of a run under ``bench sweep``'s names (lr, rank, steps, schedule): the stored
    plan's ``overrides`` where it is a sweep cell, else the resolved recipe; plus ``steps run`` (steps
    actually spent: a budget can stop a run before its planned steps)."""
    plan = run.get("plan") or {}
    training = plan.get("training") or {}
    params = (plan.get("method") or {}).get("params") or {}
    found: dict[str, Any] = {"lr": training.get("learning_rate"), "rank": params.get("rank"),
                             "steps": training.get("max_steps"), "schedule": training.get("lr_schedule")}
    found |= plan.get("overrides") or {}
    found["steps run"] = run.get("steps")
    return {k: v for k, v in found.items() if v is not None}


def paired_gains(store: Any, run_id: str, reference_id: str) -> list[dict[str, Any]]:
    """Gain of a run over a reference run (usually ``frozen``) per per-image metric and prompt set: samples
    paired on (prompt id, sample index, seed), gain oriented so that positive is better, its CI a bootstrap
    over prompts of the paired differences. Set-level metrics (FID, KID) get the difference of their values
    and no interval (they have no per-image scores to pair)."""
    from harness.metric_registry import find, higher_is_better
    from harness.metrics.uncertainty import bootstrap_mean

    out = []
    mine = {(r["metric"], r["prompt_set"]): r for r in store.aggregates(run_id, group="__all__")
            if r["checkpoint"] is None}
    theirs = {(r["metric"], r["prompt_set"]): r for r in store.aggregates(reference_id, group="__all__")
              if r["checkpoint"] is None}
    for (metric, prompt_set), row in sorted(mine.items()):
        if prompt_set == ANCHOR_SET:  # real-vs-real anchor rows: no generated samples, nothing to gain
            continue
        declared = find(metric)
        base = theirs.get((metric, prompt_set))
        if declared is None or declared.count or base is None or row["value"] is None or base["value"] is None:
            continue
        sign = 1.0 if higher_is_better(metric, row["card"]) else -1.0
        gain = {"metric": metric, "prompt_set": prompt_set, "value": row["value"], "reference": base["value"],
                "gain": sign * (row["value"] - base["value"]), "ci_low": None, "ci_high": None, "n_pairs": 0,
                "n_prompts": 0}
        if declared.per_sample:
            scores = store.grouped_sample_scores([run_id, reference_id], metric, prompt_set)
            by_run: dict[str, dict[tuple[str, int, int], float | None]] = defaultdict(dict)
            for score in scores:
                if score["checkpoint"] is None:
                    by_run[score["run_id"]][(score["prompt_id"], score["sample_idx"], score["seed"])] = score["value"]
            pairs = [(key, value, by_run[reference_id][key]) for key, value in by_run[run_id].items()
                     if key in by_run[reference_id] and value is not None and by_run[reference_id][key] is not None]
            diffs = [sign * (a - b) for _, a, b in pairs]
            interval = bootstrap_mean(diffs, [key[0] for key, _, _ in pairs]) if diffs else None
            gain |= {"gain": fmean(diffs) if diffs else gain["gain"], "n_pairs": len(diffs),
                     "n_prompts": len({key[0] for key, _, _ in pairs}),
                     "ci_low": interval.low if interval else None, "ci_high": interval.high if interval else None}
        out.append(gain)
    return out
