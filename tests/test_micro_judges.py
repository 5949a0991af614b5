"""Microworld judges and base model: quality floors on freshly generated images (small versions of the
measurements in ``harness.micro.quality``). Each floor has a negative case: the same architecture at
random init (untrained) must fail it, so the test can fail."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.micro import base, build, judges, quality, world  # noqa: E402

# floors asserted here (fresh images, small n); the manifest holds the full-size measurements
CLIP_CAPTION_ACCURACY = 0.85
CLIP_GAP_FLOOR = 0.2  # matched minus one-attribute-swapped caption cosine, bootstrap CI lower bound
DINO_HEAD_ACCURACY = 0.9
FACE_DETECTOR_ACCURACY = 0.95
FACE_VERIFICATION_ACCURACY = 0.9


@pytest.fixture(scope="module")
def clip_scorer():
    return quality.ClipScorer(judges.load_clip_model())


@pytest.fixture(scope="module")
def random_clip_scorer():
    return quality.ClipScorer(judges.build_clip(seed=0).eval())


def test_shipped_files_match_the_manifest():
    manifest = judges.manifest()
    for name, entry in manifest["files"].items():
        path = judges.WEIGHTS_DIR / name
        assert path.stat().st_size == entry["bytes"] < 10_000_000
        assert build.sha256(path) == entry["sha256"], name
    for name in ("clip", "dino", "face"):
        card = judges.card(name)
        assert {"name", "architecture", "params", "sha256", "training", "quality"} <= set(card)
        assert card["training"]["seed"] is not None and card["training"]["steps"] > 0


@pytest.mark.parametrize("trained", [True, False], ids=["shipped", "random-init-fails"])
def test_clip_judge_zero_shot_and_cosine_gap(trained, clip_scorer, random_clip_scorer):
    scorer = clip_scorer if trained else random_clip_scorer
    result = quality.clip_quality(scorer, n=96, seed=9501)
    passes = (result["caption_accuracy_held_in"] >= CLIP_CAPTION_ACCURACY
              and result["caption_accuracy_held_out"] >= CLIP_CAPTION_ACCURACY
              and result["cosine_gap_matched_minus_swapped_held_in"]["ci_low"] > CLIP_GAP_FLOOR
              and result["cosine_gap_matched_minus_swapped_held_out"]["ci_low"] > CLIP_GAP_FLOOR)
    assert passes == trained, result


def test_clip_judge_works_as_a_clip_backbone():
    from harness.metrics.clip_score import load_micro

    backbone = load_micro()
    images, captions, _ = world.make_arrays(8, seed=9502)
    from PIL import Image

    pixels = torch.stack([backbone.preprocess(Image.fromarray(im)) for im in images])
    with torch.no_grad():
        image_emb = torch.nn.functional.normalize(backbone.model.encode_image(pixels), dim=-1)
        text_emb = torch.nn.functional.normalize(backbone.model.encode_text(backbone.tokenizer(captions)), dim=-1)
    similarity = image_emb @ text_emb.T
    assert (similarity.argmax(dim=1) == torch.arange(8)).all()
    assert backbone.card.higher_is_better


@pytest.mark.parametrize("trained", [True, False], ids=["shipped", "random-init-fails"])
def test_dino_judge_attribute_heads_and_embedding(trained):
    model = judges.load_dino_model() if trained else judges.build_dino(seed=0).eval()
    result = quality.dino_quality(model, n=96, seed=9511)
    passes = (result["attribute_accuracy"] >= DINO_HEAD_ACCURACY
              and result["cosine_gap_same_minus_different"]["ci_low"] > 0.2)
    assert passes == trained, result


def test_feature_extractor_through_torch_fidelity():
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    extractor = judges.create_feature_extractor()
    real_a, _, _ = world.make_arrays(200, seed=9521)
    real_b, _, _ = world.make_arrays(200, seed=9522)
    noise = world.noise_images(200, seed=9523)

    def features(images):
        with torch.no_grad():
            return extractor(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())[0]

    stats = [fid_features_to_statistics(features(x)) for x in (real_a, real_b, noise)]
    assert features(real_a[:4]).shape == (4, 128)
    fid_real = fid_statistics_to_metric(stats[0], stats[1], verbose=False)["frechet_inception_distance"]
    fid_noise = fid_statistics_to_metric(stats[0], stats[2], verbose=False)["frechet_inception_distance"]
    assert fid_noise > 10 * fid_real


@pytest.mark.parametrize("trained", [True, False], ids=["shipped", "random-init-fails"])
def test_face_judge_detects_and_separates_identities(trained):
    judge = judges.load_face() if trained else judges.MicroFaceJudge(judges.build_face(seed=0).eval())
    result = quality.face_quality(judge, n=64, seed=9531)
    passes = (result["detector_accuracy"] >= FACE_DETECTOR_ACCURACY
              and result["verification_accuracy"] >= FACE_VERIFICATION_ACCURACY
              and result["distance_different_person"] > 2 * result["distance_same_person"])
    assert passes == trained, result


def test_face_judge_embed_returns_none_without_a_face():
    judge = judges.load_face()
    faces, _, _ = world.make_arrays(4, seed=9541, person=1)
    objects, _, _ = world.make_arrays(4, seed=9542, shape="square")
    embedded = judge.embed(list(faces) + list(objects))
    assert all(e is not None for e in embedded[:4]) and all(e is None for e in embedded[4:])


@pytest.fixture(scope="module")
def bundle():
    return base.load_base()


def test_base_loads_as_a_diffusion_bundle(bundle):
    assert bundle.family == "micro" and bundle.weights_identity.startswith("microworld base ")
    assert bundle.tokenizer.model_max_length == base.MAX_LENGTH
    assert bundle.unet.dtype == torch.float32
    assert bundle.noise_scheduler.config.beta_schedule == "scaled_linear"


def test_base_samples_score_between_noise_and_real(bundle, clip_scorer):
    prompts = [p for p in quality.prompts_held_in(8, seed=9551) for _ in range(2)]
    generated = clip_scorer.paired(base.sample(bundle, prompts, list(range(len(prompts)))), prompts)
    real = clip_scorer.paired(quality.real_for(prompts, seed=9552), prompts)
    noise = clip_scorer.paired(world.noise_images(len(prompts), seed=9553), prompts)
    g, r, n = (quality.bootstrap(x) for x in (generated, real, noise))
    assert g["ci_low"] > n["ci_high"], (g, n)
    assert g["ci_high"] < r["ci_low"], (g, r)


def test_base_is_worse_on_held_out_colour(bundle, clip_scorer):
    held_in = [p for p in quality.prompts_held_in(8, seed=9561) for _ in range(2)]
    purple = [p for p in quality.prompts_with(8, seed=9562, colour="purple") for _ in range(2)]
    scores = {name: clip_scorer.paired(base.sample(bundle, prompts, list(range(len(prompts)))), prompts)
              for name, prompts in (("held_in", held_in), ("purple", purple))}
    assert quality.bootstrap(scores["held_in"])["ci_low"] > quality.bootstrap(scores["purple"])["ci_high"], scores


def test_random_unet_fails_the_noise_floor(bundle, clip_scorer):
    """Negative case for the base floor: the same bundle with a random-init UNet does not beat noise clearly."""
    unet, _, _ = base.build_modules(seed=0)
    random_bundle = base.load_base()
    random_bundle.unet = unet.eval()
    prompts = [p for p in quality.prompts_held_in(8, seed=9551) for _ in range(2)]
    generated = clip_scorer.paired(base.sample(random_bundle, prompts, list(range(len(prompts)))), prompts)
    real = clip_scorer.paired(quality.real_for(prompts, seed=9552), prompts)
    assert quality.bootstrap(generated)["ci_high"] < 0.5 * np.mean(real)
