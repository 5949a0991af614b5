"""The `bench` command: listing without torch, one-line errors, describe, leaderboard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.paths import PROJECT_ROOT

runner = CliRunner()


def _bench(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from harness.cli import app; sys.argv = ['bench', *sys.argv[1:]]; app()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=PROJECT_ROOT)


def test_listing_and_help_do_not_import_torch() -> None:
    code = ("import sys\nfrom harness.cli import app\nfor argv in (['ls', 'tasks'], ['ls', 'methods'], ['--help']):\n"
            "    try:\n        app(argv)\n    except SystemExit:\n        pass\n"
            "heavy = ('torch', 'diffusers', 'transformers', 'open_clip')\n"
            "print('HEAVY', sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT).stdout
    assert "cifar_alignment" in out and "xattn_ft" in out
    assert "HEAVY []" in out


def test_listing_is_aligned_with_one_line_descriptions() -> None:
    result = runner.invoke(app, ["ls", "tasks"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "\t" not in result.stdout
    described = {len(line) - len(line[len(line.split()[0]):].lstrip()) for line in lines}
    assert len(described) == 1  # every description starts in the same column
    assert len({line.index(str(PROJECT_ROOT / "tasks")) for line in lines}) == 1  # and every file
    assert any("CIFAR-10" in line for line in lines if line.startswith("cifar_alignment"))


def test_invalid_spec_is_one_line_exit_2(tmp_path: Path) -> None:
    data = yaml.safe_load((PROJECT_ROOT / "tasks" / "cifar_alignment.yaml").read_text())
    data["sampling"]["steps"] = -1
    path = tmp_path / "bad_task.yaml"
    path.write_text(yaml.safe_dump(data))
    result = _bench("run", "--task", str(path), "--method", "frozen")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad_task.yaml" in lines[0] and "sampling.steps" in lines[0]


def test_validate_reports_each_file(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("name: m\nversion: 1\nkind: lora\nparams: [1, 2]\n")
    result = runner.invoke(app, ["validate", str(PROJECT_ROOT / "baselines" / "frozen.yaml"), str(bad)])
    assert result.exit_code == 2
    assert "ok" in result.stdout and "field 'params'" in result.stderr


def test_unknown_task_suggests_close_names() -> None:
    result = _bench("describe", "--task", "cifar_alignmen", "--method", "frozen")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown task 'cifar_alignmen'" in result.stderr and "did you mean cifar_alignment" in result.stderr


def test_bad_profile_is_rejected() -> None:
    result = runner.invoke(app, ["describe", "--task", "cifar_alignment", "--method", "frozen", "--profile", "big"])
    assert result.exit_code == 2 and "--profile" in result.stderr


def test_describe_full_counts_on_real_architecture() -> None:
    result = runner.invoke(app, ["describe", "--task", "cifar_alignment", "--method", "xattn_ft", "--profile", "full"])
    assert result.exit_code == 0, result.stderr
    assert "trainable parameters: 43,962,560 on the real sd15 (meta device, no weights)" in result.stdout
    assert "share of unet (859,520,964 params): 5.115%" in result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) <= 10 and '"learning_rate"' not in result.stdout  # the summary, not the plan
    assert "adapter size: 175,850,240 bytes" in result.stdout and "budget: 400 steps, batch 4" in result.stdout
    plan = runner.invoke(app, ["describe", "--task", "cifar_alignment", "--method", "xattn_ft", "--profile", "full",
                               "--json"])
    assert plan.exit_code == 0 and '"learning_rate": 1e-06' in plan.stdout
    assert plan.stdout.index("trainable parameters") < plan.stdout.index('"learning_rate"')  # summary first


def test_full_run_without_weights_fails_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "bench.duckdb"
    result = _bench("run", "--task", "cifar_alignment", "--method", "frozen", "--profile", "full", "--db", str(db))
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "weights missing" in result.stderr and "--profile tiny" in result.stderr
    assert not db.exists()  # nothing stored for a run that could not start


def test_leaderboard_shows_all_methods_with_counts(tiny_runs: dict) -> None:
    result = runner.invoke(app, ["leaderboard", "--task", "cifar_alignment", "--db", str(tiny_runs["store"].path)])
    assert result.exit_code == 0, result.stderr
    for method in ("frozen", "xattn_ft", "lora_unet_r1"):
        assert method in result.stdout
    assert result.stdout.count("N=50") >= 3 and "profile tiny" in result.stdout
    assert "= marks a shared rank" in result.stdout and "random_init" in result.stdout
    wide = runner.invoke(app, ["leaderboard", "--task", "cifar_alignment", "--db", str(tiny_runs["store"].path),
                               "--wide", "--format", "csv"])
    assert wide.stdout.count("N=12") >= 3 and "near_black_count" in wide.stdout


def test_leaderboard_exports_for_copying(tiny_runs: dict) -> None:
    import csv
    import io
    import json

    db = str(tiny_runs["store"].path)
    rows = json.loads(runner.invoke(app, ["leaderboard", "-t", "cifar_alignment", "--db", db, "--format", "json"]
                                    ).stdout)
    assert [r["method"] for r in rows][0] and {"rank", "method", "gain over frozen", "trainable params"} <= set(rows[0])
    table = list(csv.DictReader(io.StringIO(runner.invoke(
        app, ["leaderboard", "-t", "cifar_alignment", "--db", db, "--format", "csv", "--wide"]).stdout)))
    assert [r["method"] for r in table] == [r["method"] for r in rows] and "run" in table[0]
    markdown = runner.invoke(app, ["leaderboard", "-t", "cifar_alignment", "--db", db, "--format", "markdown"]).stdout
    assert markdown.startswith("| rank | method |") and markdown.strip().count("\n") == len(rows) + 1
    bad = runner.invoke(app, ["leaderboard", "-t", "cifar_alignment", "--db", db, "--format", "xml"])
    assert bad.exit_code == 2 and "--format" in bad.stderr


def test_weights_paths_are_never_wrapped() -> None:
    result = _bench("weights")
    lines = result.stdout.splitlines()
    places = [line.split("goes to", 1)[1].strip() for line in lines if line.strip().startswith("goes to")]
    assert places and all("/" in place or "$" in place or "HF" in place for place in places)
    for line in lines:
        if line.strip().startswith(("goes to", "fetch from")):
            assert "│" not in line  # outside the table, one line each


def test_leaderboard_without_db_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["leaderboard", "--task", "cifar_alignment", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 0 and "no completed runs" in result.stdout
