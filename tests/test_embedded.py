"""The C-only build (Makefile, docs/embedded.md): native, and cross-built for
aarch64 and armhf and run under qemu-user.

- the C kernel sweep (every NEON kernel vs scalar) and the C API test, on
  aarch64 with the dot product (qemu's default cpu), without it (cortex-a53)
  and on ARMv7 NEON (qemu-arm);
- mnq-run on the main model and 20 ImageNet images: the full uint8 softmax
  output equals the x86 Python build's and TFLite's reference, on every target;
- mnq-run's errors for a missing/corrupt model and wrong-size images.
Cross targets skip when their toolchain or qemu is missing (.ci/run installs them).
"""
import ctypes
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import IMAGES, MAIN_MODEL, reference

import mnq
from mnq.mnq_format import encode
from mnq.model import read_graph
from mnq.preprocess import load_image

ROOT = Path(__file__).resolve().parents[1]
NUM_IMAGES = 20

# name: (compiler, emulator command or None for native, levels the kernel test must see)
TARGETS = {
    "aarch64-i8mm": ("aarch64-linux-gnu-gcc", ["qemu-aarch64", "-cpu", "max"], "scalar neon neondot neoni8mm"),
    "aarch64-dotprod": ("aarch64-linux-gnu-gcc", ["qemu-aarch64", "-cpu", "cortex-a76"], "scalar neon neondot"),
    "aarch64-nodot": ("aarch64-linux-gnu-gcc", ["qemu-aarch64", "-cpu", "cortex-a53"], "scalar neon"),
    "armhf": ("arm-linux-gnueabihf-gcc", ["qemu-arm", "-cpu", "cortex-a15"], "scalar neon"),
}

# the pointwise/conv GEMM each target's best level uses
GEMM_KERNEL = {"aarch64-i8mm": "mnq_gemm_u8_4x16c8__neoni8mm", "aarch64-dotprod": "mnq_gemm_u8_4x16c4__neondot", "aarch64-nodot": "mnq_gemm_u8_4x16__neon",
               "armhf": "mnq_gemm_u8_4x8__neon"}


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """build(cc): make the library, CLI and C tests for one compiler into a temporary
    folder (never the source tree), once per session; returns the build dir."""
    root, made = tmp_path_factory.mktemp("make"), {}

    def make(cc):
        if not shutil.which(cc):
            pytest.skip(f"{cc} not installed (apt-get install gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf)")
        if cc not in made:
            r = subprocess.run(["make", "-s", "-j2", f"CC={cc}", f"BUILD={root / Path(cc).name}"], cwd=ROOT,
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr[-3000:]
            made[cc] = root / Path(cc).name
        return made[cc]
    return make


@pytest.fixture
def target(build):
    def find(name):
        cc, emulator, levels = TARGETS[name]
        if not shutil.which(emulator[0]):
            pytest.skip(f"{emulator[0]} not installed (apt-get install qemu-user)")
        return build(cc), emulator, levels
    return find


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("embedded") / "main.mnq"
    path.write_bytes(encode(read_graph(str(MAIN_MODEL))))
    return path


@pytest.fixture(scope="module")
def images(model_file):
    """20 ImageNet images as PPM files at the model's input size, plus the expected
    outputs of the x86 build and of TFLite's reference kernels."""
    folder = model_file.parent
    model = mnq.load(MAIN_MODEL)
    h, w, _ = model.input_shape
    pixels = np.stack([load_image(p, (h, w)) for p in sorted(IMAGES.glob("*.JPEG"))[:NUM_IMAGES]])
    paths = []
    for i, img in enumerate(pixels):
        paths.append(folder / f"img{i:02d}.ppm")
        paths[-1].write_bytes(b"P6\n%d %d\n255\n" % (w, h) + img.tobytes())
    ref = reference(MAIN_MODEL)
    out_index = ref.it.get_output_details()[0]["index"]
    tflite = []
    for img in pixels:
        ref.it.set_tensor(ref.input_index, img[None])
        ref.it.invoke()
        tflite.append(ref.it.get_tensor(out_index).reshape(-1).copy())
    return paths, model.run(pixels), np.stack(tflite)


@pytest.mark.parametrize("name", TARGETS)
def test_kernel_sweep_under_qemu(name, target):
    build_dir, emulator, levels = target(name)
    r = run(emulator + [build_dir / "test_kernels"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert f"levels: {levels}\n" in r.stdout
    assert re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M), r.stdout[-2000:]


def test_limits_native(build):
    """tests/c/test_limits.c: detection once under racing first calls, size_t overflow, .mnq output size."""
    r = run([build("gcc") / "test_limits"])
    assert r.returncode == 0 and re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M), r.stdout + r.stderr


def test_limits_armhf(target):
    """The same on armhf, whose 32-bit size_t the arena and scratch sizes overflow (fewer detection
    races: each fresh process costs a qemu start)."""
    build_dir, emulator, _ = target("armhf")
    r = run(emulator + [build_dir / "test_limits", 100])
    assert "size_t: 32 bits" in r.stdout
    assert r.returncode == 0 and re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M), r.stdout + r.stderr


