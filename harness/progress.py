"""Progress bars for the stages of a run: the runner opens a stage (``harness.runner.ProgressSink``), the
stage ticks it. ``RichProgress`` draws one bar per stage (training steps, samples generated, metrics
scored) on stderr; ``None`` anywhere means no reporting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RichProgress:
    """Rich progress bars, one per stage, as a context manager."""

    def __init__(self, console: Any, label: str = "") -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.label = label
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bars.stop()

    def stage(self, name: str, total: int | None) -> Callable[[int], None]:
        task_id = self.bars.add_task(f"{self.label}{name}", total=total)
        return lambda n: self.bars.advance(task_id, n)
