"""Write small uint8 and int8 .tflite files for tests: synthetic MobileNet-family
members and deliberately unsupported variants, built with the flatbuffers schema API."""
import flatbuffers
import numpy as np
import tflite

CODES = {"conv": tflite.BuiltinOperator.CONV_2D, "depthwise": tflite.BuiltinOperator.DEPTHWISE_CONV_2D,
         "avgpool": tflite.BuiltinOperator.AVERAGE_POOL_2D, "softmax": tflite.BuiltinOperator.SOFTMAX,
         "reshape": tflite.BuiltinOperator.RESHAPE, "add": tflite.BuiltinOperator.ADD,
         "quantize": tflite.BuiltinOperator.QUANTIZE, "dequantize": tflite.BuiltinOperator.DEQUANTIZE}
TYPES = {"uint8": tflite.TensorType.UINT8, "int8": tflite.TensorType.INT8, "float32": tflite.TensorType.FLOAT32,
         "int16": tflite.TensorType.INT16}
ACTS = {"NONE": 0, "RELU": 1, "RELU6": 3, "TANH": 4}
PADS = {"SAME": tflite.Padding.SAME, "VALID": tflite.Padding.VALID}


def out_size(padding, n, k, s, dilation=1):
    k = (k - 1) * dilation + 1
    return (n + s - 1) // s if padding == "SAME" else (n - k + s) // s


def random_network(rng, size=(13, 11), channels=(3, 8, 12), depth=2, strides=(2, 1), paddings=("SAME", "VALID"),
                   acts=("RELU6", "RELU", "NONE"), classes=10, kernel=3):
    """A MobileNet-shaped chain: conv, [depthwise, pointwise]*depth, avgpool, 1x1 logits, reshape, softmax."""
    def q():
        return float(rng.uniform(0.01, 0.1)), int(rng.integers(0, 256))

    ops, c = [], channels[0]
    ops.append(dict(op="conv", out_c=channels[1], k=(kernel, kernel), stride=(strides[0],) * 2,
                    padding=paddings[0], act=acts[0], w_quant=q(), out_quant=q()))
    c = channels[1]
    for i in range(depth):
        ops.append(dict(op="depthwise", out_c=c, k=(3, 3), stride=(strides[i % len(strides)],) * 2,
                        padding=paddings[i % len(paddings)], act=acts[i % len(acts)], w_quant=q(), out_quant=q()))
        c2 = channels[2] if i == depth - 1 else c + 4
        ops.append(dict(op="conv", out_c=c2, k=(1, 1), stride=(1, 1), padding="SAME",
                        act=acts[(i + 1) % len(acts)], w_quant=q(), out_quant=q()))
        c = c2
    ops.append(dict(op="avgpool", k="global", stride=(1, 1), padding="VALID", act="NONE"))
    ops.append(dict(op="conv", out_c=classes, k=(1, 1), stride=(1, 1), padding="SAME", act="NONE",
                    w_quant=q(), out_quant=(float(rng.uniform(0.05, 0.2)), int(rng.integers(40, 200)))))
    ops.append(dict(op="reshape"))
    ops.append(dict(op="softmax", beta=1.0))
    return dict(input=(size[0], size[1], channels[0]), input_quant=(1 / 128, 128), ops=ops)


def random_int8_network(rng, size=(13, 11), channels=(3, 8, 12), depth=2, strides=(2, 1),
                        paddings=("SAME", "VALID"), acts=("RELU6", "RELU", "NONE"), classes=10, kernel=3,
                        log2_scales=(-9, -5), input_edge=None, output_edge=None, input_quant=(1 / 128, 0),
                        input_edge_quant=None):
    """The same chain as TFLite's int8 spec has it: int8 activations with zero points,
    symmetric int8 weights with one scale per output channel, drawn as 2^u with u
    uniform in log2_scales; softmax output 1/256, -128; optional QUANTIZE/DEQUANTIZE edges."""
    spec = random_network(rng, size, channels, depth, strides, paddings, acts, classes, kernel)
    for op in spec["ops"]:
        if "w_quant" in op:
            n = op["out_c"]
            op["w_quant"] = ([float(2.0 ** rng.uniform(*log2_scales)) for _ in range(n)], [0] * n,
                             0 if op["op"] == "conv" else 3)
        if "out_quant" in op:
            op["out_quant"] = (op["out_quant"][0], op["out_quant"][1] - 128)
    spec["ops"][-1]["out_quant"] = (1 / 256, -128)
    return dict(spec, input_quant=input_quant, dtype="int8", input_edge=input_edge, output_edge=output_edge,
                input_edge_quant=input_edge_quant)


