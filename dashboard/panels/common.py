"""Helpers shared by the pages: query parameters, the runs a page shows, deep links."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from harness.analysis import leaderboard
from harness.analysis.leaderboard import metric_columns
from harness.store import Store

TINY_NOTE = ("tiny profile: random-init tiny models and synthetic data, reduced counts; the numbers test the "
             "pipeline and are not comparable to the studies")


def param(name: str) -> str | None:
    """A query parameter of the page URL, if given."""
    value = st.query_params.get(name)
    return value or None


def latest_runs(store: Store, task: str, profile: str) -> list[dict[str, Any]]:
    """Latest completed run per method of the task on this profile, with its headline metric rows."""
    return leaderboard.latest_runs(store, task, profile)


def method_of(runs: list[dict[str, Any]]) -> dict[str, str]:
    return {run["run_id"]: run["method"] for run in runs}


def score_columns(runs: list[dict[str, Any]]) -> list[Any]:
    """Metric columns with per-sample scores (counts excluded)."""
    return [c for c in metric_columns(runs) if not c.is_count]


def samples_link(task: str, profile: str, prompt_set: str, prompt_id: str | None = None,
                 methods: list[str] | None = None) -> str:
    """Relative URL of the sample grid filtered to a prompt set, a prompt and some methods."""
    query = {"page": "Samples", "task": task, "profile": profile, "prompt_set": prompt_set}
    if prompt_id:
        query["prompt_id"] = prompt_id
    if methods:
        query["methods"] = ",".join(methods)
    return "?" + urlencode(query)


def table(rows: list[dict[str, Any]], **column_config: Any) -> None:
    """A read-only table without the index."""
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config=column_config or None)


def profile_note(profile: str) -> None:
    if profile == "tiny":
        st.warning(TINY_NOTE)


def no_runs(task: str, profile: str) -> None:
    st.info(f"no completed runs for task '{task}' on profile '{profile}': run "
            f"`bench run --task {task} --method frozen --profile {profile}`")
