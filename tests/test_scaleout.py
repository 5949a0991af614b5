"""Scale-out: ``bench matrix`` / ``bench sweep --executor`` on local processes, a real two-node Ray cluster on
this machine (loopback), SLURM through submitit (a real slurmctld + slurmd when they can start here, and
submitit's local executor, the same code path, always); results folders that move; ``bench ingest``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import Store

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--profile", "tiny"]


def bench(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``bench`` in a fresh process of this interpreter with this checkout importable."""
    full = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=full, capture_output=True, text=True,
                          timeout=timeout)


def completed(db: Path) -> list[dict]:
    return [r for r in Store(db).runs() if r["status"] == "completed"]


def bf16_method(folder: Path) -> Path:
    """lora_unet_r1 with bf16 autocast (CPU has it) under another name."""
    spec = folder / "lora_unet_r1_bf16.yaml"
    text = (ROOT / "baselines" / "lora_unet_r1.yaml").read_text()
    text = text.replace("name: lora_unet_r1", "name: lora_unet_r1_bf16")
    spec.write_text(text + "training:\n  mixed_precision: bf16\nprofiles:\n  tiny:\n    training:\n"
                    "      mixed_precision: bf16\n")
    return spec


# --- local ----------------------------------------------------------------------------------------

def test_matrix_two_precisions_local_jobs_then_resumes(tmp_path: Path) -> None:
    """fp32 and bf16 cells through one `bench matrix` (each cell its own process); a second command skips them."""
    db = tmp_path / "results" / "bench.duckdb"
    spec = bf16_method(tmp_path)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(f"tasks: [cifar_alignment]\nmethods: [lora_unet_r1, {spec}]\nseeds: [0]\nprofile: tiny\n")
    done = bench("matrix", "--file", str(matrix), "--db", str(db), "--jobs", "2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = completed(db)
    assert {r["method"]: r["plan"]["training"]["mixed_precision"] for r in runs} == {
        "lora_unet_r1": "no", "lora_unet_r1_bf16": "bf16"}
    again = bench("matrix", "--file", str(matrix), "--db", str(db))
    assert again.returncode == 0 and again.stdout.count("skipped") == 2, again.stdout
    assert len(completed(db)) == 2


# --- ingest and moving a results folder -------------------------------------------------------------

def test_ingest_idempotent_incomplete_reported_and_copied_folder_opens_in_dashboard(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from harness.plan import build_plan
    from harness.runner import run
    from harness.store import FolderStore

    results = tmp_path / "results"
    runs = results / "runs"
    for method in ("frozen", "lora_unet_r1"):  # as a cluster worker: run folders only, no database
        outcome = run(build_plan("cifar_alignment", method, "tiny", 0), FolderStore(runs), runs)
        assert outcome.status == "completed"
    broken = runs / "unfinished"
    broken.mkdir()
    (broken / "run.json").write_text(json.dumps({"run_id": "unfinished"}))
    db = results / "bench.duckdb"
    folders = [str(p) for p in sorted(runs.iterdir())]
    first = CliRunner().invoke(app, ["ingest", *folders, "--db", str(db)])
    assert first.exit_code == 1 and first.output.count("stored") == 2 and "incomplete run folder" in first.output
    second = CliRunner().invoke(app, ["ingest", *folders, "--db", str(db)])
    assert second.output.count("already stored") == 2
    assert len(Store(db).runs()) == 2
    # paths are stored relative to the results folder
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute("SELECT run_dir, adapter_file FROM runs ORDER BY method").fetchall()
    assert all(not os.path.isabs(v) for row in stored for v in row if v), stored
    # copy the results folder elsewhere, remove the original: the copy opens with its images
    copy = tmp_path / "elsewhere" / "copied"
    shutil.copytree(results, copy)
    shutil.rmtree(results)
    copied = Store(copy / "bench.duckdb")
    assert all(Path(r["run_dir"]).is_relative_to(copy) for r in copied.runs())
    monkeypatch.setenv("BENCH_DB", str(copy / "bench.duckdb"))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.query_params.update({"page": "Samples"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.image) > 0


def test_paths_relative_to_the_results_folder_and_old_absolute_rows_still_read(tmp_path: Path, monkeypatch) -> None:
    import duckdb

    monkeypatch.chdir(tmp_path)
    store = Store(Path("results/bench.duckdb"))  # as `bench run` gives it: relative to the working directory
    row = {"plan_hash": "h", "task": "t", "method": "m", "profile": "tiny", "seed": 0}
    store.start_run({**row, "run_id": "new", "run_dir": "results/runs/new"})
    store.start_run({**row, "run_id": "old", "run_dir": "/somewhere/else/runs/old"})
    with duckdb.connect("results/bench.duckdb", read_only=True) as con:
        raw = dict(con.execute("SELECT run_id, run_dir FROM runs").fetchall())
    assert raw == {"new": "runs/new", "old": "/somewhere/else/runs/old"}
    read = {r["run_id"]: r["run_dir"] for r in store.runs()}
    assert read == {"new": str(tmp_path / "results" / "runs" / "new"), "old": "/somewhere/else/runs/old"}


# --- Ray: a real two-node cluster on loopback ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ours(marker: str) -> list[int]:
    """Processes whose command line names our cluster's own folder (nothing else on the machine)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.fixture()
def ray_cluster():
    """`ray start --head` plus a second `ray start --address` node, loopback only; both stopped afterwards."""
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).parent / "ray"
    temp = Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))  # short: Ray's unix sockets live under it
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block"]
    nodes = []
    try:
        nodes.append(subprocess.Popen([str(ray_bin), "start", "--head", "--port", str(port), "--num-cpus", "1",
                                       "--include-dashboard=false", "--temp-dir", str(temp), *common], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while subprocess.run([str(ray_bin), "status", "--address", address], env=env,
                             capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and nodes[0].poll() is None, "ray head did not start"
            time.sleep(1)
        nodes.append(subprocess.Popen([str(ray_bin), "start", "--address", address, "--num-cpus", "1", *common],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        while "2 node" not in _alive_nodes(ray_bin, address, env):
            assert time.monotonic() < deadline, "second ray node did not join"
            time.sleep(1)
        yield {"address": address, "env": env}
    finally:
        for node in reversed(nodes):  # `ray start --block` stops its own processes on SIGTERM
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=8)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        for pid in {*_ours(str(temp)), *_ours(f"127.0.0.1:{port}")}:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(temp, ignore_errors=True)


def _alive_nodes(ray_bin: Path, address: str, env: dict) -> str:
    code = (f"import ray; ray.init(address='{address}', log_to_driver=False); "
            "print(len([n for n in ray.nodes() if n['Alive']]), 'node')")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return done.stdout


def _kill_first_worker(runs: Path, method: str, seed: int, killed: list, stop: threading.Event) -> None:
    """SIGKILL the process running the first run of (method, seed) as soon as its run.json names it."""
    while not stop.is_set() and not killed:
        for run_json in runs.glob("*/run.json") if runs.is_dir() else []:
            try:
                row = json.loads(run_json.read_text())
            except (OSError, ValueError):
                continue
            if row.get("method") == method and row.get("seed") == seed:
                os.kill(int(row["pid"]), signal.SIGKILL)
                killed.append(row["run_id"])
                return
        time.sleep(0.05)


def test_ray_matrix_on_two_nodes_ingests_every_cell_once_and_retries_a_killed_worker(ray_cluster,
                                                                                      tmp_path: Path) -> None:
    db = tmp_path / "results" / "bench.duckdb"
    killed: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_worker, args=(db.parent / "runs", "lora_unet_r1", 1, killed, stop),
                              daemon=True)
    killer.start()
    try:
        done = bench("matrix", "-t", "cifar_alignment", "-m", "frozen", "-m", "lora_unet_r1", "--seeds", "0,1,2",
                     *TINY, "--db", str(db), "--executor", "ray", "--address", ray_cluster["address"],
                     "--retries", "2", env=ray_cluster["env"])
    finally:
        stop.set()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert killed, "no worker was killed"
    runs = Store(db).runs()
    assert len(runs) == 6 and all(r["status"] == "completed" for r in runs)
    assert len({r["plan_hash"] for r in runs}) == 6  # every cell exactly once
    assert killed[0] not in {r["run_id"] for r in runs}  # the killed attempt left an incomplete folder only
    assert not (db.parent / "runs" / killed[0] / "COMPLETE").exists()
    retried = [r for r in runs if (r["method"], r["seed"]) == ("lora_unet_r1", 1)]
    assert len(retried) == 1 and retried[0]["host"] == socket.gethostname()
    hosts = {json.loads((Path(r["run_dir"]) / "run.json").read_text())["pid"] for r in runs}
    assert len(hosts) == 6  # every cell in a process of its own (max_calls=1)


# --- SLURM through submitit -----------------------------------------------------------------------------

def test_sweep_through_submitit_local_executor(tmp_path: Path) -> None:
    """The slurm executor's code path (submitit jobs, resubmission, ingest as jobs finish) on submitit's local
    cluster: `bench sweep --executor slurm` with BENCH_SUBMITIT_CLUSTER=local, 2 cells."""
    pytest.importorskip("submitit")
    db = tmp_path / "results" / "bench.duckdb"
    done = bench("sweep", "-t", "cifar_alignment", "-m", "lora_unet_r1", "--grid", "lr=1e-3,5e-4", *TINY,
                 "--db", str(db), "--executor", "slurm", env={"BENCH_SUBMITIT_CLUSTER": "local"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = completed(db)
    assert sorted(r["plan"]["overrides"]["lr"] for r in runs) == [5e-4, 1e-3]
    assert any((db.parent / "slurm").rglob("*_submitted.pkl"))  # went through submitit's job files


SLURM_CONF = """ClusterName=benchtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
ReturnToService=2
SlurmctldPidFile={tmp}/slurmctld.pid
SlurmdPidFile={tmp}/slurmd.pid
SlurmdSpoolDir={tmp}/slurmd
StateSaveLocation={tmp}/state
SlurmUser=root
SlurmdUser=root
SwitchType=switch/none
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldLogFile={tmp}/slurmctld.log
SlurmdLogFile={tmp}/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture()
def slurm_cluster(tmp_path: Path):
    """munged + slurmctld + slurmd on localhost, config written here; skipped with the exact error when a
    daemon cannot start in this environment."""
    paths = {}
    for binary in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo"):
        found = shutil.which(binary) or next((f"{d}/{binary}" for d in ("/usr/sbin", "/usr/bin")
                                              if Path(f"{d}/{binary}").exists()), None)
        if found is None:
            pytest.skip(f"{binary} not installed (Debian: apt-get install slurm-wlm munge)")
        paths[binary] = found
    if os.geteuid() != 0:
        pytest.skip("the test's SLURM cluster runs its daemons as root")
    tmp = Path(tempfile.mkdtemp(prefix="slurm", dir="/tmp"))
    for sub in ("slurmd", "state", "munge"):
        (tmp / sub).mkdir()
    os.chmod(tmp / "munge", 0o700)
    key = tmp / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    socket_path = tmp / "munge" / "munge.socket"
    conf = tmp / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=socket.gethostname(), ctld_port=free_port(), d_port=free_port(), tmp=tmp,
                                      cpus=os.cpu_count() or 1))
    env = {**os.environ, "SLURM_CONF": str(conf), "PYTHONPATH": str(ROOT),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", ""), "/usr/sbin"])}
    procs: list[subprocess.Popen] = []

    def start(args: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        procs.append(proc)
        return proc

    try:
        munge = start([paths["munged"], "-F", "--key-file", str(key), "--socket", str(socket_path), "--pid-file",
                       str(tmp / "munged.pid"), "--log-file", str(tmp / "munged.log"), "--seed-file",
                       str(tmp / "munge.seed"), "--force"])
        time.sleep(1)
        if munge.poll() is not None:
            pytest.skip(f"munged could not start here: {munge.stdout.read().strip()[-500:]}")
        # Slurm's munge plugin reads the socket from the config
        conf.write_text(conf.read_text() + f"AuthInfo=socket={socket_path}\n")
        ctld = start([paths["slurmctld"], "-D", "-i", "-f", str(conf)])
        slurmd = start([paths["slurmd"], "-D", "-f", str(conf)])
        deadline = time.monotonic() + 30
        while True:
            info = subprocess.run([paths["sinfo"], "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            if info.returncode == 0 and info.stdout.strip() in ("idle", "mixed"):
                break
            for name, proc in (("slurmctld", ctld), ("slurmd", slurmd)):
                if proc.poll() is not None:
                    pytest.skip(f"{name} could not start here (exit {proc.returncode}): "
                                f"{' '.join(proc.stdout.read().split())[-600:]}")
            if time.monotonic() > deadline:
                pytest.skip(f"SLURM node not idle after 30 s: sinfo says {info.stdout.strip()!r} "
                            f"{info.stderr.strip()[-300:]!r}")
            time.sleep(0.5)
        yield env
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def test_matrix_on_a_real_slurm_cluster(slurm_cluster: dict, tmp_path: Path) -> None:
    db = tmp_path / "results" / "bench.duckdb"
    done = bench("matrix", "-t", "cifar_alignment", "-m", "frozen", "-m", "lora_unet_r1", "-m", "xattn_ft", *TINY,
                 "--db", str(db), "--executor", "slurm", "--partition", "debug", "--time-min", "10",
                 env=slurm_cluster)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(completed(db)) == 3
