"""Disagreement: the analysis ``bench disagree`` stored (``Store.latest_disagreement``): a coloured Kendall-tau
heatmap with intervals, the method pairs whose order flips (each order decided by the leaderboard's tie
rule; both deltas with their intervals, the grid link first), a warning when the analysis no longer
covers the leaderboard, and a scatter of two metrics."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from harness.analysis.compare import per_prompt_points
from harness.analysis.disagree import stale
from harness.store import Store
from panels.common import cached, latest_runs, method_of, profile_note, samples_link, scope, table

LINK = st.column_config.LinkColumn("sample grid", display_text="open grid", width="small")


def label(metric: str, prompt_set: str) -> str:
    return f"{metric} [{prompt_set}]"


def tau_matrix(taus: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    """Symmetric matrix of the stored tau rows (1 on the diagonal; None where tau is undefined)."""
    cell = {name: {name: 1.0} for name in labels}
    for t in taus:
        a, b = label(t["metric_a"], t["set_a"]), label(t["metric_b"], t["set_b"])
        cell[a][b] = cell[b][a] = t["tau"]
    return [{"metric": a, **{b: cell[a].get(b) for b in labels}} for a in labels]


def tau_cells(taus: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    """Long form of the matrix for the heatmap: tau and its bootstrap interval per (row, column)."""
    cells = {(a, a): (1.0, None, None) for a in labels}
    for t in taus:
        a, b = label(t["metric_a"], t["set_a"]), label(t["metric_b"], t["set_b"])
        cells[(a, b)] = cells[(b, a)] = (t["tau"], t["ci_low"], t["ci_high"])
    out = []
    for (a, b), (tau, low, high) in cells.items():
        text = "undefined" if tau is None else f"{tau:.2f}" + ("" if low is None else f" [{low:.2f}, {high:.2f}]")
        out.append({"metric A": a, "metric B": b, "tau": tau, "ci_low": low, "ci_high": high, "text": text})
    return out


def signed(diff: Any) -> str:
    """``+0.00123 [+0.00045, +0.0021] (paired)``; a set-level difference says its rule."""
    if diff is None or diff.delta is None:
        return "n/a"
    if diff.low is None:
        return f"{diff.delta:+.3g} (no interval)"
    how = "intervals apart" if diff.rule.startswith("stored") else "paired"
    return f"{diff.delta:+.3g} [{diff.low:+.2g}, {diff.high:+.2g}] ({how})"


def flip_rows(analysis: dict[str, Any], task: str, profile: str, intervals: list[Any] | None = None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-prompt rows, set-level rows): one row per (flip, prompt) with the grid link first, which metric
    prefers which method and both deltas (oriented: positive = method A better) with their intervals;
    flips between two set-level metrics have no prompts and go to the second list, one row per flip."""
    per_prompt, set_level = [], []
    for i, f in enumerate(analysis["flips"]):
        diff_a, diff_b = intervals[i] if intervals and i < len(intervals) else (None, None)
        common = {"method A": f["method_a"], "method B": f["method_b"],
                  "metric 1": label(f["metric_a"], f["set_a"]),
                  "prefers (1)": f["method_a"] if f["delta_a"] > 0 else f["method_b"],
                  "Δ1 (A - B) [95% CI]": signed(diff_a) if diff_a else f"{f['delta_a']:+.3g}",
                  "metric 2": label(f["metric_b"], f["set_b"]),
                  "prefers (2)": f["method_a"] if f["delta_b"] > 0 else f["method_b"],
                  "Δ2 (A - B) [95% CI]": signed(diff_b) if diff_b else f"{f['delta_b']:+.3g}",
                  "persistence": round(f["persistence"], 3)}
        prompts = f["prompts"] or []
        if not prompts:
            set_level.append({"sample grid": samples_link(task, profile, f["set_a"], None,
                                                          [f["method_a"], f["method_b"]]), **common})
        for prompt in prompts:
            on_prompt = {"Δ1 on prompt": prompt.get("delta_a"), "Δ2 on prompt": prompt.get("delta_b")}
            per_prompt.append({"sample grid": samples_link(task, profile, _set_of(analysis, f), prompt["prompt_id"],
                                                           [f["method_a"], f["method_b"]]),
                               "pair": f"{f['method_a']} vs {f['method_b']}", "prompt_id": prompt["prompt_id"],
                               "prompt": prompt["prompt"], "strength": prompt["strength"], **common, **on_prompt})
    return per_prompt, set_level


def _set_of(analysis: dict[str, Any], flip: dict[str, Any]) -> str:
    """The prompt set a flip's prompts belong to: the per-image metric's set (set metrics have no prompts)."""
    per_image = {(r["metric"], r["prompt_set"]) for r in analysis.get("per_image", [])}
    if (flip["metric_a"], flip["set_a"]) in per_image or not per_image:
        return flip["set_a"]
    return flip["set_b"] if (flip["metric_b"], flip["set_b"]) in per_image else flip["set_a"]


