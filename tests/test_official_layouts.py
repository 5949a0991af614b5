"""Real readers on real-format files: each test writes a dataset in its official extracted layout (CIFAR-10's
python batches, COCO 2014, DeepFashion-MultiModal, the DreamBooth repository), points ``--data-root`` at it on
the tiny profile, and checks that the run's prompts, ids, images and data fingerprint come from those files.
Reader errors (bad pickles, bad JPEGs) are one line naming the file, exit 3, before anything loads."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness import data
from harness.cli import app
from harness.data import cifar10, dreambooth
from harness.data.files import files_fingerprint
from harness.errors import DataMissingError
from harness.plan import build_plan
from harness.runner import run
from harness.store import Store

cli = CliRunner()


def _jpeg(path: Path, size: tuple[int, int], colour: tuple[int, int, int], seed: int = 0, **save: object) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.integers(-20, 21, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=95, **save)


# --- CIFAR-10 -------------------------------------------------------------------------------------

def _cifar(root: Path, per_batch: int = 20) -> tuple[Path, np.ndarray]:
    """cifar-10-batches-py as the python version ships it (protocol 2 pickles, bytes keys)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    rows = rng.integers(0, 256, (5 * per_batch, 3072), dtype=np.uint8)
    for i in range(5):
        chunk = rows[i * per_batch:(i + 1) * per_batch]
        batch = {b"batch_label": f"training batch {i + 1} of 5".encode(), b"labels": [int(j % 10) for j in
                 range(per_batch)], b"data": chunk, b"filenames": [b"x.png"] * per_batch}
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": rows[:2], b"labels": [0, 1]}, protocol=2))
    meta = {b"label_names": [n.encode() for n in cifar10.CLASS_NAMES], b"num_cases_per_batch": per_batch,
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder, rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def test_cifar_tiny_reads_the_real_batches_at_either_level(tmp_path: Path) -> None:
    folder, images = _cifar(tmp_path / "data")
    for root in (tmp_path / "data", folder):
        plan = data.bind(build_plan("cifar_alignment", "xattn_ft", "tiny", data_root=root))
        dataset = data.training_set(plan)
        assert len(dataset) == 64
        written = {image.tobytes() for image in images}
        assert all(image.tobytes() in written for image in dataset.images)
        assert plan.data_fingerprint == files_fingerprint(tmp_path / "data", cifar10.files(folder))
    synthetic = data.bind(build_plan("cifar_alignment", "xattn_ft", "tiny"))
    assert synthetic.data_fingerprint.startswith("files:6:") and synthetic.data_fingerprint != plan.data_fingerprint


def test_other_data_is_a_new_run_the_same_data_is_skipped(tmp_path: Path) -> None:
    folder, _ = _cifar(tmp_path / "a")
    store = Store(tmp_path / "bench.duckdb")
    first = run(build_plan("cifar_alignment", "xattn_ft", "tiny", data_root=tmp_path / "a"), store,
                tmp_path / "runs")
    assert first.status == "completed"
    recorded = json.loads((first.run_dir / "plan.json").read_text())
    assert recorded["data_root"] == str(tmp_path / "a") and recorded["data_fingerprint"].startswith("files:6:")
    assert store.run_row(first.run_id)["plan_hash"] == data.bind(
        build_plan("cifar_alignment", "xattn_ft", "tiny", data_root=tmp_path / "a")).plan_hash
    # the frozen base scored by CLIP on template prompts reads no data: its fingerprint says so
    frozen = data.bind(build_plan("cifar_alignment", "frozen", "tiny", data_root=tmp_path / "a"))
    assert frozen.data_fingerprint == "none"
    copy = tmp_path / "copy" / "cifar-10-batches-py"
    copy.mkdir(parents=True)
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    same = run(build_plan("cifar_alignment", "xattn_ft", "tiny", data_root=copy), store, tmp_path / "runs")
    assert same.status == "skipped"  # an identical copy elsewhere is the same data
    batch = pickle.loads((copy / "data_batch_3").read_bytes(), encoding="bytes")
    batch[b"data"] = 255 - batch[b"data"]
    (copy / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    other = run(build_plan("cifar_alignment", "xattn_ft", "tiny", data_root=copy), store, tmp_path / "runs")
    assert other.status == "completed" and other.run_id != first.run_id


def test_bench_data_env_is_used_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cifar(tmp_path)
    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    plan = data.bind(build_plan("cifar_alignment", "xattn_ft", "tiny"))
    assert plan.data_root == str(tmp_path) and plan.data_fingerprint.startswith("files:6:")


def _cli_error(args: list[str]) -> str:
    result = cli.invoke(app, args)
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("payload", ["truncated", "garbage", "not_a_dict", "crafted"])
def test_bad_cifar_pickles_are_one_line_and_never_execute(tmp_path: Path, payload: str) -> None:
    folder, _ = _cifar(tmp_path)
    marker = tmp_path / "executed"
    bad = folder / "data_batch_2"
    if payload == "truncated":
        bad.write_bytes(bad.read_bytes()[:300])
    elif payload == "garbage":
        bad.write_bytes(os.urandom(2048))
    elif payload == "not_a_dict":
        bad.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    else:
        class Exploit:
            def __reduce__(self) -> tuple:
                return (os.system, (f"touch {marker}",))

        bad.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}, protocol=2))
    line = _cli_error(["run", "-t", "cifar_alignment", "-m", "xattn_ft", "--profile", "tiny", "--data-root",
                       str(tmp_path), "--db", str(tmp_path / "db.duckdb")])
    assert "data_batch_2" in line and "not a CIFAR-10 python batch" in line
    assert not marker.exists()
    with pytest.raises(DataMissingError, match="data_batch_2"):
        cifar10.read_train(folder)
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()  # nothing stored: the data failed before models loaded


