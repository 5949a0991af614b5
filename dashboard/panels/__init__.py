"""Dashboard pages: each module has ``render(store, task, profile)``."""

from __future__ import annotations

from collections.abc import Callable

from harness.store import Store
from panels import compare, disagreement, leaderboard, reported, samples, sweeps

PAGES: dict[str, Callable[[Store, str, str], None]] = {
    "Leaderboard": leaderboard.render,
    "Compare": compare.render,
    "Disagreement": disagreement.render,
    "Samples": samples.render,
    "Sweeps": sweeps.render,
    "Reported vs measured": reported.render,
}
