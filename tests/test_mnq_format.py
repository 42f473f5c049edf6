"""The .mnq file: lossless round trip from .tflite, and clear errors for damage."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ALL_MODELS, MAIN_MODEL, MODELS

import mnq
from mnq.mnq_format import HEADER_DTYPE, encode
from mnq.model import read_graph

TOOL = Path(__file__).resolve().parents[1] / "tools" / "extract_weights.py"


@pytest.mark.parametrize("model_path", ALL_MODELS, ids=lambda p: p.stem)
def test_tflite_to_mnq_gives_identical_outputs(tmp_path, model_path):
    out = tmp_path / "m.mnq"
    r = subprocess.run([sys.executable, str(TOOL), str(model_path), "-o", str(out),
                        "--labels", str(MODELS / "imagenet_labels.txt")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a, b = mnq.load(model_path, num_threads=2), mnq.load(out, num_threads=2)
    assert b.labels == (MODELS / "imagenet_labels.txt").read_text().splitlines()
    x = np.random.default_rng(0).integers(0, 256, (2,) + a.input_shape, dtype=np.uint8)
    for (name_a, ta), (name_b, tb) in zip(a.layer_outputs(x), b.layer_outputs(x)):
        assert name_a == name_b
        np.testing.assert_array_equal(ta, tb, err_msg=name_a)


@pytest.fixture(scope="module")
def mnq_bytes():
    return encode(read_graph(MAIN_MODEL))


def load_bytes(tmp_path, data):
    p = tmp_path / "x.mnq"
    p.write_bytes(data)
    return mnq.load(p)


def test_layout_is_aligned(mnq_bytes):
    header = np.frombuffer(mnq_bytes, HEADER_DTYPE, count=1)[0]
    assert header["file_size"] == len(mnq_bytes) and header["num_layers"] == 31
    graph = read_graph(MAIN_MODEL)
    assert sum(layer.weights.nbytes for layer in graph.layers if layer.weights is not None) < len(mnq_bytes)


@pytest.mark.parametrize("cut", [0, 7, 50, 96, 1000, -100, -1])
def test_truncated(tmp_path, mnq_bytes, cut):
    with pytest.raises(mnq.ModelFormatError, match="not an .mnq|truncated|TFLite"):
        load_bytes(tmp_path, mnq_bytes[:cut])


def test_tampered_bytes_fail_the_checksum(tmp_path, mnq_bytes):
    for pos in (100, 5000, len(mnq_bytes) // 2, len(mnq_bytes) - 1):
        data = bytearray(mnq_bytes)
        data[pos] ^= 0x01
        with pytest.raises(mnq.ModelFormatError, match="checksum"):
            load_bytes(tmp_path, bytes(data))


def test_wrong_version(tmp_path, mnq_bytes):
    data = bytearray(mnq_bytes)
    data[8] = 9
    with pytest.raises(mnq.ModelFormatError, match="version 9"):
        load_bytes(tmp_path, bytes(data))


def test_tool_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"nope" * 10)
    r = subprocess.run([sys.executable, str(TOOL), str(bad), "-o", str(tmp_path / "o.mnq")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "TFLite" in r.stderr and not (tmp_path / "o.mnq").exists()
    r = subprocess.run([sys.executable, str(TOOL), str(MAIN_MODEL), "-o", str(tmp_path / "o.mnq"),
                        "--labels", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "labels" in r.stderr


def test_tool_needs_tensorflow_only_for_modules(tmp_path, monkeypatch, capsys):
    from mnq.extract import main as extract

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as without the `tf` extra
    (tmp_path / "saved_model.pb").write_bytes(b"")
    (tmp_path / "tfhub_module.pb").write_bytes(b"\x08\x03")
    assert extract([str(tmp_path), "-o", str(tmp_path / "o.mnq")]) == 2
    assert "pip install tensorflow-cpu (or pip install '.[tf]'" in capsys.readouterr().err
    assert extract([str(MAIN_MODEL), "-o", str(tmp_path / "o.mnq")]) == 0
