"""Pydantic models of task and method specs, and YAML IO with one-line errors.

A spec is plain data: no code, no templates that execute. The ``tiny`` profile of a
task is a partial spec merged over the full one and validated again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.specs_data import (
    MAX_IMAGES,
    MAX_PIXELS,
    CocoCaptionsDataSpec,
    DeepFashionDataSpec,
    DreamboothDataSpec,
    Float,
    Int,
    MicroworldDataSpec,
    PersonFolderDataSpec,
    SingleImageDataSpec,
    check_subject_template,
)

SPEC_VERSION = 1

# Declared limits (pydantic states the bound in the error: "less than or equal to 1000000").
MAX_STEPS = 1_000_000  # optimizer steps of a budget or recipe
MAX_SAMPLING_STEPS = 10_000  # denoising steps
MAX_SECONDS = 30 * 24 * 3600.0  # a budget's wall time
MAX_BATCH = 4096
MAX_SPEC_BYTES = 1_000_000  # a spec file larger than this is refused before parsing
MAX_SPEC_NODES = 100_000  # YAML nodes after expanding aliases (an alias bomb is refused before it is built)

Beta = Annotated[Float, Field(ge=0, lt=1)]


class SpecError(ValueError):
    """A spec file is unreadable or invalid; the message is one line naming file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """Which base model family and which weights."""

    family: Literal["sd15", "sd21", "sdxl", "flux", "micro"]
    hub_id: str
    revision: str | None = None
    # SDXL only: the refiner applied to the last ``sampling.refine_fraction`` of denoising.
    refiner_hub_id: str | None = None
    refiner_revision: str | None = None


class BudgetSpec(_Strict):
    """Fixed training budget; training stops at whichever limit comes first."""

    max_samples: Int = Field(ge=1, le=MAX_IMAGES * 100)
    max_steps: Int = Field(ge=1, le=MAX_STEPS)
    max_seconds: Float = Field(gt=0, le=MAX_SECONDS)


class TrainingSpec(_Strict):
    """Optimisation recipe. Task gives the protocol's defaults; a method may override fields."""

    learning_rate: Float | None = Field(default=None, gt=0, le=10, allow_inf_nan=False)
    betas: tuple[Beta, Beta] | None = None
    weight_decay: Float | None = Field(default=None, ge=0, le=10, allow_inf_nan=False)
    batch_size: Int | None = Field(default=None, ge=1, le=MAX_BATCH)
    max_steps: Int | None = Field(default=None, ge=1, le=MAX_STEPS)
    mixed_precision: Literal["no", "fp16", "bf16"] | None = None
    max_grad_norm: Float | None = Field(default=None, gt=0, allow_inf_nan=False)
    lr_schedule: Literal["constant", "cosine"] | None = None  # diffusers get_scheduler, no warm-up
    epochs: Int | None = Field(default=None, ge=1, le=MAX_STEPS)  # caps optimizer steps at epochs x batches per epoch
    gradient_checkpointing: bool | None = None


class Cifar10DataSpec(_Strict):
    """CIFAR-10 adapter and preprocessing."""

    adapter: Literal["cifar10"]
    subset_size: Int = Field(ge=1, le=MAX_IMAGES)
    resolution: Int = Field(ge=8, le=MAX_PIXELS)
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    templates: list[str] = Field(min_length=1)
    classes: list[str] = Field(min_length=1)
    synthetic_per_class: Int = Field(default=40, ge=1, le=100_000)

    @model_validator(mode="after")
    def _templates_have_slot(self) -> Cifar10DataSpec:
        for template in self.templates:
            if "{c}" not in template:
                raise ValueError(f"template {template!r} must contain '{{c}}'")
        return self


# One typed data spec per adapter, chosen by its ``adapter`` field.
DataSpec = Annotated[
    Cifar10DataSpec | DeepFashionDataSpec | CocoCaptionsDataSpec | PersonFolderDataSpec | SingleImageDataSpec
    | DreamboothDataSpec | MicroworldDataSpec,
    Field(discriminator="adapter"),
]


class SamplingSpec(_Strict):
    """Seeded generation settings."""

    scheduler: Literal["ddim", "flow_match_euler"] = "ddim"
    steps: Int = Field(ge=1, le=MAX_SAMPLING_STEPS)
    guidance_scale: Float = Field(ge=0, le=1000, allow_inf_nan=False)
    height: Int = Field(ge=8, le=MAX_PIXELS)
    width: Int = Field(ge=8, le=MAX_PIXELS)
    batch_size: Int = Field(default=8, ge=1, le=MAX_BATCH)
    negative_prompt: str | None = None
    negative_prompt_for: Literal["all", "frozen"] = "all"  # "frozen": only the untrained base gets it
    refine_fraction: Float = Field(default=0.0, ge=0, lt=1)  # SDXL refiner on the last fraction of steps
    prompt_prefix: str | None = None  # prepended (with a space) to every evaluation prompt
    near_black_threshold: Float = Field(default=10.0, ge=0, le=255)


