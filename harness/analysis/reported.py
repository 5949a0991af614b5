"""Published figures of the studies (PROTOCOLS.md) as data: ``results/reported/<task>.csv``.

Every figure carries ``source = "reported"``. They are shown beside measured rows of the same task
and method (and sweep overrides), never mixed into rankings. Columns: task, method, overrides (a sweep
cell as ``lr=5e-4;rank=16;steps=1000;schedule=cosine``, the keys of ``bench sweep``; empty for an
ordinary run), metric, prompt_set, group (``__all__`` for a mean over the prompt set), value, scale
(``raw`` or ``x100``; ``x100`` only for a metric whose declaration displays it), note (where in the study).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.paths import PROJECT_ROOT
from harness.specs import SpecError, parse_spec

COLUMNS = ("task", "method", "overrides", "metric", "prompt_set", "group", "value", "scale", "note")
SCALE_FACTORS = {"raw": 1.0, "x100": 100.0}


class ReportedFigure(BaseModel):
    """One published number and how to read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(min_length=1)
    method: str = Field(min_length=1)
    overrides: dict[str, Any] = {}
    metric: str = Field(min_length=1)
    prompt_set: str = Field(min_length=1)
    group: str = Field(min_length=1)
    value: float
    scale: Literal["raw", "x100"]
    note: str = ""
    source: Literal["reported"] = "reported"

    @field_validator("overrides", mode="before")
    @classmethod
    def _parse_overrides(cls, value: Any) -> Any:
        """``lr=5e-4;rank=16`` -> ``{"lr": 0.0005, "rank": 16}`` with ``bench sweep``'s parsers."""
        if not isinstance(value, str):
            return value
        from harness.plan import parse_grid

        try:
            grid = parse_grid([item.strip() for item in value.split(";") if item.strip()])
        except SpecError as exc:
            raise ValueError(str(exc).replace("--grid", "overrides")) from None
        if any(len(values) != 1 for values in grid.values()):
            raise ValueError("one value per key (KEY=V;KEY=V)")
        return {key: values[0] for key, values in grid.items()}

    @model_validator(mode="after")
    def _declared_metric_and_scale(self) -> ReportedFigure:
        from harness.metric_registry import find

        declared = find(self.metric)
        if declared is None:
            raise ValueError(f"metric '{self.metric}' is not declared in harness.metrics")
        if self.scale != "raw" and self.scale not in declared.display:
            raise ValueError(f"scale '{self.scale}' is not a display of metric '{self.metric}' "
                             f"({', '.join(declared.display)})")
        return self


def overrides_key(overrides: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """Hashable, order-free form of a sweep cell's overrides (empty for an ordinary run)."""
    return tuple(sorted((overrides or {}).items()))


def overrides_text(overrides: dict[str, Any] | None) -> str:
    return ";".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in overrides_key(overrides))


def reported_dir() -> Path:
    """Folder of the reported figures (``$BENCH_REPORTED_DIR`` overrides the project's)."""
    return Path(os.environ.get("BENCH_REPORTED_DIR", PROJECT_ROOT / "results" / "reported"))


def read_file(path: Path) -> list[ReportedFigure]:
    """Read one CSV file of figures; a bad header or row is a one-line SpecError naming file and line."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise SpecError(f"{path}: header must be {','.join(COLUMNS)} (got {','.join(reader.fieldnames or [])})")
            return [parse_spec(ReportedFigure, row, f"{path}:{reader.line_num}") for row in reader]
    except OSError as exc:
        raise SpecError(f"{path}: cannot read file ({exc.strerror})") from None


def load_reported(task: str | None = None, folder: Path | None = None) -> list[ReportedFigure]:
    """Every reported figure (of one task if given); a file must only hold rows of its own task."""
    figures: list[ReportedFigure] = []
    for path in sorted((folder or reported_dir()).glob("*.csv")):
        rows = read_file(path)
        wrong = next((r for r in rows if r.task != path.stem), None)
        if wrong:
            raise SpecError(f"{path}: field 'task': every row must be '{path.stem}' (got '{wrong.task}')")
        figures.extend(r for r in rows if task in (None, r.task))
    return figures


def beside_measured(figures: list[ReportedFigure], measured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each reported figure next to the measured aggregate of the same method, sweep overrides, metric,
    set and group.

    ``measured`` rows are headline metric rows (checkpoint NULL) carrying ``method``, ``overrides``
    (the run plan's) and ``profile``; the measured value is converted to the figure's scale. Figures
    without a measurement say so.
    """
    index = {(m["method"], overrides_key(m.get("overrides")), m["metric"], m["prompt_set"], m["grp"]): m
             for m in measured if m.get("checkpoint") is None}
    rows = []
    for fig in figures:
        match = index.get((fig.method, overrides_key(fig.overrides), fig.metric, fig.prompt_set, fig.group))
        factor = SCALE_FACTORS[fig.scale]
        rows.append({
            "method": fig.method, "overrides": overrides_text(fig.overrides), "metric": fig.metric,
            "prompt set": fig.prompt_set,
            "group": "mean (all)" if fig.group == "__all__" else fig.group, "scale": fig.scale,
            "reported": fig.value,
            "measured": None if match is None or match["value"] is None else round(match["value"] * factor, 6),
            "measured N": None if match is None else match["n"],
            "measured profile": None if match is None else match["profile"],
            "measured run": None if match is None else match["run_id"],
            "note": fig.note,
        })
    return rows
