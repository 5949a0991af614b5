"""Metrics on real tiny runs: cached reference statistics, subject fidelity, faces, cards and CIs,
degenerate counts in the leaderboard, `bench weights`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from harness.cli import app
from harness.data import ReferenceSet
from harness.errors import WeightsMissingError
from harness.metrics import ALL, ScoringContext, face, fidelity, subject
from harness.metrics.images import load_png
from harness.plan import build_plan
from harness.records import SampleRecord

FID_SPEC = "tests/specs/cifar_fid.yaml"
SUBJECT_SPEC = "tests/specs/cifar_subjects.yaml"


def _records(store, run_id: str, prompt_set: str) -> list[SampleRecord]:
    rows = [r for r in store.samples(run_id) if r["prompt_set"] == prompt_set]
    return [SampleRecord(r["prompt_set"], r["prompt_id"], r["prompt"], r["grp"], r["sample_idx"], r["seed"], r["file"],
                         r["mean_intensity"], r["near_black"], r["checkpoint"]) for r in rows]


def _metric(plan, name: str):
    return next(m for m in plan.task.evaluation.metrics if m.name == name)


def test_second_scoring_reuses_cached_reference_statistics(tiny_runs, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    store, outcomes = tiny_runs["store"], tiny_runs["outcomes"]
    plan = build_plan(FID_SPEC, "frozen", "tiny")
    spec = _metric(plan, "fid")
    first_run, second_run = outcomes["frozen"], outcomes["xattn_ft"]
    first = fidelity.score(ScoringContext(plan, first_run.run_dir), spec,
                           _records(store, first_run.run_id, "A")).aggregates[0]
    second = fidelity.score(ScoringContext(plan, second_run.run_dir), spec,
                            _records(store, second_run.run_id, "A")).aggregates[0]
    again = fidelity.score(ScoringContext(plan, first_run.run_dir), spec,
                           _records(store, first_run.run_id, "A")).aggregates[0]
    assert "reference_cache_miss" in first.card["flags"]
    assert "reference_cache_hit" in second.card["flags"] and "reference_cache_hit" in again.card["flags"]
    assert len(list((tmp_path / "cache" / "reference_stats" / "fidelity").glob("*.pt"))) == 1
    assert again.value == pytest.approx(first.value, rel=1e-9)
    assert first.n == 50 and first.card["n"] == 50 and "biased_small_n" in first.card["flags"]
    assert first.card["weights"].startswith("random-init") and first.ci_low <= first.ci_high


def test_reference_cache_key_follows_the_reference_subset(tiny_runs, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    plan = build_plan(FID_SPEC, "frozen", "tiny")
    extractor = fidelity.load_extractor(plan, _metric(plan, "fid"))
    from harness.data import load_references

    full = load_references(plan)
    _, hit_full, _ = fidelity.reference_statistics(extractor, full)
    fewer = ReferenceSet(full.name, full.images[:-1], full.groups[:-1])
    _, hit_fewer, fields = fidelity.reference_statistics(extractor, fewer)
    assert (hit_full, hit_fewer) == (False, False) and fields["n"] == len(full.images) - 1


def test_kid_row_has_std_and_subset_interval(tiny_runs) -> None:
    store, run = tiny_runs["store"], tiny_runs["outcomes"]["lora_unet_r1"]
    plan = build_plan(FID_SPEC, "lora_unet_r1", "tiny")
    ctx = ScoringContext(plan, run.run_dir)
    row = fidelity.score(ctx, _metric(plan, "kid"), _records(store, run.run_id, "A")).aggregates[0]
    assert row.metric == "kid" and row.std is not None and row.std >= 0
    assert row.ci_low <= row.value <= row.ci_high and "subsets of 50" in row.card["notes"]


def _identity_references(store, run, per_group: int) -> tuple[list[SampleRecord], ReferenceSet]:
    records = _records(store, run.run_id, "A")
    chosen: dict[str, list[SampleRecord]] = {}
    for r in records:
        chosen.setdefault(r.group, [])
        if len(chosen[r.group]) < per_group:
            chosen[r.group].append(r)
    picked = [r for group in sorted(chosen) for r in chosen[group]]
    images = [load_png(run.run_dir / r.file) for r in picked]
    return picked, ReferenceSet("identity", images, [r.group for r in picked])


@pytest.mark.parametrize("metric", ["clip_i", "dino"])
def test_subject_similarity_of_identical_images_is_one(tiny_runs, monkeypatch, metric) -> None:
    store, run = tiny_runs["store"], tiny_runs["outcomes"]["frozen"]
    records, references = _identity_references(store, run, per_group=1)
    monkeypatch.setattr("harness.data.load_references", lambda plan: references)
    plan = build_plan(SUBJECT_SPEC, "frozen", "tiny")
    result = subject.score(ScoringContext(plan, run.run_dir), _metric(plan, metric), records)
    assert [s.value for s in result.per_sample] == pytest.approx([1.0] * len(records), abs=1e-5)
    overall = next(a for a in result.aggregates if a.prompt_set == "A" and a.group == ALL)
    assert overall.n == 10 and overall.value == pytest.approx(1.0, abs=1e-5)
    assert {a.group for a in result.aggregates if a.prompt_set == "A"} == {ALL, *references.groups}
    assert not [a for a in result.aggregates if a.prompt_set == subject.ANCHOR_SET]  # one real image per subject


def test_real_vs_real_anchor_is_mean_cosine_of_distinct_real_images(tiny_runs, monkeypatch) -> None:
    store, run = tiny_runs["store"], tiny_runs["outcomes"]["frozen"]
    records, references = _identity_references(store, run, per_group=2)
    monkeypatch.setattr("harness.data.load_references", lambda plan: references)
    plan = build_plan(SUBJECT_SPEC, "frozen", "tiny")
    encoder = subject.load_encoder(plan, _metric(plan, "clip_i"))
    embeddings = encoder.embed([Image.fromarray(im) for im in references.images])
    result = subject.score(ScoringContext(plan, run.run_dir), _metric(plan, "clip_i"), records)
    anchors = {a.group: a for a in result.aggregates if a.prompt_set == subject.ANCHOR_SET}
    group = references.groups[0]
    expected = float(embeddings[0] @ embeddings[1])
    assert anchors[group].value == pytest.approx(expected, abs=1e-5) and anchors[group].n == 2
    assert anchors[ALL].n == len(references.images)


def test_face_distance_to_mean_reference_is_not_renormalised() -> None:
    embeddings = [torch.tensor([1.0, 0.0]), None, torch.tensor([0.0, 1.0])]
    mean = torch.stack([e for e in embeddings if e is not None]).mean(dim=0)
    assert face.distances(embeddings, mean) == pytest.approx([np.sqrt(0.5), None, np.sqrt(0.5)])


def test_mtcnn_finds_no_face_on_blank_images_and_the_run_counts_them(tmp_path, monkeypatch) -> None:
    blank = [np.full((160, 160, 3), v, dtype=np.uint8) for v in (0, 255, 128)]
    (tmp_path / "samples").mkdir()
    records = []
    for i, image in enumerate(blank):
        Image.fromarray(image).save(tmp_path / "samples" / f"B.p{i}__000.png")
        records.append(SampleRecord("B", f"B.p{i}", f"prompt {i}", f"p{i}", 0, i, f"samples/B.p{i}__000.png",
                                    float(image.mean()), False))
    monkeypatch.setattr("harness.data.load_references", lambda plan: ReferenceSet("blank", blank, ["me"] * 3))
    plan = build_plan(SUBJECT_SPEC, "frozen", "tiny")
    models = face.load_models(plan)
    assert face.detect(models, [Image.fromarray(im) for im in blank]) == [None, None, None]
    result = face.score(ScoringContext(plan, tmp_path), _metric(plan, "face_distance"), records)
    assert [s.value for s in result.per_sample] == [None, None, None]
    faceless = next(a for a in result.aggregates if a.metric == "faceless_count")
    assert (faceless.value, faceless.n) == (3.0, 3)
    overall = next(a for a in result.aggregates if a.metric == "face_distance" and a.group == ALL)
    assert overall.value is None and overall.n == 3 and overall.card["n_scored"] == 0
    assert "no_reference_face" in overall.card["flags"]


def test_every_tiny_aggregate_carries_card_ci_and_n(tiny_runs) -> None:
    store = tiny_runs["store"]
    for outcome in tiny_runs["outcomes"].values():
        rows = [r for r in store.aggregates(outcome.run_id) if r["metric"] == "clip_score"]
        assert rows
        for row in rows:
            card = row["card"]
            assert {"backbone", "weights", "preprocessing", "scale", "library"} <= set(card)
            assert card["n"] == row["n"] > 0 and card["weights"].startswith("random-init")
            assert row["ci_low"] is not None and row["ci_low"] <= row["ci_high"]


def test_leaderboard_puts_near_black_beside_its_metric(tiny_runs) -> None:
    """In the wide board each count follows its metric (the ranking metric's count follows the compact block)."""
    from harness.report import print_leaderboard

    store = tiny_runs["store"]
    console = Console(record=True, width=400)
    print_leaderboard(console, store, "cifar_alignment", "tiny", wide=True, fmt="csv")
    text = console.export_text()
    header = text.splitlines()[0].split(",")
    assert header.index("near_black_count [B] ↓") == header.index("clip_score [B] ↑") + 1
    assert header.index("near_black_count [A] ↓") == header.index("train s") + 1
    assert header.index("clip_score [A] ↑") < header.index("train s")
    assert "N=50" in text


def test_bench_weights_reports_missing_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path / "weights"))
    runner = CliRunner()
    full = runner.invoke(app, ["weights", "--task", "cifar_alignment"])
    assert full.exit_code == 3
    assert "weights missing" in full.output and "--profile tiny" in full.output
    tiny = runner.invoke(app, ["weights", "--task", "cifar_alignment", "--profile", "tiny"])
    assert tiny.exit_code == 0
    listing = runner.invoke(app, ["weights"])
    assert listing.exit_code == 0 and "inception" in listing.output and "facenet_vggface2" in listing.output


