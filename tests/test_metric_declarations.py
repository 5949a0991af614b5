"""Each metric is declared once, next to its code, and everything else reads the declaration."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.metric_registry import (
    DISPLAY_KINDS,
    declaration,
    declarations,
    default_backbone,
    metric_names,
    scorer,
)
from harness.paths import PROJECT_ROOT
from harness.specs import MetricSpec, SpecError, parse_spec

HARNESS = PROJECT_ROOT / "harness"


def test_declarations_load_without_torch() -> None:
    code = ("import sys\nfrom harness.metric_registry import declarations\nnames = list(declarations())\n"
            "heavy = ('torch', 'diffusers', 'transformers', 'open_clip', 'torch_fidelity', 'facenet_pytorch')\n"
            "print(len(names), sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert out.stdout.split(" ", 1)[1].strip() == "[]", out.stderr


def test_every_metric_is_declared_once_with_its_family_and_weights() -> None:
    from harness.weights import WEIGHT_FILES

    found = declarations()
    assert set(metric_names()) == {"clip_score", "clip_score_all_pairs", "clip_t", "clip_i", "dino", "fid", "kid",
                                   "face_distance"}
    assert {n for n, d in found.items() if d.count} == {"near_black_count", "faceless_count"}
    keys = {w.key for w in WEIGHT_FILES}
    for name, d in found.items():
        assert (HARNESS / "metrics" / f"{d.family}.py").is_file()
        assert set(d.weights) <= keys and set(d.display) <= set(DISPLAY_KINDS), name
        if not d.count:
            assert scorer(name).__module__ == f"harness.metrics.{d.family}"
    assert [d.direction for d in map(declaration, ("fid", "kid", "face_distance", "near_black_count"))] == ["lower"] * 4
    assert declaration("clip_score").display == ("cosine", "x100", "clipscore") and not declaration("fid").per_sample
    with pytest.raises(ValueError, match="unknown metric 'psnr'"):
        declaration("psnr")
    with pytest.raises(ValueError, match="count produced with other metrics"):
        scorer("faceless_count")


def test_a_direction_is_written_in_exactly_one_place() -> None:
    """grep: each metric's ``higher_is_better`` appears once (its declaration); nothing lists directions."""
    sources = {p: p.read_text() for p in HARNESS.rglob("*.py")}
    for name in declarations():
        hits = [p for p, text in sources.items() for _ in re.finditer(rf'metric="{name}", higher_is_better=', text)]
        assert len(hits) == 1, (name, hits)
    for text in sources.values():
        assert not re.search(r"LOWER_(IS_)?BETTER|higher_is_better=(True|False)(?!, display)", text)


def test_specs_accept_declared_metrics_only_with_their_default_backbone() -> None:
    spec = parse_spec(MetricSpec, {"name": "dino"}, "t")
    assert (spec.backbone, spec.weights) == default_backbone("dino") == ("facebook/dino-vits16",) * 2
    assert parse_spec(MetricSpec, {"name": "clip_t", "backbone": "other"}, "t").backbone == "other"
    with pytest.raises(SpecError, match=r"field 'name': .*unknown metric 'psnr' \(declared: clip_score"):
        parse_spec(MetricSpec, {"name": "psnr"}, "t")
    with pytest.raises(SpecError, match="unknown metric 'near_black_count'"):
        parse_spec(MetricSpec, {"name": "near_black_count"}, "t")


def test_weights_list_the_metrics_that_declare_them() -> None:
    from harness.weights import entry, needed_keys

    assert entry("inception").used_by == ("fid", "kid")
    assert entry("clip_vit_b32_openai").used_by == ("clip_score", "clip_score_all_pairs", "clip_t", "clip_i")
    assert entry("sd15:unet/weights").used_by == ("model:sd15",)
    assert needed_keys(["dino"], []) == ["dino_vits16/config", "dino_vits16/weights"]
    assert needed_keys(["face_distance"], [], "tiny") == ["mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"]


def test_reported_scale_must_be_a_display_of_the_metric(tmp_path: Path) -> None:
    from harness.analysis.reported import COLUMNS, read_file

    path = tmp_path / "deepfashion.csv"
    path.write_text(",".join(COLUMNS) + "\ndeepfashion,frozen,,fid,test,__all__,12.0,x100,no such scale\n")
    with pytest.raises(SpecError, match=rf"^{path}:2: .*scale 'x100' is not a display of metric 'fid'"):
        read_file(path)
    path.write_text(",".join(COLUMNS) + "\ndeepfashion,frozen,,psnr,test,__all__,12.0,raw,unknown\n")
    with pytest.raises(SpecError, match="metric 'psnr' is not declared"):
        read_file(path)
