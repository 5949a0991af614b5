"""Metric disagreement: rank a task's methods by each metric, Kendall tau between the rankings
(with a bootstrap interval over prompts), and the method pairs whose order flips between metrics.

Inputs are the latest completed run per method of one task and one profile (tiny and full are never
mixed), headline scores only: the overall headline rows (``analysis.leaderboard``) and the per-image
scores with ``checkpoint`` NULL, which for a checkpointed method (``ti_then_ft``) are the copies of the
step its headline rule picked, so every image counts once. A "metric" here is a (metric, prompt set)
pair with an overall aggregate in every run, oriented so that larger is better (direction from the
metric's declaration). Per-image metrics (declared ``per_sample``) are recomputed on each bootstrap
replicate from the prompt means of the resampled prompts (the same prompts for every method); set
metrics (FID, KID) have no per-prompt values and keep their ranking in every replicate, which the
stored note says.

A pair of methods *flips* when two metrics order it oppositely and each order is decided by the tie rule of
``harness.analysis.ties`` (the one the leaderboard ranks by: the paired-bootstrap interval of the difference
excludes 0; for FID / KID the stored intervals do not overlap); a difference inside its interval is a tie,
not a flip.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.analysis.leaderboard import cell_label, is_count, latest_runs
from harness.analysis.ties import Difference, interval_difference, paired_difference, paired_values
from harness.errors import BenchError
from harness.metric_registry import find, higher_is_better
from harness.store import Store

SKIP_SETS = ("real_vs_real",)
DEFAULT_RESAMPLES = 1000
TOP_PROMPTS = 3


class DisagreementError(BenchError):
    exit_code = 2


@dataclass
class Ranking:
    """One (metric, prompt set): each method's value, rank (1 = best) and per-prompt (sum, count)."""

    metric: str
    prompt_set: str
    higher_is_better: bool
    values: dict[str, float]
    n: dict[str, int]
    per_prompt: dict[str, dict[str, tuple[float, int]]] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # headline aggregate row per method
    paired: dict[str, dict[tuple[str, int, int], float]] = field(default_factory=dict)  # per-image, with seeds

    @property
    def label(self) -> str:
        return f"{self.metric}[{self.prompt_set}]"

    def oriented(self, method: str) -> float:
        return self.values[method] if self.higher_is_better else -self.values[method]

    def ranks(self) -> dict[str, int]:
        order = sorted(self.values, key=lambda m: -self.oriented(m))
        return {m: order.index(m) + 1 for m in self.values}

    def difference(self, a: str, b: str) -> Difference:
        """Oriented difference a - b by the tie rule: paired bootstrap for per-image metrics, else the
        stored intervals."""
        if self.paired.get(a) and self.paired.get(b):
            return paired_difference(self.paired[a], self.paired[b], self.higher_is_better)
        return interval_difference(self.rows.get(a, {}), self.rows.get(b, {}), self.higher_is_better)


@dataclass
class TauRow:
    a: Ranking
    b: Ranking
    tau: float | None
    ci_low: float | None
    ci_high: float | None
    note: str


@dataclass
class Flip:
    method_a: str
    method_b: str
    a: Ranking
    b: Ranking
    delta_a: float  # oriented: > 0 means method_a is better by metric a
    delta_b: float
    prompts: list[dict[str, Any]]
    persistence: float  # share of prompt resamples in which both orders hold as stated
    diff_a: Difference | None = None  # delta_a with its interval (the tie rule)
    diff_b: Difference | None = None


@dataclass
class Disagreement:
    task: str
    profile: str
    runs: dict[str, str]
    rankings: list[Ranking]
    taus: list[TauRow]
    flips: list[Flip]
    resamples: int


def _kendall(x: list[float], y: list[float]) -> float | None:
    from scipy.stats import kendalltau

    tau = kendalltau(x, y).statistic
    return None if tau is None or np.isnan(tau) else float(tau)


