"""Hostile model files, shapes and parameters: each is refused with a clear error before
anything large is allocated, never a crash, an overflow or a silent wrong answer.
Every test here is a regression test for a finding (docs/robustness.md lists them)."""
import io
import math
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest
from conftest import MODELS
from harness import layer_desc
from PIL import Image
from tflite_builder import build, random_network

import mnq
from mnq import _core, mnq_format, plan
from mnq.graph import Graph, Layer, Quant
from mnq.model import Model
from mnq.pipeline import decode as decode_image_file
from mnq.preprocess import load_image

SMALL_MODEL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
HUGE = 1 << 22  # each dimension passes the loaders' per-dimension cap (2^24); the product is 2^66


def write(tmp_path, data, name="m.tflite"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---- the C library's validation (net.c validate()) ----

def test_c_rejects_tensor_whose_size_overflows():
    # (2^22)^3 bytes wrapped a signed 64-bit product to 0 and passed the 1 GiB cap
    d = layer_desc("softmax", (HUGE, HUGE, HUGE), (HUGE, HUGE, HUGE), softmax=(1.0, 0.1))
    with pytest.raises(ValueError, match="larger than 1 GiB"):
        _core.Net([d], "scalar")
    d = layer_desc("reshape", (HUGE, HUGE, 1 << 20), (1, 1, 16))
    with pytest.raises(ValueError, match="larger than 1 GiB"):
        _core.Net([d], "scalar")


@pytest.mark.parametrize("op", ["conv", "pointwise", "depthwise"])
def test_c_rejects_bias_that_overflows_the_accumulator(op):
    shape = (4, 4, 8)
    k = (3, 3) if op != "pointwise" else (1, 1)
    pad = (1, 1) if op != "pointwise" else (0, 0)
    d = layer_desc(op, shape, shape, k=k, pad=pad, bias=np.full(8, 2**31 - 1000, np.int32))
    with pytest.raises(ValueError, match="accumulator could overflow"):
        _core.Net([d], "scalar")
    d["bias"] = np.full(8, -(2**31), np.int32)
    with pytest.raises(ValueError, match="accumulator could overflow"):
        _core.Net([d], "scalar")
    d["bias"] = np.full(8, 2**31 - 1 - 9 * 8 * 255 * 255, np.int32)  # the largest that cannot overflow
    _core.Net([d], "scalar")


def test_c_rejects_too_many_taps():
    d = layer_desc("pointwise", (1, 1, 40000), (1, 1, 1))  # 40000 * 255^2 > 2^31
    with pytest.raises(ValueError, match="too many taps"):
        _core.Net([d], "scalar")


def test_c_rejects_pooling_window_whose_sum_overflows():
    d = layer_desc("avgpool", (4096, 4096, 1), (1, 1, 1), k=(4096, 4096))
    with pytest.raises(ValueError, match="pooling window too large"):
        _core.Net([d], "scalar")


# ---- graphs (any loader) ----

def graph_of(*layers, input_shape=None):
    return Graph(layers=list(layers), input_name="input", input_shape=input_shape or layers[0].in_shape,
                 input_quant=Quant(1 / 128, 128), source="hostile")


Q = Quant(0.05, 10)


@pytest.mark.parametrize("layer,message", [
    (Layer("softmax", "s", (HUGE, HUGE, HUGE), (HUGE, HUGE, HUGE), Q, Quant(1 / 256, 0)), "larger than 1 GiB"),
    (Layer("reshape", "r", (1 << 25, 1, 1), (1, 1, 1 << 25), Q, Q), "invalid tensor shape"),
    (Layer("avgpool", "p", (4, 4, 8), (1, 1, 8), Q, Quant(1e-40, 10), kernel=(4, 4)), "scale"),
    (Layer("avgpool", "p", (4, 4, 8), (1, 1, 8), Q, Quant(float("nan"), 10), kernel=(4, 4)), "scale"),
    (Layer("avgpool", "p", (4, 4, 8), (1, 1, 8), Q, Quant(0.05, 300), kernel=(4, 4)), "zero point"),
    (Layer("avgpool", "p", (4, 4, 8), (1, 1, 8), Q, Quant(0.05, 2**40), kernel=(4, 4)), "zero point"),
    (Layer("softmax", "s", (1, 1, 8), (1, 1, 8), Q, Quant(1 / 256, 0), beta=float("nan")), "beta"),
    (Layer("softmax", "s", (1, 1, 8), (1, 1, 8), Q, Quant(1 / 256, 0), beta=-1.0), "beta"),
    (Layer("avgpool", "p", (4, 4, 8), (1, 1, 8), Q, Q, kernel=(4, 4), stride=(2**31, 1)), "stride"),
])
def test_hostile_layer_parameters_are_refused(layer, message):
    # before: OverflowError / ValueError from float maths, or C-level wrap-around
    with pytest.raises(mnq.UnsupportedModelError, match=message):
        Model(graph_of(layer), num_threads=1)


def test_input_shape_must_match_first_layer():
    layer = Layer("avgpool", "p", (4, 4, 8), (1, 1, 8), Q, Q, kernel=(4, 4))
    with pytest.raises(mnq.ModelFormatError, match="input shape"):
        Model(graph_of(layer, input_shape=(4, 4, 9)), num_threads=1)


def test_c_validation_failure_is_a_model_format_error():
    w = np.zeros((1, 1, 1, 40000), np.uint8)
    layer = Layer("conv", "c", (1, 1, 40000), (1, 1, 1), Q, Q, weights=w, weight_quant=Q, bias=None)
    with pytest.raises(mnq.ModelFormatError, match="too many taps"):
        Model(graph_of(layer), num_threads=1)


# ---- .tflite files ----

def test_tflite_huge_declared_shape_rejected_before_allocation(tmp_path):
    rng = np.random.default_rng(0)
    data = build(random_network(rng), rng, shapes={0: [1, HUGE, HUGE, 3]})
    with pytest.raises(mnq.ModelFormatError, match="invalid shape"):
        mnq.load(write(tmp_path, data))


def test_tflite_bias_overflowing_the_accumulator(tmp_path):
    rng = np.random.default_rng(0)
    spec = random_network(rng)
    spec["ops"][0]["bias"] = 2**31 - 100
    with pytest.raises(mnq.ModelFormatError, match="accumulator could overflow"):
        mnq.load(write(tmp_path, build(spec, rng)))


def test_tflite_denormal_output_scale(tmp_path):
    # 6 / 1e-40 is inf in float32: int(inf) raised OverflowError from the planner
    rng = np.random.default_rng(0)
    spec = random_network(rng)
    spec["ops"][0]["out_quant"] = (1e-40, 0)
    with pytest.raises(mnq.UnsupportedModelError, match="scale"):
        mnq.load(write(tmp_path, build(spec, rng)))


def test_tflite_zero_point_out_of_range(tmp_path):
    rng = np.random.default_rng(0)
    spec = random_network(rng)
    spec["ops"][5]["out_quant"] = (0.05, 1 << 40)  # the average pool: no weights to check
    with pytest.raises(mnq.UnsupportedModelError, match="zero point"):
        mnq.load(write(tmp_path, build(spec, rng)))


def zip_with(name, payload, encrypted=False):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, payload)
    raw = bytearray(buf.getvalue())
    if encrypted:  # set the 'encrypted' flag in the local and central headers
        for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            i = raw.index(sig) + at
            raw[i] |= 1
    return bytes(raw)


