"""Disagreement: the analysis ``bench disagree`` stored (``Store.latest_disagreement``): Kendall-tau
matrix between metric rankings, the method pairs whose order flips (with their prompts, each linked to
its sample grid), and a scatter of two metrics."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from harness.analysis.compare import per_prompt_points
from harness.store import Store
from panels.common import profile_note, samples_link, table

LINK = st.column_config.LinkColumn("sample grid", display_text="open grid")


def label(metric: str, prompt_set: str) -> str:
    return f"{metric} [{prompt_set}]"


def tau_matrix(taus: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    """Symmetric matrix of the stored tau rows (1 on the diagonal; None where tau is undefined)."""
    cell = {label: {label: 1.0} for label in labels}
    for t in taus:
        a, b = label(t["metric_a"], t["set_a"]), label(t["metric_b"], t["set_b"])
        cell[a][b] = cell[b][a] = t["tau"]
    return [{"metric": a, **{b: cell[a].get(b) for b in labels}} for a in labels]


def flip_rows(analysis: dict[str, Any], task: str, profile: str) -> list[dict[str, Any]]:
    """One row per (flip, prompt): which metric prefers which method, and a link to that prompt's grid."""
    rows = []
    for f in analysis["flips"]:
        common = {"method A": f["method_a"], "method B": f["method_b"],
                  "metric 1": label(f["metric_a"], f["set_a"]),
                  "prefers (1)": f["method_a"] if f["delta_a"] > 0 else f["method_b"],
                  "metric 2": label(f["metric_b"], f["set_b"]),
                  "prefers (2)": f["method_a"] if f["delta_b"] > 0 else f["method_b"],
                  "persistence": round(f["persistence"], 3)}
        for prompt in f["prompts"] or [{"prompt_id": None, "prompt": "", "strength": None, "why": ""}]:
            rows.append({**common, "prompt_id": prompt["prompt_id"], "prompt": prompt["prompt"],
                         "strength": prompt["strength"],
                         "sample grid": samples_link(task, profile, _set_of(analysis, f, prompt), prompt["prompt_id"],
                                                     [f["method_a"], f["method_b"]])})
    return rows


def _set_of(analysis: dict[str, Any], flip: dict[str, Any], prompt: dict[str, Any]) -> str:
    """The prompt set a flip's prompt belongs to: the per-image metric's set (set metrics have no prompts)."""
    per_image = {(r["metric"], r["prompt_set"]) for r in analysis.get("per_image", [])}
    if (flip["metric_a"], flip["set_a"]) in per_image or not per_image:
        return flip["set_a"]
    return flip["set_b"] if (flip["metric_b"], flip["set_b"]) in per_image else flip["set_a"]


def render(store: Store, task: str, profile: str) -> None:
    st.header(f"Metric disagreement: {task} ({profile})")
    profile_note(profile)
    analysis = store.latest_disagreement(task, profile)
    if analysis is None:
        st.info(f"no disagreement analysis stored yet: run `bench disagree --task {task} --profile {profile}`")
        return
    runs = analysis["runs"]
    st.caption(f"analysis {analysis['analysis_id']} ({analysis['created_at']:%Y-%m-%d %H:%M}) over "
               f"{len(runs)} methods: {', '.join(sorted(runs))}; {analysis['resamples']} prompt resamples")
    rankings = analysis["rankings"]
    labels = sorted({label(r["metric"], r["prompt_set"]) for r in rankings})
    st.subheader("Kendall tau between metric rankings")
    st.caption("tau-b over the methods, values oriented so that 1 = same ranking (lower-is-better metrics "
               "are negated first); None = undefined")
    table(tau_matrix(analysis["tau"], labels))
    table([{"metric A": label(t["metric_a"], t["set_a"]), "metric B": label(t["metric_b"], t["set_b"]),
            "tau": t["tau"], "ci_low": t["ci_low"], "ci_high": t["ci_high"], "methods": t["n_methods"],
            "note": t["note"]} for t in analysis["tau"]])
    st.subheader("Method pairs whose order flips")
    analysis["per_image"] = store.per_image_metrics(list(runs.values()))
    flips = flip_rows(analysis, task, profile)
    if flips:
        st.caption(f"{len(analysis['flips'])} flipped (pair, metric pair); the prompts where each flip is most "
                   "pronounced, each linked to its sample grid; persistence = share of prompt resamples in "
                   "which both orders hold")
        table(flips, **{"sample grid": LINK})
    else:
        st.info("no method pair changes order between any two metrics")
    _scatter(store, analysis, labels)


def _scatter(store: Store, analysis: dict[str, Any], labels: list[str]) -> None:
    st.subheader("Scatter of two metrics")
    if len(labels) < 2:
        st.info("only one metric ranked: no scatter")
        return
    x = st.selectbox("x", labels, index=0, key="scatter_x")
    y = st.selectbox("y", labels, index=1, key="scatter_y")
    values: dict[str, dict[str, float]] = defaultdict(dict)
    keys = {}
    for r in analysis["rankings"]:
        values[label(r["metric"], r["prompt_set"])][r["method"]] = r["value"]
        keys[label(r["metric"], r["prompt_set"])] = (r["metric"], r["prompt_set"])
    (mx, sx), (my, sy) = keys[x], keys[y]
    per_image = {(r["metric"], r["prompt_set"]) for r in analysis["per_image"]}
    method_of = {run_id: method for method, run_id in analysis["runs"].items()}
    if sx == sy and keys[x] in per_image and keys[y] in per_image:
        st.caption(f"one point per (method, prompt) of prompt set {sx}: per-prompt means")
        ids = list(method_of)
        points = per_prompt_points(store.grouped_sample_scores(ids, mx, sx), store.grouped_sample_scores(ids, my, sy),
                                   method_of)
    else:
        st.caption("one point per method: the overall values the analysis ranked")
        points = [{"method": m, "x": v, "y": values[y][m]} for m, v in sorted(values[x].items()) if m in values[y]]
    chart = alt.Chart(pd.DataFrame(points)).mark_point(filled=True).encode(
        x=alt.X("x:Q", title=x, scale=alt.Scale(zero=False)), y=alt.Y("y:Q", title=y, scale=alt.Scale(zero=False)),
        color="method:N", tooltip=list(points[0]) if points else None)
    st.altair_chart(chart, width="stretch")
    table(points)
