"""Face identity: MTCNN face crop -> InceptionResnetV1 embedding -> distance to the reference identity.

facenet-pytorch: MTCNN (its weights ship in the package, so it is real on every profile), then
InceptionResnetV1 with VGGFace2 weights from the weights directory (``tiny``: random-init, same class).
The reference identity is the mean of the reference faces' unit embeddings, NOT re-normalised (the
study's definition); each generated face's score is its Euclidean distance to that mean (lower is
better). Images without a detected face get no distance, stay in the per-sample table (value NULL),
are counted (``faceless_count``) and every row shows how many of its N images had a face.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from harness.metric_registry import card as metric_card
from harness.metric_registry import register_metric
from harness.metrics.images import check_uint8, load_png, to_pil
from harness.metrics.refcache import load_or_compute
from harness.metrics.uncertainty import DEFAULT_RESAMPLES, bootstrap_mean
from harness.records import ALL, Aggregate, SampleRecord, SampleScore, ScoreResult

if TYPE_CHECKING:
    from harness.metrics.context import ScoringContext
    from harness.plan import RunPlan
    from harness.specs import MetricSpec

TINY_SEED = 0
CROP = 160
PREPROCESSING = (f"MTCNN (facenet-pytorch defaults, largest face) crop {CROP}x{CROP}, margin 0, "
                 "fixed_image_standardization ((x-127.5)/128)")
SCALE = "Euclidean distance between unit embedding and the mean reference embedding (mean not re-normalised)"


@dataclass
class FaceModels:
    detector: Any
    embedder: Any
    weights: str
    judge: Any = None  # the microworld face judge (detector + embedder in one), instead of MTCNN + FaceNet
    description: str = "MTCNN -> InceptionResnetV1 (512-d)"
    preprocessing: str = PREPROCESSING
    notes: str = ""


def load_models(plan: RunPlan, spec: MetricSpec | None = None) -> FaceModels:
    """MTCNN (packaged weights) and InceptionResnetV1 (VGGFace2 file on ``full``, random-init on ``tiny``), or
    the microworld's face judge when the task names it (``backbone: micro-face``)."""
    import torch
    from facenet_pytorch import MTCNN, InceptionResnetV1

    from harness.metrics import microjudges

    if spec is not None and spec.backbone == microjudges.MICRO_FACE:
        return FaceModels(None, None, microjudges.weights_identity(spec.backbone), judge=microjudges.face_judge(),
                          description="microworld face judge (detector + identity embedder)",
                          preprocessing="32x32, ImageNet mean/std; a face when the detector's probability >= 0.5",
                          notes=microjudges.quality_note(spec.backbone))

    from harness.metrics.clip_score import _device

    device = _device()  # the run's device: a GPU when there is one
    detector = MTCNN(image_size=CROP, margin=0, post_process=True, device=device)
    if plan.profile == "tiny":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_SEED)
            embedder = InceptionResnetV1(pretrained=None, classify=False)
        weights = f"random-init (seed {TINY_SEED})"
    else:
        from harness.weights import require

        path, sha = require("facenet_vggface2")
        embedder = InceptionResnetV1(pretrained=None, classify=False)
        state = torch.load(path, map_location="cpu", weights_only=True)
        embedder.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
        weights = f"vggface2 sha256:{sha[:16]}"
    return FaceModels(detector, embedder.to(device).eval(), weights)


def detect(models: FaceModels, images: list[Any]) -> list[Any]:
    """The standardised face crop (3 x 160 x 160) of each PIL image, or None when MTCNN finds no face."""
    import torch

    with torch.no_grad():
        return [models.detector(image) for image in images]


def embed_faces(models: FaceModels, images: list[Any]) -> list[Any]:
    """Unit face embedding (512) of each image, or None where no face was found."""
    import torch

    if models.judge is not None:
        return list(models.judge.embed(images))
    crops = detect(models, images)
    found = [c for c in crops if c is not None]
    if not found:
        return [None] * len(images)
    device = next(models.embedder.parameters()).device
    with torch.no_grad():
        embeddings = iter(models.embedder(torch.stack(found).to(device)).cpu())
    return [next(embeddings) if c is not None else None for c in crops]


def distances(embeddings: list[Any], reference_mean: Any) -> list[float | None]:
    """Euclidean distance of each embedding to the reference mean; None stays None."""
    return [None if e is None else float((e - reference_mean).norm()) for e in embeddings]