def test_metadata_zip_encrypted_or_bomb_is_ignored(tmp_path):
    base = SMALL_MODEL.read_bytes()
    # before: RuntimeError("File labels.txt is encrypted") escaped mnq.load
    m = mnq.load(write(tmp_path, base + zip_with("labels.txt", "a\n" * 1001, encrypted=True)), num_threads=1)
    assert m.labels is None
    # 64 MiB of labels in ~64 KiB: not inflated at all
    m = mnq.load(write(tmp_path, base + zip_with("labels.txt", b"\n" * (64 << 20))), num_threads=1)
    assert m.labels is None


# ---- .mnq files (hostile but with a valid checksum) ----

def fix_crc(data):
    data = bytearray(data)
    at = mnq_format.HEADER_DTYPE.fields["crc32"][1]
    data[at:at + 4] = b"\0\0\0\0"
    data[at:at + 4] = struct.pack("<I", zlib.crc32(data))
    return bytes(data)


def small_graph():
    return mnq.model.read_graph(SMALL_MODEL)


def test_mnq_undecodable_labels(tmp_path):
    data = bytearray(mnq_format.encode(small_graph(), labels=["a", "b"]))
    h = np.frombuffer(bytes(data), mnq_format.HEADER_DTYPE, count=1)[0]
    off = int(h["labels_off"])
    data[off:off + 3] = b"\xff\xfe\n"
    with pytest.raises(mnq.ModelFormatError, match="UnicodeDecodeError"):  # before: the raw UnicodeDecodeError
        mnq.load(write(tmp_path, fix_crc(data), "m.mnq"))


