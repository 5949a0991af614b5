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
from typing import Any

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
    """The ``cifar-10-batches-py`` folder: ``--data-root`` (or ``$BENCH_DATA``) may be that folder itself or
    the folder it was extracted into."""
    base = data_root or os.environ.get("BENCH_DATA")
    if not base:
        raise DataMissingError(
            "CIFAR-10 not configured: pass --data-root DIR or set BENCH_DATA so that "
            f"DIR/{FOLDER}/data_batch_1 exists (extract cifar-10-python.tar.gz from "
            "https://www.cs.toronto.edu/~kriz/cifar-10.html there); --profile tiny needs no data"
        )
    root = Path(base)
    candidates = [root, root / FOLDER] if root.name != FOLDER else [root]
    folder = next((c for c in candidates if (c / "batches.meta").is_file()), candidates[-1])
    missing = [name for name in [*TRAIN_BATCHES, "batches.meta"] if not (folder / name).is_file()]
    if missing:
        raise DataMissingError(
            f"CIFAR-10 incomplete: {folder} lacks {', '.join(missing)} (expected the extracted "
            "python version, cifar-10-python.tar.gz); --profile tiny needs no data"
        )
    return folder


def files(folder: Path) -> list[Path]:
    """The files ``read_train`` reads."""
    return [folder / name for name in [*TRAIN_BATCHES, "batches.meta"]]


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR batch pickle may name: numpy's array / dtype reconstruction helpers (under the
    module names numpy 1 and numpy 2 write) and ``_codecs.encode`` (Python 3 protocol-2 bytes)."""
    import codecs

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): codecs.encode}
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{module}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Loads the dataset's dicts of bytes / ints / lists / uint8 arrays; any other global is refused before it
    is resolved, so a crafted pickle cannot run code."""

    allowed: dict[tuple[str, str], Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"forbidden global '{module}.{name}' (a CIFAR batch holds only "
                                         "bytes, lists and numpy arrays)")
        return found


def _unpickle(path: Path) -> dict:
    """One batch file through the restricted unpickler; any failure is one ``DataMissingError`` line."""
    if not _RestrictedUnpickler.allowed:
        _RestrictedUnpickler.allowed = _numpy_globals()
    try:
        with path.open("rb") as handle:
            loaded = _RestrictedUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise DataMissingError(f"{path}: file missing") from None
    except Exception as exc:  # noqa: BLE001 - truncated, garbage or hostile pickles alike
        detail = str(exc).splitlines()[0] if str(exc) else "truncated or corrupt"
        raise DataMissingError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {detail})") from None
    if not isinstance(loaded, dict):
        raise DataMissingError(f"{path}: not a CIFAR-10 python batch (a {type(loaded).__name__}, expected a dict)")
    return loaded


def _field(batch: dict, key: bytes, path: Path) -> Any:
    if key in batch:
        return batch[key]
    if key.decode() in batch:
        return batch[key.decode()]
    raise DataMissingError(f"{path}: CIFAR-10 batch lacks the key {key.decode()!r}")


def check_file(path: Path) -> None:
    """One batch file loads through the restricted unpickler into the expected dict (before models load)."""
    batch = _unpickle(path)
    if path.name == "batches.meta":
        _field(batch, b"label_names", path)
    else:
        _check_batch(path, _field(batch, b"data", path), _field(batch, b"labels", path), None)


def _check_batch(path: Path, data: Any, labels: Any, classes: int | None) -> None:
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise DataMissingError(f"{path}: 'data' is {shape}, expected an (N, 3072) uint8 array")
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(data):
        raise DataMissingError(f"{path}: 'labels' must be a list of {len(data)} class indices")
    if classes is not None and any(not 0 <= int(label) < classes for label in labels):
        raise DataMissingError(f"{path}: 'labels' must be class indices in [0, {classes})")


def read_train(folder: Path) -> CifarArrays:
    """All training images, labels and class names from the pickle batches (read without executing code)."""
    meta_path = folder / "batches.meta"
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in _field(_unpickle(meta_path), b"label_names",
                                                                          meta_path)]
    rows, labels = [], []
    for name in TRAIN_BATCHES:
        path = folder / name
        batch = _unpickle(path)
        data, batch_labels = _field(batch, b"data", path), _field(batch, b"labels", path)
        _check_batch(path, data, batch_labels, len(names))
        rows.append(np.asarray(data, dtype=np.uint8))
        labels.extend(int(label) for label in batch_labels)
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
