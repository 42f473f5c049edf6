"""The QUANTIZE / DEQUANTIZE ops at a network's edges, in numpy, with TFLite's
reference arithmetic (docs/exactness.md, "int8 models"), and the int8 <-> uint8
view the kernels run int8 layers in (x + 128).
"""
from __future__ import annotations

import numpy as np

from .graph import Edge, Quant
from .plan import quantize_multiplier

RANGES = {"uint8": (0, 255), "int8": (-128, 127)}


def int8_to_internal(x: np.ndarray) -> np.ndarray:
    """int8 values x -> the uint8 values x + 128 the kernels run (flipping the top bit)."""
    return (x.view(np.uint8) ^ np.uint8(0x80)) if x.dtype == np.int8 else x


def internal_to(t: np.ndarray, dtype: str) -> np.ndarray:
    """Kernel bytes (uint8) -> the network's own type."""
    return (t ^ np.uint8(0x80)).view(np.int8) if dtype == "int8" else t


def mul_by_quantized_multiplier(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier on int32 values (as int64), double rounding."""
    left, right = max(shift, 0), max(-shift, 0)
    a = ((x.astype(np.int64) << left) + 2**31) % 2**32 - 2**31  # the int32 shift wraps
    ab = a * multiplier
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # C division truncates
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


def requantize(x: np.ndarray, in_q: Quant, out_q: Quant, out_dtype: str) -> np.ndarray:
    """QUANTIZE between 8-bit types: TFLite's Requantize, multiplier from s_in / s_out in double."""
    multiplier, shift = quantize_multiplier(float(np.float32(in_q.scale)) / float(np.float32(out_q.scale)))
    y = mul_by_quantized_multiplier(x.astype(np.int64) - in_q.zero_point, multiplier, shift) + out_q.zero_point
    lo, hi = RANGES[out_dtype]
    return np.clip(y, lo, hi).astype(out_dtype)


def quantize_float(x: np.ndarray, q: Quant, out_dtype: str) -> np.ndarray:
    """QUANTIZE float32 -> 8 bit: round(x / scale) in float32, half away from zero, + zero point."""
    ratio = (x.astype(np.float32) / np.float32(q.scale)).astype(np.float64)  # the float32 quotient
    rounded = np.sign(ratio) * np.floor(np.abs(ratio) + 0.5)  # exact in float64, as std::round
    lo, hi = RANGES[out_dtype]
    return np.clip(rounded + q.zero_point, lo, hi).astype(out_dtype)


def dequantize(x: np.ndarray, q: Quant) -> np.ndarray:
    """DEQUANTIZE 8 bit -> float32: scale (as a double) * (x - zero point), rounded to float32."""
    return (float(np.float32(q.scale)) * (x.astype(np.float64) - q.zero_point)).astype(np.float32)


def apply(edge: Edge, x: np.ndarray) -> np.ndarray:
    if edge.op == "dequantize":
        return dequantize(x, edge.in_quant)
    if edge.in_dtype == "float32":
        if not np.isfinite(x).all():
            raise ValueError("input contains NaN or infinite values")
        return quantize_float(x, edge.out_quant, edge.out_dtype)
    return requantize(x, edge.in_quant, edge.out_quant, edge.out_dtype)
