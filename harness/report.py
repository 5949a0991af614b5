"""Rich tables for the CLI: one run's results, and a task's leaderboard."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.store import Store

ALL = "__all__"


def _fmt_bytes(value: int | None) -> str:
    return f"{value / 2**20:,.0f} MiB" if value else "-"


def _tiny_note(profile: str) -> str:
    if profile == "tiny":
        return ("[yellow]tiny profile: random-init tiny models and synthetic data, reduced counts; "
                "numbers test the pipeline, they are not comparable to the study[/]")
    return ""


def _checkpoint_title(checkpoint: int | None, card: dict[str, Any]) -> str:
    """'' for a run without checkpoints; the step, or the headline's step and rule, otherwise."""
    if checkpoint is not None:
        return f" - checkpoint step {checkpoint}"
    if "headline_checkpoint" in card:
        rule = card["headline_rule"]
        how = " ".join(str(rule.get(key, "")) for key in ("rule", "metric", "prompt_set")).strip()
        return f" - headline = step {card['headline_checkpoint']} (rule: {how})"
    return ""


def print_run(console: Console, store: Store, run_id: str) -> None:
    """Per-class and per-prompt tables of one run, with N and the metric card."""
    run = next(r for r in store.runs() if r["run_id"] == run_id)
    console.print(f"[bold]{run['task']} / {run['method']}[/] ({run['profile']}, seed {run['seed']}) "
                  f"run {run_id}: {run['status']}", highlight=False)
    console.print(f"budget spent: {run['steps']} steps, {run['samples_seen']} samples, "
                  f"{run['train_seconds'] or 0:.1f} s train (stopped by {run['stopped_by']}); "
                  f"trainable {run['trainable_params']:,} of {run['base_params']:,} params; "
                  f"peak memory {_fmt_bytes(run['peak_memory_bytes'])} ({run['memory_kind']})", highlight=False)
    rows = store.aggregates(run_id)
    by_set: dict[tuple[str, str, int | None], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_set[(row["metric"], row["prompt_set"], row.get("checkpoint"))].append(row)
    near_black = {(r["prompt_set"], r.get("checkpoint")): r for r in rows if r["metric"] == "near_black_count"}
    for (metric, prompt_set, checkpoint), set_rows in sorted(
            by_set.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] is None, item[0][2] or 0)):
        if metric == "near_black_count":
            continue
        table = Table(title=f"{metric} - prompt set {prompt_set}{_checkpoint_title(checkpoint, set_rows[0]['card'])}")
        table.add_column("group")
        table.add_column("raw cosine", justify="right")
        table.add_column("x100", justify="right")
        table.add_column("N", justify="right")
        for row in sorted(set_rows, key=lambda r: (r["grp"] == ALL, r["grp"])):
            name = "[bold]mean (all)[/]" if row["grp"] == ALL else row["grp"]
            table.add_row(name, f"{row['value']:.4f}", f"{100 * row['value']:.2f}", str(row["n"]))
        if (prompt_set, checkpoint) in near_black:
            nb = near_black[(prompt_set, checkpoint)]
            table.caption = f"near-black samples: {int(nb['value'])} of {nb['n']}"
        console.print(table)
        card = set_rows[0]["card"]
        console.print(f"  card: {card['backbone']} | weights {card['weights']} | {card['preprocessing']} | "
                      f"{card['scale']} | {card['library']}", highlight=False)
    note = _tiny_note(run["profile"])
    if note:
        console.print(note)


def print_leaderboard(console: Console, store: Store, task: str, profile: str | None) -> None:
    """One table per profile; rows sorted by the first metric's overall mean (best first)."""
    runs = store.leaderboard(task, profile)
    if not runs:
        console.print(f"no completed runs for task '{task}'" + (f" on profile {profile}" if profile else ""))
        return
    for prof in sorted({r["profile"] for r in runs}):
        prof_runs = [r for r in runs if r["profile"] == prof]
        columns = sorted({(m["metric"], m["prompt_set"]) for r in prof_runs for m in r["metrics"]},
                         key=lambda c: (c[0] == "near_black_count", c))
        table = Table(title=f"{task} leaderboard - profile {prof}")
        table.add_column("method")
        for metric, prompt_set in columns:
            label = "near-black" if metric == "near_black_count" else f"{metric} (higher better)"
            table.add_column(f"{label} [{prompt_set}]", justify="right")
        for name in ("trainable", "steps", "samples seen", "train s", "peak mem"):
            table.add_column(name, justify="right")

        def cell(run: dict[str, Any], column: tuple[str, str]) -> tuple[float | None, str]:
            for m in run["metrics"]:
                if (m["metric"], m["prompt_set"]) == column:
                    if m["metric"] == "near_black_count":
                        return m["value"], f"{int(m['value'])}/{m['n']}"
                    return m["value"], f"{m['value']:.4f} (N={m['n']})"
            return None, "-"

        primary = next((c for c in columns if c[0] != "near_black_count"), None)
        ordered = sorted(prof_runs, key=lambda r: -(cell(r, primary)[0] or float("-inf")) if primary else 0)
        for run in ordered:
            table.add_row(run["method"], *(cell(run, c)[1] for c in columns), f"{run['trainable_params']:,}",
                          str(run["steps"]), str(run["samples_seen"]), f"{run['train_seconds'] or 0:.1f}",
                          _fmt_bytes(run["peak_memory_bytes"]))
        console.print(table)
        note = _tiny_note(prof)
        if note:
            console.print(note)


def print_accounting(console: Console, task: str, profile: str, seed: int = 0) -> None:
    """Trainable parameters, shares and adapter size of every method the task lists."""
    from harness.accounting import count_task_methods
    from harness.plan import build_plan
    from harness.registry import get_task

    names = get_task(task).methods
    if not names:
        console.print(f"task '{task}' lists no methods (field 'methods'); use --method M")
        return
    accounts = count_task_methods([build_plan(task, name, profile, seed) for name in names])  # type: ignore[arg-type]
    first = accounts[0].count
    table = Table(title=f"{task}: trainable parameters on the {first.architecture} ({first.base_total:,} params)")
    for column in ("method", "trained modules", "trainable", "% of base", "% of trained modules", "adapter file"):
        table.add_column(column, justify="left" if column in ("method", "trained modules") else "right")
    for account in accounts:
        count = account.count
        size = f"{account.adapter_bytes / 2**20:,.2f} MiB ({account.adapter_source})" if account.adapter_bytes else "-"
        table.add_row(account.method, count.component, f"{count.trainable:,}", f"{100 * count.share_of_base:.4f}",
                      f"{100 * count.share_of_component:.4f}", size)
    console.print(table)


def print_sweep(console: Console, cells: list[Any]) -> None:
    """One row per sweep cell: its overrides, run id and status."""
    table = Table(title=f"sweep: {len(cells)} runs")
    keys = sorted({key for cell in cells for key in cell.overrides})
    for column in ("#", *keys, "status", "run"):
        table.add_column(column)
    for i, cell in enumerate(cells, 1):
        status = cell.status if not cell.error else f"{cell.status}: {cell.error}"
        table.add_row(str(i), *(str(cell.overrides.get(k, "")) for k in keys), status, cell.run_id)
    console.print(table)
