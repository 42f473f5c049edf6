"""Damaged and unsupported model files get a clear error naming the problem."""
import numpy as np
import pytest
import tflite
from conftest import MAIN_MODEL
from tflite_builder import build, random_network

import mnq

DATA = MAIN_MODEL.read_bytes()


def write(tmp_path, data, name="m.tflite"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("cut", [0, 4, 8, 16, 100, 1000, len(DATA) // 3, len(DATA) // 2, len(DATA) - 2000,
                                 len(DATA) - 1])
def test_truncated_file(tmp_path, cut):
    with pytest.raises(mnq.ModelFormatError):
        mnq.load(write(tmp_path, DATA[:cut]))


def test_not_a_model(tmp_path):
    with pytest.raises(mnq.ModelFormatError, match="not a TFLite|neither a TFLite"):
        mnq.load(write(tmp_path, b"hello world, this is text\n" * 10))
    with pytest.raises(mnq.ModelFormatError, match="directory"):
        mnq.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        mnq.load(tmp_path / "missing.tflite")


def test_random_corruption_never_crashes(tmp_path):
    rng = np.random.default_rng(0)
    for trial in range(40):
        data = bytearray(DATA)
        for pos in rng.integers(8, 4096, 8):  # the table/vtable region: offsets and lengths
            data[pos] = rng.integers(0, 256)
        try:
            m = mnq.load(write(tmp_path, bytes(data)), num_threads=1)
        except (mnq.ModelFormatError, mnq.UnsupportedModelError):
            continue
        # survived parsing: it must still be a runnable network
        assert m.run(np.zeros(m.input_shape, np.uint8)).shape[0] == 1


def spec_with(rng, **change):
    spec = random_network(rng)
    spec["ops"][change.pop("index", 0)].update(change)
    return spec


@pytest.mark.parametrize("name,make,message", [
    ("add", lambda rng: dict(random_network(rng), ops=random_network(rng)["ops"][:2] + [dict(op="add")]),
     "ADD"),
    ("dilation", lambda rng: spec_with(rng, index=1, dilation=2), "dilation"),
    ("per_channel", lambda rng: spec_with(rng, w_quant=([0.01] * 8, [128] * 8)), "per channel"),
    ("tanh", lambda rng: spec_with(rng, act="TANH"), "TANH"),
    ("softmax_scale", lambda rng: spec_with(rng, index=-1, out_quant=(1 / 128, 0)), "1/256"),
])
def test_unsupported_models(tmp_path, name, make, message):
    rng = np.random.default_rng(1)
    with pytest.raises(mnq.UnsupportedModelError, match=message):
        mnq.load(write(tmp_path, build(make(rng), rng)))


def test_int8_input_and_two_subgraphs(tmp_path):
    rng = np.random.default_rng(2)
    with pytest.raises(mnq.UnsupportedModelError, match="INT8"):
        mnq.load(write(tmp_path, build(random_network(rng), rng, input_type=tflite.TensorType.INT8)))
    with pytest.raises(mnq.UnsupportedModelError, match="subgraphs"):
        mnq.load(write(tmp_path, build(random_network(rng), rng, subgraphs=2)))


def test_depth_multiplier_two(tmp_path):
    rng = np.random.default_rng(3)
    spec = random_network(rng)
    spec["ops"][1].update(out_c=16, depth_multiplier=2)
    with pytest.raises(mnq.UnsupportedModelError, match="depth multiplier"):
        mnq.load(write(tmp_path, build(spec, rng)))
