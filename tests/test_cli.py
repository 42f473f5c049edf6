"""`python -m mnq` through a real subprocess, as a user runs it."""
import os
import subprocess
import sys

from conftest import MAIN_MODEL, SHARED

SAMPLES = SHARED / "images" / "samples"


def mnq_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mnq", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_classify_readme_example():
    r = mnq_cli("classify", SAMPLES / "grace_hopper.bmp", "--model", MAIN_MODEL)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith("grace_hopper.bmp") and len(lines) == 6
    assert "military uniform" in lines[1]


def test_classify_reports_bad_files_and_keeps_going(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    r = mnq_cli("classify", broken, SAMPLES / "hot_dog.jpg", "--model", MAIN_MODEL, "--top-k", "1",
                env={"MNQ_ISA": "scalar"})
    assert r.returncode == 1
    assert "broken.jpg" in r.stderr and "hotdog" in r.stdout


def test_model_from_environment_and_missing_model():
    r = mnq_cli("classify", SAMPLES / "cat.bmp", "--top-k", "2", env={"MNQ_MODEL": str(MAIN_MODEL)})
    assert r.returncode == 0 and "cat" in r.stdout.lower()
    env = {k: v for k, v in os.environ.items() if k != "MNQ_MODEL"}
    r = subprocess.run([sys.executable, "-m", "mnq", "classify", str(SAMPLES / "cat.bmp")], capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode != 0 and "--model" in r.stderr


def test_bad_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage" * 100)
    r = mnq_cli("classify", SAMPLES / "cat.bmp", "--model", bad)
    assert r.returncode == 2 and "TFLite" in r.stderr and "Traceback" not in r.stderr


def test_info_and_profile():
    r = mnq_cli("info", "--model", MAIN_MODEL)
    assert r.returncode == 0 and "cpu_features" in r.stdout and "Conv2d_13_pointwise" in r.stdout
    r = mnq_cli("profile", "--model", MAIN_MODEL, "--repeats", "2", "--threads", "1")
    assert r.returncode == 0 and "total" in r.stdout
