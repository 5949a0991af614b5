"""Wall clock of a 12-cell tiny matrix (cifar_alignment x {frozen, lora_unet_r1} x seeds 0-5) on
``--executor local --jobs 1``, ``--jobs 2`` and Ray with two nodes on this machine (loopback, one CPU each),
each into a fresh results folder; prints the seconds and the ratios to ``--jobs 1``.

    PYTHONPATH=. .venv/bin/python benchmarks/matrix_scaling.py [--seeds 6] [--skip-ray]

Not a timed test: the figures depend on the machine's cores and load (tiny cells are dominated by the start
of each cell's process: imports, tiny model construction).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RayCluster:
    """A head and a worker node started with ``ray start --block``; stopped (their process groups) on exit."""

    def __init__(self, env: dict[str, str], cpus_per_node: int = 1) -> None:
        self.env, self.cpus = env, cpus_per_node
        self.nodes: list[subprocess.Popen] = []
        self.temp = tempfile.mkdtemp(prefix="rbm", dir="/tmp")
        self.address = f"127.0.0.1:{free_port()}"

    def __enter__(self) -> RayCluster:
        ray = str(Path(sys.executable).parent / "ray")
        common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block", "--num-cpus", str(self.cpus)]
        port = self.address.rsplit(":", 1)[1]
        self.nodes.append(subprocess.Popen([ray, "start", "--head", "--port", port, "--include-dashboard=false",
                                            "--temp-dir", self.temp, *common], env=self.env, start_new_session=True,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        while subprocess.run([ray, "status", "--address", self.address], env=self.env,
                             capture_output=True).returncode != 0:
            time.sleep(1)
        self.nodes.append(subprocess.Popen([ray, "start", "--address", self.address, *common], env=self.env,
                                           start_new_session=True, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        code = (f"import ray, time; ray.init(address='{self.address}', log_to_driver=False)\n"
                "while len([n for n in ray.nodes() if n['Alive']]) < 2: time.sleep(0.5)")
        subprocess.run([sys.executable, "-c", code], env=self.env, check=True, capture_output=True, timeout=120)
        return self

    def __exit__(self, *exc: object) -> None:
        for node in reversed(self.nodes):
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
            try:
                node.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        shutil.rmtree(self.temp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="matrix-scaling-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "BENCH_CACHE": str(work / "cache")}
    cells = ["-t", "cifar_alignment", "-m", "frozen", "-m", "lora_unet_r1", "--seeds",
             ",".join(str(s) for s in range(args.seeds)), "--profile", "tiny"]
    n = 2 * args.seeds
    bench(["matrix", *cells[:4], "--seeds", "0", "--profile", "tiny", "--db", str(work / "warm" / "b.duckdb")], env)
    timings: dict[str, float] = {}
    timings["local --jobs 1"] = bench(["matrix", *cells, "--db", str(work / "j1" / "b.duckdb"), "--jobs", "1"], env)
    timings["local --jobs 2"] = bench(["matrix", *cells, "--db", str(work / "j2" / "b.duckdb"), "--jobs", "2"], env)
    if not args.skip_ray:
        with RayCluster(env) as cluster:
            timings["ray, 2 nodes x 1 CPU"] = bench(["matrix", *cells, "--db", str(work / "ray" / "b.duckdb"),
                                                     "--executor", "ray", "--address", cluster.address], env)
    base = timings["local --jobs 1"]
    print(f"{n}-cell tiny matrix on {os.cpu_count()} CPUs (cells: cifar_alignment x frozen, lora_unet_r1 x "
          f"{args.seeds} seeds)")
    for name, seconds in timings.items():
        print(f"  {name:<24} {seconds:7.1f} s   {seconds / n:5.1f} s/cell   speed-up vs --jobs 1: "
              f"{base / seconds:4.2f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
