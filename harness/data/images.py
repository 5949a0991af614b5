"""Image-folder adapters: DeepFashion-MultiModal, COCO 2014 captions, one person's photos, one garment.

Real layouts under ``--data-root`` / ``$BENCH_DATA``, on every profile (without a data root the tiny
profile writes synthetic stand-ins in exactly these layouts under the bench cache and reads them through
the same functions). The data root may be the extracted dataset itself or the folder holding it:

- DeepFashion-MultiModal (github.com/yumingj/DeepFashion-MultiModal): ``images/<name>.jpg`` +
  ``captions.json`` (``{"<name>.jpg": "<caption>", ...}``), at the root or under ``deepfashion_multimodal/``
- COCO 2014 (train2014.zip + annotations_trainval2014.zip extracted side by side):
  ``train2014/COCO_train2014_<id>.jpg`` + ``annotations/captions_train2014.json``, at the root or under
  ``coco2014/``
- ``<folder>/*.jpg|*.png`` (one person's photos; ``data.folder``, default ``person``), or the photos at the root
- ``<image_file>`` (one garment image; ``data.image_file``), or a file of that name at the root

Every image is read upright (EXIF orientation applied); an unreadable file is one error line naming it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.files import data_base, open_rgb, read_json, upright_size
from harness.errors import DataMissingError
from harness.paths import cache_dir
from harness.plan import RunPlan

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
DEEPFASHION = "deepfashion_multimodal"
COCO = "coco2014"
DEEPFASHION_NAMES = (DEEPFASHION, "DeepFashion-MultiModal")
COCO_NAMES = (COCO, "coco")


@dataclass(frozen=True)
class ImageItem:
    """One image on disk with its caption; ``group`` aggregates results (garment category, subject...)."""

    item_id: str
    path: Path
    caption: str
    group: str


# --- geometry (shared by training and evaluation preprocessing) ----------------------------------

def resize_shorter(image: Any, shorter: int) -> Any:
    """PIL image resized (bicubic, antialiased) so that its shorter side is ``shorter``."""
    from PIL import Image

    width, height = image.size
    scale = shorter / min(width, height)
    size = (max(shorter, round(width * scale)), max(shorter, round(height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def centre_crop(image: Any, crop: tuple[int, int]) -> Any:
    """Centre crop to (height, width)."""
    height, width = crop
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def eval_array(path: Path, shorter: int, crop: tuple[int, int]) -> np.ndarray:
    """An evaluation target: upright, shorter side resized, centre crop, uint8 HxWx3."""
    return np.asarray(centre_crop(resize_shorter(open_rgb(path), shorter), crop), dtype=np.uint8)


class CroppedCaptions:
    """Training dataset: shorter side resized, random crop (h, w), optional flip; SDXL size conditioning kept.

    Items carry ``original_size`` (h, w before resizing) and ``crop_top_left`` (in the resized image),
    which SDXL turns into ``add_time_ids``; other families ignore them.
    """

    def __init__(self, items: list[ImageItem], shorter: int, crop: tuple[int, int], flip: bool, seed: int,
                 centre: bool = False) -> None:
        self.items, self.shorter, self.crop, self.flip, self.centre = items, shorter, crop, flip, centre
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch
        from PIL import Image

        item = self.items[index]
        image = open_rgb(item.path)
        original = (image.height, image.width)
        image = resize_shorter(image, self.shorter)
        height, width = self.crop
        if self.centre:
            top, left = (image.height - height) // 2, (image.width - width) // 2
        else:
            top = int(self.rng.integers(0, image.height - height + 1))
            left = int(self.rng.integers(0, image.width - width + 1))
        image = image.crop((left, top, left + width, top + height))
        if self.flip and self.rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
        return {"pixel_values": pixels.contiguous(), "caption": item.caption, "group": item.group,
                "original_size": torch.tensor(original), "crop_top_left": torch.tensor((top, left))}


# --- where the data lives ------------------------------------------------------------------------

def _base(plan: RunPlan, what: str, how: str) -> Path:
    """The data root (``--data-root`` / ``$BENCH_DATA``) on any profile; the synthetic stand-in on ``tiny``
    without one."""
    base = data_base(plan)
    if base is not None:
        return base
    if plan.profile == "tiny":
        return synthetic_root(plan)
    raise DataMissingError(f"{what} not configured: pass --data-root DIR or set BENCH_DATA ({how}); "
                           "--profile tiny needs no data")


def _dataset_folder(base: Path, names: tuple[str, ...], marker: str) -> Path:
    """The folder holding ``marker``: ``base`` itself (the extracted dataset) or ``base/<name>``; when none
    does, the conventional ``base/<names[0]>`` (the caller's error then names what is missing there)."""
    for folder in (base, *(base / name for name in names)):
        if (folder / marker).exists():
            return folder
    return base / names[0]


def synthetic_root(plan: RunPlan) -> Path:
    """The tiny profile's synthetic stand-in, written once per data spec into the bench cache."""
    from harness.data import synthetic

    spec = plan.task.data
    key = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:12]
    root = cache_dir() / "synthetic" / f"{spec.adapter}_{key}"
    if not (root / ".complete").is_file():
        synthetic.write(spec, root)
        (root / ".complete").write_text("ok")
    return root


