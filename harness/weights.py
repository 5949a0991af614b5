"""Every weights file the metrics and model families need: where it goes, how it is found, its hash.

The table is data. ``require(key)`` resolves one entry to a local file (never downloading) or raises
one clear WeightsMissingError; ``check(...)`` reports presence for ``bench weights``. Which metrics use
a file is read from the metrics' declarations (``register_metric(weights=...)``), not written here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import WeightsMissingError
from harness.paths import cache_dir, file_sha256

WEIGHTS_ENV = "BENCH_WEIGHTS"


@dataclass(frozen=True)
class WeightFile:
    """One needed file. ``location``: ``weights_dir`` ($BENCH_WEIGHTS/<path>), ``hf`` (Hugging Face cache,
    repo ``repo`` file ``path``), ``package`` (ships inside a pip package)."""

    key: str
    models: tuple[str, ...]  # "model:<family>" entries that load it (metrics declare their own files)
    location: str
    path: str  # relative path under the weights dir, file inside the HF repo, or inside the package
    env_var: str  # a variable pointing straight at the file (or folder for hf entries)
    source: str  # where a networked machine gets it
    sha256: str | None = None  # full hex, or a prefix (torch.hub convention) where only that is published
    repo: str | None = None
    alternatives: tuple[str, ...] = ()  # other file names that serve (e.g. .bin instead of .safetensors)

    @property
    def used_by(self) -> tuple[str, ...]:
        """Metrics whose declaration names this file, then the model families that load it."""
        from harness.metric_registry import metrics_using

        return (*metrics_using(self.key), *self.models)


def _hf(key: str, models: tuple[str, ...], repo: str, path: str, env_var: str,
        alternatives: tuple[str, ...] = ()) -> WeightFile:
    return WeightFile(key, models, "hf", path, env_var, f"hf download {repo} (Hugging Face hub)", repo=repo,
                      alternatives=alternatives)


def _diffusers(family: str, repo: str, components: dict[str, str]) -> list[WeightFile]:
    """config + weights of each diffusers component a family loads (sharded files: their index)."""
    rows = []
    for component, weights_name in components.items():
        bin_name = (weights_name.replace("model.safetensors", "pytorch_model.bin")
                    if weights_name.startswith("model.") else weights_name.replace(".safetensors", ".bin"))
        rows.append(_hf(f"{family}:{component}/config", (f"model:{family}",), repo, f"{component}/config.json",
                        "--model-path"))
        rows.append(_hf(f"{family}:{component}/weights", (f"model:{family}",), repo, f"{component}/{weights_name}",
                        "--model-path", alternatives=(f"{component}/{bin_name}",)))
    return rows


_UNET = "diffusion_pytorch_model.safetensors"
_TE = "model.safetensors"

WEIGHT_FILES: list[WeightFile] = [
    WeightFile("inception", (), "weights_dir", "inception/weights-inception-2015-12-05-6726825d.pth",
               "BENCH_INCEPTION_WEIGHTS",
               "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth", sha256="6726825d"),
    WeightFile("facenet_vggface2", (), "weights_dir", "facenet/20180402-114759-vggface2.pt",
               "BENCH_FACENET_WEIGHTS",
               "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"),
    *[WeightFile(f"mtcnn_{net}", (), "package", f"facenet_pytorch/data/{net}.pt", "-",
                 "ships in the facenet-pytorch wheel") for net in ("pnet", "rnet", "onet")],
    _hf("clip_vit_b32_openai", (), "timm/vit_base_patch32_clip_224.openai",
        "open_clip_pytorch_model.bin", "BENCH_CLIP_WEIGHTS", alternatives=("open_clip_model.safetensors",)),
    _hf("dino_vits16/config", (), "facebook/dino-vits16", "config.json", "BENCH_DINO_WEIGHTS"),
    _hf("dino_vits16/weights", (), "facebook/dino-vits16", "pytorch_model.bin", "BENCH_DINO_WEIGHTS",
        alternatives=("model.safetensors",)),
    *_diffusers("sd15", "runwayml/stable-diffusion-v1-5", {"unet": _UNET, "vae": _UNET, "text_encoder": _TE}),
    *_diffusers("sd21", "stabilityai/stable-diffusion-2-1-base", {"unet": _UNET, "vae": _UNET, "text_encoder": _TE}),
    *_diffusers("sdxl", "stabilityai/stable-diffusion-xl-base-1.0",
                {"unet": _UNET, "vae": _UNET, "text_encoder": _TE, "text_encoder_2": _TE}),
    *_diffusers("sdxl_refiner", "stabilityai/stable-diffusion-xl-refiner-1.0",
                {"unet": _UNET, "vae": _UNET, "text_encoder_2": _TE}),
    *_diffusers("flux", "black-forest-labs/FLUX.1-dev",
                {"transformer": f"{_UNET}.index.json", "vae": _UNET, "text_encoder": _TE,
                 "text_encoder_2": f"{_TE}.index.json"}),
    # The microworld: base model and judges trained by `bench micro build`, shipped in the package (their
    # sha256 and the command and seed that made them are in harness/micro/weights/manifest.json).
    *[WeightFile(f"micro:{name}", models, "package", f"harness/micro/weights/{name}", "-",
                 "ships with this project (rebuild: bench micro build)")
      for name, models in (("unet.safetensors", ("model:micro",)), ("vae.safetensors", ("model:micro",)),
                           ("vae_scaling.json", ("model:micro",)), ("text_encoder.safetensors", ("model:micro",)),
                           ("judge_clip.safetensors", ("backbone:micro-clip",)),
                           ("judge_dino.safetensors", ("backbone:micro-dino",)),
                           ("judge_face.safetensors", ("backbone:micro-face",)))],
]

def weights_dir() -> Path:
    """``$BENCH_WEIGHTS`` or ``<bench cache>/weights``."""
    return Path(os.environ.get(WEIGHTS_ENV, cache_dir() / "weights"))


def entry(key: str) -> WeightFile:
    return next(w for w in WEIGHT_FILES if w.key == key)


def where(w: WeightFile) -> str:
    """Where the file is expected, in words."""
    if w.location == "weights_dir":
        return f"${WEIGHTS_ENV}/{w.path} ({weights_dir() / w.path})"
    if w.location == "package":
        return f"<site-packages>/{w.path}"
    return f"HF cache ($HF_HOME) {w.repo}/{w.path}"


def locate(w: WeightFile) -> Path | None:
    """The local file of an entry, or None; never downloads."""
    override = os.environ.get(w.env_var) if w.env_var.startswith("BENCH_") else None
    if w.location == "weights_dir":
        path = Path(override) if override else weights_dir() / w.path
        return path if path.is_file() else None
    if w.location == "package":
        import importlib.util

        spec = importlib.util.find_spec(w.path.split("/")[0])
        if spec is None or spec.origin is None:
            return None
        path = Path(spec.origin).parent.joinpath(*w.path.split("/")[1:])
        return path if path.is_file() else None
    if override:
        folder = Path(override)
        if folder.is_file():
            return folder
        for name in (w.path, *w.alternatives):
            if (folder / name).is_file():
                return folder / name
        return None
    from huggingface_hub import try_to_load_from_cache

    for name in (w.path, *w.alternatives):
        found = try_to_load_from_cache(w.repo, name)
        if isinstance(found, str):
            return Path(found)
    return None


def missing_message(w: WeightFile) -> str:
    """One line: what is missing, where to put it, how to fetch it, and the tiny fallback."""
    if w.key.startswith("micro:"):
        return (f"weights missing: '{w.key}' (used by {', '.join(w.used_by)}) expected at {where(w)}; it ships with "
                "this project: restore it (git checkout harness/micro/weights) or rebuild it with `bench micro build`")
    pointer = f"or point {w.env_var} at it" if w.env_var.startswith("BENCH_") else f"or pass {w.env_var}"
    return (f"weights missing: '{w.key}' (used by {', '.join(w.used_by)}) expected at {where(w)} {pointer}; "
            f"fetch it on a networked machine from {w.source}; `--profile tiny` runs anywhere without weights")


def require(key: str) -> tuple[Path, str]:
    """Local path and sha256 of an entry; one clear error if absent or if its hash contradicts the table."""
    w = entry(key)
    path = locate(w)
    if path is None:
        raise WeightsMissingError(missing_message(w))
    sha = file_sha256(path)
    if w.sha256 and not sha.startswith(w.sha256):
        raise WeightsMissingError(f"weights '{key}' at {path}: sha256 {sha[:16]}... does not match the expected "
                                  f"{w.sha256} (wrong file or variant; get it from {w.source})")
    return path, sha


@dataclass(frozen=True)
class Presence:
    weight: WeightFile
    path: Path | None
    sha_ok: bool | None  # None: not checked (or no expected hash)


# Families that load another family's files too: every SDXL task samples with the SDXL refiner (its spec's
# ``model.refiner_hub_id`` / ``sampling.refine_fraction``), so its files are needed with the base's.
IMPLIED_FAMILIES = {"sdxl": ("sdxl_refiner",)}


def task_families(model: Any) -> list[str]:
    """The weight families a task's model spec loads: its family, plus the refiner when it names one."""
    return [model.family, *(["sdxl_refiner"] if getattr(model, "refiner_hub_id", None) else [])]