def test_inception_weights_are_required_and_hash_checked(tmp_path, monkeypatch) -> None:
    from harness.weights import require

    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsMissingError, match="BENCH_INCEPTION_WEIGHTS"):
        require("inception")
    wrong = tmp_path / "inception" / "weights-inception-2015-12-05-6726825d.pth"
    wrong.parent.mkdir()
    wrong.write_bytes(b"not the inception weights")
    with pytest.raises(WeightsMissingError, match="does not match"):
        require("inception")


def test_full_extractor_loads_inception_from_the_weights_file_without_download(tmp_path, monkeypatch) -> None:
    """The full path (torch-fidelity InceptionV3 + feature_extractor_weights_path), fed a random-init state dict."""
    from torch_fidelity import feature_extractor_inceptionv3 as inception

    def no_download(*args, **kwargs):
        raise AssertionError("torch-fidelity tried to download Inception weights")

    with monkeypatch.context() as patch:
        patch.setattr(inception, "load_state_dict_from_url", lambda *a, **k: {})
        patch.setattr(inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        random_init = inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path / "inception.pth"
    torch.save(random_init.state_dict(), path)
    monkeypatch.setattr(inception, "load_state_dict_from_url", no_download)
    extractor = fidelity.extractor_from_file(path, "ab" * 32)
    images = [np.random.default_rng(i).integers(0, 256, size=(32, 48, 3), dtype=np.uint8) for i in range(2)]
    features = fidelity.extract(extractor, images)
    assert features.shape == (2, 2048) and extractor.weights_identity == "sha256:" + "ab" * 8
    assert "299x299" in extractor.preprocessing


def test_one_scoring_pass_loads_references_once_and_keeps_clip_variants_apart(tiny_runs, monkeypatch) -> None:
    from harness import data, metrics
    from harness.metrics import clip_score

    store, run = tiny_runs["store"], tiny_runs["outcomes"]["frozen"]
    plan = build_plan(FID_SPEC, "frozen", "tiny")
    calls = []
    real_loader = data.load_references
    monkeypatch.setattr("harness.data.load_references", lambda p: calls.append(p) or real_loader(p))
    records = _records(store, run.run_id, "A") + _records(store, run.run_id, "B")
    result = metrics.score(ScoringContext(plan, run.run_dir), records)
    assert len(calls) == 1  # fid and kid share one load
    rows = {(a.metric, a.prompt_set, a.group): a for a in result.aggregates}
    assert ("clip_score_all_pairs", "A", ALL) not in rows  # the spec applies it to prompt set B only
    assert {k[2] for k in rows if k[0] == "clip_score_all_pairs"} == {ALL}
    paired = {(s.prompt_id, s.sample_idx): s.value for s in result.per_sample if s.metric == "clip_score"}
    stored = {(s["prompt_id"], s["sample_idx"]): s["value"] for s in store.sample_scores(run.run_id)}
    assert all(paired[k] == pytest.approx(stored[k], abs=1e-6) for k in paired)  # same paired cosine as the run
    b_records = [r for r in records if r.prompt_set == "B"]
    backbone = clip_score.load(plan, _metric(plan, "clip_score"))
    images = [Image.open(run.run_dir / r.file).convert("RGB") for r in b_records]
    texts = sorted({r.prompt for r in b_records})
    matrix = clip_score.embed_images(backbone, images) @ clip_score.embed_texts(backbone, texts).T
    assert rows[("clip_score_all_pairs", "B", ALL)].value == pytest.approx(float(matrix.mean()), abs=1e-6)


@pytest.mark.parametrize(("metric", "variable"), [("dino", "BENCH_DINO_WEIGHTS"),
                                                  ("face_distance", "BENCH_FACENET_WEIGHTS")])
def test_full_profile_without_weights_fails_with_one_clear_message(tmp_path, monkeypatch, metric, variable) -> None:
    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    plan = build_plan(SUBJECT_SPEC, "frozen", "full")
    load = subject.load_encoder if metric == "dino" else (lambda p, s: face.load_models(p))
    with pytest.raises(WeightsMissingError) as info:
        load(plan, _metric(plan, metric))
    message = str(info.value)
    assert variable in message and "--profile tiny" in message and "\n" not in message


def test_real_dino_and_facenet_loading_code_reads_local_files(tmp_path, monkeypatch) -> None:
    """Random-init stand-ins written where the real files go exercise the full-profile loaders."""
    from facenet_pytorch import InceptionResnetV1

    subject.build_tiny_dino().save_pretrained(tmp_path / "dino")
    monkeypatch.setenv("BENCH_DINO_WEIGHTS", str(tmp_path / "dino"))
    facenet = InceptionResnetV1(pretrained=None, classify=False).state_dict()
    facenet |= {"logits.weight": torch.zeros(8631, 512), "logits.bias": torch.zeros(8631)}
    (tmp_path / "w" / "facenet").mkdir(parents=True)
    torch.save(facenet, tmp_path / "w" / "facenet" / "20180402-114759-vggface2.pt")
    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path / "w"))
    plan = build_plan(SUBJECT_SPEC, "frozen", "full")
    encoder = subject.load_encoder(plan, _metric(plan, "dino"))
    embedding = encoder.embed([Image.new("RGB", (300, 200), (120, 30, 200))])
    assert embedding.shape == (1, 32) and float(embedding.norm()) == pytest.approx(1.0, abs=1e-5)
    assert encoder.card.weights.startswith("facebook/dino-vits16 sha256:")
    models = face.load_models(plan)
    assert models.weights.startswith("vggface2 sha256:")
    assert torch.equal(models.embedder.last_linear.weight, facenet["last_linear.weight"])


def test_every_stored_interval_contains_its_value(study_db: dict) -> None:
    """Every aggregate with an interval (CLIP, CLIP-I, DINO, FID, KID, face distance, per group, per checkpoint,
    headline copies) holds its own value: no interval computed around another statistic."""
    import duckdb

    con = duckdb.connect(str(study_db["db"]), read_only=True)
    rows = con.execute("SELECT metric, prompt_set, grp, value, ci_low, ci_high FROM metrics "
                       "WHERE ci_low IS NOT NULL AND ci_high IS NOT NULL AND value IS NOT NULL").fetchall()
    con.close()
    metrics = {r[0] for r in rows}
    assert {"clip_score", "clip_i", "dino", "fid", "kid"} <= metrics  # tiny faces are never detected: no distance
    outside = [r for r in rows if not r[4] - 1e-9 <= r[3] <= r[5] + 1e-9]
    assert outside == []
