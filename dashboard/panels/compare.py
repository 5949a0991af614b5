"""Compare: deltas against ``frozen`` per class / subject / prompt with CIs; checkpoint curves."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from harness.analysis.compare import checkpoint_curves, deltas_vs_reference
from harness.analysis.leaderboard import REFERENCE_METHOD
from harness.store import Store
from panels.common import (
    cached,
    latest_runs,
    method_of,
    no_runs,
    param,
    profile_note,
    scope,
    score_columns,
    set_param,
    split_labels,
    table,
)

LEVELS = {"class / subject (group)": "grp", "prompt": "prompt_id"}


def render(store: Store, task: str, profile: str) -> None:
    st.header(f"Compare against {REFERENCE_METHOD}: {task} ({profile})")
    profile_note(profile)
    runs = latest_runs(store, task, profile)
    if not runs:
        no_runs(task, profile)
        return
    reference = next((r for r in runs if r["method"] == REFERENCE_METHOD), None)
    labels_of = method_of(runs)
    others = [labels_of[r["run_id"]] for r in runs if r is not reference]
    wanted = [m for m in split_labels(param("methods")) if m in others]
    picked = st.multiselect("Methods", others, default=wanted or others, key=f"compare_methods|{scope(task, profile)}")
    set_param("methods", picked if picked != others else None)
    per_image = {(r["metric"], r["prompt_set"]) for r in cached(store, "per_image_metrics",
                                                                [r["run_id"] for r in runs])}
    columns = [c for c in score_columns(runs) if (c.metric, c.prompt_set) in per_image]  # FID/KID: set metrics
    if reference is None:
        st.warning(f"no '{REFERENCE_METHOD}' run on this profile to compare against: run "
                   f"`bench run --task {task} --method {REFERENCE_METHOD} --profile {profile}`")
    elif not columns:
        st.info("no per-sample metric stored for these runs")
    elif picked:
        labels = [c.label for c in columns]
        column = columns[labels.index(st.selectbox("Metric", labels, key=f"compare_metric|{scope(task, profile)}"))]
        level = LEVELS[st.radio("Per", list(LEVELS), horizontal=True, key="compare_level")]
        chosen = [r for r in runs if labels_of[r["run_id"]] in picked] + [reference]
        scores = cached(store, "grouped_sample_scores", [r["run_id"] for r in chosen], column.metric,
                        column.prompt_set)
        deltas = deltas_vs_reference(scores, method_of(chosen), reference["run_id"], level)
        _delta_chart(deltas, level, column.label)
    _checkpoints(store, runs)


def _delta_chart(deltas: list[dict[str, Any]], level: str, label: str) -> None:
    if not deltas:
        st.info("no per-sample scores to compare for this metric")
        return
    st.caption(f"delta = mean(method) - mean({REFERENCE_METHOD}) on {label}; 95% bootstrap CI; paired on "
               "(prompt, sample index) when both runs used the same seeds")
    frame = pd.DataFrame(deltas)
    # one point and interval per (group, configuration) side by side: never stacked (a sum of deltas means
    # nothing); a distinct colour per sweep cell, its label in the legend
    methods = sorted(frame["method"].unique())
    height = max(200, min(4000, 14 * len(frame) + 40))
    color = alt.Color("method:N", scale=alt.Scale(scheme="tableau20" if len(methods) > 10 else "tableau10"),
                      legend=alt.Legend(title="method", labelLimit=400, columns=1))
    base = alt.Chart(frame).encode(y=alt.Y(f"{level}:N", title=None), yOffset=alt.YOffset("method:N", sort=methods),
                                   color=color, tooltip=["method", level, "delta", "ci_low", "ci_high", "n"])
    points = base.mark_point(filled=True, size=40).encode(x=alt.X("delta:Q", title=f"delta vs {REFERENCE_METHOD}"))
    errors = base.mark_rule().encode(x="ci_low:Q", x2="ci_high:Q")
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4], color="grey").encode(x="x:Q")
    st.altair_chart((errors + points + zero).properties(height=height), width="stretch")
    table(deltas)


def _checkpoints(store: Store, runs: list[dict[str, Any]]) -> None:
    st.subheader("Checkpoint curves")
    rows = cached(store, "aggregates_of_runs", [r["run_id"] for r in runs], "__all__")
    curves = checkpoint_curves(rows, method_of(runs))
    if not curves:
        st.info("no method of this task was scored at several checkpoints yet (runs that store metrics per "
                "training checkpoint show a curve here)")
        return
    frame = pd.DataFrame(curves)
    frame["series"] = frame["metric"] + " [" + frame["prompt_set"] + "]"
    for series, part in frame.groupby("series"):
        chart = alt.Chart(part).mark_line(point=True).encode(
            x="checkpoint:Q", y=alt.Y("value:Q", title=series, scale=alt.Scale(zero=False)), color="method:N",
            tooltip=["method", "checkpoint", "value", "n", "headline"])
        st.altair_chart(chart, width="stretch")
    st.caption("headline = the checkpoint the run's headline rows repeat (the leaderboard shows those)")
    table(curves)
