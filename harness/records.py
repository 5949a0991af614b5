"""Typed records at the bottom layer: one generated image, one per-image score, one aggregate, the metric
card that goes with every number, and a scoring pass's result.

Nothing here imports from the rest of ``harness``: sampling, metrics, the runner and the store all
build on these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ALL = "__all__"  # the group of an aggregate over a whole prompt set


@dataclass(frozen=True)
class SampleRecord:
    """One generated image and where it came from."""

    prompt_set: str
    prompt_id: str
    prompt: str
    group: str
    sample_idx: int
    seed: int
    file: str  # relative to the run folder
    mean_intensity: float
    near_black: bool
    checkpoint: int | None = None  # training step of the weights; None = final

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MetricCard:
    """What a number means: backbone, weights identity, preprocessing, scale, N, library version.

    Build cards with ``harness.metric_registry.card(metric, ...)``, which takes the direction from
    the metric's declaration; the card stores it so that a row read back says which way is better.
    """

    metric: str
    backbone: str
    weights: str
    preprocessing: str
    scale: str
    library: str
    higher_is_better: bool
    n: int = 0
    flags: tuple[str, ...] = ()  # e.g. "biased_small_n", "random_init", "reference_cache_hit"
    notes: str = ""  # uncertainty method, denominators, estimator details

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SampleScore:
    metric: str
    prompt_set: str
    prompt_id: str
    sample_idx: int
    value: float | None  # None: no value for this image (e.g. no face found); it still counts in N shown
    checkpoint: int | None = None


@dataclass(frozen=True)
class Aggregate:
    """Mean of a metric over a prompt set (``group == ALL``) or over one class/group of it."""

    metric: str
    prompt_set: str
    group: str
    value: float | None
    n: int
    card: dict[str, Any]
    ci_low: float | None = None
    ci_high: float | None = None
    checkpoint: int | None = None
    std: float | None = None  # KID: std over subsets (torch-fidelity's convention)


@dataclass
class ScoreResult:
    """Per-sample scores and aggregates of a scoring pass.

    ``headline`` is set when every scored sample came from an explicit checkpoint:
    ``{"rule": <the method's headline rule>, "checkpoint": <step it picked>, "checkpoints": [steps]}``;
    the rows with ``checkpoint`` None are then copies of that step's rows.
    """

    per_sample: list[SampleScore] = field(default_factory=list)
    aggregates: list[Aggregate] = field(default_factory=list)
    headline: dict[str, Any] | None = None
