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


def _board(at: AppTest):
    """The leaderboard with every column chosen in the column chooser."""
    chooser = next(m for m in at.multiselect if m.label == "More columns")
    chooser.set_value(chooser.options).run()
    return next(d.value for d in at.dataframe if "rank" in d.value.columns)


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
    assert any("blue agrees, red disagrees" in c for c in _texts(at.caption))  # the heatmap
    matrix = at.dataframe[0].value.set_index("metric")
    assert analysis["tau"]
    for t in analysis["tau"]:
        a, b = f"{t['metric_a']} [{t['set_a']}]", f"{t['metric_b']} [{t['set_b']}]"
        assert matrix.loc[a, b] == pytest.approx(t["tau"]) and matrix.loc[b, a] == pytest.approx(t["tau"])
        assert matrix.loc[a, a] == 1.0
    if analysis["flips"]:
        flips = at.dataframe[2].value
        assert list(flips.columns)[0] == "sample grid"  # the link first
        expected = [(f["method_a"], f["method_b"], p["prompt_id"]) for f in analysis["flips"] for p in f["prompts"]]
        assert list(zip(flips["method A"], flips["method B"], flips["prompt_id"], strict=True)) == expected
    else:  # the tiny runs: every opposite order is a tie under the tie rule
        assert any("no method pair changes order" in t and "ties, not flips" in t for t in _texts(at.info))
    scatter = at.dataframe[-1].value.set_index("method")
    values = {(r["metric"], r["prompt_set"], r["method"]): r["value"] for r in analysis["rankings"]}
    for method in analysis["runs"]:
        assert scatter.loc[method, "x"] == pytest.approx(values[("clip_score", "A", method)])
        assert scatter.loc[method, "y"] == pytest.approx(values[("clip_score", "B", method)])


def test_flip_rows_put_the_link_first_with_both_deltas(study_db: dict, monkeypatch) -> None:
    import sys

    sys.path.insert(0, str(Path(APP).parent))
    from panels.disagreement import flip_rows

    from harness.analysis.ties import Difference

    analysis = {"per_image": [{"metric": "clip_score", "prompt_set": "A"}], "flips": [
        {"method_a": "frozen", "method_b": "xattn_ft", "metric_a": "clip_score", "set_a": "A", "metric_b": "fid",
         "set_b": "test", "delta_a": 0.01, "delta_b": -2.0, "persistence": 0.9,
         "prompts": [{"prompt_id": "A.cat.t0", "prompt": "a photo of a cat", "strength": 1.5, "why": "w",
                      "delta_a": 0.02, "delta_b": None}]},
        {"method_a": "frozen", "method_b": "xattn_ft", "metric_a": "fid", "set_a": "test", "metric_b": "kid",
         "set_b": "test", "delta_a": 1.0, "delta_b": -0.01, "persistence": 1.0, "prompts": []}]}
    intervals = [(Difference(0.01, 0.005, 0.015, "paired bootstrap over prompts"),
                  Difference(-2.0, -3.0, -1.0, "stored intervals overlap"))] * 2
    per_prompt, set_level = flip_rows(analysis, "cifar_alignment", "tiny", intervals)
    assert list(per_prompt[0])[0] == "sample grid" and per_prompt[0]["prompt_id"] == "A.cat.t0"
    assert per_prompt[0]["Δ1 (A - B) [95% CI]"] == "+0.01 [+0.005, +0.015] (paired)"
    assert per_prompt[0]["Δ2 (A - B) [95% CI]"] == "-2 [-3, -1] (intervals apart)"
    assert len(set_level) == 1 and "prompt_id" not in set_level[0] and "prompt" not in set_level[0]
    link = parse_qs(per_prompt[0]["sample grid"].lstrip("?"))
    assert link == {"page": ["Samples"], "task": ["cifar_alignment"], "profile": ["tiny"], "prompt_set": ["A"],
                    "prompt_id": ["A.cat.t0"], "methods": ["frozen,xattn_ft"]}
    grid = _app(study_db["db"], "Samples", "cifar_alignment", monkeypatch,
                **{k: v[0] for k, v in link.items() if k not in ("page", "task", "profile")})
    assert len(grid.image) == 2 + 1  # the flipped prompt for the two methods, plus the full-size view


