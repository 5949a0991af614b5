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
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.analysis.leaderboard import is_count, latest_runs
from harness.errors import BenchError
from harness.metric_registry import find, higher_is_better
from harness.store import Store, run_label

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

    @property
    def label(self) -> str:
        return f"{self.metric}[{self.prompt_set}]"

    def oriented(self, method: str) -> float:
        return self.values[method] if self.higher_is_better else -self.values[method]

    def ranks(self) -> dict[str, int]:
        order = sorted(self.values, key=lambda m: -self.oriented(m))
        return {m: order.index(m) + 1 for m in self.values}


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
    run_ids = {run_label(r): r["run_id"] for r in runs}
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for run in runs:
        for m in run["metrics"]:
            if is_count(m["metric"]) or m["prompt_set"] in SKIP_SETS or m["value"] is None:
                continue
            rows[(m["metric"], m["prompt_set"])][run_label(run)] = m
    scores = {method: headline_scores(store.sample_scores(rid)) for method, rid in run_ids.items()}
    rankings = []
    for (metric, prompt_set), by_method in sorted(rows.items()):
        identities = {(v["card"].get("backbone"), v["card"].get("weights")) for v in by_method.values()}
        if len(by_method) != len(run_ids) or len(identities) > 1:
            continue  # missing for some method, or scored with different backbones: not comparable
        first = next(iter(by_method.values()))
        ranking = Ranking(metric, prompt_set, higher_is_better(metric, first["card"]),
                          {k: float(v["value"]) for k, v in by_method.items()},
                          {k: int(v["n"]) for k, v in by_method.items()})
        declared = find(metric)
        if declared is None or declared.per_sample:
            tables = {method: per_prompt_table(scores[method], metric, prompt_set) for method in run_ids}
            ranking.per_prompt = {method: table for method, table in tables.items() if table}
        if ranking.per_prompt and len(ranking.per_prompt) != len(run_ids):
            ranking.per_prompt = {}
        rankings.append(ranking)
    if len(rankings) < 2:
        raise DisagreementError(f"task '{task}' ({profile}): fewer than two metrics scored in every run")
    return run_ids, rankings


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
        za, zb = _prompt_diffs(ra, ma, mb), _prompt_diffs(rb, ma, mb)
        sa, sb = np.sign(da), np.sign(db)
        if za and zb and ra.prompt_set == rb.prompt_set:
            strength = {p: sa * za[p] + sb * zb[p] for p in za if p in zb}
            why = "opposite standardised differences on the same prompt"
        else:
            strength = {p: sa * z for p, z in za.items()} or {p: sb * z for p, z in zb.items()}
            why = f"strongest support for {(ra if za else rb).label}'s order"
        best = sorted(strength.items(), key=lambda kv: -kv[1])[:top]
        prompts = [{"prompt_id": p, "prompt": prompt_text.get(p, ""), "strength": round(float(s), 4), "why": why}
                   for p, s in best]
        i, j = methods.index(ma), methods.index(mb)
        holds = [(rep[ra.label][i] - rep[ra.label][j]) * sa > 0 and (rep[rb.label][i] - rep[rb.label][j]) * sb > 0
                 for rep in reps]
        out.append(Flip(ma, mb, ra, rb, float(da), float(db), prompts, float(np.mean(holds)) if holds else 0.0))
    return out


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
