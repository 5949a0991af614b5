"""Helpers shared by the pages: cached queries, state in the URL, the runs a page shows, deep links."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from harness.analysis import leaderboard
from harness.analysis.leaderboard import cell_label, metric_columns
from harness.store import Store

TINY_NOTE = ("tiny profile: random-init tiny models and synthetic data, reduced counts; the numbers test the "
             "pipeline and are not comparable to the studies")
# Query parameters that belong to one task's view: dropped when the task or profile changes.
VIEW_PARAMS = ("methods", "prompt_set", "prompt_id", "sample", "group", "rank_by", "columns")


def param(name: str) -> str | None:
    """A query parameter of the page URL, if given."""
    value = st.query_params.get(name)
    return value or None


def split_labels(text: str | None) -> list[str]:
    """``a,flux_lora[lr=1e-3,r=8],b`` -> the three labels (commas inside brackets belong to a label)."""
    out, depth, current = [], 0, ""
    for char in text or "":
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += char
    return [label for label in [*out, current] if label]


def set_param(name: str, value: Any) -> None:
    """Keep a piece of the view in the URL (``None`` or empty removes it), so that a link restores it."""
    text = ",".join(value) if isinstance(value, list | tuple) else None if value is None else str(value)
    if text:
        if st.query_params.get(name) != text:
            st.query_params[name] = text
    elif name in st.query_params:
        del st.query_params[name]


def scope(task: str, profile: str) -> str:
    """Widget-key suffix: filters live per (task, profile), so a new task starts from fresh filters."""
    return f"{task}|{profile}"


# --- cached queries ----------------------------------------------------------------------------------

def stamp(store: Store) -> tuple[float, float]:
    """Modification times of the database and its write-ahead log: the cache key of every query."""
    wal = Path(f"{store.path}.wal")
    return (store.path.stat().st_mtime if store.path.exists() else 0.0,
            wal.stat().st_mtime if wal.exists() else 0.0)


def _board_runs(store: Store, task: str, profile: str) -> list[dict[str, Any]]:
    return leaderboard.board_runs(store, task, profile)


def _latest_runs(store: Store, task: str, profile: str) -> list[dict[str, Any]]:
    return leaderboard.latest_runs(store, task, profile)


def _board(store: Store, task: str, profile: str, metric: str, prompt_set: str) -> dict[str, Any]:
    runs = leaderboard.board_runs(store, task, profile)
    column = next(c for c in metric_columns(runs) if (c.metric, c.prompt_set) == (metric, prompt_set))
    scores = leaderboard.column_scores(store, runs, column)
    rows = leaderboard.leaderboard_rows(runs, column, scores)
    rule = leaderboard.ranking(runs, column, scores)[0]["rule"] if runs else ""
    return {"rows": rows, "note": leaderboard.tie_note(column, rule)}


def _flip_intervals(store: Store, task: str, profile: str) -> list[Any]:
    from harness.analysis.disagree import stored_flip_differences

    analysis = store.latest_disagreement(task, profile)
    return [] if analysis is None else stored_flip_differences(store, analysis)


DERIVED = {"board_runs": _board_runs, "latest_runs": _latest_runs, "board": _board,
           "flip_intervals": _flip_intervals}


@st.cache_data(show_spinner=False, max_entries=512)
def _cached(path: str, when: tuple[float, float], name: str, args: tuple) -> Any:
    store = Store(Path(path))
    function = DERIVED.get(name) or getattr(Store, name)
    return function(store, *args)


def cached(store: Store, name: str, *args: Any) -> Any:
    """``Store.<name>(*args)`` or a derived table of ``DERIVED``, cached until the database changes."""
    return _cached(str(store.path), stamp(store), name, tuple(args))


# --- runs and labels ---------------------------------------------------------------------------------

def latest_runs(store: Store, task: str, profile: str) -> list[dict[str, Any]]:
    """Latest completed run per configuration of the task on this profile, with its headline metric rows."""
    return cached(store, "latest_runs", task, profile)


def method_of(runs: list[dict[str, Any]]) -> dict[str, str]:
    """Run id -> the configuration's label (a sweep cell's overrides included)."""
    return {run["run_id"]: cell_label(run) for run in runs}


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
    """A read-only, sortable table without the index."""
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config=column_config or None)


def profile_note(profile: str) -> None:
    if profile == "tiny":
        st.warning(TINY_NOTE)


def no_runs(task: str, profile: str) -> None:
    st.info(f"no completed runs for task '{task}' on profile '{profile}': run "
            f"`bench run --task {task} --method frozen --profile {profile}`")
