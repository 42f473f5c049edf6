"""Fast pointwise (GEMM) and im2col conv kernels vs the scalar oracle, byte for
byte, for every ISA level this CPU has (GemmMicrokernelTester-style sweeps)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from harness import layer_desc, run_layer
from mnq import _core

FAST_ISAS = [isa for isa in _core.ISA_NAMES if isa != "scalar"]
# which kernel suffixes a net built at each level may legitimately pick
ALLOWED = {"avx2": ("__avx2", "__avxvnni"), "avx512vnni": ("__avx512vnni",), "amx": ("__amx", "__avx512vnni"),
           "neon": ("__neon",), "neondot": ("__neondot",), "neoni8mm": ("__neoni8mm",)}


def need(isa):
    if isa not in _core.supported_isas():
        pytest.skip(f"CPU/OS lacks {isa} (features: {_core.cpu_features()})")


def check(desc, x, isa, threads=(1, 2, 5)):
    """Compare isa against scalar at each thread count (a layer with fewer pixels than output
    channels gets one tile per thread: 5 threads split its column blocks 5 ways); returns the
    fast kernel's name."""
    want, scalar_name = run_layer(desc, x, "scalar")
    assert "scalar" in scalar_name
    for t in threads:
        got, name = run_layer(desc, x, isa, t)
        assert name.endswith(ALLOWED[isa]), f"{isa} picked {name}"
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)[0]
            pytest.fail(f"{name} threads={t} differs at {tuple(bad)}: {got[tuple(bad)]} != {want[tuple(bad)]} "
                        f"({int((got != want).sum())} bytes)")
    return name


def pw(rng, hw, k, n, batch=1, **kw):
    desc = layer_desc("pointwise", (hw[0], hw[1], k), (hw[0], hw[1], n), rng=rng, **kw)
    x = rng.integers(0, 256, (batch, hw[0], hw[1], k), dtype=np.uint8)
    return desc, x


@pytest.mark.parametrize("isa", FAST_ISAS)
def test_pointwise_channel_sweep(isa):
    """K and N over 1..67 (every tail of 4, 16 and 64) at a few pixel counts."""
    need(isa)
    rng = np.random.default_rng(1)
    names = set()
    for k in range(1, 68):
        name = check(*pw(rng, (3, 5), k, int(rng.integers(1, 70))), isa)
        names.add(name)
        if isa == "amx":  # AMX from K=32 (K-wide tiles below 64, 64-byte steps above), the VNNI kernel below
            assert name == ("mnq_pwconv_u8_32x32__amx" if k >= 32 else "mnq_pwconv_u8_6x64__avx512vnni"), (k, name)
    for n in range(1, 68):
        names.add(check(*pw(rng, (1, 7), int(rng.integers(1, 70)), n), isa))
    if isa == "avx2":  # AVX-VNNI wherever the CPU has it (and MNQ_NO_AVXVNNI is unset), else vpmaddwd
        vnni = "avx-vnni" in _core.cpu_features().split()
        assert names == {"mnq_pwconv_u8_5x16__avxvnni" if vnni else "mnq_pwconv_u8_6x16c2__avx2"}, names


