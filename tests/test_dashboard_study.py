"""Dashboard pages on a database of real tiny runs of every task (tests/study_db.py): the stored
disagreement analysis, faceless flags, FID/KID cells, borrowed budgets, checkpoint curves, the face
study's sweep and reported figures matched by sweep overrides. Expected values come from the store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from harness.plan import FACE_STUDY
from harness.store import Store

APP = str(Path(__file__).parents[1] / "dashboard" / "app.py")


def _app(db: Path, page: str, task: str, monkeypatch: pytest.MonkeyPatch, **query: str) -> AppTest:
    monkeypatch.setenv("BENCH_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"page": page, "task": task, "profile": "tiny", **query})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


def _runs(store: Store, task: str) -> list[dict]:
    return [r for r in store.runs(task) if r["status"] == "completed" and r["profile"] == "tiny"]


def _overall(store: Store, run_id: str, metric: str, prompt_set: str, checkpoint: int | None = None) -> dict:
    return next(a for a in store.aggregates(run_id, group="__all__")
                if (a["metric"], a["prompt_set"], a["checkpoint"]) == (metric, prompt_set, checkpoint))


def test_every_study_run_completed(study_db: dict) -> None:
    assert {k: o.error for k, o in study_db["outcomes"].items() if o.status != "completed"} == {}
    assert study_db["sweep"].exit_code == 0 and study_db["disagree"].exit_code == 0, study_db["sweep"].output
    cells = [r for r in _runs(study_db["store"], "face_identity") if r["method"] == "flux_lora"]
    assert sorted(tuple(sorted(r["plan"]["overrides"].items())) for r in cells) == sorted(
        tuple(sorted(c.items())) for c in FACE_STUDY)


def test_disagreement_page_shows_the_stored_analysis(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    analysis = store.latest_disagreement("cifar_alignment", "tiny")
    at = _app(study_db["db"], "Disagreement", "cifar_alignment", monkeypatch)
    assert any(analysis["analysis_id"] in c for c in _texts(at.caption))
    matrix = at.dataframe[0].value.set_index("metric")
    assert analysis["tau"]
    for t in analysis["tau"]:
        a, b = f"{t['metric_a']} [{t['set_a']}]", f"{t['metric_b']} [{t['set_b']}]"
        assert matrix.loc[a, b] == pytest.approx(t["tau"]) and matrix.loc[b, a] == pytest.approx(t["tau"])
        assert matrix.loc[a, a] == 1.0
    flips = at.dataframe[2].value
    expected = [(f["method_a"], f["method_b"], p["prompt_id"], p["prompt"]) for f in analysis["flips"]
                for p in f["prompts"]]
    assert expected and list(zip(flips["method A"], flips["method B"], flips["prompt_id"], flips["prompt"],
                                 strict=True)) == expected
    link = parse_qs(flips["sample grid"][0].lstrip("?"))
    first = analysis["flips"][0]
    assert link == {"page": ["Samples"], "task": ["cifar_alignment"], "profile": ["tiny"],
                    "prompt_set": [first["set_a"]], "prompt_id": [first["prompts"][0]["prompt_id"]],
                    "methods": [f"{first['method_a']},{first['method_b']}"]}
    grid = _app(study_db["db"], "Samples", "cifar_alignment", monkeypatch,
                **{k: v[0] for k, v in link.items() if k not in ("page", "task", "profile")})
    assert len(grid.image) == 2 + 1  # the flipped prompt for the two methods, plus the full-size view
    scatter = at.dataframe[-1].value.set_index("method")
    values = {(r["metric"], r["prompt_set"], r["method"]): r["value"] for r in analysis["rankings"]}
    for method in analysis["runs"]:
        assert scatter.loc[method, "x"] == pytest.approx(values[("clip_score", "A", method)])
        assert scatter.loc[method, "y"] == pytest.approx(values[("clip_score", "B", method)])


def test_faceless_samples_are_flagged_from_null_face_distance(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    frozen = next(r for r in _runs(store, "face_identity") if r["method"] == "frozen")
    faceless = {s["prompt_id"] for s in store.sample_scores(frozen["run_id"])
                if s["metric"] == "face_distance" and s["value"] is None}
    count = _overall(store, frozen["run_id"], "faceless_count", "identity")["value"]
    assert len(faceless) == count  # tiny images: MTCNN finds no face in any of them
    at = _app(study_db["db"], "Samples", "face_identity", monkeypatch, methods="frozen")
    captions = [c for image in at.image for c in image.captions]
    flagged = [c for c in captions if c.endswith("[FACELESS]")]
    assert len(flagged) == len(faceless) + 1  # the grid rows plus the full-size view of the first
    detail = dict(zip(at.dataframe[0].value["field"], at.dataframe[0].value["value"], strict=True))
    assert detail["face_distance"] == "None" and detail["prompt id"] in faceless
    board = _app(study_db["db"], "Leaderboard", "face_identity", monkeypatch).table[0].value.set_index("method")
    assert board.loc["frozen", "faceless_count [identity] (↓ lower is better)"] == f"{int(count)} of 11"
    assert board.loc["frozen", "face_distance [identity] (↓ lower is better)"] == "no value N=11 (0 of 11 scored)"


def test_fid_kid_cells_show_direction_ci_std_and_caveat_flags(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    board = _app(study_db["db"], "Leaderboard", "deepfashion", monkeypatch).table[0].value.set_index("method")
    run_id = board.loc["lora_unet_r1", "run"]
    fid, kid = _overall(store, run_id, "fid", "test"), _overall(store, run_id, "kid", "test")
    assert fid["card"]["higher_is_better"] is False and "biased_small_n" in fid["card"]["flags"]
    cell = board.loc["lora_unet_r1", "fid [test] (↓ lower is better)"]
    assert cell.startswith(f"{fid['value']:.4f} [{fid['ci_low']:.4f}, {fid['ci_high']:.4f}] N=4 [")
    assert "biased_small_n" in cell and "random_init" in cell and "cache" not in cell
    kid_cell = board.loc["lora_unet_r1", "kid [test] (↓ lower is better)"]
    assert kid["std"] is not None and kid_cell.startswith(f"{kid['value']:.4f} sd={kid['std']:.3g} [")
    compare = _app(study_db["db"], "Compare", "deepfashion", monkeypatch)  # deltas need per-image scores
    assert compare.selectbox(key="compare_metric").options == ["clip_score [test] (↑ higher is better)"]


def test_evaluation_only_task_carries_the_adapter_training_budget(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    board = _app(study_db["db"], "Leaderboard", "coco_generalization", monkeypatch).table[0].value
    row = board.set_index("method").loc["lora_unet_r1"]
    trained = next(r for r in _runs(store, "deepfashion") if r["method"] == "lora_unet_r1")
    coco = next(r for r in _runs(store, "coco_generalization") if r["method"] == "lora_unet_r1")
    assert coco["steps"] == 0 and coco["adapter_file"] == trained["adapter_file"]
    assert row["budget of"] == f"deepfashion run {trained['run_id']}" and row["run"] == coco["run_id"]
    assert row["samples seen"] == trained["samples_seen"] > 0 and row["trainable params"] == 4096
    frozen = next(r for r in _runs(store, "coco_generalization") if r["method"] == "frozen")
    gain = (_overall(store, coco["run_id"], "clip_score", "coco")["value"]
            - _overall(store, frozen["run_id"], "clip_score", "coco")["value"])
    assert row["gain per 1k samples"] == f"{gain / trained['samples_seen'] * 1000:+.4f}"


def test_checkpoint_curves_and_headline_rows(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    ti = next(r for r in _runs(store, "dreambooth_subjects") if r["method"] == "ti_then_ft")
    at = _app(study_db["db"], "Compare", "dreambooth_subjects", monkeypatch)
    curves = at.dataframe[-1].value
    dino = curves[(curves["metric"] == "dino") & (curves["prompt_set"] == "diverse")]
    assert list(dino["checkpoint"]) == [2, 4] and set(dino["method"]) == {"ti_then_ft"}
    for _, point in dino.iterrows():
        assert point["value"] == pytest.approx(_overall(store, ti["run_id"], "dino", "diverse", point["checkpoint"])
                                               ["value"])
    assert list(dino["headline"]) == [False, True]  # rule 'final': the last checkpoint
    board = _app(study_db["db"], "Leaderboard", "dreambooth_subjects", monkeypatch).table[0].value
    cell = board.set_index("method").loc["ti_then_ft", "dino [diverse] (↑ higher is better)"]
    headline = _overall(store, ti["run_id"], "dino", "diverse")
    assert cell.startswith(f"{headline['value']:.4f} [") and "(headline: step 4, rule final)" in cell
    assert "@ckpt" not in cell and list(board["method"]).count("ti_then_ft") == 1


def test_sweeps_page_plots_the_face_study_cells(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    at = _app(study_db["db"], "Sweeps", "face_identity", monkeypatch)
    assert at.selectbox(key="sweep_kind").options == ["lora"]
    parameter = next(s for s in at.selectbox if s.label == "Parameter")
    assert parameter.options == ["lr", "rank", "schedule", "steps"]
    parameter.set_value("steps").run()
    next(s for s in at.selectbox if s.label == "Metric").set_value(
        "clip_score_all_pairs [identity] (↑ higher is better)").run()
    points = at.dataframe[0].value
    assert len(points) == len(FACE_STUDY)
    for _, point in points.iterrows():
        run = store.run_row(point["run"])
        assert run["plan"]["overrides"]["steps"] == point["steps"] and run["plan"]["overrides"]["lr"] == point["lr"]
        assert point["value"] == pytest.approx(_overall(store, point["run"], "clip_score_all_pairs", "identity")
                                               ["value"])


def test_reported_face_figures_match_sweep_cells_by_overrides(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    at = _app(study_db["db"], "Reported vs measured", "face_identity", monkeypatch)
    rows = at.dataframe[0].value
    assert len(rows) == 8 and set(rows["method"]) == {"flux_lora"} and set(rows["prompt set"]) == {"identity"}
    assert "8 of 8 reported figures have a measured counterpart" in " ".join(_texts(at.caption))
    run3 = rows[(rows["overrides"] == "lr=0.0005;rank=16;schedule=cosine;steps=1000")
                & (rows["metric"] == "clip_score_all_pairs")].iloc[0]
    run = store.run_row(run3["measured run"])
    assert run["plan"]["overrides"] == {"lr": 5e-4, "rank": 16, "steps": 1000, "schedule": "cosine"}
    assert run3["reported"] == 0.2988
    assert run3["measured"] == pytest.approx(_overall(store, run["run_id"], "clip_score_all_pairs", "identity")
                                             ["value"], abs=1e-6)
    board = _app(study_db["db"], "Leaderboard", "face_identity", monkeypatch).table[0].value
    # reported rows never ranked: the board holds frozen and the 11 measured sweep cells, one row each
    assert sorted(board["method"]) == ["flux_lora"] * 11 + ["frozen"]
    assert len(set(board["sweep cell"])) == 12


def test_reported_figures_use_the_real_prompt_sets_and_headline_rows(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    for task, method, metric, prompt_set, scale in [("deepfashion", "lora_unet_r1", "clip_score", "test", 100),
                                                    ("coco_generalization", "frozen", "fid", "coco", 1),
                                                    ("dreambooth_subjects", "ti_then_ft", "dino", "simple", 1)]:
        rows = _app(study_db["db"], "Reported vs measured", task, monkeypatch).dataframe[0].value
        row = rows[(rows["method"] == method) & (rows["metric"] == metric) & (rows["prompt set"] == prompt_set)
                   & (rows["group"] == "mean (all)")].iloc[0]
        run = next(r for r in _runs(store, task) if r["method"] == method)
        assert row["measured run"] == run["run_id"]
        value = _overall(store, run["run_id"], metric, prompt_set)["value"]
        assert row["measured"] == pytest.approx(value * scale, abs=1e-6), (task, metric)
