"""``bench submit``: validate a method spec, register it in the user's registry, run it on tasks.

The user's registry is a folder outside the installed package (``user_methods_dir()``).
Everything is validated before anything is written: the spec, its kind (built-in or plugin), that
the implementation builds from the spec, and a plan on every chosen task.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import registry
from harness.methods import check_method, method_class
from harness.paths import user_methods_dir
from harness.plan import RunPlan, build_plan
from harness.specs import MethodSpec, SpecError, load_method


@dataclass(frozen=True)
class Submission:
    """A validated method and the plans it will run."""

    method: MethodSpec
    source: Path
    plans: list[RunPlan]


def validate(spec_path: Path, tasks: list[str], profile: str | None, seed: int = 0) -> Submission:
    """Check the spec, its kind, its name, and that it plans on every task; writes nothing."""
    method = registry.get_method(str(spec_path))
    baseline = registry.baseline_files().get(method.name)
    if baseline is not None:
        raise SpecError(f"{spec_path}: field 'name': '{method.name}' is a built-in baseline ({baseline}); "
                        "submit under another name")
    check_method(method, str(spec_path))
    try:
        method_class(method.kind)(method)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{spec_path}: method kind '{method.kind}' rejects this spec ({exc})") from None
    if not tasks:
        raise SpecError("no task to run on: pass --task (registered: "
                        f"{', '.join(registry.task_files()) or 'none'})")
    plans = [build_plan(task, str(spec_path), profile, seed) for task in tasks]
    return Submission(method, spec_path, plans)


def register(submission: Submission, replace: bool = False) -> Path:
    """Copy the spec into the user's registry as ``<name>.yaml``; a different spec of that name is kept
    unless ``replace``. Never writes through a link, nor outside ``registry.user_root()``: the file is
    written next to its target and moved into place (``os.replace`` replaces a link, not what it points to)."""
    folder = user_methods_dir()
    target = folder / f"{submission.method.name}.yaml"
    if folder.exists() and not registry.inside_user_root(folder):
        raise SpecError(f"{folder}: the method registry resolves outside {registry.user_root()}; refusing to "
                        "write there")
    if target.is_symlink():
        raise SpecError(f"{target}: is a symbolic link; the method registry never follows links (remove it "
                        "and submit again)")
    if target.exists() and not replace:
        try:
            same = load_method(target) == submission.method
        except SpecError:
            same = False
        if not same:
            raise SpecError(f"{submission.source}: field 'name': a different method '{submission.method.name}' is "
                            f"already registered at {target}; bump the name or pass --replace")
    folder.mkdir(parents=True, exist_ok=True)
    if submission.source.resolve() != target.resolve():
        data = submission.source.read_bytes()
        handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    return target
