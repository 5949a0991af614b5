"""DuckDB store: schema, writes, and every query the CLI and dashboard use.

Append-only: a run row is inserted as ``running``, then completed (with its samples, scores and
aggregates, in one transaction, from its run folder: ``harness.runfolder``) or marked ``failed`` with its
error. Nothing is ever deleted.

Runs are leased: the row carries the host, pid (and that process's start time) and a heartbeat. Every
connection that opens the database for writing first settles ``running`` rows whose run is over: a
complete run folder is stored (its process found the database busy), a run whose process is gone (same
host) or whose heartbeat is older than ``stale_seconds()`` (another host) becomes ``failed`` with
``abandoned: ...`` (or the error its folder recorded).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from harness import runfolder
from harness.errors import BenchError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, plan_hash VARCHAR, task VARCHAR, task_version INTEGER,
    method VARCHAR, method_version INTEGER, method_kind VARCHAR, profile VARCHAR, seed INTEGER,
    status VARCHAR, error VARCHAR, created_at TIMESTAMP, finished_at TIMESTAMP,
    versions JSON, git_commit VARCHAR, plan JSON, run_dir VARCHAR,
    steps INTEGER, samples_seen INTEGER, train_seconds DOUBLE, stopped_by VARCHAR,
    peak_memory_bytes BIGINT, memory_kind VARCHAR, trainable_params BIGINT, base_params BIGINT,
    adapter_file VARCHAR, adapter_bytes BIGINT, timings JSON
);
CREATE TABLE IF NOT EXISTS samples (
    run_id VARCHAR, prompt_set VARCHAR, prompt_id VARCHAR, prompt VARCHAR, grp VARCHAR,
    sample_idx INTEGER, seed UBIGINT, file VARCHAR, mean_intensity DOUBLE, near_black BOOLEAN,
    checkpoint INTEGER  -- training step of the weights that made it; NULL = final weights
);
CREATE TABLE IF NOT EXISTS sample_scores (
    run_id VARCHAR, metric VARCHAR, prompt_set VARCHAR, prompt_id VARCHAR, sample_idx INTEGER, value DOUBLE,
    checkpoint INTEGER
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR, metric VARCHAR, prompt_set VARCHAR, grp VARCHAR, value DOUBLE, n INTEGER,
    ci_low DOUBLE, ci_high DOUBLE, card JSON, checkpoint INTEGER
);
ALTER TABLE metrics ADD COLUMN IF NOT EXISTS std DOUBLE;
CREATE TABLE IF NOT EXISTS disagreements (
    analysis_id VARCHAR PRIMARY KEY, task VARCHAR, profile VARCHAR, created_at TIMESTAMP, runs JSON,
    resamples INTEGER
);
CREATE TABLE IF NOT EXISTS disagreement_rankings (
    analysis_id VARCHAR, metric VARCHAR, prompt_set VARCHAR, method VARCHAR, run_id VARCHAR, value DOUBLE,
    rank INTEGER, n INTEGER, higher_is_better BOOLEAN
);
CREATE TABLE IF NOT EXISTS disagreement_tau (
    analysis_id VARCHAR, metric_a VARCHAR, set_a VARCHAR, metric_b VARCHAR, set_b VARCHAR, tau DOUBLE,
    ci_low DOUBLE, ci_high DOUBLE, n_methods INTEGER, resamples INTEGER, note VARCHAR
);
CREATE TABLE IF NOT EXISTS disagreement_flips (
    analysis_id VARCHAR, method_a VARCHAR, method_b VARCHAR, metric_a VARCHAR, set_a VARCHAR, metric_b VARCHAR,
    set_b VARCHAR, delta_a DOUBLE, delta_b DOUBLE, prompts JSON
);
ALTER TABLE disagreement_flips ADD COLUMN IF NOT EXISTS persistence DOUBLE;
-- method-specific record of a run (per-subject stages, class images, checkpoint headline rule)
ALTER TABLE runs ADD COLUMN IF NOT EXISTS details JSON;
-- the lease of a running run: which process holds it, and when it last said so
ALTER TABLE runs ADD COLUMN IF NOT EXISTS host VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid INTEGER;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid_started VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS heartbeat TIMESTAMP;
-- processes of a multi-process (torchrun / accelerate launch) run; NULL for runs stored before it existed
ALTER TABLE runs ADD COLUMN IF NOT EXISTS world_size INTEGER;
"""


