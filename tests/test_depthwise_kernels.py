"""Every fast depthwise kernel vs the scalar oracle, byte for byte, on swept
shapes, zero points, multipliers, activation ranges, batches and thread counts."""
import itertools

import numpy as np
import pytest
from harness import layer_desc, run_layer

from mnq import _core
from mnq.plan import same_or_valid_padding

# (isa level, substring the chosen 3x3 kernel's name must contain)
LEVELS = [("avx2", "__avx2"), ("avx512vnni", "_32x2__avx512vnni"), ("amx", "_32x2__avx512vnni")]
# CPU features (as mnq.cpu_features() names them) a kernel needs beyond its level's
KERNEL_FEATURES = {"_32x2__avx512vnni": ("avx512-vbmi",)}


def require(isa, expect=""):
    """Skip unless the CPU runs the level and every feature the expected kernel needs
    (an AVX-512 VNNI CPU without VBMI, e.g. Cascade Lake, runs the AVX2 depthwise kernel)."""
    if isa not in _core.supported_isas():
        pytest.skip(f"this CPU/OS lacks {isa} (supported: {', '.join(_core.supported_isas())}; "
                    f"features: {_core.cpu_features()})")
    missing = [f for f in KERNEL_FEATURES.get(expect, ()) if f not in _core.cpu_features().split()]
    if missing:
        pytest.skip(f"{expect} needs {', '.join(missing)} (features: {_core.cpu_features()})")


def dw_layer(rng, h, w, c, stride, padding, **kw):
    oh, pt = same_or_valid_padding(padding, h, 3, stride)
    ow, pl = same_or_valid_padding(padding, w, 3, stride)
    return layer_desc("depthwise", (h, w, c), (oh, ow, c), k=(3, 3), stride=(stride, stride), pad=(pt, pl),
                      rng=rng, **kw)


def check(desc, x, isa, expect, threads=1):
    ref, ref_name = run_layer(desc, x, "scalar")
    got, name = run_layer(desc, x, isa, threads)
    assert ref_name == "mnq_dwconv_u8__scalar"
    assert expect in name, f"{isa} chose {name}"
    if not np.array_equal(ref, got):
        bad = np.argwhere(ref != got)
        raise AssertionError(f"{name}: {len(bad)} of {ref.size} bytes differ, first at {bad[0].tolist()}: "
                             f"scalar {ref[tuple(bad[0])]} vs {got[tuple(bad[0])]}")


@pytest.mark.parametrize("isa,expect", LEVELS)
@pytest.mark.parametrize("stride", [1, 2])
def test_channels_and_small_sizes(isa, expect, stride):
    """Every channel count 1..67 (vector tails) on small odd/even images, SAME and VALID."""
    require(isa, expect)
    rng = np.random.default_rng(stride)
    for c in range(1, 68):
        h, w = rng.integers(1, 12, 2)
        padding = "VALID" if (c % 3 == 0 and min(h, w) >= 3) else "SAME"
        desc = dw_layer(rng, int(h), int(w), c, stride, padding, in_zp=int(rng.integers(0, 256)),
                        w_zp=int(rng.integers(0, 256)), out_zp=int(rng.integers(0, 256)),
                        real_multiplier=float(rng.choice([0.99, 0.02, 1e-6])))
        x = rng.integers(0, 256, (1, h, w, c), dtype=np.uint8)
        check(desc, x, isa, expect)


