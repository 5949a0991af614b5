"""Rich tables for the CLI: one run's results, and a task's leaderboard.

Stored values are raw (CLIP cosines, FID, KID, distances); how each metric is shown (the columns of its
declaration's ``display``: x100, CLIPScore's 2.5*max(cos, 0), KID std, faces found) and which way is
better come from the metric declarations; what the leaderboard holds and how it ranks come from
``harness.analysis.leaderboard``, the same module the dashboard uses. Degenerate-sample counts
(near-black, faceless) are shown next to the metric they would distort.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.analysis.leaderboard import MetricColumn, board_runs, is_count, ranked
from harness.metric_registry import DISPLAY_KINDS, find, higher_is_better
from harness.records import ALL
from harness.store import Store, run_label

ANCHOR_SET = "real_vs_real"


def _fmt_bytes(value: int | None) -> str:
    return f"{value / 2**20:,.0f} MiB" if value else "-"


def _tiny_note(profile: str) -> str:
    if profile == "tiny":
        return ("[yellow]tiny profile: random-init tiny models and synthetic data, reduced counts; "
                "numbers test the pipeline, they are not comparable to the study[/]")
    return ""


def _in(prompt_set: str) -> str:
    """`` [prompt set]`` escaped: rich would read ``[test]`` or ``[simple]`` as a style tag and drop it."""
    return escape(f"[{prompt_set}]")


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _display(metric: str) -> tuple[str, ...]:
    declared = find(metric)
    return declared.display if declared is not None else ("cosine",)


def _better(metric: str, card: dict[str, Any] | None = None) -> str:
    return "higher" if higher_is_better(metric, card) else "lower"


def count_label(metric: str) -> str:
    """Header of a count metric: ``near_black_count`` -> ``near-black``."""
    return metric.removesuffix("_count").replace("_", "-")


def value_columns(metric: str) -> list[str]:
    """Display columns of one metric (after the group column)."""
    return [DISPLAY_KINDS[kind] for kind in _display(metric)]


def _cell(kind: str, row: dict[str, Any]) -> str:
    value = row["value"]
    if kind == "x100":
        return _num(None if value is None else 100 * value, 2)
    if kind == "clipscore":
        return _num(None if value is None else 2.5 * max(value, 0.0), 4)
    if kind == "kid":
        return _num(value, 5)
    if kind == "std":
        return _num(row.get("std"), 5)
    if kind == "faces":
        return f"{row['card'].get('n_scored', '?')}/{row['n']}"
    if kind == "count":
        return "-" if value is None else f"{int(value)}/{row['n']}"
    if kind == "fid":  # two decimals as papers print it; small (tiny-profile) values keep 3 significant digits
        return "-" if value is None else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"
    return _num(value)  # cosine, distance


def value_cells(row: dict[str, Any]) -> list[str]:
    """Cells for ``value_columns`` of a stored aggregate row."""
    return [_cell(kind, row) for kind in _display(row["metric"])]


def short_cell(row: dict[str, Any]) -> str:
    """One leaderboard cell: value, CI, N and flags."""
    display = _display(row["metric"])
    flags = row["card"].get("flags") or []
    text = value_cells(row)[0]
    if "std" in display:
        text += f" ±{_num(row.get('std'), 5)}"
    if row["ci_low"] is not None:
        text += f" [{_num(row['ci_low'], 3)}, {_num(row['ci_high'], 3)}]"
    text += f" (N={row['n']})"
    if "faces" in display:
        text += f" faces {row['card'].get('n_scored', '?')}"
    if "biased_small_n" in flags:
        text += " biased"
    return text


def _card_line(card: dict[str, Any]) -> str:
    flags = f" | flags {', '.join(card['flags'])}" if card.get("flags") else ""
    notes = f"\n    notes: {card['notes']}" if card.get("notes") else ""
    return (f"  card: {card['backbone']} | weights {card['weights']} | {card['preprocessing']} | "
            f"{card['scale']} | {card['library']}{flags}{notes}")


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
    """Per-group tables of one run with N, CI, metric card and the degenerate counts beside each metric."""
    run = next(r for r in store.runs() if r["run_id"] == run_id)
    console.print(f"[bold]{run['task']} / {run['method']}[/] ({run['profile']}, seed {run['seed']}) "
                  f"run {run_id}: {run['status']}", highlight=False)
    console.print(f"budget spent: {run['steps']} steps, {run['samples_seen']} samples, "
                  f"{run['train_seconds'] or 0:.1f} s train (stopped by {run['stopped_by']}); "
                  f"trainable {run['trainable_params']:,} of {run['base_params']:,} params; "
                  f"peak memory {_fmt_bytes(run['peak_memory_bytes'])} ({run['memory_kind']})", highlight=False)
    rows = store.aggregates(run_id)
    by_set: dict[tuple[str, str, int | None], list[dict[str, Any]]] = defaultdict(list)
    counts: dict[tuple[str, str, int | None], dict[str, Any]] = {}
    for row in rows:
        key = (row["metric"], row["prompt_set"], row.get("checkpoint"))
        if is_count(row["metric"]):
            counts[key] = row
        else:
            by_set[key].append(row)
    for (metric, prompt_set, checkpoint), set_rows in sorted(
            by_set.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] is None, item[0][2] or 0)):
        title = "real vs real anchor (reference images only)" if prompt_set == ANCHOR_SET \
            else f"prompt set {prompt_set}"
        better = _better(metric, set_rows[0]["card"])
        table = Table(title=f"{metric} ({better} is better) - {title}"
                            f"{_checkpoint_title(checkpoint, set_rows[0]['card'])}")
        for name in ["group", *value_columns(metric), "95% CI", "N"]:
            table.add_column(name, justify="left" if name == "group" else "right")
        for row in sorted(set_rows, key=lambda r: (r["grp"] == ALL, r["grp"])):
            name = "[bold]mean (all)[/]" if row["grp"] == ALL else row["grp"]
            ci = "-" if row["ci_low"] is None else f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}]"
            table.add_row(name, *value_cells(row), ci, str(row["n"]))
        captions = []
        for count_metric in _counts_beside(metric, {key[0] for key in counts}):
            count = counts.get((count_metric, prompt_set, checkpoint))
            if count:
                captions.append(f"{count_label(count_metric)}: {int(count['value'])} of {count['n']}")
        table.caption = "; ".join(captions)
        console.print(table)
        console.print(_card_line(set_rows[0]["card"]), highlight=False)
    note = _tiny_note(run["profile"])
    if note:
        console.print(note)


def _beside(count_metric: str) -> str | None:
    """The metric a count is declared beside (None: beside every metric of its prompt set)."""
    declared = find(count_metric)
    return None if declared is None else declared.beside


def _counts_beside(metric: str, present: set[str]) -> list[str]:
    """Count metrics shown with ``metric``: those beside every metric, then those declared beside it."""
    counts = [m for m in sorted(present) if is_count(m)]
    return [m for m in counts if _beside(m) is None] + [m for m in counts if _beside(m) == metric]


def leaderboard_columns(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(metric, prompt set) columns of the CLI table; each metric's counts right after it, then the counts
    of the whole prompt set (near-black) after its metrics."""
    present = {(m["metric"], m["prompt_set"]) for r in runs for m in r["metrics"] if m["prompt_set"] != ANCHOR_SET}
    ordered = []
    for prompt_set in sorted({s for _, s in present}):
        in_set = {m for m, s in present if s == prompt_set}
        counts = [m for m in sorted(in_set) if is_count(m)]
        for metric in sorted(m for m in in_set if not is_count(m)):
            ordered.append((metric, prompt_set))
            ordered += [(c, prompt_set) for c in counts if _beside(c) == metric]
        ordered += [(c, prompt_set) for c in counts if _beside(c) is None]
    return ordered


