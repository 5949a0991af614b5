"""Dataset adapters: ``units(plan)`` gives what a run trains (the training set, or one unit per subject) and
``load_references(plan)`` the real images metrics compare against; real files on ``full``, synthetic on ``tiny``."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.data import microworld
from harness.data.datasets import CaptionedImages, ReferenceSet, TrainingUnit
from harness.paths import cache_dir
from harness.plan import RunPlan

__all__ = ["CaptionedImages", "ReferenceSet", "TrainingUnit", "units", "training_set", "load_references"]


def _cifar_root(plan: RunPlan) -> Any:
    """The CIFAR-10 folder: the synthetic stand-in on ``tiny`` (written once), the real one on ``full``."""
    from harness.data import cifar10

    spec = plan.task.data
    if plan.profile == "tiny":
        folder = cache_dir() / "synthetic" / f"cifar10_pc{spec.synthetic_per_class}"
        if not (folder / cifar10.FOLDER / "batches.meta").is_file():
            cifar10.write_synthetic(folder, spec.synthetic_per_class)
        return cifar10.find_root(str(folder))
    return cifar10.find_root(plan.data_root)


def _cifar(plan: RunPlan) -> CaptionedImages:
    from harness.data import cifar10

    spec = plan.task.data
    arrays = cifar10.read_train(_cifar_root(plan))
    rng = np.random.default_rng(plan.seed)
    size = min(spec.subset_size, len(arrays.labels))
    chosen = np.sort(rng.choice(len(arrays.labels), size=size, replace=False))
    template_ids = rng.integers(0, len(spec.templates), size=size)
    groups = [arrays.class_names[arrays.labels[i]] for i in chosen]
    captions = [spec.templates[t].format(c=g) for t, g in zip(template_ids, groups, strict=True)]
    return CaptionedImages(arrays.images[chosen], captions, groups, spec.resolution, spec.interpolation)


IMAGE_FOLDER_ADAPTERS = ("deepfashion_multimodal", "coco_captions", "person_folder", "single_image")
REFERENCE_SEED = 0  # reference subsets are fixed per task, independent of the run seed


def _cifar_references(plan: RunPlan) -> ReferenceSet:
    """``subset_size`` CIFAR-10 training images (fixed seed) at their native 32x32, uint8."""
    from harness.data import cifar10

    spec = plan.task.data
    arrays = cifar10.read_train(_cifar_root(plan))
    size = min(spec.subset_size, len(arrays.labels))
    chosen = np.sort(np.random.default_rng(REFERENCE_SEED).choice(len(arrays.labels), size=size, replace=False))
    name = f"cifar10-train-{'synthetic' if plan.profile == 'tiny' else 'real'}-{size}"
    groups = [arrays.class_names[arrays.labels[i]] for i in chosen]
    return ReferenceSet(name, [arrays.images[i] for i in chosen], groups)


def dreambooth_root(plan: RunPlan) -> Any:
    """The DreamBooth dataset folder: real under ``--data-root`` on ``full``, synthetic on ``tiny``."""
    from harness.data import dreambooth

    spec = plan.task.data
    if plan.profile == "tiny":
        folder = cache_dir() / "synthetic" / f"dreambooth_v{spec.synthetic_views}"
        if not (folder / dreambooth.DATASET_FOLDER / dreambooth.CLASSES_FILE).is_file():
            dreambooth.write_synthetic(folder, spec.synthetic_views)
        root = dreambooth.find_root(str(folder))
    else:
        root = dreambooth.find_root(plan.data_root)
    dreambooth.check_subjects(root, spec.subjects)
    return root


def load_subjects(plan: RunPlan) -> dict[str, list[np.ndarray]]:
    """Every subject's photos (centre square crop at the task resolution), by subject name, in spec order."""
    from harness.data import dreambooth

    spec = plan.task.data
    root = dreambooth_root(plan)
    return {s.name: dreambooth.read_subject(root, s.name, spec.resolution, spec.interpolation) for s in spec.subjects}


def _microworld(plan: RunPlan) -> bool:
    return plan.task.data.adapter == "microworld"


def has_subjects(plan: RunPlan) -> bool:
    """True when the task trains and scores one subject at a time (its data lists subjects)."""
    return bool(getattr(plan.task.data, "subjects", None))


def units(plan: RunPlan) -> list[TrainingUnit]:
    """What the run fits, in order: one unit per subject when the task has subjects (their photos are read
    even for the frozen base, so that missing data fails before any model loads), else one unit ``all``
    holding the training set (the subset chosen by the run seed), or nothing when the run does not train."""
    if has_subjects(plan):
        photos = microworld.load_subjects(plan.task.data) if _microworld(plan) else load_subjects(plan)
        return [TrainingUnit(subject.name, subject=subject, photos=photos[subject.name])
                for subject in plan.task.data.subjects]
    return [TrainingUnit("all", dataset=training_set(plan) if plan.trains else None)]


def training_set(plan: RunPlan) -> CaptionedImages:
    """The plan's training images and captions (the subset chosen by the run seed)."""
    if _microworld(plan):
        return microworld.training_set(plan.task.data, plan.task.name)
    if plan.task.data.adapter == "cifar10":
        return _cifar(plan)
    if plan.task.data.adapter in IMAGE_FOLDER_ADAPTERS:
        from harness.data.images import load_training

        return load_training(plan)
    raise ValueError(f"data adapter '{plan.task.data.adapter}' has no captioned training set")


def load_references(plan: RunPlan) -> ReferenceSet:
    """Evaluation targets of the plan's data, preprocessed per protocol (FID targets, reference faces,
    subject photos); ``groups`` = class / person / subject name of each image."""
    if _microworld(plan):
        return microworld.references(plan.task.data, plan.task.name)
    if plan.task.data.adapter == "cifar10":
        return _cifar_references(plan)
    if plan.task.data.adapter in IMAGE_FOLDER_ADAPTERS:
        from harness.data.images import load_references as image_references

        return image_references(plan)
    if plan.task.data.adapter == "dreambooth":
        images, groups = [], []
        for subject, photos in load_subjects(plan).items():
            images.extend(photos)
            groups.extend([subject] * len(photos))
        return ReferenceSet(f"{plan.task.name}:{plan.profile}:subjects", images, groups)
    raise ValueError(f"data adapter '{plan.task.data.adapter}' provides no reference images")
