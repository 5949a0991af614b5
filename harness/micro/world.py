"""The microworld: seeded procedural 32x32 RGB images of coloured shapes and simple faces, with captions.

Everything here is numpy only (no torch), deterministic given a seed. A sample's attributes hold both the
captioned values (shape, colour, background, texture, person) and the uncaptioned jitter (size, position,
rotation, colour jitter), so ``render(attrs)`` alone reproduces the image.

Captions:
  objects  "a red circle on a gray background", "a striped red circle on a gray background"
  faces    "a face of person 3 on a navy background"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SIZE = 32
SUPERSAMPLE = 4  # rendered at 128x128 then box-filtered to 32x32 (anti-aliasing)

SHAPES = ("circle", "square", "triangle", "star", "ring", "heart", "cross", "diamond", "arrow", "moon")
# rotation range per shape (degrees, +-); square and diamond stay apart (a square at 45 deg is a diamond)
ROTATION = {"square": 15.0, "diamond": 15.0, "heart": 30.0, "moon": 30.0}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 180, 40),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 30),
    "white": (245, 245, 245),
    "cyan": (40, 220, 220),
    "pink": (255, 140, 190),
    "purple": (140, 40, 200),
    "orange": (255, 140, 0),
}
# background words never name an object colour
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (12, 12, 12),
    "gray": (128, 128, 128),
    "brown": (110, 70, 30),
    "navy": (20, 20, 90),
}
TEXTURES = ("plain", "striped", "dotted", "checkered")
# faces: identity = (skin tone, eye spacing, eye size, mouth, hair); each pair differs in >= 2 of these
SKIN = {"light": (250, 215, 180), "tan": (205, 150, 95), "dark": (120, 75, 40)}
HAIR = {"none": None, "dark": (35, 25, 20), "red": (200, 60, 20), "blond": (235, 205, 80)}
PERSONS: dict[int, dict[str, Any]] = {
    0: {"skin": "light", "eye_spacing": 0.45, "eye_size": 0.17, "mouth": "smile", "hair": "none"},
    1: {"skin": "light", "eye_spacing": 0.28, "eye_size": 0.11, "mouth": "frown", "hair": "dark"},
    2: {"skin": "tan", "eye_spacing": 0.45, "eye_size": 0.11, "mouth": "flat", "hair": "red"},
    3: {"skin": "tan", "eye_spacing": 0.28, "eye_size": 0.17, "mouth": "open", "hair": "none"},
    4: {"skin": "dark", "eye_spacing": 0.45, "eye_size": 0.17, "mouth": "frown", "hair": "none"},
    5: {"skin": "dark", "eye_spacing": 0.28, "eye_size": 0.11, "mouth": "smile", "hair": "blond"},
    6: {"skin": "tan", "eye_spacing": 0.45, "eye_size": 0.17, "mouth": "smile", "hair": "dark"},
    7: {"skin": "light", "eye_spacing": 0.28, "eye_size": 0.17, "mouth": "flat", "hair": "red"},
}
FACE = "face"
P_FACE = 0.2  # share of faces when the kind is not fixed

# Never produced with held_in_only=True (the base model's pretraining); the judges saw all of them.
HELD_OUT: dict[str, tuple[Any, ...]] = {
    "colour": ("purple", "orange"),
    "shape": ("star", "heart"),
    "texture": ("checkered",),
    "person": (6, 7),
}
ATTRIBUTE_VALUES: dict[str, tuple[Any, ...]] = {
    "shape": SHAPES + (FACE,),
    "colour": tuple(COLOURS),
    "background": tuple(BACKGROUNDS),
    "texture": TEXTURES,
    "person": tuple(PERSONS),
}
CAPTIONED = ("shape", "colour", "background", "texture", "person")


@dataclass
class Sample:
    image: np.ndarray  # HxWx3 uint8
    caption: str
    attrs: dict[str, Any]


def held_in(name: str) -> tuple[Any, ...]:
    """The values of a captioned attribute that the base model saw in pretraining."""
    values = SHAPES if name == "shape" else ATTRIBUTE_VALUES[name]
    return tuple(v for v in values if v not in HELD_OUT.get(name, ()))


def is_held_out(attrs: dict[str, Any]) -> bool:
    """True if any captioned value of the sample is held out of pretraining."""
    return any(attrs.get(name) in values for name, values in HELD_OUT.items())


def sample_attributes(rng: np.random.Generator, held_in_only: bool = False, **fixed: Any) -> dict[str, Any]:
    """Draw one sample's attributes; ``fixed`` pins captioned values (shape="face" or person=k gives a face)."""
    unknown = set(fixed) - set(CAPTIONED)
    if unknown:
        raise ValueError(f"unknown attributes {sorted(unknown)}; fixable: {CAPTIONED}")
    for name, value in fixed.items():
        if value not in ATTRIBUTE_VALUES[name]:
            raise ValueError(f"{name}={value!r} not in {ATTRIBUTE_VALUES[name]}")
        if held_in_only and value in HELD_OUT.get(name, ()):
            raise ValueError(f"{name}={value!r} is held out (held_in_only=True)")

    def pick(name: str, values: tuple[Any, ...]) -> Any:
        if name in fixed:
            return fixed[name]
        if held_in_only:
            values = tuple(v for v in values if v not in HELD_OUT.get(name, ()))
        return values[int(rng.integers(len(values)))]

    if "person" in fixed or fixed.get("shape") == FACE:
        face = True
    elif "shape" in fixed or "colour" in fixed or "texture" in fixed:
        face = False
    else:
        face = bool(rng.random() < P_FACE)
    attrs: dict[str, Any] = {"background": pick("background", tuple(BACKGROUNDS))}
    if face:
        attrs.update(shape=FACE, person=pick("person", tuple(PERSONS)), colour=None, texture="plain")
        attrs["radius"] = float(rng.uniform(11.0, 14.0))
        attrs["rotation"] = float(rng.uniform(-15.0, 15.0))
    else:
        attrs.update(shape=pick("shape", SHAPES), colour=pick("colour", tuple(COLOURS)),
                     texture=pick("texture", TEXTURES), person=None)
        attrs["radius"] = float(rng.uniform(9.0, 13.0))
        limit = ROTATION.get(attrs["shape"], 180.0)
        attrs["rotation"] = float(rng.uniform(-limit, limit))
    margin = SIZE / 2 - attrs["radius"] - 1
    attrs["cx"] = float(SIZE / 2 + rng.uniform(-1, 1) * min(3.0, max(margin, 0.0)))
    attrs["cy"] = float(SIZE / 2 + rng.uniform(-1, 1) * min(3.0, max(margin, 0.0)))
    attrs["jitter_object"] = [int(v) for v in rng.integers(-15, 16, 3)]
    attrs["jitter_background"] = [int(v) for v in rng.integers(-12, 13, 3)]
    attrs["texture_phase"] = float(rng.uniform(0, 1))
    return attrs