# --- COCO 2014 ------------------------------------------------------------------------------------

def _coco(root: Path, count: int = 6) -> dict[int, str]:
    """annotations/captions_train2014.json + train2014/COCO_train2014_%012d.jpg, as the zips extract."""
    images, annotations, first = [], [], {}
    for k in range(count):
        image_id = 1000 + 37 * k
        name = f"COCO_train2014_{image_id:012d}.jpg"
        width, height = (64, 48) if k != 2 else (40, 60)  # one portrait image, dropped by the ratio filter
        _jpeg(root / "train2014" / name, (width, height), (30 * k, 100, 200 - 20 * k), seed=k)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for j, text in enumerate((f"a real caption number {k}", f"another caption {k}")):
            annotations.append({"id": 50000 + 10 * k + (1 - j), "image_id": image_id, "caption": f" {text} "})
        first[image_id] = f"another caption {k}"  # the lower annotation id wins
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "captions_train2014.json").write_text(json.dumps(
        {"info": {}, "licenses": [], "images": images, "annotations": annotations}))
    return first


def test_coco_extracted_at_the_root_feeds_prompts_ids_and_references(tmp_path: Path) -> None:
    captions = _coco(tmp_path / "coco")
    store = Store(tmp_path / "bench.duckdb")
    outcome = run(build_plan("coco_generalization", "frozen", "tiny", data_root=tmp_path / "coco"), store,
                  tmp_path / "runs")
    assert outcome.status == "completed", outcome.error
    samples = store.samples(outcome.run_id)
    assert len(samples) == 4
    for row in samples:
        image_id = int(row["prompt_id"].split(".")[1])
        assert row["prompt"] == captions[image_id] and image_id != 1000 + 37 * 2
    plan = data.bind(build_plan("coco_generalization", "frozen", "tiny", data_root=tmp_path / "coco"))
    refs = data.load_references(plan)
    assert [r.shape for r in refs.images] == [(24, 32, 3)] * 4
    (tmp_path / "coco").rename(tmp_path / "coco2014")
    one_up = data.bind(build_plan("coco_generalization", "frozen", "tiny", data_root=tmp_path))
    assert one_up.data_fingerprint == plan.data_fingerprint  # same files, found one level up


# --- DeepFashion-MultiModal -----------------------------------------------------------------------

