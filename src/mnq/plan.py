"""Layer list -> C layer descriptions, with TFLite's exact quantization math.

Every number here reproduces what TFLite's kernels compute at Prepare time
(quantization_util.cc, kernel_util.cc, padding.h); see docs/exactness.md.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import UnsupportedModelError
from .graph import Graph, Layer

OP_CODES = {"conv": 0, "depthwise": 1, "pointwise": 2, "avgpool": 3, "softmax": 4, "reshape": 5}
INT8_OFFSET = 128  # int8 layers run as uint8: value and zero point + 128 (graph.py)
MAX_DIM = 1 << 24            # any one dimension, kernel size or stride
MAX_TENSOR_BYTES = 1 << 30   # one image's tensor (the C library's limit too)
MIN_SCALE = float(np.finfo(np.float32).tiny) * 2 ** 8  # 6 / scale and 1 / scale stay finite in float32


def quantize_multiplier(real: float) -> tuple:
    """TFLite QuantizeMultiplier: real = M * 2^(shift - 31), M in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    m = math.floor(q * (1 << 31) + 0.5)  # round half away from zero; q > 0 here
    if m == 1 << 31:
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return int(m), int(shift)


def conv_multiplier(s_in: float, s_w: float, s_out: float) -> tuple:
    """uint8 layers: the product is taken in float32 first, exactly as TFLite does."""
    product = np.float32(s_in) * np.float32(s_w)
    return quantize_multiplier(float(product) / float(np.float32(s_out)))


def channel_multipliers(s_in: float, channel_scales, s_out: float) -> tuple:
    """int8 layers, one (multiplier, shift) per output channel: TFLite's per-channel rule
    takes every factor as a double, (s_in * s_w[c]) / s_out. int32 arrays [out_c]."""
    pairs = [quantize_multiplier(float(np.float32(s_in)) * float(s_w) / float(np.float32(s_out)))
             for s_w in np.asarray(channel_scales, np.float32)]
    return np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32)


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple:
    """TFLite CalculateActivationRangeQuantized for uint8 (f / scale in float32)."""

    def quantize(f):
        return zero_point + _round_half_away(float(np.float32(f) / np.float32(scale)))

    if activation == "RELU6":
        return max(0, quantize(0.0)), min(255, quantize(6.0))
    if activation == "RELU":
        return max(0, quantize(0.0)), 255
    return 0, 255


def same_or_valid_padding(padding: str, in_size: int, k: int, stride: int) -> tuple:
    """(out_size, pad_before) as TFLite computes them (pad_total // 2 before)."""
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size - k + stride) // stride
    pad_total = max((out - 1) * stride + k - in_size, 0)
    return out, pad_total // 2