def collect(store: Store, task: str, profile: str) -> tuple[dict[str, str], list[Ranking]]:
    """Latest run per method and the rankings every one of them can be compared on (headline rows and
    headline per-image scores only)."""
    runs = latest_runs(store, task, profile)
    if len(runs) < 2:
        raise DisagreementError(f"task '{task}' has {len(runs)} completed run(s) on profile '{profile}'; "
                                "disagreement needs at least two methods (run more with `bench run`)")
    run_ids = {cell_label(r): r["run_id"] for r in runs}
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for run in runs:
        for m in run["metrics"]:
            if is_count(m["metric"]) or m["prompt_set"] in SKIP_SETS or m["value"] is None:
                continue
            rows[(m["metric"], m["prompt_set"])][cell_label(run)] = m
    scores = {method: headline_scores(store.sample_scores(rid)) for method, rid in run_ids.items()}
    rankings = []
    for (metric, prompt_set), by_method in sorted(rows.items()):
        identities = {(v["card"].get("backbone"), v["card"].get("weights")) for v in by_method.values()}
        if len(by_method) != len(run_ids) or len(identities) > 1:
            continue  # missing for some method, or scored with different backbones: not comparable
        first = next(iter(by_method.values()))
        ranking = Ranking(metric, prompt_set, higher_is_better(metric, first["card"]),
                          {k: float(v["value"]) for k, v in by_method.items()},
                          {k: int(v["n"]) for k, v in by_method.items()}, rows=dict(by_method))
        declared = find(metric)
        if declared is None or declared.per_sample:
            tables = {method: per_prompt_table(scores[method], metric, prompt_set) for method in run_ids}
            ranking.per_prompt = {method: table for method, table in tables.items() if table}
        if ranking.per_prompt and len(ranking.per_prompt) != len(run_ids):
            ranking.per_prompt = {}
        if ranking.per_prompt:
            ranking.paired = paired_by_method(store, run_ids, metric, prompt_set)
        rankings.append(ranking)
    if len(rankings) < 2:
        raise DisagreementError(f"task '{task}' ({profile}): fewer than two metrics scored in every run")
    return run_ids, rankings


def paired_by_method(store: Store, run_ids: dict[str, str], metric: str, prompt_set: str
                     ) -> dict[str, dict[tuple[str, int, int], float]]:
    """Per method: (prompt id, sample index, seed) -> headline per-image value, for the paired tie rule."""
    by_run = paired_values(store.grouped_sample_scores(list(run_ids.values()), metric, prompt_set))
    return {method: by_run.get(run_id, {}) for method, run_id in run_ids.items()}


def headline_scores(scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-image scores of a run's headline (checkpoint NULL): every image once, however many
    checkpoints the method was also scored at."""
    return [s for s in scores if s.get("checkpoint") is None]


def per_prompt_table(scores: list[dict[str, Any]], metric: str, prompt_set: str) -> dict[str, tuple[float, int]]:
    """(sum, count) of one run's per-image values of a metric per prompt of a prompt set."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for s in scores:
        if s["metric"] == metric and s["prompt_set"] == prompt_set and s["value"] is not None:
            sums[s["prompt_id"]][0] += s["value"]
            sums[s["prompt_id"]][1] += 1
    return {p: (v[0], int(v[1])) for p, v in sums.items()}


def _replicate_values(ranking: Ranking, methods: list[str], prompts: dict[str, np.ndarray]) -> list[float]:
    if not ranking.per_prompt:
        return [ranking.oriented(m) for m in methods]
    chosen = prompts[ranking.prompt_set]
    out = []
    for method in methods:
        table = ranking.per_prompt[method]
        total = sum(table[p][0] for p in chosen if p in table)
        count = sum(table[p][1] for p in chosen if p in table)
        value = total / count if count else np.nan
        out.append(value if ranking.higher_is_better else -value)
    return out


def replicates(rankings: list[Ranking], methods: list[str], resamples: int, seed: int = 0
               ) -> list[dict[str, list[float]]]:
    """Oriented values per ranking label and method for each resample of prompts (per prompt set)."""
    prompt_sets: dict[str, list[str]] = {}
    for r in rankings:
        if r.per_prompt:
            ids = sorted(set().union(*(set(t) for t in r.per_prompt.values())))
            prompt_sets[r.prompt_set] = sorted(set(prompt_sets.get(r.prompt_set, [])) | set(ids))
    rng = np.random.default_rng(seed)
    out: list[dict[str, list[float]]] = []
    for _ in range(resamples):
        drawn = {s: np.array(ids)[rng.integers(0, len(ids), len(ids))] for s, ids in prompt_sets.items()}
        out.append({r.label: _replicate_values(r, methods, drawn) for r in rankings})
    return out


def tau_rows(rankings: list[Ranking], methods: list[str], reps: list[dict[str, list[float]]]) -> list[TauRow]:
    """Kendall tau-b of every pair of rankings, with a bootstrap interval over prompts."""
    rows = []
    for a, b in itertools.combinations(rankings, 2):
        tau = _kendall([a.oriented(m) for m in methods], [b.oriented(m) for m in methods])
        stats = [_kendall(rep[a.label], rep[b.label]) for rep in reps]
        stats = [s for s in stats if s is not None]
        low, high = (float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))) if stats else (None, None)
        fixed = [r.label for r in (a, b) if not r.per_prompt]
        note = f"{len(methods)} methods; bootstrap over prompts, {len(reps)} resamples"
        if fixed:
            note += f"; {', '.join(fixed)} has no per-prompt values and keeps its ranking in every resample"
        rows.append(TauRow(a, b, tau, low, high, note))
    return rows


