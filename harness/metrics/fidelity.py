"""FID and KID through torch-fidelity, with cached reference statistics.

Both sides enter as HxWx3 uint8 (generated: lossless PNG; reference: the task's ReferenceSet), go
through the same torch-fidelity extractor, which resizes with its TensorFlow-1.x-exact bilinear
filter. ``full``: ``inception-v3-compat`` from a local weights file (``feature_extractor_weights_path``,
never a download). ``tiny``: a small random-init CNN registered with torch-fidelity as a feature
extractor, so the same functions run; its rows say ``random-init`` and are not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.metric_registry import card as metric_card
from harness.metric_registry import register_metric
from harness.metrics.images import as_torch_dataset, check_uint8, load_png
from harness.metrics.refcache import load_or_compute
from harness.metrics.uncertainty import bootstrap_indices, percentile_interval, shifted_interval
from harness.records import ALL, Aggregate, SampleRecord, ScoreResult

if TYPE_CHECKING:
    from harness.metrics.context import ScoringContext
    from harness.plan import RunPlan
    from harness.specs import MetricSpec

REAL_EXTRACTOR = "inception-v3-compat"
TINY_EXTRACTOR = "bench-tiny-random-cnn"
TINY_SEED = 0
MIN_UNBIASED_N = 2048  # below this FID is noticeably biased upward (Chong & Forsyth 2020); stored but flagged
FID_BOOTSTRAP = 50  # resamples of the generated images at full N
KID_SUBSETS = 100  # torch-fidelity's default
KID_SUBSET_SIZE = 1000  # torch-fidelity's default, capped at the sample counts
KID_SEED = 2020  # torch-fidelity's default rng_seed


def _tiny_extractor_class() -> type:
    import torch
    from torch import nn
    from torch_fidelity import FeatureExtractorBase
    from torch_fidelity.helpers import vassert
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    class TinyRandomExtractor(FeatureExtractorBase):
        """Random-init 2-layer CNN with torch-fidelity's uint8 input contract and TF-1.x bilinear resize."""

        INPUT_IMAGE_SIZE = 64

        def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
            super().__init__(name, features_list)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(TINY_SEED)
                self.net = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 5, stride=2),
                                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.requires_grad_(False)
            self.eval()

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return ("16",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return "16"

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        @staticmethod
        def get_dummy_input_for_compile() -> Any:
            return torch.zeros(1, 3, 4, 4, dtype=torch.uint8)

        def forward(self, x: Any) -> tuple[Any, ...]:
            vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with dtype=uint8")
            size = (self.INPUT_IMAGE_SIZE, self.INPUT_IMAGE_SIZE)
            x = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=size, align_corners=False)
            return (self.net((x - 128) / 128),)

    return TinyRandomExtractor


def register_tiny_extractor() -> None:
    """Register the tiny extractor with torch-fidelity once per process."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if TINY_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(TINY_EXTRACTOR, _tiny_extractor_class())


@dataclass
class Extractor:
    module: Any
    name: str
    layer: str
    weights_identity: str
    random_init: bool

    @property
    def preprocessing(self) -> str:
        size = {REAL_EXTRACTOR: 299, TINY_EXTRACTOR: 64}.get(self.name, 32)
        return (f"HxWx3 uint8 (lossless PNG / reference uint8, same rounding) -> torch-fidelity TF-1.x bilinear "
                f"resize to {size}x{size} (align_corners=False) -> (x-128)/128")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def load_extractor(plan: RunPlan, spec: MetricSpec) -> Extractor:
    """The plan's feature extractor, created through torch-fidelity's registry."""
    from torch_fidelity.utils import create_feature_extractor

    from harness.metrics import microjudges

    if spec.backbone == microjudges.MICRO_DINO:
        module, name, layer = microjudges.fid_extractor(_cuda())
        return Extractor(module, name, layer, microjudges.weights_identity(spec.backbone), False)
    if plan.profile == "tiny":
        register_tiny_extractor()
        module = create_feature_extractor(TINY_EXTRACTOR, ["16"], cuda=_cuda(), verbose=False)
        return Extractor(module, TINY_EXTRACTOR, "16", f"random-init (seed {TINY_SEED})", True)
    if spec.backbone != REAL_EXTRACTOR:
        raise ValueError(f"metric '{spec.name}': backbone '{spec.backbone}' unsupported (expected {REAL_EXTRACTOR})")
    from harness.weights import require

    path, sha = require("inception")
    return extractor_from_file(path, sha)


def extractor_from_file(path: Path, sha: str) -> Extractor:
    """torch-fidelity's InceptionV3 with weights from a local file (``feature_extractor_weights_path``)."""
    from torch_fidelity.utils import create_feature_extractor

    module = create_feature_extractor(REAL_EXTRACTOR, ["2048"], cuda=_cuda(), verbose=False,
                                      feature_extractor_weights_path=str(path))
    return Extractor(module, REAL_EXTRACTOR, "2048", f"sha256:{sha[:16]}", False)