def _deepfashion(root: Path, count: int = 10) -> dict[str, str]:
    captions = {}
    for k in range(count):
        name = f"{'MEN' if k % 2 else 'WOMEN'}-Dresses-id_{k:08d}-01_1_front.jpg"
        _jpeg(root / "images" / name, (40, 64), (200, 20 * k, 90), seed=k)
        captions[name] = f"The person wears garment number {k}."
    (root / "captions.json").write_text(json.dumps(captions))
    return captions


def test_deepfashion_extracted_at_the_root(tmp_path: Path) -> None:
    captions = _deepfashion(tmp_path / "DeepFashion-MultiModal-main")
    root = tmp_path / "DeepFashion-MultiModal-main"
    store = Store(tmp_path / "bench.duckdb")
    outcome = run(build_plan("deepfashion", "frozen", "tiny", data_root=root), store, tmp_path / "runs")
    assert outcome.status == "completed", outcome.error
    samples = store.samples(outcome.run_id)
    by_id = {Path(name).stem: text for name, text in captions.items()}
    assert samples and all(row["prompt"] == by_id[row["prompt_id"].split(".", 1)[1]] for row in samples)
    plan = data.bind(build_plan("deepfashion", "frozen", "tiny", data_root=root))
    assert plan.data_fingerprint.startswith("files:11:")


# --- DreamBooth -----------------------------------------------------------------------------------

OBJECT_PROMPTS = ["a {0} {1} in the jungle", "a {0} {1} in the snow", "a {0} {1} on the beach",
                  "a {0} {1} on a cobblestone street"]
LIVE_PROMPTS = ["a {0} {1} wearing a red hat", "a {0} {1} wearing a santa hat", "a {0} {1} wearing a rainbow scarf",
                "a {0} {1} in a chef outfit"]


def _dreambooth(clone: Path) -> None:
    """The google/dreambooth repository layout: dataset/<subject>/NN.jpg + dataset/prompts_and_classes.txt."""
    subjects = [("backpack", "backpack"), ("cat2", "cat"), ("bear_plushie", "stuffed animal")]
    for k, (name, _) in enumerate(subjects):
        for view in range(4):
            _jpeg(clone / "dataset" / name / f"{view:02d}.jpg", (48, 40), (40 + 60 * k, 90, 30 * view), seed=view)
    lines = ["Classes", "subject_name,class", *(f"{n},{c}" for n, c in subjects), "", "", "Prompts",
             "Object Prompts", "prompt_list = ["]
    lines += [f"'{p}'.format(unique_token, class_token)," for p in OBJECT_PROMPTS] + ["]", "", "Live Subject Prompts",
                                                                                     "prompt_list = ["]
    lines += [f"'{p}'.format(unique_token, class_token)," for p in LIVE_PROMPTS] + ["]"]
    (clone / "dataset" / "prompts_and_classes.txt").write_text("\n".join(lines) + "\n")


def test_dreambooth_real_subjects_and_prompt_lists_through_the_cli(tmp_path: Path) -> None:
    _dreambooth(tmp_path / "dreambooth")
    db = tmp_path / "bench.duckdb"
    result = cli.invoke(app, ["run", "-t", "dreambooth_subjects", "-m", "frozen", "--profile", "tiny",
                              "--data-root", str(tmp_path / "dreambooth"), "--db", str(db)])
    assert result.exit_code == 0, result.output
    store = Store(db)
    (row,) = store.runs("dreambooth_subjects")
    run_id = row["run_id"]
    samples = store.samples(run_id)
    assert {row["grp"] for row in samples} == {"backpack", "cat2"}  # the first two subjects of the file
    diverse = {row["prompt"] for row in samples if row["prompt_set"] == "diverse"}
    assert diverse == {p.format("sks", "backpack") for p in OBJECT_PROMPTS[:3]} | {
        p.format("sks", "cat") for p in LIVE_PROMPTS[:3]}
    plan = data.bind(build_plan("dreambooth_subjects", "frozen", "tiny", data_root=tmp_path / "dreambooth"))
    refs = data.load_references(plan)
    assert refs.groups == ["backpack"] * 4 + ["cat2"] * 4
    assert abs(float(refs.images[0][..., 0].mean()) - 40) < 15 and abs(float(refs.images[4][..., 0].mean()) - 100) < 15
    assert [s.live for s in plan.task.data.subjects] == [False, True]
    assert plan.data_fingerprint.startswith("files:9:")  # the file + 4 photos of each of the two subjects


