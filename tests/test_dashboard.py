"""Every dashboard page driven with Streamlit's AppTest on a database filled by real tiny runs."""

from __future__ import annotations

from pathlib import Path
from statistics import fmean

import pytest
from streamlit.testing.v1 import AppTest

from harness.analysis.leaderboard import latest_runs
from harness.store import Store

APP = str(Path(__file__).parents[1] / "dashboard" / "app.py")
TASK = "cifar_alignment"
CLIP_A = "clip_score [A] ↑"
CLIP_B = "clip_score [B] ↑"
MEASURED = {"frozen", "xattn_ft", "lora_unet_r1", "bitfit_attn", "bitfit_attn_lr3e3"}


def _app(db: Path, page: str, monkeypatch: pytest.MonkeyPatch, **query: str) -> AppTest:
    monkeypatch.setenv("BENCH_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"page": page, **query})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


def _board(at: AppTest, every_column: bool = True):
    """The leaderboard table (every column chosen in the column chooser unless told otherwise)."""
    if every_column:
        chooser = next(m for m in at.multiselect if m.label == "More columns")
        chooser.set_value(chooser.options).run()
    return next(d.value for d in at.dataframe if "rank" in d.value.columns)


def _latest(board_db: dict, task: str = TASK) -> dict[str, dict]:
    return {r["method"]: r for r in latest_runs(board_db["store"], task, "tiny")}


def _overall(run: dict, metric: str, prompt_set: str) -> float:
    return next(m["value"] for m in run["metrics"] if (m["metric"], m["prompt_set"]) == (metric, prompt_set))


def test_leaderboard_ranks_measured_runs_with_ci_n_direction_and_budget(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Leaderboard", monkeypatch)
    assert at.header[0].value == f"Leaderboard: {TASK} (tiny)"
    assert any("tiny profile" in w for w in _texts(at.warning))
    compact = _board(at, every_column=False)
    assert list(compact.columns) == ["rank", "method", CLIP_A, "gain over frozen", "trainable params", "steps",
                                     "train s"]
    board = _board(at)
    assert set(board["method"]) == MEASURED  # no failed, no running run ranked
    for column in (CLIP_A, CLIP_B, "near_black_count [A] ↓", "gain over frozen",
                   "gain per 1k samples", "samples seen", "trainable params", "adapter", "peak memory"):
        assert column in board.columns
    latest = _latest(board_db)
    values = {m: _overall(r, "clip_score", "A") for m, r in latest.items()}
    assert list(board["method"]) == sorted(values, key=lambda m: (-values[m], m))
    ranks = [int(r.lstrip("=")) for r in board["rank"]]
    assert ranks[0] == 1 and ranks == sorted(ranks)  # shared ranks ("=") keep the order
    row = board.set_index("method").loc["xattn_ft"]
    clip_a = next(m for m in latest["xattn_ft"]["metrics"] if (m["metric"], m["prompt_set"]) == ("clip_score", "A"))
    digits = len(row[CLIP_A].split(" ")[0].split(".")[1])
    assert digits >= 4 and row[CLIP_A].startswith(f"{clip_a['value']:.{digits}f} [")
    assert " N=50 [random_init]" in row[CLIP_A]  # the CLIP card's weights are random-init: flagged like FID's
    gain = values["xattn_ft"] - values["frozen"]
    assert row["gain over frozen"].startswith(f"{gain:+.{digits}f} [")
    gain_per_1k = gain / latest["xattn_ft"]["samples_seen"] * 1000
    assert row["gain per 1k samples"] == f"{gain_per_1k:+.{digits}f}"
    assert row["trainable params"] == f"{latest['xattn_ft']['trainable_params']:,}" and row["steps"] == 8
    frozen = board.set_index("method").loc["frozen"]
    assert frozen["gain over frozen"] == "reference" and frozen["adapter"] == "none"
    assert frozen["gain per 1k samples"] == "n/a"  # no budget spent: no gain per unit of budget
    assert board.set_index("method").loc["bitfit_attn"]["kind"] == "bitfit"


def test_leaderboard_lists_runs_in_progress_and_failed_runs_apart(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Leaderboard", monkeypatch)
    assert any(t.startswith("1 run(s) in progress") and "frozen since" in t for t in _texts(at.info))
    running = at.dataframe[0].value
    assert list(running["run"]) == ["in-progress-frozen-seed1"] and list(running["status"]) == ["running"]
    failed_box = next(e for e in at.expander if e.label == "failed runs (1)")
    failed = failed_box.dataframe[0].value
    assert list(failed["method"]) == ["xattn_nothing"] and "zero trainable parameters" in failed["error"][0]


def test_leaderboard_reranks_by_another_metric(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Leaderboard", monkeypatch)
    at.selectbox(key=f"rank_by|{TASK}|tiny").set_value(CLIP_B).run()
    values = {m: _overall(r, "clip_score", "B") for m, r in _latest(board_db).items()}
    assert list(_board(at, every_column=False)["method"]) == sorted(values, key=lambda m: (-values[m], m))
    assert at.query_params["rank_by"] == CLIP_B  # the choice is in the URL


def test_compare_deltas_against_frozen_are_paired_means_with_cis(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Compare", monkeypatch)
    deltas = at.dataframe[0].value
    assert set(deltas["method"]) == MEASURED - {"frozen"} and len(deltas) == 4 * 10
    store: Store = board_db["store"]
    latest = _latest(board_db)
    frozen = {(s["prompt_id"], s["sample_idx"]): s["value"] for s in store.sample_scores(latest["frozen"]["run_id"])}
    mine = [s for s in store.sample_scores(latest["xattn_ft"]["run_id"])
            if s["prompt_set"] == "A" and ".cat." in s["prompt_id"]]
    expected = fmean(s["value"] - frozen[(s["prompt_id"], s["sample_idx"])] for s in mine)
    row = deltas[(deltas["method"] == "xattn_ft") & (deltas["grp"] == "cat")].iloc[0]
    assert row["delta"] == pytest.approx(expected) and row["n"] == 5 and bool(row["paired"])
    assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    assert any("no method of this task was scored at several checkpoints" in t for t in _texts(at.info))
    at.radio(key="compare_level").set_value("prompt").run()
    at.multiselect(key=f"compare_methods|{TASK}|tiny").set_value(["xattn_ft"]).run()
    per_prompt = at.dataframe[0].value
    assert len(per_prompt) == 50 and set(per_prompt["method"]) == {"xattn_ft"}


def test_disagreement_without_a_stored_analysis_names_the_command(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Disagreement", monkeypatch)
    assert _texts(at.info) == [f"no disagreement analysis stored yet: run `bench disagree --task {TASK} "
                               "--profile tiny`"]
    assert not at.dataframe


def test_samples_grid_is_prompts_by_methods_with_scores(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Samples", monkeypatch)
    assert len(at.image) == 12 * len(MEASURED) + 1  # 12 prompts shown x methods, plus the full-size view
    latest = _latest(board_db)
    score = next(s["value"] for s in board_db["store"].sample_scores(latest["xattn_ft"]["run_id"])
                 if s["prompt_id"] == "A.airplane.t0")
    captions = [c for image in at.image for c in image.captions]
    assert f"xattn_ft: clip_score {score:.4f}" in captions
    assert any("same seed and sample index for every method" in c for c in _texts(at.caption))
    at.selectbox(key=f"samples_group|{TASK}|tiny|A").set_value("cat").run()
    assert len(at.image) == 5 * len(MEASURED) + 1
    detail = dict(zip(at.dataframe[0].value["field"], at.dataframe[0].value["value"], strict=True))
    run_id = detail["run"]
    score = next(s["value"] for s in board_db["store"].sample_scores(run_id)
                 if s["prompt_id"] == detail["prompt id"] and s["sample_idx"] == 0)
    assert float(detail["clip_score"]) == pytest.approx(score) and detail["group"] == "cat"


def test_samples_deep_link_filters_prompt_and_methods(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Samples", monkeypatch, task=TASK, profile="tiny", prompt_set="B",
              prompt_id="B.mug", methods="frozen,xattn_ft")
    assert len(at.image) == 2 + 1
    next(n for n in at.number_input if n.label == "Sample index").set_value(1).run()
    detail = dict(zip(at.dataframe[0].value["field"], at.dataframe[0].value["value"], strict=True))
    assert detail["prompt id"] == "B.mug" and detail["sample index"] == "1" and detail["method"] == "frozen"


def test_samples_show_near_black_flags(board_db, monkeypatch) -> None:
    assert board_db["results"]["cifar_nearblack"].exit_code == 0
    at = _app(board_db["db"], "Samples", monkeypatch, task="cifar_nearblack")
    assert "50 prompts x 1 methods; 50 flagged samples" in _texts(at.caption)
    captions = [c for image in at.image for c in image.captions]
    assert len(captions) == 12 + 1 and all(c.endswith("[NEAR-BLACK]") for c in captions)
    detail = dict(zip(at.dataframe[0].value["field"], at.dataframe[0].value["value"], strict=True))
    assert detail["near-black"] == "True"
    at = _app(board_db["db"], "Leaderboard", monkeypatch, task="cifar_nearblack", columns="near_black_count [A] ↓")
    assert _board(at, every_column=False)["near_black_count [A] ↓"].iloc[0] == "50 of 50"


def test_sweeps_plot_the_metric_against_the_swept_learning_rate(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Sweeps", monkeypatch)
    assert at.selectbox(key=f"sweep_kind|{TASK}|tiny").options == ["bitfit"]
    next(s for s in at.selectbox if s.label == "Parameter").set_value("lr").run()
    points = at.dataframe[0].value.set_index("method")
    latest = _latest(board_db)
    assert points.loc["bitfit_attn", "lr"] == pytest.approx(1e-3)
    assert points.loc["bitfit_attn_lr3e3", "lr"] == pytest.approx(3e-3)
    assert points.loc["bitfit_attn_lr3e3", "value"] == pytest.approx(_overall(latest["bitfit_attn_lr3e3"],
                                                                               "clip_score", "A"))


def test_sweeps_say_when_nothing_was_swept(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Sweeps", monkeypatch, task="cifar_nearblack")
    assert any(t.startswith("no sweep stored for cifar_nearblack on tiny") for t in _texts(at.info))


def test_reported_figures_sit_beside_measured_values_unranked(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Reported vs measured", monkeypatch)
    rows = at.dataframe[0].value
    assert len(rows) == 36 and set(rows["method"]) == {"frozen", "xattn_ft"}
    frozen_cat = rows[(rows["method"] == "frozen") & (rows["group"] == "cat")].iloc[0]
    assert frozen_cat["reported"] == 0.2475
    cat = next(m for m in board_db["store"].aggregates(_latest(board_db)["frozen"]["run_id"])
               if m["grp"] == "cat" and m["metric"] == "clip_score")
    assert frozen_cat["measured"] == pytest.approx(cat["value"], abs=1e-6) and frozen_cat["measured N"] == 5
    assert any("never ranked" in c for c in _texts(at.caption))
    board = _board(_app(board_db["db"], "Leaderboard", monkeypatch))
    assert len(board) == len(MEASURED)  # the published rows are not in the ranking
    none = _app(board_db["db"], "Reported vs measured", monkeypatch, task="cifar_nearblack")
    assert any(t.startswith("no reported figures for cifar_nearblack") for t in _texts(none.info))


def test_missing_database_is_a_clear_message(tmp_path, monkeypatch) -> None:
    at = _app(tmp_path / "nothing.duckdb", "Leaderboard", monkeypatch)
    assert _texts(at.error) == [f"no results database at {tmp_path / 'nothing.duckdb'}: run "
                                f"`bench run --task T --method M --db {tmp_path / 'nothing.duckdb'}` first"]


def test_url_round_trip_restores_a_filtered_view(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Samples", monkeypatch, task=TASK, profile="tiny")
    at.selectbox(key=f"samples_set|{TASK}|tiny").set_value("B").run()
    at.multiselect(key=f"samples_methods|{TASK}|tiny").set_value(["xattn_ft", "frozen"]).run()
    next(n for n in at.number_input if n.label == "Sample index").set_value(1).run()
    query = {k: at.query_params[k] for k in at.query_params}
    assert query["page"] == "Samples" and query["task"] == TASK and query["profile"] == "tiny"
    assert query["prompt_set"] == "B" and query["methods"] == "xattn_ft,frozen" and query["sample"] == "1"
    captions = sorted(c for image in at.image for c in image.captions)
    again = _app(board_db["db"], **query, monkeypatch=monkeypatch)  # the shared link
    assert sorted(c for image in again.image for c in image.captions) == captions
    assert again.multiselect(key=f"samples_methods|{TASK}|tiny").value == ["xattn_ft", "frozen"]
    page = again.radio(key="page")
    page.set_value("Disagreement").run()
    assert again.query_params["page"] == "Disagreement"  # the address follows the page


def test_changing_task_resets_the_method_filter(board_db, monkeypatch) -> None:
    at = _app(board_db["db"], "Samples", monkeypatch, task=TASK, profile="tiny", methods="xattn_ft")
    assert at.multiselect(key=f"samples_methods|{TASK}|tiny").value == ["xattn_ft"]
    at.selectbox(key="task").set_value("cifar_nearblack").run()
    assert "methods" not in at.query_params and at.query_params["task"] == "cifar_nearblack"
    assert at.multiselect(key="samples_methods|cifar_nearblack|tiny").value == ["frozen"]


def test_tied_pair_shares_a_rank(board_db, monkeypatch) -> None:
    from harness.analysis.leaderboard import board_runs, column_scores, metric_columns, ranking

    runs = board_runs(board_db["store"], TASK, "tiny")
    column = next(c for c in metric_columns(runs) if c.label == CLIP_A)
    entries = ranking(runs, column, column_scores(board_db["store"], runs, column))
    tied = [e for e in entries if e["tied"]]
    assert tied, "the tiny runs hold methods whose paired interval includes 0"
    board = _board(_app(board_db["db"], "Leaderboard", monkeypatch), every_column=False).set_index("method")
    for entry in entries:
        assert board.loc[entry["run"]["method"], "rank"] == ("=" if entry["tied"] else "") + str(entry["rank"])
    at = _app(board_db["db"], "Leaderboard", monkeypatch)
    assert any("= marks a shared rank" in c and "paired-bootstrap" in c for c in _texts(at.caption))