def _prompt_diffs(ranking: Ranking, a: str, b: str) -> dict[str, float]:
    """Oriented per-prompt difference (method a minus method b), scaled by its spread over prompts."""
    ta, tb = ranking.per_prompt.get(a, {}), ranking.per_prompt.get(b, {})
    diffs = {p: ta[p][0] / ta[p][1] - tb[p][0] / tb[p][1] for p in ta if p in tb and ta[p][1] and tb[p][1]}
    if not diffs:
        return {}
    spread = float(np.std(list(diffs.values()))) or 1.0
    sign = 1.0 if ranking.higher_is_better else -1.0
    return {p: sign * d / spread for p, d in diffs.items()}


def flips(rankings: list[Ranking], methods: list[str], prompt_text: dict[str, str],
          reps: list[dict[str, list[float]]], top: int = TOP_PROMPTS) -> list[Flip]:
    """Method pairs ordered one way by one metric and the other way by another, with the prompts where
    that is most pronounced (both metrics on the same prompts: largest opposite standardised differences;
    otherwise the prompts that most support the per-image metric's own verdict)."""
    out = []
    for (ma, mb), (ra, rb) in itertools.product(itertools.combinations(methods, 2),
                                                 itertools.combinations(rankings, 2)):
        da, db = ra.oriented(ma) - ra.oriented(mb), rb.oriented(ma) - rb.oriented(mb)
        if da * db >= 0:
            continue
        diff_a, diff_b = ra.difference(ma, mb), rb.difference(ma, mb)
        if not (diff_a.decided and diff_b.decided):
            continue  # one of the two orders is a tie under the tie rule: not a flip
        za, zb = _prompt_diffs(ra, ma, mb), _prompt_diffs(rb, ma, mb)
        sa, sb = np.sign(da), np.sign(db)
        if za and zb and ra.prompt_set == rb.prompt_set:
            strength = {p: sa * za[p] + sb * zb[p] for p in za if p in zb}
            why = "opposite standardised differences on the same prompt"
        else:
            strength = {p: sa * z for p, z in za.items()} or {p: sb * z for p, z in zb.items()}
            why = f"strongest support for {(ra if za else rb).label}'s order"
        best = sorted(strength.items(), key=lambda kv: -kv[1])[:top]
        prompts = [{"prompt_id": p, "prompt": prompt_text.get(p, ""), "strength": round(float(s), 4), "why": why,
                    "delta_a": _prompt_delta(ra, ma, mb, p), "delta_b": _prompt_delta(rb, ma, mb, p)}
                   for p, s in best]
        i, j = methods.index(ma), methods.index(mb)
        holds = [(rep[ra.label][i] - rep[ra.label][j]) * sa > 0 and (rep[rb.label][i] - rep[rb.label][j]) * sb > 0
                 for rep in reps]
        out.append(Flip(ma, mb, ra, rb, float(da), float(db), prompts, float(np.mean(holds)) if holds else 0.0,
                        diff_a, diff_b))
    return out


def _prompt_delta(ranking: Ranking, a: str, b: str, prompt_id: str) -> float | None:
    """Oriented difference of two methods' means on one prompt (None for a set-level metric)."""
    ta, tb = ranking.per_prompt.get(a, {}), ranking.per_prompt.get(b, {})
    if prompt_id not in ta or prompt_id not in tb or not ta[prompt_id][1] or not tb[prompt_id][1]:
        return None
    sign = 1.0 if ranking.higher_is_better else -1.0
    return round(sign * (ta[prompt_id][0] / ta[prompt_id][1] - tb[prompt_id][0] / tb[prompt_id][1]), 8)


