"""int8 models (TFLite's int8 spec: int8 activations, symmetric int8 weights per
output channel, QUANTIZE / DEQUANTIZE edges) against TFLite's reference kernels:
every tensor, every op including the edges, at every instruction-set level this
CPU has; the int8 files in shared/models/int8 and synthetic family members; the
API's dtypes and pixel rule; the .mnq round trip and mnq-run; clear refusals."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tflite
from conftest import IMAGES, MODELS, Reference, assert_same_as_reference, reference
from tflite_builder import build, random_int8_network, random_network

import mnq
from mnq import _core
from mnq.errors import UnsupportedModelError
from mnq.mnq_format import decode, encode
from mnq.model import read_graph
from mnq.preprocess import load_image

ISAS = _core.supported_isas()
INT8_MODELS = sorted((MODELS / "int8").glob("*.tflite"))
MAIN_INT8 = MODELS / "int8" / "mobilenet_v1_1.0_160_int8.tflite"
SMALL = {kind: MODELS / "int8" / f"mobilenet_v1_0.25_128_{kind}.tflite" for kind in ("int8", "uint8io", "floatio")}
ROOT = Path(__file__).resolve().parents[1]


def test_the_six_int8_files_are_there():
    assert len(INT8_MODELS) == 6, INT8_MODELS


def native_inputs(model, count=2, seed=0):
    """Random inputs over the whole range of the model's input type, and its extremes."""
    rng = np.random.default_rng(seed)
    shape = (count,) + model.input_shape
    if model.input_dtype == "float32":
        random = rng.uniform(-1.5, 1.5, shape).astype(np.float32)
        extremes = [np.full(model.input_shape, v, np.float32) for v in (-1.0, 0.0, 1.0, 1e6)]
    else:
        info = np.iinfo(model.input_dtype)
        random = rng.integers(info.min, info.max + 1, shape).astype(model.input_dtype)
        extremes = [np.full(model.input_shape, v, model.input_dtype) for v in (info.min, 0, info.max)]
    return np.concatenate([random, np.stack(extremes)])


def assert_all_tensors_equal(model, batch, ref):
    """Every op's output, edges included, for every image: same dtype, same values."""
    outputs = assert_same_as_reference(model, batch, ref)
    assert len(outputs) == len(ref.it._get_ops_details()), "every op's output is compared"


def imagenet_pixels(count, shape):
    files = sorted(p for p in IMAGES.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))[:count]
    assert len(files) == count
    return np.stack([load_image(p, shape[:2]) for p in files])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("model_path", INT8_MODELS, ids=lambda p: p.stem)
def test_int8_files_random_and_extreme_inputs(model_path, isa):
    model = mnq.load(model_path, num_threads=2, isa=isa)
    assert_all_tensors_equal(model, native_inputs(model), reference(model_path))


@pytest.mark.parametrize("isa", ISAS)
def test_main_int8_file_on_50_imagenet_images(isa):
    model = mnq.load(MAIN_INT8, num_threads=2, isa=isa)
    pixels = imagenet_pixels(50, model.input_shape)
    assert_all_tensors_equal(model, model.input_from_pixels(pixels), reference(MAIN_INT8))


@pytest.mark.parametrize("model_path", [p for p in INT8_MODELS if p != MAIN_INT8], ids=lambda p: p.stem)
def test_other_int8_files_on_imagenet_images(model_path):
    model = mnq.load(model_path, num_threads=2)
    pixels = imagenet_pixels(8, model.input_shape)
    assert_all_tensors_equal(model, model.input_from_pixels(pixels), reference(model_path))


def test_per_channel_layers_run_on_avx2_kernels():
    if "avx2" not in ISAS:
        pytest.skip("no AVX2 on this CPU")
    model = mnq.load(MAIN_INT8, isa=ISAS[-1])
    descs = mnq.model.plan(model.graph)
    per_channel = [k for d, k in zip(descs, model.kernels) if d["channel_multipliers"] is not None]
    assert len(per_channel) == 28  # every conv of MobileNet V1 has distinct channel scales
    assert all(k.endswith("__avx2") for k in per_channel), per_channel


