"""The layer list: what every model loader produces and the planner consumes.

A network is a chain of layers; layer i reads the output of layer i-1 (or the
model input) and all tensors are uint8 NHWC with one scale and zero point.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

OPS = ("conv", "depthwise", "avgpool", "softmax", "reshape")
PADDINGS = ("SAME", "VALID")
ACTIVATIONS = ("NONE", "RELU", "RELU6")


@dataclass(frozen=True)
class Quant:
    """Affine uint8 quantization: real = scale * (q - zero_point)."""

    scale: float  # held as the float32 value the model file stores
    zero_point: int


@dataclass
class Layer:
    op: str
    name: str  # name of the output tensor, as in the model file
    in_shape: tuple  # (H, W, C) of one image
    out_shape: tuple
    in_quant: Quant
    out_quant: Quant
    kernel: tuple = (1, 1)  # (kh, kw) for conv / depthwise / avgpool
    stride: tuple = (1, 1)
    padding: str = "VALID"
    activation: str = "NONE"
    weights: Optional[np.ndarray] = None  # uint8; conv [Cout,kh,kw,Cin], depthwise [kh,kw,C]
    weight_quant: Optional[Quant] = None
    bias: Optional[np.ndarray] = None  # int32 [Cout]
    beta: float = 1.0  # softmax


@dataclass
class Graph:
    layers: list
    input_name: str
    input_shape: tuple  # (H, W, C)
    input_quant: Quant
    labels: Optional[list] = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    def index_of(self, op: str, last: bool = True) -> Optional[int]:
        hits = [i for i, layer in enumerate(self.layers) if layer.op == op]
        if not hits:
            return None
        return hits[-1] if last else hits[0]