def print_leaderboard(console: Console, store: Store, task: str, profile: str | None) -> None:
    """One table per profile (tiny never ranked with full); rows ranked by the first metric (best first).
    An evaluation-only task's runs show the budget of the run that trained their adapter (``budget of``)."""
    runs = board_runs(store, task, profile)
    if not runs:
        console.print(f"no completed runs for task '{task}'" + (f" on profile {profile}" if profile else ""))
        return
    for prof in sorted({r["profile"] for r in runs}):
        prof_runs = [r for r in runs if r["profile"] == prof]
        columns = leaderboard_columns(prof_runs)
        borrowed = any(r.get("budget_of") for r in prof_runs)
        table = Table(title=f"{task} leaderboard - profile {prof}")
        table.add_column("method")
        for metric, prompt_set in columns:
            label = count_label(metric) if is_count(metric) else f"{metric} ({_better(metric)} better)"
            table.add_column(f"{label} {_in(prompt_set)}", justify="right")
        budget = ("trainable", "steps", "samples seen", "train s", "peak mem", *(("budget of",) if borrowed else ()))
        for name in budget:
            table.add_column(name, justify="right")

        def cell(run: dict[str, Any], column: tuple[str, str]) -> str:
            row = next((m for m in run["metrics"] if (m["metric"], m["prompt_set"]) == column), None)
            if row is None:
                return "-"
            return value_cells(row)[0] if is_count(row["metric"]) else short_cell(row)

        primary = next((c for c in columns if not is_count(c[0])), None)
        order = ranked(prof_runs, MetricColumn.of(*primary)) if primary else prof_runs
        for run in order:
            table.add_row(run_label(run), *(cell(run, c) for c in columns), f"{run['trainable_params'] or 0:,}",
                          str(run["steps"]), str(run["samples_seen"]), f"{run['train_seconds'] or 0:.1f}",
                          _fmt_bytes(run["peak_memory_bytes"]),
                          *((run.get("budget_of") or "this run",) if borrowed else ()))
        anchors = {(m["metric"], m["grp"]): m for r in prof_runs for m in r["metrics"] if m["prompt_set"] == ANCHOR_SET}
        if anchors:
            table.add_section()
            table.add_row("[italic]real vs real (anchor)[/]",
                          *(short_cell(anchors[(c[0], ALL)]) if (c[0], ALL) in anchors else "" for c in columns),
                          *[""] * len(budget))
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
        size = (f"{account.adapter_bytes / 2**20:,.2f} MiB ({account.adapter_source})"
                if account.adapter_bytes is not None else "-")
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


