"""Leaderboard: latest completed run per method of one task and one profile, ranked by one metric."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from harness.analysis.leaderboard import REFERENCE_METHOD, board_runs, headline, leaderboard_rows, metric_columns
from harness.analysis.reported import load_reported
from harness.specs import SpecError
from harness.store import Store, abandoned_reason
from panels.common import no_runs, profile_note, table


def render(store: Store, task: str, profile: str) -> None:
    st.header(f"Leaderboard: {task} ({profile})")
    profile_note(profile)
    all_runs = store.runs(task)
    running = [r for r in all_runs if r["status"] == "running" and r["profile"] == profile]
    # a running row whose process is gone (or silent too long) is shown as abandoned before any writer marks it
    gone = {r["run_id"]: abandoned_reason(r) for r in running}
    _in_progress([r for r in running if gone[r["run_id"]] is None])
    abandoned = [{**r, "status": "failed", "error": gone[r["run_id"]]} for r in running if gone[r["run_id"]]]
    runs = board_runs(store, task, profile)
    if not runs:
        no_runs(task, profile)
    else:
        columns = metric_columns(runs)
        rankable = [c for c in columns if not c.is_count] or columns
        labels = [c.label for c in rankable]
        choice = st.selectbox("Rank by", labels, key="rank_by")
        rank_by = rankable[labels.index(choice)]
        if not any(r["method"] == REFERENCE_METHOD for r in runs):
            st.warning(f"no '{REFERENCE_METHOD}' run on this profile, so no gain over it: run "
                       f"`bench run --task {task} --method {REFERENCE_METHOD} --profile {profile}`")
        st.caption(f"Cells: value [95% CI] N. Gain = improvement over '{REFERENCE_METHOD}' on {rank_by.label}, "
                   "positive is better; per 1k training samples seen and per minute of training.")
        st.table(pd.DataFrame(leaderboard_rows(runs, rank_by)), hide_index=True)
        if any(r.get("budget_of") for r in runs):
            st.caption("evaluation-only task: its runs score adapters trained by another task; budget columns "
                       "(and gain per unit of budget) are those of the training run named in 'budget of'")
        if any((r.get("plan") or {}).get("overrides") for r in runs):
            st.caption("sweep runs: every cell is its own row (column 'sweep cell'); the page 'Sweeps' plots "
                       "a metric against the swept parameters")
        _cards(runs)
    _reported_hint(task)
    _failed(abandoned + [r for r in all_runs if r["status"] == "failed" and r["profile"] == profile])


def _in_progress(running: list[dict[str, Any]]) -> None:
    if running:
        st.info(f"{len(running)} run(s) in progress (not ranked until complete): "
                + ", ".join(f"{r['method']} since {r['created_at']:%H:%M:%S}" for r in running))
        table([{"method": r["method"], "status": r["status"], "started": r["created_at"], "run": r["run_id"]}
               for r in running])


def _cards(runs: list[dict[str, Any]]) -> None:
    cards: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        for key, row in headline(run["metrics"]).items():
            cards.setdefault(key, row.get("card") or {})
    with st.expander("metric cards"):
        table([{"metric": m, "prompt set": s, **{k: v for k, v in card.items() if k != "n"}}
               for (m, s), card in sorted(cards.items())])


def _reported_hint(task: str) -> None:
    try:
        count = len(load_reported(task))
    except SpecError as exc:
        st.error(f"reported figures unreadable: {exc}")
        return
    if count:
        st.caption(f"{count} published figures exist for {task}; they are never ranked here: see the page "
                   "'Reported vs measured'.")


def _failed(failed: list[dict[str, Any]]) -> None:
    with st.expander(f"failed runs ({len(failed)})"):
        if failed:
            table([{"method": r["method"], "run": r["run_id"], "status": _failure_kind(r["error"]),
                    "error": r["error"], "started": r["created_at"]} for r in failed])
        else:
            st.write("none")


def _failure_kind(error: str | None) -> str:
    """``failed: abandoned`` (its process went away), ``failed: interrupted`` (SIGTERM / SIGINT) or ``failed``."""
    for kind in ("abandoned", "interrupted"):
        if (error or "").startswith(kind):
            return f"failed: {kind}"
    return "failed"