def test_avx2_level_without_avxvnni():
    """On an AVX-VNNI CPU the plain AVX2 GEMM kernels run only with MNQ_NO_AVXVNNI=1 (read once, at
    detection): rerun this file's AVX2-level tests in a process that sets it."""
    need("avx2")
    if os.environ.get("MNQ_NO_AVXVNNI") == "1" or "avx-vnni" not in _core.cpu_features().split():
        pytest.skip("the AVX2 level already runs without AVX-VNNI here")
    env = dict(os.environ, MNQ_NO_AVXVNNI="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "avx2"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.parametrize("isa", FAST_ISAS)
@pytest.mark.parametrize("hw,k,n,batch", [
    ((1, 1), 1024, 1001, 1), ((1, 1), 1024, 1001, 3), ((5, 5), 1024, 1024, 1), ((5, 5), 512, 1024, 3),
    ((10, 10), 512, 512, 1), ((20, 20), 256, 256, 1), ((40, 40), 128, 128, 1), ((80, 80), 32, 64, 1),
    ((100, 100), 64, 32, 1), ((7, 9), 67, 131, 3), ((33, 31), 1001, 19, 1), ((2, 3), 129, 1025, 3),
    ((17, 1), 64, 64, 1), ((31, 1), 128, 48, 1), ((1, 47), 192, 80, 2),
    ((64, 64), 32, 64, 2), ((7, 7), 512, 1024, 24),  # batches: row shares in whole 32-row tiles
])
def test_pointwise_real_and_odd_shapes(isa, hw, k, n, batch):
    need(isa)
    check(*pw(np.random.default_rng(k * 7 + n), hw, k, n, batch, real_multiplier=0.0005, act=(0, 255)), isa)


@pytest.mark.parametrize("isa", FAST_ISAS)
def test_pointwise_quantization_sweep(isa):
    """Zero points 0/128/255, multipliers near 1, tiny and > 1, every kind of activation range."""
    need(isa)
    rng = np.random.default_rng(2)
    for zx in (0, 128, 255):
        for zw in (0, 128, 255):
            for zo in (0, 128, 255):
                for mult in (0.99, 0.9999, 1e-6, 0.003, 1.5):
                    for act in ((0, 255), (zo, min(255, zo + 47)), (max(0, zo - 3), min(255, zo + 3))):
                        k, n = int(rng.integers(1, 80)), int(rng.integers(1, 80))
                        bias = rng.integers(-300, 300, n, dtype=np.int32)
                        check(*pw(rng, (2, 3), k, n, in_zp=zx, w_zp=zw, out_zp=zo, real_multiplier=mult,
                                  act=act, bias=bias), isa, threads=(1,))


@pytest.mark.parametrize("isa", FAST_ISAS)
def test_pointwise_rounding_near_ties(isa):
    """Small accumulators with multipliers near 1 hit every rounding boundary."""
    need(isa)
    rng = np.random.default_rng(3)
    for mult in (0.5, 0.25 + 1e-7, 0.99, 0.9999, 0.75):
        n = 64
        w = np.full((n, 1, 1, 2), 128, np.uint8)
        w[:, 0, 0, 0] = 129
        bias = np.arange(-n // 2, n // 2, dtype=np.int32) * 37
        desc, x = pw(rng, (9, 9), 2, n, in_zp=0, w_zp=128, out_zp=128, real_multiplier=mult, weights=w, bias=bias)
        check(desc, x, isa, threads=(1,))


def conv(rng, in_hwc, cout, k, stride, batch=1, same=True, **kw):
    ih, iw, cin = in_hwc
    if same:
        oh, ow = -(-ih // stride), -(-iw // stride)
        pt = max((oh - 1) * stride + k - ih, 0) // 2
        pl = max((ow - 1) * stride + k - iw, 0) // 2
    else:
        oh, ow, pt, pl = (ih - k) // stride + 1, (iw - k) // stride + 1, 0, 0
    desc = layer_desc("conv", in_hwc, (oh, ow, cout), k=(k, k), stride=(stride, stride), pad=(pt, pl), rng=rng, **kw)
    return desc, rng.integers(0, 256, (batch, ih, iw, cin), dtype=np.uint8)


@pytest.mark.parametrize("isa", ["avx2", "avx512vnni", "amx"])
@pytest.mark.parametrize("in_hwc,cout,k,stride,same,batch", [
    ((160, 160, 3), 32, 3, 2, True, 1), ((31, 29, 3), 32, 3, 2, True, 3), ((16, 16, 3), 8, 3, 2, True, 1),
    ((15, 15, 3), 17, 3, 2, True, 1), ((12, 11, 8), 20, 3, 1, True, 2), ((7, 9, 5), 70, 5, 1, True, 1),
    ((9, 9, 16), 16, 1, 1, False, 1), ((10, 10, 4), 33, 2, 2, False, 1), ((6, 6, 1), 1, 3, 1, True, 1),
    ((11, 13, 32), 40, 1, 2, False, 2), ((9, 8, 10), 65, 3, 1, True, 1),
    ((8, 9, 20), 24, 3, 1, True, 1), ((10, 7, 40), 16, 3, 2, True, 1),  # im2col runs over 32 bytes, ragged
])
def test_conv_im2col(isa, in_hwc, cout, k, stride, same, batch):
    need(isa)
    rng = np.random.default_rng(in_hwc[0] * 100 + cout)
    for zx, zw in ((128, 128), (0, 255), (255, 0)):
        name = check(*conv(rng, in_hwc, cout, k, stride, batch, same, in_zp=zx, w_zp=zw, out_zp=3,
                           real_multiplier=0.0007, act=(3, 200)), isa)
        # AMX: K = k*k*cin <= 32 builds rows in registers (RGB stem), larger K the generic im2col
        avx2 = "5x16__avxvnni" if "avx-vnni" in _core.cpu_features().split() else "6x16c2__avx2"
        assert name == {"amx": "mnq_conv_u8_im2col_32x32__amx", "avx512vnni": "mnq_conv_u8_im2col_6x64__avx512vnni",
                        "avx2": f"mnq_conv_u8_im2col_{avx2}"}[isa]


@pytest.mark.parametrize("isa", FAST_ISAS)
def test_requant_edges(isa):
    """Requantization alone, on chosen accumulators: with zero inputs the bias is the
    accumulator, so the accepted int32 extremes, ties of either rounding and shifts (left, 0, small,
    > 22 where the zero point is added late) reaches the vector path."""
    need(isa)
    rng = np.random.default_rng(4)
    # the largest |bias| a net accepts: no 64-tap accumulator can overflow int32 (net.c validate)
    limit = 2**31 - 1 - 64 * 255 * 255
    for mult in (1, 3, 1 << 30, (1 << 30) + 1, 2**31 - 1, 1992157658, 1083785823):
        for shift in (3, 1, 0, -1, -2, -7, -10, -22, -23, -31):
            r = max(-shift, 0)
            half = 2.0 ** (30 + r - max(shift, 0)) / mult  # accumulator step between ties
            k = rng.integers(-300, 300, 200).astype(np.float64)
            ties = np.clip(np.round(k * half)[:, None] + np.arange(-2, 3), -limit, limit).ravel()
            edges = [-limit, -limit + 1, -1, 0, 1, limit, limit - 1]
            accs = np.concatenate([edges, ties, rng.integers(-limit, limit, 300), np.arange(-200, 200)])
            for zo, act in ((0, (0, 255)), (128, (0, 255)), (128, (128, 200)), (255, (250, 255)), (3, (3, 3))):
                desc, x = pw(rng, (2, 1), 64, accs.size, in_zp=0, out_zp=zo, act=act, bias=accs.astype(np.int32))
                desc.update(multiplier=mult, shift=shift)
                check(desc, np.zeros_like(x), isa, threads=(1,))
