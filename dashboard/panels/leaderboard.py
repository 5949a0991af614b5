"""Leaderboard: latest completed run per configuration of one task and one profile, ranked by one metric
with ties ("=": the tie rule of ``harness.analysis.ties``); compact by default, more columns on request."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from harness.analysis.leaderboard import (
    REFERENCE_METHOD,
    card_flags,
    cell_label,
    compact_columns,
    headline,
    metric_columns,
)
from harness.analysis.reported import load_reported
from harness.specs import SpecError
from harness.store import Store, abandoned_reason
from panels.common import cached, no_runs, param, profile_note, scope, set_param, split_labels, table

COLUMN_HELP = {"rank": "= marks a shared rank (the difference is inside its 95% interval)",
               "gain over frozen": "improvement over frozen on the ranking metric (positive is better), with the "
                                   "95% paired-bootstrap interval over prompts"}


def render(store: Store, task: str, profile: str) -> None:
    st.header(f"Leaderboard: {task} ({profile})")
    profile_note(profile)
    all_runs = cached(store, "runs", task)
    running = [r for r in all_runs if r["status"] == "running" and r["profile"] == profile]
    # a running row whose process is gone (or silent too long) is shown as abandoned before any writer marks it
    gone = {r["run_id"]: abandoned_reason(r) for r in running}
    _in_progress([r for r in running if gone[r["run_id"]] is None])
    abandoned = [{**r, "status": "failed", "error": gone[r["run_id"]]} for r in running if gone[r["run_id"]]]
    runs = cached(store, "board_runs", task, profile)
    if not runs:
        no_runs(task, profile)
    else:
        columns = metric_columns(runs)
        rankable = [c for c in columns if not c.is_count] or columns
        labels = [c.label for c in rankable]
        wanted = param("rank_by")
        choice = st.selectbox("Rank by", labels, index=labels.index(wanted) if wanted in labels else 0,
                              key=f"rank_by|{scope(task, profile)}")
        set_param("rank_by", choice if choice != labels[0] else None)
        rank_by = rankable[labels.index(choice)]
        if not any(r["method"] == REFERENCE_METHOD for r in runs):
            st.warning(f"no '{REFERENCE_METHOD}' run on this profile, so no gain over it: run "
                       f"`bench run --task {task} --method {REFERENCE_METHOD} --profile {profile}`")
        board = cached(store, "board", task, profile, rank_by.metric, rank_by.prompt_set)
        frame = pd.DataFrame(board["rows"])
        default = compact_columns(rank_by)
        extra = [c for c in frame.columns if c not in default]
        wanted_columns = [c for c in split_labels(param("columns")) if c in extra]
        more = st.multiselect("More columns", extra, default=wanted_columns, key=f"columns|{scope(task, profile)}",
                              help="every metric, budget and accounting column of the runs; click a header to sort")
        set_param("columns", more)
        st.caption(f"Cells: value [95% CI] N=, caveat flags in brackets; ↑ higher / ↓ lower is better. "
                   f"{board['note']} Gain = improvement over '{REFERENCE_METHOD}' on {rank_by.label} "
                   "(positive is better) with its interval.")
        st.dataframe(frame[default + more], hide_index=True, width="stretch", key=f"board|{scope(task, profile)}",
                     column_config={name: st.column_config.Column(help=text) for name, text in COLUMN_HELP.items()})
        if any(r.get("budget_of") for r in runs):
            st.caption("evaluation-only task: its runs score adapters trained by another task; budget columns "
                       "(and gain per unit of budget) are those of the training run named in 'budget of'")
        if any((r.get("plan") or {}).get("overrides") for r in runs):
            st.caption("sweep runs: every cell is its own row, named method[overrides] (steps = steps run; "
                       "'steps planned' = the cell's setting); the page 'Sweeps' plots a metric against them")
        _cards(runs)
    _reported_hint(task)
    _failed(abandoned + [r for r in all_runs if r["status"] == "failed" and r["profile"] == profile])


def _in_progress(running: list[dict[str, Any]]) -> None:
    if running:
        st.info(f"{len(running)} run(s) in progress (not ranked until complete): "
                + ", ".join(f"{cell_label(r)} since {r['created_at']:%H:%M:%S}" for r in running))
        table([{"method": cell_label(r), "status": r["status"], "started": r["created_at"], "run": r["run_id"]}
               for r in running])


def card_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (metric, prompt set): its card, with the caveat flags every surface shows."""
    cards: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        for key, row in headline(run["metrics"]).items():
            cards.setdefault(key, row.get("card") or {})
    return [{"metric": m, "prompt set": s, "flags": ", ".join(card_flags(card)),
             **{k: v for k, v in card.items() if k not in ("n", "flags")}} for (m, s), card in sorted(cards.items())]


def _cards(runs: list[dict[str, Any]]) -> None:
    with st.expander("metric cards"):
        table(card_rows(runs))


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
            table([{"method": cell_label(r), "run": r["run_id"], "status": _failure_kind(r["error"]),
                    "error": r["error"], "started": r["created_at"]} for r in failed])
        else:
            st.write("none")


def _failure_kind(error: str | None) -> str:
    """``failed: abandoned`` (its process went away), ``failed: interrupted`` (SIGTERM / SIGINT) or ``failed``."""
    for kind in ("abandoned", "interrupted"):
        if (error or "").startswith(kind):
            return f"failed: {kind}"
    return "failed"
