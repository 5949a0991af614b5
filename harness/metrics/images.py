"""Image numerics shared by generated and reference sides: uint8 RGB, lossless PNG, one rounding rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] to uint8 by round-half-to-even of ``x * 255`` in float32 after clipping.

    This is what diffusers does to generated images (``postprocess`` clamps to [0, 1], then
    ``numpy_to_pil`` computes ``(x * 255).round()`` on float32), so reference images that start as
    floats get bit-identical rounding.
    """
    if pixels.dtype == np.uint8:
        return pixels
    return (np.clip(pixels.astype(np.float32), 0.0, 1.0) * np.float32(255)).round().astype(np.uint8)


def load_png(path: Path) -> np.ndarray:
    """A generated sample as HxWx3 uint8; only lossless PNG is accepted."""
    from PIL import Image

    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: metrics read lossless PNG only (got '{path.suffix}')")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def check_uint8(images: list[np.ndarray], source: str) -> None:
    """Every image must be HxWx3 uint8 (the one input format of every metric)."""
    for i, image in enumerate(images):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{source}: image {i} must be HxWx3 uint8, got {image.dtype} {image.shape}")


def to_pil(images: list[np.ndarray]) -> list[Any]:
    from PIL import Image

    return [Image.fromarray(image) for image in images]


class UInt8Images:
    """Map-style dataset of CHW uint8 tensors, the input torch-fidelity extractors expect."""

    def __init__(self, images: list[np.ndarray]) -> None:
        check_uint8(images, "UInt8Images")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.images[index].transpose(2, 0, 1)))


def as_torch_dataset(images: list[np.ndarray]) -> Any:
    """``UInt8Images`` as a ``torch.utils.data.Dataset`` (torch-fidelity checks the base class)."""
    from torch.utils.data import Dataset

    class _Dataset(UInt8Images, Dataset):
        pass

    return _Dataset(images)
