"""Build (train) the microworld models reproducibly from seeds and write ``manifest.json``.

    python -m harness.micro.build                       # everything, into harness/micro/weights
    python -m harness.micro.build --only vae,unet       # some parts (the manifest is merged, not replaced)
    python -m harness.micro.build --only quality        # re-measure judge and base quality only
    python -m harness.micro.build --check               # rebuild into a temp folder, compare quality floors

On a 2-core machine the fastest schedule is two single-thread processes side by side:
``--only vae,unet`` and ``--only clip,dino,face``, then ``--only quality``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.paths import file_sha256 as sha256

PARTS = ("vae", "unet", "clip", "dino", "face")
STEPS = {"vae": 1500, "unet": 4000, "clip": 4000, "dino": 1500, "face": 1000}
SEEDS = {"vae": 0, "unet": 0, "clip": 0, "dino": 0, "face": 0}
FILES = {"vae": ["vae.safetensors", "vae_scaling.json", "text_encoder.safetensors"], "unet": ["unet.safetensors"],
         "clip": ["judge_clip.safetensors"], "dino": ["judge_dino.safetensors"], "face": ["judge_face.safetensors"]}


def _read(out: Path) -> dict[str, Any]:
    path = out / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _write(out: Path, manifest: dict[str, Any]) -> None:
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def _locked(out: Path) -> Any:
    """Two build processes (base and judges side by side) merge their records into one manifest."""
    import fcntl

    with (out / ".manifest.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def train_part(part: str, out: Path, steps: int | None = None) -> dict[str, Any]:
    import torch

    from harness.micro import train

    steps = steps or STEPS[part]
    seed = SEEDS[part]
    function = {"vae": train.train_vae, "unet": train.train_unet, "clip": train.train_clip,
                "dino": train.train_dino, "face": train.train_face}[part]
    record = function(out, steps=steps, seed=seed)
    record["command"] = f"python -m harness.micro.build --only {part} --steps {part}={steps}"
    record["threads"] = torch.get_num_threads()
    record["torch"] = torch.__version__
    return record


def _record_files(out: Path, manifest: dict[str, Any], part: str, record: dict[str, Any]) -> None:
    files = manifest.setdefault("files", {})
    for name in FILES[part]:
        path = out / name
        files[name] = {"sha256": sha256(path), "bytes": path.stat().st_size, "made_by": record["command"],
                       "seed": record["seed"], "steps": record["steps"]}


def build(out_dir: Path | str | None = None, check: bool = False, only: tuple[str, ...] | None = None,
          steps: dict[str, int] | None = None, measure: bool = True) -> dict[str, Any]:
    """Train the requested parts into ``out_dir`` (default: the shipped weights folder), then measure quality.

    ``check=True`` rebuilds everything into a temporary folder and compares its measured quality with the
    shipped manifest's floors; returns ``{"ok": bool, "failures": [...], ...}``.
    """
    from harness.micro import base

    if check:
        with tempfile.TemporaryDirectory(prefix="microworld-check-") as tmp:
            if only is not None:  # retrain some parts next to copies of the shipped others
                import shutil

                for path in base.WEIGHTS_DIR.glob("*"):
                    if path.is_file() and not path.name.startswith("."):
                        shutil.copy(path, tmp)
                only = tuple(only) + ("quality",)
            fresh = build(tmp, only=only, steps=steps)
            return compare(_read(base.WEIGHTS_DIR), fresh)
    out = Path(out_dir) if out_dir is not None else base.WEIGHTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    parts = [p for p in PARTS if only is None or p in only]
    steps = steps or {}
    for part in parts:
        print(f"== training {part}", flush=True)
        record = train_part(part, out, steps.get(part))
        with _locked(out):
            manifest = _read(out)
            manifest.setdefault("training", {})[part] = record
            _record_files(out, manifest, part, record)
            _write(out, manifest)
    if measure and (only is None or "quality" in only):
        from harness.micro import quality

        start = time.time()
        manifest = _read(out)
        measured = quality.measure_all(out)
        manifest["judges"] = measured["judges"]
        manifest["base_quality"] = measured["base"]
        manifest["quality_wall_s"] = round(time.time() - start, 1)
        _write(out, manifest)
    return _read(out)


# quality floors a rebuild must reach (also asserted by the tests on the shipped weights)
FLOORS = {
    ("judges", "clip", "quality", "caption_accuracy_held_in"): 0.9,
    ("judges", "clip", "quality", "caption_accuracy_held_out"): 0.85,
    ("judges", "dino", "quality", "attribute_accuracy"): 0.9,
    ("judges", "face", "quality", "detector_accuracy"): 0.95,
    ("judges", "face", "quality", "verification_accuracy"): 0.9,
    ("base_quality", "generated_held_in", "mean"): 0.5,
}


def _get(tree: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        tree = tree.get(key, {}) if isinstance(tree, dict) else {}
    return tree if not isinstance(tree, dict) else None


def compare(shipped: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    failures = []
    for keys, floor in FLOORS.items():
        value = _get(fresh, keys)
        if value is None or value < floor:
            failures.append(f"{'/'.join(keys)}: {value} below floor {floor} (shipped {_get(shipped, keys)})")
    return {"ok": not failures, "failures": failures, "fresh": fresh}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.micro.build", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="output folder (default: harness/micro/weights)")
    parser.add_argument("--check", action="store_true", help="rebuild into a temp folder and compare quality floors")
    parser.add_argument("--only", default=None, help=f"comma list of {', '.join(PARTS)}, quality")
    parser.add_argument("--steps", action="append", default=[], help="override, e.g. --steps unet=2000")
    parser.add_argument("--summary", action="store_true", help="print the manifest as markdown tables and exit")
    args = parser.parse_args(argv)
    if args.summary:
        from harness.micro import base

        print(summary(_read(Path(args.out) if args.out else base.WEIGHTS_DIR)))
        return 0
    only = tuple(args.only.split(",")) if args.only else None
    steps = {k: int(v) for k, v in (s.split("=") for s in args.steps)}
    result = build(args.out, check=args.check, only=only, steps=steps)
    if args.check:
        print(json.dumps({"ok": result["ok"], "failures": result["failures"]}, indent=1))
        return 0 if result["ok"] else 1
    return 0



def summary(manifest: dict[str, Any]) -> str:
    """Markdown tables of the manifest's sizes, training times and measured quality (for docs/microworld.md)."""
    lines = ["| file | bytes | sha256 (16) | made by |", "|---|---|---|---|"]
    for name, entry in sorted(manifest.get("files", {}).items()):
        lines.append(f"| {name} | {entry['bytes']:,} | {entry['sha256'][:16]} | `{entry['made_by']}` |")
    lines += ["", "| part | steps | batch | lr | seed | final loss | wall s (1 thread) |",
              "|---|---|---|---|---|---|---|"]
    for part, record in manifest.get("training", {}).items():
        loss = record.get("final_loss")
        lines.append(f"| {part} | {record['steps']} | {record.get('batch')} | {record.get('lr')} | {record['seed']} | "
                     f"{loss:.4f} | {record['wall_s']} |")

    def ci(entry: dict[str, Any]) -> str:
        return f"{entry['mean']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}] (n={entry['n']})"

    judges = manifest.get("judges", {})
    if judges:
        lines += ["", "| judge | params | measured quality (fresh images) |", "|---|---|---|"]
        for name, card in judges.items():
            q = card["quality"]
            if name == "clip":
                text = (f"zero-shot caption accuracy (1,472-way) held-in {q['caption_accuracy_held_in']:.3f}, "
                        f"held-out {q['caption_accuracy_held_out']:.3f}; attributes held-out "
                        f"{q['attribute_accuracy_held_out']}; cosine matched "
                        f"{ci(q['cosine_matched_held_in'])}, one attribute swapped "
                        f"{ci(q['cosine_one_swapped_held_in'])}, random caption "
                        f"{ci(q['cosine_random_caption_held_in'])}; gap held-in "
                        f"{ci(q['cosine_gap_matched_minus_swapped_held_in'])}, held-out "
                        f"{ci(q['cosine_gap_matched_minus_swapped_held_out'])}")
            elif name == "dino":
                text = (f"head accuracy {q['head_accuracy']}; embedding cosine same caption "
                        f"{ci(q['cosine_same_caption'])}, different caption {ci(q['cosine_different_caption'])}")
            else:
                text = (f"detector accuracy {q['detector_accuracy']} ({q['n_faces']} faces + {q['n_non_faces']} "
                        f"non-faces); verification accuracy {q['verification_accuracy']} at distance "
                        f"{q['same_identity_distance']}; mean distance same person {q['distance_same_person']}, "
                        f"different {q['distance_different_person']}")
            lines.append(f"| {name} | {card['params']:,} | {text} |")
    base = manifest.get("base_quality", {})
    if base:
        lines += ["", "| base-model measurement (judge CLIP cosine, 95% bootstrap CI) | value |", "|---|---|"]
        for key, entry in base.items():
            if isinstance(entry, dict) and "mean" in entry:
                extra = entry.get("judge_attribute_accuracy")
                suffix = f"; judge-read accuracy {extra}" if extra else ""
                lines.append(f"| {key} | {ci(entry)}{suffix} |")
            elif key.startswith("vae_mse") or key == "generated_faces":
                lines.append(f"| {key} | {entry} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
