"""The dashboard reading while a run writes: a held lock makes the other side wait, not fail."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from harness.store import Store

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("held", flush=True)
time.sleep(1.0)
con.close()
"""


def test_writer_waits_for_a_reader_in_another_process(tmp_path: Path) -> None:
    store = Store(tmp_path / "bench.duckdb")
    store.start_run({"run_id": "first", "task": "t", "method": "m", "profile": "tiny"})
    reader = subprocess.Popen([sys.executable, "-c", HOLD, str(store.path)], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "held"
    started = time.monotonic()
    store.start_run({"run_id": "second", "task": "t", "method": "m", "profile": "tiny"})
    waited = time.monotonic() - started
    reader.wait(timeout=30)
    assert reader.returncode == 0 and waited > 0.2
    assert [r["run_id"] for r in store.runs()] == ["second", "first"]
    assert all(r["status"] == "running" for r in store.runs())
