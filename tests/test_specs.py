"""Spec validation: one-line errors naming file and field; profiles; registry lookups."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import registry
from harness.paths import PROJECT_ROOT
from harness.plan import build_plan
from harness.specs import SpecError, load_method, load_task, resolve_profile

TASK_FILE = PROJECT_ROOT / "tasks" / "cifar_alignment.yaml"


def _write(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_registered_spec_is_valid() -> None:
    for path in [*registry.task_files().values(), *registry.method_files().values()]:
        assert registry.validate_file(path) in {"task", "method"}


def test_wrong_type_names_file_and_field(tmp_path: Path) -> None:
    data = yaml.safe_load(TASK_FILE.read_text())
    data["budget"]["max_steps"] = "many"
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as info:
        load_task(path)
    message = str(info.value)
    assert str(path) in message and "budget.max_steps" in message and "\n" not in message


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    data = yaml.safe_load(TASK_FILE.read_text())
    data["sampling"]["guidance"] = 7.5
    with pytest.raises(SpecError, match="sampling.guidance"):
        load_task(_write(tmp_path, data))


def test_bad_tiny_profile_is_caught_at_load(tmp_path: Path) -> None:
    data = yaml.safe_load(TASK_FILE.read_text())
    data["profiles"]["tiny"]["sampling"]["steps"] = 0
    with pytest.raises(SpecError, match=r"profiles.tiny.*sampling.steps"):
        load_task(_write(tmp_path, data))


def test_template_without_slot(tmp_path: Path) -> None:
    data = yaml.safe_load(TASK_FILE.read_text())
    data["data"]["templates"] = ["a photo"]
    with pytest.raises(SpecError, match="data"):
        load_task(_write(tmp_path, data))


def test_invalid_yaml_reports_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nversion: [1\n")
    with pytest.raises(SpecError, match=r"broken.yaml:\d+:\d+: invalid YAML"):
        load_task(path)


def test_method_missing_version(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "m", "kind": "lora"})
    with pytest.raises(SpecError, match="field 'version'"):
        load_method(path)


def test_unknown_method_kind(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "m", "version": 1, "kind": "magic"})
    with pytest.raises(SpecError, match="unknown method kind 'magic'"):
        registry.get_method(str(path))


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(registry.UnknownNameError, match="did you mean cifar_alignment"):
        registry.get_task("cifar_alignmnt")
    with pytest.raises(registry.UnknownNameError, match="did you mean xattn_ft"):
        registry.get_method("xatn_ft")


def test_tiny_profile_overrides_and_declares_counts() -> None:
    task = registry.get_task("cifar_alignment")
    tiny = resolve_profile(task, "tiny")
    assert (task.data.resolution, tiny.data.resolution) == (256, 32)
    assert [s.samples_per_prompt for s in task.evaluation.prompt_sets] == [1, 30]
    assert [s.samples_per_prompt for s in tiny.evaluation.prompt_sets] == [1, 2]
    assert tiny.model == task.model and tiny.data.templates == task.data.templates


def test_plan_resolves_protocol_recipe_and_hash_changes_with_seed() -> None:
    plan = build_plan("cifar_alignment", "xattn_ft", "full", seed=0)
    recipe = plan.training
    assert (recipe.learning_rate, recipe.weight_decay, recipe.batch_size, recipe.max_steps) == (1e-6, 0.01, 4, 400)
    assert recipe.betas == (0.9, 0.999) and recipe.mixed_precision == "fp16"
    assert plan.model_source == "runwayml/stable-diffusion-v1-5"
    assert plan.plan_hash == build_plan("cifar_alignment", "xattn_ft", "full", seed=0).plan_hash
    assert plan.plan_hash != build_plan("cifar_alignment", "xattn_ft", "full", seed=1).plan_hash


def test_task_and_method_accept_yaml_paths() -> None:
    plan = build_plan(str(TASK_FILE), str(PROJECT_ROOT / "baselines" / "frozen.yaml"), "tiny")
    assert plan.task.name == "cifar_alignment" and plan.method.name == "frozen"
