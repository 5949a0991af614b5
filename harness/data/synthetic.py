"""Synthetic stand-ins for the image-folder adapters, written in the real datasets' layouts.

Each has a learnable structure: the caption (or the identity) is a function of what is drawn.
- DeepFashion-MultiModal: a standing figure whose upper / lower garments' type, colour and
  pattern are drawn and described in DeepFashion's caption style; a few too-wide images that the
  aspect-ratio filter must drop.
- COCO: scenes of 1-3 coloured objects on a ground, captioned ("a red ball and a blue box on
  grass"); some portrait images that the aspect filter must drop.
- Person: one procedural face identity (skin, hair, eye spacing, nose) under varying background,
  position and scale.
- Garment: one striped shirt on a plain background.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

COLOURS = {"red": (200, 40, 40), "blue": (40, 70, 200), "green": (40, 150, 60), "yellow": (230, 200, 40),
           "black": (25, 25, 25), "white": (240, 240, 240), "pink": (240, 150, 180), "grey": (130, 130, 130)}
UPPER = ["T-shirt", "shirt", "sweater", "tank top"]
LOWER = ["trousers", "shorts", "skirt"]
PATTERNS = ["pure color", "stripe", "lattice"]
CATEGORIES = ["WOMEN-Tees_Tanks", "WOMEN-Dresses", "MEN-Denim", "MEN-Shirts_Polos"]


def _rgb(rng: np.random.Generator, name: str) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in COLOURS[name])  # type: ignore[return-value]


def _patterned(draw: Any, box: tuple[int, int, int, int], colour: tuple, pattern: str) -> None:
    draw.rectangle(box, fill=colour)
    x0, y0, x1, y1 = box
    accent = tuple(255 - c for c in colour)
    if pattern == "stripe":
        for y in range(y0, y1, 4):
            draw.line([(x0, y), (x1, y)], fill=accent, width=1)
    elif pattern == "lattice":
        for x in range(x0, x1, 5):
            draw.line([(x, y0), (x, y1)], fill=accent, width=1)
        for y in range(y0, y1, 5):
            draw.line([(x0, y), (x1, y)], fill=accent, width=1)


def _figure(size: tuple[int, int], rng: np.random.Generator) -> tuple[Any, str]:
    from PIL import Image, ImageDraw

    height, width = size
    image = Image.new("RGB", (width, height), (225, 225, 220))
    draw = ImageDraw.Draw(image)
    upper, lower = UPPER[rng.integers(len(UPPER))], LOWER[rng.integers(len(LOWER))]
    upper_colour, lower_colour = rng.choice(list(COLOURS), size=2, replace=False)
    upper_pattern, lower_pattern = PATTERNS[rng.integers(3)], PATTERNS[rng.integers(3)]
    cx, unit = width // 2, height / 12
    skin = (225, 180, 150)
    draw.ellipse([cx - unit, unit * 0.5, cx + unit, unit * 2.5], fill=skin)
    torso = (int(cx - 1.6 * unit), int(2.6 * unit), int(cx + 1.6 * unit), int(6.5 * unit))
    _patterned(draw, torso, _rgb(rng, upper_colour), upper_pattern)
    sleeve = 0.6 if upper in ("tank top",) else (1.5 if upper == "T-shirt" else 3.5)
    for side in (-1, 1):
        x = cx + side * 1.6 * unit
        arm = [min(x, x + side * 0.7 * unit), 2.7 * unit, max(x, x + side * 0.7 * unit), 6.3 * unit]
        draw.rectangle(arm, fill=skin)
        draw.rectangle([arm[0], arm[1], arm[2], arm[1] + sleeve * unit], fill=_rgb(rng, upper_colour))
    bottom = 11.5 if lower == "trousers" else 8.5
    if lower == "skirt":
        draw.polygon([(cx - 1.6 * unit, 6.5 * unit), (cx + 1.6 * unit, 6.5 * unit), (cx + 2.4 * unit, 9 * unit),
                      (cx - 2.4 * unit, 9 * unit)], fill=_rgb(rng, lower_colour))
        bottom = 9
    else:
        for side in (-1, 1):
            leg = (int(min(cx, cx + side * 1.5 * unit)), int(6.5 * unit), int(max(cx, cx + side * 1.5 * unit)),
                   int(bottom * unit))
            _patterned(draw, leg, _rgb(rng, lower_colour), lower_pattern)
    for side in (-1, 1):
        draw.rectangle([cx + side * 0.9 * unit - 2, bottom * unit, cx + side * 0.9 * unit + 2, 11.8 * unit], fill=skin)
    caption = (f"The person is wearing a {upper_colour} {upper} with {upper_pattern} patterns. "
               f"The person wears {lower_colour} {lower} with {lower_pattern} patterns.")
    return image, caption


def write_deepfashion(spec: Any, root: Path, rng: np.random.Generator) -> None:
    folder = root / "deepfashion_multimodal"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    captions = {}
    for i in range(spec.synthetic_images):
        wide = i % 8 == 7  # too wide: the aspect-ratio filter drops these
        size = (spec.synthetic_size[0], spec.synthetic_size[0]) if wide else spec.synthetic_size
        image, caption = _figure(size, rng)
        name = f"{CATEGORIES[i % len(CATEGORIES)]}-id_{i:08d}-01_1_front.jpg"
        image.save(folder / "images" / name, quality=95)
        captions[name] = caption
    (folder / "captions.json").write_text(json.dumps(captions, indent=1))


OBJECTS = {"ball": "ellipse", "box": "rectangle", "kite": "diamond"}
GROUNDS = {"grass": (70, 140, 60), "sand": (210, 190, 140), "snow": (235, 240, 245)}


def _scene(size: tuple[int, int], rng: np.random.Generator) -> tuple[Any, str]:
    from PIL import Image, ImageDraw

    height, width = size
    ground = list(GROUNDS)[rng.integers(len(GROUNDS))]
    image = Image.new("RGB", (width, height), (150, 200, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, height * 0.6, width, height], fill=GROUNDS[ground])
    names = []
    for k in range(int(rng.integers(1, 4))):
        kind = list(OBJECTS)[rng.integers(len(OBJECTS))]
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        s = int(rng.integers(min(size) // 8, min(size) // 4))
        x = int((k + 0.5) * width / 3 + rng.integers(-3, 4))
        y = int(height * 0.6 - s + rng.integers(-3, 4))
        box = [x - s, y - s, x + s, y + s]
        if OBJECTS[kind] == "ellipse":
            draw.ellipse(box, fill=_rgb(rng, colour))
        elif OBJECTS[kind] == "rectangle":
            draw.rectangle(box, fill=_rgb(rng, colour))
        else:
            draw.polygon([(x, y - s), (x + s, y), (x, y + s), (x - s, y)], fill=_rgb(rng, colour))
        names.append(f"a {colour} {kind}")
    return image, f"{' and '.join(names)} on {ground}"


def write_coco(spec: Any, root: Path, rng: np.random.Generator) -> None:
    folder = root / "coco2014"
    (folder / spec.split).mkdir(parents=True, exist_ok=True)
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(spec.synthetic_images):
        portrait = i % 6 == 5  # below the width/height threshold: filtered out
        height, width = spec.synthetic_size
        size = (width, height) if portrait else (height, width)
        image, caption = _scene(size, rng)
        image_id = 1000 + i
        name = f"COCO_{spec.split}_{image_id:012d}.jpg"
        image.save(folder / spec.split / name, quality=95)
        images.append({"id": image_id, "file_name": name, "width": image.width, "height": image.height})
        annotations.append({"id": 5000 + 2 * i, "image_id": image_id, "caption": caption})
        annotations.append({"id": 5001 + 2 * i, "image_id": image_id, "caption": f"a picture of {caption}"})
    (folder / "annotations" / f"captions_{spec.split}.json").write_text(json.dumps(
        {"info": {"description": "synthetic COCO stand-in"}, "images": images, "annotations": annotations}))


def _face(size: tuple[int, int], rng: np.random.Generator) -> Any:
    from PIL import Image, ImageDraw

    height, width = size
    background = tuple(int(c) for c in rng.integers(60, 220, size=3))
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    scale = min(size) * rng.uniform(0.28, 0.36)
    cx = width / 2 + rng.uniform(-0.08, 0.08) * width
    cy = height / 2 + rng.uniform(-0.05, 0.08) * height
    # The identity: fixed skin tone, dark hair with a side parting, wide-set green eyes, long nose, beard.
    draw.ellipse([cx - scale * 1.1, cy - scale * 1.5, cx + scale * 1.1, cy + scale * 0.2], fill=(40, 30, 25))
    draw.ellipse([cx - scale, cy - scale * 1.25, cx + scale, cy + scale * 1.25], fill=(205, 160, 125))
    draw.polygon([(cx - scale, cy - scale * 0.4), (cx - scale * 0.2, cy - scale * 1.3), (cx + scale, cy - scale),
                  (cx + scale, cy - scale * 1.4), (cx - scale, cy - scale * 1.4)], fill=(40, 30, 25))
    for side in (-1, 1):
        ex = cx + side * scale * 0.45
        draw.ellipse([ex - scale * 0.18, cy - scale * 0.3, ex + scale * 0.18, cy - scale * 0.1], fill=(250, 250, 250))
        draw.ellipse([ex - scale * 0.08, cy - scale * 0.28, ex + scale * 0.08, cy - scale * 0.12], fill=(40, 120, 60))
    draw.polygon([(cx, cy - scale * 0.1), (cx - scale * 0.12, cy + scale * 0.35), (cx + scale * 0.12,
                  cy + scale * 0.35)], fill=(180, 130, 100))
    draw.chord([cx - scale * 0.8, cy + scale * 0.2, cx + scale * 0.8, cy + scale * 1.3], 0, 180, fill=(50, 35, 30))
    draw.line([(cx - scale * 0.3, cy + scale * 0.6), (cx + scale * 0.3, cy + scale * 0.6)], fill=(150, 60, 60),
              width=max(1, int(scale * 0.08)))
    return image


def write_person(spec: Any, root: Path, rng: np.random.Generator) -> None:
    folder = root / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(spec.synthetic_images):
        _face(spec.synthetic_size, rng).save(folder / f"photo_{i:03d}.jpg", quality=95)


def write_garment(spec: Any, root: Path, rng: np.random.Generator) -> None:
    from PIL import Image, ImageDraw

    height, width = spec.synthetic_size
    image = Image.new("RGB", (width, height), (235, 232, 228))
    draw = ImageDraw.Draw(image)
    body = (int(width * 0.25), int(height * 0.2), int(width * 0.75), int(height * 0.85))
    _patterned(draw, body, (30, 60, 150), "stripe")
    draw.polygon([(body[0], body[1]), (int(width * 0.05), int(height * 0.4)), (int(width * 0.15), int(height * 0.48)),
                  (body[0], int(height * 0.35))], fill=(30, 60, 150))
    draw.polygon([(body[2], body[1]), (int(width * 0.95), int(height * 0.4)), (int(width * 0.85), int(height * 0.48)),
                  (body[2], int(height * 0.35))], fill=(30, 60, 150))
    path = root / spec.image_file
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95)


WRITERS = {"deepfashion_multimodal": write_deepfashion, "coco_captions": write_coco,
           "person_folder": write_person, "single_image": write_garment}


def write(spec: Any, root: Path, seed: int = 0) -> Path:
    """Write the synthetic stand-in of ``spec.adapter`` under ``root`` in the real layout."""
    WRITERS[spec.adapter](spec, root, np.random.default_rng(seed))
    return root
