"""Judge models of the microworld, trained by us on the whole world (held-out values included).

* CLIP judge: open_clip ``CLIP`` (ModifiedResNet image tower, 2-layer text tower, 16-token context), for
  CLIP score / CLIP-T / CLIP-I. Loaded as a ``harness.metrics.clip_score.ClipBackbone``-shaped record.
* DINO analogue ("microdino"): a CNN trained by attribute classification; its global-pooled 128-d feature
  (the CLS-like embedding) serves subject fidelity (DINO score) and, through torch-fidelity, FID / KID.
* Identity judge ("microface"): a small CNN with a face detector head and a 32-d unit identity embedding.

Weights: fp16 safetensors in ``weights/``; cards (with measured quality) in ``weights/manifest.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).parent / "weights"
CLIP_CONTEXT = 16
CLIP_TOKEN_TABLE_SEED = 4321
CLIP_FILE = "judge_clip.safetensors"
DINO_FILE = "judge_dino.safetensors"
FACE_FILE = "judge_face.safetensors"
FEATURE_EXTRACTOR = "microdino-128"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_HEADS = {"shape": 11, "colour": 10, "background": 4, "texture": 4, "person": 9}  # +1: "none" class


def head_labels(attrs: dict[str, Any]) -> dict[str, int]:
    """Class index of each attribute head (the last index of colour / person means 'none': a face / an object)."""
    from harness.micro import world

    return {
        "shape": world.ATTRIBUTE_VALUES["shape"].index(attrs["shape"]),
        "colour": 9 if attrs["colour"] is None else world.ATTRIBUTE_VALUES["colour"].index(attrs["colour"]),
        "background": world.ATTRIBUTE_VALUES["background"].index(attrs["background"]),
        "texture": world.ATTRIBUTE_VALUES["texture"].index(attrs["texture"]),
        "person": 8 if attrs["person"] is None else int(attrs["person"]),
    }


# ---------------------------------------------------------------- CLIP judge

def clip_token_table() -> Any:
    import torch

    generator = torch.Generator().manual_seed(CLIP_TOKEN_TABLE_SEED)
    return torch.randn(49408, 64, generator=generator) * 0.02


def build_clip(seed: int = 0) -> Any:
    """Random-init CLIP judge (ResNet (1,1,1,1) width 16 at 32 px; text 64 x 2 layers; embed 64)."""
    import open_clip
    import torch
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(seed)
    model = open_clip.CLIP(
        embed_dim=64,
        vision_cfg=CLIPVisionCfg(layers=(1, 1, 1, 1), width=16, head_width=16, image_size=32),
        text_cfg=CLIPTextCfg(context_length=CLIP_CONTEXT, vocab_size=49408, width=64, heads=2, layers=2),
    )
    with torch.no_grad():
        model.token_embedding.weight.copy_(clip_token_table())
    model.token_embedding.weight.requires_grad_(False)
    return model


def clip_tokenizer() -> Any:
    """open_clip's BPE tokenizer (OpenAI ids) at the judge's 16-token context."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=CLIP_CONTEXT)


def clip_preprocess() -> Any:
    import open_clip

    return open_clip.image_transform(32, is_train=False)


# ---------------------------------------------------------------- CNN judges

def _conv_block(cin: int, cout: int) -> list[Any]:
    from torch import nn

    return [nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]


def build_dino(seed: int = 0) -> Any:
    """CNN 32->64->128->128 channels over 32/16/8/4 px, global average pool -> 128-d, attribute heads."""
    import torch
    from torch import nn

    class MicroDino(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[Any] = []
            widths = [3, 32, 64, 128, 128]
            for i in range(4):
                layers += _conv_block(widths[i], widths[i + 1])
                if i < 3:
                    layers.append(nn.AvgPool2d(2))
            self.trunk = nn.Sequential(*layers)
            self.norm = nn.LayerNorm(128)
            self.heads = nn.ModuleDict({k: nn.Linear(128, n) for k, n in DINO_HEADS.items()})

        def features(self, x: Any) -> Any:
            """CLS-like embedding (before L2 normalisation): layer-normed pooled trunk feature."""
            return self.norm(self.trunk(x).mean(dim=(2, 3)))

        def forward(self, x: Any) -> dict[str, Any]:
            f = self.features(x)
            return {k: head(f) for k, head in self.heads.items()}

    torch.manual_seed(seed)
    return MicroDino()


def build_face(seed: int = 0) -> Any:
    """CNN 24->48->96 channels, pooled -> face logit + 32-d identity embedding (cosine classifier over 8)."""
    import torch
    from torch import nn

    class MicroFace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[Any] = []
            widths = [3, 24, 48, 96]
            for i in range(3):
                layers += _conv_block(widths[i], widths[i + 1])
                layers.append(nn.AvgPool2d(2))
            self.trunk = nn.Sequential(*layers)
            self.detect = nn.Linear(96 * 16, 1)
            self.embed = nn.Linear(96 * 16, 32)
            self.prototypes = nn.Parameter(torch.randn(8, 32))

        def forward(self, x: Any) -> tuple[Any, Any]:
            f = self.trunk(x).flatten(1)
            return self.detect(f).squeeze(1), nn.functional.normalize(self.embed(f), dim=-1)

    torch.manual_seed(seed)
    return MicroFace()


def to_tensor(images: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """N x 32 x 32 x 3 uint8 (array or list of arrays / PIL) -> normalised float N x 3 x 32 x 32."""
    import numpy as np
    import torch

    array = np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im) for im in images])
    x = torch.from_numpy(array).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != 32 or x.shape[-2] != 32:
        x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


