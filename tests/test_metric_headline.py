"""The metrics layer scores every checkpoint and picks the headline for any task (no models: the scorer
is replaced by a stand-in that scores an image by its checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import metrics
from harness.metrics import ScoringContext, headline_records
from harness.plan import build_plan
from harness.records import ALL, Aggregate, SampleRecord, SampleScore, ScoreResult


def _records(checkpoints: tuple[int | None, ...]) -> list[SampleRecord]:
    return [SampleRecord("simple", f"simple.dog.p{i}", f"a photo of <rare> dog {i}", "spotted_dog", 0, i,
                         f"samples/{c}_{i}.png", 100.0, i == 0, c) for c in checkpoints for i in range(2)]


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every metric scores an image ``step / 100`` (final weights: 1.0); records the texts it was given."""
    seen: list = []

    def fake(ctx: ScoringContext, spec, records: list[SampleRecord]) -> ScoreResult:
        seen.append([ctx.text_of(r) for r in records])
        values = [(r.checkpoint or 100) / 100 for r in records]
        card = {"higher_is_better": spec.name != "kid"}
        return ScoreResult([SampleScore(spec.name, r.prompt_set, r.prompt_id, r.sample_idx, v)
                            for r, v in zip(records, values, strict=True)],
                           [Aggregate(spec.name, "simple", ALL, sum(values) / len(values), len(values), card)])

    monkeypatch.setattr(metrics, "scorer", lambda name: fake)
    return seen


def test_checkpoints_are_scored_apart_and_the_rule_picks_the_headline(stand_in, tmp_path: Path) -> None:
    plan = build_plan("dreambooth_subjects", "ti_then_ft", "tiny")
    records = _records((2, 4))
    ticks = []
    result = metrics.score(ScoringContext(plan, tmp_path, {"spotted_dog": "<rare>"}), records, ticks.append)
    n_metrics = len(plan.task.evaluation.metrics)
    assert len(ticks) == 2 * n_metrics  # each metric once per checkpoint
    assert stand_in[0] == ["a photo of dog 0", "a photo of dog 1"]  # identifier removed
    assert result.headline == {"rule": {"rule": "final"}, "checkpoint": 4, "checkpoints": [2, 4]}
    headline = [a for a in result.aggregates if a.checkpoint is None]
    assert {a.metric for a in headline} == {m.name for m in plan.task.evaluation.metrics} | {"near_black_count"}
    assert all(a.card["headline_checkpoint"] == 4 and a.card["headline_rule"] == {"rule": "final"} for a in headline)
    assert {s.value for s in result.per_sample if s.checkpoint is None} == {0.04}
    assert len(result.per_sample) == 3 * 2 * n_metrics  # steps 2, 4 and the headline copy of 4
    near_black = [a for a in result.aggregates if a.metric == "near_black_count"]
    assert [(a.checkpoint, a.value, a.n) for a in near_black] == [(2, 1.0, 2), (4, 1.0, 2), (None, 1.0, 2)]
    copies = headline_records(records, result.headline)
    assert [(r.checkpoint, r.file) for r in copies] == [(None, "samples/4_0.png"), (None, "samples/4_1.png")]


def test_best_rule_and_final_weights(stand_in, tmp_path: Path) -> None:
    plan = build_plan("dreambooth_subjects", "ti_then_ft", "tiny")
    rule = {"rule": "best", "metric": "clip_t", "prompt_set": "simple"}
    best = plan.model_copy(update={"method": plan.method.model_copy(update={"params": {"headline": rule}})})
    result = metrics.score(ScoringContext(best, tmp_path), _records((4, 2, 6)))
    assert result.headline == {"rule": rule, "checkpoint": 6, "checkpoints": [2, 4, 6]}
    final = metrics.score(ScoringContext(plan, tmp_path), _records((None,)))
    assert final.headline is None and headline_records(_records((None,)), final.headline) == []
    assert {a.checkpoint for a in final.aggregates} == {None}
    mixed = metrics.score(ScoringContext(plan, tmp_path), _records((2, None)))  # final weights sampled too
    assert mixed.headline is None


def test_context_loads_references_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness.data import ReferenceSet

    calls = []
    monkeypatch.setattr("harness.data.load_references", lambda plan: calls.append(plan) or ReferenceSet("r", [], []))
    ctx = ScoringContext(build_plan("cifar_alignment", "frozen", "tiny"), tmp_path)
    assert ctx.references() is ctx.references() and len(calls) == 1
    assert ScoringContext(ctx.plan, tmp_path).text_of(_records((None,))[0]) == "a photo of <rare> dog 0"
