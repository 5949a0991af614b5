"""The ``bench`` command. Thin: parses options, builds a plan, calls the runner, prints tables.

torch / diffusers are imported only inside commands that need them, so listing stays instant.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from harness import registry
from harness.errors import BenchError
from harness.paths import PROJECT_ROOT
from harness.specs import SpecError

app = typer.Typer(help="Benchmark fine-tuning methods of text-to-image diffusion models.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
ls_app = typer.Typer(help="List registered tasks or methods.", no_args_is_help=True)
app.add_typer(ls_app, name="ls")
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DEFAULT_DB = Path("results/bench.duckdb")
TaskOpt = Annotated[str, typer.Option("--task", "-t", help="Registered task name or path to a task YAML.")]
MethodOpt = Annotated[str, typer.Option("--method", "-m", help="Registered method name or path to a method YAML.")]
ProfileOpt = Annotated[str, typer.Option("--profile", help="full (real weights and data) or tiny (runs anywhere).")]
TaskProfileOpt = Annotated[str | None, typer.Option(
    "--profile", help="full (real weights and data) or tiny (runs anywhere); default: the task's "
    "default_profile (tiny for the study tasks, full for the microworld tasks, whose protocol runs on a CPU).")]
DbOpt = Annotated[Path, typer.Option("--db", help="DuckDB results file; run folders go next to it in runs/.")]


def fail(message: str, code: int) -> None:
    """Print one error line to stderr and exit with ``code``; never a traceback."""
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """One warning line on stderr (markup in the message is printed as is)."""
    err_console.print(f"[bold yellow]warning:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


def one_line(message: str) -> str:
    """Error text on one line (a message quoting a multi-line input must not print a block)."""
    return " ".join(message.split("\n")).strip()


def user_errors(command: Any) -> Any:
    """Turn spec, lookup and harness errors into one line and a non-zero exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (SpecError, registry.UnknownNameError) as exc:
            fail(str(exc).strip("'\""), 2)
        except BenchError as exc:
            fail(str(exc), exc.exit_code)

    return wrapper


def _check_profile(profile: str | None) -> str | None:
    if profile is not None and profile not in ("full", "tiny"):
        raise SpecError(f"--profile: expected 'full' or 'tiny', got '{profile}'")
    return profile


def _one_line(path: Path) -> str:
    """A spec's description, first sentence (the YAML only: listing never imports torch)."""
    import yaml

    try:
        text = str((yaml.safe_load(path.read_text()) or {}).get("description") or "").strip()
    except (OSError, yaml.YAMLError):
        return "(unreadable)"
    first = " ".join(text.split()).split(". ")[0].rstrip(".")
    return first if len(first) <= 90 else first[:87] + "..."


def _print_listing(files: dict[str, Path]) -> None:
    """Aligned columns: name, one-line description, file (never wrapped)."""
    rows = [(name, _one_line(path), str(path)) for name, path in files.items()]
    width = max((len(name) for name, _, _ in rows), default=0)
    described = max((len(text) for _, text, _ in rows), default=0)
    for name, text, path in rows:
        console.print(f"{name:<{width}}  {text:<{described}}  {path}", highlight=False, markup=False,
                      soft_wrap=True)


@ls_app.command("tasks")
@user_errors
def ls_tasks() -> None:
    """Registered tasks, each with its description."""
    _print_listing(registry.task_files())


@ls_app.command("methods")
@user_errors
def ls_methods() -> None:
    """Registered methods, each with its description."""
    _print_listing(registry.method_files())


@app.command()
def validate(paths: Annotated[list[Path] | None, typer.Argument(help="Spec files; default: all registered.")] = None
             ) -> None:
    """Validate task and method specs; one line per file, exit 2 if any is invalid."""
    files = paths or [*registry.task_files().values(), *registry.method_files().values()]
    failures = 0
    from harness.methods import check_method

    for path in files:
        try:
            kind = registry.validate_file(Path(path))
            if kind == "method":
                check_method(registry.get_method(str(path)), str(path))
            console.print(f"ok      {kind:6}  {escape(str(path))}", highlight=False)
        except (SpecError, registry.UnknownNameError, BenchError) as exc:
            failures += 1
            err_console.print(f"[red]invalid[/] {escape(one_line(str(exc).strip(chr(39) + chr(34))))}",
                              highlight=False, soft_wrap=True)
    if failures:
        raise typer.Exit(2)