def needed_keys(metric_names: list[str], families: list[str], profile: str = "full",
                backbones: dict[str, str] | None = None) -> list[str]:
    """Keys of the table a set of metrics and model families needs (with the families they imply: the SDXL
    refiner for ``sdxl``); ``tiny`` needs only packaged files. A metric computed by another backbone than its
    declared one (``backbones``: metric -> backbone, e.g. ``micro-clip``) needs that backbone's files instead."""
    from harness.metric_registry import declaration

    backbones = backbones or {}
    families = [*families, *(extra for f in families for extra in IMPLIED_FAMILIES.get(f, ()))]
    by_backbone = {f"backbone:{backbones[name]}" for name in metric_names if name in backbones}
    declared = {key for name in metric_names if f"backbone:{backbones.get(name)}" not in
                {m for w in WEIGHT_FILES for m in w.models} for key in declaration(name).weights}
    keys = []
    for w in WEIGHT_FILES:
        wanted = w.key in declared or any(f"model:{f}" in w.models for f in families) or \
            bool(by_backbone & set(w.models))
        if wanted and (profile == "full" or w.location == "package") and w.key not in keys:
            keys.append(w.key)
    return keys


def check(keys: list[str] | None = None, verify: bool = False) -> list[Presence]:
    """Presence (and optionally the hash) of each entry, all of them when ``keys`` is None."""
    rows = []
    for w in WEIGHT_FILES:
        if keys is not None and w.key not in keys:
            continue
        path = locate(w)
        sha_ok = None
        if verify and path is not None and w.sha256:
            sha_ok = file_sha256(path).startswith(w.sha256)
        rows.append(Presence(w, path, sha_ok))
    return rows
