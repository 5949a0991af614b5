"""Sample grids as PNG files: runs side by side on the same prompts and seeds (e.g. frozen vs trained)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CELL = 96  # pixels per sample in the grid (small samples are enlarged with nearest-neighbour)
LABEL = 150  # width of the prompt column


def side_by_side(store: Any, runs: list[dict[str, Any]], prompt_set: str, out: Path, max_prompts: int = 8,
                 max_samples: int = 4) -> Path | None:
    """One row per prompt (the first ``max_prompts`` of ``prompt_set``), one block of ``max_samples`` samples
    per run, same sample indices (hence the same seeds) in every block; column headers name the runs."""
    from PIL import Image, ImageDraw

    rows = {}
    for run in runs:
        for sample in store.samples(run["run_id"]):
            if sample["prompt_set"] == prompt_set and sample["checkpoint"] is None \
                    and sample["sample_idx"] < max_samples:
                rows.setdefault(sample["prompt_id"], {}).setdefault(run["run_id"], {})[sample["sample_idx"]] = \
                    (Path(run["run_dir"]) / sample["file"], sample["prompt"])
    prompts = sorted(rows)[:max_prompts]
    if not prompts:
        return None
    max_samples = 1 + max(index for prompt in prompts for samples in rows[prompt].values() for index in samples)
    width = LABEL + len(runs) * (max_samples * CELL + 8)
    sheet = Image.new("RGB", (width, 20 + len(prompts) * CELL), "white")
    draw = ImageDraw.Draw(sheet)
    for block, run in enumerate(runs):
        draw.text((LABEL + block * (max_samples * CELL + 8), 4), run["label"], fill="black")
    for row, prompt_id in enumerate(prompts):
        top = 20 + row * CELL
        text = next(iter(next(iter(rows[prompt_id].values())).values()))[1]
        for line, start in enumerate(range(0, len(text), 24)):
            draw.text((4, top + 4 + 12 * line), text[start:start + 24], fill="black")
        for block, run in enumerate(runs):
            for index, (path, _) in sorted(rows[prompt_id].get(run["run_id"], {}).items()):
                image = Image.open(path).convert("RGB").resize((CELL, CELL), Image.NEAREST)
                sheet.paste(image, (LABEL + block * (max_samples * CELL + 8) + index * CELL, top))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