@app.command()
@user_errors
def describe(task: TaskOpt, method: Annotated[str | None, typer.Option(
                 "--method", "-m", help="One method (plan + count); default: every method the task lists.")] = None,
             profile: TaskProfileOpt = None, seed: int = 0,
             as_json: Annotated[bool, typer.Option("--json", help="Also print the resolved plan as JSON.")] = False
             ) -> None:
    """The method's trainable parameters, share, adapter size and budget (or a table for all methods);
    the resolved plan with --json."""
    from harness.accounting import count_task_methods
    from harness.plan import build_plan

    if method is None:
        from harness.report import print_accounting

        spec = registry.get_task(task)
        print_accounting(console, spec.name, _check_profile(profile) or spec.default_profile, seed)
        return
    plan = build_plan(task, method, _check_profile(profile), seed)
    (account,) = count_task_methods([plan])
    count = account.count
    training = plan.training
    adapter = (f"{account.adapter_bytes:,} bytes ({account.adapter_bytes / 2**20:,.2f} MiB, {account.adapter_source})"
               if account.adapter_bytes else f"none ({account.adapter_source})")
    budget = [f"{training.max_steps:,} steps" if getattr(training, "max_steps", None) else None,
              f"batch {training.batch_size}" if getattr(training, "batch_size", None) else None,
              f"lr {training.learning_rate:g}" if getattr(training, "learning_rate", None) else None,
              f"{training.lr_schedule} schedule" if getattr(training, "lr_schedule", None) else None]
    console.print(
        f"{plan.task.name} / {plan.method.name} ({plan.profile}, seed {plan.seed}); plan hash {plan.plan_hash}\n"
        f"trainable parameters: {count.trainable:,} on the {count.architecture}\n"
        f"  share of base model ({count.base_total:,} params in all modules of the base model): "
        f"{100 * count.share_of_base:.3f}%\n"
        f"  share of {count.component} ({count.component_total:,} params): {100 * count.share_of_component:.3f}%\n"
        f"adapter size: {adapter}\n"
        f"budget: {', '.join(b for b in budget if b) or 'no training'}",
        highlight=False, soft_wrap=True,
    )
    if as_json:
        console.print_json(plan.model_dump_json())
    else:
        console.print("resolved plan: --json", highlight=False)


@app.command("run")
@user_errors
def run_command(
    task: TaskOpt,
    method: MethodOpt,
    profile: TaskProfileOpt = None,
    seed: Annotated[int, typer.Option(help="Run seed: data subset, training noise, sampling noise.")] = 0,
    model_path: Annotated[Path | None, typer.Option(help="Local diffusers folder instead of the hub id.")] = None,
    data_root: Annotated[Path | None, typer.Option(help="Dataset root (default: $BENCH_DATA).")] = None,
    db: DbOpt = DEFAULT_DB,
    force: Annotated[bool, typer.Option("--force", help="Run even if a completed run has this plan.")] = False,
    vs: Annotated[str, typer.Option(help="Reference method to compare with (run first if the store has none "
                                    "for this task, profile and seed); 'none' to skip.")] = "frozen",
) -> None:
    """Train (under the task's budget), sample, score, and store one method on one task; then its gain over the
    reference method on the same prompts and seeds, and a PNG of their samples side by side."""
    from harness.plan import build_plan
    from harness.progress import RichProgress
    from harness.report import print_run
    from harness.runner import run
    from harness.store import Store

    plan = build_plan(task, method, _check_profile(profile), seed, model_path, data_root)
    store = Store(db)
    from harness import distributed

    if not distributed.is_main():  # another process of a torchrun / accelerate launch: the main one reports
        run(plan, store, db.parent / "runs", force=force)
        return
    with RichProgress(err_console) as progress:
        outcome = run(plan, store, db.parent / "runs", force=force, progress=progress)
    if outcome.status == "skipped":
        stored_hash = store.run_row(outcome.run_id)["plan_hash"]  # the plan as bound to its data
        console.print(f"skipped: completed run {outcome.run_id} has plan hash {stored_hash} (use --force)")
    elif outcome.status == "failed":
        fail(f"run {outcome.run_id} failed and is stored as failed: {outcome.error} "
             f"(details: {outcome.run_dir}/error.log)", 1)
    if outcome.pending:
        warn(f"run {outcome.run_id} completed, not stored yet: {outcome.pending}")
        return
    print_run(console, store, outcome.run_id)
    if vs != "none" and plan.method.name != vs:
        _compare_with_reference(plan, outcome.run_id, vs, store, db)


