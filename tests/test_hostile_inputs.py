"""Hostile model files, shapes and parameters: each is refused with a clear error before
anything large is allocated, never a crash, an overflow or a silent wrong answer.
Every test here is a regression test for a finding (docs/robustness.md lists them)."""
import io
import math
import os
import re
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest
from conftest import ALL_MODELS, MODELS
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


# ---- memory: bounded working set, bounded file reads (docs/robustness.md) ----

def run_child(script, headroom_mib=1024, timeout=60):
    """Run `script` in a child whose address space is capped at what it uses after its
    setup (everything above LIMIT) plus headroom_mib: 'does not fit' is deterministic, and
    a regression grows into a MemoryError there instead of into this machine's memory."""
    setup, body = textwrap.dedent(script).split("# LIMIT\n")
    limit = textwrap.dedent(f"""
        import resource
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + ({headroom_mib} << 20), resource.RLIM_INFINITY))
    """)
    env = dict(os.environ)
    if env.get("MNQ_SANITIZED") == "1":  # ASan's quarantine would hold freed chunks' memory past the limit
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"
    try:
        r = subprocess.run([sys.executable, "-c", setup + limit + body], capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child did not finish within {timeout} s (a read that never ends?); it printed:\n"
                    f"{(exc.stdout or b'').decode()}")
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_batch_whose_activations_exceed_the_memory_limit_runs_in_chunks():
    # 500 images' ping-pong activations (2 x 500 x 64 KiB) and predict's float64 copy of the
    # input (196 MB) exceed a 48 MiB headroom. Before: MemoryError; now chunks of the
    # working-set budget (made small here, as on a small machine) into the whole-batch outputs.
    out = run_child(f"""
        import numpy as np, mnq, mnq.model
        m = mnq.load({str(SMALL_MODEL)!r}, num_threads=1)
        mnq.model.WORKSPACE_BYTES = 16 << 20
        x = np.random.default_rng(0).integers(0, 256, (500,) + m.input_shape, dtype=np.uint8)
        f = x.astype(np.float32) / np.float32(255)
        m.run(x[:2]), m.predict(f[:2])  # lazily loaded code runs once before the limit
        # LIMIT
        out, logits, feats = m.run(x), m.predict(f), m.features(f)
        print("chunks of", m._chunk_images(False), "and", m._chunk_images(True))
        for s in (slice(0, 8), slice(22, 30), slice(124, 132), slice(492, 500)):  # first, across chunk ends, last
            assert (m.run(x[s]) == out[s]).all() and (m.predict(f[s]) == logits[s]).all()
            assert (m.features(f[s]) == feats[s]).all()
        print("ok")
    """, headroom_mib=48)
    assert "chunks of 128 and 26" in out and out.endswith("ok\n")


def test_batch_whose_outputs_do_not_fit_is_memory_error():
    """layer_outputs keeps every layer's output for the whole batch: when those do not
    fit, MemoryError naming the batch and the bytes, and the model stays usable."""
    out = run_child(f"""
        import numpy as np, mnq
        m = mnq.load({str(SMALL_MODEL)!r}, num_threads=1)
        x = np.zeros((2000,) + m.input_shape, np.uint8)
        # LIMIT
        try:
            m.layer_outputs(x)
        except MemoryError as exc:
            print("MemoryError:", exc)
        m.run(x[:2])
        print("ok")
    """, headroom_mib=256)
    assert re.search(r"MemoryError: not enough memory for a batch of 2000 images: \d+ MiB of outputs and a \d+ MiB "
                     r"working set \(1024 images at a time\)", out), out
    assert out.endswith("ok\n")


def test_default_working_set_keeps_batches_of_32_one_call():
    for path in ALL_MODELS:
        m = mnq.load(path, num_threads=1)
        assert m._chunk_images(False) >= 32 and m._chunk_images(True) >= 32, path.name


def sparse_file(path, head, size=20 << 30):
    """`head` followed by zeros up to `size` bytes, taking no disk space."""
    path.write_bytes(head)
    os.truncate(path, size)
    return path


