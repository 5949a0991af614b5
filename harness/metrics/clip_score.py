"""CLIP score through open_clip: cosine of the paired prompt and image embeddings (raw, in [-1, 1]).

Metric names served here: ``clip_score`` and ``clip_t`` (the same paired cosine; ``clip_t`` is its name
in subject-fidelity tables) and ``clip_score_all_pairs``, the face study's average of every prompt of a
prompt set against every image of it, which mixes unrelated pairs and exists only under its own name.
Stored values are raw cosines; x100 and CLIPScore's 2.5 * max(cos, 0) are derived at display.

``full``: ViT-B-32-quickgelu with OpenAI weights (the plain ``ViT-B-32`` name would load them with
the wrong activation). ``tiny``: a small random-init open_clip ``CLIP``, labelled as such.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import WeightsMissingError
from harness.metric_registry import card as metric_card
from harness.metric_registry import register_metric, relabel
from harness.metrics import aggregate_means
from harness.records import MetricCard, SampleRecord, SampleScore, ScoreResult

if TYPE_CHECKING:
    from harness.metrics.context import ScoringContext
    from harness.plan import RunPlan
    from harness.specs import MetricSpec

TINY_SEED = 0
PREPROCESSING = "open_clip eval transform: resize shorter side {size} bicubic, centre crop {size}, CLIP mean/std"


@dataclass
class ClipBackbone:
    model: Any
    preprocess: Any
    tokenizer: Any
    card: MetricCard


SCALE = "raw cosine in [-1, 1]; displayed also x100 and as 2.5*max(cos, 0) (Hessel et al. CLIPScore)"


def _card(backbone: str, weights: str, size: int) -> MetricCard:
    return metric_card("clip_score", backbone, weights, PREPROCESSING.format(size=size), SCALE,
                       f"open_clip_torch {version('open_clip_torch')}")


def build_tiny() -> ClipBackbone:
    """Small random-init open_clip CLIP (same class as the real one) with the real BPE tokenizer."""
    import open_clip
    import torch
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(TINY_SEED)
    size = 32
    model = open_clip.CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=8, image_size=size),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
        quick_gelu=True,
    ).eval()
    preprocess = open_clip.image_transform(size, is_train=False)
    card = _card("tiny open_clip CLIP (ViT 2x64, text 2x32)", f"random-init (seed {TINY_SEED})", size)
    return ClipBackbone(model, preprocess, open_clip.get_tokenizer("ViT-B-32"), card)


def load_real(backbone: str, weights: str) -> ClipBackbone:
    """Pretrained open_clip model from ``$BENCH_CLIP_WEIGHTS`` (a file) or the open_clip / HF cache."""
    import open_clip

    from harness.weights import file_sha256

    override = os.environ.get("BENCH_CLIP_WEIGHTS")
    if override:
        path = Path(override)
        if not path.is_file():
            raise WeightsMissingError(f"BENCH_CLIP_WEIGHTS={override}: no such file (expected the {backbone} "
                                      f"'{weights}' checkpoint)")
    else:
        config = open_clip.get_pretrained_cfg(backbone, weights)
        if not config:
            raise WeightsMissingError(f"open_clip has no pretrained tag '{weights}' for '{backbone}'")
        try:
            path = Path(open_clip.download_pretrained(config))
        except Exception as exc:  # offline: hub errors of several types
            raise WeightsMissingError(
                f"CLIP weights missing: {backbone} '{weights}' is not in the cache ({type(exc).__name__}). "
                f"On a machine with network run `python -c \"import open_clip; open_clip.create_model('{backbone}',"
                f" pretrained='{weights}')\"` and copy the Hugging Face cache to HF_HOME here, or point "
                "BENCH_CLIP_WEIGHTS at the checkpoint file"
            ) from None
    model, _, preprocess = open_clip.create_model_and_transforms(backbone, pretrained=str(path))
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else size
    card = _card(backbone, f"{weights} sha256:{file_sha256(path)[:16]}", int(size))
    return ClipBackbone(model.eval(), preprocess, open_clip.get_tokenizer(backbone), card)


def load_micro() -> ClipBackbone:
    """The microworld's CLIP judge (open_clip ``CLIP`` trained on the whole world, held-out values included)."""
    from harness.metrics import microjudges

    model, preprocess, tokenizer = microjudges.clip_parts()
    card = metric_card("clip_score", "microworld CLIP judge (open_clip CLIP, ResNet tower, 32 px)",
                       microjudges.weights_identity(microjudges.MICRO_CLIP),
                       "32x32, CLIP mean/std (no resize)", SCALE, f"open_clip_torch {version('open_clip_torch')}",
                       notes=microjudges.quality_note(microjudges.MICRO_CLIP))
    return ClipBackbone(model, preprocess, tokenizer, card)


