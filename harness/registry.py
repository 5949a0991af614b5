"""Discovery of task and method specs, and lazy lookup of method implementations.

Nothing here imports torch: listing must stay instant.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from harness.paths import baselines_dir, tasks_dir, user_methods_dir
from harness.specs import MethodSpec, SpecError, TaskSpec, load_method, load_task

# kind -> "module:attribute"; imported only when a run needs the class (``harness.methods.method_class``).
METHOD_KINDS: dict[str, str] = {
    "frozen": "harness.methods.frozen:FrozenMethod",
    "attn_finetune": "harness.methods.attn_finetune:AttnFinetuneMethod",
    "lora": "harness.methods.lora:LoraMethod",
    "textual_inversion": "harness.methods.textual_inversion:TextualInversionMethod",
    "dreambooth": "harness.methods.dreambooth:DreamBoothMethod",
    "dreambooth_lora": "harness.methods.dreambooth:DreamBoothLoraMethod",
    "ti_then_ft": "harness.methods.ti_then_ft:TiThenFtMethod",
}

# Entry-point group through which installed packages add method kinds (name = kind, value = "module:Class").
PLUGIN_GROUP = "bench.methods"


class UnknownNameError(LookupError):
    """A task or method name that is neither registered nor a file."""


def _spec_files(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def task_files() -> dict[str, Path]:
    """Registered task names mapped to their YAML files."""
    return _spec_files(tasks_dir())


def baseline_files() -> dict[str, Path]:
    """Built-in method names (``baselines/``) mapped to their YAML files."""
    return _spec_files(baselines_dir())


def user_root() -> Path:
    """The folder the user's registry must stay inside (``$BENCH_HOME``, or the config folder of bench)."""
    return user_methods_dir().parent


def inside_user_root(path: Path) -> bool:
    """Whether ``path``, links resolved, lies inside ``user_root()`` (the registry never follows links out)."""
    try:
        return path.resolve().is_relative_to(user_root().resolve())
    except (OSError, RuntimeError):  # a link loop
        return False


def user_method_files() -> dict[str, Path]:
    """The user's registered methods; a file or link that resolves outside ``user_root()`` is ignored."""
    return {name: path for name, path in _spec_files(user_methods_dir()).items() if inside_user_root(path)}


def method_files() -> dict[str, Path]:
    """Registered method names mapped to their YAML files (baselines win over the user's registry)."""
    return {**user_method_files(), **baseline_files()}


def unknown_name(kind: str, name: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UnknownNameError(f"unknown {kind} '{name}'{hint} (known: {', '.join(known) or 'none'})")


def _resolve_path(kind: str, name_or_path: str, registered: dict[str, Path]) -> Path:
    if name_or_path in registered:
        return registered[name_or_path]
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_file():
            raise SpecError(f"{candidate}: no such {kind} spec file")
        return candidate
    raise unknown_name(kind, name_or_path, sorted(registered))


def get_task(name_or_path: str) -> TaskSpec:
    """A task spec by registered name or YAML path."""
    path = _resolve_path("task", name_or_path, task_files())
    task = load_task(path)
    if path.stem != task.name and path.parent == tasks_dir():
        raise SpecError(f"{path}: field 'name': must equal the file name '{path.stem}'")
    _check_identity("task", path, task, task_files(), load_task)
    return task


def get_method(name_or_path: str) -> MethodSpec:
    """A method spec by registered name or YAML path; its kind must be known."""
    path = _resolve_path("method", name_or_path, method_files())
    method = load_method(path)
    if path.stem != method.name and path.parent in (user_methods_dir(), baselines_dir()):
        raise SpecError(f"{path}: field 'name': must equal the file name '{path.stem}'")
    _check_identity("baseline", path, method, baseline_files(), load_method)
    kinds = known_kinds()
    if method.kind not in kinds:
        raise SpecError(
            f"{path}: field 'kind': unknown method kind '{method.kind}' "
            f"(expected one of {', '.join(kinds)}; new kinds come from packages declaring a '{PLUGIN_GROUP}' "
            "entry point)"
        )
    return method


def _check_identity(kind: str, path: Path, spec: Any, builtins: dict[str, Path], load: Any) -> None:
    """Names are identities: a spec that takes a built-in's name must be that file or have its content."""
    builtin = builtins.get(spec.name)
    if builtin is None or _same_file(builtin, path):
        return
    try:
        original = load(builtin)
    except SpecError:
        original = None
    if original != spec:
        raise SpecError(f"{path}: field 'name': '{spec.name}' is a built-in {kind} ({builtin}), and this spec "
                        "differs from it; give it a name of its own")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def plugin_kinds() -> dict[str, Any]:
    """Method kinds installed packages declare in the entry-point group (nothing is imported)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in METHOD_KINDS}


def known_kinds() -> list[str]:
    """Built-in and plugin method kinds."""
    return sorted({*METHOD_KINDS, *plugin_kinds()})


TASK_KEYS = frozenset({"model", "data", "budget", "sampling", "evaluation", "default_profile", "adapter_from_task"})


def validate_file(path: Path) -> str:
    """Validate one spec file, deciding task vs method by its folder or its keys: a file in a method folder,
    with a ``kind``, or with none of a task's own keys is a method (so a method missing ``kind`` is
    reported as such)."""
    folder = path.parent.resolve()
    if folder == tasks_dir().resolve():
        is_method = False
    elif folder in (baselines_dir().resolve(), user_methods_dir().resolve()):
        is_method = True
    else:
        keys = _peek_keys(path)
        is_method = "kind" in keys or not keys & TASK_KEYS
    if is_method:
        get_method(str(path))
        return "method"
    get_task(str(path))
    return "task"


def _peek_keys(path: Path) -> set[str]:
    from harness.specs import read_yaml

    return {str(key) for key in read_yaml(path)}
