"""Build single-layer nets for kernel tests: every fast kernel is compared,
byte for byte, with the scalar oracle on the same layer description."""
import numpy as np

from mnq import _core
from mnq.plan import OP_CODES, quantize_multiplier, softmax_params


def layer_desc(op, in_hwc, out_hwc, *, k=(1, 1), stride=(1, 1), pad=(0, 0), in_zp=128, w_zp=128, out_zp=0,
               real_multiplier=0.01, act=(0, 255), weights=None, bias=None, rng=None, softmax=None,
               real_multipliers=None, pool_center=0):
    """A mnq_layer_desc dict with random weights/bias unless given; softmax=(beta, input_scale);
    real_multipliers: one per output channel (per-channel requantization)."""
    rng = rng or np.random.default_rng(0)
    (ih, iw, ic), (oh, ow, oc) = in_hwc, out_hwc
    m, s = quantize_multiplier(real_multiplier)
    sm = softmax_params(*softmax) if softmax else (0, 0, 0)
    if weights is None and op in ("conv", "pointwise"):
        weights = rng.integers(0, 256, (oc, k[0], k[1], ic), dtype=np.uint8)
    if weights is None and op == "depthwise":
        weights = rng.integers(0, 256, (k[0], k[1], oc), dtype=np.uint8)
    if bias is None and op in ("conv", "pointwise", "depthwise"):
        bias = rng.integers(-20000, 20000, oc, dtype=np.int32)
    return dict(op=OP_CODES[op], in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc,
                k_h=k[0], k_w=k[1], stride_h=stride[0], stride_w=stride[1], pad_top=pad[0], pad_left=pad[1],
                in_zp=in_zp, w_zp=w_zp, out_zp=out_zp, multiplier=m, shift=s, act_min=act[0], act_max=act[1],
                weights=weights, bias=bias, softmax_multiplier=sm[0], softmax_left_shift=sm[1], softmax_diff_min=sm[2],
                pool_center=pool_center, **channel_requantization(real_multipliers))


def channel_requantization(real_multipliers):
    if real_multipliers is None:
        return dict(channel_multipliers=None, channel_shifts=None)
    pairs = [quantize_multiplier(r) for r in real_multipliers]
    return dict(channel_multipliers=np.array([m for m, _ in pairs], np.int32),
                channel_shifts=np.array([s for _, s in pairs], np.int32))


def run_layer(desc, x, isa, num_threads=1):
    """Run one layer on uint8 input x [N,H,W,C]; returns (output, kernel name)."""
    net = _core.Net([desc], isa)
    net.adapt_threads = False  # the tiling of exactly num_threads, whatever else the machine runs
    n = x.shape[0]
    out = np.empty(n * net.tensor_sizes[1], np.uint8)
    scratch = np.empty(max(net.scratch_bytes(num_threads), 1), np.uint8)
    net.run([np.ascontiguousarray(x).reshape(-1), out], n, num_threads, scratch)
    return out.reshape(n, desc["out_h"], desc["out_w"], desc["out_c"]), net.kernel_names()[0]
