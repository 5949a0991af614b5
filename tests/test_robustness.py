"""Hostile and careless use through the CLI (subprocesses, tiny profile): interrupted runs, a busy or damaged
database, specs that pose as others, hang, or should not validate. Each case: exit code, one line, no
traceback, and the state of the database and run folders afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from harness.cli import app

ROOT = Path(__file__).resolve().parents[1]
TASK = "cifar_alignment"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every `bench` subprocess: this checkout, caches and registry in temp folders."""
    home = tmp_path_factory.mktemp("home")
    return {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_HOME": str(home),
            "BENCH_CACHE": str(os.environ.get("BENCH_CACHE") or home / "cache"), "HF_HUB_OFFLINE": "1",
            "BENCH_HEARTBEAT_SECONDS": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def bench(env: dict[str, str], *args: str, timeout: float = 180, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env={**env, **extra}, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def start(env: dict[str, str], *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], env={**env, **extra},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def one_error_line(result: subprocess.CompletedProcess | object, code: int) -> str:
    """The command exited ``code`` with exactly one error line on stderr and no traceback; that line."""
    stderr = getattr(result, "stderr", "")
    assert getattr(result, "returncode", None) == code, (getattr(result, "stdout", ""), stderr)
    assert "Traceback" not in stderr + getattr(result, "stdout", "")
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def rows(db: Path, query: str = "SELECT * FROM runs") -> list[dict]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cursor = con.execute(query)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()


def wait_for(predicate, timeout: float = 150, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def run_started(runs: Path) -> Path:
    """The folder of the run that started under ``runs`` once its run record is written."""
    wait_for(lambda: any(runs.glob("*/run.json")), what="a run to start")
    return next(runs.glob("*/run.json")).parent


# --- interrupted runs ----------------------------------------------------------------------------------

def test_kill_9_and_sigterm_leave_no_running_row(env: dict[str, str], tmp_path: Path) -> None:
    """kill -9 of one run and SIGTERM of another while they train (run in parallel to save time): SIGTERM
    gives exit 143 and `failed: interrupted`; the next command that opens the database for writing marks
    the killed run `failed: abandoned`, and no row is left `running`."""
    db = tmp_path / "bench.duckdb"
    killed = start(env, "run", "-t", TASK, "-m", "xattn_ft", "--profile", "tiny", "--db", str(db))
    killed_dir = run_started(tmp_path / "runs")
    time.sleep(1.0)  # its row is inserted right after run.json: now in training
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    assert [r["status"] for r in rows(db)] == ["running"]
    assert not (killed_dir / "COMPLETE").exists()

    termed = start(env, "run", "-t", TASK, "-m", "lora_unet_r1", "--profile", "tiny", "--db", str(db))
    wait_for(lambda: len(list((tmp_path / "runs").glob("*/run.json"))) == 2, what="the second run to start")
    time.sleep(1.0)
    termed.send_signal(signal.SIGTERM)
    out, err = termed.communicate(timeout=60)
    line = one_error_line(subprocess.CompletedProcess([], termed.returncode, out, err), 143)
    assert "interrupted by SIGTERM" in line and "stored as failed" in line

    by_method = {r["method"]: r for r in rows(db)}
    assert by_method["lora_unet_r1"]["status"] == "failed"
    assert by_method["lora_unet_r1"]["error"] == "interrupted: SIGTERM"
    # the next writer (here: an ingest of the killed run's folder, which is reported as incomplete)
    result = bench(env, "ingest", str(killed_dir), "--db", str(db))
    assert result.returncode == 1 and "incomplete run folder" in result.stderr and "Traceback" not in result.stderr
    killed_row = next(r for r in rows(db) if r["method"] == "xattn_ft")
    assert killed_row["status"] == "failed" and killed_row["error"].startswith("abandoned: its process")
    assert str(killed.pid) in killed_row["error"]
    assert not [r for r in rows(db) if r["status"] == "running"]
    assert rows(db, "SELECT count(*) AS n FROM samples")[0]["n"] == 0


# --- a busy database when a run finishes; ingest; a damaged database ------------------------------------

HOLD = """
import sys, time, duckdb
db, flag = sys.argv[1], sys.argv[2]
while True:  # hold the database (a reader's lock keeps writers out) once the run's row is there
    try:
        con = duckdb.connect(db, read_only=True)
        if con.execute("SELECT count(*) FROM runs").fetchone()[0]:
            break
        con.close()
    except duckdb.Error:
        pass
    time.sleep(0.2)
open(flag, "w").write("held")
sys.stdin.read()  # until the test closes stdin
con.close()
"""


@pytest.fixture(scope="module")
def busy_run(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A frozen tiny run that finishes while another process holds the database past the wait."""
    root = tmp_path_factory.mktemp("busy")
    db, flag = root / "bench.duckdb", root / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(flag)], stdin=subprocess.PIPE, text=True)
    try:
        result = bench(env, "run", "-t", TASK, "-m", "frozen", "--profile", "tiny", "--db", str(db),
                       BENCH_LOCK_WAIT_SECONDS="3")
        held = flag.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    folder = next((root / "runs").iterdir())
    return {"db": db, "result": result, "held": held, "folder": folder}


def test_results_of_a_run_finishing_on_a_busy_database_are_kept_and_stored_once(busy_run: dict,
                                                                               env: dict[str, str]) -> None:
    assert busy_run["held"]
    db, folder, result = busy_run["db"], busy_run["folder"], busy_run["result"]
    line = one_error_line(result, 0)
    assert "completed, not stored yet" in line and "database busy" in line and str(folder) in line
    assert (folder / "COMPLETE").is_file() and list((folder / "samples").glob("*.png"))
    [row] = rows(db)
    assert row["status"] == "running" and rows(db, "SELECT count(*) AS n FROM samples")[0]["n"] == 0
    kept = json.loads((folder / "result.json").read_text())
    # the next command that opens the database for writing stores them (here: ingest, which then finds them)
    first = bench(env, "ingest", str(folder), "--db", str(db))
    assert first.returncode == 0 and "already stored" in first.stdout, first.stderr
    second = bench(env, "ingest", str(folder), "--db", str(db))
    assert second.returncode == 0 and "already stored" in second.stdout
    [row] = rows(db)
    # stored relative to the results folder (the database's folder), read back absolute
    assert row["status"] == "completed"
    assert row["run_dir"] == folder.resolve().relative_to(db.parent.resolve()).as_posix()
    from harness.store import Store

    assert Store(db).run_row(row["run_id"])["run_dir"] == str(folder.resolve())
    assert rows(db, "SELECT count(*) AS n FROM samples")[0]["n"] == len(kept["samples"]) > 0
    assert rows(db, "SELECT count(*) AS n FROM metrics")[0]["n"] == len(kept["aggregates"]) > 0
    assert rows(db, "SELECT count(*) AS n FROM sample_scores")[0]["n"] == len(kept["sample_scores"])


@pytest.mark.parametrize("damage", ["truncated", "garbage block"])
def test_damaged_database_is_one_line_left_as_is_and_rebuilt_by_ingest(busy_run: dict, env: dict[str, str],
                                                                       tmp_path: Path, damage: str) -> None:
    bench(env, "ingest", str(busy_run["folder"]), "--db", str(busy_run["db"]))  # settled (idempotent)
    db = tmp_path / "bench.duckdb"
    data = busy_run["db"].read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = data[:12288] + os.urandom(3 * 4096) + data[12288 + 3 * 4096:]
    db.write_bytes(data)
    for args in (["leaderboard", "-t", TASK], ["ingest", str(busy_run["folder"])]):
        line = one_error_line(bench(env, *args, "--db", str(db)), 5)
        assert str(db) in line and "damaged" in line and "bench ingest" in line
        assert db.read_bytes() == data  # never overwritten
    db.rename(tmp_path / "damaged.duckdb")
    rebuilt = bench(env, "ingest", str(busy_run["folder"]), "--db", str(db))
    assert rebuilt.returncode == 0 and rebuilt.stdout.split()[0] == "stored", rebuilt.stderr
    assert [r["status"] for r in rows(db)] == ["completed"]
    board = bench(env, "leaderboard", "-t", TASK, "--db", str(db))
    assert board.returncode == 0 and "frozen" in board.stdout


def test_incomplete_or_missing_folder_is_reported_not_ingested(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "run.json").write_text("{}")
    result = bench(env, "ingest", str(tmp_path / "half"), str(tmp_path / "nothing"), "--db",
                   str(tmp_path / "bench.duckdb"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "incomplete run folder" in result.stderr and "no such directory" in result.stderr
    assert not (tmp_path / "bench.duckdb").exists()


# --- specs ---------------------------------------------------------------------------------------------

METHOD = {"name": "mine", "version": 1, "kind": "lora", "params": {"rank": 2}}
LEVELS = zip("abcdefgh", "bcdefghi", strict=True)  # each level: ten aliases of the one before (10^9 nodes)
BOMB = "\n".join(["name: bomb", "version: 1", "kind: lora", "params:", "  a: &a [x,x,x,x,x,x,x,x,x,x]"]
                 + [f"  {c}: &{c} [{', '.join([f'*{p}'] * 10)}]" for p, c in LEVELS]) + "\n"

BAD_SPECS: dict[str, tuple[bytes, str]] = {
    "alias_bomb": (BOMB.encode(), "expands to more than 100,000 YAML nodes"),
    "huge": (b"name: huge\nversion: 1\nkind: lora\ndescription: '" + b"x" * 1_100_000 + b"'\n",
             "larger than the limit of 1,000,000 bytes"),
    "not_utf8": (b"name: caf\xe9\nversion: 1\nkind: lora\n", "not UTF-8 text (byte 0xe9"),
    "rank_negative": (yaml.safe_dump({**METHOD, "params": {"rank": -1}}).encode(),
                      "field 'params.rank': Input should be greater than or equal to 1 (got -1)"),
    "rank_big": (yaml.safe_dump({**METHOD, "params": {"rank": "big"}}).encode(), "field 'params.rank'"),
    "unknown_lora_key": (yaml.safe_dump({**METHOD, "params": {"rnak": 2}}).encode(),
                         "field 'params.rnak': Extra inputs are not permitted"),
    "duplicate_key": (b"name: dup\nversion: 1\nkind: lora\nversion: 2\n", ":4:1: duplicate key 'version'"),
    "bool_steps": (yaml.safe_dump({**METHOD, "training": {"max_steps": True}}).encode(),
                   "field 'training.max_steps': Value error, expected a number, not a boolean"),
    "huge_steps": (yaml.safe_dump({**METHOD, "training": {"max_steps": 10**30}}).encode(),
                   "field 'training.max_steps': Input should be less than or equal to 1000000"),
    "no_kind": (yaml.safe_dump({"name": "nokind", "version": 1, "params": {"rank": 2}}).encode(),
                "field 'kind': Field required"),
    "markup": (yaml.safe_dump({**METHOD, "name": "^+$[bold]x[/bold]"}).encode(),
               "'^[a-z0-9_]+$' (got '^+$[bold]x[/bold]')"),
    "poses_as_frozen": (yaml.safe_dump({**METHOD, "name": "frozen"}).encode(),
                        "field 'name': 'frozen' is a built-in baseline"),
    "bad_stage": (yaml.safe_dump({**METHOD, "kind": "ti_then_ft", "params": {"stage1": {"max_steps": 0}}}).encode(),
                  "field 'params.stage1.max_steps'"),
    "attn_patterns": (yaml.safe_dump({**METHOD, "kind": "attn_finetune",
                                      "params": {"target_patterns": "attn2"}}).encode(),
                      "field 'params.target_patterns'"),
}


def test_bad_specs_are_one_line_each_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    task = yaml.safe_load((ROOT / "tasks" / f"{TASK}.yaml").read_text())
    task["name"], task["sampling"]["height"] = "cifar_huge", 100000
    files = {name: tmp_path / f"{name}.yaml" for name in BAD_SPECS}
    for name, (content, _) in BAD_SPECS.items():
        files[name].write_bytes(content)
    files["resolution"] = tmp_path / "resolution.yaml"
    files["resolution"].write_text(yaml.safe_dump(task))
    started = time.monotonic()
    result = bench(env, "validate", *map(str, files.values()))
    assert time.monotonic() - started < 60 and result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(files) and result.stdout == ""
    expected = {name: text for name, (_, text) in BAD_SPECS.items()} | {
        "resolution": "field 'sampling.height': Input should be less than or equal to 4096 (got 100000)"}
    for (name, path), line in zip(files.items(), lines, strict=True):
        assert line.startswith(f"invalid {path}") and expected[name] in line, (name, line)


def test_run_and_submit_refuse_bad_specs_fast_and_write_nothing(env: dict[str, str], tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    pose = tmp_path / "pose.yaml"
    pose.write_text(yaml.safe_dump({**METHOD, "name": "frozen", "params": {"rank": 8}}))
    for args in (["run", "-t", TASK, "-m", str(bomb)], ["run", "-t", TASK, "-m", str(pose)],
                 ["submit", str(bomb), "-t", TASK]):
        started = time.monotonic()
        result = bench(env, *args, "--profile", "tiny", "--db", str(tmp_path / "bench.duckdb"), timeout=60)
        line = one_error_line(result, 2)
        assert time.monotonic() - started < 30 and line.startswith("error: ")
    rank = tmp_path / "rank.yaml"
    rank.write_text(yaml.safe_dump({**METHOD, "params": {"rank": -1}}))
    line = one_error_line(bench(env, "submit", str(rank), "-t", TASK, "--profile", "tiny", "--db",
                                str(tmp_path / "bench.duckdb")), 2)
    assert "field 'params.rank'" in line
    assert not (tmp_path / "bench.duckdb").exists() and not (Path(env["BENCH_HOME"]) / "methods").exists()


def test_submit_replace_never_writes_through_a_link(env: dict[str, str], tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("precious: true\n")
    registry = Path(env["BENCH_HOME"]) / "methods"
    registry.mkdir(parents=True, exist_ok=True)
    (registry / "mine.yaml").symlink_to(outside)
    spec = tmp_path / "mine.yaml"
    spec.write_text(yaml.safe_dump(METHOD))
    try:
        line = one_error_line(bench(env, "submit", str(spec), "-t", TASK, "--profile", "tiny", "--replace",
                                    "--db", str(tmp_path / "bench.duckdb")), 2)
        assert "symbolic link" in line and outside.read_text() == "precious: true\n"
        listed = bench(env, "ls", "methods")
        assert listed.returncode == 0 and "mine" not in listed.stdout.split()
    finally:
        (registry / "mine.yaml").unlink()


def test_markup_in_errors_is_printed_as_is(env: dict[str, str], tmp_path: Path) -> None:
    line = one_error_line(bench(env, "run", "-t", "[bold]x[/bold]", "-m", "frozen"), 2)
    assert "unknown task '[bold]x[/bold]'" in line


# --- a seeded spec fuzzer --------------------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**40, 10**40), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["1e-3", "big", "[x]", "&a", "*a", "{c}", "unet"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
KEYS = st.sampled_from(["name", "version", "kind", "params", "training", "description", "profiles", "families",
                        "rank", "model", "data", "budget", "sampling", "evaluation", "extra"])
SPECS = st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=8).map(lambda d: yaml.safe_dump(d).encode()),
    st.fixed_dictionaries({"name": st.sampled_from(["mine", "frozen", "Bad Name"]),
                           "version": st.one_of(st.integers(-2, 3), st.booleans()),
                           "kind": st.sampled_from(["lora", "attn_finetune", "textual_inversion", "dreambooth",
                                                    "dreambooth_lora", "ti_then_ft", "frozen", "nope"]),
                           "params": st.dictionaries(st.sampled_from(["rank", "alpha", "component", "token",
                                                                      "target_patterns", "target_modules",
                                                                      "stage1", "class_images", "adapters"]),
                                                     VALUES, max_size=3)}).map(lambda d: yaml.safe_dump(d).encode()),
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
)


@seed(20261201)
@settings(max_examples=30, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(content=SPECS)
def test_fuzzed_specs_validate_or_fail_in_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert time.monotonic() - started < 5
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("ok" if result.exit_code == 0 else "invalid"), lines
