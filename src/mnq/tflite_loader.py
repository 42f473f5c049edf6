"""Read a uint8 or int8 MobileNet-family .tflite flatbuffer into the layer list.

int8 models (TFLite's int8 spec: int8 activations, symmetric int8 weights per
output channel) are held in uint8 form (graph.py); a QUANTIZE / DEQUANTIZE the
converter puts at the input or output becomes the graph's edge op.

Parsing uses the `tflite` schema package. Any structural damage in the file
becomes ModelFormatError; a well-formed model mnq cannot run exactly becomes
UnsupportedModelError naming the op or tensor.
"""
from __future__ import annotations

import math

import numpy as np
import tflite

from .errors import ModelFormatError, UnsupportedModelError
from .graph import Edge, Graph, Layer, Quant

_OPS = {
    tflite.BuiltinOperator.CONV_2D: "conv",
    tflite.BuiltinOperator.DEPTHWISE_CONV_2D: "depthwise",
    tflite.BuiltinOperator.AVERAGE_POOL_2D: "avgpool",
    tflite.BuiltinOperator.SOFTMAX: "softmax",
    tflite.BuiltinOperator.RESHAPE: "reshape",
    tflite.BuiltinOperator.SQUEEZE: "reshape",
}
_ACTIVATIONS = {
    tflite.ActivationFunctionType.NONE: "NONE",
    tflite.ActivationFunctionType.RELU: "RELU",
    tflite.ActivationFunctionType.RELU6: "RELU6",
}
_PADDINGS = {tflite.Padding.SAME: "SAME", tflite.Padding.VALID: "VALID"}
_EDGE_OPS = {tflite.BuiltinOperator.QUANTIZE: "quantize", tflite.BuiltinOperator.DEQUANTIZE: "dequantize"}
_LAYER_TYPES = {tflite.TensorType.UINT8: "uint8", tflite.TensorType.INT8: "int8"}
_EDGE_TYPES = {**_LAYER_TYPES, tflite.TensorType.FLOAT32: "float32"}
INT8_OFFSET = 128  # int8 value x is run as the uint8 value x + 128
_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_ACT_NAMES = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}


