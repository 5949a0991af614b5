"""Metric numerics without weights: Frechet distance closed forms, KID estimators, resize filter,
uint8 rounding, PNG round trip, bootstrap intervals and the metric spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.metrics import fidelity
from harness.metrics.images import load_png, to_uint8
from harness.metrics.uncertainty import bootstrap_indices, bootstrap_mean, shifted_interval
from harness.specs import MetricSpec, SpecError


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


def _stats(mu: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
    return {"mu": mu, "sigma": sigma}


def test_frechet_equal_covariances_is_squared_mean_difference() -> None:
    rng = np.random.default_rng(0)
    sigma = _spd(rng, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    value = fidelity.frechet_distance(_stats(mu1, sigma), _stats(mu2, sigma))
    assert value == pytest.approx(float(((mu1 - mu2) ** 2).sum()), rel=1e-7, abs=1e-7)


def test_frechet_diagonal_covariances() -> None:
    rng = np.random.default_rng(1)
    d1, d2 = rng.uniform(0.5, 3, size=5), rng.uniform(0.5, 3, size=5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()
    value = fidelity.frechet_distance(_stats(mu1, np.diag(d1)), _stats(mu2, np.diag(d2)))
    assert value == pytest.approx(expected, rel=1e-9)


def test_frechet_scaled_covariance() -> None:
    rng = np.random.default_rng(2)
    sigma, c = _spd(rng, 4), 2.25
    mu = rng.normal(size=4)
    expected = np.trace(sigma) * (1 - np.sqrt(c)) ** 2
    value = fidelity.frechet_distance(_stats(mu, sigma), _stats(mu, c * sigma))
    assert value == pytest.approx(expected, rel=1e-7)


def test_frechet_identical_sets_zero_and_symmetric() -> None:
    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.normal(size=(300, 8)).astype(np.float32))
    b = torch.from_numpy(rng.normal(1.0, 2.0, size=(200, 8)).astype(np.float32))
    sa, sb = fidelity.statistics(a), fidelity.statistics(b)
    assert abs(fidelity.frechet_distance(sa, sa)) < 1e-6
    forward, backward = fidelity.frechet_distance(sa, sb), fidelity.frechet_distance(sb, sa)
    assert forward > 1.0
    assert forward == pytest.approx(backward, rel=1e-9)


def test_kid_u_statistic_is_exactly_zero_for_identical_sets() -> None:
    from torch_fidelity.metric_kid import kernel_poly, mmd2

    x = np.random.default_rng(4).normal(size=(50, 8))
    k = kernel_poly(x, x, kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    assert mmd2(k, k, k, mmd_est="u-statistic") == pytest.approx(0.0, abs=1e-12 * np.abs(k).max())


def test_torch_fidelity_kid_estimator_on_identical_sets_matches_its_closed_form() -> None:
    """torch-fidelity's KID uses mmd_est='unbiased' (cross term over all m*m pairs): not 0 for X == X."""
    from torch_fidelity.defaults import DEFAULTS
    from torch_fidelity.metric_kid import kernel_mmd, kernel_poly

    x = np.random.default_rng(5).normal(size=(40, 8))
    m = len(x)
    k = kernel_poly(x, x, **DEFAULTS)
    off_diagonal, diagonal = k.sum() - np.trace(k), np.trace(k)
    expected = 2 * off_diagonal / (m * (m - 1)) - 2 * (off_diagonal + diagonal) / (m * m)
    assert kernel_mmd(x, x, **DEFAULTS) == pytest.approx(expected, rel=1e-10)
    assert expected < 0


def test_kid_per_subset_reproduces_torch_fidelity() -> None:
    from torch_fidelity.defaults import DEFAULTS
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    rng = np.random.default_rng(6)
    a = torch.from_numpy(rng.normal(size=(60, 8)).astype(np.float32))
    b = torch.from_numpy(rng.normal(0.5, 1.0, size=(70, 8)).astype(np.float32))
    ours = fidelity.kid_per_subset(a, b, subsets=20, subset_size=30)
    theirs = kid_features_to_metric(a, b, **{**DEFAULTS, "kid_subsets": 20, "kid_subset_size": 30, "verbose": False})
    assert ours.mean() == pytest.approx(theirs[KEY_METRIC_KID_MEAN], rel=1e-12)
    assert ours.std() == pytest.approx(theirs[KEY_METRIC_KID_STD], rel=1e-12)


