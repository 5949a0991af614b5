"""CIFAR-10 from the standard python-pickle batches, and a synthetic stand-in in the same layout.

Real layout (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extracted):
``<data-root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``.
The synthetic stand-in writes exactly that layout (same pickle keys, same 32x32x3 uint8 rows,
same ten class names) so the tiny profile reads it through the same code.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataMissingError

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass(frozen=True)
class CifarArrays:
    images: np.ndarray  # (N, 32, 32, 3) uint8
    labels: np.ndarray  # (N,) int64
    class_names: list[str]


def find_root(data_root: str | None) -> Path:
    """The ``cifar-10-batches-py`` folder under ``--data-root`` or ``$BENCH_DATA``."""
    base = data_root or os.environ.get("BENCH_DATA")
    if not base:
        raise DataMissingError(
            "CIFAR-10 not configured: pass --data-root DIR or set BENCH_DATA so that "
            f"DIR/{FOLDER}/data_batch_1 exists (extract cifar-10-python.tar.gz from "
            "https://www.cs.toronto.edu/~kriz/cifar-10.html there); --profile tiny needs no data"
        )
    root = Path(base)
    folder = root if root.name == FOLDER else root / FOLDER
    missing = [name for name in [*TRAIN_BATCHES, "batches.meta"] if not (folder / name).is_file()]
    if missing:
        raise DataMissingError(
            f"CIFAR-10 incomplete: {folder} lacks {', '.join(missing)} (expected the extracted "
            "python version, cifar-10-python.tar.gz); --profile tiny needs no data"
        )
    return folder


def _unpickle(path: Path) -> dict:
    with path.open("rb") as handle:
        return pickle.load(handle, encoding="bytes")


def read_train(folder: Path) -> CifarArrays:
    """All training images, labels and class names from the pickle batches."""
    meta = _unpickle(folder / "batches.meta")
    names = [n.decode() if isinstance(n, bytes) else n for n in meta[b"label_names"]]
    rows, labels = [], []
    for name in TRAIN_BATCHES:
        batch = _unpickle(folder / name)
        rows.append(np.asarray(batch[b"data"], dtype=np.uint8))
        labels.extend(batch[b"labels"])
    data = np.concatenate(rows).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return CifarArrays(images=np.ascontiguousarray(data), labels=np.asarray(labels, dtype=np.int64), class_names=names)


# --- synthetic stand-in ------------------------------------------------------------------------

# class -> (background RGB, foreground RGB, shape)
_LOOKS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], str]] = {
    "airplane": ((135, 190, 235), (200, 200, 210), "cross"),
    "automobile": ((90, 90, 95), (200, 30, 30), "car"),
    "bird": ((70, 140, 60), (140, 90, 40), "bird"),
    "cat": ((225, 210, 180), (230, 130, 40), "eared_head"),
    "deer": ((60, 110, 50), (150, 100, 60), "antlers"),
    "dog": ((235, 235, 225), (120, 80, 50), "floppy_head"),
    "frog": ((20, 70, 30), (90, 200, 60), "ellipse"),
    "horse": ((200, 180, 130), (80, 50, 30), "quadruped"),
    "ship": ((40, 80, 170), (230, 230, 230), "hull"),
    "truck": ((150, 150, 150), (40, 70, 200), "truck"),
}


def _draw(class_name: str, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    background, foreground, shape = _LOOKS[class_name]
    jitter = lambda rgb: tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in rgb)  # noqa: E731
    image = Image.new("RGB", (32, 32), jitter(background))
    draw = ImageDraw.Draw(image)
    fg = jitter(foreground)
    cx, cy = 16 + int(rng.integers(-4, 5)), 16 + int(rng.integers(-4, 5))
    s = int(rng.integers(7, 11))
    if shape == "cross":
        draw.rectangle([cx - s, cy - 2, cx + s, cy + 2], fill=fg)
        draw.rectangle([cx - 2, cy - s // 2, cx + 2, cy + s // 2], fill=fg)
    elif shape in ("car", "truck"):
        draw.rectangle([cx - s, cy - s // 2, cx + s, cy + s // 3], fill=fg)
        if shape == "truck":
            draw.rectangle([cx + s - 3, cy - s, cx + s + 3, cy + s // 3], fill=fg)
        for wx in (cx - s + 3, cx + s - 3):
            draw.ellipse([wx - 3, cy + s // 3 - 2, wx + 3, cy + s // 3 + 4], fill=(10, 10, 10))
    elif shape == "bird":
        draw.ellipse([cx - s // 2, cy - s // 3, cx + s // 2, cy + s // 3], fill=fg)
        draw.polygon([(cx + s // 2, cy - 1), (cx + s // 2 + 4, cy), (cx + s // 2, cy + 1)], fill=(240, 200, 0))
    elif shape in ("eared_head", "floppy_head"):
        draw.ellipse([cx - s, cy - s, cx + s, cy + s], fill=fg)
        if shape == "eared_head":
            draw.polygon([(cx - s, cy - s // 2), (cx - s // 2, cy - s - 5), (cx, cy - s)], fill=fg)
            draw.polygon([(cx, cy - s), (cx + s // 2, cy - s - 5), (cx + s, cy - s // 2)], fill=fg)
        else:
            draw.rectangle([cx - s - 3, cy - s // 2, cx - s + 2, cy + s // 2], fill=(70, 45, 25))
            draw.rectangle([cx + s - 2, cy - s // 2, cx + s + 3, cy + s // 2], fill=(70, 45, 25))
    elif shape == "antlers":
        draw.rectangle([cx - 3, cy - s // 2, cx + 3, cy + s], fill=fg)
        draw.line([(cx - 2, cy - s // 2), (cx - s, cy - s)], fill=(230, 220, 200), width=2)
        draw.line([(cx + 2, cy - s // 2), (cx + s, cy - s)], fill=(230, 220, 200), width=2)
    elif shape == "ellipse":
        draw.ellipse([cx - s, cy - s // 2, cx + s, cy + s // 2], fill=fg)
    elif shape == "quadruped":
        draw.rectangle([cx - s, cy - s // 3, cx + s, cy + s // 3], fill=fg)
        for lx in (cx - s + 1, cx + s - 3):
            draw.rectangle([lx, cy + s // 3, lx + 2, cy + s], fill=fg)
        draw.rectangle([cx + s - 2, cy - s, cx + s + 2, cy - s // 3], fill=fg)
    elif shape == "hull":
        draw.rectangle([0, 0, 31, cy], fill=(200, 220, 240))
        draw.polygon([(cx - s, cy - 3), (cx + s, cy - 3), (cx + s // 2, cy + 4), (cx - s // 2, cy + 4)], fill=fg)
    return np.asarray(image, dtype=np.uint8)


def write_synthetic(folder: Path, per_class: int, seed: int = 0) -> Path:
    """Write a synthetic CIFAR-10 in the real pickle layout; returns the ``cifar-10-batches-py`` path."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASS_NAMES)), per_class)
    rng.shuffle(labels)
    images = np.stack([_draw(CLASS_NAMES[label], rng) for label in labels])
    rows = images.transpose(0, 3, 1, 2).reshape(len(labels), -1)
    target = folder / FOLDER
    target.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(labels)), len(TRAIN_BATCHES))):
        batch = {b"batch_label": f"synthetic batch {i + 1}".encode(), b"labels": labels[chunk].tolist(),
                 b"data": rows[chunk], b"filenames": [f"synthetic_{j}.png".encode() for j in chunk]}
        with (target / TRAIN_BATCHES[i]).open("wb") as handle:
            pickle.dump(batch, handle)
    meta = {b"label_names": [n.encode() for n in CLASS_NAMES], b"num_cases_per_batch": len(labels) // 5,
            b"num_vis": 3072}
    with (target / "batches.meta").open("wb") as handle:
        pickle.dump(meta, handle)
    return target
