"""The records the data layer hands out: captioned training images, reference sets, training units."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReferenceSet:
    """Real images a metric compares samples against (FID targets, subject photos, reference faces).

    ``images`` are uint8 HxWx3 arrays already preprocessed as the protocol says (e.g. eval crop);
    ``groups`` names the class / subject of each image (same length as ``images``).
    """

    name: str
    images: list[np.ndarray]
    groups: list[str] = field(default_factory=list)

    def digest(self) -> str:
        """Content hash of the subset (cache key for reference statistics)."""
        hasher = hashlib.sha256(self.name.encode())
        for image in self.images:
            hasher.update(str(image.shape).encode())
            hasher.update(np.ascontiguousarray(image).tobytes())
        return hasher.hexdigest()[:16]


@dataclass
class TrainingUnit:
    """What one ``Method.fit`` trains on: the task's training set (``name == "all"``), or one subject's
    photos (``subject`` set; the method captions them with its identifier)."""

    name: str
    dataset: Any = None  # CaptionedImages of an ``all`` unit (None when the run does not train)
    subject: Any = None  # SubjectSpec of a per-subject unit
    photos: list[np.ndarray] = field(default_factory=list)  # uint8 HxWx3 photos of the subject


class CaptionedImages:
    """Map-style dataset of (image in [-1, 1], caption) pairs; a torch DataLoader can batch it."""

    def __init__(self, images: np.ndarray, captions: list[str], groups: list[str], resolution: int,
                 interpolation: str) -> None:
        from torchvision import transforms

        modes = {"bilinear": transforms.InterpolationMode.BILINEAR,
                 "bicubic": transforms.InterpolationMode.BICUBIC,
                 "nearest": transforms.InterpolationMode.NEAREST}
        self.images, self.captions, self.groups = images, captions, groups
        self.transform = transforms.Compose([
            transforms.ToTensor(),
            transforms.Resize((resolution, resolution), interpolation=modes[interpolation], antialias=True),
            transforms.Normalize([0.5], [0.5]),
        ])

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"pixel_values": self.transform(self.images[index]), "caption": self.captions[index],
                "group": self.groups[index]}