def load(plan: RunPlan, spec: MetricSpec) -> ClipBackbone:
    """The plan's CLIP backbone: the microworld judge when the task names it, else random-init tiny on
    ``tiny`` and pretrained on ``full``."""
    from harness.metrics.microjudges import MICRO_CLIP

    if spec.backbone == MICRO_CLIP:
        return load_micro()
    return build_tiny() if plan.profile == "tiny" else load_real(spec.backbone, spec.weights)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def embed_images(backbone: ClipBackbone, images: list[Any], batch_size: int = 32) -> Any:
    """L2-normalised image embeddings (N x D, CPU float32) of PIL images."""
    import torch

    model = backbone.model.to(_device())
    parts = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pixels = torch.stack([backbone.preprocess(im) for im in images[start : start + batch_size]])
            parts.append(torch.nn.functional.normalize(model.encode_image(pixels.to(_device())).float(), dim=-1))
    return torch.cat(parts).cpu()


def embed_texts(backbone: ClipBackbone, texts: list[str], batch_size: int = 32) -> Any:
    """L2-normalised text embeddings (N x D, CPU float32)."""
    import torch

    model = backbone.model.to(_device())
    parts = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            tokens = backbone.tokenizer(texts[start : start + batch_size]).to(_device())
            parts.append(torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1))
    return torch.cat(parts).cpu()


def cosine_scores(backbone: ClipBackbone, images: list[Any], texts: list[str], batch_size: int = 32) -> list[float]:
    """Cosine between each image and its own text (paired, never all-pairs)."""
    image_emb = embed_images(backbone, images, batch_size)
    text_emb = embed_texts(backbone, texts, batch_size)
    return (image_emb * text_emb).sum(dim=-1).tolist()


def all_pairs_scores(backbone: ClipBackbone, images: list[Any], texts: list[str]) -> list[float]:
    """For each image, its mean cosine against every distinct text given (the all-pairs variant)."""
    distinct = sorted(set(texts))
    similarity = embed_images(backbone, images) @ embed_texts(backbone, distinct).T
    return similarity.mean(dim=1).tolist()


CLIP_DEFAULT = ("ViT-B-32-quickgelu", "openai")
CLIP_WEIGHTS = ("clip_vit_b32_openai",)
CLIP_DISPLAY = ("cosine", "x100", "clipscore")


@register_metric(metric="clip_score", higher_is_better=True, display=CLIP_DISPLAY, per_sample=True,
                 weights=CLIP_WEIGHTS, default_backbone=CLIP_DEFAULT,
                 description="CLIP cosine of each image with its own prompt (identifier removed)")
@register_metric(metric="clip_score_all_pairs", higher_is_better=True, display=CLIP_DISPLAY, per_sample=True,
                 weights=CLIP_WEIGHTS, default_backbone=CLIP_DEFAULT,
                 description="mean CLIP cosine of each image with every prompt of its prompt set (face study)")
@register_metric(metric="clip_t", higher_is_better=True, display=CLIP_DISPLAY, per_sample=True,
                 weights=CLIP_WEIGHTS, default_backbone=CLIP_DEFAULT,
                 description="clip_score under its subject-fidelity name (CLIP-T)")
def score(ctx: ScoringContext, spec: MetricSpec, records: list[SampleRecord]) -> ScoreResult:
    """Per-sample CLIP cosine (paired, or all-pairs for ``clip_score_all_pairs``) plus per-set / per-group
    means; the text of a sample is its prompt without the method's identifier (``ctx.text_of``)."""
    from dataclasses import replace

    from harness.metrics.images import load_png, to_pil

    backbone = load(ctx.plan, spec)
    card = relabel(backbone.card, spec.name)
    values: list[float] = []
    ordered: list[SampleRecord] = []
    for prompt_set in sorted({r.prompt_set for r in records}):
        chosen = [r for r in records if r.prompt_set == prompt_set]
        images = to_pil([load_png(ctx.run_dir / r.file) for r in chosen])
        texts = [ctx.text_of(r) for r in chosen]
        if spec.name == "clip_score_all_pairs":
            values += all_pairs_scores(backbone, images, texts)
            card = replace(card, notes="all pairs: each image against every prompt of its prompt set "
                                       "(mixes unrelated pairs; not comparable with clip_score)")
        else:
            values += cosine_scores(backbone, images, texts)
        ordered += chosen
    per_sample = [SampleScore(spec.name, r.prompt_set, r.prompt_id, r.sample_idx, v)
                  for r, v in zip(ordered, values, strict=True)]
    per_group = spec.name != "clip_score_all_pairs"
    return ScoreResult(per_sample, aggregate_means(spec.name, ordered, values, card, per_group, spec.resamples))