def render(store: Store, task: str, profile: str) -> None:
    st.header(f"Metric disagreement: {task} ({profile})")
    profile_note(profile)
    analysis = cached(store, "latest_disagreement", task, profile)
    if analysis is None:
        st.info(f"no disagreement analysis stored yet: run `bench disagree --task {task} --profile {profile}`")
        return
    runs = analysis["runs"]
    st.caption(f"analysis {analysis['analysis_id']} ({analysis['created_at']:%Y-%m-%d %H:%M}) over "
               f"{len(runs)} methods: {', '.join(sorted(runs))}; {analysis['resamples']} prompt resamples")
    current = {label_: run_id for run_id, label_ in method_of(latest_runs(store, task, profile)).items()}
    missing = stale(analysis, current)
    if missing:
        st.warning(f"this analysis covers {len(runs)} configurations; the leaderboard now has {len(current)}. "
                   f"Not covered: {'; '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}. Run "
                   f"`bench disagree --task {task} --profile {profile}` again.")
    rankings = analysis["rankings"]
    labels = sorted({label(r["metric"], r["prompt_set"]) for r in rankings})
    st.subheader("Kendall tau between metric rankings")
    st.caption("tau-b over the methods (1 = same ranking, -1 = reversed; lower-is-better metrics negated first) "
               "and its 95% bootstrap interval over prompts; blue agrees, red disagrees")
    _heatmap(tau_cells(analysis["tau"], labels))
    with st.expander("tau as numbers"):
        table(tau_matrix(analysis["tau"], labels))
        table([{"metric A": label(t["metric_a"], t["set_a"]), "metric B": label(t["metric_b"], t["set_b"]),
                "tau": t["tau"], "ci_low": t["ci_low"], "ci_high": t["ci_high"], "methods": t["n_methods"],
                "note": t["note"]} for t in analysis["tau"]])
    st.subheader("Method pairs whose order flips")
    analysis["per_image"] = cached(store, "per_image_metrics", list(runs.values()))
    intervals = cached(store, "flip_intervals", task, profile)
    per_prompt, set_level = flip_rows(analysis, task, profile, intervals)
    if per_prompt or set_level:
        st.caption(f"{len(analysis['flips'])} flipped (pair, metric pair): each order is decided (its 95% "
                   "interval excludes 0; the leaderboard's tie rule), Δ = method A minus method B, oriented so "
                   "that positive means A is better; the prompts where each flip is most pronounced, with the "
                   "per-prompt Δ; persistence = share of prompt resamples in which both orders hold")
    if per_prompt:
        table(per_prompt, **{"sample grid": LINK})
    if set_level:
        st.caption("flips between set-level metrics (FID, KID: one value per prompt set, no prompts to show); "
                   "decided when the stored intervals do not overlap")
        table(set_level, **{"sample grid": LINK})
    if not per_prompt and not set_level:
        st.info("no method pair changes order between any two metrics (differences inside their 95% intervals "
                "are ties, not flips)")
    _scatter(store, analysis, labels, scope(task, profile))


def _heatmap(cells: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(cells)
    size = max(220, 70 * frame["metric A"].nunique())
    base = alt.Chart(frame).encode(x=alt.X("metric B:N", title=None, axis=alt.Axis(labelAngle=-30, labelLimit=300)),
                                   y=alt.Y("metric A:N", title=None, axis=alt.Axis(labelLimit=300)))
    rect = base.mark_rect().encode(
        color=alt.Color("tau:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1]), title="tau"),
        tooltip=["metric A", "metric B", "tau", "ci_low", "ci_high"])
    text = base.mark_text(fontSize=11).encode(text="text:N")
    st.altair_chart((rect + text).properties(height=size), width="stretch")


def _domain(values: list[float]) -> list[float] | None:
    """An axis domain that does not zoom into noise: at least 1% of the magnitude (or 1e-4) wide."""
    if not values:
        return None
    low, high = min(values), max(values)
    floor = max(1e-4, 0.01 * max(abs(low), abs(high)))
    if high - low >= floor:
        return None
    middle = (low + high) / 2
    return [middle - floor / 2, middle + floor / 2]


def _scatter(store: Store, analysis: dict[str, Any], labels: list[str], key: str) -> None:
    st.subheader("Scatter of two metrics")
    if len(labels) < 2:
        st.info("only one metric ranked: no scatter")
        return
    x = st.selectbox("x", labels, index=0, key=f"scatter_x|{key}")
    y = st.selectbox("y", labels, index=1, key=f"scatter_y|{key}")
    values: dict[str, dict[str, float]] = defaultdict(dict)
    keys = {}
    for r in analysis["rankings"]:
        values[label(r["metric"], r["prompt_set"])][r["method"]] = r["value"]
        keys[label(r["metric"], r["prompt_set"])] = (r["metric"], r["prompt_set"])
    (mx, sx), (my, sy) = keys[x], keys[y]
    per_image = {(r["metric"], r["prompt_set"]) for r in analysis["per_image"]}
    method_of_run = {run_id: method for method, run_id in analysis["runs"].items()}
    if sx == sy and keys[x] in per_image and keys[y] in per_image:
        st.caption(f"one point per (method, prompt) of prompt set {sx}: per-prompt means")
        ids = list(method_of_run)
        points = per_prompt_points(cached(store, "grouped_sample_scores", ids, mx, sx),
                                   cached(store, "grouped_sample_scores", ids, my, sy), method_of_run)
    else:
        st.caption("one point per method: the overall values the analysis ranked")
        points = [{"method": m, "x": v, "y": values[y][m]} for m, v in sorted(values[x].items()) if m in values[y]]
    frame = pd.DataFrame(points)
    dx, dy = _domain([p["x"] for p in points]), _domain([p["y"] for p in points])
    if dx or dy:
        st.caption("values differ by less than 1% of their size: the axes are not zoomed further (the "
                   "differences are in the tables)")
    scale_x = alt.Scale(zero=False, domain=dx) if dx else alt.Scale(zero=False)
    scale_y = alt.Scale(zero=False, domain=dy) if dy else alt.Scale(zero=False)
    chart = alt.Chart(frame).mark_point(filled=True).encode(
        x=alt.X("x:Q", title=x, scale=scale_x), y=alt.Y("y:Q", title=y, scale=scale_y),
        color=alt.Color("method:N", legend=alt.Legend(labelLimit=400)), tooltip=list(points[0]) if points else None)
    st.altair_chart(chart, width="stretch")
    table(points)
