"""Typed data specs of the image-folder adapters (DeepFashion-MultiModal, COCO captions, one person's
photos, one garment image) and of the DreamBooth subjects. ``harness.specs.DataSpec`` selects one of
them by its ``adapter`` field.

Sizes are (height, width) pairs in pixels, as the protocols state them ("crop 512 (h) x 360 (w)").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# Declared limits of spec fields (stated in the error when exceeded): pixels per side, counts of images.
MAX_PIXELS = 4096
MAX_IMAGES = 10_000_000
MAX_SEED = 2**32 - 1


def _not_bool(value: Any) -> Any:
    """YAML ``true`` is not a number: pydantic's lax mode would read it as 1."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


# Numbers that refuse booleans (``max_steps: true``); numeric strings such as PyYAML's ``1e-3`` stay accepted.
Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]
Pixels = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=MAX_PIXELS)]
Size = tuple[Pixels, Pixels]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _DataSpec(_Strict):
    synthetic_images: Int = Field(default=32, ge=1, le=100_000)  # tiny profile: images the synthetic stand-in writes
    synthetic_size: Size = (96, 64)  # (h, w) of the synthetic stand-in's images


class DeepFashionDataSpec(_DataSpec):
    """DeepFashion-MultiModal: ratio filter, train crop with flip, eval crop, deterministic split."""

    adapter: Literal["deepfashion_multimodal"]
    max_aspect_ratio: Float = Field(gt=0, allow_inf_nan=False)  # drop images whose width / height exceeds this
    train_resize_shorter: Int = Field(ge=8, le=MAX_PIXELS)
    train_crop: Size
    random_flip: bool = True
    eval_resize_shorter: Int = Field(ge=8, le=MAX_PIXELS)
    eval_crop: Size
    test_fraction: Float = Field(gt=0, lt=1)
    split_seed: Int = Field(default=0, ge=0, le=MAX_SEED)
    # cap on training images (None = the whole split)
    subset_size: Int | None = Field(default=None, ge=1, le=MAX_IMAGES)

    @model_validator(mode="after")
    def _crops_fit(self) -> DeepFashionDataSpec:
        for name, shorter, crop in (("train", self.train_resize_shorter, self.train_crop),
                                    ("eval", self.eval_resize_shorter, self.eval_crop)):
            if min(crop) > shorter:
                raise ValueError(f"{name}_crop {crop} is larger than {name}_resize_shorter {shorter} on both sides")
        return self


class CocoCaptionsDataSpec(_DataSpec):
    """COCO 2014 captions: ratio filter and eval crop; evaluation only (no training split used)."""

    adapter: Literal["coco_captions"]
    split: Literal["train2014", "val2014"] = "train2014"
    min_aspect_ratio: Float = Field(gt=0, allow_inf_nan=False)  # drop images whose width / height is below this
    eval_resize_shorter: Int = Field(ge=8, le=MAX_PIXELS)
    eval_crop: Size
    # which images (one caption each) are drawn, independent of the run seed
    sample_seed: Int = Field(default=0, ge=0, le=MAX_SEED)


class PersonFolderDataSpec(_DataSpec):
    """A folder of one person's photos, centre-cropped square; captions carry the trigger word."""

    adapter: Literal["person_folder"]
    folder: str = "person"  # under --data-root / $BENCH_DATA
    trigger: str = Field(pattern=r"^\S+$")
    caption_template: str  # must contain {t}
    resolution: Int = Field(ge=8, le=MAX_PIXELS)
    random_flip: bool = False

    @model_validator(mode="after")
    def _template_has_trigger(self) -> PersonFolderDataSpec:
        if "{t}" not in self.caption_template:
            raise ValueError(f"caption_template {self.caption_template!r} must contain '{{t}}'")
        return self


class SingleImageDataSpec(_DataSpec):
    """One image (a garment) with a fixed caption; resized on the shorter side and randomly cropped."""

    adapter: Literal["single_image"]
    image_file: str  # relative to --data-root / $BENCH_DATA
    caption: str
    train_resize_shorter: Int = Field(ge=8, le=MAX_PIXELS)
    train_crop: Size
    random_flip: bool = True


