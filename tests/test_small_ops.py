"""Fast average pool and softmax against the scalar oracle, byte for byte."""
import numpy as np
import pytest
from harness import layer_desc, run_layer

from mnq import _core

FAST_ISAS = [isa for isa in _core.supported_isas() if isa != "scalar"]


@pytest.mark.parametrize("isa", FAST_ISAS)
@pytest.mark.parametrize("beta,scale", [(1.0, 0.0980392), (1.0, 0.25), (1.0, 0.01), (0.5, 0.17), (1.0, 1e-3),
                                        (2.0, 0.3)])
@pytest.mark.parametrize("depth", [1, 2, 10, 255, 1001, 1500])
def test_softmax_lut_matches_oracle(isa, beta, scale, depth):
    rng = np.random.default_rng(depth)
    d = layer_desc("softmax", (1, 1, depth), (1, 1, depth), softmax=(beta, scale))
    x = np.concatenate([rng.integers(0, 256, (4, 1, 1, depth), dtype=np.uint8),
                        rng.integers(120, 140, (2, 1, 1, depth), dtype=np.uint8),
                        np.zeros((1, 1, 1, depth), np.uint8), np.full((1, 1, 1, depth), 255, np.uint8)])
    x[-3, 0, 0, 0] = 255  # one dominant class
    fast, kernel = run_layer(d, x, isa, num_threads=2)
    ref, ref_kernel = run_layer(d, x, "scalar")
    assert kernel == "mnq_softmax_u8_lut" and ref_kernel == "mnq_softmax_u8__scalar"
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize("isa", FAST_ISAS)
@pytest.mark.parametrize("in_hw,k,stride,pad,out_hw", [
    ((5, 5), (5, 5), (1, 1), (0, 0), (1, 1)), ((7, 7), (7, 7), (2, 2), (0, 0), (1, 1)),
    ((6, 7), (3, 3), (2, 2), (0, 1), (3, 4)), ((9, 9), (3, 3), (1, 1), (1, 1), (9, 9)), ((1, 1), (1, 1), (1, 1), (0, 0), (1, 1))])
@pytest.mark.parametrize("channels", [1, 3, 17, 64, 1024])
def test_avgpool_matches_oracle(isa, in_hw, k, stride, pad, out_hw, channels):
    rng = np.random.default_rng(channels)
    for act in [(0, 255), (10, 200)]:
        d = layer_desc("avgpool", in_hw + (channels,), out_hw + (channels,), k=k, stride=stride, pad=pad, act=act)
        x = rng.integers(0, 256, (3,) + in_hw + (channels,), dtype=np.uint8)
        fast, kernel = run_layer(d, x, isa, num_threads=2)
        ref, _ = run_layer(d, x, "scalar")
        assert kernel == "mnq_avgpool_u8_channels"
        np.testing.assert_array_equal(fast, ref)
