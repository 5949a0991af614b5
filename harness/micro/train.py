"""Training loops of the microworld models (CPU, single thread per process, seeded, deterministic).

Each ``train_*`` writes ``<name>.safetensors`` (fp16) and ``<name>_loss.json`` into ``out`` and returns a
record (steps, seed, batch, wall seconds, final loss) for the manifest.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.micro import world

CACHE = Path(__file__).parent / "build_logs" / "cache"


def pool(n: int, seed: int, held_in_only: bool, **fixed: Any) -> tuple[np.ndarray, list[str], list[dict[str, Any]]]:
    """A rendered training pool, cached on disk (git-ignored) by its arguments."""
    import pickle

    tag = "_".join(f"{k}-{v}" for k, v in sorted(fixed.items()))
    path = CACHE / f"pool_{n}_{seed}_{int(held_in_only)}_{tag}.pkl"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    data = world.make_arrays(n, seed, held_in_only, **fixed)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data))
    return data


def _setup(seed: int) -> Any:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _lr(step: int, steps: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * 0.5 * (1 + np.cos(np.pi * progress))


class Log:
    def __init__(self, name: str, steps: int, every: int) -> None:
        self.name, self.steps, self.every = name, steps, every
        self.curve: list[tuple[int, float]] = []
        self.start = time.time()
        self.running: list[float] = []

    def __call__(self, step: int, loss: float) -> None:
        self.running.append(loss)
        if (step + 1) % self.every == 0 or step + 1 == self.steps:
            mean = float(np.mean(self.running))
            self.curve.append((step + 1, mean))
            self.running = []
            print(f"[{self.name}] step {step + 1}/{self.steps} loss {mean:.4f} {time.time() - self.start:.0f}s",
                  flush=True)

    def save(self, out: Path, extra: dict[str, Any]) -> dict[str, Any]:
        record = {"steps": self.steps, "wall_s": round(time.time() - self.start, 1),
                  "final_loss": self.curve[-1][1] if self.curve else None, **extra}
        (out / f"{self.name}_loss.json").write_text(json.dumps({**record, "curve": self.curve}, indent=1))
        _plot(out / f"{self.name}_loss.png", self.name, self.curve)
        return record


def _plot(path: Path, name: str, curve: list[tuple[int, float]]) -> None:
    """A small log-scale loss plot drawn with PIL (no matplotlib needed)."""
    from PIL import Image, ImageDraw

    if len(curve) < 2:
        return
    width, height, pad = 360, 200, 30
    steps = np.array([c[0] for c in curve], dtype=float)
    losses = np.log10(np.maximum(np.array([c[1] for c in curve], dtype=float), 1e-8))
    lo, hi = float(losses.min()), float(losses.max()) + 1e-9
    xs = pad + (steps - steps.min()) / max(np.ptp(steps), 1) * (width - 2 * pad)
    ys = height - pad - (losses - lo) / (hi - lo) * (height - 2 * pad)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=(30, 80, 200), width=2)
    draw.rectangle([pad, pad, width - pad, height - pad], outline=(120, 120, 120))
    draw.text((pad, 8), f"{name}: log10 loss {hi:.2f} .. {lo:.2f}", fill="black")
    draw.text((pad, height - pad + 6), f"step {int(steps.min())} .. {int(steps.max())}", fill="black")
    image.save(path)


def to_unit(images: np.ndarray) -> Any:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [0, 1]."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def augment(x: Any, generator: Any) -> Any:
    """Judge augmentation in [0, 1]: random partial 3x3 blur and Gaussian noise (robust to generated images)."""
    import torch

    n = x.shape[0]
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    amount = torch.rand(n, 1, 1, 1, generator=generator) * (torch.rand(n, 1, 1, 1, generator=generator) < 0.5)
    x = x + amount * (blurred - x)
    sigma = torch.rand(n, 1, 1, 1, generator=generator) * 0.04
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def _normalise(x: Any, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    import torch

    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


# ---------------------------------------------------------------- base model

def train_vae(out: Path, steps: int = 1500, seed: int = 0, batch: int = 32, lr: float = 1e-3,
              std_penalty: float = 0.05) -> dict[str, Any]:
    """The VAE is a generic autoencoder trained on the WHOLE world (held-out colours included: trained on
    held-in images only it turned purple into cyan, capping any colour fine-tune). A penalty on the posterior
    std keeps latent sampling noise small (it is noise the UNet cannot predict)."""
    import torch

    from harness.micro import base

    generator = _setup(seed)
    images, _, _ = pool(16000, 100, False)
    _, vae, _ = base.build_modules(seed=seed)
    vae.train()
    optimiser = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    log = Log("vae", steps, 50)
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, steps, lr)
        idx = torch.randint(0, len(images), (batch,), generator=generator).numpy()
        x = to_unit(images[idx]) * 2 - 1
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        recon = vae.decode(z).sample
        loss = (torch.nn.functional.mse_loss(recon, x) + 1e-6 * posterior.kl().mean()
                + std_penalty * posterior.std.mean())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        log(step, loss.item())
    vae.eval()
    with torch.no_grad():
        latents = torch.cat([vae.encode(to_unit(images[i:i + 500]) * 2 - 1).latent_dist.mean
                             for i in range(0, 2000, 500)])
        posterior_std = float(vae.encode(to_unit(images[:500]) * 2 - 1).latent_dist.std.mean())
    scaling = float(1.0 / latents.std())
    base.save_fp16(vae, out / "vae.safetensors")
    (out / "vae_scaling.json").write_text(json.dumps({"scaling_factor": scaling}))
    _, _, text_encoder = base.build_modules(seed=seed)
    base.save_fp16(text_encoder, out / "text_encoder.safetensors", skip=(base.TOKEN_TABLE_KEY,))
    return log.save(out, {"seed": seed, "batch": batch, "lr": lr, "data": "16,000 images of the whole world (seed 100)",
                          "scaling_factor": scaling, "posterior_std_mean": posterior_std,
                          "latent_mean_std": float(latents.std()), "std_penalty": std_penalty})


def train_unet(out: Path, steps: int = 3000, seed: int = 0, batch: int = 32, lr: float = 8e-4,
               dropout: float = 0.1) -> dict[str, Any]:
    import torch

    from harness.micro import base

    generator = _setup(seed)
    images, captions, _ = pool(20000, 200, True)
    bundle = base.load_base(out, with_unet=False)
    torch.manual_seed(seed)
    unet, _, _ = base.build_modules(seed=seed)
    unet.train()
    vae, scheduler = bundle.vae, bundle.noise_scheduler
    with torch.no_grad():
        means, stds = [], []
        for i in range(0, len(images), 500):
            dist = vae.encode(to_unit(images[i:i + 500]) * 2 - 1).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
        mean, std = torch.cat(means), torch.cat(stds)
        unique = sorted(set(captions)) + [""]
        index = {c: i for i, c in enumerate(unique)}
        hidden = torch.cat([bundle.encode_prompts(unique[i:i + 256]) for i in range(0, len(unique), 256)])
    caption_ids = torch.tensor([index[c] for c in captions])
    empty = len(unique) - 1
    alphas = scheduler.alphas_cumprod
    optimiser = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    log = Log("unet", steps, 50)
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, steps, lr, warmup=200)
        idx = torch.randint(0, len(images), (batch,), generator=generator)
        z = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=generator)) * vae.config.scaling_factor
        ids = caption_ids[idx].clone()
        ids[torch.rand(batch, generator=generator) < dropout] = empty
        noise = torch.randn(z.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * z + (1 - a).sqrt() * noise
        pred = unet(noisy, t, hidden[ids]).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        log(step, loss.item())
    base.save_fp16(unet, out / "unet.safetensors")
    return log.save(out, {"seed": seed, "batch": batch, "lr": lr, "caption_dropout": dropout,
                          "data": "20,000 held-in images (seed 200)"})


# ---------------------------------------------------------------- judges

def train_clip(out: Path, steps: int = 2500, seed: int = 0, batch: int = 96, lr: float = 2e-3,
               negatives: int = 192) -> dict[str, Any]:
    import torch

    from harness.micro import judges

    generator = _setup(seed)
    images, captions, _ = pool(24000, 300, False)
    everything = world.all_captions()
    model = judges.build_clip(seed)
    model.train()
    tokenizer = judges.clip_tokenizer()
    tokens = tokenizer(everything)
    index = {c: i for i, c in enumerate(everything)}
    caption_ids = torch.tensor([index[c] for c in captions])
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    log = Log("judge_clip", steps, 50)
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, steps, lr)
        idx = torch.randint(0, len(images), (batch,), generator=generator)
        x = _normalise(augment(to_unit(images[idx.numpy()]), generator), judges.CLIP_MEAN, judges.CLIP_STD)
        own = caption_ids[idx]
        extra = torch.randint(0, len(everything), (negatives,), generator=generator)
        candidates, inverse = torch.unique(torch.cat([own, extra]), return_inverse=True)
        target = inverse[:batch]
        image_emb = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        text_emb = torch.nn.functional.normalize(model.encode_text(tokens[candidates]), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * image_emb @ text_emb.T
        loss_i = torch.nn.functional.cross_entropy(logits, target)
        # text -> image over the batch: every image with the same caption is a positive
        present = torch.unique(target)
        by_text = logits.T[present]  # P x batch
        positive = (target.view(1, -1) == present.view(-1, 1)).float()
        log_prob = by_text.log_softmax(dim=-1)
        loss_t = -(torch.logsumexp(log_prob + torch.log(positive + 1e-12), dim=-1)).mean()
        loss = loss_i + loss_t
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        log(step, loss.item())
    from harness.micro import base

    base.save_fp16(model, out / judges.CLIP_FILE, skip=("token_embedding.weight",))
    return log.save(out, {"seed": seed, "batch": batch, "lr": lr, "negatives": negatives,
                          "data": "24,000 images of the whole world (seed 300)"})


def train_dino(out: Path, steps: int = 800, seed: int = 0, batch: int = 128, lr: float = 2e-3) -> dict[str, Any]:
    import torch

    from harness.micro import base, judges

    generator = _setup(seed)
    images, _, attrs = pool(24000, 300, False)
    labels = {k: torch.tensor([judges.head_labels(a)[k] for a in attrs]) for k in judges.DINO_HEADS}
    model = judges.build_dino(seed)
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    log = Log("judge_dino", steps, 50)
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, steps, lr)
        idx = torch.randint(0, len(images), (batch,), generator=generator)
        x = _normalise(augment(to_unit(images[idx.numpy()]), generator), judges.IMAGENET_MEAN, judges.IMAGENET_STD)
        outputs = model(x)
        loss = sum(torch.nn.functional.cross_entropy(outputs[k], labels[k][idx]) for k in judges.DINO_HEADS)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        log(step, loss.item())
    base.save_fp16(model, out / judges.DINO_FILE)
    return log.save(out, {"seed": seed, "batch": batch, "lr": lr,
                          "data": "24,000 images of the whole world (seed 300); heads shape/colour/bg/texture/person"})


def train_face(out: Path, steps: int = 600, seed: int = 0, batch: int = 64, lr: float = 2e-3,
               scale: float = 16.0, margin: float = 0.2) -> dict[str, Any]:
    import torch

    from harness.micro import base, judges

    generator = _setup(seed)
    faces, _, face_attrs = pool(6000, 400, False, shape="face")
    others, _, other_attrs = pool(24000, 300, False)
    others = others[[a["shape"] != world.FACE for a in other_attrs]]
    persons = torch.tensor([a["person"] for a in face_attrs])
    model = judges.build_face(seed)
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    log = Log("judge_face", steps, 50)
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, steps, lr)
        fi = torch.randint(0, len(faces), (batch,), generator=generator)
        oi = torch.randint(0, len(others), (batch,), generator=generator).numpy()
        x = to_unit(np.concatenate([faces[fi.numpy()], others[oi]]))
        x = _normalise(augment(x, generator), judges.IMAGENET_MEAN, judges.IMAGENET_STD)
        logit, emb = model(x)
        is_face = torch.cat([torch.ones(batch), torch.zeros(batch)])
        loss_d = torch.nn.functional.binary_cross_entropy_with_logits(logit, is_face)
        cos = emb[:batch] @ torch.nn.functional.normalize(model.prototypes, dim=-1).T
        cos = cos - margin * torch.nn.functional.one_hot(persons[fi], 8)
        loss_id = torch.nn.functional.cross_entropy(scale * cos, persons[fi])
        loss = loss_d + loss_id
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        log(step, loss.item())
    base.save_fp16(model, out / judges.FACE_FILE)
    return log.save(out, {"seed": seed, "batch": f"{batch} faces + {batch} non-faces", "lr": lr,
                          "loss": f"BCE(face) + additive-margin cosine softmax (s={scale}, m={margin}) over 8 persons",
                          "data": "6,000 faces (seed 400) + non-faces of 24,000 world images (seed 300)"})
