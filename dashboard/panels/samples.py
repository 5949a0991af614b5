"""Samples: prompts x methods at the same seed and sample index; flags; one image full size."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import streamlit as st

from harness.store import Store
from panels.common import latest_runs, no_runs, param, profile_note, table

ALL_GROUPS = "(all)"
# Per-sample scores stored as NULL when the image has nothing to score, and the flag that NULL means:
# face_distance is NULL when MTCNN finds no face (those images make the run's faceless_count).
NULL_MEANS = {"face_distance": "FACELESS"}


def flags(sample: dict[str, Any]) -> list[str]:
    """Visible flags of one sample: near-black, and faceless (a face distance stored without a value)."""
    found = ["NEAR-BLACK"] if sample["near_black"] else []
    found += [label for name, label in NULL_MEANS.items() if name in sample["scores"]
              and sample["scores"][name] is None]
    return found


def caption(sample: dict[str, Any]) -> str:
    scores = " | ".join(f"{k} {v:.4f}" for k, v in sorted(sample["scores"].items()) if v is not None)
    return " ".join([f"{sample['method']}:", scores or "no scores", *(f"[{f}]" for f in flags(sample))])


def render(store: Store, task: str, profile: str) -> None:
    st.header(f"Samples: {task} ({profile})")
    profile_note(profile)
    runs = latest_runs(store, task, profile)
    if not runs:
        no_runs(task, profile)
        return
    sets = store.prompt_sets([r["run_id"] for r in runs])
    if not sets:
        st.info("these runs stored no samples")
        return
    names = [s["prompt_set"] for s in sets]
    wanted = param("prompt_set")
    prompt_set = st.selectbox("Prompt set", names, index=names.index(wanted) if wanted in names else 0,
                              key="samples_set")
    info = sets[names.index(prompt_set)]
    group = st.selectbox("Class / group", [ALL_GROUPS, *info["groups"]], key="samples_group")
    # no widget keys where the bounds depend on other filters: a new bound starts a fresh widget
    sample_idx = int(st.number_input("Sample index", 0, int(info["max_sample_idx"]), 0))
    methods = [r["method"] for r in runs]
    wanted_methods = [m for m in (param("methods") or "").split(",") if m in methods]
    picked = st.multiselect("Methods", methods, default=wanted_methods or methods, key="samples_methods")
    chosen = [r["run_id"] for r in runs if r["method"] in picked]
    grid = [s for s in store.sample_grid(chosen, prompt_set, sample_idx) if group in (ALL_GROUPS, s["grp"])]
    prompt_filter = param("prompt_id")
    if prompt_filter:
        st.caption(f"filtered to prompt {prompt_filter} (from a link)")
        grid = [s for s in grid if s["prompt_id"] == prompt_filter]
    if not grid:
        st.info("no samples match these filters")
        return
    by_prompt: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for sample in grid:
        by_prompt[sample["prompt_id"]][sample["method"]] = sample
    _seed_note(grid)
    flagged = sum(bool(flags(s)) for s in grid)
    st.caption(f"{len(by_prompt)} prompts x {len(picked)} methods; {flagged} flagged samples")
    limit = int(st.number_input("Prompts shown", 1, len(by_prompt), min(12, len(by_prompt))))
    for prompt_id in list(by_prompt)[:limit]:
        _grid_row(prompt_id, by_prompt[prompt_id], picked)
    _full_size(grid)


def _seed_note(grid: list[dict[str, Any]]) -> None:
    seeds: dict[str, set[int]] = defaultdict(set)
    for sample in grid:
        seeds[sample["prompt_id"]].add(sample["seed"])
    if any(len(s) > 1 for s in seeds.values()):
        st.warning("some prompts were sampled from different seeds across methods (runs with different run "
                   "seeds): those rows are not noise-aligned")
    else:
        st.caption("every row: the same seed and sample index for every method (aligned generators)")


def _grid_row(prompt_id: str, by_method: dict[str, dict[str, Any]], methods: list[str]) -> None:
    first = next(iter(by_method.values()))
    st.markdown(f"**{prompt_id}**: {first['prompt']} (seed {first['seed']})")
    cells = st.columns(len(methods))
    for cell, method in zip(cells, methods, strict=True):
        sample = by_method.get(method)
        if sample is None:
            cell.write(f"{method}: no sample")
            continue
        cell.image(str(Path(sample["run_dir"]) / sample["file"]), caption=caption(sample), width=128)


def _full_size(grid: list[dict[str, Any]]) -> None:
    st.subheader("Full-size view")
    options = [f"{s['method']} | {s['prompt_id']}" for s in grid]
    choice = st.selectbox("Image", options, key="samples_full")
    sample = grid[options.index(choice)]
    st.image(str(Path(sample["run_dir"]) / sample["file"]), caption=caption(sample))
    table([{"field": k, "value": str(v)} for k, v in [
        ("method", sample["method"]), ("prompt", sample["prompt"]), ("prompt id", sample["prompt_id"]),
        ("group", sample["grp"]), ("sample index", sample["sample_idx"]), ("seed", sample["seed"]),
        ("mean intensity", sample["mean_intensity"]), ("near-black", sample["near_black"]),
        *sorted(sample["scores"].items()), ("file", sample["file"]), ("run", sample["run_id"])]])
