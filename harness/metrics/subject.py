"""Subject fidelity: CLIP-I and DINO, each generated image against the real images of its subject.

Per-sample value = mean cosine of the generated image's embedding with every real image of its
subject (the sample's group). Aggregates per subject and overall, with a subject-then-prompt bootstrap.
A ``real_vs_real`` anchor row gives the same cosine between distinct real images of a subject (no
generation): the ceiling a method can reasonably reach.

DINO: DINO v1 ViT-S/16 (``facebook/dino-vits16`` through transformers ``ViTModel``), CLS token of the
last hidden state (after the final layer norm); resize shorter side 256 bicubic, centre crop 224,
ImageNet mean/std. ``tiny``: a random-init ``ViTModel`` from a small config, same preprocessing.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import WeightsMissingError
from harness.metric_registry import card as metric_card
from harness.metric_registry import register_metric, relabel
from harness.metrics import aggregate_means
from harness.metrics.images import check_uint8, load_png, to_pil
from harness.metrics.refcache import load_or_compute
from harness.metrics.uncertainty import bootstrap_mean
from harness.records import ALL, Aggregate, MetricCard, SampleRecord, SampleScore, ScoreResult

if TYPE_CHECKING:
    from harness.metrics.context import ScoringContext
    from harness.plan import RunPlan
    from harness.specs import MetricSpec

ANCHOR_SET = "real_vs_real"
TINY_SEED = 0
DINO_PREPROCESSING = "resize shorter side 256 bicubic, centre crop 224, ImageNet mean/std; CLS after final norm"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ImageEncoder:
    """Maps PIL images to L2-normalised embeddings (N x D CPU tensor); ``card`` names what it is."""

    embed: Callable[[list[Any]], Any]
    card: MetricCard


def _dino_transform() -> Any:
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def dino_embedder(model: Any) -> Callable[[list[Any]], Any]:
    """CLS embedding after the final layer norm (``last_hidden_state[:, 0]``), L2-normalised."""
    import torch

    from harness.metrics.clip_score import _device

    transform = _dino_transform()
    device = _device()  # the run's device: a GPU when there is one
    _device_model = model.to(device).eval()

    def embed(images: list[Any]) -> Any:
        parts = []
        with torch.no_grad():
            for start in range(0, len(images), 32):
                pixels = torch.stack([transform(im) for im in images[start : start + 32]]).to(device)
                cls = _device_model(pixel_values=pixels).last_hidden_state[:, 0]
                parts.append(torch.nn.functional.normalize(cls.float(), dim=-1).cpu())
        return torch.cat(parts)

    return embed


def build_tiny_dino() -> Any:
    """Random-init ``ViTModel`` (the class of the real DINO) with a small config, patch 16 at 224."""
    import torch
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=224, patch_size=16, qkv_bias=True, layer_norm_eps=1e-6)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        return ViTModel(config, add_pooling_layer=False)


def load_real_dino(spec: MetricSpec) -> tuple[Any, str]:
    """DINO ViT-S/16 from ``$BENCH_DINO_WEIGHTS`` (a folder) or the Hugging Face cache; never downloads."""
    from transformers import ViTModel

    from harness.weights import entry, file_sha256, locate, missing_message

    weights_entry = entry("dino_vits16/weights")
    path = locate(weights_entry)
    if path is None:
        raise WeightsMissingError(missing_message(weights_entry))
    source = os.environ.get("BENCH_DINO_WEIGHTS") or spec.weights
    try:
        model = ViTModel.from_pretrained(source, add_pooling_layer=False, local_files_only=True)
    except OSError as exc:
        raise WeightsMissingError(f"{missing_message(weights_entry)} ({str(exc).splitlines()[0]})") from None
    return model, f"{spec.weights} sha256:{file_sha256(path)[:16]}"


def load_encoder(plan: RunPlan, spec: MetricSpec) -> ImageEncoder:
    """CLIP image tower (``clip_i``) or DINO (``dino``), random-init tiny on ``tiny``."""
    if spec.name == "clip_i":
        from harness.metrics import clip_score

        backbone = clip_score.load(plan, spec)
        card = relabel(backbone.card, "clip_i", scale="raw cosine in [-1, 1] (image-image)")
        return ImageEncoder(lambda images: clip_score.embed_images(backbone, images), card)
    from harness.metrics import microjudges

    if spec.backbone == microjudges.MICRO_DINO:
        card = metric_card("dino", "microworld DINO-analogue judge (CNN trained on attribute classification)",
                           microjudges.weights_identity(spec.backbone), "32x32, ImageNet mean/std (no resize)",
                           "raw cosine in [-1, 1] (image-image)", f"torch {version('torch')}",
                           notes=microjudges.quality_note(spec.backbone))
        return ImageEncoder(microjudges.dino_embedder(), card)
    if plan.profile == "tiny":
        model, weights = build_tiny_dino(), f"random-init (seed {TINY_SEED})"
        backbone_name = "tiny ViTModel (2 layers, width 32, patch 16)"
    else:
        model, weights = load_real_dino(spec)
        backbone_name = f"{spec.backbone} (DINO v1 ViT-S/16)"
    card = metric_card("dino", backbone_name, weights, DINO_PREPROCESSING, "raw cosine in [-1, 1] (image-image)",
                       f"transformers {version('transformers')}")
    return ImageEncoder(dino_embedder(model), card)


def reference_embeddings(encoder: ImageEncoder, references: Any, digest: str) -> tuple[Any, bool]:
    """Embeddings of every reference image, from the on-disk cache when the key matches."""
    check_uint8(references.images, f"reference set '{references.name}'")
    fields = {"metric": encoder.card.metric, "backbone": encoder.card.backbone, "weights": encoder.card.weights,
              "preprocessing": encoder.card.preprocessing, "n": len(references.images),
              "reference": references.name, "digest": digest}
    item, hit = load_or_compute("subject", fields,
                                lambda: {"embeddings": encoder.embed(to_pil(references.images))})
    return item["embeddings"], hit


def subject_indices(groups: list[str]) -> dict[str, np.ndarray]:
    by_subject: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        by_subject[group].append(i)
    return {k: np.array(v) for k, v in by_subject.items()}


def anchor_rows(metric: str, ref_emb: Any, groups: list[str], card: MetricCard,
                resamples: int | None) -> list[Aggregate]:
    """Real-vs-real: mean cosine over pairs of distinct real images of the same subject."""
    from harness.metrics.uncertainty import DEFAULT_RESAMPLES

    similarity = (ref_emb @ ref_emb.T).numpy()
    rows, pooled = [], {"values": [], "anchors": [], "subjects": []}
    for subject, idx in sorted(subject_indices(groups).items()):
        if len(idx) < 2:
            continue
        pairs = [(i, j) for i in idx for j in idx if i != j]
        values = [float(similarity[i, j]) for i, j in pairs]
        anchors = [str(i) for i, _ in pairs]
        interval = bootstrap_mean(values, anchors, None, resamples or DEFAULT_RESAMPLES)
        note = f"real vs real: {len(pairs)} ordered pairs of {len(idx)} real images; CI resamples anchor images"
        rows.append(Aggregate(metric, ANCHOR_SET, subject, float(np.mean(values)), len(idx),
                              {**card.as_dict(), "n": len(idx), "notes": note}, interval.low, interval.high))
        pooled["values"] += values
        pooled["anchors"] += [f"{subject}:{a}" for a in anchors]
        pooled["subjects"] += [subject] * len(values)
    if pooled["values"]:
        interval = bootstrap_mean(pooled["values"], pooled["anchors"], pooled["subjects"],
                                  resamples or DEFAULT_RESAMPLES)
        n = sum(r.n for r in rows)
        rows.append(Aggregate(metric, ANCHOR_SET, ALL, float(np.mean(pooled["values"])), n,
                              {**card.as_dict(), "n": n, "notes": f"real vs real over {len(rows)} subjects; "
                               f"CI: {interval.method}"}, interval.low, interval.high))
    return rows


@register_metric(metric="clip_i", higher_is_better=True, display=("cosine",), per_sample=True,
                 weights=("clip_vit_b32_openai",), default_backbone=("ViT-B-32-quickgelu", "openai"),
                 description="mean CLIP image cosine of each image with the real images of its subject")
@register_metric(metric="dino", higher_is_better=True, display=("cosine",), per_sample=True,
                 weights=("dino_vits16/config", "dino_vits16/weights"),
                 default_backbone=("facebook/dino-vits16", "facebook/dino-vits16"),
                 description="mean DINO ViT-S/16 CLS cosine of each image with the real images of its subject")
def score(ctx: ScoringContext, spec: MetricSpec, records: list[SampleRecord]) -> ScoreResult:
    """Per-sample mean cosine to the subject's real images; per-subject and overall means; anchor rows."""
    references, digest = ctx.references()
    encoder = load_encoder(ctx.plan, spec)
    ref_emb, hit = reference_embeddings(encoder, references, digest)
    by_subject = subject_indices(references.groups)
    missing = sorted({r.group for r in records} - set(by_subject))
    if missing:
        raise ValueError(f"metric '{spec.name}': reference set '{references.name}' has no images of subject(s) "
                         f"{', '.join(missing)} (it has: {', '.join(sorted(by_subject))})")
    gen_emb = encoder.embed(to_pil([load_png(ctx.run_dir / r.file) for r in records]))
    values = [float((gen_emb[k] @ ref_emb[by_subject[r.group]].T).mean()) for k, r in enumerate(records)]
    card = replace(encoder.card, flags=("reference_cache_hit" if hit else "reference_cache_miss",),
                   notes="per image: mean cosine to every real image of its subject")
    per_sample = [SampleScore(spec.name, r.prompt_set, r.prompt_id, r.sample_idx, v)
                  for r, v in zip(records, values, strict=True)]
    aggregates = aggregate_means(spec.name, records, values, card, True, spec.resamples, subjects_are_groups=True)
    aggregates += anchor_rows(spec.name, ref_emb, references.groups, card, spec.resamples)
    return ScoreResult(per_sample, aggregates)
