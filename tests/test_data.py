"""CIFAR-10 adapter: real pickle layout, synthetic stand-in, subset by seed, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from harness import data
from harness.data import cifar10
from harness.errors import DataMissingError
from harness.plan import build_plan


def test_synthetic_is_read_by_the_real_reader(tmp_path) -> None:
    folder = cifar10.write_synthetic(tmp_path, per_class=6)
    arrays = cifar10.read_train(cifar10.find_root(str(tmp_path)))
    assert folder.name == "cifar-10-batches-py"
    assert arrays.images.shape == (60, 32, 32, 3) and arrays.images.dtype == np.uint8
    assert arrays.class_names == cifar10.CLASS_NAMES
    assert np.bincount(arrays.labels).tolist() == [6] * 10


def test_synthetic_images_depend_on_class(tmp_path) -> None:
    cifar10.write_synthetic(tmp_path, per_class=8)
    arrays = cifar10.read_train(cifar10.find_root(str(tmp_path)))
    means = np.stack([arrays.images[arrays.labels == c].reshape(-1, 3).mean(0) for c in range(10)])
    spread_between = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(10, 1)].min()
    assert spread_between > 10  # every pair of classes differs in mean colour
    assert arrays.images.std() > 30  # drawn structure, not flat


def test_missing_cifar_names_what_to_do(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("BENCH_DATA", raising=False)
    with pytest.raises(DataMissingError, match="--data-root"):
        cifar10.find_root(None)
    with pytest.raises(DataMissingError, match="data_batch_1"):
        cifar10.find_root(str(tmp_path))


def test_subset_caption_and_pixels() -> None:
    plan = build_plan("cifar_alignment", "xattn_ft", "tiny", seed=3)
    dataset = data.training_set(plan)
    assert len(dataset) == 64
    item = dataset[0]
    assert item["pixel_values"].shape == (3, 32, 32)
    assert -1.0 <= float(item["pixel_values"].min()) and float(item["pixel_values"].max()) <= 1.0
    assert item["group"] in item["caption"]
    assert any(item["caption"] == t.format(c=item["group"]) for t in plan.task.data.templates)
    again = data.training_set(build_plan("cifar_alignment", "xattn_ft", "tiny", seed=3))
    other = data.training_set(build_plan("cifar_alignment", "xattn_ft", "tiny", seed=4))
    assert again.captions == dataset.captions and other.captions != dataset.captions


def test_full_profile_upsamples_to_256_bilinear(tmp_path) -> None:
    cifar10.write_synthetic(tmp_path, per_class=2)
    plan = build_plan("cifar_alignment", "xattn_ft", "full", data_root=tmp_path)
    dataset = data.training_set(plan)
    assert len(dataset) == 20  # subset capped by what exists
    assert dataset[0]["pixel_values"].shape == (3, 256, 256)