def caption(attrs: dict[str, Any]) -> str:
    """The caption of a sample's captioned attributes (jitter never appears)."""
    if attrs["shape"] == FACE:
        return f"a face of person {attrs['person']} on a {attrs['background']} background"
    texture = "" if attrs["texture"] == "plain" else attrs["texture"] + " "
    return f"a {texture}{attrs['colour']} {attrs['shape']} on a {attrs['background']} background"


def all_captions(held_in_only: bool = False) -> list[str]:
    """Every distinct caption of the world (1,472 in all; the judge's zero-shot label set)."""
    out = []
    for bg in BACKGROUNDS:
        for shape in SHAPES:
            for colour in COLOURS:
                for texture in TEXTURES:
                    attrs = {"shape": shape, "colour": colour, "texture": texture, "background": bg, "person": None}
                    if not (held_in_only and is_held_out(attrs)):
                        out.append(caption(attrs))
        for person in PERSONS:
            attrs = {"shape": FACE, "person": person, "background": bg, "colour": None, "texture": "plain"}
            if not (held_in_only and is_held_out(attrs)):
                out.append(caption(attrs))
    return out


def parse_caption(text: str) -> dict[str, Any]:
    """Captioned attributes back from a caption made by ``caption``."""
    words = text.split()
    if words[1] == FACE:
        return {"shape": FACE, "person": int(words[4]), "background": words[-2], "colour": None, "texture": "plain"}
    texture = words[1] if words[1] in TEXTURES else "plain"
    rest = words[2:] if texture != "plain" else words[1:]
    return {"shape": rest[1], "colour": rest[0], "texture": texture, "background": words[-2], "person": None}


