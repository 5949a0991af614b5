"""What every reader shares: where the data root is, opening an image upright with a one-line error, and the
content fingerprint of the files a run reads.

Fingerprint: ``files:<count>:<sha256 prefix>`` over the sorted (path relative to the dataset folder, size,
sha256 of the content) of exactly the files the readers use for the plan (the selected subset where the
reader selects one, e.g. COCO's drawn images). Content hashes are cached per file in the bench cache, keyed by
absolute path, size and mtime, so a second run stats the files instead of reading them. Relative paths and
contents (not mtimes or locations) make it an identity of the data: an identical copy elsewhere gets the same
fingerprint, a changed, added or removed file a different one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.errors import DataMissingError
from harness.paths import cache_dir
from harness.paths import file_sha256 as _sha256

HASH_CACHE = "data_hashes.json"


def data_base(plan: Any) -> Path | None:
    """``--data-root`` (recorded in the plan), else ``$BENCH_DATA``, else None (tiny: synthetic stand-in)."""
    base = plan.data_root or os.environ.get("BENCH_DATA")
    return Path(base) if base else None


def uses_real_data(plan: Any) -> bool:
    """True when the readers read real files: a data root is given, or the profile is ``full``."""
    return plan.profile == "full" or data_base(plan) is not None


def open_rgb(path: Path) -> Any:
    """The image at ``path`` as an upright (EXIF orientation applied), fully decoded RGB PIL image; a missing,
    empty, truncated or undecodable file raises one ``DataMissingError`` line naming it."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            upright.load()
            return upright.convert("RGB")
    except FileNotFoundError:
        raise DataMissingError(f"{path}: image file does not exist") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        raise DataMissingError(f"{path}: not a readable image ({_why(path, exc)})") from None


def _why(path: Path, exc: Exception) -> str:
    if path.is_file() and path.stat().st_size == 0:
        return "empty file"
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def upright_size(path: Path) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientations 5-8 swap them), from the header only."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise DataMissingError(f"{path}: image file does not exist") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        raise DataMissingError(f"{path}: not a readable image ({_why(path, exc)})") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def check_image(path: Path) -> None:
    """A cheap completeness check before anything loads: the header parses (not empty, not random bytes) and a
    JPEG / PNG ends with its end marker (a truncated download does not); one ``DataMissingError`` line."""
    upright_size(path)
    with path.open("rb") as handle:
        head = handle.read(8)
        handle.seek(max(0, path.stat().st_size - 4096))
        tail = handle.read()
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail:
        raise DataMissingError(f"{path}: not a readable image (truncated JPEG: no end-of-image marker)")
    if head.startswith(b"\x89PNG") and b"IEND" not in tail:
        raise DataMissingError(f"{path}: not a readable image (truncated PNG: no IEND chunk)")


def read_json(path: Path, what: str) -> Any:
    """A JSON file, or one ``DataMissingError`` line naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataMissingError(f"{path}: {what} missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataMissingError(f"{path}: {what} is not valid JSON ({str(exc).splitlines()[0]})") from None


# --- fingerprints ----------------------------------------------------------------------------------

def _load_cache(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def files_fingerprint(folder: Path, files: Iterable[Path], check: Callable[[Path], None] | None = None) -> str:
    """``files:<count>:<hash>`` of the files' paths relative to ``folder``, sizes and content hashes; ``check``
    runs on every file whose hash is not cached yet (a cached entry passed it with the same size and mtime)."""
    cache_file = cache_dir() / HASH_CACHE
    cache = _load_cache(cache_file)
    changed = False
    rows = []
    folder = folder.resolve()
    for path in sorted({Path(f).resolve() for f in files}):
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise DataMissingError(f"{path}: file disappeared while fingerprinting the data") from None
        key = str(path)
        entry = cache.get(key)
        if not entry or entry[0] != stat.st_size or entry[1] != stat.st_mtime_ns:
            if check is not None:
                check(path)
            entry = [stat.st_size, stat.st_mtime_ns, _sha256(path)]
            cache[key] = entry
            changed = True
        try:
            relative = path.relative_to(folder).as_posix()
        except ValueError:
            relative = path.name
        rows.append(f"{relative}\t{stat.st_size}\t{entry[2]}")
    if changed:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(cache), encoding="utf-8")
        os.replace(temporary, cache_file)
    digest = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()[:16]
    return f"files:{len(rows)}:{digest}"


def spec_fingerprint(spec: Any) -> str:
    """``spec:<hash>`` of a data spec (procedural data is a function of its spec)."""
    return "spec:" + hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]