SYNTHETIC = {
    "odd_sizes_same": dict(size=(13, 11), channels=(3, 8, 12), strides=(2, 1), paddings=("SAME",)),
    "valid_padding": dict(size=(17, 15), channels=(3, 5, 7), strides=(2, 2), paddings=("VALID", "SAME")),
    "relu_none": dict(size=(9, 12), channels=(3, 6, 9), acts=("RELU", "NONE"), strides=(1, 2)),
    "channels_not_16": dict(size=(12, 12), channels=(3, 19, 37), strides=(2, 1), depth=3),
    "scales_2e-20_to_2e4": dict(size=(16, 16), channels=(3, 16, 33), strides=(2, 2), depth=3,
                                log2_scales=(-20, 4)),
    "kernel5": dict(size=(11, 11), channels=(3, 8, 8), kernel=5, strides=(2, 1)),
    "even_pool_window": dict(size=(8, 8), channels=(3, 8, 12), strides=(2, 1), paddings=("SAME",)),  # 2x2: ties
    "float_edges": dict(size=(9, 10), channels=(3, 6, 9), strides=(1, 2), input_edge="float32",
                        output_edge="float32", input_quant=(0.0173, 5)),
    "uint8_edges": dict(size=(10, 10), channels=(4, 8, 16), strides=(1, 2), input_edge="uint8", output_edge="uint8"),
    "uint8_edge_rescales": dict(size=(7, 9), channels=(3, 8, 8), paddings=("SAME",), input_edge="uint8", input_edge_quant=(0.0311, 77),
                                output_edge="uint8"),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_int8_family_members(tmp_path, name, isa):
    rng = np.random.default_rng(sum(map(ord, name)))
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(build(random_int8_network(rng, **SYNTHETIC[name]), rng))
    model = mnq.load(path, num_threads=2, isa=isa)
    assert_all_tensors_equal(model, native_inputs(model, count=3, seed=1), Reference(path))


def test_float_quantize_rounds_ties_as_tflite(tmp_path):
    """Inputs exactly halfway between two quantized values, both signs."""
    rng = np.random.default_rng(5)
    path = tmp_path / "ties.tflite"
    path.write_bytes(build(random_int8_network(rng, size=(6, 6), paddings=("SAME",), input_edge="float32", input_quant=(0.0173, -3)),
                           rng))
    model = mnq.load(path)
    k = rng.integers(-140, 140, (2,) + model.input_shape)
    x = ((k + 0.5) * np.float32(0.0173)).astype(np.float32)
    assert_all_tensors_equal(model, x, Reference(path))


def test_pixel_rule_gives_one_answer_for_the_three_variants():
    """predict/features (float [0,1] pixels) and run on uint8 pixels agree across the int8,
    uint8-I/O and float-I/O files of one network."""
    models = {kind: mnq.load(path, num_threads=2) for kind, path in SMALL.items()}
    pixels = imagenet_pixels(4, models["int8"].input_shape)
    images = pixels.astype(np.float32) / 255
    logits = [m.predict(images) for m in models.values()]
    feats = [m.features(images) for m in models.values()]
    for other in logits[1:]:
        np.testing.assert_array_equal(logits[0], other)
    for other in feats[1:]:
        np.testing.assert_array_equal(feats[0], other)
    top = [m.run(pixels).astype(np.float64).argmax(1) for m in models.values()]
    for other in top[1:]:
        np.testing.assert_array_equal(top[0], other)
    assert (logits[0].argmax(1) == top[0]).all()


def test_run_takes_and_returns_the_files_types():
    expected = {"int8": (np.int8, np.int8), "uint8io": (np.uint8, np.uint8), "floatio": (np.float32, np.float32)}
    for kind, path in SMALL.items():
        model = mnq.load(path)
        x = native_inputs(model, count=1)[:1]
        assert x.dtype == expected[kind][0] and model.run(x).dtype == expected[kind][1]
        assert model.input_dtype == np.dtype(expected[kind][0]).name
        with pytest.raises(TypeError, match="expected"):
            model.run(x.astype(np.int16))
    floatio = mnq.load(SMALL["floatio"])
    bad = np.zeros((1,) + floatio.input_shape, np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        floatio.run(bad)


def test_info_names_the_quantization_scheme():
    assert read_graph(SMALL["int8"]).scheme == \
        "int8 activations, symmetric int8 weights per output channel (TFLite int8)"
    assert read_graph(SMALL["floatio"]).scheme.endswith("; float32 input, float32 output")
    assert read_graph(MODELS / "mobilenet_v1_0.25_128_quant.tflite").scheme.startswith("uint8")


def unsupported_specs():
    """(id, spec, build kwargs, message fragment) of int8 files mnq must refuse."""
    rng = np.random.default_rng(3)

    def base(**kw):
        return random_int8_network(rng, size=(8, 8), paddings=("SAME",), **kw)

    per_channel_act = base()
    per_channel_act["ops"][-2]["out_quant"] = ([0.02] * 10, [0] * 10, 1)  # the reshape output
    asymmetric = base()
    asymmetric["ops"][0]["w_quant"] = ([0.01] * 8, [3] * 8, 0)
    wrong_axis = base()
    wrong_axis["ops"][0]["w_quant"] = ([0.01 * (i + 1) for i in range(8)], [0] * 8, 3)
    bad_softmax = base()
    bad_softmax["ops"][-1]["out_quant"] = (1 / 256, 0)
    middle_quantize = base()
    middle_quantize["ops"].insert(2, dict(op="quantize", out_quant=(0.05, 1)))
    uint8_per_channel = random_network(rng, size=(8, 8))
    uint8_per_channel["ops"][0]["w_quant"] = ([0.01 * (i + 1) for i in range(8)], [128] * 8, 0)
    return [
        ("int16_activations", base(), dict(input_type=tflite.TensorType.INT16), "int16 activations"),
        ("per_channel_activations", per_channel_act, {}, "quantized per channel"),
        ("asymmetric_int8_weights", asymmetric, {}, "asymmetric int8 weights"),
        ("per_channel_along_wrong_axis", wrong_axis, {}, "dimension 3"),
        ("hybrid_float_weights", dict(base(), weight_type="float32"), {}, "hybrid model"),
        ("int8_softmax_zero_point_0", bad_softmax, {}, "requires 1/256 and -128"),
        ("quantize_inside_the_network", middle_quantize, {}, "QUANTIZE"),
        ("uint8_per_channel_weights", uint8_per_channel, {}, "per channel"),
    ]


@pytest.mark.parametrize("name,spec,kwargs,message", unsupported_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_unsupported_int8_variants_are_named(tmp_path, name, spec, kwargs, message):
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(build(spec, np.random.default_rng(0), **kwargs))
    with pytest.raises(UnsupportedModelError, match=message) as info:
        mnq.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", SMALL)
def test_mnq_file_round_trip(tmp_path, kind):
    graph = read_graph(SMALL[kind])
    path = tmp_path / f"{kind}.mnq"
    path.write_bytes(encode(graph))
    direct, from_file = mnq.load(SMALL[kind], isa=ISAS[-1]), mnq.load(path, isa=ISAS[-1])
    assert from_file.input_dtype == direct.input_dtype and from_file.output_dtype == direct.output_dtype
    x = native_inputs(direct)
    np.testing.assert_array_equal(from_file.run(x), direct.run(x))


def test_mnq_file_rejects_altered_channel_multipliers():
    data = bytearray(encode(read_graph(SMALL["int8"])))
    graph = decode(bytes(data))
    # find the first layer's per-channel block and change one multiplier
    from mnq.mnq_format import HEADER_DTYPE, LAYER_DTYPE
    rec = np.frombuffer(bytes(data), LAYER_DTYPE, count=1, offset=HEADER_DTYPE.itemsize)[0]
    at = int(rec["channels_off"]) + 4 * graph.layers[0].out_shape[2]
    data[at] ^= 1
    import zlib
    data[32:36] = b"\0\0\0\0"
    data[32:36] = zlib.crc32(bytes(data)).to_bytes(4, "little")
    with pytest.raises(mnq.ModelFormatError, match="per-channel parameters disagree"):
        decode(bytes(data))


def mnq_run_outputs(cli, model_file, pixels, tmp_path, emulator=()):
    h, w = pixels.shape[1:3]
    paths = []
    for i, img in enumerate(pixels):
        paths.append(tmp_path / f"img{i}.ppm")
        paths[-1].write_bytes(b"P6\n%d %d\n255\n" % (w, h) + img.tobytes())
    raw = tmp_path / "out.bin"
    r = subprocess.run([*emulator, str(cli), "--verbose", "--output", str(raw), str(model_file), *map(str, paths)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    return np.fromfile(raw, np.uint8).reshape(len(pixels), -1), r.stderr


def expected_uint8_form(model, pixels):
    """The softmax output in uint8 form (an int8 value + 128), what mnq-run writes."""
    softmax = [t for name, t in model.layer_outputs(model.input_from_pixels(pixels))
               if name == model.graph.layers[-1].name][0]
    return softmax.view(np.uint8) ^ np.uint8(0x80) if softmax.dtype == np.int8 else softmax


def make(cc="gcc"):
    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    triplet = subprocess.run([cc, "-dumpmachine"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["make", "-s", "-j2", f"CC={cc}"], cwd=ROOT, check=True, capture_output=True)
    return ROOT / "build" / triplet / "mnq-run"


@pytest.mark.parametrize("kind", SMALL)
def test_mnq_run_runs_int8_files(tmp_path, kind):
    cli = make()
    model = mnq.load(SMALL[kind])
    model_file = tmp_path / "m.mnq"
    model_file.write_bytes(encode(model.graph))
    pixels = imagenet_pixels(3, model.input_shape)
    got, log = mnq_run_outputs(cli, model_file, pixels, tmp_path)
    np.testing.assert_array_equal(got, expected_uint8_form(model, pixels))


@pytest.mark.parametrize("cpu, gemm", [("max", "mnq_gemm_u8_4x16c8__neoni8mm"), ("cortex-a76", "mnq_gemm_u8_4x16c4__neondot"),
                                       ("cortex-a53", "mnq_gemm_u8_4x16__neon")])
def test_mnq_run_int8_under_qemu_aarch64(tmp_path, cpu, gemm):
    if not shutil.which("qemu-aarch64"):
        pytest.skip("qemu-aarch64 not installed")
    cli = make("aarch64-linux-gnu-gcc")
    model = mnq.load(SMALL["int8"])
    model_file = tmp_path / "m.mnq"
    model_file.write_bytes(encode(model.graph))
    pixels = imagenet_pixels(2, model.input_shape)
    got, log = mnq_run_outputs(cli, model_file, pixels, tmp_path, ["qemu-aarch64", "-cpu", cpu])
    assert gemm in log and "__scalar" not in log  # per-channel layers run on the NEON kernels
    np.testing.assert_array_equal(got, expected_uint8_form(model, pixels))


def test_mnq_run_refuses_a_rescaling_input_edge(tmp_path):
    cli = make()
    rng = np.random.default_rng(2)
    graph_path = tmp_path / "rescale.tflite"
    graph_path.write_bytes(build(random_int8_network(rng, size=(7, 7), paddings=("SAME",), input_edge="uint8",
                                                     input_edge_quant=(0.0311, 77)), rng))
    model_file = tmp_path / "rescale.mnq"
    model_file.write_bytes(encode(read_graph(graph_path)))
    image = tmp_path / "x.raw"
    image.write_bytes(bytes(7 * 7 * 3))
    r = subprocess.run([str(cli), str(model_file), str(image)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "rescales its input" in r.stderr


# ---- kernel level: per-channel requantization and int8 average pooling vs the scalar oracle ----
from harness import layer_desc as kernel_desc  # noqa: E402
from harness import run_layer  # noqa: E402

FAST = [isa for isa in ISAS if isa != "scalar"]


def per_channel_multipliers(rng, n):
    """Real multipliers 2^-30 .. 2^3: right shifts up to 30 and left shifts, exact ties likely."""
    return [float(2.0 ** rng.uniform(-30, 3)) for _ in range(n)]


@pytest.mark.parametrize("isa", FAST)
@pytest.mark.parametrize("op,k,stride,n", [("pointwise", 1, 1, 37), ("pointwise", 1, 1, 8), ("conv", 3, 2, 19),
                                           ("depthwise", 3, 1, 45), ("depthwise", 3, 2, 16)])
def test_per_channel_kernels_match_the_oracle(isa, op, k, stride, n):
    rng = np.random.default_rng(n * 7 + k)
    cin = n if op == "depthwise" else 13
    hw = 9
    out_hw = (hw + stride - 1) // stride
    bias = rng.integers(-20000, 20000, n).astype(np.int32)
    bias[0] = 1 << 29  # a huge bias, as dead channels of real int8 files have
    d = kernel_desc(op, (hw, hw, cin), (out_hw, out_hw, n), k=(k, k), stride=(stride, stride),
                    pad=((k - 1) // 2 if stride == 1 else 0, (k - 1) // 2 if stride == 1 else 0),
                    in_zp=int(rng.integers(0, 256)), w_zp=128, out_zp=int(rng.integers(0, 256)), rng=rng, bias=bias,
                    act=(int(rng.integers(0, 60)), int(rng.integers(200, 256))),
                    real_multipliers=per_channel_multipliers(rng, n))
    x = rng.integers(0, 256, (3, hw, hw, cin), dtype=np.uint8)
    want, _ = run_layer(d, x, "scalar")
    for threads in (1, 2):
        got, name = run_layer(d, x, isa, threads)
        assert not name.endswith("__scalar") or op == "conv" and isa != "avx2", name
        assert np.array_equal(got, want), f"{name}: {int((got != want).sum())} bytes differ"


@pytest.mark.parametrize("isa", FAST)
def test_int8_average_pool_rounding_matches_the_oracle(isa):
    rng = np.random.default_rng(0)
    for window in ((2, 2), (4, 4), (3, 3), (5, 5)):
        d = kernel_desc("avgpool", (window[0], window[1], 24), (1, 1, 24), k=window, pool_center=128)
        x = rng.integers(0, 256, (50, window[0], window[1], 24), dtype=np.uint8)
        want, _ = run_layer(d, x, "scalar")
        got, _ = run_layer(d, x, isa, 2)
        np.testing.assert_array_equal(got, want)
        # the int8 rule: mean of (x - 128) rounded half away from zero
        s = x.astype(np.int64).reshape(50, -1, 24).sum(1) - 128 * window[0] * window[1]
        count = window[0] * window[1]
        expected = np.sign(s) * ((np.abs(s) + count // 2) // count) + 128
        np.testing.assert_array_equal(want.reshape(50, 24), expected)


def test_classify_and_eval_on_the_int8_variants(tmp_path):
    """`mnq classify` prints the same classes and probabilities for the int8, uint8-I/O and
    float-I/O files; `mnq eval` ranks int8 and float outputs and matches the reference."""
    import csv
    import json
    import os
    import sys

    files = sorted(p for p in IMAGES.iterdir() if p.suffix.lower() == ".jpeg")[:6]
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label"])
        for p in files:
            writer.writerow([p.name, 1])
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    printed = []
    for kind, path in SMALL.items():
        r = subprocess.run([sys.executable, "-m", "mnq", "classify", "--top-k", "3", "--model", str(path),
                            *map(str, files[:2])], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        printed.append(r.stdout.replace(str(path), ""))
        r = subprocess.run([sys.executable, "-m", "mnq", "eval", "--labels", str(labels), "--model", str(path),
                            "--format", "json", "--no-progress", str(IMAGES)], capture_output=True, text=True,
                           env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["images"] == 6 and report["reference"]["identical_outputs"] == 1.0, r.stdout
        assert report["top1"] == report["reference"]["top1"]
    assert printed[0] == printed[1] == printed[2], printed
    assert "0.000" not in printed[0].splitlines()[1]


def test_avx2_per_channel_requantization_matches_scalar(tmp_path):
    """rq256_apply with per-lane multipliers and shifts vs mnq_requantize_channel on
    10 million accumulators (tests/requant_avx2_check.c)."""
    if "avx2" not in ISAS:
        pytest.skip("CPU lacks AVX2")
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    exe = tmp_path / "check"
    subprocess.run([cc, "-O2", "-mavx2", "-mfma", f"-I{ROOT / 'src' / 'kernels'}",
                    str(ROOT / "tests" / "requant_avx2_check.c"), "-o", str(exe)], check=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.startswith("ok "), result.stdout


def test_version_1_files_still_read(tmp_path):
    """A uint8 model's version 2 file has every version 2 field zero; relabelled as
    version 1 it is a version 1 file, which the Python and C readers both take."""
    import zlib

    uint8_model = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
    data = bytearray(encode(read_graph(uint8_model)))
    assert data[72:92] == bytes(20)  # layer/input/output types, edge quantization
    data[8:12] = (1).to_bytes(4, "little")
    data[32:36] = bytes(4)
    data[32:36] = zlib.crc32(bytes(data)).to_bytes(4, "little")
    v1 = tmp_path / "v1.mnq"
    v1.write_bytes(bytes(data))
    model = mnq.load(v1)
    pixels = imagenet_pixels(2, model.input_shape)
    expected = mnq.load(uint8_model).run(pixels)
    np.testing.assert_array_equal(model.run(pixels), expected)
    got, _ = mnq_run_outputs(make(), v1, pixels, tmp_path)
    np.testing.assert_array_equal(got, expected)


def test_c_reader_rejects_a_damaged_per_channel_block(tmp_path):
    import zlib

    from mnq.mnq_format import HEADER_DTYPE, LAYER_DTYPE

    data = bytearray(encode(read_graph(SMALL["int8"])))
    at = HEADER_DTYPE.itemsize + LAYER_DTYPE.fields["channels_len"][1]  # layer 0's blob length
    data[at:at + 8] = (int.from_bytes(data[at:at + 8], "little") - 4).to_bytes(8, "little")
    data[32:36] = bytes(4)
    data[32:36] = zlib.crc32(bytes(data)).to_bytes(4, "little")
    bad = tmp_path / "bad.mnq"
    bad.write_bytes(bytes(data))
    image = tmp_path / "x.raw"
    image.write_bytes(bytes(128 * 128 * 3))
    r = subprocess.run([str(make()), str(bad), str(image)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "per-channel block" in r.stderr, r.stderr
    with pytest.raises(mnq.ModelFormatError, match="per-channel block"):
        decode(bytes(data))