class SubjectSpec(_Strict):
    """One DreamBooth subject: its folder name, class noun, and which prompt list it takes."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    class_noun: str = Field(min_length=1)
    live: bool = False


def check_subject_template(template: str) -> None:
    """A subject prompt or caption template must have both slots: '{0}' identifier, '{1}' class noun."""
    if "{0}" not in template or "{1}" not in template:
        raise ValueError(f"template {template!r} must contain '{{0}}' (identifier) and '{{1}}' (class noun)")


class DreamboothDataSpec(_Strict):
    """DreamBooth-style subject images: one folder per subject, a class noun each (see harness.data.dreambooth)."""

    adapter: Literal["dreambooth"]
    resolution: Int = Field(ge=8, le=MAX_PIXELS)
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bicubic"
    identifier: str = Field(default="sks", min_length=1)
    instance_caption: str = "a photo of {0} {1}"
    subjects: list[SubjectSpec] = Field(min_length=1)
    synthetic_views: Int = Field(default=5, ge=1, le=1000)
    # Prompt sets whose templates / live_templates are the dataset's prompt lists: with the real dataset they
    # are read from prompts_and_classes.txt (the first N, N = the set's count); the YAML copy is the
    # synthetic stand-in's.
    dataset_prompt_sets: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _caption_has_slots(self) -> DreamboothDataSpec:
        check_subject_template(self.instance_caption)
        names = [s.name for s in self.subjects]
        if len(set(names)) != len(names):
            raise ValueError("subject names must be unique")
        return self


AttributeValue = str | Int


class WorldSetSpec(_Strict):
    """Images drawn from the microworld (``harness.micro.world``): ``count`` samples whose captioned
    attributes (shape, colour, background, texture, person) are ``fixed``, or drawn from the values listed
    under ``vary`` (every value of the world when an attribute is not listed)."""

    count: Int = Field(ge=1, le=20000)
    seed: Int = Field(default=0, ge=0, le=MAX_SEED)
    fixed: dict[str, AttributeValue] = Field(default_factory=dict)
    vary: dict[str, list[AttributeValue]] = Field(default_factory=dict)


class MicroSubjectSpec(SubjectSpec):
    """A microworld subject: one object (shape, colour, texture) seen in ``views`` renderings with its own
    size, position and rotation jitter on one background; ``class_noun`` is its shape."""

    colour: str
    texture: str = "plain"
    background: str = "gray"
    views: Int = Field(default=5, ge=1, le=64)
    seed: Int = Field(default=0, ge=0, le=MAX_SEED)


class MicroworldDataSpec(_Strict):
    """The procedural microworld as a dataset: a training set, the reference images metrics compare
    against, optional subjects (one training unit each) and class templates for prompts."""

    adapter: Literal["microworld"]
    resolution: Int = Field(default=32, ge=8, le=256)
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    train: WorldSetSpec | None = None  # None: evaluation-only task
    references: WorldSetSpec | None = None  # FID/KID targets, reference faces (subjects: their own views)
    identifier: str = Field(default="sks", min_length=1)
    instance_caption: str = "a {0} {1} on a gray background"
    subjects: list[MicroSubjectSpec] = Field(default_factory=list)
    classes: list[str] = Field(default_factory=list)  # ``class_templates`` prompt sets: one group per class
    templates: list[str] = Field(default_factory=list)  # with a '{c}' slot

    @model_validator(mode="after")
    def _consistent(self) -> MicroworldDataSpec:
        if self.subjects:
            check_subject_template(self.instance_caption)
            names = [s.name for s in self.subjects]
            if len(set(names)) != len(names):
                raise ValueError("subject names must be unique")
        for template in self.templates:
            if "{c}" not in template:
                raise ValueError(f"template {template!r} must contain '{{c}}'")
        return self
