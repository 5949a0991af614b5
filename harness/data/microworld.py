"""The microworld as a data adapter: training sets, reference images and subjects drawn from the
procedural world (``harness.micro.world``) by seed. Nothing is read from disk and nothing depends on the
run seed: every method of a task sees the same images.

A set (``WorldSetSpec``) pins some captioned attributes (``fixed: {colour: purple}``) and draws the others
from the listed values (``vary: {shape: [circle, square]}``) or from every value of the world. Captions
are the world's own ("a purple circle on a gray background"). A subject is one object rendered in
``views`` poses on one background.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.data.datasets import CaptionedImages, ReferenceSet
from harness.specs import SpecError
from harness.specs_data import MicroSubjectSpec, MicroworldDataSpec, WorldSetSpec


def _check_values(where: str, values: dict[str, list[Any]]) -> None:
    from harness.micro import world

    for name, listed in values.items():
        if name not in world.CAPTIONED:
            raise SpecError(f"{where}: unknown attribute '{name}' (expected one of {', '.join(world.CAPTIONED)})")
        for value in listed:
            if value not in world.ATTRIBUTE_VALUES[name]:
                known = ", ".join(str(v) for v in world.ATTRIBUTE_VALUES[name])
                raise SpecError(f"{where}: {name} '{value}' is not a value of the world (expected one of {known})")


def draw(spec: WorldSetSpec, where: str) -> tuple[np.ndarray, list[str], list[dict[str, Any]]]:
    """``spec.count`` images (N x 32 x 32 x 3 uint8), their captions and attributes, deterministic in the seed."""
    from harness.micro import world

    _check_values(f"{where}.fixed", {k: [v] for k, v in spec.fixed.items()})
    _check_values(f"{where}.vary", spec.vary)
    rng = np.random.default_rng(spec.seed)
    images, captions, attrs = [], [], []
    for _ in range(spec.count):
        chosen = dict(spec.fixed)
        for name, values in spec.vary.items():
            if name not in chosen:
                chosen[name] = values[int(rng.integers(len(values)))]
        sample = world.sample_attributes(rng, **chosen)
        images.append(world.render(sample))
        captions.append(world.caption(sample))
        attrs.append(sample)
    return np.stack(images), captions, attrs


def subject_views(subject: MicroSubjectSpec, where: str) -> list[np.ndarray]:
    """The subject's ``views`` renderings (same object, its own pose jitter each)."""
    fixed = {"shape": subject.class_noun, "colour": subject.colour, "texture": subject.texture,
             "background": subject.background}
    images, _, _ = draw(WorldSetSpec(count=subject.views, seed=subject.seed, fixed=fixed), f"{where}.{subject.name}")
    return list(images)


def load_subjects(spec: MicroworldDataSpec) -> dict[str, list[np.ndarray]]:
    """Every subject's views by subject name, in spec order."""
    return {s.name: subject_views(s, "data.subjects") for s in spec.subjects}


def training_set(spec: MicroworldDataSpec, task: str) -> CaptionedImages:
    """The task's training images with their world captions."""
    if spec.train is None:
        raise SpecError(f"task '{task}': field 'data.train': the microworld task trains but declares no training set")
    images, captions, attrs = draw(spec.train, "data.train")
    groups = [str(a.get("shape")) for a in attrs]
    return CaptionedImages(images, captions, groups, spec.resolution, spec.interpolation)


def references(spec: MicroworldDataSpec, task: str) -> ReferenceSet:
    """What metrics compare samples against: the subjects' views (grouped by subject), else ``references``."""
    if spec.subjects:
        images, groups = [], []
        for name, views in load_subjects(spec).items():
            images += views
            groups += [name] * len(views)
        return ReferenceSet(f"{task}:microworld:subjects", images, groups)
    if spec.references is None:
        raise SpecError(f"task '{task}': field 'data.references': a metric needs reference images and the "
                        "microworld task declares none")
    images, _, attrs = draw(spec.references, "data.references")
    name = f"{task}:microworld:{spec.references.count}@{spec.references.seed}"
    return ReferenceSet(name, list(images), [str(a.get("shape")) for a in attrs])
