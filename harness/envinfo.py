"""Exact versions of the software a run used, and the git commit of the harness."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

from harness.paths import PROJECT_ROOT

PACKAGES = ["torch", "diffusers", "transformers", "peft", "accelerate", "open_clip_torch", "duckdb",
            "torch-fidelity", "harness"]


def package_versions() -> dict[str, str]:
    """Python and package versions (``missing`` for an absent package)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "missing"
    torch = sys.modules.get("torch")
    if torch is not None:
        versions["torch_build"] = f"{torch.__version__} (cuda {torch.version.cuda or 'none'})"
    return versions


def git_commit() -> str:
    """HEAD of the harness checkout, with ``+dirty`` when the tree has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")
