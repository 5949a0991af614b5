"""`bench disagree` on the tiny cifar_alignment runs (frozen, xattn_ft, lora_unet_r1)."""

from __future__ import annotations

import pytest
from scipy.stats import kendalltau
from typer.testing import CliRunner

from harness.analysis.disagree import DisagreementError, analyse, store_analysis
from harness.analysis.leaderboard import latest_runs
from harness.cli import app


def _overall(store, task: str) -> dict[tuple[str, str], dict[str, float]]:
    values: dict[tuple[str, str], dict[str, float]] = {}
    for run in latest_runs(store, task, "tiny"):
        for m in run["metrics"]:
            if m["metric"] == "clip_score":
                values.setdefault((m["metric"], m["prompt_set"]), {})[run["method"]] = m["value"]
    return values


def test_rankings_tau_and_flips_follow_the_stored_values(tiny_runs) -> None:
    store = tiny_runs["store"]
    result = analyse(store, "cifar_alignment", "tiny", resamples=200)
    methods = sorted(result.runs)
    assert methods == ["frozen", "lora_unet_r1", "xattn_ft"]
    assert [r.label for r in result.rankings] == ["clip_score[A]", "clip_score[B]"]
    values = _overall(store, "cifar_alignment")
    a, b = values[("clip_score", "A")], values[("clip_score", "B")]
    for ranking in result.rankings:
        expected = values[(ranking.metric, ranking.prompt_set)]
        best = max(expected, key=expected.get)
        assert ranking.ranks()[best] == 1
    (tau,) = result.taus
    assert tau.tau == pytest.approx(kendalltau([a[m] for m in methods], [b[m] for m in methods]).statistic)
    assert -1.0 <= tau.ci_low <= tau.ci_high <= 1.0
    pairs = [(x, y) for i, x in enumerate(methods) for y in methods[i + 1:]]
    flipped = {(x, y) for x, y in pairs if (a[x] - a[y]) * (b[x] - b[y]) < 0}
    assert {(f.method_a, f.method_b) for f in result.flips} == flipped
    prompt_ids = {s["prompt_id"] for s in store.samples(tiny_runs["outcomes"]["frozen"].run_id)}
    for flip in result.flips:
        assert flip.delta_a == pytest.approx(a[flip.method_a] - a[flip.method_b])
        assert flip.delta_b == pytest.approx(b[flip.method_a] - b[flip.method_b])
        assert flip.prompts and all(p["prompt_id"] in prompt_ids for p in flip.prompts)
        assert 0.0 <= flip.persistence <= 1.0


def test_analysis_is_stored_and_the_cli_prints_it(tiny_runs) -> None:
    store = tiny_runs["store"]
    result = analyse(store, "cifar_alignment", "tiny", resamples=100)
    analysis_id = store_analysis(store, result)
    stored = store.latest_disagreement("cifar_alignment", "tiny")
    assert stored["analysis_id"] == analysis_id and len(stored["rankings"]) == 6
    assert stored["tau"][0]["tau"] == pytest.approx(result.taus[0].tau)
    assert len(stored["flips"]) == len(result.flips)
    cli = CliRunner().invoke(app, ["disagree", "--task", "cifar_alignment", "--profile", "tiny", "--db",
                                   str(store.path), "--resamples", "50"])
    assert cli.exit_code == 0, cli.output
    assert "Kendall tau-b" in cli.output and "clip_score [B]" in cli.output


def test_disagreement_needs_runs_of_that_profile(tiny_runs) -> None:
    with pytest.raises(DisagreementError, match="at least two methods"):
        analyse(tiny_runs["store"], "cifar_alignment", "full")
