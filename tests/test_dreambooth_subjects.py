"""dreambooth_subjects on tiny: data layout, what each method trains, TI round trip, runs in DuckDB,
and exact parameter counts on the real SD 2.1-base architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness import data
from harness.analysis.leaderboard import latest_runs
from harness.errors import DataMissingError
from harness.metrics import ALL, choose_headline, neutral_prompt
from harness.paths import PROJECT_ROOT
from harness.plan import build_plan
from harness.records import Aggregate
from harness.runner import run
from harness.store import Store

TASK = "dreambooth_subjects"
METHODS = ("frozen", "textual_inversion", "dreambooth", "dreambooth_lora", "ti_then_ft")
SD21_UNET_PARAMS = 865_910_724  # stabilityai/stable-diffusion-2-1-base unet/config.json on the meta device


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    after = module.state_dict()
    return before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def _execution(plan, tmp_path: Path):
    """The runner's execution of one run, before its first subject is fitted (public entry points only)."""
    from harness import models
    from harness.runner import Execution, StageTimer

    unit = data.units(plan)[0]
    return Execution(plan, models.load(plan), tmp_path, StageTimer(), None, None), unit


# --- data ------------------------------------------------------------------------------------------


def test_synthetic_stand_in_has_the_real_layout_and_references_per_subject() -> None:
    plan = build_plan(TASK, "frozen", "tiny")
    root = data.dreambooth_root(plan)
    from harness.data import dreambooth

    assert (root / "prompts_and_classes.txt").is_file() and root.name == "dataset"
    assert dreambooth.read_classes(root) == {"red_star_toy": "toy", "striped_vase": "vase", "spotted_dog": "dog"}
    views = [len(dreambooth.image_files(root, name)) for name in dreambooth.SYNTHETIC_SUBJECTS]
    assert views == [5, 5, 5] and all(p.suffix == ".jpg" for p in dreambooth.image_files(root, "spotted_dog"))
    references = data.load_references(plan)
    assert references.groups == ["red_star_toy"] * 5 + ["spotted_dog"] * 5
    assert all(image.shape == (32, 32, 3) and image.dtype == np.uint8 for image in references.images)
    # distinct subjects look different: mean colour differs clearly between the two
    means = [np.mean(references.images[i], axis=(0, 1)) for i in (0, 5)]
    assert np.abs(means[0] - means[1]).max() > 10


def test_reader_parses_the_real_file_format(tmp_path: Path) -> None:
    from harness.data import dreambooth

    root = tmp_path / "dreambooth" / "dataset"
    (root / "dog6").mkdir(parents=True)
    (root / "prompts_and_classes.txt").write_text(
        "Classes\n\nsubject_name,class\nbackpack,backpack\nbear_plushie,stuffed animal\ndog6,dog\n\nPrompts\n\n"
        "Object Prompts\n\nprompt_list = [\n'a {0} {1} in the jungle'.format(unique_token, class_token),\n]\n")
    assert dreambooth.read_classes(root) == {"backpack": "backpack", "bear_plushie": "stuffed animal", "dog6": "dog"}
    assert dreambooth.find_root(str(tmp_path)) == root
    from PIL import Image

    Image.new("RGB", (40, 60), (200, 10, 10)).save(root / "dog6" / "00.jpg")
    photos = dreambooth.read_subject(root, "dog6", 16, "bicubic")
    assert len(photos) == 1 and photos[0].shape == (16, 16, 3)


def test_missing_or_mismatched_subjects_fail_with_one_line(tmp_path: Path, monkeypatch) -> None:
    from harness.data import dreambooth
    from harness.specs_data import SubjectSpec

    monkeypatch.delenv("BENCH_DATA", raising=False)
    with pytest.raises(DataMissingError, match="--data-root"):
        dreambooth.find_root(None)
    root = dreambooth.write_synthetic(tmp_path, views=4, size=16)
    with pytest.raises(DataMissingError, match="'spotted_dog' has class 'dog', the task says 'cat'"):
        dreambooth.check_subjects(root, [SubjectSpec(name="spotted_dog", class_noun="cat")])
    with pytest.raises(DataMissingError, match="'dog6' of the task is not listed"):
        dreambooth.check_subjects(root, [SubjectSpec(name="dog6", class_noun="dog")])
    for path in dreambooth.image_files(root, "striped_vase"):
        path.unlink()
    with pytest.raises(DataMissingError, match="no .jpg"):
        dreambooth.check_subjects(root, [SubjectSpec(name="striped_vase", class_noun="vase")])