def _compare_with_reference(plan: Any, run_id: str, reference: str, store: Any, db: Path) -> None:
    from harness.analysis.compare import paired_gains
    from harness.analysis.grids import side_by_side
    from harness.commands.reference import ensure_reference
    from harness.progress import RichProgress
    from harness.report import print_gains

    with RichProgress(err_console, f"{reference}: ") as progress:
        outcome = ensure_reference(plan, reference, store, db.parent / "runs", progress)
    if outcome.status == "failed":
        fail(f"reference run {outcome.run_id} ({reference}) failed: {outcome.error}", 1)
    runs = {r["run_id"]: r for r in store.runs(plan.task.name)}
    mine, theirs = runs[run_id], runs[outcome.run_id]
    first_set = plan.task.evaluation.prompt_sets[0].name
    grid = side_by_side(store, [{**theirs, "label": reference}, {**mine, "label": plan.method.name}], first_set,
                        Path(mine["run_dir"]) / f"vs_{reference}.png")
    print_gains(console, paired_gains(store, run_id, outcome.run_id), plan.method.name, reference, plan.profile,
                grid)


@app.command()
@user_errors
def sweep(
    task: TaskOpt,
    method: MethodOpt,
    grid: Annotated[list[str] | None, typer.Option(help="KEY=V1,V2,... (keys: lr, rank, steps, schedule).")] = None,
    design: Annotated[str, typer.Option(help="full (every grid combination) or face-study (the 11-run table).")]
    = "full",
    profile: TaskProfileOpt = None,
    seed: int = 0,
    model_path: Annotated[Path | None, typer.Option(help="Local diffusers folder instead of the hub id.")] = None,
    data_root: Annotated[Path | None, typer.Option(help="Dataset root (default: $BENCH_DATA).")] = None,
    db: DbOpt = DEFAULT_DB,
    force: Annotated[bool, typer.Option("--force", help="Rerun cells that have a completed run.")] = False,
    executor: Annotated[str | None, typer.Option(
        "--executor", help="local | ray | slurm: each cell in its own process on that engine (bench matrix --help "
        "for the engine options); default: one after another in this process.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="--executor local: cells at a time.")] = 1,
) -> None:
    """Run one ordinary run per sweep cell (overrides recorded in each plan); print a summary table."""
    from harness.commands.sweep import run_sweep
    from harness.plan import parse_grid
    from harness.progress import RichProgress
    from harness.report import print_sweep
    from harness.store import Store

    if design not in ("full", "face-study"):
        raise SpecError(f"--design '{design}': expected full or face-study")
    store = Store(db)
    if executor is not None:  # scale-out (harness.commands.executors)
        from harness.commands.sweep import run_sweep_cells

        with _CellProgress() as tick:
            cells = run_sweep_cells(task, method, parse_grid(grid or []), design, _check_profile(profile),  # type: ignore[arg-type]
                                    seed, db, executor, jobs, model_path, data_root, force, on_cell=tick)
    else:
        with RichProgress(err_console) as progress:
            cells = run_sweep(task, method, parse_grid(grid or []), design, _check_profile(profile), seed,  # type: ignore[arg-type]
                              store, db.parent / "runs", model_path, data_root, force, progress=progress)
    print_sweep(console, cells, store)
    if any(cell.status == "failed" for cell in cells):
        raise typer.Exit(1)


@app.command()
@user_errors
def leaderboard(task: TaskOpt, db: DbOpt = DEFAULT_DB,
                profile: Annotated[str | None, typer.Option(help="Only this profile.")] = None,
                wide: Annotated[bool, typer.Option("--wide", help="Every column (metrics, budget, accounting).")]
                = False,
                fmt: Annotated[str, typer.Option("--format", help="table, or csv / json / markdown for copying.")]
                = "table") -> None:
    """Completed runs of a task (latest per configuration), one table per profile, never ranked together;
    compact by default (rank with ties '=', method, headline metric with CI and N, gain, params, steps, s)."""
    from harness.report import FORMATS, print_leaderboard
    from harness.store import Store

    if fmt not in FORMATS:
        raise SpecError(f"--format '{fmt}': expected one of {', '.join(FORMATS)}")
    task_name = registry.get_task(task).name
    print_leaderboard(console, Store(db), task_name, profile, wide=wide, fmt=fmt)


@app.command("weights")
@user_errors
def weights_command(
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="Check what these tasks need (repeatable).")
                    ] = None,
    profile: ProfileOpt = "full",
    verify: Annotated[bool, typer.Option("--verify", help="Hash present files against the expected sha256.")] = False,
) -> None:
    """Every weights file the metrics and model families need, where it goes, and whether it is here.

    With --task: exit 3 with one message if anything that task needs on that profile is missing.
    """
    from harness import weights
    from harness.errors import WeightsMissingError
    from harness.report import print_weights
    from harness.specs import resolve_profile

    needed: list[str] = []
    for ref in task or []:
        spec = resolve_profile(registry.get_task(ref), _check_profile(profile))
        needed += weights.needed_keys([m.name for m in spec.evaluation.metrics], [spec.model.family], profile,
                                      {m.name: m.backbone for m in spec.evaluation.metrics})
    presence = weights.check(needed if task else None, verify)
    print_weights(console, presence)
    missing = [p.weight for p in presence if p.path is None or p.sha_ok is False]
    if task and missing:
        first = weights.missing_message(missing[0])
        raise WeightsMissingError(f"{len(missing)} weights file(s) needed by {', '.join(task)} ({profile}) are "
                                  f"missing or wrong: {', '.join(w.key for w in missing)}. First: {first}")