def load_tflite(data: bytes, source: str = "") -> Graph:
    """Parse .tflite bytes. Raises ModelFormatError or UnsupportedModelError."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFormatError(f"{source or 'data'}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        return _Reader(data, source).graph()
    except (UnsupportedModelError, ModelFormatError):
        raise
    except Exception as exc:  # the schema reader fails in many ways on damaged bytes
        raise ModelFormatError(f"{source}: corrupt or truncated TFLite file ({type(exc).__name__}: {exc})") from None


class _Reader:
    def __init__(self, data: bytes, source: str):
        self.data = data
        self.source = source
        self.model = tflite.Model.GetRootAsModel(data, 0)

    def fail(self, msg):
        return UnsupportedModelError(f"{self.source}: {msg}")

    def graph(self) -> Graph:
        m = self.model
        if m.Version() != 3:
            raise ModelFormatError(f"{self.source}: TFLite schema version {m.Version()}, expected 3")
        if m.SubgraphsLength() != 1:
            raise self.fail(f"{m.SubgraphsLength()} subgraphs; mnq runs single-subgraph models only")
        self.sg = m.Subgraphs(0)
        sg = self.sg
        if sg.InputsLength() != 1 or sg.OutputsLength() != 1:
            raise self.fail("the model must have exactly one input and one output tensor")
        input_index = int(sg.Inputs(0))
        in_t = self.tensor(input_index)
        in_shape = self.shape(in_t, input_index)
        if len(in_shape) != 4 or in_shape[0] != 1:
            raise self.fail(f"input tensor '{self.name(input_index)}' has shape {in_shape}; expected [1,H,W,C]")

        ops = [sg.Operators(i) for i in range(sg.OperatorsLength())]
        if not ops:
            raise self.fail("the model has no operators")
        codes = [self.opcode(op, i) for i, op in enumerate(ops)]
        first = 1 if codes[0] in _EDGE_OPS else 0
        last = len(ops) - 1 if len(ops) - 1 > first and codes[-1] in _EDGE_OPS else len(ops)
        if first >= last:
            raise self.fail("the model has no operators besides QUANTIZE / DEQUANTIZE")
        self.dtype = self.layer_dtype(ops[first], first, _OPS.get(codes[first], "first layer"))
        input_edge = self.edge(ops[0], 0, at_input=True) if first else None
        output_edge = self.edge(ops[-1], len(ops) - 1, at_input=False) if last < len(ops) else None
        if input_edge is None:
            self.check_type(input_index)

        layers = []
        current = int(ops[0].Outputs(0)) if first else input_index
        if first and int(ops[0].Inputs(0)) != input_index:
            raise self.fail("the input QUANTIZE does not read the model input")
        for i in range(first, last):
            layer, inputs, out_index = self.layer(ops[i], i, codes[i])
            if inputs[0] != current:
                raise self.fail(f"operator {i} ({layer.op}) does not consume the previous operator's output; "
                                "mnq runs sequential (chain) networks only")
            layers.append(layer)
            current = out_index
        if output_edge is not None:
            if int(ops[-1].Inputs(0)) != current:
                raise self.fail(f"the output {output_edge.op.upper()} does not read the last layer's output")
            current = int(ops[-1].Outputs(0))
        if current != int(sg.Outputs(0)):
            raise self.fail("the last operator's output is not the model output")
        first_input = int(ops[0].Outputs(0)) if first else input_index
        return Graph(
            layers=layers,
            input_name=self.name(input_index),
            input_shape=tuple(in_shape[1:]),
            input_quant=self.quant(first_input),
            source=self.source,
            dtype=self.dtype,
            input_edge=input_edge,
            output_edge=output_edge,
        )

    def opcode(self, op, i):
        m = self.model
        idx = op.OpcodeIndex()
        if not 0 <= idx < m.OperatorCodesLength():
            raise ModelFormatError(f"{self.source}: operator {i} has invalid opcode index {idx}")
        oc = m.OperatorCodes(idx)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if code not in _OPS and code not in _EDGE_OPS:
            what = _OP_NAMES.get(code, f"builtin code {code}")
            if code == tflite.BuiltinOperator.CUSTOM:
                what = f"CUSTOM ({(oc.CustomCode() or b'?').decode('utf-8', 'replace')})"
            raise self.fail(f"operator {i} is {what}; mnq supports CONV_2D, DEPTHWISE_CONV_2D, "
                            "AVERAGE_POOL_2D, RESHAPE, SQUEEZE and SOFTMAX, with QUANTIZE / DEQUANTIZE "
                            "only as the first or last operator")
        return code

    def io(self, op, i, what):
        inputs = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
        outputs = [int(v) for v in op.OutputsAsNumpy()] if op.OutputsLength() else []
        if not inputs or len(outputs) != 1:
            raise ModelFormatError(f"{self.source}: operator {i} ({what}) has malformed inputs/outputs")
        self.check_indices(inputs, outputs, i, what)
        return inputs, outputs

    def type_name(self, index):
        t = self.tensor(index).Type()
        return _TYPE_NAMES.get(t, str(t))

    def layer_dtype(self, op, i, kind):
        """The network's activation type, from the first layer's input: uint8 or int8."""
        inputs, _ = self.io(op, i, kind)
        t = self.tensor(inputs[0]).Type()
        if t not in _LAYER_TYPES:
            kind = {tflite.TensorType.INT16: "int16 activations (16x8 quantization)",
                    tflite.TensorType.FLOAT32: "float activations (a float or hybrid model)"}.get(t, "this type")
            raise self.fail(f"tensor '{self.name(inputs[0])}' has type {self.type_name(inputs[0])}: mnq does not "
                            f"run {kind}; it runs uint8- and int8-quantized models")
        return _LAYER_TYPES[t]

    def edge(self, op, i, at_input):
        """The QUANTIZE / DEQUANTIZE at the network edge (computed in numpy, model.py)."""
        code = max(int(self.model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()),
                   int(self.model.OperatorCodes(op.OpcodeIndex()).DeprecatedBuiltinCode()))
        kind = _EDGE_OPS[code]
        inputs, outputs = self.io(op, i, kind)
        x, y = inputs[0], outputs[0]
        inner = y if at_input else x
        outer = x if at_input else y
        self.check_type(inner)
        if self.tensor(outer).Type() not in _EDGE_TYPES:
            raise self.fail(f"operator {i} ({kind.upper()}): tensor '{self.name(outer)}' has type "
                            f"{self.type_name(outer)}; mnq's edges convert uint8, int8 or float32 only")
        if self.shape(self.tensor(x), x) != self.shape(self.tensor(y), y):
            raise ModelFormatError(f"{self.source}: operator {i} ({kind}) changes the shape")
        in_dtype, out_dtype = _EDGE_TYPES[self.tensor(x).Type()], _EDGE_TYPES[self.tensor(y).Type()]
        if (kind == "dequantize") != (out_dtype == "float32") or (kind == "quantize" and in_dtype == out_dtype):
            raise self.fail(f"operator {i} ({kind.upper()}) converts {in_dtype} to {out_dtype}; mnq supports "
                            "QUANTIZE float32/uint8/int8 -> uint8/int8 (a change of type) and DEQUANTIZE -> float32")
        native = lambda index, dtype: None if dtype == "float32" else self.native_quant(index, dtype)  # noqa: E731
        return Edge(op=kind, name=self.name(y), in_dtype=in_dtype, out_dtype=out_dtype,
                    in_quant=native(x, in_dtype), out_quant=native(y, out_dtype))

    # ---- tensors ----
    def tensor(self, index):
        if not 0 <= index < self.sg.TensorsLength():
            raise ModelFormatError(f"{self.source}: tensor index {index} out of range")
        return self.sg.Tensors(index)

    def name(self, index):
        raw = self.tensor(index).Name()
        return raw.decode("utf-8", "replace") if raw else f"tensor_{index}"

    def shape(self, t, index):
        shape = [int(v) for v in t.ShapeAsNumpy()] if t.ShapeLength() else []
        if any(v <= 0 or v > 1 << 24 for v in shape) or math.prod(shape) > 1 << 30:
            raise ModelFormatError(f"{self.source}: tensor '{self.name(index)}' has invalid shape {shape}")
        return shape

    def check_type(self, index, expected=None):
        """An activation tensor has the network's type (or `expected`, e.g. INT32 biases)."""
        t = self.tensor(index)
        if expected is None:
            expected = tflite.TensorType.INT8 if self.dtype == "int8" else tflite.TensorType.UINT8
        if t.Type() != expected:
            why = {tflite.TensorType.INT16: "; mnq does not run int16 activations (16x8 quantization)",
                   tflite.TensorType.FLOAT32: "; mnq does not run float or hybrid models"}.get(t.Type(), "")
            raise self.fail(f"tensor '{self.name(index)}' has type {self.type_name(index)}; expected "
                            f"{_TYPE_NAMES[expected]} as the rest of this {self.dtype} network{why}")

    def quant(self, index):
        """Per-tensor quantization in the uint8 form the kernels run (int8 zero point + 128)."""
        q = self.native_quant(index, self.dtype)
        return Quant(q.scale, q.zero_point + INT8_OFFSET) if self.dtype == "int8" else q

    def native_quant(self, index, dtype):
        q = self.tensor(index).Quantization()
        if q is None or q.ScaleLength() == 0 or q.ZeroPointLength() == 0:
            raise self.fail(f"tensor '{self.name(index)}' has no quantization parameters")
        if q.ScaleLength() != 1 or q.ZeroPointLength() != 1:
            raise self.fail(f"tensor '{self.name(index)}' is quantized per channel ({q.ScaleLength()} scales); "
                            "mnq supports per-tensor quantization only")
        scale = float(np.float32(q.Scale(0)))
        zp = int(q.ZeroPoint(0))
        if not (np.isfinite(scale) and scale > 0):
            raise self.fail(f"tensor '{self.name(index)}' has invalid scale {scale}")
        lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
        if not lo <= zp <= hi:
            raise self.fail(f"tensor '{self.name(index)}' has zero point {zp} outside the {dtype} range")
        return Quant(scale, zp)

    def weight_quant(self, index, out_c, channel_axis, what):
        """int8 weights: symmetric (zero points 0), one scale per output channel or one
        for all. Returns (Quant in uint8 form, float32 [out_c] channel scales)."""
        q = self.tensor(index).Quantization()
        name = self.name(index)
        if q is None or q.ScaleLength() == 0:
            raise self.fail(f"{what} filter '{name}' has no quantization parameters")
        scales = np.array([q.Scale(k) for k in range(q.ScaleLength())], np.float32)
        zps = [int(q.ZeroPoint(k)) for k in range(q.ZeroPointLength())]
        if len(scales) not in (1, out_c) or len(zps) != len(scales):
            raise self.fail(f"{what} filter '{name}' has {len(scales)} scales and {len(zps)} zero points for "
                            f"{out_c} output channels")
        if len(scales) > 1 and q.QuantizedDimension() != channel_axis:
            raise self.fail(f"{what} filter '{name}' is quantized along dimension {q.QuantizedDimension()}; "
                            f"TFLite's {what} takes per-channel scales along dimension {channel_axis}")
        if any(zps):
            raise self.fail(f"{what} filter '{name}' has nonzero zero points (asymmetric int8 weights); "
                            "TFLite's int8 spec and mnq require symmetric weights (zero point 0)")
        if not (np.isfinite(scales).all() and (scales > 0).all()):
            raise self.fail(f"{what} filter '{name}' has an invalid scale")
        scales = np.broadcast_to(scales, (out_c,)).copy()
        return Quant(float(scales[0]), INT8_OFFSET), scales

    def constant(self, index, dtype, shape):
        t = self.tensor(index)
        b = t.Buffer()
        if not 0 < b < self.model.BuffersLength():
            raise ModelFormatError(f"{self.source}: constant tensor '{self.name(index)}' has no data buffer")
        buf = self.model.Buffers(b)
        count = math.prod(int(v) for v in shape)  # Python ints: np.prod would wrap at 2^63
        nbytes = count * np.dtype(dtype).itemsize
        if buf.DataLength():
            raw = buf.DataAsNumpy()
            if raw.size != nbytes:
                raise ModelFormatError(f"{self.source}: tensor '{self.name(index)}' holds {raw.size} bytes, "
                                       f"its shape {list(shape)} needs {nbytes}")
            return np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
        offset, size = int(buf.Offset()), int(buf.Size())
        if offset > 1 and size == nbytes and offset + size <= len(self.data):
            return np.frombuffer(self.data, dtype=np.dtype(dtype).newbyteorder("<"), count=count,
                                 offset=offset).astype(dtype).reshape(shape)
        raise ModelFormatError(f"{self.source}: tensor '{self.name(index)}' data is missing or the wrong size")

    # ---- operators ----
    def layer(self, op, i, code):
        kind = _OPS.get(code)
        if kind is None:
            raise self.fail(f"operator {i} is {_OP_NAMES.get(code, code)}; QUANTIZE / DEQUANTIZE are supported "
                            "only as the model's first or last operator")
        inputs, outputs = self.io(op, i, kind)
        x, y = inputs[0], outputs[0]
        self.check_type(x)
        self.check_type(y)
        in_shape, out_shape = self.shape(self.tensor(x), x), self.shape(self.tensor(y), y)
        layer = Layer(op=kind, name=self.name(y), in_shape=_hwc(in_shape), out_shape=_hwc(out_shape),
                      in_quant=self.quant(x), out_quant=self.quant(y), int8=self.dtype == "int8")
        if len(in_shape) not in (2, 4) or len(out_shape) not in (2, 4) or in_shape[0] != 1 or out_shape[0] != 1:
            raise self.fail(f"operator {i} ({kind}): tensors must be [1,H,W,C] or [1,C], "
                            f"got {in_shape} -> {out_shape}")
        getattr(self, "_" + kind)(layer, op, inputs, i)
        return layer, inputs, y

    def check_indices(self, inputs, outputs, i, kind):
        """As in the TFLite schema, -1 marks an absent optional input and nothing else:
        -2 is not "no bias" but a damaged file (TFLite refuses it too)."""
        count = self.sg.TensorsLength()
        for role, indices in (("input", inputs), ("output", outputs)):
            for pos, index in enumerate(indices):
                absent = index == -1 and role == "input" and pos > 0  # required ones are checked per op
                if not (0 <= index < count or absent):
                    raise ModelFormatError(f"{self.source}: operator {i} ({kind}) {role} {pos} has invalid tensor "
                                           f"index {index} (the subgraph has {count} tensors; -1 marks an "
                                           "absent optional input)")

    def options(self, op, cls, i, kind):
        table = op.BuiltinOptions()
        if table is None:
            raise ModelFormatError(f"{self.source}: operator {i} ({kind}) has no options")
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def activation(self, opts, i, kind):
        act = opts.FusedActivationFunction()
        if act not in _ACTIVATIONS:
            raise self.fail(f"operator {i} ({kind}) has fused activation {_ACT_NAMES.get(act, act)}; "
                            "mnq supports NONE, RELU and RELU6")
        return _ACTIVATIONS[act]

    def padding(self, opts, i, kind):
        if opts.Padding() not in _PADDINGS:
            raise ModelFormatError(f"{self.source}: operator {i} ({kind}) has unknown padding {opts.Padding()}")
        return _PADDINGS[opts.Padding()]

    def _conv_common(self, layer, op, inputs, i, opts, weight_shape_of, channel_axis):
        if len(inputs) < 2 or inputs[1] == -1:
            raise ModelFormatError(f"{self.source}: operator {i} ({layer.op}) has no filter input")
        if opts.DilationHFactor() != 1 or opts.DilationWFactor() != 1:
            raise self.fail(f"operator {i} ({layer.op}) '{layer.name}' uses dilation "
                            f"{opts.DilationHFactor()}x{opts.DilationWFactor()}; mnq supports dilation 1 only")
        w = inputs[1]
        if self.dtype == "int8" and self.tensor(w).Type() == tflite.TensorType.FLOAT32:
            raise self.fail(f"operator {i} ({layer.op}) has float filter '{self.name(w)}' (a hybrid model); "
                            "mnq runs fully quantized models only")
        self.check_type(w)
        wshape = self.shape(self.tensor(w), w)
        if len(wshape) != 4:
            raise ModelFormatError(f"{self.source}: filter '{self.name(w)}' has shape {wshape}")
        if self.dtype == "int8":
            raw = self.constant(w, np.int8, wshape)
            layer.weights = weight_shape_of((raw.astype(np.int16) + INT8_OFFSET).astype(np.uint8))
            layer.weight_quant, layer.channel_scales = self.weight_quant(w, layer.out_shape[2], channel_axis,
                                                                         layer.op)
        else:
            layer.weights = weight_shape_of(self.constant(w, np.uint8, wshape))
            layer.weight_quant = self.quant(w)
        layer.kernel = (wshape[1], wshape[2])
        layer.stride = (opts.StrideH(), opts.StrideW())
        layer.padding = self.padding(opts, i, layer.op)
        layer.activation = self.activation(opts, i, layer.op)
        if len(inputs) > 2 and inputs[2] != -1:
            self.check_type(inputs[2], tflite.TensorType.INT32)
            layer.bias = self.constant(inputs[2], np.int32, [layer.out_shape[2]])
        return wshape

    def _conv(self, layer, op, inputs, i):
        opts = self.options(op, tflite.Conv2DOptions, i, "conv")
        wshape = self._conv_common(layer, op, inputs, i, opts, lambda w: w, 0)
        if wshape[0] != layer.out_shape[2] or wshape[3] != layer.in_shape[2]:
            raise ModelFormatError(f"{self.source}: conv '{layer.name}' filter {wshape} does not match "
                                   f"{layer.in_shape} -> {layer.out_shape}")

    def _depthwise(self, layer, op, inputs, i):
        opts = self.options(op, tflite.DepthwiseConv2DOptions, i, "depthwise")
        if layer.out_shape[2] != layer.in_shape[2]:
            raise self.fail(f"depthwise '{layer.name}' has depth multiplier "
                            f"{layer.out_shape[2] / layer.in_shape[2]:g}; mnq supports 1 only")
        wshape = self._conv_common(layer, op, inputs, i, opts, lambda w: w[0], 3)
        if wshape[0] != 1 or wshape[3] != layer.out_shape[2]:
            raise ModelFormatError(f"{self.source}: depthwise '{layer.name}' filter {wshape} does not match "
                                   f"{layer.out_shape[2]} channels")

    def _avgpool(self, layer, op, inputs, i):
        opts = self.options(op, tflite.Pool2DOptions, i, "avgpool")
        layer.kernel = (opts.FilterHeight(), opts.FilterWidth())
        layer.stride = (opts.StrideH(), opts.StrideW())
        layer.padding = self.padding(opts, i, "avgpool")
        layer.activation = self.activation(opts, i, "avgpool")

    def _softmax(self, layer, op, inputs, i):
        opts = self.options(op, tflite.SoftmaxOptions, i, "softmax")
        layer.beta = float(np.float32(opts.Beta()))
        q = layer.out_quant
        if q.zero_point != 0 or q.scale != float(np.float32(1 / 256)):  # int8: -128 + 128
            zp, need = (q.zero_point - INT8_OFFSET, "-128") if self.dtype == "int8" else (q.zero_point, "0")
            raise self.fail(f"softmax output '{layer.name}' is quantized with scale {q.scale}, zero point "
                            f"{zp}; TFLite's {self.dtype} softmax requires 1/256 and {need}")
        if layer.in_shape != layer.out_shape:
            raise ModelFormatError(f"{self.source}: softmax '{layer.name}' changes the shape")

    def _reshape(self, layer, op, inputs, i):
        if math.prod(layer.in_shape) != math.prod(layer.out_shape):
            raise ModelFormatError(f"{self.source}: reshape '{layer.name}' changes the element count")
        if layer.in_quant != layer.out_quant:
            raise self.fail(f"reshape '{layer.name}' changes the quantization; mnq expects a pure reshape")


def _hwc(shape):
    """[1,H,W,C] -> (H,W,C); [1,C] -> (1,1,C)."""
    return tuple(shape[1:]) if len(shape) == 4 else (1, 1, shape[-1]) if shape else (1, 1, 1)
