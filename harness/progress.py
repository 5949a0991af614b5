"""Progress reporting for the stages of a run: the runner opens a stage, the stage ticks it.

``RichProgress`` draws one bar per stage (training steps, samples generated, metrics scored) on
stderr; ``None`` anywhere means no reporting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Tick = Callable[[int], None]


class ProgressSink(Protocol):
    """What the runner reports to."""

    def stage(self, name: str, total: int | None) -> Tick:
        """Open a stage of ``total`` units and return the function that advances it."""
        ...


class RichProgress:
    """Rich progress bars, one per stage, as a context manager."""

    def __init__(self, console: Any, label: str = "") -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.label = label
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=True)

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bars.stop()

    def stage(self, name: str, total: int | None) -> Tick:
        task_id = self.bars.add_task(f"{self.label}{name}", total=total)
        return lambda n: self.bars.advance(task_id, n)


def open_stage(sink: ProgressSink | None, name: str, total: int | None) -> Tick | None:
    """The stage's tick function, or None when nobody listens."""
    return sink.stage(name, total) if sink is not None else None
