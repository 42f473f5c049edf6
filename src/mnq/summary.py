"""Model size and cost, computed from the layer shapes (for `mnq info`)."""
from __future__ import annotations

from .graph import Layer


def layer_macs(layer: Layer) -> int:
    """Multiply-accumulates of one image through the layer (pooling and softmax: 0)."""
    out_h, out_w, out_c = layer.out_shape
    kh, kw = layer.kernel
    if layer.op == "conv":
        return out_h * out_w * out_c * kh * kw * layer.in_shape[2]
    if layer.op == "depthwise":
        return out_h * out_w * out_c * kh * kw
    return 0


def layer_params(layer: Layer) -> int:
    """Weights plus biases."""
    weights = 0 if layer.weights is None else int(layer.weights.size)
    bias = 0 if layer.bias is None else int(layer.bias.size)
    return weights + bias


def shape_text(shape: tuple) -> str:
    return "x".join(str(v) for v in shape)
