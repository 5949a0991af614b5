"""Sweeps: a metric against learning rate / rank / steps over every completed run of one method kind."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from harness.analysis.compare import sweep_parameters
from harness.analysis.leaderboard import cell_label, headline, metric_columns
from harness.store import Store
from panels.common import cached, no_runs, profile_note, scope, table


def swept(runs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per method kind, the parameters that take two or more values across its runs."""
    values: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for run in runs:
        for name, value in run["params"].items():
            values[run["method_kind"]][name].add(repr(value))
    return {kind: sorted(n for n, v in params.items() if len(v) > 1) for kind, params in values.items()
            if any(len(v) > 1 for v in params.values())}


def render(store: Store, task: str, profile: str) -> None:
    st.header(f"Sweeps: {task} ({profile})")
    profile_note(profile)
    runs = cached(store, "completed_runs", task, profile)
    if not runs:
        no_runs(task, profile)
        return
    metrics = defaultdict(list)
    for row in cached(store, "aggregates_of_runs", [r["run_id"] for r in runs], "__all__"):
        metrics[row["run_id"]].append(row)
    for run in runs:
        run["metrics"], run["params"] = metrics[run["run_id"]], sweep_parameters(run)
    kinds = swept(runs)
    if not kinds:
        st.info(f"no sweep stored for {task} on {profile}: lr, rank, steps and schedule do not vary across "
                "the runs of any method kind")
        return
    kind = st.selectbox("Method kind", sorted(kinds), key=f"sweep_kind|{scope(task, profile)}")
    members = [r for r in runs if r["method_kind"] == kind]
    x = st.selectbox("Parameter", kinds[kind])  # options depend on the kind: no key, a fresh widget per kind
    columns = metric_columns(members)
    labels = [c.label for c in columns]
    column = columns[labels.index(st.selectbox("Metric", labels))]
    points = []
    for run in members:
        row = headline(run["metrics"]).get((column.metric, column.prompt_set))
        if row is not None and x in run["params"]:
            points.append({"method": run["method"], "cell": cell_label(run),
                           x: run["params"][x], "value": row["value"],
                           "ci_low": row.get("ci_low"), "ci_high": row.get("ci_high"), "n": row["n"],
                           **{k: v for k, v in run["params"].items() if k != x}, "run": run["run_id"]})
    numeric = all(isinstance(p[x], int | float) for p in points)
    scale = alt.Scale(type="log") if x == "lr" else alt.Scale(zero=False)
    chart = alt.Chart(pd.DataFrame(points)).mark_point(size=80, filled=True).encode(
        x=alt.X(f"{x}:{'Q' if numeric else 'N'}", scale=scale), y=alt.Y("value:Q", title=column.label,
                                                                        scale=alt.Scale(zero=False)),
        color=alt.Color("cell:N", scale=alt.Scale(scheme="tableau20"), legend=alt.Legend(labelLimit=400, columns=1)),
        shape="method:N", tooltip=list(points[0]) if points else None)
    st.altair_chart(chart, width="stretch")
    table(points)