def print_weights(console: Console, presence: list[Any]) -> None:
    """The weights table: file, users, expected hash, where it goes, what points to it, and presence."""
    from harness.weights import where

    if not presence:
        console.print("no weights files needed (the tiny profile uses random-init backbones)")
        return
    table = Table(title="weights files (never downloaded at run time)")
    for name in ("file", "used by", "expected sha256", "where", "env var / flag", "fetch from", "present"):
        table.add_column(name, overflow="fold")
    for p in presence:
        w = p.weight
        status = "[red]missing[/]" if p.path is None else f"[green]yes[/] {p.path}"
        if p.sha_ok is False:
            status = f"[red]hash mismatch[/] {p.path}"
        sha = "-" if not w.sha256 else (w.sha256 + ("... (prefix)" if len(w.sha256) < 64 else ""))
        table.add_row(w.key, ", ".join(w.used_by), sha, where(w), w.env_var, w.source, status)
    console.print(table)
    console.print(f"{sum(p.path is None for p in presence)} of {len(presence)} missing; fetch them on a networked "
                  "machine and copy them to the place shown ($BENCH_WEIGHTS, HF_HOME) or point the variable at them",
                  highlight=False)


def print_disagreement(console: Console, analysis: dict[str, Any] | None) -> None:
    """Rankings per metric, Kendall tau between them, and the flipped method pairs with their prompts."""
    if analysis is None:
        console.print("no disagreement analysis stored")
        return
    console.print(f"[bold]{analysis['task']}[/] ({analysis['profile']}): analysis {analysis['analysis_id']}",
                  highlight=False)
    methods = sorted({r["method"] for r in analysis["rankings"]})
    table = Table(title="rank of each method by each metric (1 = best)")
    table.add_column(escape("metric [prompt set]"))
    for method in methods:
        table.add_column(method, justify="right")
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in analysis["rankings"]:
        by_key[(r["metric"], r["prompt_set"])][r["method"]] = r
    for (metric, prompt_set), ranks in sorted(by_key.items()):
        better = "higher" if next(iter(ranks.values()))["higher_is_better"] else "lower"
        table.add_row(f"{metric} {_in(prompt_set)} ({better} better)",
                      *(f"{ranks[m]['rank']}  ({ranks[m]['value']:.4g}, N={ranks[m]['n']})" for m in methods))
    console.print(table)
    taus = Table(title="Kendall tau-b between metric rankings")
    for name in ("metric A", "metric B", "tau", "95% bootstrap interval", "note"):
        taus.add_column(name)
    for t in analysis["tau"]:
        interval = "-" if t["ci_low"] is None else f"[{t['ci_low']:.2f}, {t['ci_high']:.2f}]"
        taus.add_row(f"{t['metric_a']} {_in(t['set_a'])}", f"{t['metric_b']} {_in(t['set_b'])}", _num(t["tau"], 3),
                     interval, t["note"])
    console.print(taus)
    if not analysis["flips"]:
        console.print("no method pair changes order between metrics")
    for f in analysis["flips"]:
        first = f["method_a"] if f["delta_a"] > 0 else f["method_b"]
        console.print(f"[bold]flip[/] {f['method_a']} vs {f['method_b']}: {f['metric_a']} {_in(f['set_a'])} prefers "
                      f"{first}, {f['metric_b']} {_in(f['set_b'])} prefers "
                      f"{f['method_a'] if f['delta_b'] > 0 else f['method_b']}; both orders hold in "
                      f"{100 * f['persistence']:.0f}% of prompt resamples", highlight=False)
        for prompt in f["prompts"]:
            console.print(f"    {prompt['prompt_id']} \"{escape(prompt['prompt'])}\" strength {prompt['strength']:.2f} "
                          f"({prompt['why']})", highlight=False)