# ---------------------------------------------------------------- loading

def manifest(folder: Path = WEIGHTS_DIR) -> dict[str, Any]:
    path = folder / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def card(name: str, folder: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The judge's card (name, architecture, params, sha256, training command, seed, steps, measured quality)."""
    return dict(manifest(folder).get("judges", {}).get(name, {"name": name, "quality": "not measured"}))


def _load(module: Any, path: Path, skip_missing: tuple[str, ...] = ()) -> Any:
    import torch
    from safetensors.torch import load_file

    from harness.errors import WeightsMissingError

    if not path.is_file():
        raise WeightsMissingError(f"microworld judge weights {path} missing; run `python -m harness.micro.build`")
    state = {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in skip_missing]
    if missing or unexpected:
        raise RuntimeError(f"{path.name}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return module.eval().requires_grad_(False)


def load_clip_model(folder: Path = WEIGHTS_DIR) -> Any:
    return _load(build_clip(), folder / CLIP_FILE, ("token_embedding.weight",))


def load_dino_model(folder: Path = WEIGHTS_DIR) -> Any:
    return _load(build_dino(), folder / DINO_FILE)


@dataclass
class MicroEncoder:
    """Maps PIL images / uint8 arrays to L2-normalised embeddings (N x D CPU tensor), like subject.ImageEncoder."""

    model: Any
    kind: str
    card: dict[str, Any] = field(default_factory=dict)

    def embed(self, images: list[Any]) -> Any:
        import torch

        parts = []
        with torch.no_grad():
            for start in range(0, len(images), 256):
                chunk = images[start:start + 256]
                if self.kind == "clip":
                    x = to_tensor(chunk, CLIP_MEAN, CLIP_STD)
                    parts.append(torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1))
                else:
                    x = to_tensor(chunk, IMAGENET_MEAN, IMAGENET_STD)
                    parts.append(torch.nn.functional.normalize(self.model.features(x).float(), dim=-1))
        return torch.cat(parts)

    __call__ = embed


def load_dino(folder: Path = WEIGHTS_DIR) -> MicroEncoder:
    """The DINO analogue: ``.embed(images) -> N x 128`` unit CLS-like embeddings (subject fidelity)."""
    return MicroEncoder(load_dino_model(folder), "dino", card("dino", folder))


def load_clip_image_encoder(folder: Path = WEIGHTS_DIR) -> MicroEncoder:
    """The CLIP judge's image tower as an encoder (CLIP-I)."""
    return MicroEncoder(load_clip_model(folder), "clip", card("clip", folder))


@dataclass
class MicroFaceJudge:
    """Face detector + identity embedder. ``detect`` -> probabilities; ``embed`` -> unit 32-d or None (no face)."""

    model: Any
    card: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5  # detection probability
    same_identity_distance: float = 0.8  # Euclidean distance below which two faces are the same person

    def _run(self, images: list[Any]) -> tuple[Any, Any]:
        import torch

        logits, embeddings = [], []
        with torch.no_grad():
            for start in range(0, len(images), 256):
                lo, em = self.model(to_tensor(images[start:start + 256], IMAGENET_MEAN, IMAGENET_STD))
                logits.append(lo)
                embeddings.append(em)
        return torch.sigmoid(torch.cat(logits)), torch.cat(embeddings)

    def detect(self, images: list[Any]) -> Any:
        return self._run(images)[0]

    def embed(self, images: list[Any]) -> list[Any]:
        probs, embeddings = self._run(images)
        return [e if p >= self.threshold else None for p, e in zip(probs.tolist(), embeddings, strict=True)]


def load_face(folder: Path = WEIGHTS_DIR) -> MicroFaceJudge:
    c = card("face", folder)
    judge = MicroFaceJudge(_load(build_face(), folder / FACE_FILE), c)
    if "same_identity_distance" in c:
        judge.same_identity_distance = float(c["same_identity_distance"])
    return judge


# ---------------------------------------------------------------- torch-fidelity

def _extractor_class() -> type:
    import torch
    from torch_fidelity import FeatureExtractorBase
    from torch_fidelity.helpers import vassert
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    class MicroDinoExtractor(FeatureExtractorBase):
        """torch-fidelity extractor over the microdino trunk: uint8 N x 3 x H x W -> 128-d pooled features."""

        def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None,
                     **kwargs: Any) -> None:
            super().__init__(name, features_list)
            folder = Path(feature_extractor_weights_path).parent if feature_extractor_weights_path else WEIGHTS_DIR
            self.net = load_dino_model(folder)
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255)
            self.requires_grad_(False)
            self.eval()

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return ("128",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return "128"

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        @staticmethod
        def get_dummy_input_for_compile() -> Any:
            return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)

        def forward(self, x: Any) -> tuple[Any, ...]:
            vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with dtype=uint8")
            x = x.float()
            if x.shape[-2:] != (32, 32):
                x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(32, 32), align_corners=False)
            return (self.net.features((x - self.mean) / self.std),)

    return MicroDinoExtractor


def register_feature_extractor() -> str:
    """Register the microdino extractor with torch-fidelity (once per process); returns its name."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if FEATURE_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(FEATURE_EXTRACTOR, _extractor_class())
    return FEATURE_EXTRACTOR


def create_feature_extractor(cuda: bool = False) -> Any:
    """The registered extractor instance, created through torch-fidelity (feature layer '128')."""
    from torch_fidelity.utils import create_feature_extractor as create

    return create(register_feature_extractor(), ["128"], cuda=cuda, verbose=False)
