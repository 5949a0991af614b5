"""CLIP score through open_clip: cosine of the paired prompt and image embeddings (raw, in [-1, 1]).

``full``: ViT-B-32-quickgelu with OpenAI weights (the plain ``ViT-B-32`` name would load them with
the wrong activation). ``tiny``: a small random-init open_clip ``CLIP``, labelled as such.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness.errors import WeightsMissingError
from harness.metrics import MetricCard, SampleScore, ScoreResult, aggregate_means
from harness.plan import RunPlan
from harness.sampling import SampleRecord
from harness.specs import MetricSpec

TINY_SEED = 0
PREPROCESSING = "open_clip eval transform: resize shorter side {size} bicubic, centre crop {size}, CLIP mean/std"


@dataclass
class ClipBackbone:
    model: Any
    preprocess: Any
    tokenizer: Any
    card: MetricCard


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _card(backbone: str, weights: str, size: int) -> MetricCard:
    return MetricCard("clip_score", backbone, weights, PREPROCESSING.format(size=size),
                      "raw cosine in [-1, 1]; x100 at display", f"open_clip_torch {version('open_clip_torch')}",
                      higher_is_better=True)


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
    card = _card(backbone, f"{weights} sha256:{_file_sha256(path)[:16]}", int(size))
    return ClipBackbone(model.eval(), preprocess, open_clip.get_tokenizer(backbone), card)


def load(plan: RunPlan, spec: MetricSpec) -> ClipBackbone:
    """The plan's CLIP backbone: random-init tiny on ``tiny``, pretrained on ``full``."""
    return build_tiny() if plan.profile == "tiny" else load_real(spec.backbone, spec.weights)


def cosine_scores(backbone: ClipBackbone, images: list[Any], texts: list[str], batch_size: int = 32) -> list[float]:
    """Cosine between each image and its own text (paired, never all-pairs)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = backbone.model.to(device)
    values: list[float] = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pixels = torch.stack([backbone.preprocess(im) for im in images[start : start + batch_size]]).to(device)
            tokens = backbone.tokenizer(texts[start : start + batch_size]).to(device)
            image_emb = torch.nn.functional.normalize(model.encode_image(pixels).float(), dim=-1)
            text_emb = torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
            values.extend((image_emb * text_emb).sum(dim=-1).tolist())
    return values


def score(plan: RunPlan, spec: MetricSpec, records: list[SampleRecord], run_dir: Path) -> ScoreResult:
    """Per-sample CLIP score of each image against its own prompt, plus per-set and per-class means."""
    from PIL import Image

    backbone = load(plan, spec)
    images = [Image.open(run_dir / r.file).convert("RGB") for r in records]
    values = cosine_scores(backbone, images, [r.prompt for r in records])
    per_sample = [SampleScore("clip_score", r.prompt_set, r.prompt_id, r.sample_idx, v)
                  for r, v in zip(records, values, strict=True)]
    return ScoreResult(per_sample, aggregate_means("clip_score", records, values, backbone.card))