def print_gains(console: Console, gains: list[dict[str, Any]], method: str, reference: str, profile: str,
                grid: Any = None) -> None:
    """Gain of a run over its reference per metric and prompt set: paired on prompts and seeds, CI over prompts."""
    table = Table(title=f"{method} vs {reference}: gain (positive = better), paired on prompt and seed")
    table.caption = _tiny_note(profile)
    for name in ("metric", "prompt set", method, reference, "gain", "95% CI", "pairs (prompts)"):
        table.add_column(name, justify="left" if name in ("metric", "prompt set") else "right")
    for gain in gains:
        ci = "-" if gain["ci_low"] is None else f"[{gain['ci_low']:+.4f}, {gain['ci_high']:+.4f}]"
        if gain["ci_low"] is not None and (gain["ci_low"] > 0 or gain["ci_high"] < 0):
            ci = f"[bold]{ci}[/]"  # the interval excludes 0
        pairs = f"{gain['n_pairs']} ({gain['n_prompts']})" if gain["n_pairs"] else "set-level"
        table.add_row(gain["metric"], escape(gain["prompt_set"]), _num(gain["value"]), _num(gain["reference"]),
                      f"{gain['gain']:+.4f}", ci, pairs)
    console.print(table)
    if grid is not None:
        console.print(f"samples side by side (same prompts and seeds): {grid}", highlight=False, soft_wrap=True)
