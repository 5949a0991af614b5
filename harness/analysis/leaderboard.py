"""The leaderboard of a task, for ``bench leaderboard`` and the dashboard alike: the latest completed run
per configuration, its headline row per (metric, prompt set), the ranking (direction from the metric's
declaration), the budget columns (an evaluation-only task borrows those of the run that trained the
adapter it scores) and the gain over ``frozen`` per unit of budget. One profile per table, always.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from harness.analysis.ties import (
    OVERLAP,
    PAIRED,
    Difference,
    digits_to_separate,
    grouped_ranks,
    interval_difference,
    paired_difference,
    paired_values,
    rank_label,
)
from harness.metric_registry import find, higher_is_better
from harness.records import ALL
from harness.store import Store

# Card flags worth showing in a cell (cache hits and misses are bookkeeping, not caveats).
QUIET_FLAGS = ("reference_cache_hit", "reference_cache_miss")
BUDGET_FIELDS = ("steps", "samples_seen", "train_seconds", "stopped_by", "trainable_params", "peak_memory_bytes",
                 "memory_kind")
REFERENCE_METHOD = "frozen"
# Sweep keys in label order and their short names (``flux_lora[lr=5e-4,r=16,steps=1000,cosine]``).
SWEEP_KEYS = ("lr", "rank", "steps", "schedule")
SHORT_KEYS = {"rank": "r"}
# The compact board: what every row shows by default; everything else is behind the column chooser.
RANK, METHOD, GAIN, PARAMS, STEPS, SECONDS = "rank", "method", f"gain over {REFERENCE_METHOD}", "trainable params", \
    "steps", "train s"


def short_number(value: Any) -> str:
    """``5e-4`` for 0.0005, ``1e-3`` for 0.001, ``1000`` for 1000, ``0.25`` for 0.25."""
    if isinstance(value, float) and value != 0 and abs(value) < 0.01:
        mantissa, exponent = f"{value:.6e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def overrides_of(run: dict[str, Any]) -> dict[str, Any]:
    """A sweep cell's overrides (empty for an ordinary run)."""
    return (run.get("plan") or {}).get("overrides") or {}


def cell_label(run: dict[str, Any]) -> str:
    """One short stable name per configuration: the method, plus a sweep cell's overrides in a fixed order
    (``flux_lora[lr=5e-4,r=16,steps=1000,cosine]``); the same in filters, headers, legends and CLI rows."""
    overrides = overrides_of(run)
    if not overrides:
        return run["method"]
    keys = [k for k in SWEEP_KEYS if k in overrides] + sorted(k for k in overrides if k not in SWEEP_KEYS)
    parts = [str(overrides[k]) if k == "schedule" else f"{SHORT_KEYS.get(k, k)}={short_number(overrides[k])}"
             for k in keys]
    return f"{run['method']}[{','.join(parts)}]"


def card_flags(card: dict[str, Any] | None) -> list[str]:
    """The caveat flags of a metric card as shown everywhere: the stored flags without cache bookkeeping,
    plus ``random_init`` whenever the card's backbone weights are random-init (some metric families do not
    write the flag; the weights field says it)."""
    card = card or {}
    flags = [f for f in card.get("flags") or [] if f not in QUIET_FLAGS]
    if "random_init" not in flags and str(card.get("weights") or "").startswith("random-init"):
        flags.append("random_init")
    return flags