def test_prompts_use_the_method_identifier_and_the_right_list() -> None:
    from harness.prompts import expand_prompts
    from harness.registry import get_task

    task = get_task(TASK)
    prompts = expand_prompts(task, {"dog6": "<rare>"})
    assert len(prompts) == 30 * 26 and sum(p.samples for p in prompts) == 30 * (25 * 4 + 64)
    by_id = {p.prompt_id: p for p in prompts}
    assert by_id["diverse.dog6.p10"].text == "a <rare> dog wearing a red hat"  # live-subject list
    assert by_id["diverse.backpack.p10"].text == "a sks backpack with a wheat field in the background"
    assert by_id["simple.bear_plushie.p00"].text == "a photo of sks stuffed animal"
    assert {p.group for p in prompts} == {s.name for s in task.data.subjects}
    assert neutral_prompt("a <rare> dog wearing a red hat", "<rare>") == "a dog wearing a red hat"


# --- what each method changes ----------------------------------------------------------------------


def test_textual_inversion_changes_only_its_row_and_round_trips(tmp_path: Path) -> None:
    from harness.models import sd21
    from harness.prompts import EvalPrompt
    from harness.sampling import build_pipeline, generate

    plan = build_plan(TASK, "textual_inversion", "tiny")
    execution, unit = _execution(plan, tmp_path)
    bundle = execution.bundle
    unet, vae = _state(bundle.unet), _state(bundle.vae)
    others = {k: v for k, v in _state(bundle.text_encoder).items() if "token_embedding" not in k}
    execution.fit_unit(unit)
    folder = tmp_path / "subjects" / unit.name
    new_id = bundle.tokenizer.convert_tokens_to_ids("<sks>")
    weight = bundle.text_encoder.get_input_embeddings().weight.detach()
    base = sd21.build_tiny().text_encoder.get_input_embeddings().weight.detach()
    assert weight.shape[0] == base.shape[0] + 1 == new_id + 1
    assert torch.equal(weight[:new_id], base)  # every old row bit-identical
    class_ids = bundle.tokenizer.encode("toy", add_special_tokens=False)
    assert not torch.equal(weight[new_id], base[class_ids].mean(0))  # the new row moved from its init
    assert _same(unet, bundle.unet) and _same(vae, bundle.vae)
    assert all(torch.equal(v, bundle.text_encoder.state_dict()[k]) for k, v in others.items())
    # round trip: a fresh base + load_textual_inversion gives byte-identical samples
    prompts = [EvalPrompt("rt", "rt.a", "a photo of <sks> toy", "red_star_toy", 2)]
    memory = generate(plan, bundle, prompts, tmp_path / "memory")
    fresh = sd21.build_tiny()
    build_pipeline(fresh, "ddim").load_textual_inversion(str(folder / "learned_embeds.safetensors"))
    loaded = generate(plan, fresh, prompts, tmp_path / "loaded")
    pngs = [((tmp_path / "memory" / a.file).read_bytes(), (tmp_path / "loaded" / b.file).read_bytes())
            for a, b in zip(memory, loaded, strict=True)]
    assert len(pngs) == 2 and all(x == y for x, y in pngs)


def test_dreambooth_changes_only_the_unet_and_charges_class_images(tmp_path: Path) -> None:
    plan = build_plan(TASK, "dreambooth", "tiny")
    execution, unit = _execution(plan, tmp_path)
    bundle = execution.bundle
    unet, vae, text = _state(bundle.unet), _state(bundle.vae), _state(bundle.text_encoder)
    vocab = len(bundle.tokenizer)
    execution.fit_unit(unit)
    [report], details = execution.reports, execution.units[unit.name]
    after = bundle.unet.state_dict()
    assert all(not torch.equal(unet[k], after[k]) for k, _ in bundle.unet.named_parameters())
    assert _same(vae, bundle.vae) and _same(text, bundle.text_encoder) and len(bundle.tokenizer) == vocab
    assert details["class_images"] == 2 and details["class_prompt"] == "a photo of a toy"
    assert len(list(Path(details["class_image_folder"]).glob("samples/*.png"))) == 2
    # class-image generation happened before training, on the same meter
    assert report.seconds >= details["class_image_seconds"] > 0
    assert report.samples_seen == 2 * report.steps * plan.training.batch_size  # instance + class halves
    from diffusers import UNet2DConditionModel

    folder = tmp_path / "subjects" / unit.name / "unet"
    reloaded = UNet2DConditionModel.from_pretrained(str(folder), variant="fp16").state_dict()
    assert all(torch.equal(reloaded[k].half(), v.half()) for k, v in after.items())