def _require(path: Path, what: str, how: str) -> Path:
    if not path.exists():
        raise DataMissingError(f"{what} missing: {path} does not exist ({how}); --profile tiny needs no data")
    return path


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


# --- DeepFashion-MultiModal ----------------------------------------------------------------------

DF_HOW = ("download DeepFashion-MultiModal (github.com/yumingj/DeepFashion-MultiModal): images.zip and "
          f"captions.json into DIR/{DEEPFASHION}/images/ and DIR/{DEEPFASHION}/captions.json, or pass the "
          "extracted folder itself as --data-root")


def deepfashion_split(plan: RunPlan) -> tuple[list[ImageItem], list[ImageItem]]:
    """(train, test) items after the aspect-ratio filter; the split is fixed by ``split_seed``."""
    spec = plan.task.data
    folder = deepfashion_folder(plan)
    captions_file = _require(folder / "captions.json", "DeepFashion-MultiModal captions", DF_HOW)
    captions = read_json(captions_file, "DeepFashion-MultiModal captions")
    if not isinstance(captions, dict) or not all(isinstance(v, str) for v in captions.values()):
        raise DataMissingError(f"{captions_file}: not a JSON object of file name -> caption")
    images = _require(folder / "images", "DeepFashion-MultiModal images", DF_HOW)
    items = []
    for name in sorted(captions):
        path = images / name
        if not path.is_file():
            continue
        width, height = upright_size(path)  # reads the header only
        if width / height > spec.max_aspect_ratio:
            continue
        group = "-".join(name.split("-")[:2])  # e.g. WOMEN-Dresses
        items.append(ImageItem(Path(name).stem, path, captions[name], group))
    if not items:
        raise DataMissingError(f"{folder}: no captioned image passes the aspect-ratio filter "
                               f"(width/height <= {spec.max_aspect_ratio})")
    order = np.random.default_rng(spec.split_seed).permutation(len(items))
    n_test = max(1, round(len(items) * spec.test_fraction))
    test = [items[i] for i in sorted(order[:n_test])]
    train = [items[i] for i in sorted(order[n_test:])]
    return train[: spec.subset_size] if spec.subset_size else train, test


# --- COCO 2014 captions --------------------------------------------------------------------------

COCO_HOW = (f"download train2014.zip and annotations_trainval2014.zip from cocodataset.org into "
            f"DIR/{COCO}/train2014/ and DIR/{COCO}/annotations/, or pass the folder holding both as --data-root")


def deepfashion_folder(plan: RunPlan) -> Path:
    """The extracted DeepFashion-MultiModal folder (``captions.json`` + ``images/``)."""
    return _dataset_folder(_base(plan, "DeepFashion-MultiModal", DF_HOW), DEEPFASHION_NAMES, "captions.json")


def coco_folder(plan: RunPlan) -> Path:
    """The COCO 2014 folder holding ``annotations/`` and the image split folder."""
    marker = f"annotations/captions_{plan.task.data.split}.json"
    return _dataset_folder(_base(plan, "COCO 2014", COCO_HOW), COCO_NAMES, marker)


def coco_annotations(plan: RunPlan) -> Path:
    return coco_folder(plan) / "annotations" / f"captions_{plan.task.data.split}.json"


def coco_items(plan: RunPlan) -> list[ImageItem]:
    """Images passing the aspect filter, one caption each (lowest annotation id), in ``sample_seed`` order."""
    spec = plan.task.data
    folder = coco_folder(plan)
    annotations = _require(coco_annotations(plan), "COCO captions", COCO_HOW)
    data = read_json(annotations, "COCO captions")
    try:
        first_caption: dict[int, tuple[int, str]] = {}
        for row in data["annotations"]:
            best = first_caption.get(row["image_id"])
            if best is None or row["id"] < best[0]:
                first_caption[row["image_id"]] = (row["id"], row["caption"].strip())
        images = sorted((row for row in data["images"] if row["id"] in first_caption
                         and row["width"] / row["height"] >= spec.min_aspect_ratio), key=lambda row: row["id"])
        images = [{"id": row["id"], "file_name": str(row["file_name"])} for row in images]
    except (KeyError, TypeError, AttributeError, ZeroDivisionError) as exc:
        raise DataMissingError(f"{annotations}: not COCO captions JSON ({type(exc).__name__}: {exc}; expected "
                               "'images' with id/file_name/width/height and 'annotations' with "
                               "id/image_id/caption)") from None
    order = np.random.default_rng(spec.sample_seed).permutation(len(images))
    return [ImageItem(str(images[i]["id"]), folder / spec.split / images[i]["file_name"],
                      first_caption[images[i]["id"]][1], "all") for i in order]


# --- one person, one garment ---------------------------------------------------------------------