def softmax_params(beta: float, in_scale: float) -> tuple:
    """TFLite PreprocessSoftmaxScaling + CalculateInputRadius, 5 integer bits."""
    int_bits = 5
    real = min(float(beta) * float(in_scale) * (1 << (31 - int_bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise UnsupportedModelError(f"softmax input scale {in_scale} with beta {beta} is too small")
    max_input_rescaled = ((1 << int_bits) - 1) * (1 << (31 - int_bits)) / (1 << left_shift)
    return multiplier, left_shift, -int(math.floor(max_input_rescaled))


def check_quant(quant, what: str):
    """A uint8 tensor's quantization must give finite TFLite arithmetic."""
    scale, zp = quant.scale, quant.zero_point
    if not (math.isfinite(scale) and MIN_SCALE <= scale <= 1e30):
        raise UnsupportedModelError(f"{what}: quantization scale {scale!r} is not a usable positive number")
    if not 0 <= zp <= 255:
        raise UnsupportedModelError(f"{what}: zero point {zp} outside [0, 255]")


def check_layer(layer: Layer):
    """Reject shapes and parameters that would overflow before anything is allocated."""
    what = f"layer '{layer.name}' ({layer.op})"
    for shape in (layer.in_shape, layer.out_shape):
        if len(shape) != 3 or any(not 1 <= int(v) <= MAX_DIM for v in shape):
            raise UnsupportedModelError(f"{what}: invalid tensor shape {tuple(shape)}")
        if math.prod(int(v) for v in shape) > MAX_TENSOR_BYTES:
            raise UnsupportedModelError(f"{what}: tensor {tuple(shape)} is larger than 1 GiB per image")
    if any(not 1 <= int(v) <= MAX_DIM for v in tuple(layer.kernel) + tuple(layer.stride)):
        raise UnsupportedModelError(f"{what}: kernel {layer.kernel}, stride {layer.stride}")
    check_quant(layer.in_quant, what + " input")
    check_quant(layer.out_quant, what + " output")
    if layer.op in ("conv", "depthwise"):
        if layer.weight_quant is None or layer.weights is None:
            raise UnsupportedModelError(f"{what}: no weights")
        check_quant(layer.weight_quant, what + " weights")
        scales = layer.channel_scales
        if scales is not None and not (len(scales) == layer.out_shape[2] and np.isfinite(scales).all()
                                       and (scales >= MIN_SCALE).all() and (scales <= 1e30).all()):
            raise UnsupportedModelError(f"{what}: per-channel weight scales are not {layer.out_shape[2]} usable "
                                        "positive numbers")
    if layer.op == "softmax" and not (math.isfinite(layer.beta) and 0 < layer.beta <= 1e6):
        raise UnsupportedModelError(f"{what}: beta {layer.beta!r}")


def layer_desc(layer: Layer) -> dict:
    """One C mnq_layer_desc as a dict (fields named as in mnq.h)."""
    check_layer(layer)
    (in_h, in_w, in_c), (out_h, out_w, out_c) = layer.in_shape, layer.out_shape
    d = dict(op=OP_CODES[layer.op], in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
             k_h=1, k_w=1, stride_h=1, stride_w=1, pad_top=0, pad_left=0,
             in_zp=layer.in_quant.zero_point, w_zp=0, out_zp=layer.out_quant.zero_point,
             multiplier=0, shift=0, channel_multipliers=None, channel_shifts=None,
             act_min=0, act_max=255, weights=None, bias=None,
             softmax_multiplier=0, softmax_left_shift=0, softmax_diff_min=0,
             pool_center=INT8_OFFSET if layer.int8 and layer.op == "avgpool" else 0)
    if layer.op in ("conv", "depthwise", "avgpool"):
        (kh, kw), (sh, sw) = layer.kernel, layer.stride
        if sh < 1 or sw < 1 or kh < 1 or kw < 1:
            raise UnsupportedModelError(f"layer '{layer.name}': kernel {layer.kernel}, stride {layer.stride}")
        exp_h, pad_top = same_or_valid_padding(layer.padding, in_h, kh, sh)
        exp_w, pad_left = same_or_valid_padding(layer.padding, in_w, kw, sw)
        if (exp_h, exp_w) != (out_h, out_w):
            raise UnsupportedModelError(
                f"layer '{layer.name}': output {out_h}x{out_w} does not follow from input {in_h}x{in_w}, "
                f"kernel {kh}x{kw}, stride {sh}x{sw}, {layer.padding} padding (expected {exp_h}x{exp_w})")
        d.update(k_h=kh, k_w=kw, stride_h=sh, stride_w=sw, pad_top=pad_top, pad_left=pad_left)
        d["act_min"], d["act_max"] = activation_range(layer.activation, layer.out_quant.scale,
                                                      layer.out_quant.zero_point)
    if layer.op in ("conv", "depthwise"):
        if not 0 <= layer.weight_quant.zero_point <= 255 or not 0 <= layer.in_quant.zero_point <= 255:
            raise UnsupportedModelError(f"layer '{layer.name}': zero point outside [0, 255]")
        d["w_zp"] = layer.weight_quant.zero_point
        if layer.int8:
            if layer.channel_scales is None or len(layer.channel_scales) != out_c:
                raise UnsupportedModelError(f"layer '{layer.name}': int8 weights need {out_c} channel scales")
            mults, shifts = channel_multipliers(layer.in_quant.scale, layer.channel_scales, layer.out_quant.scale)
            d["multiplier"], d["shift"] = int(mults[0]), int(shifts[0])
            if (mults != mults[0]).any() or (shifts != shifts[0]).any():  # else per tensor: every kernel serves
                d["channel_multipliers"], d["channel_shifts"] = mults, shifts
        else:
            d["multiplier"], d["shift"] = conv_multiplier(layer.in_quant.scale, layer.weight_quant.scale,
                                                          layer.out_quant.scale)
        d["weights"] = np.ascontiguousarray(layer.weights, dtype=np.uint8)
        d["bias"] = None if layer.bias is None else np.ascontiguousarray(layer.bias, dtype=np.int32)
        if layer.op == "conv" and layer.kernel == (1, 1) and layer.stride == (1, 1) and (in_h, in_w) == (out_h, out_w):
            d["op"] = OP_CODES["pointwise"]
    if layer.op == "softmax":
        d["softmax_multiplier"], d["softmax_left_shift"], d["softmax_diff_min"] = softmax_params(
            layer.beta, layer.in_quant.scale)
    return d


def check_edge(edge):
    """An input/output QUANTIZE or DEQUANTIZE divides by its scales (edges.py): each must be usable."""
    for quant, side in ((edge.in_quant, "input"), (edge.out_quant, "output")):
        if quant is not None and not (math.isfinite(quant.scale) and MIN_SCALE <= quant.scale <= 1e30):
            raise UnsupportedModelError(f"{edge.op.upper()} '{edge.name}': {side} quantization scale "
                                        f"{quant.scale!r} is not a usable positive number")


def plan(graph: Graph) -> list:
    for edge in (graph.input_edge, graph.output_edge):
        if edge is not None:
            check_edge(edge)
    return [layer_desc(layer) for layer in graph.layers]