def stored_flip_differences(store: Store, analysis: dict[str, Any]) -> list[tuple[Difference, Difference]]:
    """The intervals (tie rule) of both deltas of every stored flip, recomputed from the stored runs with the
    same seeded bootstrap the analysis decided them with (the flips table keeps the deltas only)."""
    run_ids: dict[str, str] = analysis["runs"]
    higher = {(r["metric"], r["prompt_set"]): r["higher_is_better"] for r in analysis["rankings"]}
    cache: dict[tuple[str, str], Ranking] = {}

    def ranking_of(metric: str, prompt_set: str) -> Ranking:
        if (metric, prompt_set) not in cache:
            rows = {}
            for method, run_id in run_ids.items():
                found = [a for a in store.aggregates(run_id, group="__all__")
                         if (a["metric"], a["prompt_set"]) == (metric, prompt_set)]
                if found:
                    rows[method] = max(found, key=lambda a: float("inf") if a["checkpoint"] is None
                                       else a["checkpoint"])
            ranking = Ranking(metric, prompt_set, bool(higher.get((metric, prompt_set), True)),
                              {m: r["value"] for m, r in rows.items()}, {m: r["n"] for m, r in rows.items()},
                              rows=rows)
            declared = find(metric)
            if declared is None or declared.per_sample:
                ranking.paired = paired_by_method(store, run_ids, metric, prompt_set)
            cache[(metric, prompt_set)] = ranking
        return cache[(metric, prompt_set)]

    return [(ranking_of(f["metric_a"], f["set_a"]).difference(f["method_a"], f["method_b"]),
             ranking_of(f["metric_b"], f["set_b"]).difference(f["method_a"], f["method_b"])) for f in analysis["flips"]]


def stale(analysis: dict[str, Any], current: dict[str, str]) -> list[str]:
    """Why a stored analysis no longer covers the leaderboard: configurations it lacks, or runs replaced
    since (``current``: label -> run id of the latest runs now)."""
    stored: dict[str, str] = analysis["runs"]
    reasons = [f"{label} (not in the analysis)" for label in sorted(set(current) - set(stored))]
    reasons += [f"{label} (newer run {current[label]})" for label in sorted(set(current) & set(stored))
                if current[label] != stored[label]]
    return reasons


def analyse(store: Store, task: str, profile: str, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
            ) -> Disagreement:
    """Rankings, taus and flips of one task and profile (nothing stored; see ``store_analysis``)."""
    run_ids, rankings = collect(store, task, profile)
    methods = sorted(run_ids)
    prompt_text = {s["prompt_id"]: s["prompt"] for rid in run_ids.values() for s in store.samples(rid)}
    reps = replicates(rankings, methods, resamples, seed)
    return Disagreement(task, profile, run_ids, rankings, tau_rows(rankings, methods, reps),
                        flips(rankings, methods, prompt_text, reps), resamples)


def store_analysis(store: Store, result: Disagreement) -> str:
    """Write the analysis to the disagreement tables; returns its id."""
    rankings = []
    for r in result.rankings:
        ranks = r.ranks()
        rankings += [{"metric": r.metric, "prompt_set": r.prompt_set, "method": m, "run_id": result.runs[m],
                      "value": r.values[m], "rank": ranks[m], "n": r.n[m], "higher_is_better": r.higher_is_better}
                     for m in sorted(r.values)]
    taus = [{"metric_a": t.a.metric, "set_a": t.a.prompt_set, "metric_b": t.b.metric, "set_b": t.b.prompt_set,
             "tau": t.tau, "ci_low": t.ci_low, "ci_high": t.ci_high, "n_methods": len(result.runs),
             "resamples": result.resamples, "note": t.note} for t in result.taus]
    flip_rows = [{"method_a": f.method_a, "method_b": f.method_b, "metric_a": f.a.metric, "set_a": f.a.prompt_set,
                  "metric_b": f.b.metric, "set_b": f.b.prompt_set, "delta_a": f.delta_a, "delta_b": f.delta_b,
                  "prompts": f.prompts, "persistence": f.persistence} for f in result.flips]
    return store.write_disagreement(result.task, result.profile, result.runs, result.resamples, rankings, taus,
                                    flip_rows)
