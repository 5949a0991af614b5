"""Dataset adapters: ``units(plan)`` gives what a run trains (the training set, or one unit per subject) and
``load_references(plan)`` the real images metrics compare against. Real files whenever a data root is given
(``--data-root`` / ``$BENCH_DATA``, any profile) and always on ``full``; the synthetic stand-in on ``tiny``
without a data root. ``bind(plan)`` resolves what the data decides (the data root, the DreamBooth subjects
and prompt lists of the real dataset) and the fingerprint of the data the run reads, before the runner
looks for a completed run with the same plan hash."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.data import microworld
from harness.data.datasets import CaptionedImages, ReferenceSet, TrainingUnit
from harness.data.files import data_base, uses_real_data
from harness.errors import DataMissingError
from harness.paths import cache_dir
from harness.plan import RunPlan

__all__ = ["CaptionedImages", "ReferenceSet", "TrainingUnit", "units", "training_set", "load_references", "bind",
           "fingerprint"]


def _cifar_root(plan: RunPlan) -> Any:
    """The CIFAR-10 folder: the real one under the data root (any profile), else the synthetic stand-in on
    ``tiny`` (written once)."""
    from harness.data import cifar10

    spec = plan.task.data
    if not uses_real_data(plan):
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
    name = f"cifar10-train-{'real' if uses_real_data(plan) else 'synthetic'}-{size}"
    groups = [arrays.class_names[arrays.labels[i]] for i in chosen]
    return ReferenceSet(name, [arrays.images[i] for i in chosen], groups)


def dreambooth_root(plan: RunPlan) -> Any:
    """The DreamBooth dataset folder: real under the data root (any profile), else synthetic on ``tiny``."""
    from harness.data import dreambooth

    spec = plan.task.data
    if not uses_real_data(plan):
        folder = cache_dir() / "synthetic" / f"dreambooth_v{spec.synthetic_views}"
        if not (folder / dreambooth.DATASET_FOLDER / dreambooth.CLASSES_FILE).is_file():
            dreambooth.write_synthetic(folder, spec.synthetic_views)
        root = dreambooth.find_root(str(folder))
    else:
        root = dreambooth.find_root(str(data_base(plan)) if data_base(plan) else None)
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


# --- what the data decides, and its identity ---------------------------------------------------------

def bind(plan: RunPlan) -> RunPlan:
    """The plan as the data makes it: the data root actually used (``$BENCH_DATA`` when no ``--data-root``),
    the real DreamBooth subjects and prompt lists when the real dataset is read (a reduced profile takes the
    first N of each in file order, N = the spec's count), and ``data_fingerprint``. The fingerprint is part of
    the plan hash, so a run on other data is never skipped as already done."""
    if _microworld(plan):
        return plan.model_copy(update={"data_fingerprint": fingerprint(plan)})
    base = data_base(plan)
    if base is not None and plan.data_root != str(base):
        plan = plan.model_copy(update={"data_root": str(base)})
    if plan.task.data.adapter == "dreambooth" and uses_real_data(plan):
        plan = plan.model_copy(update={"task": _real_dreambooth_task(plan)})
    return plan.model_copy(update={"data_fingerprint": fingerprint(plan)})


def _real_dreambooth_task(plan: RunPlan) -> Any:
    """The task with the dataset's subjects (tiny: the first N in file order; full: the spec's, checked against
    the file) and, for the prompt sets named in ``data.dataset_prompt_sets``, the dataset's prompt lists
    (the first N of each, N = the spec's count for this profile)."""
    from harness.data import dreambooth

    task, spec = plan.task, plan.task.data
    root = dreambooth.find_root(str(data_base(plan)))
    subjects = spec.subjects
    if plan.profile != "full":
        subjects = dreambooth.dataset_subjects(root, len(spec.subjects))
    object_prompts, live_prompts = dreambooth.read_prompts(root)
    sets = []
    for prompt_set in task.evaluation.prompt_sets:
        if prompt_set.name in spec.dataset_prompt_sets:
            if not object_prompts or not live_prompts:
                raise DataMissingError(f"{root / dreambooth.CLASSES_FILE}: no 'Object Prompts' / 'Live Subject "
                                       f"Prompts' prompt_list, which prompt set '{prompt_set.name}' reads")
            live_count = len(prompt_set.live_templates) or len(prompt_set.templates)
            prompt_set = prompt_set.model_copy(update={"templates": object_prompts[:len(prompt_set.templates)],
                                                       "live_templates": live_prompts[:live_count]})
        sets.append(prompt_set)
    return task.model_copy(update={"data": spec.model_copy(update={"subjects": list(subjects)}),
                                   "evaluation": task.evaluation.model_copy(update={"prompt_sets": sets})})


# Metrics that compare samples with the data's reference images (``ScoringContext.references``).
REFERENCE_METRICS = frozenset({"fid", "kid", "clip_i", "dino", "face_distance"})


def reads_data(plan: RunPlan) -> bool:
    """Whether the run reads its dataset at all: it trains, has subjects, prompts with dataset captions or
    scores against reference images. (The frozen base on CIFAR, scored by CLIP on template prompts, does not.)"""
    return (plan.trains or has_subjects(plan)
            or any(s.source == "dataset_captions" for s in plan.task.evaluation.prompt_sets)
            or any(m.name in REFERENCE_METRICS for m in plan.task.evaluation.metrics))


def fingerprint(plan: RunPlan) -> str:
    """Identity of the data the plan reads (``harness.data.files``): content hashes of the files used (real or
    the synthetic stand-in's), for the procedural microworld the hash of its data spec, ``none`` when the
    run reads no data."""
    from harness.data.files import check_image, files_fingerprint, spec_fingerprint

    adapter = plan.task.data.adapter
    if _microworld(plan):
        return spec_fingerprint(plan.task.data)
    if not reads_data(plan):
        return "none"
    if adapter == "cifar10":
        from harness.data import cifar10

        folder = _cifar_root(plan)
        return files_fingerprint(folder.parent, cifar10.files(folder), check=cifar10.check_file)
    if adapter == "dreambooth":
        from harness.data import dreambooth

        root = dreambooth_root(plan)
        photos = [p for subject in plan.task.data.subjects for p in dreambooth.image_files(root, subject.name)]
        for photo in photos:
            check_image(photo)
        return files_fingerprint(root, [root / dreambooth.CLASSES_FILE, *photos])
    if adapter in IMAGE_FOLDER_ADAPTERS:
        from harness.data.images import used_files

        folder, used = used_files(plan)
        return files_fingerprint(folder, used, check=lambda p: None if p.suffix == ".json" else check_image(p))
    raise ValueError(f"data adapter '{adapter}' has no fingerprint")