@app.command()
@user_errors
def disagree(
    task: TaskOpt,
    profile: ProfileOpt = "full",
    db: DbOpt = DEFAULT_DB,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples over prompts for the tau interval.")] = 1000,
) -> None:
    """Rank a task's methods by each metric, Kendall tau between rankings, and order flips; stored in the DB."""
    from harness.analysis.disagree import analyse, store_analysis
    from harness.report import print_disagreement
    from harness.store import Store

    store = Store(db)
    task_name = registry.get_task(task).name
    result = analyse(store, task_name, _check_profile(profile), resamples)
    store_analysis(store, result)
    print_disagreement(console, store.latest_disagreement(task_name, profile),
                       [(f.diff_a, f.diff_b) for f in result.flips])


@app.command()
@user_errors
def submit(
    spec: Annotated[Path, typer.Argument(help="Method spec YAML (kind: built-in or from a plugin package).")],
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="Task to run on (repeat); default: all.")]
    = None,
    profile: TaskProfileOpt = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    db: DbOpt = DEFAULT_DB,
    force: Annotated[bool, typer.Option("--force", help="Run even if a completed run has this plan.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite a different registered spec of this name.")]
    = False,
) -> None:
    """Validate a method spec, register it in your registry, run it on tasks, and show the leaderboards."""
    from harness.commands.submit import register, validate
    from harness.progress import RichProgress
    from harness.report import print_leaderboard
    from harness.runner import run
    from harness.store import Store

    submission = validate(spec, task or list(registry.task_files()), _check_profile(profile), seed)
    target = register(submission, replace)
    console.print(f"registered method '{submission.method.name}' (kind {submission.method.kind}) at {target}",
                  highlight=False)
    store, failed = Store(db), []
    for plan in submission.plans:
        with RichProgress(err_console, f"{plan.task.name}: ") as progress:
            outcome = run(plan, store, db.parent / "runs", force=force, progress=progress)
        console.print(f"{plan.task.name}: run {outcome.run_id} {outcome.status}", highlight=False)
        if outcome.pending:
            warn(f"run {outcome.run_id} completed, not stored yet: {outcome.pending}")
        if outcome.status == "failed":
            failed.append(f"{plan.task.name}: {outcome.error} (details: {outcome.run_dir}/error.log)")
    for plan in submission.plans:
        print_leaderboard(console, store, plan.task.name, plan.profile)
    if failed:
        fail(f"{len(failed)} run(s) failed and are stored as failed: " + "; ".join(failed), 1)