def test_dreambooth_classes_file_of_the_release_has_15_class_nouns() -> None:
    import yaml

    spec = yaml.safe_load((Path(__file__).parents[1] / "tasks" / "dreambooth_subjects.yaml").read_text())
    assert len(spec["data"]["subjects"]) == 30 and len({s["class_noun"] for s in spec["data"]["subjects"]}) == 15
    doc = (Path(__file__).parents[1] / "docs" / "tasks-dreambooth.md").read_text()
    assert "16 class nouns" not in doc


# --- EXIF orientation and bad JPEGs ---------------------------------------------------------------

def _oriented_photo(path: Path) -> None:
    """Stored 96x48 (left half red, right half blue), tagged orientation 6: upright it is 48x96, red on top."""
    from PIL import Image

    pixels = np.zeros((48, 96, 3), dtype=np.uint8)
    pixels[:, :48] = (220, 20, 20)
    pixels[:, 48:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95, exif=exif)


def test_orientation_6_photo_is_read_upright_by_every_image_reader(tmp_path: Path) -> None:
    _oriented_photo(tmp_path / "person" / "phone.jpg")
    plan = data.bind(build_plan("face_identity", "flux_lora", "tiny", data_root=tmp_path))
    ref = data.load_references(plan).images[0].astype(int)
    assert ref[2, 16, 0] > 150 and ref[2, 16, 2] < 100  # top: red
    assert ref[29, 16, 2] > 150 and ref[29, 16, 0] < 100  # bottom: blue
    item = data.training_set(plan)[0]["pixel_values"]
    assert float(item[0, 2, 16]) > 0.3 and float(item[2, 29, 16]) > 0.3
    _oriented_photo(tmp_path / "dreambooth" / "dataset" / "backpack" / "00.jpg")
    _oriented_photo(tmp_path / "dreambooth" / "dataset" / "cat" / "00.jpg")
    (tmp_path / "dreambooth" / "dataset" / "prompts_and_classes.txt").write_text(
        "Classes\nsubject_name,class\nbackpack,backpack\ncat,cat\n")
    square = dreambooth.read_subject(tmp_path / "dreambooth" / "dataset", "backpack", 32, "bicubic")[0].astype(int)
    assert square[2, 16, 0] > 150 and square[29, 16, 2] > 150
    garment = tmp_path / "garment_root"
    _oriented_photo(garment / "garment" / "garment.jpg")
    gplan = data.bind(build_plan("garment", "frozen", "tiny", data_root=garment))
    gref = data.load_references(gplan).images[0].astype(int)
    assert gref[1, gref.shape[1] // 2, 0] > 150 and gref[-2, gref.shape[1] // 2, 2] > 150


@pytest.mark.parametrize("kind", ["truncated", "empty", "random"])
def test_bad_jpegs_are_one_line_naming_the_file(tmp_path: Path, kind: str) -> None:
    for k in range(3):
        _jpeg(tmp_path / "person" / f"{k:02d}.jpg", (64, 64), (180, 140, 120), seed=k)
    bad = tmp_path / "person" / "01.jpg"
    if kind == "truncated":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    elif kind == "empty":
        bad.write_bytes(b"")
    else:
        bad.write_bytes(os.urandom(3000))
    line = _cli_error(["run", "-t", "face_identity", "-m", "flux_lora", "--profile", "tiny", "--data-root",
                       str(tmp_path), "--db", str(tmp_path / "db.duckdb")])
    assert "01.jpg" in line and "not a readable image" in line
    assert not (tmp_path / "runs").exists()


def test_bad_dreambooth_photo_is_one_line(tmp_path: Path) -> None:
    _dreambooth(tmp_path)
    (tmp_path / "dataset" / "cat2" / "02.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    line = _cli_error(["run", "-t", "dreambooth_subjects", "-m", "frozen", "--profile", "tiny", "--data-root",
                       str(tmp_path), "--db", str(tmp_path / "db.duckdb")])
    assert "cat2/02.jpg" in line and "not a readable image" in line