def test_dreambooth_lora_changes_only_lora_weights(tmp_path: Path) -> None:
    plan = build_plan(TASK, "dreambooth_lora", "tiny")
    execution, unit = _execution(plan, tmp_path)
    bundle = execution.bundle
    unet, text = _state(bundle.unet), _state(bundle.text_encoder)
    execution.fit_unit(unit)
    after = bundle.unet.state_dict()
    lora = [k for k in after if "lora_" in k]
    base = {k.replace(".base_layer", ""): v for k, v in after.items() if "lora_" not in k}
    assert lora and base.keys() == unet.keys()
    assert all(torch.equal(unet[k], base[k]) for k in unet)  # every original weight untouched
    assert any(not torch.equal(after[k], torch.zeros_like(after[k])) for k in lora if "lora_B" in k)
    assert _same(text, bundle.text_encoder)
    assert (tmp_path / "subjects" / unit.name / "pytorch_lora_weights.safetensors").is_file()


def test_ti_then_ft_stages_touch_only_their_part(tmp_path: Path, monkeypatch) -> None:
    from harness import training

    plan = build_plan(TASK, "ti_then_ft", "tiny")
    execution, unit = _execution(plan, tmp_path)
    bundle = execution.bundle
    snapshots = []
    real_train = training.train

    def spy(*args, **kwargs):
        snapshots.append((_state(bundle.unet), _state(bundle.text_encoder)))
        report = real_train(*args, **kwargs)
        snapshots.append((_state(bundle.unet), _state(bundle.text_encoder)))
        return report

    monkeypatch.setattr(training, "train", spy)
    execution.fit_unit(unit)
    first, second = execution.reports
    sampled = sorted({r.checkpoint for r in execution.records})
    (unet0, text0), (unet1, text1), (unet2, text2), (unet3, text3) = snapshots
    token_id = bundle.tokenizer.convert_tokens_to_ids("<rare>")
    key = next(k for k in text0 if k.endswith("token_embedding.weight"))
    assert all(torch.equal(unet0[k], unet1[k]) for k in unet0)  # stage 1: UNet untouched
    assert not torch.equal(text0[key][token_id], text1[key][token_id])  # ... and the token learned
    assert torch.equal(text0[key][:token_id], text1[key][:token_id])
    assert all(torch.equal(text2[k], text3[k]) for k in text2)  # stage 2: text encoder + token untouched
    assert any(not torch.equal(unet2[k], unet3[k]) for k in unet2)
    assert (first.steps, second.steps - first.steps) == (2, 4) and sampled == [2, 4]
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "subjects" / unit.name / "learned_embeds.safetensors"))["<rare>"]
    assert torch.equal(saved[0], text3[key][token_id])


def test_headline_rule_picks_final_or_best() -> None:
    def agg(step: int, value: float, higher: bool = True) -> Aggregate:
        return Aggregate("m", "simple", ALL, value, 4, {"higher_is_better": higher}, checkpoint=step)

    rows = [agg(200, 0.7), agg(400, 0.9), agg(600, 0.8)]
    assert choose_headline({"rule": "final"}, rows) == 600
    assert choose_headline({"rule": "best", "metric": "m", "prompt_set": "simple"}, rows) == 400
    lower = [agg(200, 0.7, False), agg(400, 0.9, False)]
    assert choose_headline({"rule": "best", "metric": "m", "prompt_set": "simple"}, lower) == 200
    with pytest.raises(ValueError, match="no overall 'x'"):
        choose_headline({"rule": "best", "metric": "x", "prompt_set": "simple"}, rows)


# --- end to end ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def subject_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("subject_runs")
    store = Store(root / "bench.duckdb")
    outcomes = {m: run(build_plan(TASK, m, "tiny"), store, root / "runs") for m in METHODS}
    return {"store": store, "outcomes": outcomes}


def test_every_method_completes_with_per_subject_and_overall_rows(subject_runs: dict) -> None:
    store = subject_runs["store"]
    for method, outcome in subject_runs["outcomes"].items():
        assert outcome.status == "completed", (method, outcome.error)
        expected = {("diverse", "red_star_toy"): 3, ("diverse", "spotted_dog"): 3, ("diverse", ALL): 6,
                    ("simple", "red_star_toy"): 2, ("simple", "spotted_dog"): 2, ("simple", ALL): 4}
        for metric in ("clip_t", "clip_i", "dino"):
            headline = [a for a in store.aggregates(outcome.run_id) if a["checkpoint"] is None
                        and a["metric"] == metric and a["prompt_set"] in ("diverse", "simple")]
            assert {(a["prompt_set"], a["grp"]): a["n"] for a in headline} == expected, (method, metric)
            assert all(-1.0 <= a["value"] <= 1.0 for a in headline)
        samples = [s for s in store.samples(outcome.run_id) if s["checkpoint"] is None]
        assert len(samples) == 10 and {s["grp"] for s in samples} == {"red_star_toy", "spotted_dog"}
    board = {r["method"]: r for r in latest_runs(store, TASK)}
    assert set(board) == set(METHODS)
    assert all(m["checkpoint"] is None for r in board.values() for m in r["metrics"])


