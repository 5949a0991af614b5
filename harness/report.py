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

from harness.analysis.leaderboard import (
    board_runs,
    card_flags,
    column_scores,
    compact_columns,
    format_int,
    is_count,
    leaderboard_rows,
    metric_columns,
    ranking,
    tie_note,
)
from harness.metric_registry import DISPLAY_KINDS, find, higher_is_better
from harness.records import ALL
from harness.store import Store

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
    flags = card_flags(row["card"])
    text = value_cells(row)[0]
    if "std" in display:
        text += f" ±{_num(row.get('std'), 5)}"
    if row["ci_low"] is not None:
        text += f" [{_num(row['ci_low'], 3)}, {_num(row['ci_high'], 3)}]"
    text += f" (N={row['n']})"
    if "faces" in display:
        text += f" faces {row['card'].get('n_scored', '?')}"
    if flags:
        text += f" [{', '.join(flags)}]"
    return text


def _card_line(card: dict[str, Any]) -> str:
    shown = card_flags(card)
    flags = f" | flags {', '.join(shown)}" if shown else ""
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
                  f"trainable {format_int(run['trainable_params'])} of {format_int(run['base_params'])} params; "
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


FORMATS = ("table", "csv", "json", "markdown")


def leaderboard_tables(store: Store, task: str, profile: str | None, wide: bool = False
                       ) -> list[tuple[str, list[str], list[dict[str, Any]], str]]:
    """Per profile: (profile, columns, rows, tie note) of the shared leaderboard (``harness.analysis``);
    ``wide``: every column, else the compact board (rank, method, headline with CI and N, gain, params,
    steps, seconds)."""
    runs = board_runs(store, task, profile)
    out = []
    for prof in sorted({r["profile"] for r in runs}):
        prof_runs = [r for r in runs if r["profile"] == prof]
        columns = metric_columns(prof_runs)
        rank_by = next((c for c in columns if not c.is_count), columns[0] if columns else None)
        if rank_by is None:
            continue
        scores = column_scores(store, prof_runs, rank_by)
        rows = leaderboard_rows(prof_runs, rank_by, scores)
        names = list(rows[0]) if wide else compact_columns(rank_by)
        if wide:  # each count right after the metric it is declared beside (near-black after its prompt set's)
            by_key = {(c.metric, c.prompt_set): c.label for c in columns}
            ordered = [by_key[k] for k in leaderboard_columns(prof_runs) if k in by_key and by_key[k] in names]
            rest = [n for n in names if n not in ordered and n not in compact_columns(rank_by)]
            names = compact_columns(rank_by) + [n for n in ordered if n != rank_by.label] + rest
        if wide and any(r.get("budget_of") for r in prof_runs):
            names = [n for n in names if n != "budget of"] + ["budget of"]
        note = tie_note(rank_by, ranking(prof_runs, rank_by, scores)[0]["rule"])
        out.append((prof, names, [{n: row.get(n) for n in names} for row in rows], note))
    return out