def build(spec, rng=None, input_type=tflite.TensorType.UINT8, subgraphs=1, shapes=None):
    """spec: {'input': (H,W,C), 'input_quant': (scale, zp), 'ops': [...]} -> .tflite bytes.
    Each op dict: op, and as needed out_c, k, stride, padding, act, w_quant (a (scale, zp)
    pair, or lists for per-channel, with the quantized dimension third), out_quant, dilation,
    beta, bias, out_type. Weights and biases are random.
    spec 'dtype' "int8": int8 activations and weights (the weights in [-127, 127]); 'input_edge'
    / 'output_edge' a type ("uint8", "float32") put on the other side of a QUANTIZE or DEQUANTIZE;
    'weight_type' another filter type (hostile files).
    shapes: {tensor index: shape} written instead of the computed shapes (hostile files)."""
    rng = rng or np.random.default_rng(0)
    int8 = spec.get("dtype") == "int8"
    act_type = tflite.TensorType.INT8 if int8 else tflite.TensorType.UINT8
    if int8 and input_type == tflite.TensorType.UINT8:
        input_type = tflite.TensorType.INT8
    b = flatbuffers.Builder(1024)
    tensors, buffers, operators = [], [b""], []  # buffer 0 is the empty sentinel

    def add_tensor(name, shape, ttype, quant, data=None):
        buffers.append(b"" if data is None else data.tobytes())
        tensors.append((name, list(shape), ttype, quant, len(buffers) - 1))
        return len(tensors) - 1

    h, w, c = spec["input"]
    edge_in = spec.get("input_edge")
    if edge_in:  # the model input, then QUANTIZE to the network's type
        scale, zp = spec["input_quant"]
        outer_quant = None if edge_in == "float32" else \
            spec.get("input_edge_quant") or (scale, zp + 128 if edge_in == "uint8" else zp)
        add_tensor("input", (1, h, w, c), TYPES[edge_in], outer_quant)
        cur = add_tensor("input_quantized", (1, h, w, c), act_type, spec["input_quant"])
        operators.append(("quantize", [0], cur, None))
    else:
        cur = add_tensor("input", (1, h, w, c), input_type, spec["input_quant"])
    cur_quant, shape = spec["input_quant"], (h, w, c)
    for i, op in enumerate(spec["ops"]):
        kind, name = op["op"], f"layer{i}_{op['op']}"
        inputs, options = [cur], None
        h, w, c = shape if len(shape) == 3 else (1, 1, shape[0])
        if kind in ("conv", "depthwise"):
            kh, kw = op["k"]
            sh, sw = op["stride"]
            dil = op.get("dilation", 1)
            oc = op["out_c"]
            wq = op["w_quant"]
            wshape = (oc, kh, kw, c) if kind == "conv" else (1, kh, kw, oc)
            wt = rng.integers(-127, 128, wshape).astype(np.int8) if int8 else \
                rng.integers(0, 256, wshape, dtype=np.uint8)
            wtype = act_type
            if "weight_type" in spec:
                wtype = TYPES[spec["weight_type"]]
                wt = wt.astype(np.float32) if spec["weight_type"] == "float32" else wt
            scales = wq[0] if isinstance(wq[0], list) else [wq[0]]
            bias = rng.integers(-3000, 3000, oc, dtype=np.int32)
            if "bias" in op:  # a constant bias, e.g. a hostile one
                bias = np.full(oc, op["bias"], np.int32)
            inputs.append(add_tensor(name + "/weights", wshape, wtype, wq, wt))
            bias_quant = ([cur_quant[0] * s for s in scales], [0] * len(scales)) if len(scales) > 1 else \
                (cur_quant[0] * scales[0], 0)
            inputs.append(add_tensor(name + "/bias", (oc,), tflite.TensorType.INT32, bias_quant, bias))
            shape = (out_size(op["padding"], h, kh, sh, dil), out_size(op["padding"], w, kw, sw, dil), oc)
            options = (kind, op)
        elif kind == "avgpool":
            k = (h, w) if op["k"] == "global" else op["k"]
            op = dict(op, k=k)
            shape = (out_size(op["padding"], h, k[0], op["stride"][0]), out_size(op["padding"], w, k[1], op["stride"][1]), c)
            options = (kind, op)
        elif kind == "reshape":
            shape = (int(np.prod(shape)),)
            inputs.append(add_tensor(name + "/shape", (2,), tflite.TensorType.INT32, None,
                                     np.array([1, shape[0]], np.int32)))
        elif kind == "add":
            inputs.append(cur)
        elif kind == "softmax":
            options = (kind, op)
        out_quant = op.get("out_quant", ((1 / 256, -128 if int8 else 0) if kind == "softmax" else cur_quant))
        out_type = op.get("out_type", act_type)
        cur = add_tensor(name, (1,) + tuple(shape), out_type, out_quant)
        cur_quant = out_quant
        operators.append((kind, inputs, cur, options))
    edge_out = spec.get("output_edge")
    if edge_out:  # QUANTIZE to uint8 (1/256, 0) or DEQUANTIZE to float32
        q = None if edge_out == "float32" else (cur_quant[0], cur_quant[1] + 128)
        prev, cur = cur, add_tensor("output", (1,) + tuple(shape), TYPES[edge_out], q)
        operators.append(("dequantize" if edge_out == "float32" else "quantize", [prev], cur, None))

    # ---- serialize (children before parents, as flatbuffers requires) ----
    def vec_i32(values, start):
        start(b, len(values))
        for v in reversed(values):
            b.PrependInt32(int(v))
        return b.EndVector()

    def quant_table(quant):
        if quant is None:
            return None
        scales = quant[0] if isinstance(quant[0], list) else [quant[0]]
        zps = quant[1] if isinstance(quant[1], list) else [quant[1]]
        tflite.QuantizationParametersStartScaleVector(b, len(scales))
        for s in reversed(scales):
            b.PrependFloat32(s)
        sv = b.EndVector()
        tflite.QuantizationParametersStartZeroPointVector(b, len(zps))
        for z in reversed(zps):
            b.PrependInt64(z)
        zv = b.EndVector()
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, sv)
        tflite.QuantizationParametersAddZeroPoint(b, zv)
        if len(quant) > 2:
            tflite.QuantizationParametersAddQuantizedDimension(b, quant[2])
        return tflite.QuantizationParametersEnd(b)

    tensor_offsets = []
    for ti, (name, shp, ttype, quant, buf) in enumerate(tensors):
        shp = (shapes or {}).get(ti, shp)
        n = b.CreateString(name)
        sv = vec_i32(shp, tflite.TensorStartShapeVector)
        qt = quant_table(quant)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, sv)
        tflite.TensorAddType(b, ttype)
        tflite.TensorAddBuffer(b, buf)
        tflite.TensorAddName(b, n)
        if qt is not None:
            tflite.TensorAddQuantization(b, qt)
        tensor_offsets.append(tflite.TensorEnd(b))

    def options_table(kind, op):
        act = ACTS[op.get("act", "NONE")]
        if kind == "conv":
            tflite.Conv2DOptionsStart(b)
            tflite.Conv2DOptionsAddPadding(b, PADS[op["padding"]])
            tflite.Conv2DOptionsAddStrideH(b, op["stride"][0])
            tflite.Conv2DOptionsAddStrideW(b, op["stride"][1])
            tflite.Conv2DOptionsAddFusedActivationFunction(b, act)
            tflite.Conv2DOptionsAddDilationHFactor(b, op.get("dilation", 1))
            tflite.Conv2DOptionsAddDilationWFactor(b, op.get("dilation", 1))
            return tflite.BuiltinOptions.Conv2DOptions, tflite.Conv2DOptionsEnd(b)
        if kind == "depthwise":
            tflite.DepthwiseConv2DOptionsStart(b)
            tflite.DepthwiseConv2DOptionsAddPadding(b, PADS[op["padding"]])
            tflite.DepthwiseConv2DOptionsAddStrideH(b, op["stride"][0])
            tflite.DepthwiseConv2DOptionsAddStrideW(b, op["stride"][1])
            tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, op.get("depth_multiplier", 1))
            tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, act)
            tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, op.get("dilation", 1))
            tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, op.get("dilation", 1))
            return tflite.BuiltinOptions.DepthwiseConv2DOptions, tflite.DepthwiseConv2DOptionsEnd(b)
        if kind == "avgpool":
            tflite.Pool2DOptionsStart(b)
            tflite.Pool2DOptionsAddPadding(b, PADS[op["padding"]])
            tflite.Pool2DOptionsAddStrideH(b, op["stride"][0])
            tflite.Pool2DOptionsAddStrideW(b, op["stride"][1])
            tflite.Pool2DOptionsAddFilterHeight(b, op["k"][0])
            tflite.Pool2DOptionsAddFilterWidth(b, op["k"][1])
            tflite.Pool2DOptionsAddFusedActivationFunction(b, act)
            return tflite.BuiltinOptions.Pool2DOptions, tflite.Pool2DOptionsEnd(b)
        tflite.SoftmaxOptionsStart(b)
        tflite.SoftmaxOptionsAddBeta(b, op.get("beta", 1.0))
        return tflite.BuiltinOptions.SoftmaxOptions, tflite.SoftmaxOptionsEnd(b)

    kinds = list(dict.fromkeys(k for k, *_ in operators))
    op_offsets = []
    for kind, inputs, out, options in operators:
        iv = vec_i32(inputs, tflite.OperatorStartInputsVector)
        ov = vec_i32([out], tflite.OperatorStartOutputsVector)
        opt = options_table(*options) if options else None
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, kinds.index(kind))
        tflite.OperatorAddInputs(b, iv)
        tflite.OperatorAddOutputs(b, ov)
        if opt:
            tflite.OperatorAddBuiltinOptionsType(b, opt[0])
            tflite.OperatorAddBuiltinOptions(b, opt[1])
        op_offsets.append(tflite.OperatorEnd(b))

    def vec_offsets(offsets, start):
        start(b, len(offsets))
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    subgraph_offsets = []
    for _ in range(subgraphs):
        tv = vec_offsets(tensor_offsets, tflite.SubGraphStartTensorsVector)
        opv = vec_offsets(op_offsets, tflite.SubGraphStartOperatorsVector)
        inv = vec_i32([0], tflite.SubGraphStartInputsVector)
        outv = vec_i32([cur], tflite.SubGraphStartOutputsVector)
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tv)
        tflite.SubGraphAddOperators(b, opv)
        tflite.SubGraphAddInputs(b, inv)
        tflite.SubGraphAddOutputs(b, outv)
        subgraph_offsets.append(tflite.SubGraphEnd(b))

    code_offsets = []
    for kind in kinds:
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(CODES[kind], 127))
        tflite.OperatorCodeAddBuiltinCode(b, CODES[kind])
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))

    buffer_offsets = []
    for data in buffers:
        dv = None
        if data:
            b.StartVector(1, len(data), 16)
            b.head = b.head - len(data)
            b.Bytes[b.head:b.head + len(data)] = data
            dv = b.EndVector()
        tflite.BufferStart(b)
        if dv is not None:
            tflite.BufferAddData(b, dv)
        buffer_offsets.append(tflite.BufferEnd(b))

    sgv = vec_offsets(subgraph_offsets, tflite.ModelStartSubgraphsVector)
    ocv = vec_offsets(code_offsets, tflite.ModelStartOperatorCodesVector)
    bv = vec_offsets(buffer_offsets, tflite.ModelStartBuffersVector)
    desc = b.CreateString("mnq test model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, ocv)
    tflite.ModelAddSubgraphs(b, sgv)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, bv)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
