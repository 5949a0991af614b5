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
    ra, rb = result.rankings
    # a flip: opposite orders, each decided by the tie rule (its paired-bootstrap interval excludes 0)
    flipped = {(x, y) for x, y in pairs if (a[x] - a[y]) * (b[x] - b[y]) < 0
               and ra.difference(x, y).decided and rb.difference(x, y).decided}
    assert {(f.method_a, f.method_b) for f in result.flips} == flipped
    for x, y in pairs:
        diff = ra.difference(x, y)
        assert diff.rule.startswith("paired") and diff.delta == pytest.approx(a[x] - a[y], abs=1e-9)
    prompt_ids = {s["prompt_id"] for s in store.samples(tiny_runs["outcomes"]["frozen"].run_id)}
    for flip in result.flips:
        assert flip.delta_a == pytest.approx(a[flip.method_a] - a[flip.method_b])
        assert flip.delta_b == pytest.approx(b[flip.method_a] - b[flip.method_b])
        assert flip.prompts and all(p["prompt_id"] in prompt_ids for p in flip.prompts)
        assert 0.0 <= flip.persistence <= 1.0 and flip.diff_a.decided and flip.diff_b.decided


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


@pytest.fixture(scope="module")
def checkpointed_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Real tiny runs of dreambooth_subjects: frozen and ti_then_ft (scored at steps 2 and 4, headline =
    step 4 by its 'final' rule), in their own database (about 10 s)."""
    from harness.plan import build_plan
    from harness.runner import run
    from harness.store import Store

    root = tmp_path_factory.mktemp("checkpointed")
    store = Store(root / "bench.duckdb")
    outcomes = {m: run(build_plan("dreambooth_subjects", m, "tiny"), store, root / "runs")
                for m in ("frozen", "ti_then_ft")}
    assert all(o.status == "completed" for o in outcomes.values()), {m: o.error for m, o in outcomes.items()}
    return {"store": store, "outcomes": outcomes}


def test_checkpointed_method_counts_each_image_once(checkpointed_runs) -> None:
    """ti_then_ft stores every per-image score three times: at step 2, at step 4 and as the headline copy
    of step 4 (checkpoint NULL). The analysis reads the headline copy only, so its per-prompt tables hold
    one value per headline sample, the same N as frozen's. Pooling every stored row, as `bench disagree`
    once did, gives ti_then_ft three times the N, and per-prompt means that mix step 2 in."""
    from harness.analysis.disagree import per_prompt_table

    store, outcomes = checkpointed_runs["store"], checkpointed_runs["outcomes"]
    run_id = outcomes["ti_then_ft"].run_id
    assert store.run_row(run_id)["details"]["headline"]["checkpoint"] == 4
    result = analyse(store, "dreambooth_subjects", "tiny", resamples=50)
    assert sorted(result.runs) == ["frozen", "ti_then_ft"]
    assert {r.label for r in result.rankings} == {f"{m}[{s}]" for m in ("clip_i", "clip_t", "dino")
                                                  for s in ("diverse", "simple")}
    samples = {m: [s for s in store.samples(rid) if s["checkpoint"] is None] for m, rid in result.runs.items()}
    all_scores = {m: store.sample_scores(rid) for m, rid in result.runs.items()}
    for ranking in result.rankings:
        for method in result.runs:
            headline_n = sum(s["prompt_set"] == ranking.prompt_set for s in samples[method])
            table = ranking.per_prompt[method]
            assert sum(count for _, count in table.values()) == headline_n == ranking.n[method]
            # hand-computed headline-only table: the checkpoint NULL rows of this metric and prompt set
            expected: dict[str, list[float]] = {}
            for s in all_scores[method]:
                if (s["metric"], s["prompt_set"], s["checkpoint"]) == (ranking.metric, ranking.prompt_set, None):
                    expected.setdefault(s["prompt_id"], []).append(s["value"])
            assert {p: (pytest.approx(sum(v)), len(v)) for p, v in expected.items()} == table
            pooled = per_prompt_table(all_scores[method], ranking.metric, ranking.prompt_set)
            pooled_n = sum(count for _, count in pooled.values())
            assert pooled_n == (3 if method == "ti_then_ft" else 1) * headline_n  # the old, pooled N
        # the values ranked are the headline aggregates (step 4's copy for ti_then_ft)
        step4 = next(a for a in store.aggregates(run_id, group="__all__")
                     if (a["metric"], a["prompt_set"], a["checkpoint"]) == (ranking.metric, ranking.prompt_set, 4))
        assert ranking.values["ti_then_ft"] == pytest.approx(step4["value"])
    (tau,) = [t for t in result.taus if (t.a.label, t.b.label) == ("clip_i[diverse]", "clip_i[simple]")]
    methods = sorted(result.runs)
    a, b = (next(r for r in result.rankings if r.label == label) for label in ("clip_i[diverse]", "clip_i[simple]"))
    assert tau.tau == pytest.approx(kendalltau([a.oriented(m) for m in methods],
                                               [b.oriented(m) for m in methods]).statistic, nan_ok=True)


def test_ties_are_not_flips_and_set_level_orders_need_separated_intervals() -> None:
    from harness.analysis.disagree import Ranking, flips

    def ranking(metric: str, values: dict[str, float], half: float) -> Ranking:
        rows = {m: {"value": v, "ci_low": v - half, "ci_high": v + half} for m, v in values.items()}
        return Ranking(metric, "test", False, values, {m: 4 for m in values}, rows=rows)

    # FID prefers a, KID prefers b, both with intervals far apart: a flip
    apart = [ranking("fid", {"a": 1.0, "b": 2.0}, 0.1), ranking("kid", {"a": 0.02, "b": 0.01}, 0.001)]
    (flip,) = flips(apart, ["a", "b"], {}, [])
    assert flip.diff_a.rule == "stored intervals overlap" and flip.diff_a.decided and flip.prompts == []
    # the KID values differ in the 6th digit with overlapping intervals: a tie, no flip
    close = [apart[0], ranking("kid", {"a": 0.0100002, "b": 0.0100001}, 0.001)]
    assert flips(close, ["a", "b"], {}, []) == []