class _CellProgress:
    """A progress bar over the cells of a matrix / sweep; the context value is the per-cell callback."""

    def __init__(self, total: int | None = None) -> None:
        from harness.progress import RichProgress

        self.progress, self.total, self.advance = RichProgress(err_console), total, None

    def __enter__(self) -> Any:
        self.progress.__enter__()
        self.advance = self.progress.stage("cells", self.total)

        def tick(result: Any) -> None:
            self.advance(1)  # type: ignore[misc]
            if result.status == "failed":
                warn(f"cell {result.cell.label()} failed: {result.error}")

        return tick

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)


@app.command()
@user_errors
def matrix(
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="Task (repeat).")] = None,
    method: Annotated[list[str] | None, typer.Option("--method", "-m", help="Method (repeat).")] = None,
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated.")] = "0",
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Matrix YAML: tasks, methods, seeds, profile, "
                                              "world_size, grid (flags add to it).")] = None,
    profile: TaskProfileOpt = None,
    world_size: Annotated[int | None, typer.Option(help="Processes per run (torchrun; GPUs per cell on full).")]
    = None,
    model_path: Annotated[Path | None, typer.Option(help="Local diffusers folder instead of the hub id.")] = None,
    data_root: Annotated[Path | None, typer.Option(help="Dataset root (default: $BENCH_DATA).")] = None,
    db: DbOpt = DEFAULT_DB,
    force: Annotated[bool, typer.Option("--force", help="Rerun cells that have a completed run.")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local | ray | slurm.")] = "local",
    jobs: Annotated[int, typer.Option("--jobs", help="local: cells at a time; slurm: array parallelism.")] = 1,
    address: Annotated[str | None, typer.Option(help="ray: cluster address ('auto': the running cluster); "
                                                "default: a Ray started for this command.")] = None,
    gpus_per_cell: Annotated[float | None, typer.Option(help="GPUs per cell (default: world size on full, 0 on "
                                                        "tiny).")] = None,
    cpus_per_cell: Annotated[float, typer.Option(help="CPUs per cell (ray, slurm).")] = 1.0,
    retries: Annotated[int, typer.Option(help="Further attempts of a cell whose worker died.")] = 2,
    partition: Annotated[str | None, typer.Option(help="slurm: partition.")] = None,
    time_min: Annotated[int, typer.Option(help="slurm: time limit per cell, minutes.")] = 24 * 60,
    slurm_array: Annotated[bool, typer.Option("--slurm-array/--slurm-jobs", help="slurm: one job array, or one job "
                                              "per cell.")] = True,
    slurm_cluster: Annotated[str | None, typer.Option(help="submitit cluster: slurm (default when sbatch exists), "
                                                      "local (same code path, this machine), debug.")] = None,
) -> None:
    """Run tasks x methods x seeds, each cell an ordinary run in its own process on an engine (local processes,
    a Ray cluster, SLURM through submitit); workers write run folders, this command ingests them as they
    finish. Cells with a completed run of the same plan hash are skipped (resume after a crash)."""
    from harness.commands.executors import Resources, load_matrix, matrix_cells, run_cells

    spec = load_matrix(file) if file else {}
    tasks = [*(spec.get("tasks") or []), *(task or [])]
    methods = [*(spec.get("methods") or []), *(method or [])]
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()] if (seeds != "0" or not spec.get("seeds")) \
            else [int(s) for s in spec["seeds"]]
    except ValueError:
        raise SpecError(f"--seeds '{seeds}': expected integers separated by commas") from None
    if not tasks or not methods:
        raise SpecError("bench matrix: give at least one --task and one --method (or --file with tasks and methods)")
    cells = matrix_cells(tasks, methods, seed_list, _check_profile(profile) or spec.get("profile"),
                         int(world_size or spec.get("world_size") or 1), spec.get("grid"),
                         str(model_path) if model_path else None, str(data_root) if data_root else None)
    resources = Resources(gpus_per_cell=gpus_per_cell, cpus_per_cell=cpus_per_cell, retries=retries, address=address,
                          partition=partition, time_min=time_min, slurm_array=slurm_array,
                          slurm_cluster=slurm_cluster)
    with _CellProgress(len(cells)) as tick:
        results = run_cells(cells, db, executor, jobs, force, resources, tick)
    from rich.table import Table

    table = Table(title=f"matrix: {len(results)} cells ({executor})")
    for column in ("#", "cell", "status", "run", "stored"):
        table.add_column(column, overflow="fold")
    for i, r in enumerate(results, 1):
        table.add_row(str(i), r.cell.label(), r.status if not r.error else f"{r.status}: {r.error}", r.run_id or "-",
                      r.stored or "-")
    console.print(table)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