def extract(extractor: Extractor, images: list[np.ndarray]) -> Any:
    """N x D float32 features of uint8 images through torch-fidelity's dataset loop."""
    import torch
    from torch_fidelity.utils import get_featuresdict_from_dataset

    check_uint8(images, "feature extraction")
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(i)
    out = None
    for indices in by_shape.values():  # a batch needs one size; the extractor resizes every size the same way
        part = get_featuresdict_from_dataset(as_torch_dataset([images[i] for i in indices]), extractor.module,
                                             batch_size=32, cuda=_cuda(), save_cpu_ram=True,
                                             verbose=False)[extractor.layer]
        out = torch.empty(len(images), part.shape[1], dtype=part.dtype) if out is None else out
        out[torch.tensor(indices)] = part
    return out


def statistics(features: Any) -> dict[str, np.ndarray]:
    """Mean and covariance as torch-fidelity computes them for FID."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return fid_features_to_statistics(features)


def frechet_distance(stats_a: dict[str, np.ndarray], stats_b: dict[str, np.ndarray]) -> float:
    """torch-fidelity's Frechet distance between two Gaussians (mu, sigma)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    return float(fid_statistics_to_metric(stats_a, stats_b, verbose=False)[KEY_METRIC_FID])


def kid_per_subset(features_a: Any, features_b: Any, subsets: int, subset_size: int, seed: int = KID_SEED
                   ) -> np.ndarray:
    """The per-subset MMD values torch-fidelity averages into KID (same RNG, same draws, same kernel)."""
    from torch_fidelity.defaults import DEFAULTS
    from torch_fidelity.metric_kid import kernel_mmd

    a, b = features_a.cpu().numpy(), features_b.cpu().numpy()
    rng = np.random.RandomState(seed)
    kwargs = {**DEFAULTS, "kid_subsets": subsets, "kid_subset_size": subset_size, "rng_seed": seed}
    values = np.zeros(subsets)
    for i in range(subsets):
        fa = a[rng.choice(len(a), subset_size, replace=False)]
        fb = b[rng.choice(len(b), subset_size, replace=False)]
        values[i] = kernel_mmd(fa, fb, **kwargs)
    return values


def reference_statistics(extractor: Extractor, references: Any, digest: str | None = None
                         ) -> tuple[dict[str, Any], bool, dict[str, Any]]:
    """Features, mu and sigma of the reference set, from the on-disk cache when the key matches."""
    import torch

    check_uint8(references.images, f"reference set '{references.name}'")
    fields = {"extractor": extractor.name, "layer": extractor.layer, "weights": extractor.weights_identity,
              "preprocessing": extractor.preprocessing, "torch_fidelity": version("torch-fidelity"),
              "resolution": sorted({tuple(int(d) for d in im.shape) for im in references.images}),
              "n": len(references.images), "reference": references.name, "digest": digest or references.digest()}

    def compute() -> dict[str, Any]:
        features = extract(extractor, references.images)
        stats = statistics(features)
        return {"features": features, "mu": torch.from_numpy(stats["mu"]), "sigma": torch.from_numpy(stats["sigma"])}

    item, hit = load_or_compute("fidelity", fields, compute)
    return item, hit, fields