def with_flags(card: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of a card whose ``flags`` are ``card_flags`` (cache bookkeeping kept)."""
    card = dict(card or {})
    stored = list(card.get("flags") or [])
    card["flags"] = stored + [f for f in card_flags(card) if f not in stored]
    return card


def interval_digits(low: float, high: float, digits: int) -> int:
    """Decimals of an interval's bounds: two significant figures of its width (at most ``digits``, at least 4):
    a value needs the digits that separate it from its neighbours, its interval only its width's."""
    width = abs(high - low)
    if width <= 0 or not math.isfinite(width):
        return digits
    return max(min(4, digits), min(digits, math.ceil(-math.log10(width)) + 1))


def format_int(value: int | None) -> str:
    """Integers one way everywhere: ``32,768``."""
    return "n/a" if value is None else f"{int(value):,}"


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
        """``clip_score [A] ↑`` (↑ higher is better, ↓ lower is better)."""
        return f"{self.metric} [{self.prompt_set}] {'↑' if self.higher_is_better else '↓'}"

    @property
    def long_label(self) -> str:
        arrow = "↑ higher is better" if self.higher_is_better else "↓ lower is better"
        return f"{self.metric} [{self.prompt_set}] ({arrow})"

    @property
    def per_sample(self) -> bool:
        found = find(self.metric)
        return found is None or found.per_sample

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
    return sorted(runs, key=lambda r: (rank_key(r, column), cell_label(r)))


def reference_run(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``frozen`` run gains are measured against, if the runs hold one."""
    return next((r for r in runs if r["method"] == REFERENCE_METHOD), None)


def format_cell(row: dict[str, Any] | None, column: MetricColumn, digits: int = 4) -> str:
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
    if row.get("ci_low") is None:
        ci = "no CI"
    else:
        d = interval_digits(row["ci_low"], row["ci_high"], digits)
        ci = f"[{row['ci_low']:.{d}f}, {row['ci_high']:.{d}f}]"
    std = f" sd={row['std']:.3g}" if row.get("std") is not None else ""
    suffix = f" @ckpt {row['checkpoint']}" if row.get("checkpoint") is not None else ""
    if card.get("headline_checkpoint") is not None:
        rule = (card.get("headline_rule") or {}).get("rule", "?")
        suffix += f" (headline: step {card['headline_checkpoint']}, rule {rule})"
    flags = card_flags(card)
    caveats = f" [{', '.join(flags)}]" if flags else ""
    return f"{row['value']:.{digits}f}{std} {ci} N={row['n']}{partial}{suffix}{caveats}"


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


def column_scores(store: Store, runs: list[dict[str, Any]], column: MetricColumn) -> list[dict[str, Any]]:
    """The per-image scores the tie rule pairs for a column (none for set-level metrics like FID)."""
    if not column.per_sample or column.is_count:
        return []
    return store.grouped_sample_scores([r["run_id"] for r in runs], column.metric, column.prompt_set)


def difference(a: dict[str, Any], b: dict[str, Any], column: MetricColumn,
               paired: dict[str, dict[tuple[str, int, int], float]] | None) -> Difference:
    """Oriented difference of run a over run b on a column by the tie rule (``harness.analysis.ties``):
    paired bootstrap over prompts for per-image metrics with scores, else the stored intervals."""
    if paired is not None and column.per_sample and paired.get(a["run_id"]) and paired.get(b["run_id"]):
        return paired_difference(paired[a["run_id"]], paired[b["run_id"]], column.higher_is_better)
    row_a = headline(a["metrics"]).get((column.metric, column.prompt_set)) or {}
    row_b = headline(b["metrics"]).get((column.metric, column.prompt_set)) or {}
    return interval_difference(row_a, row_b, column.higher_is_better)


def ranking(runs: list[dict[str, Any]], column: MetricColumn, scores: list[dict[str, Any]] | None = None
            ) -> list[dict[str, Any]]:
    """Runs best first with competition ranks over decided pairs (ties share a rank): per entry ``run``,
    ``rank``, ``tied``, ``label`` (``=2`` when shared) and ``rule`` (how pairs were decided)."""
    order = ranked(runs, column)
    paired = paired_values(scores) if scores else None
    by_id = {r["run_id"]: r for r in order}
    rules = set()

    def decided(leader: str, other: str) -> bool:
        a, b = by_id[leader], by_id[other]
        if rank_key(a, column) == float("inf") or rank_key(b, column) == float("inf"):
            return rank_key(a, column) != rank_key(b, column)
        diff = difference(a, b, column, paired)
        rules.add(diff.rule)
        return diff.decided and diff.delta > 0

    ranks = grouped_ranks([r["run_id"] for r in order], decided)
    rule = PAIRED if rules == {PAIRED} else OVERLAP if PAIRED not in rules else f"{PAIRED} / {OVERLAP}"
    return [{"run": run, "rank": ranks[run["run_id"]][0], "tied": ranks[run["run_id"]][1],
             "label": rank_label(*ranks[run["run_id"]]), "rule": rule} for run in order]


def tie_note(column: MetricColumn, rule: str) -> str:
    """How ranks were decided, for captions."""
    how = ("the 95% paired-bootstrap interval (over prompts, same prompts and seeds) of their difference on "
           f"{column.label} includes 0") if rule == PAIRED else \
        (f"their stored 95% intervals on {column.label} overlap (a set-level metric: no per-image values to pair)"
         if rule != PAIRED and PAIRED not in rule else "their interval of the difference includes 0")
    return f"= marks a shared rank: two rows share a rank when {how}."


def column_digits(runs: list[dict[str, Any]], column: MetricColumn) -> int:
    """Decimals for a column: enough that the difference between any two of its values shows."""
    values = [(headline(r["metrics"]).get((column.metric, column.prompt_set)) or {}).get("value") for r in runs]
    return digits_to_separate(values)


def _signed_ci(diff: Difference | None, digits: int) -> str:
    if diff is None or diff.delta is None:
        return "n/a"
    if diff.low is None or diff.rule == OVERLAP:
        return f"{diff.delta:+.{digits}f}"
    d = interval_digits(diff.low, diff.high, digits)
    return f"{diff.delta:+.{digits}f} [{diff.low:+.{d}f}, {diff.high:+.{d}f}]"


def leaderboard_rows(runs: list[dict[str, Any]], rank_by: MetricColumn,
                     scores: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Display rows of one profile's runs, ranked by ``rank_by`` with ties (``ranking``); the frozen run is
    the reference. The first columns are the compact board (``compact_columns``); ``scores``: the per-image
    scores of ``rank_by`` (``column_scores``) for the paired tie rule and gain interval."""
    reference = reference_run(runs)
    columns = metric_columns(runs)
    paired = paired_values(scores) if scores else None
    digits = {c: column_digits(runs, c) for c in columns}
    gain_digits = digits.get(rank_by, 4)
    rows = []
    for entry in ranking(runs, rank_by, scores):
        run = entry["run"]
        picked = headline(run["metrics"])
        gain = improvement(run, reference, rank_by)
        share = run["trainable_params"] / run["base_params"] if run.get("base_params") else None
        diff = None if reference is None or run is reference else difference(run, reference, rank_by, paired)
        row = {RANK: entry["label"], METHOD: cell_label(run),
               rank_by.label: format_cell(picked.get((rank_by.metric, rank_by.prompt_set)), rank_by, digits[rank_by]),
               GAIN: "reference" if run is reference else _signed_ci(diff, gain_digits)
               if diff is not None and diff.delta is not None else _signed(gain["gain"], gain_digits),
               PARAMS: format_int(run.get("trainable_params")), STEPS: run.get("steps"),
               SECONDS: f"{run.get('train_seconds') or 0.0:.1f}", "kind": run["method_kind"]}
        row |= {c.label: format_cell(picked.get((c.metric, c.prompt_set)), c, digits[c])
                for c in columns if c != rank_by}
        row |= {
            "gain per 1k samples": _signed(gain["per_1k_samples"], gain_digits),
            "gain per train-minute": _signed(gain["per_train_minute"], gain_digits),
            "samples seen": run.get("samples_seen"), "stopped by": run.get("stopped_by"),
            "trainable %": "n/a" if share is None else f"{100 * share:.4f}",
            "adapter": _fmt_bytes(run.get("adapter_bytes"), empty="none"),
            "peak memory": f"{_fmt_bytes(run.get('peak_memory_bytes'))} ({run.get('memory_kind') or 'n/a'})",
            "seed": run.get("seed"), "run": run["run_id"],
        }
        if any(overrides_of(r) for r in runs):
            row["sweep cell"] = ", ".join(f"{k}={v}" for k, v in sorted(overrides_of(run).items()))
            row["steps planned"] = overrides_of(run).get("steps")
        if any(r.get("budget_of") for r in runs):
            row["budget of"] = run.get("budget_of") or "this run"
        rows.append(row)
    return rows


def compact_columns(rank_by: MetricColumn) -> list[str]:
    """The default columns of a board ranked by ``rank_by``."""
    return [RANK, METHOD, rank_by.label, GAIN, PARAMS, STEPS, SECONDS]
