"""Reported vs measured: the studies' published figures beside this store's measured rows."""

from __future__ import annotations

from typing import Any

import streamlit as st

from harness.analysis.reported import beside_measured, load_reported, overrides_key, reported_dir
from harness.specs import SpecError
from harness.store import Store
from panels.common import cached, profile_note, table


def latest_per_configuration(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest completed run of each (method, sweep overrides): sweep cells stay apart."""
    latest: dict[tuple, dict[str, Any]] = {}
    for run in runs:  # oldest first: later runs replace earlier ones
        latest[(run["method"], overrides_key((run.get("plan") or {}).get("overrides")))] = run
    return list(latest.values())


def render(store: Store, task: str, profile: str) -> None:
    st.header(f"Reported vs measured: {task} ({profile})")
    st.caption("source = reported: the figures the studies published (PROTOCOLS.md), kept as data in "
               f"{reported_dir()}; shown for reference, never ranked")
    profile_note(profile)
    try:
        figures = load_reported(task)
    except SpecError as exc:
        st.error(str(exc))
        return
    if not figures:
        st.info(f"no reported figures for {task} (add {reported_dir() / (task + '.csv')})")
        return
    runs = latest_per_configuration(cached(store, "completed_runs", task, profile))
    by_run: dict[str, list[dict[str, Any]]] = {}
    for row in cached(store, "aggregates_of_runs", [r["run_id"] for r in runs], None):
        by_run.setdefault(row["run_id"], []).append(row)
    measured = [{**row, "method": run["method"], "overrides": (run.get("plan") or {}).get("overrides"),
                 "profile": run["profile"]}
                for run in runs for row in by_run.get(run["run_id"], [])]
    rows = beside_measured(figures, measured)
    matched = sum(r["measured run"] is not None for r in rows)
    st.caption(f"{matched} of {len(rows)} reported figures have a measured counterpart on profile {profile} "
               "(same method, sweep overrides, metric, prompt set and group; headline rows); measured values "
               "are converted to the figure's scale")
    table(rows)