def _tf1_bilinear(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Independent reference: TF 1.x resize_bilinear, align_corners=False, no half-pixel centres."""
    in_h, in_w = image.shape
    ys, xs = np.arange(out_h) * (in_h / out_h), np.arange(out_w) * (in_w / out_w)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, in_h - 1), np.minimum(x0 + 1, in_w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def test_resize_is_tensorflow1_bilinear_not_torch_half_pixel() -> None:
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    checker = (np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.float64)
    tensor = torch.from_numpy(checker)[None, None].float()
    resized = interpolate_bilinear_2d_like_tensorflow1x(tensor, size=(299, 299), align_corners=False)[0, 0].numpy()
    assert np.abs(resized - _tf1_bilinear(checker, 299, 299)).max() < 1e-3
    half_pixel = torch.nn.functional.interpolate(tensor, size=(299, 299), mode="bilinear", align_corners=False)
    assert np.abs(resized - half_pixel[0, 0].numpy()).max() > 50


def test_tiny_extractor_uses_the_same_resize_and_uint8_contract() -> None:
    from torch_fidelity.utils import create_feature_extractor

    fidelity.register_tiny_extractor()
    extractor = create_feature_extractor(fidelity.TINY_EXTRACTOR, ["16"], cuda=False, verbose=False)
    with pytest.raises(Exception, match="uint8"):
        extractor(torch.zeros(1, 3, 8, 8))
    image = np.random.default_rng(7).integers(0, 256, size=(40, 24, 3), dtype=np.uint8)
    wrapped = fidelity.Extractor(extractor, fidelity.TINY_EXTRACTOR, "16", "random-init (seed 0)", True)
    first, again = fidelity.extract(wrapped, [image]), fidelity.extract(wrapped, [image.copy()])
    assert first.shape == (1, 16) and torch.equal(first, again)
    other = np.random.default_rng(9).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    mixed = fidelity.extract(wrapped, [image, other, image])  # sizes differ: extracted per size, order kept
    assert torch.allclose(mixed[0], first[0]) and torch.allclose(mixed[2], first[0])
    assert torch.allclose(mixed[1], fidelity.extract(wrapped, [other])[0])


def test_uint8_rounding_matches_diffusers_on_half_steps() -> None:
    from diffusers.image_processor import VaeImageProcessor

    # diffusers clamps to [0, 1] before numpy_to_pil; half steps k + 0.5 are where rounding rules differ
    steps = np.append((np.arange(255, dtype=np.float32) + 0.5) / 255, np.float32(1.0))
    pixels = np.stack([steps, steps[::-1], np.linspace(0, 1, 256, dtype=np.float32)], axis=-1)[None]
    ours = to_uint8(pixels)
    theirs = np.asarray(VaeImageProcessor.numpy_to_pil(pixels[None])[0])
    assert np.array_equal(ours, theirs)
    assert to_uint8(np.array([[[1.5 / 255, -0.2, 1.7]]], dtype=np.float32)).tolist() == [[[2, 0, 255]]]


def test_png_round_trip_is_lossless_and_lossy_formats_are_refused(tmp_path: Path) -> None:
    from PIL import Image

    image = np.random.default_rng(8).integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "x.png")
    assert np.array_equal(load_png(tmp_path / "x.png"), image)
    Image.fromarray(image).save(tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="lossless PNG"):
        load_png(tmp_path / "x.jpg")


def test_bootstrap_resamples_prompts_and_ignores_missing_values() -> None:
    values = [1.0, 1.0, 3.0, 3.0, None]
    prompts = ["a", "a", "b", "b", "c"]
    interval = bootstrap_mean(values, prompts, resamples=500)
    assert 1.0 <= interval.low < 2.0 < interval.high <= 3.0
    same = bootstrap_mean([2.0, 2.0, 2.0], ["a", "b", "c"], resamples=200)
    assert same.low == same.high == 2.0
    by_subject = bootstrap_mean([1.0, 1.0, 5.0, 5.0], ["p", "q", "p", "q"], ["s1", "s1", "s2", "s2"], resamples=500)
    assert "subjects" in by_subject.method and by_subject.low == 1.0 and by_subject.high == 5.0
    single_prompt = bootstrap_mean([1.0, 3.0], ["a", "a"], resamples=500)
    assert "single prompt" in single_prompt.method and single_prompt.low < single_prompt.high
    assert bootstrap_mean([1.0, None], ["a", "b"]).low is None


def test_fid_interval_is_a_full_n_bootstrap_that_contains_the_estimate() -> None:
    """Synthetic Gaussian features: FID at N/2 (the old subsampling interval) sits far above the full-N FID;
    the bias-corrected full-N bootstrap interval contains it."""
    import torch

    from harness.metrics.fidelity import frechet_distance, statistics

    rng = np.random.default_rng(0)
    generated = torch.from_numpy(rng.normal(0.3, 1.0, (400, 32)))
    reference = statistics(torch.from_numpy(rng.normal(0.0, 1.0, (2000, 32))))
    value = frechet_distance(statistics(generated), reference)
    replicates = [frechet_distance(statistics(generated[torch.from_numpy(i)]), reference)
                  for i in bootstrap_indices(400, 50)]
    assert np.mean(replicates) > value  # duplicates inflate FID: the raw percentiles would miss the estimate
    interval = shifted_interval(value, replicates, "test")
    assert interval.low < value < interval.high and "bias" in interval.method
    half = frechet_distance(statistics(generated[:200]), reference)
    assert half > interval.high  # what the old N/2 subsampling interval was centred on
    for idx in bootstrap_indices(20, 5):
        assert len(idx) == 20 and idx.max() < 20


def test_metric_spec_defaults_and_prompt_set_check(tmp_path: Path) -> None:
    import yaml

    from harness.specs import load_task

    assert MetricSpec(name="fid").backbone == "inception-v3-compat"
    assert MetricSpec(name="clip_score").backbone == "ViT-B-32-quickgelu"
    assert MetricSpec(name="dino").weights == "facebook/dino-vits16"
    spec = yaml.safe_load(Path("tests/specs/cifar_fid.yaml").read_text())
    spec["evaluation"]["metrics"].append({"name": "fid", "prompt_sets": ["Z"]})
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="prompt set 'Z'"):
        load_task(tmp_path / "t.yaml")
