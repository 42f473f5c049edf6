"""The `mnq` command line through a real subprocess, as a user runs it."""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import IMAGES, MAIN_MODEL, SHARED, reference

SAMPLES = SHARED / "images" / "samples"
LABELS_CSV = IMAGES / "labels.csv"
README = Path(__file__).resolve().parents[1] / "README.md"


def mnq_cli(*args, env=None, unset=(), command=(sys.executable, "-m", "mnq")):
    """Run mnq with this environment (so PYTHONPATH reaches the mnq under test), plus env, minus unset."""
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**environment, **(env or {})})


def no_traceback(r):
    return "Traceback" not in r.stderr


# ------------------------------------------------------------------ classify

def test_classify_readme_example():
    r = mnq_cli("classify", SAMPLES / "grace_hopper.bmp", "--model", MAIN_MODEL)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith("grace_hopper.bmp") and len(lines) == 6
    assert "military uniform" in lines[1]
    assert "\n".join(lines[1:]) in README.read_text(), "README's example output is out of date"


def make_messy_folder(root: Path) -> tuple:
    """Good images among corrupt, empty, non-image and unreadable files; returns (good, bad) paths."""
    nested = root / "nested" / "deeper"
    nested.mkdir(parents=True)
    good = [root / "a_cat.bmp", root / "c_hot_dog.jpg", nested / "grace.bmp", nested / "z_cat.png"]
    shutil.copy(SAMPLES / "cat.bmp", good[0])
    shutil.copy(SAMPLES / "hot_dog.jpg", good[1])
    shutil.copy(SAMPLES / "grace_hopper.bmp", good[2])
    from PIL import Image
    Image.open(SAMPLES / "cat.bmp").save(good[3])
    bad = [root / "b_empty.jpg", root / "d_corrupt.jpg", root / "e_text.png", nested / "f_dangling.jpg"]
    bad[0].write_bytes(b"")
    bad[1].write_bytes(SAMPLES.joinpath("hot_dog.jpg").read_bytes()[:2000])  # cut short
    bad[2].write_text("this is not a picture")
    bad[3].symlink_to(root / "deleted.jpg")
    if os.geteuid() != 0:  # root reads anything, so this one only counts for other users
        unreadable = root / "g_unreadable.jpg"
        shutil.copy(SAMPLES / "hot_dog.jpg", unreadable)
        unreadable.chmod(0)
        bad.append(unreadable)
    os.mkfifo(root / "h_fifo.jpg")  # opening it would block forever: must be refused, not read
    bad.append(root / "h_fifo.jpg")
    (root / "notes.txt").write_text("not an image, and not named like one")
    return sorted(map(str, good)), sorted(map(str, bad))


def test_messy_folder_json_lines_loses_nothing(tmp_path):
    good, bad = make_messy_folder(tmp_path)
    r = mnq_cli("classify", tmp_path, "--model", MAIN_MODEL, "--format", "json", "--batch-size", "3",
                "--top-k", "2")
    assert r.returncode == 1 and no_traceback(r), r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    everything = good + bad
    walk_order = sorted(p for p in everything if "nested" not in p) + sorted(p for p in everything if "nested" in p)
    assert [rec["file"] for rec in records] == walk_order
    assert {rec["file"] for rec in records if "top_k" in rec} == set(good)
    assert {rec["file"] for rec in records if "error" in rec} == set(bad)
    assert all(len(rec["top_k"]) == 2 for rec in records if "top_k" in rec)
    hot_dog = next(rec for rec in records if rec["file"].endswith("c_hot_dog.jpg"))
    assert hot_dog["top_k"][0]["label"].startswith("hotdog")
    assert "notes.txt" in r.stderr  # left out, but said so


def test_messy_folder_text_reports_each_bad_file_on_stderr(tmp_path):
    good, bad = make_messy_folder(tmp_path)
    r = mnq_cli("classify", tmp_path, "--model", MAIN_MODEL, "--top-k", "1", "--progress")
    assert r.returncode == 1 and no_traceback(r), r.stderr
    assert [line for line in r.stdout.splitlines() if not line.startswith(" ")] == good
    for path in bad:
        assert f"{path}: error:" in r.stderr
    assert f"{len(good)} images classified, {len(bad)} failed, 1 skipped" in r.stderr
    assert "img/s" in r.stderr or "it/s" in r.stderr or "100%" in r.stderr  # the tqdm bar


def test_csv_to_output_file(tmp_path):
    out = tmp_path / "results.csv"
    missing = tmp_path / "missing.jpg"
    r = mnq_cli("classify", SAMPLES / "cat.bmp", missing, "--model", MAIN_MODEL, "--format", "csv",
                "--output", out, "--top-k", "3")
    assert r.returncode == 1 and r.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [row["rank"] for row in rows] == ["1", "2", "3", ""]
    assert rows[0]["label"] == "Egyptian cat" and float(rows[0]["probability"]) > 0.5
    assert rows[3]["file"] == str(missing) and rows[3]["error"] == "no such file or directory"


def test_model_from_environment_and_missing_model(tmp_path):
    r = mnq_cli("classify", SAMPLES / "cat.bmp", "--top-k", "2", env={"MNQ_MODEL": str(MAIN_MODEL)})
    assert r.returncode == 0 and "cat" in r.stdout.lower()
    r = mnq_cli("classify", SAMPLES / "cat.bmp", env={"MNQ_CACHE_DIR": str(tmp_path)}, unset=("MNQ_MODEL",))
    assert r.returncode == 2 and no_traceback(r)
    assert "mnq fetch" in r.stderr and "--model" in r.stderr and str(tmp_path) in r.stderr


