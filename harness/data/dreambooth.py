"""The DreamBooth dataset (github.com/google/dreambooth) and a synthetic stand-in in the same layout.

Real layout (clone or download the repository; ``--data-root`` may point at the clone or at its
``dataset`` folder)::

    <data-root>/dataset/prompts_and_classes.txt   # "subject_name,class" lines, then the prompt lists
    <data-root>/dataset/<subject_name>/*.jpg      # 4-6 photos of one subject, e.g. dataset/dog6/00.jpg

``prompts_and_classes.txt`` starts with a ``Classes`` header, a ``subject_name,class`` line and one
``<subject>,<class noun>`` line per subject (30 in the release, 15 distinct class nouns), followed by the
25 object and 25 live-subject prompt templates (``'a {0} {1} in the jungle'.format(unique_token,
class_token),`` lines under "Object Prompts" / "Live Subject Prompts"). With the real dataset the prompt
lists and the classes come from this file (``read_prompts``, ``read_classes``); the task spec's copy of the
lists is what the synthetic stand-in uses. Live subjects (they take the live list) are the cats and dogs,
as the dataset's README says. The synthetic stand-in writes the same file (classes section and prompts
section) and the same folders of JPEGs: a few procedural subjects (a distinct shape, colour and pattern
each) seen in 4-6 views.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from harness.errors import DataMissingError
from harness.specs_data import SubjectSpec

CLASSES_FILE = "prompts_and_classes.txt"
DATASET_FOLDER = "dataset"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
LIVE_CLASSES = frozenset({"cat", "dog"})  # the dataset's live subjects take the live-subject prompt list
_FETCH_HINT = ("get it with `git clone https://github.com/google/dreambooth` on a networked machine and pass "
               "--data-root <clone> (or set BENCH_DATA); --profile tiny needs no data")


def find_root(data_root: str | None) -> Path:
    """The folder holding ``prompts_and_classes.txt`` and the subject folders."""
    base = data_root or os.environ.get("BENCH_DATA")
    if not base:
        raise DataMissingError(f"DreamBooth dataset not configured: {_FETCH_HINT}")
    for folder in (Path(base), Path(base) / DATASET_FOLDER, Path(base) / "dreambooth" / DATASET_FOLDER):
        if (folder / CLASSES_FILE).is_file():
            return folder
    raise DataMissingError(f"DreamBooth dataset incomplete: no {DATASET_FOLDER}/{CLASSES_FILE} under {base}; "
                           f"{_FETCH_HINT}")


def _lines(root: Path) -> list[str]:
    path = root / CLASSES_FILE
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError:
        raise DataMissingError(f"{path}: file missing; {_FETCH_HINT}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise DataMissingError(f"{path}: not a readable text file ({type(exc).__name__})") from None


def read_classes(root: Path) -> dict[str, str]:
    """``subject_name -> class noun`` from the classes section of ``prompts_and_classes.txt``, in file order."""
    lines = _lines(root)
    try:
        start = lines.index("subject_name,class") + 1
    except ValueError:
        raise DataMissingError(f"{root / CLASSES_FILE}: no 'subject_name,class' header line") from None
    classes: dict[str, str] = {}
    for line in lines[start:]:
        if not line:
            if classes:
                break
            continue
        name, _, noun = line.partition(",")
        if not noun:
            if classes and "prompt" in line.lower():  # the prompts section follows without a blank line
                break
            raise DataMissingError(f"{root / CLASSES_FILE}: line {line!r} is not 'subject_name,class'")
        classes[name.strip()] = noun.strip()
    return classes


_PROMPT = re.compile(r"""^(['"])(.*)\1\s*(?:\.format\(.*\))?\s*,?\s*$""")


def read_prompts(root: Path) -> tuple[list[str], list[str]]:
    """(object prompts, live-subject prompts) of ``prompts_and_classes.txt``, as ``{0}``/``{1}`` templates in
    file order; empty lists when the file has no prompts section (the synthetic stand-in's)."""
    lists: dict[str, list[str]] = {}
    current: str | None = None
    inside = False
    for number, line in enumerate(_lines(root), start=1):
        lowered = line.lower()
        if not inside and "prompts" in lowered and not line.startswith(("'", '"')):
            current = "live" if "live" in lowered else "object" if "object" in lowered else current
        elif line.startswith("prompt_list") and "[" in line:
            if current is None:
                raise DataMissingError(f"{root / CLASSES_FILE}:{number}: prompt_list before an 'Object Prompts' or "
                                       "'Live Subject Prompts' header")
            inside = True
            lists[current] = []
        elif inside and line.startswith("]"):
            inside = False
        elif inside and line:
            match = _PROMPT.match(line)
            if match is None or "{0}" not in match.group(2) or "{1}" not in match.group(2):
                raise DataMissingError(f"{root / CLASSES_FILE}:{number}: {line!r} is not a quoted prompt with "
                                       "{0} (identifier) and {1} (class)")
            lists[current].append(match.group(2))  # type: ignore[index]
    if inside:
        raise DataMissingError(f"{root / CLASSES_FILE}: prompt_list not closed with ']'")
    return lists.get("object", []), lists.get("live", [])


def dataset_subjects(root: Path, count: int | None = None) -> list[SubjectSpec]:
    """The first ``count`` subjects of ``prompts_and_classes.txt`` (all when None), in file order."""
    classes = list(read_classes(root).items())
    return [SubjectSpec(name=name, class_noun=noun, live=noun in LIVE_CLASSES)
            for name, noun in classes[:count]]


def image_files(root: Path, subject: str) -> list[Path]:
    """The subject's photos, sorted by name."""
    folder = root / subject
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def check_subjects(root: Path, subjects: list[SubjectSpec]) -> None:
    """Every subject of the spec has a folder with images and the class noun the dataset file gives it."""
    classes = read_classes(root)
    for subject in subjects:
        if subject.name not in classes:
            raise DataMissingError(f"{root / CLASSES_FILE}: subject '{subject.name}' of the task is not listed")
        if classes[subject.name] != subject.class_noun:
            raise DataMissingError(f"{root / CLASSES_FILE}: subject '{subject.name}' has class "
                                   f"'{classes[subject.name]}', the task says '{subject.class_noun}'")
        if not image_files(root, subject.name):
            raise DataMissingError(f"{root / subject.name}: no .jpg/.jpeg/.png images for subject '{subject.name}'")


def read_subject(root: Path, subject: str, resolution: int, interpolation: str) -> list[np.ndarray]:
    """The subject's photos as uint8 HxWx3 arrays: centre square crop, resized to ``resolution``."""
    from PIL import Image, ImageOps

    from harness.data.files import open_rgb

    methods = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
               "nearest": Image.Resampling.NEAREST}
    arrays = []
    for path in image_files(root, subject):
        upright = open_rgb(path)  # EXIF orientation applied; a bad file is one error line
        square = ImageOps.fit(upright, (resolution, resolution), method=methods[interpolation])
        arrays.append(np.asarray(square, dtype=np.uint8))
    return arrays


# --- synthetic stand-in ------------------------------------------------------------------------

# subject -> (class noun, live, body RGB, accent RGB, shape, pattern)
SYNTHETIC_SUBJECTS: dict[str, tuple[str, bool, tuple[int, int, int], tuple[int, int, int], str, str]] = {
    "red_star_toy": ("toy", False, (210, 40, 40), (250, 220, 60), "star", "dots"),
    "striped_vase": ("vase", False, (40, 90, 200), (240, 240, 240), "vase", "stripes"),
    "spotted_dog": ("dog", True, (200, 160, 110), (60, 40, 30), "dog", "spots"),
}
_BACKGROUNDS = [(235, 235, 225), (180, 210, 230), (200, 225, 180), (230, 200, 200), (210, 210, 210), (90, 90, 110)]


def _draw_subject(name: str, view: int, size: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    _, _, body, accent, shape, pattern = SYNTHETIC_SUBJECTS[name]
    image = Image.new("RGB", (size, size), _BACKGROUNDS[view % len(_BACKGROUNDS)])
    draw = ImageDraw.Draw(image)
    scale = size * float(rng.uniform(0.28, 0.38))
    cx, cy = size / 2 + rng.uniform(-0.1, 0.1) * size, size / 2 + rng.uniform(-0.1, 0.1) * size
    angle = view * 0.5 + rng.uniform(-0.2, 0.2)
    if shape == "star":
        points = [(cx + (scale if k % 2 == 0 else scale / 2.2) * np.cos(angle + k * np.pi / 5),
                   cy + (scale if k % 2 == 0 else scale / 2.2) * np.sin(angle + k * np.pi / 5)) for k in range(10)]
        draw.polygon(points, fill=body)
    elif shape == "vase":
        draw.ellipse([cx - scale * 0.7, cy - scale * 0.3, cx + scale * 0.7, cy + scale], fill=body)
        draw.rectangle([cx - scale * 0.25, cy - scale, cx + scale * 0.25, cy], fill=body)
    else:
        draw.ellipse([cx - scale, cy - scale * 0.45, cx + scale * 0.6, cy + scale * 0.45], fill=body)
        draw.ellipse([cx + scale * 0.35, cy - scale * 0.8, cx + scale, cy - scale * 0.15], fill=body)
        for leg in (-0.8, -0.4, 0.1, 0.4):
            draw.rectangle([cx + leg * scale, cy + scale * 0.3, cx + (leg + 0.15) * scale, cy + scale], fill=body)
    if pattern == "stripes":
        for k in range(-3, 4):
            y = cy + k * scale * 0.25
            draw.line([(cx - scale * 0.6, y), (cx + scale * 0.6, y)], fill=accent, width=max(1, size // 48))
    else:
        radius = max(1.0, scale * (0.12 if pattern == "dots" else 0.18))
        for _ in range(5):
            x, y = cx + rng.uniform(-0.5, 0.4) * scale, cy + rng.uniform(-0.3, 0.3) * scale
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=accent)
    return np.asarray(image, dtype=np.uint8)


def write_synthetic(folder: Path, views: int, size: int = 64, seed: int = 0,
                    object_templates: list[str] | None = None, live_templates: list[str] | None = None) -> Path:
    """Write the procedural subjects in the real layout; returns the ``dataset`` folder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = folder / DATASET_FOLDER
    for name in SYNTHETIC_SUBJECTS:
        (root / name).mkdir(parents=True, exist_ok=True)
        for view in range(views):
            Image.fromarray(_draw_subject(name, view, size, rng)).save(root / name / f"{view:02d}.jpg", quality=95)
    lines = ["Classes", "", "subject_name,class"]
    lines += [f"{name},{noun}" for name, (noun, *_rest) in SYNTHETIC_SUBJECTS.items()]
    lines += ["", "Prompts"]
    for title, templates in (("Object Prompts", object_templates), ("Live Subject Prompts", live_templates)):
        quoted = [f"'{t}'.format(unique_token, class_token)," for t in templates or []]
        lines += ["", title, "", "prompt_list = [", *quoted, "]"]
    (root / CLASSES_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
