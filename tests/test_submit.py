"""`bench submit`: validation, the user's registry, plugin method kinds, and the run reaching the leaderboard."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness import registry
from harness.analysis.leaderboard import latest_runs
from harness.cli import app
from harness.methods import method_class
from harness.paths import user_methods_dir
from harness.specs import SpecError
from harness.store import Store

TASK = "cifar_alignment"


def _spec(tmp_path: Path, **fields: object) -> Path:
    data = {"name": "my_method", "version": 1, "kind": "lora", **fields}
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _submit(*args: str):
    return CliRunner().invoke(app, ["submit", *args])


def test_plugin_method_runs_end_to_end_and_is_on_the_leaderboard(board_db: dict) -> None:
    result = board_db["results"]["bitfit_attn"]
    assert result.exit_code == 0, result.output
    assert "registered method 'bitfit_attn' (kind bitfit)" in result.output
    target = user_methods_dir() / "bitfit_attn.yaml"
    assert target.is_file() and registry.method_files()["bitfit_attn"] == target
    runs = {r["method"]: r for r in latest_runs(board_db["store"], TASK, "tiny")}
    bitfit = runs["bitfit_attn"]
    assert bitfit["method_kind"] == "bitfit" and bitfit["status"] == "completed"
    assert bitfit["steps"] == 8 and 0 < bitfit["trainable_params"] < runs["xattn_ft"]["trainable_params"]
    assert bitfit["adapter_file"].endswith("bitfit_biases.safetensors") and bitfit["adapter_bytes"] > 0
    clip_a = next(m for m in bitfit["metrics"] if m["metric"] == "clip_score" and m["prompt_set"] == "A")
    assert clip_a["n"] == 50 and -1 <= clip_a["value"] <= 1
    board = CliRunner().invoke(app, ["leaderboard", "--task", TASK, "--db", str(board_db["db"])])
    assert board.exit_code == 0 and "bitfit_attn" in board.output and "bitfit_attn_lr3e3" in board.output


def test_plugin_kind_resolves_lazily_to_its_class(board_db: dict) -> None:
    assert "bitfit" in registry.known_kinds() and "bitfit" not in registry.METHOD_KINDS
    cls = method_class("bitfit")
    assert cls.__name__ == "BitFitMethod" and cls.__module__ == "bench_bitfit"


def test_progress_bars_cover_training_sampling_and_scoring(board_db: dict) -> None:
    stages = {s["stage"]: s for s in board_db["stages"]["bitfit_attn"]}
    assert stages["training"] == {"stage": "training", "total": 8, "ticks": 8}
    assert stages["sampling"] == {"stage": "sampling", "total": 62, "ticks": 62}  # 50 x 1 + 6 x 2
    assert stages["scoring"] == {"stage": "scoring", "total": 1, "ticks": 1}


def test_failing_submission_is_stored_as_failed_with_exit_1(board_db: dict) -> None:
    result = board_db["results"]["xattn_nothing"]
    assert result.exit_code == 1 and "zero trainable parameters" in result.output
    failed = [r for r in board_db["store"].runs(TASK) if r["status"] == "failed"]
    assert [r["method"] for r in failed] == ["xattn_nothing"]
    assert "xattn_nothing" not in {r["method"] for r in latest_runs(board_db["store"], TASK, "tiny")}


def test_unknown_kind_is_one_line_and_registers_nothing(tmp_path: Path) -> None:
    result = _submit(str(_spec(tmp_path, kind="no_such_kind")), "--task", TASK)
    assert result.exit_code == 2
    assert "field 'kind': unknown method kind 'no_such_kind'" in result.output and "Traceback" not in result.output
    assert "my_method" not in registry.method_files()


def test_baseline_name_is_refused(tmp_path: Path) -> None:
    result = _submit(str(_spec(tmp_path, name="xattn_ft", kind="attn_finetune")), "--task", TASK)
    assert result.exit_code == 2 and "'xattn_ft' is a built-in baseline" in result.output


def test_bad_params_and_unknown_task_are_refused_before_registering(tmp_path: Path) -> None:
    bad = _spec(tmp_path, name="bad_lr", training={"learning_rate": -1})
    result = _submit(str(bad), "--task", TASK)
    assert result.exit_code == 2 and "training.learning_rate" in result.output
    result = _submit(str(_spec(tmp_path, name="fine_one")), "--task", "no_such_task")
    assert result.exit_code == 2 and "unknown task 'no_such_task'" in result.output
    assert {"bad_lr", "fine_one"}.isdisjoint(registry.method_files())


def test_different_spec_under_a_registered_name_needs_replace(tmp_path: Path) -> None:
    from harness.commands.submit import register, validate

    first = _spec(tmp_path, name="twin", params={"rank": 2})
    register(validate(first, [TASK], "tiny"))
    register(validate(first, [TASK], "tiny"))  # the same spec again is fine
    other = tmp_path / "other"
    other.mkdir()
    changed = _spec(other, name="twin", params={"rank": 3})
    with pytest.raises(SpecError, match="already registered"):
        register(validate(changed, [TASK], "tiny"))
    registered = registry.method_files()["twin"]
    assert yaml.safe_load(registered.read_text())["params"]["rank"] == 2
    register(validate(changed, [TASK], "tiny"), replace=True)
    assert yaml.safe_load(registered.read_text())["params"]["rank"] == 3
    assert registry.get_method("twin").params == {"rank": 3}


def test_broken_plugin_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bench.methods]\nbroken = no_such_module_here:Nope\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = _submit(str(_spec(tmp_path, name="uses_broken", kind="broken")), "--task", TASK,
                     "--db", str(tmp_path / "b.duckdb"))
    assert result.exit_code == 2 and "plugin entry point 'no_such_module_here:Nope' failed to load" in result.output
    assert not (tmp_path / "b.duckdb").exists()


def test_dashboard_command_refuses_a_missing_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboard", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 5 and "no results database yet" in result.output


def test_store_unchanged_by_refused_submissions(board_db: dict) -> None:
    assert len(Store(board_db["db"]).runs(TASK)) == 3 + 3 + 1  # tiny_runs, three submissions, one in progress


def test_per_subject_plugin_runs_through_the_same_contract(bitfit_plugin: Path, tmp_path: Path) -> None:
    """A plugin kind with ``per_subject``, its own identifier and its own training set (class images made by
    ``ctx.generate``) runs on dreambooth_subjects through the entry point, one adapter per subject."""
    spec = bitfit_plugin.parent / "subject_bitfit.yaml"
    db = tmp_path / "bench.duckdb"
    result = _submit(str(spec), "--task", "dreambooth_subjects", "--profile", "tiny", "--db", str(db))
    assert result.exit_code == 0, result.output
    [run] = [r for r in Store(db).runs("dreambooth_subjects") if r["method"] == "subject_bitfit"]
    assert run["status"] == "completed" and run["method_kind"] == "subject_bitfit"
    subjects = run["details"]["subjects"]
    assert set(subjects) == {"red_star_toy", "spotted_dog"}
    run_dir = Path(run["run_dir"])
    for name, record in subjects.items():
        assert record["identifier"] == "zwx" and record["stages"][0]["changed_tensors"] > 0
        assert Path(record["adapter_file"]) == run_dir / "subjects" / name / "bitfit_biases.safetensors"
        assert len(list((run_dir / "subjects" / name / "class_images" / "samples").glob("*.png"))) == 2
    prompts = {s["prompt"] for s in Store(db).samples(run["run_id"])}
    assert prompts and all("zwx" in p for p in prompts)  # the method's identifier went into its prompts
    assert run["steps"] == sum(s["stages"][0]["steps"] for s in subjects.values()) > 0