def test_bad_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage" * 100)
    r = mnq_cli("classify", SAMPLES / "cat.bmp", "--model", bad)
    assert r.returncode == 2 and "TFLite" in r.stderr and no_traceback(r)
    r = mnq_cli("classify", SAMPLES / "cat.bmp", "--model", tmp_path / "absent.tflite")
    assert r.returncode == 2 and "No such file" in r.stderr and no_traceback(r)


@pytest.mark.parametrize("args, message", [
    (("classify", "x.jpg", "--top-k", "0"), "must be at least 1"),
    (("classify", "x.jpg", "--batch-size", "many"), "not a whole number"),
    (("classify", "x.jpg", "--format", "xml"), "invalid choice"),
    (("classify",), "required"),
    (("eval", "."), "--labels"),
    (("frobnicate",), "invalid choice"),
])
def test_usage_errors(args, message):
    r = mnq_cli(*args)
    assert r.returncode == 2 and message in r.stderr and no_traceback(r)


@pytest.mark.parametrize("command", [(), ("classify",), ("eval",), ("info",), ("fetch",), ("extract",), ("profile",),
                                     ("benchmark",)])
def test_help_everywhere(command):
    r = mnq_cli(*command, "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: mnq")


def test_console_script():
    script = Path(sys.executable).with_name("mnq")
    if not script.exists():
        pytest.skip("mnq is not installed as a console script in this environment")
    r = mnq_cli("--version", command=(str(script),))
    assert r.returncode == 0 and r.stdout.startswith("mnq ")


# ------------------------------------------------------------------ eval

def subset_csv(tmp_path, count=12) -> Path:
    lines = LABELS_CSV.read_text().splitlines()
    path = tmp_path / "subset.csv"
    path.write_text("\n".join(lines[: count + 1]) + "\n")
    return path


def test_eval_matches_the_tflite_reference(tmp_path):
    labels = subset_csv(tmp_path)
    r = mnq_cli("eval", IMAGES, "--labels", labels, "--model", MAIN_MODEL, "--format", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["images"] == 12 and report["failed"] == [] and report["images_per_second"] > 0

    # the same numbers, computed here from TFLite's reference interpreter on the same inputs
    from mnq.evaluate import ranked
    from mnq.preprocess import load_image
    rows = list(csv.DictReader(labels.open()))
    ref = reference(MAIN_MODEL)
    outputs = np.stack([ref.tensors(load_image(IMAGES / row["file"], (160, 160)))["MobilenetV1/Predictions/Reshape_1"]
                        .reshape(-1) for row in rows])
    truth = np.array([int(row["label"]) for row in rows])
    top1 = np.mean(ranked(outputs, 1)[:, 0] == truth)
    top5 = np.mean((ranked(outputs, 5) == truth[:, None]).any(axis=1))
    assert report["reference"] == {"top1": top1, "top5": top5, "identical_outputs": 1.0}
    assert (report["top1"], report["top5"]) == (top1, top5)


def test_eval_text_reports_missing_images_and_goes_on(tmp_path):
    labels = subset_csv(tmp_path, count=3)
    labels.write_text(labels.read_text() + "not_there.JPEG,1,n01440764,tench\n")
    r = mnq_cli("eval", IMAGES, "--labels", labels, "--model", MAIN_MODEL, "--no-reference")
    assert r.returncode == 1 and no_traceback(r)
    assert "not_there.JPEG: error: no such file or directory" in r.stderr
    assert "3 evaluated" in r.stdout and "top-1" in r.stdout and "images/s" in r.stdout
    assert "disabled with --no-reference" in r.stdout


@pytest.mark.parametrize("content, message", [
    ("name,class\na.jpg,1\n", "needs a header row with columns file, label"),
    ("file,label\na.jpg,tench\n", "line 2: label 'tench' is not a class number"),
    ("file,label\na.jpg,1001\n", "outside the model's classes 0..1000"),
    ("file,label\n", "no rows"),
])
def test_eval_bad_labels_csv(tmp_path, content, message):
    labels = tmp_path / "labels.csv"
    labels.write_text(content)
    r = mnq_cli("eval", IMAGES, "--labels", labels, "--model", MAIN_MODEL)
    assert r.returncode == 2 and message in r.stderr and no_traceback(r), r.stderr


# ------------------------------------------------------------------ info, profile

def test_info_summarizes_the_model():
    r = mnq_cli("info", "--model", MAIN_MODEL)
    assert r.returncode == 0 and "cpu_features" in r.stdout and "Conv2d_13_pointwise" in r.stdout
    assert "31 layers, 290.7 M MACs, 4.22 M parameters" in r.stdout


def test_info_without_a_model_says_how_to_get_one(tmp_path):
    r = mnq_cli("info", env={"MNQ_CACHE_DIR": str(tmp_path)}, unset=("MNQ_MODEL",))
    assert r.returncode == 0 and "version" in r.stdout and "mnq fetch" in r.stdout


def test_profile():
    r = mnq_cli("profile", "--model", MAIN_MODEL, "--repeats", "2", "--threads", "1")
    assert r.returncode == 0 and "total" in r.stdout
    assert "GMAC/s" in r.stdout and "%peak" in r.stdout