@app.command()
@user_errors
def ingest(
    folders: Annotated[list[Path], typer.Argument(help="Run folders (e.g. results/runs/*).")],
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Store complete run folders in the database (rebuilds a lost one; a second ingest adds nothing).

    A folder without its COMPLETE marker (a run that did not finish) is reported and not ingested: exit 1.
    """
    from harness.runfolder import RunFolderError
    from harness.store import Store

    store, skipped = Store(db), 0
    for folder in folders:
        try:
            status = store.ingest(folder)
        except RunFolderError as exc:
            skipped += 1
            err_console.print(f"[yellow]skipped[/] {escape(one_line(str(exc)))}", highlight=False, soft_wrap=True)
            continue
        console.print(f"{status:<14}  {escape(str(folder))}", highlight=False)
    if skipped:
        raise typer.Exit(1)


@app.command()
@user_errors
def dashboard(
    db: DbOpt = DEFAULT_DB,
    port: Annotated[int, typer.Option(help="Port of the web server.")] = 8501,
    headless: Annotated[bool, typer.Option("--headless", help="Do not open a browser.")] = False,
) -> None:
    """Start the Streamlit dashboard on a results database (Ctrl-C stops it)."""
    import os

    from harness.store import StoreError

    app_file = PROJECT_ROOT / "dashboard" / "app.py"
    if not app_file.is_file():
        raise BenchError(f"{app_file}: dashboard app not found (it runs from a source checkout: pip install -e .)")
    if not db.is_file():
        raise StoreError(f"{db}: no results database yet (run `bench run` or `bench submit` first)")
    command = [sys.executable, "-m", "streamlit", "run", str(app_file), "--server.port", str(port),
               "--server.headless", str(headless).lower(), "--browser.gatherUsageStats", "false"]
    os.execve(sys.executable, command, {**os.environ, "BENCH_DB": str(db.resolve())})  # the server replaces bench


def main() -> None:  # pragma: no cover - entry for `python -m harness.cli`
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()


micro_app = typer.Typer(help="The microworld: its base model and judges (build, check, show).", no_args_is_help=True)
app.add_typer(micro_app, name="micro")


@micro_app.command("build")
@user_errors
def micro_build(
    out: Annotated[Path | None, typer.Option(help="Output folder (default: the shipped harness/micro/weights).")]
    = None,
    check: Annotated[bool, typer.Option("--check", help="Rebuild into a temporary folder and compare the measured "
                                        "quality with the shipped floors; exit 1 below a floor.")] = False,
    only: Annotated[str | None, typer.Option(help="Comma list of parts: vae, unet, clip, dino, face, quality.")]
    = None,
    steps: Annotated[list[str] | None, typer.Option(help="Step override per part, e.g. --steps unet=2000.")] = None,
) -> None:
    """Train the microworld's base model and judges from their seeds (minutes to an hour on a CPU)."""
    from harness.micro.build import main

    argv = [*(["--out", str(out)] if out else []), *(["--check"] if check else []),
            *(["--only", only] if only else []), *[arg for item in steps or [] for arg in ("--steps", item)]]
    code = main(argv)
    if code:
        raise typer.Exit(code)


@micro_app.command("show")
@user_errors
def micro_show() -> None:
    """The shipped weights (files, sha256, how each was made) and every judge's measured quality."""
    import json

    from harness.micro import base

    manifest_file = base.WEIGHTS_DIR / "manifest.json"
    if not manifest_file.is_file():
        raise BenchError(f"{manifest_file}: no microworld manifest; run `bench micro build`")
    console.print_json(json.dumps(json.loads(manifest_file.read_text()), sort_keys=True))
