"""On-disk cache of reference-side statistics (features, means, covariances, embeddings).

Keyed by everything that changes the numbers: extractor, weights identity, preprocessing,
resolution, N and the reference subset's content digest. A second method scored on the same task
loads them instead of recomputing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.paths import cache_dir


def cache_root() -> Path:
    return cache_dir() / "reference_stats"


def key_of(fields: dict[str, Any]) -> str:
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_or_compute(kind: str, fields: dict[str, Any], compute: Callable[[], dict[str, Any]]
                    ) -> tuple[dict[str, Any], bool]:
    """Cached tensors for ``fields`` (``hit=True``) or ``compute()`` them and store them atomically."""
    import torch

    folder = cache_root() / kind
    key = key_of(fields)
    path = folder / f"{key}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True), True
    item = compute()
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(item, partial)
    os.replace(partial, path)
    (folder / f"{key}.json").write_text(json.dumps(fields, sort_keys=True, indent=2, default=str))
    return item, False
