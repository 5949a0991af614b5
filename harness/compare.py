"""Comparisons computed from stored scores: deltas against ``frozen`` with bootstrap CIs, Kendall tau
between metrics over methods, rank flips, and the swept parameters of runs."""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations
from statistics import fmean
from typing import Any

import numpy as np

N_RESAMPLES = 2000
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
    """Overall metric rows at explicit checkpoints, for methods scored at two or more of them."""
    picked = [r for r in rows if r.get("checkpoint") is not None and r["grp"] == "__all__"]
    counts: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    for row in picked:
        counts[(row["run_id"], row["metric"], row["prompt_set"])].add(row["checkpoint"])
    return [{"method": method_of[r["run_id"]], "metric": r["metric"], "prompt_set": r["prompt_set"],
             "checkpoint": r["checkpoint"], "value": r["value"], "ci_low": r.get("ci_low"),
             "ci_high": r.get("ci_high"), "n": r["n"]}
            for r in picked if len(counts[(r["run_id"], r["metric"], r["prompt_set"])]) >= 2]


def _oriented(values: dict[str, float], higher_is_better: bool) -> dict[str, float]:
    return {k: v if higher_is_better else -v for k, v in values.items()}


def kendall_matrix(columns: dict[str, tuple[dict[str, float], bool]]) -> list[dict[str, Any]]:
    """Kendall tau (scipy, tau-b) between every two metric columns over the methods both scored.

    ``columns`` maps a label to (method -> value, higher_is_better); values are oriented so that
    tau = 1 means the two metrics rank the methods identically. Undefined tau (fewer than two
    common methods, or a constant column) is None.
    """
    from scipy.stats import kendalltau

    rows = []
    for label_a, (values_a, hib_a) in columns.items():
        row: dict[str, Any] = {"metric": label_a}
        for label_b, (values_b, hib_b) in columns.items():
            common = sorted(set(values_a) & set(values_b))
            a, b = _oriented(values_a, hib_a), _oriented(values_b, hib_b)
            tau = None
            if len(common) >= 2:
                tau = _finite(kendalltau([a[m] for m in common], [b[m] for m in common]).statistic)
            row[label_b] = tau
        rows.append(row)
    return rows


def flipped_pairs(columns: dict[str, tuple[dict[str, float], bool]]) -> list[dict[str, Any]]:
    """Method pairs that one metric orders one way and another metric the other way."""
    flips = []
    for (label_a, (values_a, hib_a)), (label_b, (values_b, hib_b)) in combinations(columns.items(), 2):
        a, b = _oriented(values_a, hib_a), _oriented(values_b, hib_b)
        for first, second in combinations(sorted(set(a) & set(b)), 2):
            if (a[first] - a[second]) * (b[first] - b[second]) < 0:
                winner_a = first if a[first] > a[second] else second
                winner_b = first if b[first] > b[second] else second
                flips.append({"metric A": label_a, "metric B": label_b, "method 1": first, "method 2": second,
                              "better by A": winner_a, "better by B": winner_b})
    return flips


def per_prompt_flips(scores: list[dict[str, Any]], method_of: dict[str, str],
                     higher_is_better: bool) -> list[dict[str, Any]]:
    """Prompts on which a method pair's order is the reverse of its order over the whole prompt set."""
    per_prompt: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    overall: dict[str, list[float]] = defaultdict(list)
    prompt_text: dict[str, str] = {}
    for row in scores:
        if row.get("checkpoint") is not None:
            continue
        method = method_of[row["run_id"]]
        value = row["value"] if higher_is_better else -row["value"]
        per_prompt[row["prompt_id"]][method].append(value)
        overall[method].append(value)
        prompt_text[row["prompt_id"]] = row["prompt"]
    means = {m: fmean(v) for m, v in overall.items()}
    flips = []
    for first, second in combinations(sorted(means), 2):
        if means[first] == means[second]:
            continue
        overall_winner = first if means[first] > means[second] else second
        for prompt_id, by_method in sorted(per_prompt.items()):
            if first not in by_method or second not in by_method:
                continue
            one, two = fmean(by_method[first]), fmean(by_method[second])
            if (one - two) * (means[first] - means[second]) < 0:
                flips.append({"prompt_id": prompt_id, "prompt": prompt_text[prompt_id], "method 1": first,
                              "method 2": second, "better overall": overall_winner,
                              "better on this prompt": first if one > two else second})
    return flips


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
    """Swept parameters of a run: resolved training fields, method params, the stored plan's
    ``overrides`` (flattened, they win), and the steps actually spent."""
    plan = run.get("plan") or {}
    training = plan.get("training") or {}
    params = (plan.get("method") or {}).get("params") or {}
    found: dict[str, Any] = {"learning_rate": training.get("learning_rate"), "max_steps": training.get("max_steps"),
                             "rank": params.get("rank"), "steps": run.get("steps")}
    found |= _flatten(plan.get("overrides") or {})
    return {k: v for k, v in found.items() if v is not None}


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """Leaf keys of nested overrides (``training.learning_rate`` -> ``learning_rate``)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat |= _flatten(value) if isinstance(value, dict) else {key: value}
    return flat