def person_items(plan: RunPlan) -> list[ImageItem]:
    spec = plan.task.data
    how = f"put one person's photos (jpg/png) into DIR/{spec.folder}/"
    base = _base(plan, "person photos", how)
    folder = base / spec.folder
    if not folder.is_dir() and base.is_dir() and _images_in(base):
        folder = base  # --data-root is the folder of photos itself
    folder = _require(folder, "person photos", how)
    paths = _images_in(folder)
    if not paths:
        raise DataMissingError(f"{folder}: no jpg/png images of the person ({how})")
    caption = spec.caption_template.format(t=spec.trigger)
    return [ImageItem(p.stem, p, caption, spec.trigger) for p in paths]


def garment_item(plan: RunPlan) -> ImageItem:
    spec = plan.task.data
    how = f"put the garment photo at DIR/{spec.image_file}"
    base = _base(plan, "garment image", how)
    path = base / spec.image_file
    if not path.exists() and (base / Path(spec.image_file).name).is_file():
        path = base / Path(spec.image_file).name  # --data-root is the garment's own folder
    path = _require(path, "garment image", how)
    return ImageItem(path.stem, path, spec.caption, "garment")


# --- what the runner and the metrics ask for -----------------------------------------------------

def load_training(plan: RunPlan) -> CroppedCaptions:
    """The training set of an image-folder adapter."""
    spec = plan.task.data
    if spec.adapter == "deepfashion_multimodal":
        train, _ = deepfashion_split(plan)
        return CroppedCaptions(train, spec.train_resize_shorter, spec.train_crop, spec.random_flip, plan.seed)
    if spec.adapter == "person_folder":
        crop = (spec.resolution, spec.resolution)
        return CroppedCaptions(person_items(plan), spec.resolution, crop, spec.random_flip, plan.seed, centre=True)
    if spec.adapter == "single_image":
        return CroppedCaptions([garment_item(plan)], spec.train_resize_shorter, spec.train_crop, spec.random_flip,
                               plan.seed)
    raise DataMissingError(f"task '{plan.task.name}': adapter '{spec.adapter}' has no training split "
                           "(evaluation-only data)")


def eval_items(plan: RunPlan, limit: int) -> list[ImageItem]:
    """The first ``limit`` evaluation items (caption + target image): test split, or the drawn COCO images."""
    spec = plan.task.data
    if spec.adapter == "deepfashion_multimodal":
        return deepfashion_split(plan)[1][:limit]
    if spec.adapter == "coco_captions":
        return coco_items(plan)[:limit]
    raise ValueError(f"adapter '{spec.adapter}' has no caption set for 'dataset_captions' prompts")


def load_references(plan: RunPlan) -> Any:
    """Evaluation targets preprocessed per protocol (eval crop), as a ``harness.data.ReferenceSet``."""
    from harness.data.datasets import ReferenceSet

    spec = plan.task.data
    if spec.adapter in ("deepfashion_multimodal", "coco_captions"):
        limit = max((s.max_prompts or 0) for s in plan.task.evaluation.prompt_sets)
        items = eval_items(plan, limit)
        images = [eval_array(i.path, spec.eval_resize_shorter, spec.eval_crop) for i in items]
    elif spec.adapter == "person_folder":
        items = person_items(plan)
        images = [eval_array(i.path, spec.resolution, (spec.resolution, spec.resolution)) for i in items]
    elif spec.adapter == "single_image":
        items = [garment_item(plan)]
        images = [eval_array(items[0].path, spec.train_resize_shorter, spec.train_crop)]
    else:
        raise ValueError(f"adapter '{spec.adapter}' has no reference images")
    return ReferenceSet(f"{plan.task.name}:{spec.adapter}:{plan.profile}", images, [i.group for i in items])


def used_files(plan: RunPlan) -> tuple[Path, list[Path]]:
    """(dataset folder, the files the readers use for this plan): what the data fingerprint hashes. COCO: the
    annotations and the drawn evaluation images; DeepFashion: the captions and every captioned image (all
    of them decide the filter and the split); a person's photos; the garment image."""
    spec = plan.task.data
    if spec.adapter == "deepfashion_multimodal":
        folder = deepfashion_folder(plan)
        deepfashion_split(plan)  # the same checks as the readers (captions file, images folder, filter)
        captions = read_json(folder / "captions.json", "DeepFashion-MultiModal captions")
        listed = [folder / "images" / name for name in captions if (folder / "images" / name).is_file()]
        return folder, [folder / "captions.json", *listed]
    if spec.adapter == "coco_captions":
        limit = max((s.max_prompts or 0) for s in plan.task.evaluation.prompt_sets)
        return coco_folder(plan), [coco_annotations(plan), *(i.path for i in eval_items(plan, limit))]
    if spec.adapter == "person_folder":
        items = person_items(plan)
        return items[0].path.parent, [i.path for i in items]
    if spec.adapter == "single_image":
        item = garment_item(plan)
        return item.path.parent, [item.path]
    raise ValueError(f"adapter '{spec.adapter}' is not an image-folder adapter")
