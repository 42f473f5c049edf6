"""The .mnq model file: one little-endian file a plain C reader can use.

Layout (docs/format.md is the normative description):
  header   96 bytes: magic, version, sizes, input quantization, CRC-32, I/O types
  layers   num_layers fixed 192-byte records (LAYER_DTYPE)
  blobs    names, uint8 weights, int32 biases, per-channel requantization, labels;
           each 64-byte aligned
Version 2 adds int8 models (per-channel fields, edge QUANTIZE/DEQUANTIZE); version 1
files (uint8 only, those fields zero) are still read.
Each layer record carries both the source quantization (scales, zero points) and
the resolved integer parameters the kernels need, so C code needs no float math.
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from .errors import ModelFormatError, UnsupportedModelError
from .files import MAX_LABELS_BYTES
from .graph import ACTIVATIONS, EDGE_DTYPES, OPS, PADDINGS, Edge, Graph, Layer, Quant
from .plan import INT8_OFFSET, layer_desc

MAGIC = b"MNQMODEL"
VERSION = 2
READABLE_VERSIONS = (1, 2)
LAYER_INT8, LAYER_PER_CHANNEL = 1, 2  # layer record flags
ALIGN = 64
HEADER_DTYPE = np.dtype([
    ("magic", "S8"), ("version", "<u4"), ("header_size", "<u4"), ("layer_size", "<u4"), ("num_layers", "<u4"),
    ("file_size", "<u8"), ("crc32", "<u4"), ("input_h", "<u4"), ("input_w", "<u4"), ("input_c", "<u4"),
    ("input_scale", "<f4"), ("input_zp", "<i4"), ("labels_off", "<u8"), ("labels_len", "<u4"), ("num_labels", "<u4"),
    # version 2: types as EDGE_DTYPES indices; a type other than the layers' means an edge op,
    # whose outer side's quantization follows (int8 zero points as int8; 0 for float32)
    ("layer_type", "u1"), ("input_type", "u1"), ("output_type", "u1"), ("type_reserved", "u1"),
    ("input_edge_scale", "<f4"), ("input_edge_zp", "<i4"), ("output_edge_scale", "<f4"), ("output_edge_zp", "<i4"),
    ("reserved", "<u4"),
])
LAYER_DTYPE = np.dtype([
    ("op", "<u4"), ("activation", "<u4"), ("padding", "<u4"),
    ("in_h", "<u4"), ("in_w", "<u4"), ("in_c", "<u4"), ("out_h", "<u4"), ("out_w", "<u4"), ("out_c", "<u4"),
    ("k_h", "<u4"), ("k_w", "<u4"), ("stride_h", "<u4"), ("stride_w", "<u4"),
    ("in_scale", "<f4"), ("in_zp", "<i4"), ("w_scale", "<f4"), ("w_zp", "<i4"),
    ("out_scale", "<f4"), ("out_zp", "<i4"), ("beta", "<f4"),
    # resolved parameters, exactly the fields of mnq_layer_desc (mnq.h)
    ("desc_op", "<i4"), ("pad_top", "<i4"), ("pad_left", "<i4"), ("multiplier", "<i4"), ("shift", "<i4"),
    ("act_min", "<i4"), ("act_max", "<i4"), ("softmax_multiplier", "<i4"), ("softmax_left_shift", "<i4"),
    ("softmax_diff_min", "<i4"),
    ("name_off", "<u8"), ("name_len", "<u8"), ("weights_off", "<u8"), ("weights_len", "<u8"),
    ("bias_off", "<u8"), ("bias_len", "<u8"),
    # version 2: blob float32 channel_scales, int32 channel_multipliers, int32 channel_shifts,
    # out_c each (int8 conv/depthwise); flags LAYER_INT8 | LAYER_PER_CHANNEL; avgpool rounding
    ("channels_off", "<u8"), ("channels_len", "<u8"), ("flags", "<u4"), ("pool_center", "<i4"),
])
assert HEADER_DTYPE.itemsize == 96 and LAYER_DTYPE.itemsize == 192
RESOLVED = ("pad_top", "pad_left", "multiplier", "shift", "act_min", "act_max", "softmax_multiplier",
            "softmax_left_shift", "softmax_diff_min", "pool_center")


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def encode(graph: Graph, labels=None) -> bytes:
    """Serialize a graph (and optional labels) to .mnq bytes."""
    labels = labels if labels is not None else graph.labels
    n = len(graph.layers)
    records = np.zeros(n, LAYER_DTYPE)
    blobs: list = []
    cursor = _align(HEADER_DTYPE.itemsize + n * LAYER_DTYPE.itemsize)

    def add_blob(data: bytes) -> tuple:
        nonlocal cursor
        offset = cursor
        blobs.append((offset, data))
        cursor = _align(offset + len(data))
        return offset, len(data)

    for rec, layer in zip(records, graph.layers):
        d = layer_desc(layer)
        rec["op"], rec["activation"] = OPS.index(layer.op), ACTIVATIONS.index(layer.activation)
        rec["padding"] = PADDINGS.index(layer.padding)
        rec["in_h"], rec["in_w"], rec["in_c"] = layer.in_shape
        rec["out_h"], rec["out_w"], rec["out_c"] = layer.out_shape
        rec["k_h"], rec["k_w"] = layer.kernel
        rec["stride_h"], rec["stride_w"] = layer.stride
        rec["in_scale"], rec["in_zp"] = layer.in_quant.scale, layer.in_quant.zero_point
        rec["out_scale"], rec["out_zp"] = layer.out_quant.scale, layer.out_quant.zero_point
        if layer.weight_quant:
            rec["w_scale"], rec["w_zp"] = layer.weight_quant.scale, layer.weight_quant.zero_point
        rec["beta"] = layer.beta
        rec["desc_op"] = d["op"]
        for key in RESOLVED:
            rec[key] = d[key]
        rec["name_off"], rec["name_len"] = add_blob(layer.name.encode("utf-8"))
        if layer.weights is not None:
            rec["weights_off"], rec["weights_len"] = add_blob(np.ascontiguousarray(layer.weights, np.uint8).tobytes())
        if layer.bias is not None:
            rec["bias_off"], rec["bias_len"] = add_blob(np.ascontiguousarray(layer.bias, "<i4").tobytes())
        rec["flags"] = (LAYER_INT8 if layer.int8 else 0) | \
            (LAYER_PER_CHANNEL if d["channel_multipliers"] is not None else 0)
        if layer.channel_scales is not None:
            mults, shifts = d["channel_multipliers"], d["channel_shifts"]
            if mults is None:  # one requantization for all channels: stored repeated
                mults, shifts = np.full(len(layer.channel_scales), d["multiplier"]), np.full(len(layer.channel_scales), d["shift"])
            rec["channels_off"], rec["channels_len"] = add_blob(
                np.ascontiguousarray(layer.channel_scales, "<f4").tobytes() + np.asarray(mults, "<i4").tobytes()
                + np.asarray(shifts, "<i4").tobytes())

    header = np.zeros(1, HEADER_DTYPE)[0]
    if labels is not None:
        header["labels_off"], header["labels_len"] = add_blob("\n".join(labels).encode("utf-8"))
        header["num_labels"] = len(labels)
    header["magic"], header["version"] = MAGIC, VERSION
    header["header_size"], header["layer_size"], header["num_layers"] = HEADER_DTYPE.itemsize, LAYER_DTYPE.itemsize, n
    header["input_h"], header["input_w"], header["input_c"] = graph.input_shape
    header["input_scale"], header["input_zp"] = graph.input_quant.scale, graph.input_quant.zero_point
    header["layer_type"] = EDGE_DTYPES.index(graph.dtype)
    header["input_type"], header["output_type"] = EDGE_DTYPES.index(graph.input_dtype), EDGE_DTYPES.index(graph.output_dtype)
    for edge, side, q in ((graph.input_edge, "input", "in_quant"), (graph.output_edge, "output", "out_quant")):
        outer = getattr(edge, q) if edge else None
        if outer is not None:
            header[f"{side}_edge_scale"], header[f"{side}_edge_zp"] = outer.scale, outer.zero_point
    out = bytearray(blobs[-1][0] + len(blobs[-1][1]) if blobs else cursor)
    header["file_size"] = len(out)
    out[HEADER_DTYPE.itemsize:HEADER_DTYPE.itemsize + records.nbytes] = records.tobytes()
    for offset, data in blobs:
        out[offset:offset + len(data)] = data
    out[:HEADER_DTYPE.itemsize] = header.tobytes()
    header["crc32"] = zlib.crc32(out)  # computed with the crc32 field zero
    out[:HEADER_DTYPE.itemsize] = header.tobytes()
    return bytes(out)


def decode(data: bytes, source: str = "") -> Graph:
    """Parse .mnq bytes. Raises ModelFormatError (or UnsupportedModelError) naming what is wrong."""
    try:
        return _decode(data, source)
    except (ModelFormatError, UnsupportedModelError):
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. undecodable labels: still a damaged file, not a crash
        raise ModelFormatError(f"{source or 'data'}: corrupt .mnq file ({type(exc).__name__}: {exc})") from None


def _decode(data: bytes, source: str) -> Graph:
    where = source or "data"
    if len(data) < HEADER_DTYPE.itemsize or data[:8] != MAGIC:
        raise ModelFormatError(f"{where}: not an .mnq model file (bad magic)")
    header = np.frombuffer(data, HEADER_DTYPE, count=1)[0]
    if header["version"] not in READABLE_VERSIONS:
        raise ModelFormatError(f"{where}: .mnq version {header['version']}, this mnq reads versions "
                               f"{', '.join(map(str, READABLE_VERSIONS))}")
    if header["file_size"] != len(data):
        raise ModelFormatError(f"{where}: truncated or padded .mnq file ({len(data)} bytes, header says "
                               f"{header['file_size']})")
    if header["header_size"] != HEADER_DTYPE.itemsize or header["layer_size"] != LAYER_DTYPE.itemsize:
        raise ModelFormatError(f"{where}: unexpected header/layer record size")
    crc_at = HEADER_DTYPE.fields["crc32"][1]
    with memoryview(data) as view:  # the CRC of the file with its crc field zero, without copying the file
        crc = zlib.crc32(view[crc_at + 4:], zlib.crc32(b"\0\0\0\0", zlib.crc32(view[:crc_at])))
    if crc != header["crc32"]:
        raise ModelFormatError(f"{where}: checksum mismatch: the .mnq file is corrupt or was modified")
    n = int(header["num_layers"])
    end = HEADER_DTYPE.itemsize + n * LAYER_DTYPE.itemsize
    if n == 0 or end > len(data):
        raise ModelFormatError(f"{where}: layer table does not fit in the file")
    records = np.frombuffer(data, LAYER_DTYPE, count=n, offset=HEADER_DTYPE.itemsize)

    def blob(off, length, what):
        off, length = int(off), int(length)
        if off < end or off + length > len(data):
            raise ModelFormatError(f"{where}: {what} lies outside the file")
        return data[off:off + length]

    layers = []
    for i, rec in enumerate(records):
        if rec["op"] >= len(OPS) or rec["activation"] >= len(ACTIVATIONS) or rec["padding"] >= len(PADDINGS):
            raise ModelFormatError(f"{where}: layer {i} has an unknown op, activation or padding code")
        op = OPS[rec["op"]]
        layer = Layer(op=op, name=blob(rec["name_off"], rec["name_len"], f"layer {i} name").decode("utf-8", "replace"),
                      in_shape=(int(rec["in_h"]), int(rec["in_w"]), int(rec["in_c"])),
                      out_shape=(int(rec["out_h"]), int(rec["out_w"]), int(rec["out_c"])),
                      in_quant=Quant(float(rec["in_scale"]), int(rec["in_zp"])),
                      out_quant=Quant(float(rec["out_scale"]), int(rec["out_zp"])),
                      kernel=(int(rec["k_h"]), int(rec["k_w"])), stride=(int(rec["stride_h"]), int(rec["stride_w"])),
                      padding=PADDINGS[rec["padding"]], activation=ACTIVATIONS[rec["activation"]],
                      beta=float(rec["beta"]))
        if op in ("conv", "depthwise"):
            kh, kw = layer.kernel
            shape = (layer.out_shape[2], kh, kw, layer.in_shape[2]) if op == "conv" else (kh, kw, layer.out_shape[2])
            raw = blob(rec["weights_off"], rec["weights_len"], f"layer {i} weights")
            if len(raw) != math.prod(shape):  # Python ints: np.prod would wrap at 2^63
                raise ModelFormatError(f"{where}: layer {i} has {len(raw)} weight bytes, shape {shape} needs "
                                       f"{math.prod(shape)}")
            layer.weights = np.frombuffer(raw, np.uint8).reshape(shape)
            layer.weight_quant = Quant(float(rec["w_scale"]), int(rec["w_zp"]))
            if rec["bias_len"]:
                raw = blob(rec["bias_off"], rec["bias_len"], f"layer {i} bias")
                if len(raw) != 4 * layer.out_shape[2]:
                    raise ModelFormatError(f"{where}: layer {i} bias has {len(raw)} bytes")
                layer.bias = np.frombuffer(raw, "<i4").astype(np.int32)
        if int(rec["flags"]) & ~(LAYER_INT8 | LAYER_PER_CHANNEL):
            raise ModelFormatError(f"{where}: layer {i} has unknown flags {int(rec['flags'])}")
        layer.int8 = bool(rec["flags"] & LAYER_INT8)
        stored_channels = None
        if layer.int8 and op in ("conv", "depthwise"):
            out_c = layer.out_shape[2]
            raw = blob(rec["channels_off"], rec["channels_len"], f"layer {i} channel scales")
            if len(raw) != 12 * out_c:
                raise ModelFormatError(f"{where}: layer {i} per-channel block has {len(raw)} bytes, needs {12 * out_c}")
            layer.channel_scales = np.frombuffer(raw, "<f4", out_c).astype(np.float32)
            stored_channels = (np.frombuffer(raw, "<i4", out_c, 4 * out_c), np.frombuffer(raw, "<i4", out_c, 8 * out_c))
        resolved = layer_desc(layer)
        per_channel = resolved["channel_multipliers"] is not None
        if per_channel != bool(rec["flags"] & LAYER_PER_CHANNEL) or (stored_channels is not None and (
                (stored_channels[0] != (resolved["channel_multipliers"] if per_channel else resolved["multiplier"])).any()
                or (stored_channels[1] != (resolved["channel_shifts"] if per_channel else resolved["shift"])).any())):
            raise ModelFormatError(f"{where}: layer {i} ('{layer.name}') stored per-channel parameters disagree "
                                   "with its scales; the file was modified or written by a different mnq")
        if resolved["op"] != rec["desc_op"] or any(resolved[k] != rec[k] for k in RESOLVED):
            raise ModelFormatError(f"{where}: layer {i} ('{layer.name}') stored parameters disagree with its "
                                   "quantization; the file was modified or written by a different mnq")
        layers.append(layer)
    input_shape = (int(header["input_h"]), int(header["input_w"]), int(header["input_c"]))
    if input_shape != layers[0].in_shape:
        raise ModelFormatError(f"{where}: input shape {input_shape} is not the first layer's input "
                               f"{layers[0].in_shape}")
    labels = None
    if header["num_labels"]:
        if header["labels_len"] > MAX_LABELS_BYTES:  # as for labels in .tflite metadata: no label bombs
            raise ModelFormatError(f"{where}: {header['labels_len']} bytes of labels, more than the "
                                   f"{MAX_LABELS_BYTES >> 20} MiB allowed")
        labels = blob(header["labels_off"], header["labels_len"], "labels").decode("utf-8").split("\n")
        if len(labels) != header["num_labels"]:
            raise ModelFormatError(f"{where}: label count mismatch")
    types = [int(header[k]) for k in ("layer_type", "input_type", "output_type")]
    if any(t >= len(EDGE_DTYPES) for t in types) or types[0] == EDGE_DTYPES.index("float32"):
        raise ModelFormatError(f"{where}: unknown input, output or layer type code {types}")
    dtype, input_dtype, output_dtype = (EDGE_DTYPES[t] for t in types)
    if any(layer.int8 != (dtype == "int8") for layer in layers):
        raise ModelFormatError(f"{where}: layers of both uint8 and int8 types")

    def native(q):  # a layer's uint8-form quantization in the network's own units
        return Quant(q.scale, q.zero_point - INT8_OFFSET) if dtype == "int8" else q

    def outer(side, edge_dtype):
        return None if edge_dtype == "float32" else Quant(float(header[f"{side}_edge_scale"]), int(header[f"{side}_edge_zp"]))

    input_edge = output_edge = None
    if input_dtype != dtype:
        input_edge = Edge("quantize", "input_quantized", input_dtype, dtype, outer("input", input_dtype),
                          native(layers[0].in_quant))
    if output_dtype != dtype:
        output_edge = Edge("dequantize" if output_dtype == "float32" else "quantize", "output", dtype, output_dtype,
                           native(layers[-1].out_quant), outer("output", output_dtype))
    return Graph(layers=layers, input_name="input",
                 input_shape=input_shape,
                 input_quant=Quant(float(header["input_scale"]), int(header["input_zp"])), labels=labels,
                 source=source, dtype=dtype, input_edge=input_edge, output_edge=output_edge)
