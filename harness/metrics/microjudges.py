"""The microworld's judges (``harness.micro.judges``, trained by ``bench micro build`` and shipped) as backbones
of the ordinary metrics. A task picks one through a metric's ``backbone``:

    micro-clip   clip_score / clip_t / clip_score_all_pairs (text-image), clip_i (image-image)
    micro-dino   dino (subject fidelity), fid / kid (torch-fidelity custom feature extractor)
    micro-face   face_distance / faceless_count (detector + identity embedder)

Every card names the judge, its weights' sha256 and its measured quality (from the weights manifest), so a
number always travels with how good its judge is.
"""

from __future__ import annotations

import json
from typing import Any

MICRO_CLIP, MICRO_DINO, MICRO_FACE = "micro-clip", "micro-dino", "micro-face"
BACKBONES = (MICRO_CLIP, MICRO_DINO, MICRO_FACE)
JUDGE_OF = {MICRO_CLIP: "clip", MICRO_DINO: "dino", MICRO_FACE: "face"}


def is_micro(backbone: str) -> bool:
    return backbone in BACKBONES


def judge_card(backbone: str) -> dict[str, Any]:
    """The judge's card from the shipped manifest (architecture, sha256, how it was trained, measured quality)."""
    from harness.micro import judges

    return judges.card(JUDGE_OF[backbone])


def weights_identity(backbone: str) -> str:
    sha = str(judge_card(backbone).get("sha256", "?"))
    return f"microworld {JUDGE_OF[backbone]} judge sha256:{sha[:16]}"


def quality_note(backbone: str) -> str:
    """The judge's headline measured quality as one short line for a metric card's notes (accuracies and
    intervals; the whole record: ``bench micro show``)."""
    quality = judge_card(backbone).get("quality")
    if not isinstance(quality, dict):
        return f"judge quality ({JUDGE_OF[backbone]}): not measured"
    parts = []
    for key, value in sorted(quality.items()):
        if isinstance(value, float) and ("accuracy" in key or "distance" in key):
            parts.append(f"{key} {value:.3g}")
        elif isinstance(value, dict) and "gap" in key and {"mean", "ci_low", "ci_high"} <= set(value):
            parts.append(f"{key} {value['mean']:.3g} [{value['ci_low']:.3g}, {value['ci_high']:.3g}]")
    return f"judge quality ({JUDGE_OF[backbone]}, bench micro show): {'; '.join(parts) or json.dumps(quality)}"


def clip_parts() -> tuple[Any, Any, Any]:
    """The CLIP judge: (open_clip model, preprocess of PIL images, tokenizer)."""
    from harness.micro import judges

    return judges.load_clip_model(), judges.clip_preprocess(), judges.clip_tokenizer()


def dino_embedder() -> Any:
    """``embed(PIL images) -> N x D`` unit embeddings of the DINO-analogue judge."""
    from harness.micro import judges

    encoder = judges.load_dino()
    return lambda images: encoder.embed(images)


def fid_extractor(cuda: bool) -> tuple[Any, str, str]:
    """The torch-fidelity extractor over the DINO-analogue trunk: (module, registered name, feature layer)."""
    from harness.micro import judges

    module = judges.create_feature_extractor(cuda=cuda)
    return module, judges.FEATURE_EXTRACTOR, "128"


def face_judge() -> Any:
    """The face judge: ``embed(PIL images) -> [unit embedding | None (no face)]``."""
    from harness.micro import judges

    return judges.load_face()