def test_compiler_without_a_level_builds_without_it(tmp_path):
    """A compiler that rejects -mavx2 (as an old one rejects -mavxvnni or -mamx-int8) builds the
    library without the AVX2-level groups, says so, and never offers that level."""
    if not shutil.which("gcc") or "x86_64" not in subprocess.run(["gcc", "-dumpmachine"], capture_output=True,
                                                                  text=True).stdout:
        pytest.skip("x86-64 gcc needed")
    cc = tmp_path / "cc-without-avx2"
    cc.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -mavx2 ] && { echo "unrecognized option -mavx2" >&2; '
                  'exit 1; }; done\nexec gcc "$@"\n')
    cc.chmod(0o755)
    out = tmp_path / "build"
    r = subprocess.run(["make", "-s", "-j2", f"CC={cc}", f"BUILD={out}", f"{out}/test_kernels", f"{out}/test_limits"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "cannot build the kernel groups: avx2 avxvnni" in r.stderr
    limits = run([out / "test_limits", 1])
    assert "kernels built: avx512vnni amx; not built: avx2 avxvnni\n" in limits.stdout, limits.stdout
    kernels = run([out / "test_kernels"])
    assert kernels.returncode == 0, kernels.stdout[-2000:]
    levels = re.search(r"levels:(.*)\n", kernels.stdout).group(1).split()
    assert levels[0] == "scalar" and "avx2" not in levels, levels


@pytest.mark.parametrize("name", TARGETS)
def test_c_api_under_qemu(name, model_file, target):
    build_dir, emulator, _ = target(name)
    r = run(emulator + [build_dir / "test_api", model_file])
    assert r.returncode == 0 and re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M), r.stdout + r.stderr


@pytest.mark.parametrize("name", TARGETS)
def test_mnq_run_matches_x86_and_tflite(name, model_file, images, tmp_path, target):
    build_dir, emulator, levels = target(name)
    paths, x86, tflite = images
    assert np.array_equal(x86, tflite)
    raw = tmp_path / "out.bin"
    r = run(emulator + [build_dir / "mnq-run", "--verbose", "--output", raw, model_file] + paths)
    assert r.returncode == 0, r.stderr
    assert f"isa {levels.split()[-1]} " in r.stderr
    # every conv-like layer on a SIMD kernel: the first conv through the GEMM (im2col)
    assert GEMM_KERNEL[name] in r.stderr
    assert "mnq_dwconv_u8_16c__neon" in r.stderr
    assert "__scalar" not in r.stderr
    got = np.fromfile(raw, np.uint8).reshape(x86.shape)
    for i in np.nonzero((got != x86).any(axis=1))[0]:
        raise AssertionError(f"{name}: image {paths[i].name}: {np.count_nonzero(got[i] != x86[i])} output bytes "
                             f"differ from the x86 build")
    assert r.stdout.count(".ppm\n") == NUM_IMAGES


def test_c_api_native(model_file, build):
    build_dir = build("gcc")
    r = run([build_dir / "test_api", model_file])
    assert r.returncode == 0 and re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M), r.stdout + r.stderr


