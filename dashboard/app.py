"""Streamlit dashboard over the DuckDB results store (``bench dashboard --db PATH``).

Every number comes from ``harness.store`` queries; pages live in ``panels/``. Deep links use query
parameters (``?page=Samples&task=...&profile=...&prompt_set=...&prompt_id=...&methods=a,b``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panels import PAGES  # noqa: E402
from panels.common import param  # noqa: E402

from harness.store import Store, StoreError  # noqa: E402

st.set_page_config(page_title="bench leaderboard", layout="wide")


def main() -> None:
    """Sidebar (page, task, profile) and the chosen page."""
    db = Path(os.environ.get("BENCH_DB", "results/bench.duckdb"))
    names = list(PAGES)
    wanted = param("page")
    page = st.sidebar.radio("Page", names, index=names.index(wanted) if wanted in names else 0, key="page")
    st.sidebar.caption(f"database: {db}")
    if not db.exists():
        st.error(f"no results database at {db}: run `bench run --task T --method M --db {db}` first")
        return
    store = Store(db)
    try:
        combos = store.task_profiles()
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
                               index=_index(profiles, param("profile")), key="profile")
    try:
        PAGES[page](store, task, profile)
    except StoreError as exc:
        st.error(f"{exc} (another process may be writing; reload in a moment)")


def _index(options: list[str], wanted: str | None) -> int:
    return options.index(wanted) if wanted in options else 0


main()
