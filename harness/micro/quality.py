"""Measured quality of the microworld judges and base model, on freshly generated images (never training data).

Every function takes sample counts so the tests can run small versions of the same measurement; the
manifest's figures come from ``measure_all`` with the defaults. Seeds 9000+ are evaluation-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.micro import world


def bootstrap(values: Any, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean and percentile 95% CI of the mean."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    return {"mean": round(float(values.mean()), 4), "ci_low": round(float(np.percentile(means, 2.5)), 4),
            "ci_high": round(float(np.percentile(means, 97.5)), 4), "n": int(len(values))}


def _held_out_arrays(n: int, seed: int) -> tuple[np.ndarray, list[str], list[dict[str, Any]]]:
    """``n`` fresh samples each carrying at least one held-out value."""
    rng = np.random.default_rng(seed)
    images, captions, attrs = [], [], []
    while len(images) < n:
        a = world.sample_attributes(rng)
        if world.is_held_out(a):
            images.append(world.render(a))
            captions.append(world.caption(a))
            attrs.append(a)
    return np.stack(images), captions, attrs


def swap_one(attrs: dict[str, Any], rng: np.random.Generator) -> str:
    """The caption with exactly one captioned attribute changed (the hard negative)."""
    a = dict(attrs)
    names = ["person", "background"] if a["shape"] == world.FACE else ["shape", "colour", "background", "texture"]
    name = names[int(rng.integers(len(names)))]
    values = [v for v in world.ATTRIBUTE_VALUES[name] if v != a[name] and v != world.FACE]
    a[name] = values[int(rng.integers(len(values)))]
    return world.caption(a)


class ClipScorer:
    """Embeds images and captions with the CLIP judge; caches the embeddings of every world caption."""

    def __init__(self, model: Any) -> None:
        from harness.micro import judges

        self.model = model
        self.tokenizer = judges.clip_tokenizer()
        self.captions = world.all_captions()
        self.text_emb = self.texts(self.captions)

    def images(self, images: Any) -> Any:
        import torch

        from harness.micro import judges

        with torch.no_grad():
            parts = [self.model.encode_image(judges.to_tensor(images[i:i + 256], judges.CLIP_MEAN, judges.CLIP_STD))
                     for i in range(0, len(images), 256)]
        return torch.nn.functional.normalize(torch.cat(parts).float(), dim=-1)

    def texts(self, texts: list[str]) -> Any:
        import torch

        with torch.no_grad():
            parts = [self.model.encode_text(self.tokenizer(texts[i:i + 512])) for i in range(0, len(texts), 512)]
        return torch.nn.functional.normalize(torch.cat(parts).float(), dim=-1)

    def paired(self, images: Any, texts: list[str]) -> np.ndarray:
        return (self.images(images) * self.texts(texts)).sum(-1).numpy()

    def classify(self, images: Any) -> list[dict[str, Any]]:
        """Zero-shot: each image's best caption among all world captions, parsed back to attributes."""
        best = (self.images(images) @ self.text_emb.T).argmax(dim=1).tolist()
        return [world.parse_caption(self.captions[i]) for i in best]