def test_mnq_run_errors(model_file, tmp_path, build):
    cli = build("gcc") / "mnq-run"
    good = tmp_path / "good.ppm"
    good.write_bytes(b"P6\n# a comment\n160 160\n255\n" + bytes(160 * 160 * 3))
    ok = run([cli, "--top", "3", model_file, good])
    assert ok.returncode == 0 and len(ok.stdout.splitlines()) == 4, ok.stdout + ok.stderr

    corrupt = tmp_path / "corrupt.mnq"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 1
    corrupt.write_bytes(bytes(data))
    truncated = tmp_path / "truncated.mnq"
    truncated.write_bytes(model_file.read_bytes()[:-100])
    for model, message in [(tmp_path / "missing.mnq", "No such file"), (corrupt, "checksum mismatch"),
                           (truncated, "truncated"), (good, "bad magic")]:
        r = run([cli, model, good])
        assert r.returncode != 0 and message in r.stderr and str(model) in r.stderr, r.stderr
        assert r.stdout == ""

    cases = {
        "small.ppm": (b"P6\n100 100\n255\n" + bytes(100 * 100 * 3), "the model needs 160x160"),
        "short.ppm": (b"P6\n160 160\n255\n" + bytes(100), "pixel data has 100 bytes"),
        "p3.ppm": (b"P3\n160 160\n255\n0 0 0\n", "not a binary PPM"),
        "deep.ppm": (b"P6\n160 160\n65535\n" + bytes(160 * 160 * 6), "maxval 255"),
        "wrong.raw": (bytes(160 * 160 * 3 + 1), "raw image has 76801 bytes"),
    }
    for fname, (content, message) in cases.items():
        (tmp_path / fname).write_bytes(content)
        r = run([cli, model_file, tmp_path / fname])
        assert r.returncode != 0 and message in r.stderr, (fname, r.stderr)
    r = run([cli, model_file, tmp_path / "absent.ppm"])
    assert r.returncode != 0 and "absent.ppm" in r.stderr
    r = run([cli, "--isa", "sse9", model_file, good])
    assert r.returncode == 2 and "unknown instruction set" in r.stderr


def test_mnq_run_refuses_devices_fifos_and_huge_files_at_once(build, model_file, tmp_path):
    # before: a FIFO hung mnq-run and a 20 GiB file was read whole into memory
    cli = build("gcc") / "mnq-run"
    image = tmp_path / "img.ppm"
    image.write_bytes(b"P6\n160 160\n255\n" + bytes(160 * 160 * 3))
    os.mkfifo(tmp_path / "fifo.mnq")
    huge = tmp_path / "huge.mnq"
    huge.write_bytes(model_file.read_bytes()[:4096])
    os.truncate(huge, 20 << 30)
    for path, message in [("/dev/zero", "a character device, not a regular file"),
                          (tmp_path / "fifo.mnq", "a named pipe (FIFO), not a regular file"),
                          (tmp_path, "a directory, not a regular file"),
                          (huge, "21474836480 bytes, more than the 512 MiB allowed for a model")]:
        start = time.monotonic()
        r = subprocess.run([str(cli), str(path), str(image)], capture_output=True, text=True, timeout=30)
        assert time.monotonic() - start < 1 and r.returncode == 2, (path, r.stderr)
        assert r.stderr == f"mnq-run: {path}: {message}" + \
            ("; a model is read only from a regular file\n" if "regular" in message else "\n")


def test_c_parser_checks_the_label_count_against_the_file_before_allocating(build, model_file):
    # a header claiming 2^32 - 1 labels: refused from the labels' size, not by calloc(2^32, 8)
    lib = ctypes.CDLL(str(build("gcc") / "libmnq.so"))
    lib.mnq_model_parse.restype = ctypes.c_void_p
    lib.mnq_model_free.argtypes = [ctypes.c_void_p]
    data = bytearray(model_file.read_bytes())
    data[56:72] = struct.pack("<QII", len(data) - 1, 1, 0xFFFFFFFF)  # labels_off, labels_len, num_labels
    data[32:36] = bytes(4)
    data[32:36] = struct.pack("<I", zlib.crc32(data))
    image, err = ctypes.create_string_buffer(bytes(data)), ctypes.create_string_buffer(256)
    model = lib.mnq_model_parse(image, ctypes.c_size_t(len(data)), err, ctypes.c_size_t(256))
    lib.mnq_model_free(model)
    assert model is None and b"label count mismatch (header says 4294967295 names in 1 bytes)" in err.value