@pytest.mark.parametrize("isa,expect", LEVELS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_spatial_sizes(isa, expect, stride, padding):
    """1x1 up to ~100x100 (even and odd), batch 1 and 3, 1 and 2 threads."""
    require(isa, expect)
    rng = np.random.default_rng(7)
    sizes = [(1, 1), (2, 2), (3, 3), (1, 7), (7, 1), (4, 5), (9, 16), (33, 20), (80, 80), (97, 101)]
    for (h, w), c, batch, threads in zip(sizes, itertools.cycle([8, 33, 16, 3]), itertools.cycle([1, 3]),
                                         itertools.cycle([1, 1, 2])):
        if padding == "VALID" and min(h, w) < 3:
            continue
        desc = dw_layer(rng, h, w, c, stride, padding, in_zp=128, w_zp=128, out_zp=0, real_multiplier=0.01)
        x = rng.integers(0, 256, (batch, h, w, c), dtype=np.uint8)
        check(desc, x, isa, expect, threads)


@pytest.mark.parametrize("isa,expect", LEVELS)
def test_quantization_corners(isa, expect):
    """Zero points 0/128/255, multipliers near 1, tiny, above 1 (left shift) and powers
    of two (M = 2^30: every odd accumulator is a rounding tie), ReLU6-like and narrow
    activation ranges, no bias, extreme inputs."""
    require(isa, expect)
    rng = np.random.default_rng(3)
    zps = [0, 128, 255]
    for i, (in_zp, w_zp, out_zp) in enumerate(itertools.product(zps, zps, zps)):
        mult = [0.99, 1e-6, 0.0123, 1.9, 0.5, 2.0 ** -10][i % 6]
        act = [(0, 255), (out_zp // 2, min(255, out_zp + 30)), (10, 11)][i % 3]
        stride = 1 + i % 2
        bias = np.zeros(19, np.int32) if i % 5 == 0 else None
        desc = dw_layer(rng, 6, 7, 19, stride, "SAME", in_zp=in_zp, w_zp=w_zp, out_zp=out_zp,
                        real_multiplier=mult, act=act, bias=bias)
        x = rng.choice(np.array([0, 255, 1, 254, 128], np.uint8), (2, 6, 7, 19)) if i % 2 else \
            rng.integers(0, 256, (2, 6, 7, 19), dtype=np.uint8)
        check(desc, x, isa, expect, threads=1 + i % 2)


@pytest.mark.parametrize("isa,expect", LEVELS)
def test_relu_ranges_above_zero_point(isa, expect):
    """act_min >= out_zp (ReLU-like) lets the kernels skip the ties-away sign correction
    for negative accumulators: check it on many negative accumulators and rounding ties
    (multipliers 2^-k), with out_zp > 0 so the clamp is not at 0."""
    require(isa, expect)
    rng = np.random.default_rng(17)
    for i, (mult, out_zp) in enumerate(itertools.product([2.0 ** -10, 0.25, 0.0043, 0.3, 1.5], [1, 100, 254])):
        act = (out_zp, 255) if i % 2 else (min(255, out_zp + 3), min(255, out_zp + 60))
        desc = dw_layer(rng, 5, 6, 24 + i, 1 + i % 2, "SAME", in_zp=int(rng.integers(0, 256)), w_zp=128,
                        out_zp=out_zp, real_multiplier=mult, act=act)
        x = rng.integers(0, 256, (1, 5, 6, 24 + i), dtype=np.uint8)
        check(desc, x, isa, expect, threads=1 + i % 2)


@pytest.mark.parametrize("isa,expect", LEVELS)
@pytest.mark.parametrize("c,hw,stride", [(512, 10, 1), (512, 10, 2), (1024, 5, 1), (1024, 3, 2), (32, 80, 1)])
def test_mobilenet_like_layers(isa, expect, c, hw, stride):
    require(isa, expect)
    rng = np.random.default_rng(c + hw)
    desc = dw_layer(rng, hw, hw, c, stride, "SAME", in_zp=0, w_zp=int(rng.integers(0, 256)), out_zp=0,
                    real_multiplier=0.0043, act=(0, 143))
    x = rng.integers(0, 256, (1, hw, hw, c), dtype=np.uint8)
    check(desc, x, isa, expect, threads=2)


@pytest.mark.parametrize("isa,expect", LEVELS)
@pytest.mark.parametrize("stride", [1, 2])
def test_weights_near_zero_point(isa, expect, stride):
    """Real models' weights sit within s8 of w_zp with a few outlier taps: blocks whose
    w - w_zp all fit s8 (no extra terms), single outliers in one kernel row, and
    w - w_zp = +-255 (three s8 parts), on channel counts with and without tails."""
    require(isa, expect)
    rng = np.random.default_rng(11 + stride)
    for i, (c, w_zp) in enumerate([(32, 110), (64, 130), (96, 128), (512, 94), (1024, 211), (45, 0), (70, 255),
                                   (33, 1), (17, 254)]):
        lo, hi = max(0, w_zp - 128), min(255, w_zp + 127)
        weights = rng.integers(lo, hi + 1, (3, 3, c)).astype(np.uint8)
        for _ in range(i % 4):  # outliers: random tap and channel set to 0 or 255
            weights[rng.integers(0, 3), rng.integers(0, 3), rng.integers(0, c)] = rng.choice([0, 255])
        hw = [5, 10, 7, 4, 3, 9, 8, 6, 11][i]
        desc = dw_layer(rng, hw, hw + i % 2, c, stride, "SAME", in_zp=[0, 128, 3][i % 3], w_zp=w_zp,
                        out_zp=[0, 0, 128][i % 3], real_multiplier=[0.0043, 0.02, 0.3][i % 3], weights=weights,
                        act=[(0, 255), (0, 143), (0, 255)][i % 3])
        x = rng.integers(0, 256, (1 + i % 2, hw, hw + i % 2, c), dtype=np.uint8)
        check(desc, x, isa, expect, threads=1 + i % 2)


@pytest.mark.parametrize("isa,expect", LEVELS)
@pytest.mark.parametrize("stride", [1, 2])
def test_few_rows_two_threads(isa, expect, stride):
    """Layers with few output rows (split by channel blocks when those divide evenly
    between the threads), with channel tails, batch 1 and 3."""
    require(isa, expect)
    rng = np.random.default_rng(21 + stride)
    for h, w, c, batch in [(5, 5, 1024, 1), (3, 5, 64, 1), (2, 2, 96, 3), (1, 7, 128, 1), (4, 3, 40, 1),
                           (3, 3, 70, 3), (5, 4, 33, 1), (2, 9, 256, 1)]:
        desc = dw_layer(rng, h, w, c, stride, "SAME", in_zp=int(rng.integers(0, 256)), w_zp=int(rng.integers(0, 256)),
                        out_zp=int(rng.integers(0, 256)), real_multiplier=0.004)
        x = rng.integers(0, 256, (batch, h, w, c), dtype=np.uint8)
        check(desc, x, isa, expect, threads=2)


@pytest.mark.parametrize("isa,expect", LEVELS)
@pytest.mark.parametrize("stride", [1, 2])
def test_oversized_accumulators_fall_back_to_scalar(isa, expect, stride):
    """The 3x3 kernels' requantization needs 2 * (acc << left) and out_zp * 2^right to
    fit int32; past that (multipliers far above 1 or below 2^-22) the oracle takes the
    layer. Just inside the bound (2^9: left shift 10) the fast kernel stays exact."""
    require(isa, expect)
    rng = np.random.default_rng(5)
    for mult, out_zp in [(2.0 ** 13, 0), (3000.0, 255), (2.0 ** -24, 255), (3e-8, 128), (2.0 ** 9, 128)]:
        desc = dw_layer(rng, 6, 6, 40, stride, "SAME", in_zp=128, w_zp=0, out_zp=out_zp, real_multiplier=mult)
        x = rng.integers(0, 256, (1, 6, 6, 40), dtype=np.uint8)
        check(desc, x, isa, "mnq_dwconv_u8__scalar" if mult > 1000 or mult < 1e-7 else expect)


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512vnni"])
def test_other_shapes_fall_back_to_scalar(isa):
    """Shapes the 3x3 kernels do not handle (5x5, unequal strides) stay on the oracle."""
    require(isa)
    rng = np.random.default_rng(0)
    for k, stride in [((5, 5), (1, 1)), ((3, 3), (1, 2)), ((3, 3), (3, 3))]:
        desc = layer_desc("depthwise", (9, 9, 5), ((9 - k[0]) // stride[0] + 1, (9 - k[1]) // stride[1] + 1, 5),
                          k=k, stride=stride, rng=rng)
        assert run_layer(desc, np.zeros((1, 9, 9, 5), np.uint8), isa)[1] == "mnq_dwconv_u8__scalar"