def _grid(attrs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Object-frame coordinates (in units of the radius) of each supersampled pixel centre."""
    n = SIZE * SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / SUPERSAMPLE
    y, x = np.meshgrid(coords, coords, indexing="ij")
    dx, dy = x - attrs["cx"], y - attrs["cy"]
    theta = np.deg2rad(attrs["rotation"])
    c, s = np.cos(theta), np.sin(theta)
    u = (c * dx + s * dy) / attrs["radius"]
    v = (-s * dx + c * dy) / attrs["radius"]
    return u, v


def _polygon(u: np.ndarray, v: np.ndarray, sides: int, inradius: float, offset: float) -> np.ndarray:
    inside = np.ones_like(u, dtype=bool)
    for k in range(sides):
        angle = offset + 2 * np.pi * k / sides
        inside &= u * np.cos(angle) + v * np.sin(angle) <= inradius
    return inside


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of a shape in its own frame (radius 1, y down)."""
    rho2 = u * u + v * v
    if shape == "circle":
        return rho2 <= 1.0
    if shape == "ring":
        return (rho2 <= 1.0) & (rho2 >= 0.55**2)
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "triangle":  # vertex up
        return _polygon(u, v - 0.15, 3, 0.55, np.pi / 2)
    if shape == "arrow":  # pointing right: shaft and head
        shaft = (np.abs(v) <= 0.22) & (u >= -0.95) & (u <= 0.15)
        head = (u >= 0.05) & (u <= 0.95) & (np.abs(v) <= 0.65 * (0.95 - u))
        return shaft | head
    if shape == "cross":
        return ((np.abs(u) <= 0.33) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.33) & (np.abs(u) <= 0.95))
    if shape == "moon":
        return (rho2 <= 1.0) & ((u - 0.45) ** 2 + (v + 0.15) ** 2 > 0.8**2)
    if shape == "star":  # five points, inner radius 0.42
        angle = np.arctan2(u, -v)  # 0 at the top
        fold = np.abs(np.mod(angle + np.pi / 5, 2 * np.pi / 5) - np.pi / 5)
        rho = np.sqrt(rho2)
        px, py = rho * np.cos(fold), rho * np.sin(fold)
        qx, qy = 0.42 * np.cos(np.pi / 5), 0.42 * np.sin(np.pi / 5)
        return (qx - 1.0) * py - qy * (px - 1.0) >= 0
    if shape == "heart":
        x, y = u * 1.2, -(v * 1.2 + 0.15)
        return (x * x + y * y - 1) ** 3 - x * x * y**3 <= 0
    raise ValueError(f"unknown shape {shape!r}")


def _texture_mask(texture: str, u: np.ndarray, v: np.ndarray, radius: float, phase: float) -> np.ndarray:
    """True where the pattern's second (dark) colour shows; periods in output pixels."""
    period = 5.0 / radius
    a, b = u / period + phase, v / period + phase
    if texture == "plain":
        return np.zeros_like(u, dtype=bool)
    if texture == "striped":
        return np.mod(np.floor(b), 2) == 1
    if texture == "checkered":
        return np.mod(np.floor(a) + np.floor(b), 2) == 1
    if texture == "dotted":
        return (np.mod(a, 1) - 0.5) ** 2 + (np.mod(b, 1) - 0.5) ** 2 <= 0.3**2
    raise ValueError(f"unknown texture {texture!r}")


def _jittered(rgb: tuple[int, int, int], jitter: list[int]) -> np.ndarray:
    return np.clip(np.array(rgb, dtype=np.float32) + np.array(jitter, dtype=np.float32), 0, 255)


