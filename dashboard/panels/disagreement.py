"""Disagreement: Kendall tau between metrics over methods, flipped pairs (each linked to its sample
grid), per-prompt flips, and a scatter of two metrics. Stored ``bench disagree`` results come first."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from harness.board import headline, metric_columns
from harness.compare import flipped_pairs, kendall_matrix, per_prompt_flips, per_prompt_points
from harness.store import Store
from panels.common import latest_runs, method_of, no_runs, profile_note, samples_link, score_columns, table

LINK = st.column_config.LinkColumn("sample grid", display_text="open grid")


def render(store: Store, task: str, profile: str) -> None:
    st.header(f"Metric disagreement: {task} ({profile})")
    profile_note(profile)
    _stored(store, task, profile)
    runs = latest_runs(store, task, profile)
    if not runs:
        no_runs(task, profile)
        return
    columns = metric_columns(runs)
    values = {c.label: ({r["method"]: row["value"] for r in runs
                         if (row := headline(r["metrics"]).get((c.metric, c.prompt_set)))}, c.higher_is_better)
              for c in columns}
    st.subheader("Computed from stored scores")
    if len(runs) < 2:
        st.info("one method only: nothing to disagree about yet")
        return
    st.caption("Kendall tau-b over the latest run of each method; values oriented so that 1 = same ranking; "
               "None = undefined (fewer than two common methods, or a metric that does not vary)")
    table(kendall_matrix(values))
    st.markdown("**Method pairs whose order flips between two metrics**")
    flips = flipped_pairs(values)
    set_of = {c.label: c.prompt_set for c in columns}
    for flip in flips:
        flip["sample grid"] = samples_link(task, profile, set_of[flip["metric A"]],
                                           methods=[flip["method 1"], flip["method 2"]])
    if flips:
        table(flips, **{"sample grid": LINK})
    else:
        st.info("no method pair flips between any two metrics")
    _prompt_flips(store, task, profile, runs)
    _scatter(store, runs, values)


def _stored(store: Store, task: str, profile: str) -> None:
    st.subheader("Stored analysis (`bench disagree`)")
    stored = {name: rows for name, rows in store.stored_disagreement(task, profile).items() if rows}
    if not stored:
        st.info(f"no disagreement analysis stored yet: run `bench disagree --task {task}`")
        return
    for name, rows in stored.items():
        st.markdown(f"**{name}**")
        table(rows)


def _prompt_flips(store: Store, task: str, profile: str, runs: list[dict[str, Any]]) -> None:
    st.markdown("**Prompts where a method pair's order reverses its overall order**")
    columns = score_columns(runs)
    if not columns:
        return
    labels = [c.label for c in columns]
    column = columns[labels.index(st.selectbox("Metric for per-prompt flips", labels, key="flip_metric"))]
    scores = store.grouped_sample_scores([r["run_id"] for r in runs], column.metric, column.prompt_set)
    flips = per_prompt_flips(scores, method_of(runs), column.higher_is_better)
    for flip in flips:
        flip["sample grid"] = samples_link(task, profile, column.prompt_set, flip["prompt_id"],
                                           [flip["method 1"], flip["method 2"]])
    if flips:
        st.caption(f"{len(flips)} flipped (prompt, pair) of {column.label}")
        table(flips, **{"sample grid": LINK})
    else:
        st.info(f"no per-prompt flips on {column.label}")


def _scatter(store: Store, runs: list[dict[str, Any]], values: dict[str, tuple[dict[str, float], bool]]) -> None:
    st.markdown("**Scatter of two metrics**")
    columns = {c.label: c for c in metric_columns(runs)}
    labels = list(values)
    if len(labels) < 2:
        st.info("only one metric stored: no scatter")
        return
    x = st.selectbox("x", labels, index=0, key="scatter_x")
    y = st.selectbox("y", labels, index=1, key="scatter_y")
    cx, cy = columns[x], columns[y]
    per_prompt = cx.prompt_set == cy.prompt_set and not cx.is_count and not cy.is_count
    if per_prompt:
        st.caption(f"one point per (method, prompt) of prompt set {cx.prompt_set}: per-prompt means")
        ids = [r["run_id"] for r in runs]
        points = per_prompt_points(store.grouped_sample_scores(ids, cx.metric, cx.prompt_set),
                                   store.grouped_sample_scores(ids, cy.metric, cy.prompt_set), method_of(runs))
    else:
        st.caption("one point per method (the two metrics are not scored on the same prompts)")
        points = [{"method": m, "x": v, "y": values[y][0][m]} for m, v in values[x][0].items() if m in values[y][0]]
    chart = alt.Chart(pd.DataFrame(points)).mark_point(filled=True).encode(
        x=alt.X("x:Q", title=x, scale=alt.Scale(zero=False)), y=alt.Y("y:Q", title=y, scale=alt.Scale(zero=False)),
        color="method:N", tooltip=list(points[0]) if points else None)
    st.altair_chart(chart, width="stretch")
    table(points)