class PromptSpec(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    text: str
    group: str | None = None


class PromptSetSpec(_Strict):
    """Prompts of one evaluation: either class templates (per-class table) or a fixed list."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    source: Literal["class_templates", "list", "dataset_captions", "subject_templates"]
    samples_per_prompt: Int = Field(ge=1, le=100_000)
    prompts: list[PromptSpec] = Field(default_factory=list)
    # dataset_captions: the captions of the first ``max_prompts`` evaluation images of the data adapter
    max_prompts: Int | None = Field(default=None, ge=1, le=1_000_000)
    # subject_templates: '{0}' = identifier, '{1}' = class noun; live subjects use live_templates if given.
    templates: list[str] = Field(default_factory=list)
    live_templates: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _list_needs_prompts(self) -> PromptSetSpec:
        if self.source == "list" and not self.prompts:
            raise ValueError("a 'list' prompt set needs at least one prompt")
        if self.source == "dataset_captions" and self.max_prompts is None:
            raise ValueError("a 'dataset_captions' prompt set needs 'max_prompts'")
        if self.source == "subject_templates":
            if not self.templates:
                raise ValueError("a 'subject_templates' prompt set needs at least one template")
            for template in [*self.templates, *self.live_templates]:
                check_subject_template(template)
        return self


class MetricSpec(_Strict):
    """One metric, its backbone, the prompt sets it applies to (default: all) and its uncertainty options.

    ``name``: a metric declared in ``harness.metrics`` (``register_metric``; counts are not named, they
    come with their metric). ``backbone`` / ``weights`` default to the metric's registered default.
    ``resamples``: bootstrap resamples (per-image metrics), FID subsamples or KID subsets;
    ``subset_size``: samples per FID subsample / KID subset. ``None`` = the metric's default.
    """

    name: str
    backbone: str = ""
    weights: str = ""
    prompt_sets: list[str] | None = None
    resamples: Int | None = Field(default=None, ge=2, le=1_000_000)
    subset_size: Int | None = Field(default=None, ge=2, le=MAX_IMAGES)

    @field_validator("name")
    @classmethod
    def _declared(cls, name: str) -> str:
        from harness.metric_registry import metric_names

        known = metric_names()
        if name not in known:
            raise ValueError(f"unknown metric '{name}' (declared: {', '.join(known)})")
        return name

    @model_validator(mode="before")
    @classmethod
    def _default_backbone(cls, data: Any) -> Any:
        from harness.metric_registry import default_backbone

        found = default_backbone(data["name"]) if isinstance(data, dict) and isinstance(data.get("name"), str) \
            else None
        if found is not None:
            backbone, weights = found
            data = {**data, "backbone": data.get("backbone") or backbone, "weights": data.get("weights") or weights}
        return data


class EvaluationSpec(_Strict):
    prompt_sets: list[PromptSetSpec] = Field(min_length=1)
    metrics: list[MetricSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _metric_prompt_sets_exist(self) -> EvaluationSpec:
        known = [p.name for p in self.prompt_sets]
        for metric in self.metrics:
            for name in metric.prompt_sets or []:
                if name not in known:
                    raise ValueError(f"metric '{metric.name}' names prompt set '{name}' (known: {', '.join(known)})")
        return self


class TaskSpec(_Strict):
    """A benchmark task: base model, data, training defaults, budget, sampling, evaluation."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", max_length=100)
    version: Int = Field(ge=1, le=1_000_000)
    description: str = ""
    model: ModelSpec
    data: DataSpec
    training: TrainingSpec
    budget: BudgetSpec
    sampling: SamplingSpec
    evaluation: EvaluationSpec
    profiles: dict[Literal["tiny"], dict[str, Any]] = Field(default_factory=dict)
    # The profile a command uses when no --profile is given: microworld tasks' full protocol runs on a CPU.
    default_profile: Literal["full", "tiny"] = "tiny"
    # The methods the protocol compares on this task (what `bench describe --task T` accounts for).
    methods: list[str] = Field(default_factory=list)
    # Evaluation-only task: scores the adapter that this task's run of the same method produced.
    adapter_from_task: str | None = Field(default=None, pattern=r"^[a-z0-9_]+$")