def _paint(canvas: np.ndarray, mask: np.ndarray, rgb: Any) -> None:
    canvas[mask] = np.asarray(rgb, dtype=np.float32)


def _face(canvas: np.ndarray, u: np.ndarray, v: np.ndarray, attrs: dict[str, Any]) -> None:
    person = PERSONS[attrs["person"]]
    jitter = attrs["jitter_object"]
    head = (u / 0.85) ** 2 + v**2 <= 1.0
    _paint(canvas, head, _jittered(SKIN[person["skin"]], jitter))
    hair = HAIR[person["hair"]]
    if hair is not None:
        _paint(canvas, head & (v < -0.5), _jittered(hair, jitter))
    dark = np.array((20, 20, 20), dtype=np.float32)
    s, e = person["eye_spacing"], person["eye_size"]
    for side in (-1, 1):
        _paint(canvas, (u - side * s) ** 2 + (v + 0.12) ** 2 <= e * e, dark)
    mouth = person["mouth"]
    within = np.abs(u) <= 0.38
    if mouth == "smile":
        _paint(canvas, within & (np.abs(v - (0.58 - 1.6 * u * u)) <= 0.09), dark)
    elif mouth == "frown":
        _paint(canvas, within & (np.abs(v - (0.40 + 1.6 * u * u)) <= 0.09), dark)
    elif mouth == "flat":
        _paint(canvas, within & (np.abs(v - 0.48) <= 0.09), dark)
    else:  # open
        _paint(canvas, (u / 0.2) ** 2 + ((v - 0.48) / 0.16) ** 2 <= 1.0, dark)


def render(attrs: dict[str, Any]) -> np.ndarray:
    """The 32x32x3 uint8 image of a sample's attributes (deterministic)."""
    n = SIZE * SUPERSAMPLE
    canvas = np.empty((n, n, 3), dtype=np.float32)
    canvas[:] = _jittered(BACKGROUNDS[attrs["background"]], attrs["jitter_background"])
    u, v = _grid(attrs)
    if attrs["shape"] == FACE:
        _face(canvas, u, v, attrs)
    else:
        mask = shape_mask(attrs["shape"], u, v)
        colour = _jittered(COLOURS[attrs["colour"]], attrs["jitter_object"])
        _paint(canvas, mask, colour)
        pattern = mask & _texture_mask(attrs["texture"], u, v, attrs["radius"], attrs["texture_phase"])
        _paint(canvas, pattern, colour * 0.3)
    pooled = canvas.reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(np.rint(pooled), 0, 255).astype(np.uint8)


def make_dataset(n: int, seed: int, held_in_only: bool = False, **fixed: Any) -> list[Sample]:
    """``n`` (image, caption, attrs) samples, deterministic in ``seed`` (and ``fixed`` values)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        attrs = sample_attributes(rng, held_in_only=held_in_only, **fixed)
        out.append(Sample(render(attrs), caption(attrs), attrs))
    return out


def make_arrays(n: int, seed: int, held_in_only: bool = False, **fixed: Any) -> tuple[np.ndarray, list[str],
                                                                                       list[dict[str, Any]]]:
    """The same samples as ``make_dataset`` as one N x 32 x 32 x 3 uint8 array, captions and attributes."""
    samples = make_dataset(n, seed, held_in_only, **fixed)
    return np.stack([s.image for s in samples]), [s.caption for s in samples], [s.attrs for s in samples]


def noise_images(n: int, seed: int) -> np.ndarray:
    """Uniform random uint8 images (the 'noise' floor for judge scores)."""
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def contact_sheet(images: np.ndarray, columns: int = 16, scale: int = 2) -> Any:
    """A PIL grid of images (for docs and eyeballing)."""
    from PIL import Image

    rows = -(-len(images) // columns)
    sheet = np.zeros((rows * SIZE, columns * SIZE, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * SIZE:(r + 1) * SIZE, c * SIZE:(c + 1) * SIZE] = image
    return Image.fromarray(sheet).resize((columns * SIZE * scale, rows * SIZE * scale), Image.NEAREST)