def test_run_records_identifiers_budgets_and_class_images(subject_runs: dict) -> None:
    runs = {r["method"]: r for r in subject_runs["store"].runs(TASK)}
    assert runs["frozen"]["steps"] == 0 and runs["frozen"]["details"]["subjects"]["spotted_dog"]["stages"] == []
    ti = runs["textual_inversion"]
    assert ti["trainable_params"] == 32 and ti["steps"] == 2 * 3  # one 32-wide row; 3 steps x 2 subjects
    assert {s["identifier"] for s in ti["details"]["subjects"].values()} == {"<sks>"}
    prompts = {s["prompt"] for s in subject_runs["store"].samples(ti["run_id"])}
    assert "a photo of <sks> dog" in prompts
    db = runs["dreambooth"]["details"]["subjects"]
    assert db["red_star_toy"]["class_images"] == 2 and not db["red_star_toy"]["class_images_reused"]
    assert db["spotted_dog"]["class_prompt"] == "a photo of a dog"
    assert all(s["budget_seconds"] >= s["class_image_seconds"] for s in db.values())


def _tensor_bytes(path: Path) -> int:
    """Size of a safetensors file without its 8-byte length prefix and JSON header."""
    with path.open("rb") as handle:
        header = int.from_bytes(handle.read(8), "little")
    return path.stat().st_size - 8 - header


def test_accounted_adapter_sizes_match_the_saved_files(subject_runs: dict) -> None:
    from harness.accounting import count_task_methods

    accounts = {a.method: a for a in count_task_methods([build_plan(TASK, m, "tiny") for m in METHODS])}
    runs = {r["method"]: r for r in subject_runs["store"].runs(TASK)}
    assert accounts["frozen"].adapter_bytes is None
    for method in METHODS[1:]:
        subject = runs[method]["details"]["subjects"]["spotted_dog"]
        files = [Path(subject[key]) for key in ("adapter_file", "token_file") if subject.get(key)]
        assert files and accounts[method].adapter_bytes == sum(_tensor_bytes(f) for f in files), method


def test_ti_then_ft_scores_every_checkpoint_and_records_the_headline(subject_runs: dict) -> None:
    store = subject_runs["store"]
    run_id = subject_runs["outcomes"]["ti_then_ft"].run_id
    [row] = [r for r in store.runs(TASK) if r["run_id"] == run_id]
    assert row["details"]["headline"] == {"rule": {"rule": "final"}, "checkpoint": 4, "checkpoints": [2, 4]}
    overall = {(a["checkpoint"], a["prompt_set"]): a for a in store.aggregates(run_id, group=ALL)
               if a["metric"] == "clip_t"}
    assert set(overall) == {(c, s) for c in (2, 4, None) for s in ("diverse", "simple")}
    for prompt_set in ("diverse", "simple"):
        assert overall[(None, prompt_set)]["value"] == overall[(4, prompt_set)]["value"]
        assert overall[(None, prompt_set)]["card"]["headline_checkpoint"] == 4
    files = {s["checkpoint"]: s["file"] for s in store.samples(run_id)}
    assert files[2].startswith("checkpoints/step_00002/") and files[None].startswith("checkpoints/step_00004/")
    scores = [s for s in store.sample_scores(run_id) if s["metric"] == "clip_t"]
    assert {s["checkpoint"] for s in scores} == {2, 4, None} and len(scores) == 3 * 10


@pytest.mark.parametrize(("method", "expected"), [
    ("frozen", 0), ("textual_inversion", 1024), ("dreambooth", SD21_UNET_PARAMS),
    ("dreambooth_lora", 829_952), ("ti_then_ft", SD21_UNET_PARAMS + 1024)])
def test_describe_full_counts_on_the_real_sd21(method: str, expected: int) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    result = CliRunner().invoke(app, ["describe", "--profile", "full", "--task", TASK, "--method", method])
    assert result.exit_code == 0, result.output
    assert f"trainable parameters: {expected:,} on the real sd21" in result.output
    assert "1,289,952,427 params" in result.output