def attribute_hits(predicted: list[dict[str, Any]], truth: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("shape", "colour", "background", "texture", "person"):
        pairs = [(p[name], t[name]) for p, t in zip(predicted, truth, strict=True)
                 if t[name] is not None and not (name == "texture" and t["shape"] == world.FACE)]
        if pairs:
            out[name] = round(float(np.mean([p == t for p, t in pairs])), 4)
    captioned = [{k: t[k] for k in world.CAPTIONED} for t in truth]
    out["caption"] = round(float(np.mean([{k: p[k] for k in world.CAPTIONED} == c
                                          for p, c in zip(predicted, captioned, strict=True)])), 4)
    return out


def clip_quality(scorer: ClipScorer, n: int = 600, seed: int = 9001) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    result: dict[str, Any] = {}
    for split, (images, captions, attrs) in {
        "held_in": world.make_arrays(n, seed, held_in_only=True),
        "held_out": _held_out_arrays(n, seed + 1),
    }.items():
        hits = attribute_hits(scorer.classify(images), attrs)
        matched = scorer.paired(images, captions)
        swapped = scorer.paired(images, [swap_one(a, rng) for a in attrs])
        random = scorer.paired(images, [scorer.captions[int(i)] for i in rng.integers(0, len(scorer.captions), n)])
        result[f"caption_accuracy_{split}"] = hits.pop("caption")
        result[f"attribute_accuracy_{split}"] = hits
        result[f"cosine_matched_{split}"] = bootstrap(matched, seed=seed)
        result[f"cosine_one_swapped_{split}"] = bootstrap(swapped, seed=seed)
        result[f"cosine_random_caption_{split}"] = bootstrap(random, seed=seed)
        result[f"cosine_gap_matched_minus_swapped_{split}"] = bootstrap(matched - swapped, seed=seed)
    return result


def dino_quality(model: Any, n: int = 600, seed: int = 9011) -> dict[str, Any]:
    import torch

    from harness.micro import judges

    images, captions, attrs = world.make_arrays(n, seed)
    x = judges.to_tensor(images, judges.IMAGENET_MEAN, judges.IMAGENET_STD)
    with torch.no_grad():
        outputs = model(x)
        emb = torch.nn.functional.normalize(model.features(x), dim=-1)
    per_head = {}
    for name in judges.DINO_HEADS:
        truth = torch.tensor([judges.head_labels(a)[name] for a in attrs])
        per_head[name] = round(float((outputs[name].argmax(1) == truth).float().mean()), 4)
    # embedding: pairs of images with the same caption (different jitter) vs different captions
    rng = np.random.default_rng(seed)
    same_images, other_captions, _ = world.make_arrays(n, seed + 1)
    twins = []
    for a in attrs:  # a re-jittered twin of each image with the same captioned values
        fixed = {k: a[k] for k in world.CAPTIONED if a[k] is not None and not (a["shape"] == world.FACE and k in (
            "texture", "shape"))}
        twins.append(world.render(world.sample_attributes(rng, **fixed)))
    twin_emb = judges.MicroEncoder(model, "dino").embed(list(np.stack(twins)))
    other_emb = judges.MicroEncoder(model, "dino").embed(list(same_images))
    same = (emb * twin_emb).sum(-1).numpy()
    different = (emb * other_emb).sum(-1).numpy()
    keep = np.array([c != o for c, o in zip(captions, other_captions, strict=True)])
    return {"attribute_accuracy": min(per_head.values()), "head_accuracy": per_head,
            "cosine_same_caption": bootstrap(same, seed=seed),
            "cosine_different_caption": bootstrap(different[keep], seed=seed),
            "cosine_gap_same_minus_different": bootstrap(same[keep] - different[keep], seed=seed)}


def face_quality(judge: Any, n: int = 300, seed: int = 9021) -> dict[str, Any]:
    """Detector accuracy (faces vs non-faces) and identity verification accuracy (threshold calibrated on a
    separate set) over all 8 persons, held-out persons included."""
    faces, _, face_attrs = world.make_arrays(n, seed, shape="face")
    rng = np.random.default_rng(seed)
    others = []
    while len(others) < n:
        a = world.sample_attributes(rng)
        if a["shape"] != world.FACE:
            others.append(world.render(a))
    probs = np.concatenate([judge.detect(list(faces)).numpy(), judge.detect(others).numpy()])
    truth = np.concatenate([np.ones(n), np.zeros(n)])
    detector = float(np.mean((probs >= judge.threshold) == truth))

    def distances(images: np.ndarray, attrs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        _, emb = judge._run(list(images))
        d = np.linalg.norm(emb.numpy()[:, None] - emb.numpy()[None], axis=-1)
        person = np.array([a["person"] for a in attrs])
        same = person[:, None] == person[None]
        upper = np.triu(np.ones_like(same), k=1).astype(bool)
        return d[upper], same[upper]

    calib_images, _, calib_attrs = world.make_arrays(n, seed + 1, shape="face")
    d_cal, s_cal = distances(calib_images, calib_attrs)
    grid = np.linspace(0, 2, 201)
    balanced = [0.5 * (np.mean(d_cal[s_cal] < t) + np.mean(d_cal[~s_cal] >= t)) for t in grid]
    threshold = float(grid[int(np.argmax(balanced))])
    d, s = distances(faces, face_attrs)
    verification = 0.5 * (np.mean(d[s] < threshold) + np.mean(d[~s] >= threshold))
    return {"detector_accuracy": round(detector, 4), "verification_accuracy": round(float(verification), 4),
            "same_identity_distance": round(threshold, 3),
            "distance_same_person": round(float(d[s].mean()), 4),
            "distance_different_person": round(float(d[~s].mean()), 4),
            "n_faces": n, "n_non_faces": n}


def prompts_held_in(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [world.caption(world.sample_attributes(rng, held_in_only=True, texture="plain")) for _ in range(n)]


def prompts_with(n: int, seed: int, **fixed: Any) -> list[str]:
    """Held-in prompts except the fixed (typically held-out) value."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        a = world.sample_attributes(rng, texture=fixed.get("texture", "plain"), **{
            k: v for k, v in fixed.items() if k != "texture"})
        if not any(a[k] in world.HELD_OUT.get(k, ()) for k in world.CAPTIONED if k not in fixed):
            out.append(world.caption(a))
    return out


def real_for(prompts: list[str], seed: int) -> np.ndarray:
    """A fresh real image for each prompt (same captioned values, random jitter)."""
    rng = np.random.default_rng(seed)
    out = []
    for p in prompts:
        fixed = {k: v for k, v in world.parse_caption(p).items() if v is not None}
        if fixed["shape"] == world.FACE:
            fixed.pop("texture")
        out.append(world.render(world.sample_attributes(rng, **fixed)))
    return np.stack(out)


def base_quality(bundle: Any, scorer: ClipScorer, prompts_n: int = 32, per_prompt: int = 4,
                 seed: int = 9031, face_judge: Any = None) -> dict[str, Any]:
    """Judge CLIP score of base samples vs real images, noise and shuffled captions; held-out prompt sets."""
    import time

    from harness.micro import base

    rng = np.random.default_rng(seed)
    sets = {
        "held_in": prompts_held_in(prompts_n, seed),
        "held_out_colour_purple": prompts_with(prompts_n // 2, seed + 1, colour="purple"),
        "held_out_shape_star": prompts_with(prompts_n // 2, seed + 2, shape="star"),
        "held_out_texture_checkered": prompts_with(prompts_n // 2, seed + 3, texture="checkered"),
    }
    result: dict[str, Any] = {"prompts": {k: len(v) for k, v in sets.items()}, "samples_per_prompt": per_prompt,
                              "sampler": f"DDIM {base.SAMPLING_STEPS} steps, guidance {base.GUIDANCE}"}
    start = time.time()
    for name, prompts in sets.items():
        repeated = [p for p in prompts for _ in range(per_prompt)]
        seeds = list(range(seed, seed + len(repeated)))
        images = base.sample(bundle, repeated, seeds)
        scores = scorer.paired(images, repeated)
        key = "generated_" + name
        result[key] = bootstrap(scores, seed=seed)
        hits = attribute_hits(scorer.classify(images), [world.parse_caption(p) for p in repeated])
        result[key]["judge_attribute_accuracy"] = hits
        if name == "held_in":
            real = real_for(repeated, seed)
            result["real_held_in"] = bootstrap(scorer.paired(real, repeated), seed=seed)
            shuffled = [repeated[i] for i in rng.permutation(len(repeated))]
            result["real_shuffled_captions"] = bootstrap(scorer.paired(real, shuffled), seed=seed)
            result["noise"] = bootstrap(scorer.paired(world.noise_images(len(repeated), seed), repeated), seed=seed)
            result["vae_round_trip_held_in"] = bootstrap(scorer.paired(_round_trip(bundle, real), repeated), seed=seed)
        else:
            real = real_for(repeated, seed)
            result["real_" + name] = bootstrap(scorer.paired(real, repeated), seed=seed)
            result["vae_round_trip_" + name] = bootstrap(scorer.paired(_round_trip(bundle, real), repeated),
                                                         seed=seed)
    held_in_real, _, _ = world.make_arrays(256, seed + 5, held_in_only=True)
    held_out_real, _, _ = _held_out_arrays(256, seed + 6)
    result["vae_mse_held_in"] = round(_vae_mse(bundle, held_in_real), 5)
    result["vae_mse_held_out"] = round(_vae_mse(bundle, held_out_real), 5)
    if face_judge is not None:
        persons = [p for p in world.PERSONS if p not in world.HELD_OUT["person"]]
        prompts = [f"a face of person {p} on a gray background" for p in persons for _ in range(per_prompt)]
        images = base.sample(bundle, prompts, list(range(seed, seed + len(prompts))))
        probs, emb = face_judge._run(list(images))
        reference, _, ref_attrs = world.make_arrays(64, seed + 7, shape="face", held_in_only=True)
        _, ref_emb = face_judge._run(list(reference))
        ref_person = np.array([a["person"] for a in ref_attrs])
        centroids = np.stack([ref_emb.numpy()[ref_person == p].mean(0) for p in persons])
        nearest = np.array(persons)[np.linalg.norm(emb.numpy()[:, None] - centroids[None], axis=-1).argmin(1)]
        truth = np.array([p for p in persons for _ in range(per_prompt)])
        result["generated_faces"] = {"detected": round(float((probs.numpy() >= face_judge.threshold).mean()), 4),
                                     "identity_accuracy": round(float((nearest == truth).mean()), 4),
                                     "n": len(prompts)}
    result["wall_s"] = round(time.time() - start, 1)
    return result


def _round_trip(bundle: Any, images: np.ndarray) -> np.ndarray:
    import torch

    from harness.micro.train import to_unit

    with torch.no_grad():
        x = to_unit(images) * 2 - 1
        recon = bundle.vae.decode(bundle.vae.encode(x).latent_dist.mean).sample
    return (((recon.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def _vae_mse(bundle: Any, images: np.ndarray) -> float:
    recon = _round_trip(bundle, images).astype(np.float64) / 127.5 - 1
    return float(np.mean((recon - (images.astype(np.float64) / 127.5 - 1)) ** 2))


def param_count(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def measure_all(folder: Path) -> dict[str, Any]:
    """Judge cards (with quality) and base quality for the weights in ``folder``."""
    import json

    import torch

    from harness.micro import base, judges

    torch.set_num_threads(1)
    manifest = json.loads((folder / "manifest.json").read_text())
    training = manifest.get("training", {})
    files = manifest.get("files", {})
    cards: dict[str, Any] = {}

    def make_card(name: str, part: str, architecture: str, module: Any, quality: dict[str, Any]) -> dict[str, Any]:
        record = training.get(part, {})
        file = {"clip": judges.CLIP_FILE, "dino": judges.DINO_FILE, "face": judges.FACE_FILE}[part]
        return {"name": name, "architecture": architecture, "params": param_count(module),
                "file": file, "sha256": files.get(file, {}).get("sha256"),
                "training": {k: record.get(k) for k in ("command", "seed", "steps", "batch", "lr", "wall_s",
                                                        "final_loss", "data", "loss")},
                "quality": quality}

    clip_model = judges.load_clip_model(folder)
    scorer = ClipScorer(clip_model)
    print("measuring clip judge", flush=True)
    cards["clip"] = make_card(
        "microworld CLIP judge", "clip",
        "open_clip CLIP: ModifiedResNet layers (1,1,1,1) width 16 at 32 px; text transformer 64 x 2 layers, "
        "16-token context, frozen random token table (seed 4321, regenerated at load); embed 64",
        clip_model, clip_quality(scorer))
    print("measuring dino judge", flush=True)
    dino = judges.load_dino_model(folder)
    cards["dino"] = make_card(
        "microdino", "dino",
        "CNN 32-64-128-128 (3x3 conv, GroupNorm, SiLU, avg-pool) -> global pool -> LayerNorm -> 128-d CLS-like "
        "embedding; attribute heads (shape, colour, background, texture, person). Also the torch-fidelity "
        f"feature extractor '{judges.FEATURE_EXTRACTOR}' (same 128-d feature)", dino, dino_quality(dino))
    print("measuring face judge", flush=True)
    face = judges.load_face(folder)
    cards["face"] = make_card(
        "microface", "face",
        "CNN 24-48-96 (3 x conv/GroupNorm/SiLU/avg-pool) -> flatten 1536 -> face logit + 32-d unit identity "
        "embedding", face.model, face_quality(face))
    face.same_identity_distance = cards["face"]["quality"]["same_identity_distance"]
    cards["face"]["same_identity_distance"] = face.same_identity_distance
    result: dict[str, Any] = {"judges": cards}
    if (folder / "unet.safetensors").is_file():
        print("measuring base", flush=True)
        bundle = base.load_base(folder)
        quality = base_quality(bundle, scorer, face_judge=face)
        quality["params"] = {k: param_count(m) for k, m in bundle.modules().items()}
        quality["params"]["text_encoder_stored"] = quality["params"]["text_encoder"] - 49408 * 64
        quality["weights_identity"] = bundle.weights_identity
        result["base"] = quality
    return result