LOCK_WAIT_SECONDS = 30.0  # how long to wait for another process's lock on the database file
HEARTBEAT_SECONDS = 30.0  # how often a running run renews its lease
STALE_SECONDS = 600.0  # a lease not renewed for this long (on another host) is abandoned
# One connection at a time per process: a run's heartbeat thread and its main thread never hold two.
_PROCESS_LOCK = threading.RLock()


def heartbeat_seconds() -> float:
    return float(os.environ.get("BENCH_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS))


def stale_seconds() -> float:
    return float(os.environ.get("BENCH_STALE_SECONDS", STALE_SECONDS))


def lock_wait_seconds() -> float:
    return float(os.environ.get("BENCH_LOCK_WAIT_SECONDS", LOCK_WAIT_SECONDS))


class StoreError(BenchError):
    exit_code = 5


class StoreBusyError(StoreError):
    """Another process held the database past the wait."""


# DuckDB errors that mean the file itself is damaged (not a wrong query).
_DAMAGE = (duckdb.IOException, duckdb.InternalException, duckdb.SerializationException)
_DAMAGE_WORDS = ("corrupt", "checksum", "could not read", "not a valid", "truncated", "invalid file", "magic")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Store:
    """A DuckDB file holding every run.

    Paths inside it (``run_dir``, ``adapter_file``, and ``*_file`` / ``*_dir`` keys of ``details``) are
    stored relative to the database's folder (the results folder) when they lie under it, so that a results
    folder can be copied to another machine and opened there; queries return them absolute. Rows written
    before that (absolute paths) are read as they are.
    """

    path: Path

    @property
    def root(self) -> Path:
        """The results folder: the folder of the database file."""
        return self.path.parent.resolve()

    def relative(self, value: Any) -> Any:
        """A path being written (absolute, or relative to the working directory) as a POSIX path relative to
        the results folder when it lies under it, else absolute; anything but a path string unchanged."""
        if not isinstance(value, str) or not value:
            return value
        resolved = Path(value).resolve()
        try:
            return resolved.relative_to(self.root).as_posix()
        except ValueError:
            return str(resolved)

    def absolute(self, value: Any) -> Any:
        """A stored path as an absolute one (relative ones are under the results folder)."""
        if not isinstance(value, str) or not value or os.path.isabs(value):
            return value
        return str(self.root / value)

    def _paths(self, row: dict[str, Any], convert: Any) -> dict[str, Any]:
        out = dict(row)
        for key in PATH_COLUMNS:
            if key in out:
                out[key] = convert(out[key])
        if isinstance(out.get("details"), dict):
            out["details"] = _convert_path_keys(out["details"], convert)
        return out

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the database (its schema created or upgraded when writable, and finished runs
        settled: ``reap``); closed on exit. A damaged file gives one StoreError line and is left as it is."""
        if read_only and not self.path.exists():
            raise StoreError(f"{self.path}: no results database yet (run `bench run` first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _PROCESS_LOCK:
            con = _connect_waiting(self.path, read_only, self)
            try:
                try:
                    if not read_only:
                        con.execute(SCHEMA)
                        self._reap(con)
                    yield con
                except duckdb.Error as exc:
                    if _is_damage(exc):
                        raise StoreError(damaged_message(self.path, exc)) from None
                    raise
            finally:
                con.close()

    # --- writes --------------------------------------------------------------------------------

    def start_run(self, row: dict[str, Any]) -> None:
        """Insert a run as ``running``, leased to this process unless the row names its holder."""
        now = _now()
        row = self._paths({**runfolder.lease(), "heartbeat": now, "created_at": now, **row, "status": "running"},
                          self.relative)
        with self.connect() as con:
            con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        [_jsonable(v) for v in row.values()])

    def heartbeat(self, run_id: str) -> bool:
        """Renew a running run's lease without waiting for a busy database (or for this process's own
        connection); False if it could not."""
        if not _PROCESS_LOCK.acquire(blocking=False):
            return False
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.Error:
            _PROCESS_LOCK.release()
            return False
        try:
            con.execute("UPDATE runs SET heartbeat = ? WHERE run_id = ? AND status = 'running'", [_now(), run_id])
            return True
        except duckdb.Error:
            return False
        finally:
            con.close()
            _PROCESS_LOCK.release()

    def fail_run(self, run_id: str, error: str) -> None:
        with self.connect() as con:
            con.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ? "
                        "AND status = 'running'", [error, _now(), run_id])

    def complete_run(self, run_id: str, fields: dict[str, Any], samples: list[dict], scores: list[dict],
                     aggregates: list[dict]) -> None:
        """Write samples, scores and aggregates and mark the run completed, in one transaction."""
        with self.connect() as con:
            _complete(con, run_id, fields, samples, scores, aggregates, None)

    def ingest(self, folder: Path) -> str:
        """Store a complete run folder (``harness.runfolder``): ``stored``, or ``already stored`` when the
        database has the run completed (nothing is added twice). RunFolderError for a folder that is not a
        finished run; StoreBusyError when another process holds the database past the wait."""
        content = runfolder.read_complete(folder)
        with self.connect() as con:
            return _ingest(con, folder, content, self)

    def _reap(self, con: duckdb.DuckDBPyConnection) -> None:
        """Settle ``running`` rows whose run is over (see the module docstring); never fails the command."""
        try:
            rows = con.execute("SELECT run_id, host, pid, pid_started, heartbeat, created_at, run_dir FROM runs "
                               "WHERE status = 'running'").fetchall()
        except duckdb.Error:
            return
        for run_id, host, pid, pid_started, heartbeat, created_at, run_dir in rows:
            run_dir = self.absolute(run_dir)
            folder = Path(run_dir) if run_dir else None
            try:
                if folder is not None and runfolder.is_complete(folder):
                    _ingest(con, folder, runfolder.read_complete(folder), self)
                    continue
                reason = abandoned_reason({"host": host, "pid": pid, "pid_started": pid_started,
                                           "heartbeat": heartbeat, "created_at": created_at, "run_dir": run_dir})
                if reason is None:
                    continue
                recorded = runfolder.failure(folder) if folder is not None else None
                con.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ? "
                            "AND status = 'running'", [recorded or reason, _now(), run_id])
            except (duckdb.Error, runfolder.RunFolderError, OSError):
                continue

    def write_disagreement(self, task: str, profile: str, runs: dict[str, str], resamples: int,
                           rankings: list[dict], taus: list[dict], flips: list[dict]) -> str:
        """Store one disagreement analysis (rankings, taus, flips) in one transaction; returns its id."""
        created = _now()
        analysis_id = f"{created.strftime('%Y%m%dT%H%M%S%f')}-{task}-{profile}"
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("INSERT INTO disagreements VALUES (?, ?, ?, ?, ?, ?)",
                            [analysis_id, task, profile, created, _jsonable(runs), resamples])
                _insert_many(con, "disagreement_rankings", analysis_id, rankings, key="analysis_id")
                _insert_many(con, "disagreement_tau", analysis_id, taus, key="analysis_id")
                _insert_many(con, "disagreement_flips", analysis_id, flips, key="analysis_id")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return analysis_id

    # --- queries -------------------------------------------------------------------------------

    def latest_disagreement(self, task: str, profile: str) -> dict[str, Any] | None:
        """The newest stored disagreement analysis of a task and profile: header, rankings, taus, flips."""
        if not self.path.exists():
            return None
        with self.connect(read_only=True) as con:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "disagreements" not in tables:
            return None
        head = self._rows("SELECT * FROM disagreements WHERE task = ? AND profile = ? ORDER BY created_at DESC "
                          "LIMIT 1", [task, profile])
        if not head:
            return None
        analysis_id = head[0]["analysis_id"]
        out = {**head[0]}
        for name, order in (("rankings", "metric, prompt_set, rank"), ("tau", "metric_a, set_a, metric_b, set_b"),
                            ("flips", "method_a, method_b, metric_a, set_a, metric_b, set_b")):
            out[name] = self._rows(f"SELECT * FROM disagreement_{name} WHERE analysis_id = ? ORDER BY {order}",
                                   [analysis_id])
        return out

    def completed_run(self, plan_hash: str) -> str | None:
        """The newest completed run with this plan hash, if any."""
        if not self.path.exists():
            return None
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT run_id FROM runs WHERE plan_hash = ? AND status = 'completed' "
                              "ORDER BY finished_at DESC LIMIT 1", [plan_hash]).fetchone()
        return row[0] if row else None

    def run_row(self, run_id: str) -> dict[str, Any]:
        """One run's row."""
        return self._rows("SELECT * FROM runs WHERE run_id = ?", [run_id])[0]

    def latest_completed(self, task: str, method: str, profile: str, seed: int) -> dict[str, Any] | None:
        """The newest completed run of (task, method, profile, seed), if any."""
        rows = self._rows("SELECT * FROM runs WHERE task = ? AND method = ? AND profile = ? AND seed = ? "
                          "AND status = 'completed' ORDER BY finished_at DESC LIMIT 1", [task, method, profile, seed])
        return rows[0] if rows else None

    def runs(self, task: str | None = None) -> list[dict[str, Any]]:
        """All runs (any status), newest first."""
        query = "SELECT * FROM runs" + (" WHERE task = ?" if task else "") + " ORDER BY created_at DESC"
        return self._rows(query, [task] if task else [])

    def latest_runs(self, task: str, profile: str | None = None) -> list[dict[str, Any]]:
        """Latest completed run per (method, profile, sweep overrides) of a task, by profile and method.
        (Their headline metric rows: ``harness.analysis.leaderboard.latest_runs``.)"""
        where = "task = ? AND status = 'completed'" + (" AND profile = ?" if profile else "")
        params = [task, profile] if profile else [task]
        return self._rows(
            "SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER (PARTITION BY method, profile, "
            f"CAST(json_extract(plan, '$.overrides') AS VARCHAR) ORDER BY finished_at DESC) AS rn FROM runs "
            f"WHERE {where}) WHERE rn = 1 ORDER BY profile, method", params)

    def aggregates(self, run_id: str, group: str | None = None) -> list[dict[str, Any]]:
        """Aggregate rows of a run (``group='__all__'`` for overall rows only)."""
        query = "SELECT * FROM metrics WHERE run_id = ?" + (" AND grp = ?" if group else "")
        return self._rows(query + " ORDER BY metric, prompt_set, grp", [run_id, group] if group else [run_id])

    def samples(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM samples WHERE run_id = ? ORDER BY prompt_id, sample_idx", [run_id])

    def sample_scores(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM sample_scores WHERE run_id = ? ORDER BY prompt_id, sample_idx", [run_id])

    # --- dashboard queries (read-only) ---------------------------------------------------------

    def task_profiles(self) -> list[dict[str, Any]]:
        """Every (task, profile) with runs, and how many runs of each status it has."""
        return self._rows(
            "SELECT task, profile, count(*) FILTER (WHERE status = 'completed') AS completed, "
            "count(*) FILTER (WHERE status = 'running') AS running, count(*) FILTER (WHERE status = 'failed') "
            "AS failed FROM runs GROUP BY task, profile ORDER BY task, profile", [])

    def completed_runs(self, task: str, profile: str) -> list[dict[str, Any]]:
        """Every completed run of a task on one profile (sweeps keep them all), oldest first."""
        return self._rows("SELECT * FROM runs WHERE task = ? AND profile = ? AND status = 'completed' "
                          "ORDER BY finished_at", [task, profile])

    def aggregates_of_runs(self, run_ids: list[str], group: str | None = None) -> list[dict[str, Any]]:
        """Aggregate rows of several runs at once (``group='__all__'`` for overall rows only)."""
        if not run_ids:
            return []
        query = "SELECT * FROM metrics WHERE list_contains(?, run_id)" + (" AND grp = ?" if group else "")
        return self._rows(query + " ORDER BY run_id, metric, prompt_set, grp, checkpoint",
                          [run_ids, group] if group else [run_ids])

    def grouped_sample_scores(self, run_ids: list[str], metric: str, prompt_set: str) -> list[dict[str, Any]]:
        """Per-sample scores of one metric and prompt set with each sample's group, prompt and seed."""
        if not run_ids:
            return []
        return self._rows(
            "SELECT sc.run_id, sc.prompt_set, sc.prompt_id, s.prompt, s.grp, sc.sample_idx, s.seed, sc.value, "
            "sc.checkpoint FROM sample_scores sc JOIN samples s ON s.run_id = sc.run_id "
            "AND s.prompt_set = sc.prompt_set AND s.prompt_id = sc.prompt_id AND s.sample_idx = sc.sample_idx "
            "AND s.checkpoint IS NOT DISTINCT FROM sc.checkpoint "
            "WHERE list_contains(?, sc.run_id) AND sc.metric = ? AND sc.prompt_set = ? "
            "ORDER BY sc.run_id, sc.prompt_id, sc.sample_idx", [run_ids, metric, prompt_set])

    def sample_grid(self, run_ids: list[str], prompt_set: str, sample_idx: int) -> list[dict[str, Any]]:
        """Samples of several runs at one sample index (final weights), with every score as a dict."""
        if not run_ids:
            return []
        rows = self._rows(
            "SELECT s.*, r.method, r.run_dir, coalesce(map_from_entries(list((sc.metric, sc.value)) "
            "FILTER (WHERE sc.metric IS NOT NULL)), MAP {}) AS scores "
            "FROM samples s JOIN runs r ON r.run_id = s.run_id LEFT JOIN sample_scores sc ON sc.run_id = s.run_id "
            "AND sc.prompt_set = s.prompt_set AND sc.prompt_id = s.prompt_id AND sc.sample_idx = s.sample_idx "
            "AND sc.checkpoint IS NULL WHERE list_contains(?, s.run_id) AND s.prompt_set = ? AND s.sample_idx = ? "
            "AND s.checkpoint IS NULL GROUP BY ALL ORDER BY s.prompt_id, r.method", [run_ids, prompt_set, sample_idx])
        for row in rows:
            row["scores"] = dict(row["scores"])
        return rows

    def prompt_sets(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Prompt sets of these runs with their groups and largest sample index."""
        if not run_ids:
            return []
        return self._rows("SELECT prompt_set, list(DISTINCT grp ORDER BY grp) AS groups, max(sample_idx) AS "
                          "max_sample_idx FROM samples WHERE list_contains(?, run_id) GROUP BY prompt_set "
                          "ORDER BY prompt_set", [run_ids])

    def trained_run_of_adapter(self, adapter_file: str) -> dict[str, Any] | None:
        """The completed run that trained (and saved) this adapter file, if any."""
        rows = self._rows("SELECT * FROM runs WHERE adapter_file IN (?, ?) AND status = 'completed' AND steps > 0 "
                          "ORDER BY finished_at DESC LIMIT 1", [adapter_file, self.relative(adapter_file)])
        return rows[0] if rows else None

    def per_image_metrics(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """(metric, prompt set) pairs with per-sample scores in these runs (set metrics like FID have none)."""
        if not run_ids:
            return []
        return self._rows("SELECT DISTINCT metric, prompt_set FROM sample_scores WHERE list_contains(?, run_id) "
                          "AND value IS NOT NULL ORDER BY metric, prompt_set", [run_ids])

    def _rows(self, query: str, params: list[Any]) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.connect(read_only=True) as con:
            cursor = con.execute(query, params)
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        for row in rows:
            for key in ("versions", "plan", "timings", "card", "runs", "prompts", "details"):
                if isinstance(row.get(key), str):
                    row[key] = json.loads(row[key])
        return [self._paths(row, self.absolute) for row in rows]


PATH_COLUMNS = ("run_dir", "adapter_file")


def _convert_path_keys(value: Any, convert: Any, key: str = "") -> Any:
    """``convert`` applied to the strings under keys named ``*_file`` / ``*_dir`` of a JSON structure."""
    if isinstance(value, dict):
        return {k: _convert_path_keys(v, convert, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_convert_path_keys(v, convert, key) for v in value]
    if isinstance(value, str) and (key.endswith("_file") or key.endswith("_dir")):
        return convert(value)
    return value


def _connect_waiting(path: Path, read_only: bool, store: Store) -> duckdb.DuckDBPyConnection:
    """Connect, waiting up to ``lock_wait_seconds()`` while another process (a run, the dashboard) holds the
    file: DuckDB lets one writing process or several reading ones in at a time."""
    deadline = time.monotonic() + lock_wait_seconds()
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if re.search(r"\block\b", first_line.lower()):  # not "block": a damaged block is no lock
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise StoreBusyError(f"{path}: results database busy: another process held it for over "
                                     f"{lock_wait_seconds():g} s ({first_line})") from None
            if _is_damage(exc):
                raise StoreError(damaged_message(path, exc)) from None
            raise StoreError(f"{path}: cannot open results database ({first_line})") from None


def _is_damage(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, _DAMAGE) or any(word in text for word in _DAMAGE_WORDS)


def damaged_message(path: Path, exc: BaseException) -> str:
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    runs = path.parent / "runs"
    return (f"{path}: results database is damaged ({first_line[:200]}); it was left as it is. To rebuild it "
            f"from the run folders: move it aside, then `bench ingest {runs}/* --db {path}`")


def abandoned_reason(row: dict[str, Any], now: datetime | None = None) -> str | None:
    """Why a ``running`` row's run is over though nobody said so, or None while it may still be running:
    its process is gone (same host), or its lease was not renewed for ``stale_seconds()`` (the newest of
    the row's heartbeat, its run folder's heartbeat file and its start)."""
    now = now or _now()
    pid = row.get("pid")
    if row.get("host") == runfolder.host() and pid is not None:
        if runfolder.process_alive(int(pid), row.get("pid_started")):
            return None
        return f"abandoned: its process {pid} on {row['host']} is gone"
    beats = [t for t in (row.get("heartbeat"), row.get("created_at")) if isinstance(t, datetime)]
    if row.get("run_dir"):
        beat = runfolder.heartbeat_of(Path(row["run_dir"]))
        if beat is not None:
            beats.append(beat)
    if not beats:
        return None
    silent = (now - max(beats)).total_seconds()
    if silent <= stale_seconds():
        return None
    return (f"abandoned: no heartbeat for {silent:.0f} s (over {stale_seconds():g} s) from process {pid} on "
            f"{row.get('host') or 'an unknown host'}")


def _complete(con: duckdb.DuckDBPyConnection, run_id: str, fields: dict[str, Any], samples: list[dict],
              scores: list[dict], aggregates: list[dict], finished_at: datetime | None) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        _insert_many(con, "samples", run_id, samples)
        _insert_many(con, "sample_scores", run_id, scores)
        _insert_many(con, "metrics", run_id, aggregates)
        assignments = ", ".join(f"{k} = ?" for k in fields)
        con.execute(f"UPDATE runs SET {assignments}, status = 'completed', error = NULL, finished_at = ? "
                    "WHERE run_id = ?", [*(_jsonable(v) for v in fields.values()), finished_at or _now(), run_id])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def _ingest(con: duckdb.DuckDBPyConnection, folder: Path, content: dict[str, Any], store: Store) -> str:
    """Store a read run folder in ``con`` unless its run is already completed there (paths under the
    results folder stored relative to it)."""
    run, result = dict(content["run"]), content["result"]
    run_id = run["run_id"]
    found = con.execute("SELECT status, error FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if found is not None and (found[0] == "completed" or (found[0] == "failed"
                                                            and not str(found[1] or "").startswith("abandoned"))):
        return "already stored" if found[0] == "completed" else f"already stored as {found[0]}"
    here = str(folder.resolve())
    old = str(run.get("run_dir") or "")
    columns = {name for (name,) in con.execute("SELECT column_name FROM information_schema.columns "
                                               "WHERE table_name = 'runs'").fetchall()}
    if found is None:
        row = {k: v for k, v in run.items() if k in columns and k not in ("status", "error", "finished_at")}
        row = store._paths({**row, "run_dir": here, "status": "running"}, store.relative)
        if isinstance(row.get("created_at"), str):
            row["created_at"] = datetime.fromisoformat(row["created_at"])
        con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    [_jsonable(v) for v in row.values()])
    fields = {k: runfolder.relocate(v, old, here) for k, v in result["run"].items() if k in columns}
    fields = store._paths({**fields, "run_dir": here}, store.relative)
    finished = result.get("finished_at")
    _complete(con, run_id, fields, result.get("samples") or [], result.get("sample_scores") or [],
              result.get("aggregates") or [], datetime.fromisoformat(finished) if finished else None)
    return "stored"


def run_label(run: dict[str, Any]) -> str:
    """A leaderboard row's name: the method, plus its sweep-cell overrides (``flux_lora lr=0.001 rank=8``)."""
    overrides = (run.get("plan") or {}).get("overrides") or {}
    return " ".join([run["method"], *(f"{k}={v}" for k, v in sorted(overrides.items()))])


def _jsonable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def _insert_many(con: duckdb.DuckDBPyConnection, table: str, run_id: str, rows: list[dict],
                 key: str = "run_id") -> None:
    if not rows:
        return
    columns = [key, *rows[0]]
    con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [[run_id, *(_jsonable(v) for v in row.values())] for row in rows])


class FolderStore:
    """What a cluster worker runs against instead of the database: it never opens a DuckDB file. A run
    keeps its results in its folder (``harness.runfolder``) for the driver to ``ingest``; completed runs
    are looked up in the complete folders under ``runs_root``."""

    def __init__(self, runs_root: Path) -> None:
        self.runs_root = Path(runs_root)
        self.path = self.runs_root / "(run folders only)"

    def _complete(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        if not self.runs_root.is_dir():
            return
        for folder in sorted(self.runs_root.iterdir()):
            if runfolder.is_complete(folder):
                try:
                    content = runfolder.read_complete(folder)
                except runfolder.RunFolderError:
                    continue
                yield folder, {**content["run"], **content["result"]["run"], "run_dir": str(folder),
                               "status": "completed", "finished_at": content["result"].get("finished_at")}

    def completed_run(self, plan_hash: str) -> str | None:
        found = [row for _, row in self._complete() if row.get("plan_hash") == plan_hash]
        return max(found, key=lambda row: str(row["finished_at"]))["run_id"] if found else None

    def run_row(self, run_id: str) -> dict[str, Any]:
        return next(row for _, row in self._complete() if row["run_id"] == run_id)

    def latest_completed(self, task: str, method: str, profile: str, seed: int) -> dict[str, Any] | None:
        found = [row for _, row in self._complete()
                 if (row.get("task"), row.get("method"), row.get("profile"), row.get("seed")) == (task, method, profile,
                                                                                                   seed)]
        return max(found, key=lambda row: str(row["finished_at"])) if found else None

    def start_run(self, row: dict[str, Any]) -> None:
        pass  # run.json in the folder is the record

    def heartbeat(self, run_id: str) -> bool:
        return True  # the folder's heartbeat file is renewed by the lease

    def fail_run(self, run_id: str, error: str) -> None:
        pass  # failed.json in the folder is the record

    def ingest(self, folder: Path) -> str:
        runfolder.read_complete(folder)
        return "kept in its folder"


def ingest_failed(store: Store, folder: Path) -> str:
    """Store a run folder whose run failed (``run.json`` + ``failed.json``, no ``COMPLETE``) as a failed row
    (a cluster worker never opens the database); nothing if the database has that run already."""
    try:
        run = json.loads((Path(folder) / runfolder.RUN).read_text())
    except (OSError, ValueError) as exc:
        raise runfolder.RunFolderError(f"{folder}: no readable {runfolder.RUN} ({type(exc).__name__})") from None
    error = runfolder.failure(Path(folder)) or "failed: its worker ended without a result"
    with store.connect() as con:
        if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run["run_id"]]).fetchone():
            return "already stored"
        columns = {name for (name,) in con.execute("SELECT column_name FROM information_schema.columns "
                                                   "WHERE table_name = 'runs'").fetchall()}
        row = {k: v for k, v in run.items() if k in columns and k not in ("status", "error", "finished_at")}
        row = store._paths({**row, "run_dir": str(Path(folder).resolve()), "status": "failed", "error": error,
                            "finished_at": _now()}, store.relative)
        if isinstance(row.get("created_at"), str):
            row["created_at"] = datetime.fromisoformat(row["created_at"])
        con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    [_jsonable(v) for v in row.values()])
    return "stored as failed"