def test_devices_fifos_and_huge_model_files_are_refused_at_once(tmp_path):
    # before: /dev/zero grew without bound, the FIFO hung, the 20 GiB files were read whole
    os.mkfifo(tmp_path / "fifo.tflite")
    mnq_head = bytearray(mnq_format.encode(small_graph())[:4096])
    mnq_head[24:32] = struct.pack("<Q", 20 << 30)  # header file_size, matching the real size
    cases = {"/dev/zero": "a character device, not a regular file",
             "/dev/urandom": "a character device, not a regular file",
             str(tmp_path / "fifo.tflite"): "a named pipe (FIFO), not a regular file",
             str(sparse_file(tmp_path / "huge.tflite", SMALL_MODEL.read_bytes()[:4096])):
                 "20 GiB, more than the 512 MiB allowed for a model",
             str(sparse_file(tmp_path / "huge.mnq", bytes(mnq_head))):
                 "20 GiB, more than the 512 MiB allowed for a model"}
    out = run_child(f"""
        import time, mnq
        # LIMIT
        for path in {list(cases)!r}:
            start = time.monotonic()
            try:
                mnq.load(path)
            except Exception as exc:
                print(f"{{time.monotonic() - start:.3f}}", type(exc).__name__, exc, flush=True)
    """)
    lines = out.splitlines()
    assert len(lines) == len(cases), out
    for line, (path, message) in zip(lines, cases.items()):
        seconds, kind, text = line.split(" ", 2)
        assert float(seconds) < 1 and kind == "ModelFormatError" and text == f"{path}: {message}" + \
            ("; a model is read only from a regular file" if "regular" in message else ""), line


def test_huge_or_special_labels_files_are_refused_at_once(tmp_path):
    # before: a 20 GiB labels.txt beside the model was read whole (bare MemoryError at 30 GiB)
    model = write(tmp_path, SMALL_MODEL.read_bytes())
    sparse_file(tmp_path / "labels.txt", b"a\n")
    out = run_child(f"""
        import time, warnings, mnq
        # LIMIT
        start = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = mnq.load({str(model)!r}, num_threads=1)
        print(f"{{time.monotonic() - start:.3f}}", *[w.message for w in caught], flush=True)
        for labels in ({str(tmp_path / "labels.txt")!r}, "/dev/zero"):
            start = time.monotonic()
            try:
                mnq.load({str(model)!r}, num_threads=1, labels=labels)
            except ValueError as exc:
                print(f"{{time.monotonic() - start:.3f}}", exc, flush=True)
    """)
    beside, explicit, device = out.splitlines()
    too_big = f"{tmp_path / 'labels.txt'}: 20 GiB, more than the 16 MiB allowed for a labels file"
    assert beside.split() == beside.split()[:1] and float(beside) < 1  # optional beside a model: passed over
    assert explicit.split(" ", 1)[1] == too_big and float(explicit.split()[0]) < 1
    assert device.split(" ", 1)[1].startswith("/dev/zero: a character device, not a regular file")
    assert float(device.split()[0]) < 1


def test_mnq_labels_over_the_cap_are_refused(tmp_path):
    # as for labels in .tflite metadata: 17 MiB of names is not a labels list
    data = mnq_format.encode(small_graph(), labels=["x" * 1023] * (17 << 10))
    with pytest.raises(mnq.ModelFormatError, match="more than the 16 MiB allowed"):
        mnq.load(write(tmp_path, data, "m.mnq"))


def model_with_conv_input(index, position=2):
    """A small network whose first conv names `index` as its input `position`
    (0 data, 1 filter, 2 bias) instead of the tensor the builder wrote."""
    data = bytearray(build(random_network(np.random.default_rng(0))))
    inputs = struct.pack("<4i", 3, 0, 1, 2)  # the vector's length, then tensors 0, 1, 2
    assert data.count(inputs) == 1
    at = data.index(inputs) + 4 + 4 * position
    data[at:at + 4] = struct.pack("<i", index)
    return bytes(data)


@pytest.mark.parametrize("index, position, message", [
    (-2, 2, r"operator 0 \(conv\) input 2 has invalid tensor index -2 \(the subgraph has 23 tensors"),
    (-7, 1, r"operator 0 \(conv\) input 1 has invalid tensor index -7"),
    (23, 2, r"operator 0 \(conv\) input 2 has invalid tensor index 23"),
    (-1, 1, r"operator 0 \(conv\) has no filter input"),
    (-1, 0, r"operator 0 \(conv\) input 0 has invalid tensor index -1"),
])
def test_operator_input_index_other_than_minus_one_is_refused(tmp_path, index, position, message):
    # before: -2 was taken as "no bias" and the model ran, computing something else
    path = write(tmp_path, model_with_conv_input(index, position))
    with pytest.raises(mnq.ModelFormatError, match=message):
        mnq.load(path)


def test_minus_one_bias_is_an_absent_bias(tmp_path):
    # the schema's "absent optional input": the same outputs as an all-zero bias
    model = mnq.load(write(tmp_path, model_with_conv_input(-1)), num_threads=1)
    assert model.graph.layers[0].bias is None
    spec = random_network(np.random.default_rng(0))
    spec["ops"][0]["bias"] = 0
    zero_bias = mnq.load(write(tmp_path, build(spec), "zero.tflite"), num_threads=1)
    batch = np.random.default_rng(1).integers(0, 256, (3,) + model.input_shape, dtype=np.uint8)
    assert np.array_equal(model.run(batch), zero_bias.run(batch))


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
