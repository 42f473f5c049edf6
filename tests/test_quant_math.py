"""The fixed-point primitives and Prepare-time math, against definitions
written independently with exact rational arithmetic."""
import math
from fractions import Fraction

import numpy as np
import pytest

from mnq import _core
from mnq.plan import activation_range, conv_multiplier, quantize_multiplier, same_or_valid_padding, softmax_params

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
EDGE = [0, 1, -1, 2, -2, 3, -3, 7, -7, 2**30, -(2**30), 2**30 + 1, I32_MAX, I32_MIN, I32_MIN + 1, 123456789,
        -987654321, 1 << 15, -(1 << 15) - 1]


def srdhm_definition(a, b):
    """round(a*b / 2^31) with ties toward +inf; the single overflow case saturates."""
    if a == b == I32_MIN:
        return I32_MAX
    return math.floor(Fraction(a * b, 2**31) + Fraction(1, 2))


def rdpot_definition(x, e):
    """x / 2^e rounded to nearest, ties away from zero."""
    q = Fraction(x, 2**e)
    return int(math.copysign(math.floor(abs(q) + Fraction(1, 2)), x)) if x else 0


@pytest.mark.parametrize("a", EDGE)
def test_srdhm_edges(a):
    for b in EDGE:
        assert _core.srdhm(a, b) == srdhm_definition(a, b), (a, b)


def test_srdhm_random_and_ties():
    rng = np.random.default_rng(0)
    for a, b in rng.integers(I32_MIN, I32_MAX, (2000, 2), endpoint=True):
        assert _core.srdhm(int(a), int(b)) == srdhm_definition(int(a), int(b))
    # exact ties: a*b = (2k+1) * 2^30
    for a, b in [(1 << 15, 1 << 15), (-(1 << 15), 1 << 15), (3 << 14, 1 << 16), (-(3 << 14), 1 << 16)]:
        assert _core.srdhm(a, b) == srdhm_definition(a, b)


@pytest.mark.parametrize("e", [0, 1, 2, 5, 13, 30, 31])
def test_rdpot_edges_and_ties(e):
    values = EDGE + [(2 * k + 1) << (e - 1) for k in range(-3, 3)] if e else EDGE
    for x in values:
        if I32_MIN <= x <= I32_MAX:
            assert _core.rdpot(x, e) == rdpot_definition(x, e), (x, e)


def test_multiplier_application_matches_double_rounding_definition():
    rng = np.random.default_rng(1)
    cases = [((1 << 31) - 1, 0), ((1 << 31) - 1, 5), (1 << 30, -31), (1 << 30, -20), (1518500250, -8),
             (1073741824, 1), (2147483000, -1)]
    accs = [0, 1, -1, 255, -255, 10**6, -(10**6), 2**20 + 7, -(2**20) - 7, 123456, -654321]
    for m, s in cases:
        for acc in accs + [int(v) for v in rng.integers(-(2**24), 2**24, 200)]:
            if s > 0 and abs(acc) >= 2**31 >> s:
                continue  # the left shift would overflow; no valid model gets there
            expected = rdpot_definition(srdhm_definition(acc * (1 << max(s, 0)), m), max(-s, 0))
            assert _core.mul_by_multiplier(acc, m, s) == expected, (acc, m, s)


def test_quantize_multiplier():
    for real in [1e-6, 0.0001234, 0.25, 0.5, 0.999999, 1.0, 1.5, 3.7e-3]:
        m, s = quantize_multiplier(real)
        assert 2**30 <= m < 2**31
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2**-30
    # q rounds up to exactly 2^31: halve it and bump the exponent
    m, s = quantize_multiplier(1 - 2**-40)
    assert (m, s) == (2**30, 1)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0**-40) == (0, 0)  # exponent below -31: TFLite flushes to zero


def test_conv_multiplier_takes_the_product_in_float32():
    s_in, s_w, s_out = 0.0078125, 0.017052184, 0.023528477
    f32 = float(np.float32(s_in) * np.float32(s_w)) / float(np.float32(s_out))
    assert conv_multiplier(s_in, s_w, s_out) == quantize_multiplier(f32)
    # a pair where float32 and double products differ, so the test can tell them apart
    s_in, s_w, s_out = 0.1, 0.3, 0.7
    f64 = float(np.float32(s_in)) * float(np.float32(s_w)) / float(np.float32(s_out))
    f32 = float(np.float32(s_in) * np.float32(s_w)) / float(np.float32(s_out))
    assert f32 != f64
    assert conv_multiplier(s_in, s_w, s_out) == quantize_multiplier(f32)


def test_activation_ranges():
    assert activation_range("NONE", 0.1, 10) == (0, 255)
    assert activation_range("RELU", 0.1, 10) == (10, 255)
    assert activation_range("RELU6", 6 / 255, 0) == (0, 255)
    assert activation_range("RELU6", 0.05, 3) == (3, 123)
    assert activation_range("RELU6", 0.01, 200) == (200, 255)
    # 6 / 0.48 = 12.5 (up to float32 rounding): half way rounds away from zero
    assert activation_range("RELU6", 0.48, 0) == (0, 13)


@pytest.mark.parametrize("padding,n,k,s,expected", [
    ("SAME", 160, 3, 2, (80, 0)), ("SAME", 161, 3, 2, (81, 1)), ("SAME", 5, 3, 1, (5, 1)),
    ("SAME", 1, 3, 2, (1, 1)), ("SAME", 2, 3, 2, (1, 0)), ("VALID", 5, 5, 1, (1, 0)), ("VALID", 7, 3, 2, (3, 0)),
    ("SAME", 10, 5, 1, (10, 2))])
def test_tensorflow_same_padding(padding, n, k, s, expected):
    assert same_or_valid_padding(padding, n, k, s) == expected


def test_softmax_params_follow_tflite_preprocessing():
    m, shift, diff_min = softmax_params(1.0, 0.0980392)
    real = 0.0980392 * 2**26
    assert abs(m * 2.0 ** (shift - 31) - real) <= real * 2**-30
    assert diff_min == -math.floor(31 * 2**26 / 2**shift)
