"""A run folder holds a whole run on its own; the database is an index that can be rebuilt from run folders.

Layout of ``<runs>/<run_id>/`` (format 1; every JSON file is written to a temporary file and moved into
place with ``os.replace``, so a reader sees the old file or the new one, never half of one)::

    plan.json      the RunPlan (written when the run starts)
    run.json       the run's row as started: run_id, plan_hash, task, method, profile, seed, versions,
                   git commit, created_at, and its lease (host, pid, pid_started)
    heartbeat      UTC time, rewritten while the run's process is alive (remote hosts' staleness)
    samples/...    the PNGs (and checkpoints/, subjects/, adapters: whatever the method writes)
    result.json    {"format", "run_id", "finished_at", "run": completion fields (budget spent, timings,
                   adapter), "samples": [...], "sample_scores": [...], "aggregates": [...]}
    failed.json    {"run_id", "error", "finished_at"} instead of result.json when the run failed
                   (its traceback in error.log)
    COMPLETE       written last: {"format", "run_id", "files": {name: sha256}} over plan.json,
                   run.json and result.json. A folder without it is not a finished run.

``harness.store.Store.ingest`` stores a complete folder exactly once (a second ingest adds nothing), the
same way whether the run's own process does it, the next command after a busy database, or
``bench ingest`` on folders that cluster workers wrote. Paths inside the rows are those of the machine
that wrote them; ingest rewrites those under the folder's recorded location to where the folder is now.
Nothing here imports anything heavy.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FORMAT = 1
PLAN, RUN, RESULT, FAILED, COMPLETE, HEARTBEAT = ("plan.json", "run.json", "result.json", "failed.json",
                                                  "COMPLETE", "heartbeat")


class RunFolderError(ValueError):
    """A run folder that cannot be read as a finished run (message: one line naming the folder)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the lease of a run: which process on which host ---------------------------------------------

def host() -> str:
    return socket.gethostname()


def process_started(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot (Linux ``/proc``), to tell a reused pid apart;
    None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def lease() -> dict[str, Any]:
    """This process's lease fields of a run row."""
    return {"host": host(), "pid": os.getpid(), "pid_started": process_started(os.getpid())}


def process_alive(pid: int, started: str | None) -> bool:
    """Whether the process ``pid`` on this host is the one that took the lease."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, someone else's
    except OSError:
        return False
    if started is not None:
        now = process_started(pid)
        if now is not None and now != started:
            return False  # the pid was reused by another process
    return True


def touch_heartbeat(folder: Path) -> None:
    try:
        write_atomic(folder / HEARTBEAT, utcnow().isoformat())
    except OSError:
        pass


def heartbeat_of(folder: Path) -> datetime | None:
    try:
        return datetime.fromisoformat((folder / HEARTBEAT).read_text().strip())
    except (OSError, ValueError):
        return None


# --- writing -------------------------------------------------------------------------------------

def write_start(folder: Path, plan_json: str, row: dict[str, Any]) -> None:
    """``plan.json`` and ``run.json`` of a run that starts."""
    write_atomic(folder / PLAN, plan_json)
    write_json(folder / RUN, {"format": FORMAT, **row})
    touch_heartbeat(folder)


def write_result(folder: Path, run_id: str, fields: dict[str, Any], samples: list[dict], scores: list[dict],
                 aggregates: list[dict]) -> None:
    """``result.json``, then the ``COMPLETE`` marker over the run's JSON files."""
    write_json(folder / RESULT, {"format": FORMAT, "run_id": run_id, "finished_at": utcnow(), "run": fields,
                                 "samples": samples, "sample_scores": scores, "aggregates": aggregates})
    files = {name: _sha256(folder / name) for name in (PLAN, RUN, RESULT) if (folder / name).is_file()}
    write_json(folder / COMPLETE, {"format": FORMAT, "run_id": run_id, "files": files})


def write_failure(folder: Path, run_id: str, error: str) -> None:
    try:
        write_json(folder / FAILED, {"format": FORMAT, "run_id": run_id, "error": error, "finished_at": utcnow()})
    except OSError:
        pass


# --- reading -------------------------------------------------------------------------------------

def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE).is_file()


def failure(folder: Path) -> str | None:
    """The error a failed run recorded in its folder (when the database could not take it), if any."""
    try:
        return str(json.loads((folder / FAILED).read_text())["error"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_complete(folder: Path) -> dict[str, Any]:
    """The run record and results of a complete folder, checked against its marker's hashes."""
    if not folder.is_dir():
        raise RunFolderError(f"{folder}: not a run folder (no such directory)")
    if not is_complete(folder):
        raise RunFolderError(f"{folder}: incomplete run folder (no {COMPLETE} marker: the run did not finish, "
                             "or is still running); not ingested")
    try:
        marker = json.loads((folder / COMPLETE).read_text())
        for name, digest in marker["files"].items():
            if _sha256(folder / name) != digest:
                raise RunFolderError(f"{folder}: {name} does not match its hash in {COMPLETE} (changed after the "
                                     "run finished); not ingested")
        run = json.loads((folder / RUN).read_text())
        result = json.loads((folder / RESULT).read_text())
    except RunFolderError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunFolderError(f"{folder}: unreadable run folder ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); not ingested") from None
    if not (run.get("run_id") == result.get("run_id") == marker.get("run_id")):
        raise RunFolderError(f"{folder}: run.json, result.json and {COMPLETE} name different runs; not ingested")
    if marker.get("format", 0) > FORMAT:
        raise RunFolderError(f"{folder}: run folder format {marker.get('format')} is newer than this harness "
                             f"reads ({FORMAT}); not ingested")
    return {"run": run, "result": result}


def relocate(value: Any, old: str, new: str) -> Any:
    """``value`` (a path string, or a JSON structure of them) with the prefix ``old`` replaced by ``new``."""
    if not old or old == new:
        return value
    if isinstance(value, str):
        return new + value[len(old):] if value == old or value.startswith(old.rstrip("/") + "/") else value
    if isinstance(value, dict):
        return {k: relocate(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [relocate(v, old, new) for v in value]
    return value