def test_stale_analysis_is_flagged(study_db: dict, monkeypatch) -> None:
    from harness.analysis.disagree import stale

    analysis = study_db["store"].latest_disagreement("cifar_alignment", "tiny")
    some = sorted(analysis["runs"])[0]
    current = {**analysis["runs"], "new_method": "r1", some: "r2"}
    assert stale(analysis, current) == ["new_method (not in the analysis)", f"{some} (newer run r2)"]
    at = _app(study_db["db"], "Disagreement", "cifar_alignment", monkeypatch)
    # the study database holds bitfit runs submitted after... or not: the warning appears exactly when stale
    board = {r for r in _board(_app(study_db["db"], "Leaderboard", "cifar_alignment", monkeypatch))["method"]}
    warned = any("Not covered" in w for w in _texts(at.warning))
    assert warned == bool(board - set(analysis["runs"]))


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
    board = _board(_app(study_db["db"], "Leaderboard", "face_identity", monkeypatch)).set_index("method")
    assert board.loc["frozen", "faceless_count [identity] ↓"] == f"{int(count)} of 11"
    assert board.loc["frozen", "face_distance [identity] ↓"].startswith("no value N=11 (0 of 11 scored)")


def test_fid_kid_cells_show_direction_ci_std_and_caveat_flags(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    board = _board(_app(study_db["db"], "Leaderboard", "deepfashion", monkeypatch)).set_index("method")
    run_id = board.loc["lora_unet_r1", "run"]
    fid, kid = _overall(store, run_id, "fid", "test"), _overall(store, run_id, "kid", "test")
    assert fid["card"]["higher_is_better"] is False and "biased_small_n" in fid["card"]["flags"]
    cell = board.loc["lora_unet_r1", "fid [test] ↓"]
    digits = len(cell.split(" ")[0].split(".")[1])
    frozen_fid = _overall(store, board.loc["frozen", "run"], "fid", "test")["value"]
    assert f"{fid['value']:.{digits}f}" != f"{frozen_fid:.{digits}f}"  # enough digits to tell them apart
    assert cell.startswith(f"{fid['value']:.{digits}f} [") and " N=4 [" in cell
    assert "biased_small_n" in cell and "random_init" in cell and "cache" not in cell
    clip = board.loc["lora_unet_r1", "clip_score [test] ↑"]
    assert clip.endswith("[random_init]")  # the same flag on the CLIP cell (its card's weights are random-init)
    kid_cell = board.loc["lora_unet_r1", "kid [test] ↓"]
    assert kid["std"] is not None and f" sd={kid['std']:.3g} [" in kid_cell
    compare = _app(study_db["db"], "Compare", "deepfashion", monkeypatch)  # deltas need per-image scores
    assert compare.selectbox(key="compare_metric|deepfashion|tiny").options == ["clip_score [test] ↑"]


def test_evaluation_only_task_carries_the_adapter_training_budget(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    board = _board(_app(study_db["db"], "Leaderboard", "coco_generalization", monkeypatch))
    row = board.set_index("method").loc["lora_unet_r1"]
    trained = next(r for r in _runs(store, "deepfashion") if r["method"] == "lora_unet_r1")
    coco = next(r for r in _runs(store, "coco_generalization") if r["method"] == "lora_unet_r1")
    assert coco["steps"] == 0 and coco["adapter_file"] == trained["adapter_file"]
    assert row["budget of"] == f"deepfashion run {trained['run_id']}" and row["run"] == coco["run_id"]
    assert row["samples seen"] == trained["samples_seen"] > 0 and row["trainable params"] == "4,096"
    frozen = next(r for r in _runs(store, "coco_generalization") if r["method"] == "frozen")
    gain = (_overall(store, coco["run_id"], "clip_score", "coco")["value"]
            - _overall(store, frozen["run_id"], "clip_score", "coco")["value"])
    digits = len(row["gain per 1k samples"].split(".")[1])
    assert digits >= 4 and row["gain per 1k samples"] == f"{gain / trained['samples_seen'] * 1000:+.{digits}f}"


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
    board = _board(_app(study_db["db"], "Leaderboard", "dreambooth_subjects", monkeypatch))
    cell = board.set_index("method").loc["ti_then_ft", "dino [diverse] ↑"]
    headline = _overall(store, ti["run_id"], "dino", "diverse")
    digits = len(cell.split(" ")[0].split(".")[1])
    assert cell.startswith(f"{headline['value']:.{digits}f} [") and "(headline: step 4, rule final)" in cell
    assert "@ckpt" not in cell and list(board["method"]).count("ti_then_ft") == 1


def test_sweeps_page_plots_the_face_study_cells(study_db: dict, monkeypatch) -> None:
    store: Store = study_db["store"]
    at = _app(study_db["db"], "Sweeps", "face_identity", monkeypatch)
    assert at.selectbox(key="sweep_kind|face_identity|tiny").options == ["lora"]
    parameter = next(s for s in at.selectbox if s.label == "Parameter")
    assert parameter.options == ["lr", "rank", "schedule", "steps"]
    parameter.set_value("steps").run()
    next(s for s in at.selectbox if s.label == "Metric").set_value(
        "clip_score_all_pairs [identity] ↑").run()
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
    board = _board(_app(study_db["db"], "Leaderboard", "face_identity", monkeypatch))
    # reported rows never ranked: the board holds frozen and the 11 measured sweep cells, one row each
    assert sorted(board["method"])[-1] == "frozen" and len(set(board["method"])) == 12
    assert run3["measured run"] in set(board["run"])
    assert "flux_lora[lr=5e-4,r=16,steps=1000,cosine]" in set(board["method"])
    assert len(set(board["sweep cell"])) == 12 and set(board["steps planned"]) >= {500, 1000, 1500}


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


def test_sweep_cells_have_eleven_distinct_labels_on_every_page(study_db: dict, monkeypatch) -> None:
    from harness.analysis.leaderboard import cell_label

    cells = [r for r in _runs(study_db["store"], "face_identity") if r["method"] == "flux_lora"]
    labels = {cell_label(r) for r in cells}
    assert len(labels) == 11 and all(label.startswith("flux_lora[lr=") for label in labels)
    samples = _app(study_db["db"], "Samples", "face_identity", monkeypatch)
    options = samples.multiselect(key="samples_methods|face_identity|tiny").options
    assert set(options) == labels | {"frozen"}  # 12 distinct filter chips
    headers = [m.value for m in samples.markdown if m.value.startswith("**flux_lora[") or m.value == "**frozen**"]
    assert len(headers) == 12  # a header above every grid column
    compare = _app(study_db["db"], "Compare", "face_identity", monkeypatch)
    deltas = compare.dataframe[0].value
    assert set(deltas["method"]) == labels  # each cell its own series (colour, legend), never stacked
    sweeps = _app(study_db["db"], "Sweeps", "face_identity", monkeypatch)
    assert set(sweeps.dataframe[0].value["cell"]) == labels


def test_subject_samples_show_real_reference_photos(study_db: dict, monkeypatch) -> None:
    at = _app(study_db["db"], "Samples", "dreambooth_subjects", monkeypatch)
    assert any(m.value == "**real photos (reference)**" for m in at.markdown)
    captions = [c for image in at.image for c in image.captions]
    assert any(c.endswith("(real)") for c in captions)
