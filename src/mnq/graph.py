"""The layer list: what every model loader produces and the planner consumes.

A network is a chain of layers; layer i reads the output of layer i-1 (or the
model input) and all tensors are uint8 NHWC with one scale and zero point.
int8 models (Graph.dtype "int8") are held in the same uint8 form: every int8
value x and zero point z appear as x + 128 and z + 128 (docs/exactness.md);
their QUANTIZE / DEQUANTIZE edge ops are Graph.input_edge / output_edge.
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
    # int8 conv/depthwise: float32 [Cout] weight scale of every output channel (a per-tensor
    # scale repeated); replaces weight_quant.scale. None for uint8 layers.
    channel_scales: Optional[np.ndarray] = None
    int8: bool = False  # an int8 layer of the file (TFLite's int8 rules), run as uint8


EDGE_DTYPES = ("uint8", "int8", "float32")


@dataclass(frozen=True)
class Edge:
    """A QUANTIZE or DEQUANTIZE op at the network's input or output, run in numpy
    exactly as TFLite's reference kernel. Quantization in the tensors' own units
    (an int8 zero point is the int8 one); None on the float side."""

    op: str  # "quantize" or "dequantize"
    name: str  # the output tensor's name
    in_dtype: str
    out_dtype: str
    in_quant: Optional[Quant]
    out_quant: Optional[Quant]


@dataclass
class Graph:
    layers: list
    input_name: str
    input_shape: tuple  # (H, W, C)
    input_quant: Quant
    labels: Optional[list] = None
    source: str = ""
    extra: dict = field(default_factory=dict)
    dtype: str = "uint8"  # the layers' type in the file: "uint8" or "int8"
    input_edge: Optional[Edge] = None
    output_edge: Optional[Edge] = None

    @property
    def input_dtype(self) -> str:
        """Type of the model's input tensor, as run() takes it."""
        return self.input_edge.in_dtype if self.input_edge else self.dtype

    @property
    def output_dtype(self) -> str:
        return self.output_edge.out_dtype if self.output_edge else self.dtype

    @property
    def scheme(self) -> str:
        """One line for `mnq info`: how the model is quantized."""
        if self.dtype == "uint8":
            text = "uint8 asymmetric, per-tensor weights (TFLite uint8)"
        else:
            per_channel = any(layer.channel_scales is not None and len(set(layer.channel_scales.tolist())) > 1
                              for layer in self.layers)
            text = ("int8 activations, symmetric int8 weights "
                    f"{'per output channel' if per_channel else 'per tensor'} (TFLite int8)")
        if self.input_dtype != self.dtype or self.output_dtype != self.dtype:
            text += f"; {self.input_dtype} input, {self.output_dtype} output"
        return text

    def index_of(self, op: str, last: bool = True) -> Optional[int]:
        hits = [i for i, layer in enumerate(self.layers) if layer.op == op]
        if not hits:
            return None
        return hits[-1] if last else hits[0]
