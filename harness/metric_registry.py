"""One declaration per metric, made next to the code that computes it, and the lazy registry of them
(at the bottom layer: specs validate metric names against it).

A family module of ``harness.metrics`` (``clip_score``, ``subject``, ``fidelity``, ``face``, ``near_black``)
decorates the function that produces a metric with ``@register_metric(metric=..., higher_is_better=...,
display=..., per_sample=..., weights=..., description=...)`` (lm-evaluation-harness style). Everything
else (spec validation, ``bench weights``, the CLI tables, the leaderboard, the dashboard, the
disagreement analysis) reads the declaration through the lookups below; a metric's direction is
written nowhere else. See docs/metrics.md.

The registry imports the family modules on the first lookup (``FAMILIES``); they import torch and the
other heavy libraries inside their functions only, so a lookup never loads torch.

The default backbone a metric uses when a task names none is backbone selection, not part of the
declaration (a metric may be computed with several judges): ``register_metric(default_backbone=...)``
records it separately and ``default_backbone(name)`` returns it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from harness.records import MetricCard

# Modules of harness.metrics that declare metrics (imported on the first lookup, in this order).
FAMILIES = ("clip_score", "subject", "fidelity", "face", "near_black")

# How a stored raw value can be shown; the CLI and the dashboard format each of these one way.
DISPLAY_KINDS = {
    "cosine": "raw cosine",  # the stored value, 4 decimals
    "x100": "x100",  # 100 x the value (papers' CLIP-score scale)
    "clipscore": "2.5*max(cos,0)",  # Hessel et al.'s CLIPScore of a cosine
    "fid": "FID",  # two decimals (3 significant digits below 1)
    "kid": "KID",  # 5 decimals
    "std": "std",  # the row's stored std (KID over subsets)
    "distance": "distance",  # the stored value, 4 decimals
    "faces": "faces",  # images with a detected face of N (card ``n_scored``)
    "count": "count",  # an integer count of N
}


@dataclass(frozen=True)
class MetricDeclaration:
    """What a metric is, independent of the backbone that computes it.

    ``display``: kinds of ``DISPLAY_KINDS`` in column order (the first is the leaderboard cell).
    ``per_sample``: it has a value per image (else one value per prompt set, e.g. FID).
    ``weights``: keys of ``harness.weights.WEIGHT_FILES`` its full-profile backbone needs.
    ``count``: a count of degenerate samples; shown beside ``beside`` (or beside every metric of its
    prompt set when None), never ranked, produced without being named in a task.
    ``family``: the module of ``harness.metrics`` that computes it (filled by ``register_metric``).
    """

    name: str
    higher_is_better: bool
    display: tuple[str, ...]
    per_sample: bool
    weights: tuple[str, ...] = ()
    description: str = ""
    count: bool = False
    beside: str | None = None
    family: str = ""

    @property
    def direction(self) -> str:
        """``higher`` or ``lower`` (is better)."""
        return "higher" if self.higher_is_better else "lower"


@dataclass(frozen=True)
class _Registered:
    declaration: MetricDeclaration
    scorer: Callable[..., Any]


_REGISTRY: dict[str, _Registered] = {}  # filled by the decorators as the family modules are imported
_BACKBONES: dict[str, tuple[str, str]] = {}
_LOADED: list[bool] = []


def register_metric(*, metric: str, higher_is_better: bool, display: tuple[str, ...], per_sample: bool,
                    weights: tuple[str, ...] = (), description: str = "", count: bool = False,
                    beside: str | None = None,
                    default_backbone: tuple[str, str] | None = None) -> Callable[[Callable], Callable]:
    """Declare ``metric`` as produced by the decorated function of a family module.

    A spec-named metric's function is called as ``fn(ctx, spec, records) -> ScoreResult``; stacked
    decorators on one function keep their top-to-bottom order. ``default_backbone``: (backbone, weights)
    a task gets when its metric entry names none (kept apart from the declaration).
    """
    unknown = [kind for kind in display if kind not in DISPLAY_KINDS]
    if not display or unknown:
        raise ValueError(f"metric '{metric}': display kinds {unknown or '()'} not in {', '.join(DISPLAY_KINDS)}")

    def decorator(fn: Callable) -> Callable:
        family = fn.__module__.rsplit(".", 1)[-1]
        declaration = MetricDeclaration(metric, higher_is_better, tuple(display), per_sample, tuple(weights),
                                        description, count, beside, family)
        known = _REGISTRY.get(metric)
        if known is not None and known.declaration != declaration:
            raise ValueError(f"metric '{metric}' declared twice ({known.declaration.family} and {family})")
        siblings = [name for name, r in _REGISTRY.items() if r.scorer is fn and name != metric]
        entries = list(_REGISTRY.items())
        at = next((i for i, (name, _) in enumerate(entries) if name in siblings), len(entries))
        entries.insert(at, (metric, _Registered(declaration, fn)))  # decorators apply bottom-up
        _REGISTRY.clear()
        _REGISTRY.update(dict(entries))
        if default_backbone is not None:
            _BACKBONES[metric] = default_backbone
        return fn

    return decorator


def _load() -> dict[str, _Registered]:
    """The registry in ``FAMILIES`` order (a family's metrics in source order), whatever imported first."""
    if not _LOADED:
        for family in FAMILIES:
            importlib.import_module(f"harness.metrics.{family}")
        _LOADED.append(True)
    rank = {family: i for i, family in enumerate(FAMILIES)}
    return dict(sorted(_REGISTRY.items(), key=lambda item: rank.get(item[1].declaration.family, len(rank))))


def declarations() -> dict[str, MetricDeclaration]:
    """Every declared metric (count metrics included), in family order."""
    return {name: r.declaration for name, r in _load().items()}


def find(name: str) -> MetricDeclaration | None:
    """The declaration of ``name``, or None for a name no family declares (e.g. a row of an old store)."""
    registered = _load().get(name)
    return None if registered is None else registered.declaration


def declaration(name: str) -> MetricDeclaration:
    """The declaration of ``name``; ValueError naming the known metrics otherwise."""
    found = find(name)
    if found is None:
        raise ValueError(f"unknown metric '{name}' (known: {', '.join(declarations())})")
    return found


def metric_names() -> tuple[str, ...]:
    """The metrics a task can name in ``evaluation.metrics`` (count metrics come with others)."""
    return tuple(name for name, d in declarations().items() if not d.count)


def scorer(name: str) -> Callable[..., Any]:
    """The family function computing a spec-named metric: ``fn(ctx, spec, records) -> ScoreResult``."""
    found = declaration(name)
    if found.count:
        raise ValueError(f"metric '{name}' is a count produced with other metrics; a task cannot name it")
    return _load()[name].scorer


def default_backbone(name: str) -> tuple[str, str] | None:
    """(backbone, weights) of a metric when the task names none; None for an unknown metric."""
    _load()
    return _BACKBONES.get(name)


def higher_is_better(metric: str, card: dict[str, Any] | None = None) -> bool:
    """Direction of a stored row: the declaration's; for a metric no family declares any more, what its
    stored card says (higher when it says nothing)."""
    found = find(metric)
    if found is not None:
        return found.higher_is_better
    return bool((card or {}).get("higher_is_better", True))


def metrics_using(weights_key: str) -> tuple[str, ...]:
    """Metrics whose declaration names this weights file."""
    return tuple(name for name, d in declarations().items() if weights_key in d.weights)


def card(metric: str, backbone: str, weights: str, preprocessing: str, scale: str, library: str,
         **fields: Any) -> MetricCard:
    """A metric card whose direction comes from the metric's declaration."""
    return MetricCard(metric, backbone, weights, preprocessing, scale, library,
                      higher_is_better=declaration(metric).higher_is_better, **fields)


def relabel(metric_card: MetricCard, metric: str, **fields: Any) -> MetricCard:
    """A card of one backbone reused for another metric it serves (e.g. CLIP for clip_t, clip_i)."""
    return replace(metric_card, metric=metric, higher_is_better=declaration(metric).higher_is_better, **fields)
