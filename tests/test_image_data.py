"""Image-folder adapters: protocol filters, crops, splits and references, read from the synthetic
stand-ins through the same code as the real layouts; clear errors when real data is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import data
from harness.data import images
from harness.errors import DataMissingError
from harness.plan import build_plan
from harness.prompts import plan_prompts


def test_deepfashion_filter_split_and_train_crops() -> None:
    plan = build_plan("deepfashion", "lora_unet_r1", "tiny")
    spec = plan.task.data
    root = images.synthetic_root(plan) / images.DEEPFASHION
    captions = json.loads((root / "captions.json").read_text())
    assert len(captions) == spec.synthetic_images == 24
    train, test = images.deepfashion_split(plan)
    assert len(train) + len(test) == 21  # every 8th synthetic image is wider than 0.69 and dropped
    assert len(test) == round(21 * spec.test_fraction) and not {i.item_id for i in train} & {i.item_id for i in test}
    dataset = data.training_set(plan)
    item = dataset[0]
    assert tuple(item["pixel_values"].shape) == (3, *spec.train_crop)
    assert -1.0 <= float(item["pixel_values"].min()) and float(item["pixel_values"].max()) <= 1.0
    assert item["original_size"].tolist() == list(spec.synthetic_size)
    top, left = item["crop_top_left"].tolist()
    resized_width = round(spec.synthetic_size[1] * spec.train_resize_shorter / min(spec.synthetic_size))
    assert 0 <= left <= resized_width - spec.train_crop[1] and top >= 0
    assert item["caption"].startswith("The person is wearing a ")


def test_deepfashion_prompts_and_references_are_the_same_test_items() -> None:
    plan = build_plan("deepfashion", "frozen", "tiny")
    prompts = plan_prompts(plan)
    _, test = images.deepfashion_split(plan)
    assert [p.text for p in prompts] == [i.caption for i in test[:4]]
    refs = data.load_references(plan)
    assert len(refs.images) == 4 and refs.images[0].shape == (*plan.task.data.eval_crop, 3)
    assert refs.images[0].dtype == np.uint8 and refs.groups == [i.group for i in test[:4]]


def test_coco_filter_one_caption_per_image_and_eval_crop() -> None:
    plan = build_plan("coco_generalization", "frozen", "tiny")
    items = images.coco_items(plan)
    assert len(items) == 15  # every 6th synthetic image is portrait (width/height < 1.33) and dropped
    assert not any(i.caption.startswith("a picture of") for i in items)  # lowest annotation id wins
    refs = data.load_references(plan)
    assert [r.shape for r in refs.images] == [(24, 32, 3)] * 4


def test_person_folder_and_trigger_prompts() -> None:
    plan = build_plan("face_identity", "flux_lora", "tiny")
    dataset = data.training_set(plan)
    assert len(dataset) == 6 and dataset[0]["caption"] == "a photo of cr7man"
    assert tuple(dataset[0]["pixel_values"].shape) == (3, 32, 32)
    prompts = plan_prompts(plan)
    assert len(prompts) == 11 and all("cr7man" in p.text and "{t}" not in p.text for p in prompts)
    refs = data.load_references(plan)
    assert len(refs.images) == 6 and refs.images[0].shape == (32, 32, 3)


def test_garment_prefix_and_single_image() -> None:
    plan = build_plan("garment", "garment_lora", "tiny")
    dataset = data.training_set(plan)
    assert len(dataset) == 1 and "ukj sks" in dataset[0]["caption"]
    prefix = "A high-quality image of a professional photoshoot featuring "
    assert all(p.text.startswith(prefix) and "ukj sks" in p.text for p in plan_prompts(plan))


@pytest.mark.parametrize(("task", "where"), [("deepfashion", "deepfashion_multimodal/captions.json"),
                                             ("face_identity", "person"), ("garment", "garment/garment.jpg")])
def test_full_profile_without_data_says_where_to_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        task: str, where: str) -> None:
    monkeypatch.delenv("BENCH_DATA", raising=False)
    with pytest.raises(DataMissingError, match="--data-root DIR or set BENCH_DATA"):
        data.training_set(build_plan(task, "frozen", "full"))
    with pytest.raises(DataMissingError) as info:
        data.training_set(build_plan(task, "frozen", "full", data_root=tmp_path))
    message = str(info.value)
    assert str(tmp_path / where) in message and "--profile tiny needs no data" in message and "\n" not in message


def test_real_layout_is_read_from_data_root(tmp_path: Path) -> None:
    """The full profile reads a DeepFashion folder in the real layout (written here by the synthetic writer)."""
    tiny = build_plan("deepfashion", "frozen", "tiny")
    from harness.data import synthetic

    synthetic.write(tiny.task.data, tmp_path)
    full = build_plan("deepfashion", "frozen", "full", data_root=tmp_path)
    train, test = images.deepfashion_split(full)
    assert len(train) + len(test) == 21 and len(test) == 1  # 5% of 21, at least one
