"""The leaderboard of a task, for ``bench leaderboard`` and the dashboard alike: the latest completed run
per configuration, its headline row per (metric, prompt set), the ranking (direction from the metric's
declaration), the budget columns (an evaluation-only task borrows those of the run that trained the
adapter it scores) and the gain over ``frozen`` per unit of budget. One profile per table, always.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from harness.metric_registry import find, higher_is_better
from harness.records import ALL
from harness.store import Store, run_label

# Card flags worth showing in a cell (cache hits and misses are bookkeeping, not caveats).
QUIET_FLAGS = ("reference_cache_hit", "reference_cache_miss")
BUDGET_FIELDS = ("steps", "samples_seen", "train_seconds", "stopped_by", "trainable_params", "peak_memory_bytes",
                 "memory_kind")
REFERENCE_METHOD = "frozen"


def is_count(metric: str) -> bool:
    """A count of degenerate samples (near-black, faceless): shown, never ranked."""
    found = find(metric)
    return found is not None and found.count


@dataclass(frozen=True)
class MetricColumn:
    """One (metric, prompt set) of a task and which way is better."""

    metric: str
    prompt_set: str
    higher_is_better: bool

    @classmethod
    def of(cls, metric: str, prompt_set: str, card: dict[str, Any] | None = None) -> MetricColumn:
        """The column of a metric, its direction from the declaration."""
        return cls(metric, prompt_set, higher_is_better(metric, card))

    @property
    def label(self) -> str:
        arrow = "↑ higher is better" if self.higher_is_better else "↓ lower is better"
        return f"{self.metric} [{self.prompt_set}] ({arrow})"

    @property
    def is_count(self) -> bool:
        return is_count(self.metric)


def headline(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The headline row per (metric, prompt set) among a run's aggregate rows: the overall row of the
    final weights (checkpoint NULL; for a checkpointed method, the copy of the step its headline rule
    picked), else (a run stored without one) the latest checkpoint's."""
    picked: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row["grp"] != ALL:
            continue
        key = (row["metric"], row["prompt_set"])
        current = picked.get(key)
        if current is None or _checkpoint_rank(row) > _checkpoint_rank(current):
            picked[key] = row
    return picked


def _checkpoint_rank(row: dict[str, Any]) -> float:
    return float("inf") if row.get("checkpoint") is None else float(row["checkpoint"])


def latest_runs(store: Store, task: str, profile: str | None = None) -> list[dict[str, Any]]:
    """Latest completed run per (method, profile, sweep overrides) of a task, each with ``metrics``: its
    headline rows (one per metric and prompt set)."""
    runs = store.latest_runs(task, profile)
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in store.aggregates_of_runs([r["run_id"] for r in runs], group=ALL):
        rows[row["run_id"]].append(row)
    for run in runs:
        run["metrics"] = list(headline(rows[run["run_id"]]).values())
    return runs


def with_borrowed_budget(run: dict[str, Any], source: dict[str, Any] | None) -> dict[str, Any]:
    """An evaluation-only run (it scores another task's adapter) carries the budget of the run that trained
    that adapter, so gain per unit of budget counts the training it took; ``budget_of`` names the source."""
    if source is None or source["run_id"] == run["run_id"]:
        return run
    return {**run, **{k: source.get(k) for k in BUDGET_FIELDS},
            "budget_of": f"{source['task']} run {source['run_id']}"}


def borrow_budgets(store: Store, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run that scores an adapter it did not train, with the budget of the run that trained it."""
    out = []
    for run in runs:
        if run.get("steps") or not run.get("adapter_file"):
            out.append(run)
        else:
            out.append(with_borrowed_budget(run, store.trained_run_of_adapter(run["adapter_file"])))
    return out


def board_runs(store: Store, task: str, profile: str | None = None) -> list[dict[str, Any]]:
    """The runs a leaderboard shows: ``latest_runs`` with borrowed budgets."""
    return borrow_budgets(store, latest_runs(store, task, profile))


def metric_columns(runs: list[dict[str, Any]]) -> list[MetricColumn]:
    """Every (metric, prompt set) the runs were scored on; score metrics first, counts last."""
    found: dict[tuple[str, str], MetricColumn] = {}
    for run in runs:
        for (metric, prompt_set), row in headline(run["metrics"]).items():
            found[(metric, prompt_set)] = MetricColumn.of(metric, prompt_set, row.get("card"))
    return sorted(found.values(), key=lambda c: (c.is_count, c.metric, c.prompt_set))


def ranked(runs: list[dict[str, Any]], column: MetricColumn) -> list[dict[str, Any]]:
    """Runs best first on ``column`` (ties by name, sweep cells included); refuses to mix profiles."""
    profiles = {run["profile"] for run in runs}
    if len(profiles) > 1:
        raise ValueError(f"refusing to rank profiles together: {sorted(profiles)}")
    return sorted(runs, key=lambda r: (rank_key(r, column), run_label(r)))


def reference_run(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``frozen`` run gains are measured against, if the runs hold one."""
    return next((r for r in runs if r["method"] == REFERENCE_METHOD), None)


def format_cell(row: dict[str, Any] | None, column: MetricColumn) -> str:
    """``0.2452 [0.2401, 0.2503] N=50``; counts as ``3 of 50``; a missing CI is said, not hidden; a
    stored std (KID) as ``sd=..``; images left out (faceless) as ``k of N scored``; caveat flags last."""
    if row is None:
        return "n/a"
    if column.is_count:
        return f"{int(row['value'])} of {row['n']}"
    card = row.get("card") or {}
    scored = card.get("n_scored")
    partial = f" ({scored} of {row['n']} scored)" if scored is not None and scored != row["n"] else ""
    if row["value"] is None:
        return f"no value N={row['n']}{partial or ' (none scored)'}"
    ci = "no CI" if row.get("ci_low") is None else f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]"
    std = f" sd={row['std']:.3g}" if row.get("std") is not None else ""
    suffix = f" @ckpt {row['checkpoint']}" if row.get("checkpoint") is not None else ""
    if card.get("headline_checkpoint") is not None:
        rule = (card.get("headline_rule") or {}).get("rule", "?")
        suffix += f" (headline: step {card['headline_checkpoint']}, rule {rule})"
    flags = [f for f in card.get("flags") or [] if f not in QUIET_FLAGS]
    caveats = f" [{', '.join(flags)}]" if flags else ""
    return f"{row['value']:.4f}{std} {ci} N={row['n']}{partial}{suffix}{caveats}"


