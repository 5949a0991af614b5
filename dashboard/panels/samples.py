"""Samples: prompts x methods at the same seed and sample index, a header per column, the subject's real
photos beside the generated ones on subject tasks; flags; one image full size. Filters live in the URL."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import streamlit as st

from harness.store import Store
from panels.common import (
    cached,
    latest_runs,
    method_of,
    no_runs,
    param,
    profile_note,
    scope,
    set_param,
    split_labels,
    table,
)

ALL_GROUPS = "(all)"
REFERENCES_SHOWN = 3  # real photos of a subject shown beside its generated samples
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
    name = sample.get("label") or sample["method"]
    return " ".join([f"{name}:", scores or "no scores", *(f"[{f}]" for f in flags(sample))])


def render(store: Store, task: str, profile: str) -> None:
    st.header(f"Samples: {task} ({profile})")
    profile_note(profile)
    runs = latest_runs(store, task, profile)
    if not runs:
        no_runs(task, profile)
        return
    sets = cached(store, "prompt_sets", [r["run_id"] for r in runs])
    if not sets:
        st.info("these runs stored no samples")
        return
    key = scope(task, profile)
    names = [s["prompt_set"] for s in sets]
    wanted = param("prompt_set")
    prompt_set = st.selectbox("Prompt set", names, index=names.index(wanted) if wanted in names else 0,
                              key=f"samples_set|{key}")
    set_param("prompt_set", prompt_set)
    info = sets[names.index(prompt_set)]
    groups = [ALL_GROUPS, *info["groups"]]
    group = st.selectbox("Class / group", groups, index=groups.index(param("group")) if param("group") in groups
                         else 0, key=f"samples_group|{key}|{prompt_set}")
    set_param("group", None if group == ALL_GROUPS else group)
    top = int(info["max_sample_idx"])
    asked = param("sample") or "0"
    wanted_idx = min(int(asked), top) if asked.isdigit() else 0
    # the key carries the bound: a prompt set with another largest index starts a fresh widget
    sample_idx = int(st.number_input("Sample index", 0, top, wanted_idx, key=f"samples_idx|{key}|{prompt_set}|{top}"))
    set_param("sample", sample_idx or None)
    labels_of = method_of(runs)
    methods = [labels_of[r["run_id"]] for r in runs]
    wanted_methods = [m for m in split_labels(param("methods")) if m in methods]
    picked = st.multiselect("Methods", methods, default=wanted_methods or methods, key=f"samples_methods|{key}")
    set_param("methods", picked if picked != methods else None)
    chosen = [r["run_id"] for r in runs if labels_of[r["run_id"]] in picked]
    grid = [{**s, "label": labels_of[s["run_id"]]} for s in cached(store, "sample_grid", chosen, prompt_set, sample_idx)
            if group in (ALL_GROUPS, s["grp"])]
    prompt_filter = param("prompt_id")
    if prompt_filter:
        st.caption(f"filtered to prompt {prompt_filter} (from a link)")
        grid = [s for s in grid if s["prompt_id"] == prompt_filter]
    if not grid:
        st.info("no samples match these filters")
        return
    by_prompt: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for sample in grid:
        by_prompt[sample["prompt_id"]][sample["label"]] = sample
    _seed_note(grid)
    flagged = sum(bool(flags(s)) for s in grid)
    st.caption(f"{len(by_prompt)} prompts x {len(picked)} methods; {flagged} flagged samples")
    limit = int(st.number_input("Prompts shown", 1, len(by_prompt), min(12, len(by_prompt)),
                                key=f"samples_limit|{key}|{len(by_prompt)}"))
    references = reference_images(runs, [s["grp"] for s in grid])
    columns = [label for label in picked if any(label in row for row in by_prompt.values())]
    _header(columns, bool(references))
    for prompt_id in list(by_prompt)[:limit]:
        _grid_row(prompt_id, by_prompt[prompt_id], columns, references)
    _full_size(grid)


def reference_images(runs: list[dict[str, Any]], groups: list[str]) -> dict[str, list[Any]]:
    """Real images of each subject of a subject task (the images the methods were fine-tuned on and CLIP-I /
    DINO compare with: the task's reference set), by subject; empty for other tasks."""
    plan = next((r.get("plan") for r in runs if r.get("plan")), None) or {}
    data = (plan.get("task") or {}).get("data") or {}
    if not data.get("subjects"):
        return {}
    return _subject_photos(json.dumps(plan, sort_keys=True), tuple(sorted(set(groups))))


@st.cache_data(show_spinner=False)
def _subject_photos(plan_json: str, subjects: tuple[str, ...]) -> dict[str, list[Any]]:
    try:
        from harness.data import load_references
        from harness.plan import RunPlan

        references = load_references(RunPlan.model_validate(json.loads(plan_json)))
    except Exception:  # noqa: BLE001 - data not on this machine: the grid shows without references
        return {}
    photos: dict[str, list[Any]] = {}
    for image, group in zip(references.images, references.groups, strict=True):
        if group in subjects and len(photos.setdefault(group, [])) < REFERENCES_SHOWN:
            photos[group].append(image)
    return photos


def _header(columns: list[str], with_references: bool) -> None:
    """Column headers above the grid: one per configuration (the subject's real photos first)."""
    names = (["real photos (reference)"] if with_references else []) + columns
    for cell, name in zip(st.columns(len(names)), names, strict=True):
        cell.markdown(f"**{name}**")


def _grid_row(prompt_id: str, by_method: dict[str, dict[str, Any]], methods: list[str],
              references: dict[str, list[str]]) -> None:
    first = next(iter(by_method.values()))
    st.markdown(f"**{prompt_id}**: {first['prompt']} (seed {first['seed']})")
    cells = st.columns(len(methods) + bool(references))
    if references:
        photos = references.get(first["grp"], [])
        if photos:
            cells[0].image(photos, width=60, caption=[f"{first['grp']} (real)"] + [""] * (len(photos) - 1))
        else:
            cells[0].write("no reference photos found")
        cells = cells[1:]
    for cell, method in zip(cells, methods, strict=True):
        sample = by_method.get(method)
        if sample is None:
            cell.write(f"{method}: no sample")
            continue
        cell.image(str(Path(sample["run_dir"]) / sample["file"]), caption=caption(sample), width=128)


def _seed_note(grid: list[dict[str, Any]]) -> None:
    seeds: dict[str, set[int]] = defaultdict(set)
    for sample in grid:
        seeds[sample["prompt_id"]].add(sample["seed"])
    if any(len(s) > 1 for s in seeds.values()):
        st.warning("some prompts were sampled from different seeds across methods (runs with different run "
                   "seeds): those rows are not noise-aligned")
    else:
        st.caption("every row: the same seed and sample index for every method (aligned generators)")


def _full_size(grid: list[dict[str, Any]]) -> None:
    st.subheader("Full-size view")
    options = [f"{s['label']} | {s['prompt_id']}" for s in grid]
    choice = st.selectbox("Image", options)  # options follow the filters: a fresh widget when they change
    sample = grid[options.index(choice)]
    st.image(str(Path(sample["run_dir"]) / sample["file"]), caption=caption(sample))
    table([{"field": k, "value": str(v)} for k, v in [
        ("method", sample["label"]), ("prompt", sample["prompt"]), ("prompt id", sample["prompt_id"]),
        ("group", sample["grp"]), ("sample index", sample["sample_idx"]), ("seed", sample["seed"]),
        ("mean intensity", sample["mean_intensity"]), ("near-black", sample["near_black"]),
        *sorted(sample["scores"].items()), ("file", sample["file"]), ("run", sample["run_id"])]])