def test_mnq_input_shape_disagrees_with_first_layer(tmp_path):
    data = bytearray(mnq_format.encode(small_graph()))
    at = mnq_format.HEADER_DTYPE.fields["input_h"][1]
    data[at:at + 4] = struct.pack("<I", 4096)
    with pytest.raises(mnq.ModelFormatError, match="input shape"):
        mnq.load(write(tmp_path, fix_crc(data), "m.mnq"))


def test_mnq_huge_layer_dims(tmp_path, monkeypatch):
    data = bytearray(mnq_format.encode(small_graph()))
    rec = mnq_format.HEADER_DTYPE.itemsize + (len(small_graph().layers) - 1) * mnq_format.LAYER_DTYPE.itemsize
    for field in ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c"):  # the softmax: no weights to match
        at = rec + mnq_format.LAYER_DTYPE.fields[field][1]
        data[at:at + 4] = struct.pack("<I", 0xFFFFFFFF)
    with pytest.raises(mnq.UnsupportedModelError, match="invalid tensor shape"):
        mnq.load(write(tmp_path, fix_crc(data), "m.mnq"))


# ---- threads ----

@pytest.mark.parametrize("bad", [0, -1, 10**6, 2**40, True, 1.5, "2"])
def test_num_threads_out_of_range(bad):
    # before: 10**6 asked libgomp for a million threads (it aborts when creation fails)
    m = mnq.load(SMALL_MODEL, num_threads=1)
    with pytest.raises(ValueError, match="num_threads"):
        m.num_threads = bad


# ---- images ----

def png_header_only(width, height):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_image_declaring_too_many_pixels(tmp_path):
    # 12000 x 12000 is between Pillow's warning and error thresholds: it only warned, then
    # allocated ~430 MB for a 100-byte file
    p = tmp_path / "bomb.png"
    p.write_bytes(png_header_only(12000, 12000))
    with pytest.raises(ValueError, match="pixel limit"):
        load_image(p, (128, 128))
    item = decode_image_file(str(p), (128, 128))
    assert item.pixels is None and "pixel limit" in item.error


def test_truncated_and_garbage_images_become_messages(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buf, "JPEG")
    for name, data in [("empty.jpg", b""), ("cut.jpg", buf.getvalue()[:100]), ("text.png", b"not an image" * 9)]:
        (tmp_path / name).write_bytes(data)
        item = decode_image_file(str(tmp_path / name), (128, 128))
        assert item.pixels is None and item.error


# ---- memory ----

def test_batch_too_large_for_memory_is_memory_error():
    """The activations of a huge batch do not fit: MemoryError with a message, no crash.
    An address-space limit in a child process makes 'does not fit' deterministic."""
    script = textwrap.dedent(f"""
        import resource, numpy as np, mnq
        m = mnq.load({str(SMALL_MODEL)!r}, num_threads=1)
        x = np.zeros((20000,) + m.input_shape, np.uint8)  # ~1 GB of input, allocated before the limit
        x[:, 0, 0, 0] = 1
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + (512 << 20), resource.RLIM_INFINITY))
        try:
            m.run(x)
        except MemoryError as exc:
            print("MemoryError:", exc)
        m.run(x[:2])  # still usable afterwards
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "MemoryError: not enough memory for a batch of 20000 images" in r.stdout and r.stdout.endswith("ok\n")


# ---- found by the sanitizer run (UBSan) ----

@pytest.mark.parametrize("isa", _core.supported_isas())
def test_softmax_of_many_equal_logits(isa):
    # sum of exps >= 512 asked RoundingDivideByPOT for a shift of 32+ (UB in C; TFLite's
    # reference kernel aborts on its assert). Each probability is < 0.5/256: output 0.
    from harness import run_layer
    d = layer_desc("softmax", (1, 1, 1001), (1, 1, 1001), softmax=(1.0, 0.0980392))
    out, _ = run_layer(d, np.full((2, 1, 1, 1001), 7, np.uint8), isa, num_threads=2)
    assert not out.any()


def test_softmax_scaling_that_overflows_is_refused():
    d = layer_desc("softmax", (1, 1, 8), (1, 1, 8), softmax=(1.0, 0.1))
    d["softmax_left_shift"], d["softmax_diff_min"] = 30, -255  # -255 * 2^30 overflows int32
    with pytest.raises(ValueError, match="softmax scaling"):
        _core.Net([d], "scalar")