def _fmt_bytes(value: int | None, empty: str = "n/a") -> str:
    if not value:
        return empty
    return f"{value / 2**10:,.1f} KiB" if value < 2**20 else f"{value / 2**20:,.1f} MiB"


def _signed(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def rank_key(run: dict[str, Any], column: MetricColumn) -> float:
    """Sort key: best first by the column's direction; runs without the metric go last."""
    row = headline(run["metrics"]).get((column.metric, column.prompt_set))
    if row is None or row["value"] is None:
        return float("inf")
    return -row["value"] if column.higher_is_better else row["value"]


def improvement(run: dict[str, Any], reference: dict[str, Any] | None, column: MetricColumn) -> dict[str, Any]:
    """Gain over the reference run on a column (positive = better) and that gain per unit of budget."""
    empty = {"gain": None, "per_1k_samples": None, "per_train_minute": None}
    if reference is None:
        return empty
    key = (column.metric, column.prompt_set)
    mine, base = headline(run["metrics"]).get(key), headline(reference["metrics"]).get(key)
    if mine is None or base is None or mine["value"] is None or base["value"] is None:
        return empty
    gain = (mine["value"] - base["value"]) * (1 if column.higher_is_better else -1)
    samples, seconds = run.get("samples_seen") or 0, run.get("train_seconds") or 0.0
    return {"gain": gain, "per_1k_samples": gain / samples * 1000 if samples else None,
            "per_train_minute": gain / seconds * 60 if seconds else None}


def leaderboard_rows(runs: list[dict[str, Any]], rank_by: MetricColumn) -> list[dict[str, Any]]:
    """Display rows of one profile's runs, ranked by ``rank_by``; the frozen run is the reference."""
    reference = reference_run(runs)
    columns = metric_columns(runs)
    rows = []
    for rank, run in enumerate(ranked(runs, rank_by), start=1):
        picked = headline(run["metrics"])
        gain = improvement(run, reference, rank_by)
        share = run["trainable_params"] / run["base_params"] if run.get("base_params") else None
        row = {"rank": rank, "method": run["method"], "kind": run["method_kind"]}
        if any(_overrides(r) for r in runs):
            row["sweep cell"] = ", ".join(f"{k}={v}" for k, v in sorted(_overrides(run).items()))
        row |= {c.label: format_cell(picked.get((c.metric, c.prompt_set)), c) for c in columns}
        row |= {
            f"gain over {REFERENCE_METHOD}": "reference" if run is reference else _signed(gain["gain"]),
            "gain per 1k samples": _signed(gain["per_1k_samples"]),
            "gain per train-minute": _signed(gain["per_train_minute"]),
            "steps": run.get("steps"), "samples seen": run.get("samples_seen"),
            "train s": f"{run.get('train_seconds') or 0.0:.1f}", "stopped by": run.get("stopped_by"),
            "trainable params": run.get("trainable_params"),
            "trainable %": "n/a" if share is None else f"{100 * share:.4f}",
            "adapter": _fmt_bytes(run.get("adapter_bytes"), empty="none"),
            "peak memory": f"{_fmt_bytes(run.get('peak_memory_bytes'))} ({run.get('memory_kind') or 'n/a'})",
            "seed": run.get("seed"), "run": run["run_id"],
        }
        if any(r.get("budget_of") for r in runs):
            row["budget of"] = run.get("budget_of") or "this run"
        rows.append(row)
    return rows


def _overrides(run: dict[str, Any]) -> dict[str, Any]:
    return (run.get("plan") or {}).get("overrides") or {}
