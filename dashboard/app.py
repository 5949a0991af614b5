"""Streamlit dashboard over the DuckDB results store (``bench dashboard --db PATH``).

Every number comes from ``harness.store`` queries (cached until the database file changes); pages live
in ``panels/``. The view lives in the URL: page, task, profile and each page's filters
(``?page=Samples&task=...&profile=...&prompt_set=...&prompt_id=...&methods=a,b&sample=0``), so a link
restores it; changing task or profile starts that task's filters afresh.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panels import PAGES  # noqa: E402
from panels.common import VIEW_PARAMS, cached, param, set_param  # noqa: E402

from harness.store import Store, StoreError  # noqa: E402

st.set_page_config(page_title="bench leaderboard", layout="wide")
# Narrower sidebar and margins: the compact leaderboard fits a 1400 px window without scrolling sideways.
st.markdown("<style>section[data-testid='stSidebar']{width:250px !important;min-width:250px !important}"
            ".block-container{padding-left:1.5rem;padding-right:1.5rem;max-width:100%}</style>",
            unsafe_allow_html=True)


def main() -> None:
    """Sidebar (page, task, profile) and the chosen page; the choice is written back to the URL."""
    db = Path(os.environ.get("BENCH_DB", "results/bench.duckdb"))
    names = list(PAGES)
    wanted = param("page")
    page = st.sidebar.radio("Page", names, index=names.index(wanted) if wanted in names else 0, key="page")
    set_param("page", page)
    st.sidebar.caption(f"database: {db}")
    if not db.exists():
        st.error(f"no results database at {db}: run `bench run --task T --method M --db {db}` first")
        return
    store = Store(db)
    try:
        combos = cached(store, "task_profiles")
    except StoreError as exc:
        st.error(str(exc))
        return
    if not combos:
        st.info(f"{db} holds no runs yet: run `bench run --task T --method M --db {db}`")
        return
    tasks = sorted({c["task"] for c in combos})
    task = st.sidebar.selectbox("Task", tasks, index=_index(tasks, param("task")), key="task")
    profiles = sorted(c["profile"] for c in combos if c["task"] == task)
    profile = st.sidebar.radio("Profile (never ranked together)", profiles,
                               index=_index(profiles, param("profile")), key=f"profile|{task}")
    _view_changed(task, profile)
    set_param("task", task)
    set_param("profile", profile)
    try:
        PAGES[page](store, task, profile)
    except StoreError as exc:
        st.error(f"{exc} (another process may be writing; reload in a moment)")


def _view_changed(task: str, profile: str) -> None:
    """A new task or profile: the old one's filters (methods, prompt, sample, ...) leave the URL."""
    previous = st.session_state.get("_view")
    if previous is not None and previous != (task, profile):
        for name in VIEW_PARAMS:
            set_param(name, None)
    st.session_state["_view"] = (task, profile)


def _index(options: list[str], wanted: str | None) -> int:
    return options.index(wanted) if wanted in options else 0


main()
