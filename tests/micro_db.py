"""A results database of real microworld runs, shared by the tests of one session (each cell is run once,
on first use)."""

from __future__ import annotations

from pathlib import Path

from harness.plan import build_plan
from harness.runner import run
from harness.store import Store


class MicroRuns:
    """Runs on the shipped microworld in one database; ``run(task, method)`` gives the completed run id."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store(root / "bench.duckdb")
        self.runs_root = root / "runs"
        self.outcomes: dict[tuple[str, str], str] = {}

    def run(self, task: str, method: str) -> str:
        key = (task, method)
        if key not in self.outcomes:
            outcome = run(build_plan(task, method), self.store, self.runs_root)
            assert outcome.status == "completed", outcome.error
            self.outcomes[key] = outcome.run_id
        return self.outcomes[key]