class MethodSpec(_Strict):
    """A fine-tuning method: its kind (implementation) plus parameters and training overrides."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", max_length=100)
    version: Int = Field(ge=1, le=1_000_000)
    kind: str = Field(pattern=r"^[a-z0-9_]+$", max_length=100)
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    training: TrainingSpec = TrainingSpec()
    # Reduced counts for the tiny profile (e.g. class images, stage steps), merged like a task's.
    profiles: dict[Literal["tiny"], dict[str, Any]] = Field(default_factory=dict)
    # The recipe on another base-model family (e.g. the 1M-parameter microworld UNet needs a larger learning
    # rate than SD's 5e-6), merged over the spec before its profile.
    families: dict[Literal["sd15", "sd21", "sdxl", "flux", "micro"], dict[str, Any]] = Field(default_factory=dict)


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def _one_line(error: dict[str, Any]) -> str:
    msg = error["msg"].replace("\n", " ")
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"field '{_format_loc(error['loc'])}': {msg} (got {shown})"


describe_error = _one_line  # one line of a pydantic error, for schemas outside this module (method params)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, raising SpecError with file and position on failure.

    Refused before anything is built: files over MAX_SPEC_BYTES, bytes that are not UTF-8, documents that
    expand (aliases counted every time they are used) to more than MAX_SPEC_NODES nodes or refer to
    themselves, and mappings that repeat a key (YAML would silently keep the last one)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read file ({exc.strerror})") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: spec file is larger than the limit of {MAX_SPEC_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "save the spec as UTF-8") from None
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is not None:
            _check_nodes(node, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise SpecError(f"{path}: invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a YAML mapping at top level, got {type(data).__name__}")
    return data


def _check_nodes(root: yaml.Node, path: Path) -> None:
    """Expanded size, self-reference and duplicate keys of a composed YAML document."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def where(node: yaml.Node) -> str:
        return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise SpecError(f"{where(node)}: invalid YAML: an alias refers to a node that contains it")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    identity = (key_node.tag, key_node.value)
                    if identity in seen:
                        raise SpecError(f"{where(key_node)}: duplicate key '{key_node.value}' (YAML would keep "
                                        "only the last one)")
                    seen.add(identity)
                total += size(key_node) + size(value_node)
        open_nodes.discard(key)
        sizes[key] = total
        if total > MAX_SPEC_NODES:
            raise SpecError(f"{where(root)}: spec expands to more than {MAX_SPEC_NODES:,} YAML nodes (aliases "
                            "counted each time they are used); refused")
        return total

    size(root)


def parse_spec(model: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    """Validate ``data`` as ``model``; the first error becomes a one-line SpecError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: {_one_line(exc.errors()[0])}") from None


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (lists are replaced, not merged)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _load_with_profiles(model: type[TaskSpec] | type[MethodSpec], path: Path) -> Any:
    """Load and validate a spec, and each of its profiles and family recipes merged over it."""
    data = read_yaml(path)
    spec = parse_spec(model, data, str(path))
    base = {k: v for k, v in data.items() if k not in ("profiles", "families")}
    for profile, override in spec.profiles.items():
        parse_spec(model, deep_merge(base, override), f"{path} (profiles.{profile})")
    for family, override in getattr(spec, "families", {}).items():
        parse_spec(model, deep_merge(base, override), f"{path} (families.{family})")
    return spec


def load_task(path: Path) -> TaskSpec:
    """Load and validate a task spec, including its tiny profile."""
    return _load_with_profiles(TaskSpec, path)


def load_method(path: Path) -> MethodSpec:
    """Load and validate a method spec, including its tiny profile."""
    return _load_with_profiles(MethodSpec, path)


def resolve_method_profile(method: MethodSpec, profile: str, family: str | None = None) -> MethodSpec:
    """The method as the given profile on the given model family sees it: its recipe for that family, then
    its profile's overrides, merged (no profiles or families left)."""
    base = method.model_dump(mode="json", exclude={"profiles", "families"})
    base = deep_merge(base, method.families.get(family, {})) if family else base
    override = method.profiles.get(profile, {}) if profile != "full" else {}
    return parse_spec(MethodSpec, deep_merge(base, override), f"method {method.name} ({profile})")


def resolve_profile(task: TaskSpec, profile: str) -> TaskSpec:
    """Return the task as the given profile sees it (``full`` is the spec itself)."""
    if profile == "full":
        return task
    if profile not in task.profiles:
        raise SpecError(f"task '{task.name}': no '{profile}' profile declared")
    base = task.model_dump(mode="json", exclude={"profiles"})
    return parse_spec(TaskSpec, deep_merge(base, task.profiles[profile]), f"task {task.name} ({profile})")