# --- model family and refusals ---------------------------------------------------------------------


def test_sd21_meta_is_the_real_architecture_and_tiny_uses_the_same_classes() -> None:
    from harness import models
    from harness.models import sd21

    meta = models.build_meta("sd21")
    unet, text = meta["unet"].config, meta["text_encoder"].config
    assert (unet.cross_attention_dim, list(unet.attention_head_dim), unet.use_linear_projection) == \
        (1024, [5, 10, 20, 20], True)
    assert (text.hidden_size, text.num_hidden_layers, text.hidden_act) == (1024, 23, "gelu")
    tiny = sd21.build_tiny()
    assert [type(m) for m in (tiny.unet, tiny.vae, tiny.text_encoder)] == [type(m) for m in meta.values()]
    assert tiny.unet.config.use_linear_projection and tiny.noise_scheduler.config.prediction_type == "epsilon"
    assert tiny.tokenizer.pad_token == "!" and tiny.tokenizer.pad_token_id == 0  # as SD 2.x's tokenizer


def test_full_profile_without_weights_says_what_to_fetch(tmp_path: Path) -> None:
    from harness import models
    from harness.errors import WeightsMissingError

    with pytest.raises(WeightsMissingError, match=r"stable-diffusion-2-1-base.*--profile tiny"):
        models.load(build_plan(TASK, "frozen", "full"))


def test_subject_methods_refuse_tasks_without_subjects(tmp_path: Path) -> None:
    from harness.specs import SpecError

    store = Store(tmp_path / "bench.duckdb")
    with pytest.raises(SpecError, match="trains one subject at a time"):
        run(build_plan("cifar_alignment", "textual_inversion", "tiny"), store, tmp_path / "runs")
    assert not (tmp_path / "bench.duckdb").exists()


def test_subject_spec_errors_name_the_field(tmp_path: Path) -> None:
    import yaml

    from harness.specs import SpecError, load_task

    source = yaml.safe_load((PROJECT_ROOT / "tasks" / f"{TASK}.yaml").read_text())
    broken = yaml.safe_load(yaml.safe_dump(source))
    broken["evaluation"]["prompt_sets"][1]["templates"] = ["a photo of {0}"]
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(SpecError, match=r"field 'evaluation.prompt_sets.1': .*'\{1\}' \(class noun\)"):
        load_task(tmp_path / "a.yaml")
    broken = yaml.safe_load(yaml.safe_dump(source))
    del broken["data"]["subjects"]
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(SpecError, match=r"field 'data.dreambooth.subjects': Field required"):
        load_task(tmp_path / "b.yaml")


def test_checkpoint_sample_equals_final_sample_without_training_between(tmp_path: Path) -> None:
    """A checkpoint sampled while accelerate's training autocast (bf16) wraps the UNet gives the same images as
    the final sample of the same weights: checkpoint samples use the sampling dtype, not the training one."""
    from accelerate import Accelerator

    from harness.prompts import plan_prompts
    from harness.sampling import generate

    plan = build_plan("dreambooth_subjects", "ti_then_ft", "tiny")
    execution, _ = _execution(plan, tmp_path)
    prompts = [p for p in plan_prompts(plan) if p.prompt_set == "simple"][:1]
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # accelerate keeps one precision per process
    try:
        accelerator = Accelerator(mixed_precision="bf16", cpu=True)
        unet = accelerator.prepare(execution.bundle.unet)
        assert "_original_forward" in unet.__dict__  # the training autocast wrapper is on
        wrapped = generate(plan, execution.bundle, prompts, tmp_path / "wrapped")  # what checkpoints used to get
        checkpoint = execution._sample(prompts, 2, None)
        assert "_original_forward" in unet.__dict__  # still training: the wrapper is back after sampling
        accelerator.unwrap_model(unet, keep_fp32_wrapper=False)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    final = execution._sample(prompts, None, None)
    assert [r.file for r in checkpoint] == [f"checkpoints/step_00002/{r.file}" for r in final]
    same = [(tmp_path / c.file).read_bytes() == (tmp_path / f.file).read_bytes()
            for c, f in zip(checkpoint, final, strict=True)]
    assert all(same)
    differs = [(tmp_path / "wrapped" / w.file).read_bytes() != (tmp_path / f.file).read_bytes()
               for w, f in zip(wrapped, final, strict=True)]
    assert any(differs)  # bf16 autocast does change the images: the equality above is not vacuous