def _card(metric: str, extractor: Extractor, n: int, flags: list[str], notes: str) -> dict[str, Any]:
    scale = "FID: squared Frechet distance of features" if metric == "fid" else \
        "KID: polynomial-kernel MMD^2 (torch-fidelity 'unbiased' estimator), mean over subsets; std stored"
    backbone = f"{extractor.name} layer {extractor.layer}"
    card = metric_card(metric, backbone, extractor.weights_identity, extractor.preprocessing, scale,
                       f"torch-fidelity {version('torch-fidelity')}", n=n, flags=tuple(flags), notes=notes)
    return card.as_dict()


INCEPTION = ("inception-v3-compat", "torch-fidelity inception 2015-12-05")


@register_metric(metric="fid", higher_is_better=False, display=("fid",), per_sample=False, weights=("inception",),
                 default_backbone=INCEPTION,
                 description="Frechet distance of Inception features, generated vs the task's reference set")
@register_metric(metric="kid", higher_is_better=False, display=("kid", "std"), per_sample=False,
                 weights=("inception",), default_backbone=INCEPTION,
                 description="kernel inception distance (unbiased MMD^2), mean and std over subsets")
def score(ctx: ScoringContext, spec: MetricSpec, records: list[SampleRecord]) -> ScoreResult:
    """FID or KID of each prompt set's samples against the task's reference set."""
    import torch

    references, digest = ctx.references()
    extractor = load_extractor(ctx.plan, spec)
    ref, hit, fields = reference_statistics(extractor, references, digest)
    ref_stats = {"mu": ref["mu"].numpy(), "sigma": ref["sigma"].numpy()}
    result = ScoreResult()
    for prompt_set in sorted({r.prompt_set for r in records}):
        chosen = [r for r in records if r.prompt_set == prompt_set]
        features = extract(extractor, [load_png(ctx.run_dir / r.file) for r in chosen])
        n, n_ref = len(chosen), len(references.images)
        if min(n, n_ref) < 2:
            raise ValueError(f"metric '{spec.name}' on prompt set '{prompt_set}': needs at least 2 generated and "
                             f"2 reference images (got {n} and {n_ref})")
        flags = ["reference_cache_hit" if hit else "reference_cache_miss"]
        flags += ["random_init"] if extractor.random_init else []
        base_note = (f"N generated {n} vs N reference {n_ref} ('{references.name}', digest {fields['digest']}); "
                     f"reference stats {'loaded from' if hit else 'computed into'} the cache")
        if spec.name == "fid":
            value = frechet_distance(statistics(features), ref_stats)
            repeats = spec.resamples or FID_BOOTSTRAP
            replicates = [frechet_distance(statistics(features[torch.from_numpy(idx)]), ref_stats)
                          for idx in bootstrap_indices(n, repeats)]
            interval = shifted_interval(value, replicates, f"bootstrap of the {n} generated images at full N "
                                        f"({repeats} resamples, references fixed)")
            if n < MIN_UNBIASED_N:
                flags.append("biased_small_n")
            note = f"{base_note}; CI: {interval.method}" + (
                f"; N < {MIN_UNBIASED_N}: biased upward, compare only at equal N" if n < MIN_UNBIASED_N else "")
            row = Aggregate("fid", prompt_set, ALL, value, n, _card("fid", extractor, n, flags, note),
                            interval.low, interval.high)
        else:
            size = min(spec.subset_size or KID_SUBSET_SIZE, n, n_ref)
            repeats = spec.resamples or KID_SUBSETS
            per_subset = kid_per_subset(features, ref["features"], repeats, size)
            interval = percentile_interval(list(per_subset), f"percentiles over {repeats} subsets of {size} "
                                           "drawn without replacement on both sides (torch-fidelity's draws)")
            note = f"{base_note}; CI: {interval.method}"
            row = Aggregate("kid", prompt_set, ALL, float(per_subset.mean()), n,
                            _card("kid", extractor, n, flags, note), interval.low, interval.high,
                            std=float(per_subset.std()))
        result.aggregates.append(row)
    return result