def reference_identity(models: FaceModels, references: Any, digest: str) -> tuple[Any, int, bool]:
    """Mean (not re-normalised) reference embedding, number of reference images with a face, cache hit."""
    import torch

    check_uint8(references.images, f"reference set '{references.name}'")
    fields = {"metric": "face_distance", "detector": models.description + " facenet-pytorch " +
              version("facenet-pytorch"), "weights": models.weights, "preprocessing": models.preprocessing,
              "n": len(references.images),
              "reference": references.name, "digest": digest}

    def compute() -> dict[str, Any]:
        found = [e for e in embed_faces(models, to_pil(references.images)) if e is not None]
        stacked = torch.stack(found) if found else torch.zeros(0, 512)
        return {"embeddings": stacked}

    item, hit = load_or_compute("face", fields, compute)
    embeddings = item["embeddings"]
    mean = embeddings.mean(dim=0) if len(embeddings) else None
    return mean, len(embeddings), hit


@register_metric(metric="face_distance", higher_is_better=False, display=("distance", "faces"), per_sample=True,
                 weights=("facenet_vggface2", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"),
                 default_backbone=("mtcnn+InceptionResnetV1", "vggface2"),
                 description="distance of each image's face embedding to the mean reference face (no face: no value)")
@register_metric(metric="faceless_count", higher_is_better=False, display=("count",), per_sample=False,
                 count=True, beside="face_distance", description="generated images without a detected face")
def score(ctx: ScoringContext, spec: MetricSpec, records: list[SampleRecord]) -> ScoreResult:
    """Per-image face distance (None when faceless), per-set/group means over faces, faceless counts."""
    plan = ctx.plan
    references, digest = ctx.references()
    models = load_models(plan, spec)
    reference_mean, n_ref_faces, hit = reference_identity(models, references, digest)
    embeddings = embed_faces(models, to_pil([load_png(ctx.run_dir / r.file) for r in records]))
    values = distances(embeddings, reference_mean) if reference_mean is not None else [None] * len(records)
    flags = ["reference_cache_hit" if hit else "reference_cache_miss"]
    if plan.profile == "tiny":
        flags.append("random_init")
    if reference_mean is None:
        flags.append("no_reference_face")
    card = metric_card("face_distance", models.description, models.weights, models.preprocessing, SCALE,
                       f"facenet-pytorch {version('facenet-pytorch')}", flags=tuple(flags), notes=models.notes)
    per_sample = [SampleScore("face_distance", r.prompt_set, r.prompt_id, r.sample_idx, v)
                  for r, v in zip(records, values, strict=True)]
    result = ScoreResult(per_sample)
    ref_note = f"reference identity: {n_ref_faces} of {len(references.images)} reference images had a face"
    buckets: dict[tuple[str, str], list[int]] = {}
    for k, r in enumerate(records):
        buckets.setdefault((r.prompt_set, ALL), []).append(k)
        buckets.setdefault((r.prompt_set, r.group), []).append(k)
    for (prompt_set, group), idx in sorted(buckets.items()):
        chosen = [values[k] for k in idx]
        scored = [v for v in chosen if v is not None]
        interval = bootstrap_mean(chosen, [records[k].prompt_id for k in idx], None,
                                  spec.resamples or DEFAULT_RESAMPLES)
        note = (f"mean over the {len(scored)} of {len(idx)} images with a face ({len(idx) - len(scored)} faceless, "
                f"counted in faceless_count); {ref_note}; CI: {interval.method}" + (f"; {models.notes}"
                                                                                   if models.notes else ""))
        row_card = {**card.as_dict(), "n": len(idx), "n_scored": len(scored), "notes": note}
        value = sum(scored) / len(scored) if scored else None
        result.aggregates.append(Aggregate("face_distance", prompt_set, group, value, len(idx), row_card,
                                           interval.low, interval.high))
        if group == ALL:
            detector = "MTCNN (facenet-pytorch)" if models.judge is None else models.description
            count_card = metric_card("faceless_count", detector, models.weights if models.judge is not None
                                     else "packaged MTCNN weights", models.preprocessing,
                                     "count of generated images without a detected face",
                                     f"facenet-pytorch {version('facenet-pytorch')}", n=len(idx))
            result.aggregates.append(Aggregate("faceless_count", prompt_set, ALL, float(len(idx) - len(scored)),
                                               len(idx), count_card.as_dict()))
    return result