def export_text(columns: list[str], rows: list[dict[str, Any]], fmt: str) -> str:
    """The rows as csv, json (a list of objects) or a markdown table, for copying."""
    import csv
    import io
    import json

    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    def clean(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(clean(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def print_leaderboard(console: Console, store: Store, task: str, profile: str | None, wide: bool = False,
                      fmt: str = "table") -> None:
    """One table per profile (tiny never ranked with full), ranked by the first metric (best first) with
    shared ranks ``=`` (the tie rule); the same rows and cells as the dashboard. Method names are never
    cut; ``wide``: every column; ``fmt`` csv / json / markdown print plain text for copying."""
    tables = leaderboard_tables(store, task, profile, wide)
    if not tables:
        console.print(f"no completed runs for task '{task}'" + (f" on profile {profile}" if profile else ""))
        return
    for prof, columns, rows, note in tables:
        if fmt != "table":
            console.print(export_text(columns, rows, fmt), markup=False, highlight=False, soft_wrap=True)
            continue
        table = Table(title=f"{task} leaderboard - profile {prof}")
        for name in columns:
            if name == "method":
                width = max(len(str(r.get(name))) for r in rows)
                table.add_column(name, no_wrap=True, min_width=width)
            else:
                table.add_column(escape(name), justify="left" if name in ("rank",) else "right",
                                 overflow="fold", no_wrap=name in ("rank", "run"))
        for row in rows:
            table.add_row(*(escape("" if row.get(c) is None else str(row.get(c))) for c in columns))
        console.print(table)
        console.print(note + ("" if wide else " Every column: --wide; for copying: --format csv|json|markdown."),
                      highlight=False, markup=False)
        note_text = _tiny_note(prof)
        if note_text:
            console.print(note_text)


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


def print_sweep(console: Console, cells: list[Any], store: Store | None = None) -> None:
    """One row per sweep cell: its label and overrides, steps planned and actually run, the headline metric
    with its CI and N (the task's first score metric), status and run id."""
    from harness.analysis.leaderboard import MetricColumn, cell_label, format_cell, headline

    runs = {}
    if store is not None:
        for run in store.runs():
            if any(run["run_id"] == cell.run_id for cell in cells):
                runs[run["run_id"]] = run
    metrics: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in (store.aggregates_of_runs(list(runs), group=ALL) if runs else []):
        metrics[row["run_id"]].append(row)
    first = next((key for rid in metrics for key in headline(metrics[rid]) if not is_count(key[0])
                  and key[1] != ANCHOR_SET), None)
    column = MetricColumn.of(*first) if first else None
    table = Table(title=f"sweep: {len(cells)} runs")
    keys = sorted({key for cell in cells for key in cell.overrides})
    names = ["#", "cell", *(f"{k} (planned)" if k == "steps" else k for k in keys), "steps run",
             *([escape(column.label) + " [95% CI] N"] if column else []), "status", "run"]
    for name in names:
        table.add_column(name, no_wrap=name in ("cell", "run"), overflow="fold")
    for i, cell in enumerate(cells, 1):
        status = cell.status if not cell.error else f"{cell.status}: {cell.error}"
        run = runs.get(cell.run_id) or {"method": "?", "plan": {"overrides": cell.overrides}}
        label = cell_label({**run, "plan": {"overrides": cell.overrides}})
        value = []
        if column:
            row = headline(metrics.get(cell.run_id, [])).get((column.metric, column.prompt_set))
            value = [escape(format_cell(row, column))]
        table.add_row(str(i), escape(label), *(str(cell.overrides.get(k, "")) for k in keys),
                      "-" if run.get("steps") is None else str(run["steps"]), *value, status, cell.run_id)
    console.print(table)


def print_weights(console: Console, presence: list[Any]) -> None:
    """The weights table (file, users, presence, variable), then each file's place and source on its own
    line, never wrapped, so that paths and URLs can be copied whole."""
    from harness.weights import where

    if not presence:
        console.print("no weights files needed (the tiny profile uses random-init backbones)")
        return
    table = Table(title="weights files (never downloaded at run time)")
    for name in ("file", "used by", "present", "env var / flag", "expected sha256"):
        table.add_column(name, no_wrap=name in ("file", "present"), overflow="fold")
    for p in presence:
        w = p.weight
        status = "[red]missing[/]" if p.path is None else "[green]yes[/]"
        if p.sha_ok is False:
            status = "[red]hash mismatch[/]"
        sha = "-" if not w.sha256 else (w.sha256[:12] + ("... (prefix)" if len(w.sha256) < 64 else "..."))
        table.add_row(w.key, ", ".join(w.used_by), status, w.env_var, sha)
    console.print(table)
    for p in presence:
        w = p.weight
        console.print(f"{w.key}:", highlight=False, markup=False)
        lines = [("goes to", str(where(w))), ("found at", str(p.path) if p.path else "-"), ("fetch from", w.source)]
        if w.sha256:
            lines.append(("sha256", w.sha256))
        for name, value in lines:
            console.print(f"  {name:10} {value}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"{sum(p.path is None for p in presence)} of {len(presence)} missing; fetch them on a networked "
                  "machine and copy them to the place shown ($BENCH_WEIGHTS, HF_HOME) or point the variable at them",
                  highlight=False, soft_wrap=True)


def _delta(diff: Any, fallback: float) -> str:
    if diff is None or diff.delta is None:
        return f"{fallback:+.3g}"
    if diff.low is None:
        return f"{diff.delta:+.3g} (no interval)"
    return f"{diff.delta:+.3g} [{diff.low:+.2g}, {diff.high:+.2g}]"


def print_disagreement(console: Console, analysis: dict[str, Any] | None, intervals: list[Any] | None = None
                       ) -> None:
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
    else:
        console.print("a flip: two metrics order a pair oppositely and each order is decided (its 95% interval "
                      "excludes 0, the leaderboard's tie rule); deltas are A - B, positive = A better", highlight=False)
    for i, f in enumerate(analysis["flips"]):
        diff_a, diff_b = intervals[i] if intervals and i < len(intervals) else (None, None)
        first = f["method_a"] if f["delta_a"] > 0 else f["method_b"]
        console.print(f"[bold]flip[/] {f['method_a']} vs {f['method_b']}: {f['metric_a']} {_in(f['set_a'])} prefers "
                      f"{first}, {f['metric_b']} {_in(f['set_b'])} prefers "
                      f"{f['method_a'] if f['delta_b'] > 0 else f['method_b']}; delta {_delta(diff_a, f['delta_a'])} "
                      f"and {_delta(diff_b, f['delta_b'])}; both orders hold in "
                      f"{100 * f['persistence']:.0f}% of prompt resamples", highlight=False, soft_wrap=True)
        for prompt in f["prompts"]:
            on_prompt = "".join(f", delta {k[-1]} {prompt[k]:+.3g}" for k in ("delta_a", "delta_b")
                                if prompt.get(k) is not None)
            console.print(f"    {prompt['prompt_id']} \"{escape(prompt['prompt'])}\" strength {prompt['strength']:.2f} "
                          f"({prompt['why']}{on_prompt})", highlight=False, soft_wrap=True)


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
