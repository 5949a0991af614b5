"""Where things live: the project's folders, the user's registry, and caches of re-creatable files.

Environment variables, most specific first: ``BENCH_CACHE`` (caches), ``BENCH_HOME`` (the user's methods
and, unless ``BENCH_CACHE`` says otherwise, caches under ``$BENCH_HOME/cache``), ``BENCH_TASKS_DIR`` and
``BENCH_BASELINES_DIR`` (spec folders). Nothing here imports anything heavy.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Where the harness keeps derived, re-creatable files (tokenizer vocabularies, synthetic data,
    reference statistics)."""
    if os.environ.get("BENCH_CACHE"):
        return Path(os.environ["BENCH_CACHE"])
    if os.environ.get("BENCH_HOME"):
        return Path(os.environ["BENCH_HOME"]) / "cache"
    return Path.home() / ".cache" / "bench"


def tasks_dir() -> Path:
    """The registered task specs (``tasks/*.yaml``)."""
    return Path(os.environ.get("BENCH_TASKS_DIR", PROJECT_ROOT / "tasks"))


def baselines_dir() -> Path:
    """The built-in method specs (``baselines/*.yaml``)."""
    return Path(os.environ.get("BENCH_BASELINES_DIR", PROJECT_ROOT / "baselines"))


def user_methods_dir() -> Path:
    """The user's method registry: ``$BENCH_HOME/methods``, else ``$XDG_CONFIG_HOME/bench/methods``."""
    if os.environ.get("BENCH_HOME"):
        return Path(os.environ["BENCH_HOME"]) / "methods"
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "bench" / "methods"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
