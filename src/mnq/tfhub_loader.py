"""Read a TF1 Hub "quantops" module (MobileNet V1 family) into the layer list.

The module is a TF1 SavedModel whose graph was made quantization-aware by
tf.contrib.quantize: float32 weights with batch norm folded inside the graph, and
FakeQuantWithMinMaxVars nodes whose min/max are variables. We import the graph, restore
the variables it needs, walk the single data path from the signature's input to its
output, let TensorFlow evaluate every constant side branch (folded weights, folded
bias, fake-quant ranges) and quantize exactly as the TFLite converter (MLIR) does.

TensorFlow is imported here only, lazily: it is the optional `tf` extra.
"""
from __future__ import annotations

import hashlib
import math
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from .errors import ModelFormatError, UnsupportedModelError
from .graph import Graph, Layer, Quant

SIGNATURE = "default"
_VARIABLE_OPS = ("VariableV2", "Variable", "VarHandleOp")
# Ops that forward their input unchanged at inference (eval-mode dropout, variable reads,
# default-valued inputs, gradient and numeric checks): the walker steps through them.
_SKIPPED = ("Identity", "PlaceholderWithDefault", "StopGradient", "PreventGradient", "CheckNumerics", "Snapshot",
            "EnsureShape", "DebugIdentity", "DebugIdentityV2")
_RESCALE_OPS = ("Mul", "Sub", "Add", "AddV2", "RealDiv")
_BIAS_OPS = ("BiasAdd", "Add", "AddV2")
_ACTIVATIONS = {"Relu6": "RELU6", "Relu": "RELU"}
# Net input in [-1,1] (the module rescales [0,1] images): the TFLite form's input
# quantization, mean 128 / std 128. Images fed as they are ([0,1]): mean 0 / std 255.
_INPUT_QUANT = {(2.0, -1.0): (1 / 128, 128), (1.0, 0.0): (1 / 255, 0)}


def is_module_archive(path: Path) -> bool:
    """A regular gzip/tar file (a module as tfhub.dev serves it), by name or by content."""
    path = Path(path)
    if not path.is_file():  # a FIFO or device must not be opened here
        return False
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"  # gzip
    except OSError:  # unreadable: the model reader says so
        return False


def module_digest(path: Path) -> str:
    """sha256 of a module: of the archive's bytes, or of a directory's file names and contents
    (sorted, so the same module gives the same digest wherever it was unpacked)."""
    digest = hashlib.sha256(b"mnq-tfhub-module-v1\0")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def cached_module(path, cache_directory=None) -> Path:
    """The .mnq made from a module (directory or archive), converted on first use and kept in
    <user cache>/modules/<content sha256>.mnq, so TensorFlow is needed once per module."""
    from .fetch import cache_dir
    from .mnq_format import encode

    path = Path(path)
    if path.is_dir() and not (path / "saved_model.pb").is_file():  # checked before hashing a whole folder
        raise ModelFormatError(f"{path}: is a directory but not a TF Hub module (no saved_model.pb); a model is a "
                               ".tflite or .mnq file, or a TF Hub module directory or .tar.gz")
    folder = Path(cache_directory) if cache_directory else cache_dir() / "modules"
    target = folder / f"{module_digest(path)}.mnq"
    if target.is_file():
        return target
    data = encode(load_module(path))
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".convert-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)  # atomic: a concurrent loader sees no file or the whole one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def load_module(path) -> Graph:
    """A module directory or its .tar.gz -> Graph. Raises ModelFormatError or
    UnsupportedModelError naming what is wrong; ImportError without TensorFlow."""
    path = Path(path)
    if path.is_dir():
        return _ModuleReader(path, str(path)).graph()
    with tempfile.TemporaryDirectory(prefix="mnq-module-") as tmp:
        root = _extract_archive(path, Path(tmp))
        return _ModuleReader(root, str(path)).graph()


def _extract_archive(path: Path, dest: Path) -> Path:
    """Extract regular files and folders only, refusing any name that would land outside
    dest; return the folder holding saved_model.pb (the root or a single top folder)."""
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            for m in members:
                parts = Path(m.name).parts
                if Path(m.name).is_absolute() or ".." in parts or not (m.isfile() or m.isdir()):
                    raise ModelFormatError(f"{path}: archive entry '{m.name}' is not a plain file inside "
                                           "the archive (absolute path, '..', link or device); refusing to extract")
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **extra)
    except ModelFormatError:
        raise
    except (tarfile.TarError, EOFError, OSError) as exc:  # gzip/zlib damage surfaces as OSError/EOFError
        raise ModelFormatError(f"{path}: corrupt or truncated module archive ({type(exc).__name__}: {exc})") from None
    tops = list(dest.iterdir())
    if not (dest / "saved_model.pb").exists() and len(tops) == 1 and tops[0].is_dir():
        return tops[0]
    return dest


def fake_quant_params(rmin: float, rmax: float, narrow_range: bool, num_bits: int, node: str) -> tuple:
    """(scale as double, zero point) the TFLite converter derives from a FakeQuant's
    min/max: MLIR's getNudgedScaleAndZeroPoint, in double, zero point from whichever
    end has the smaller error, rounded half away from zero."""
    if num_bits != 8:
        raise UnsupportedModelError(f"fake-quant node '{node}' uses {num_bits} bits; mnq supports 8")
    if not (rmin <= 0.0 <= rmax) or not math.isfinite(rmax - rmin):
        raise UnsupportedModelError(f"fake-quant node '{node}' has range [{rmin}, {rmax}], which does not "
                                    "contain 0 (the TFLite converter rejects it too)")
    qmin, qmax = (1 if narrow_range else 0), 255
    if rmax - rmin < np.finfo(np.float64).eps:  # all-zero tensor: the converter's special case
        return 1.0, qmin
    scale = (rmax - rmin) / (qmax - qmin)
    zp_from_min, err_min = qmin - rmin / scale, abs(qmin) + abs(rmin / scale)
    zp_from_max, err_max = qmax - rmax / scale, abs(qmax) + abs(rmax / scale)
    zp = zp_from_min if err_min < err_max else zp_from_max
    return scale, int(min(max(_round_half_away(zp), qmin), qmax))


def _round_half_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_weights(w_fake_quant: np.ndarray, scale: float, zero_point: int, narrow_range: bool) -> np.ndarray:
    """The converter constant-folds the weights' FakeQuant with TensorFlow's kernel (float32
    nudging, floor(x / s + 0.5)) and then quantizes that output, round(v / scale + zp) in
    double: so we quantize the FakeQuant's output too. Quantizing the float weights
    directly differed on 1 of 463,856 weights of a test module (a tie)."""
    q = _round_half_away(w_fake_quant.astype(np.float64) / scale + zero_point)
    return np.clip(q, 1 if narrow_range else 0, 255).astype(np.uint8)


def quantize_bias(b: np.ndarray, in_scale: float, w_scale: float) -> np.ndarray:
    """float32 -> int32 with scale s_in * s_w, the product of the converter's double scales
    (not of the float32 ones the file stores), ties away from zero."""
    q = _round_half_away(b.astype(np.float64) / (in_scale * w_scale))
    return np.clip(q, -(1 << 31), (1 << 31) - 1).astype(np.int32)


class _ModuleReader:
    def __init__(self, root: Path, source: str):
        self.root, self.source = root, source

    def fail(self, msg):
        return UnsupportedModelError(f"{self.source}: {msg}")

    def bad(self, msg):
        return ModelFormatError(f"{self.source}: {msg}")

    # ---- loading ----
    def graph(self) -> Graph:
        if not (self.root / "saved_model.pb").is_file():
            raise self.bad("not a TF Hub module (no saved_model.pb)")
        if not (self.root / "tfhub_module.pb").is_file():
            raise self.bad("not a TF1 Hub module (no tfhub_module.pb beside saved_model.pb)")
        try:
            import tensorflow as tf
        except ImportError:
            raise ImportError(f"{self.source}: reading a TF Hub module needs TensorFlow: pip install tensorflow-cpu "
                              "(or pip install '.[tf]' in a checkout of mnq)", name="tensorflow") from None
        self.tf = tf
        meta_graph, signature = self.meta_graph()
        self.tf_graph = tf.Graph()
        with self.tf_graph.as_default():
            try:
                tf.compat.v1.train.import_meta_graph(meta_graph, clear_devices=True)
            except Exception as exc:  # unknown ops, malformed graph
                raise self.bad(f"cannot import the module graph ({type(exc).__name__}: {exc})") from None
            images = self.signature_tensor(signature.inputs, "input", "images")
            output = self.signature_tensor(signature.outputs, "output", "default")
            chain = self.chain(images, output)
            self.sess = tf.compat.v1.Session(graph=self.tf_graph)
            try:
                self.restore_variables(output.op)
                return self.layers(images, chain)
            finally:
                self.sess.close()

    def meta_graph(self):
        from tensorflow.core.protobuf import saved_model_pb2

        saved_model = saved_model_pb2.SavedModel()
        try:
            saved_model.ParseFromString((self.root / "saved_model.pb").read_bytes())
        except Exception as exc:  # protobuf DecodeError
            raise self.bad(f"saved_model.pb is corrupt ({exc})") from None
        # TF1 Hub modules hold the inference graph under the empty tag set ({'train'} is the training variant)
        graphs = [mg for mg in saved_model.meta_graphs if not mg.meta_info_def.tags]
        if not graphs:
            tag_sets = [sorted(mg.meta_info_def.tags) for mg in saved_model.meta_graphs]
            raise self.bad(f"saved_model.pb has no graph with the empty tag set (has {tag_sets})")
        if SIGNATURE not in graphs[0].signature_def:
            raise self.bad(f"the module has no '{SIGNATURE}' signature "
                           f"(has {sorted(graphs[0].signature_def)})")
        return graphs[0], graphs[0].signature_def[SIGNATURE]

    def signature_tensor(self, infos, what, preferred):
        key = preferred if preferred in infos else next(iter(infos)) if len(infos) == 1 else None
        if key is None:
            raise self.bad(f"signature '{SIGNATURE}' has {what}s {sorted(infos)}; expected '{preferred}'")
        try:
            return self.tf_graph.get_tensor_by_name(infos[key].name)
        except (KeyError, ValueError):
            raise self.bad(f"signature {what} '{key}' names tensor '{infos[key].name}', absent from the graph") from None

    def restore_variables(self, output_op):
        """Assign every variable the output depends on from variables/ (read by name, so no
        saver is needed in the graph)."""
        tf = self.tf
        prefix = self.root / "variables" / "variables"
        if not prefix.with_suffix(".index").is_file():
            raise self.bad("missing variables (no variables/variables.index)")
        try:
            reader = tf.train.load_checkpoint(str(prefix))
            stored = reader.get_variable_to_shape_map()
            needed = [op for op in _ancestors(output_op) if op.type in _VARIABLE_OPS]
            missing = [op.name for op in needed if op.name not in stored]
            if missing:
                raise self.bad(f"missing variables: {len(missing)} the graph needs are not in variables/ "
                               f"({', '.join(sorted(missing)[:5])}{', ...' if len(missing) > 5 else ''})")
            feeds, assigns = {}, []
            for op in needed:
                value = reader.get_tensor(op.name)
                ph = tf.compat.v1.placeholder(value.dtype, value.shape)
                if op.type == "VarHandleOp":
                    assigns.append(tf.raw_ops.AssignVariableOp(resource=op.outputs[0], value=ph))
                else:
                    assigns.append(tf.compat.v1.assign(op.outputs[0], ph))
                feeds[ph] = value
            self.sess.run(assigns, feeds)
        except ModelFormatError:
            raise
        except (tf.errors.OpError, ValueError) as exc:
            raise self.bad(f"cannot restore variables/ ({type(exc).__name__}: {exc})") from None

    def eval(self, *tensors):
        return self.sess.run(list(tensors))

    # ---- the data path ----
    def chain(self, images, output):
        """The ops from the input to the output, each with exactly one input that depends
        on the images; every other input is a constant branch we evaluate."""
        depends = _depends_on(images, output.op)
        ops, t = [], output
        while t is not images:
            data = [x for x in t.op.inputs if depends[x.op]]
            if not data:
                raise self.bad(f"signature output '{output.name}' does not depend on input '{images.name}'")
            if len(data) > 1:
                raise self.fail(f"node '{t.op.name}' ({t.op.type}) combines several data paths; "
                                "mnq runs chain networks only")
            ops.append(t.op)
            t = data[0]
        return ops[::-1]

    def constant(self, op, data_input):
        """The one non-data input of a binary op (bias, rescale constant)."""
        other = [x for x in op.inputs if x is not data_input]
        return self.eval(other[0])[0]

    def layers(self, images, chain) -> Graph:
        shape = self.static_shape(images, images.op.name)
        if len(shape) != 3 or shape[2] <= 0:
            raise self.fail(f"input '{images.name}' has shape {images.shape}; expected [N,H,W,C] images")
        i, t = 0, images
        while i < len(chain) and chain[i].type in _RESCALE_OPS + _SKIPPED:
            t, i = chain[i].outputs[0], i + 1
        in_scale, in_zp = self.input_quant(images, t)
        cur = (in_scale, in_zp)  # scale kept in double: the converter multiplies doubles for the bias
        layers = []
        while i < len(chain):
            op = chain[i]
            if op.type in _SKIPPED:
                i += 1
                continue
            if op.type in ("Conv2D", "DepthwiseConv2dNative"):
                layer, i, out = self.conv(chain, i, cur)
            elif op.type == "AvgPool":
                layer, i, out = self.avgpool(op, cur), i + 1, cur
            elif op.type in ("Squeeze", "Reshape"):
                layer, i, out = self.simple("reshape", op, cur, cur), i + 1, cur
            elif op.type == "Softmax":
                out = (1 / 256, 0)  # fixed for TFLite's uint8 softmax
                layer, i = self.simple("softmax", op, cur, out), i + 1
            else:
                raise self.fail(f"unsupported op {op.type} at node '{op.name}' (mnq reads Conv2D, "
                                "DepthwiseConv2dNative, BiasAdd/Add, Relu6/Relu, FakeQuantWithMinMaxVars, "
                                "AvgPool, Squeeze/Reshape, Softmax and the input rescale)")
            layers.append(layer)
            cur = out
        if not layers:
            raise self.fail("the graph has no layers between input and output")
        if layers[-1].op == "reshape" and len(layers) > 1 and layers[-2].op == "conv":
            # a classification signature returns logits: add the softmax the TFLite models end with
            layers.append(Layer(op="softmax", name="Softmax", in_shape=layers[-1].out_shape,
                                out_shape=layers[-1].out_shape, in_quant=layers[-1].out_quant,
                                out_quant=_quant((1 / 256, 0))))
        return Graph(layers=layers, input_name=images.op.name, input_shape=shape,
                     input_quant=_quant((in_scale, in_zp)), source=self.source)

    def input_quant(self, images, net_input):
        """Quantization of the net input: recognize the affine rescale of [0,1] images by
        evaluating it at 0 and 1 (any node names, any Mul/Sub/Add order)."""
        h, w, c = self.static_shape(images, images.op.name)
        lo, hi = (self.sess.run(net_input, {images: np.full((1, h, w, c), v, np.float32)}).reshape(-1)
                  for v in (0.0, 1.0))
        if np.ptp(lo) or np.ptp(hi):
            raise self.fail(f"input rescale ending at '{net_input.op.name}' is not a per-pixel affine map")
        a, b = float(hi[0] - lo[0]), float(lo[0])
        for (ea, eb), q in _INPUT_QUANT.items():
            if abs(a - ea) < 1e-6 and abs(b - eb) < 1e-6:
                return q
        raise self.fail(f"input rescale ending at '{net_input.op.name}' maps [0,1] to [{b:g}, {a + b:g}]; "
                        "mnq supports [0,1] -> [-1,1] or no rescale")

    def conv(self, chain, i, cur):
        """Conv2D/DepthwiseConv2dNative with fake-quantized weights, then optional bias and
        ReLU/ReLU6, then the act_quant FakeQuant that gives the output quantization."""
        op = chain[i]
        depthwise = op.type == "DepthwiseConv2dNative"
        kind = "depthwise" if depthwise else "conv"
        attrs = {k: op.get_attr(k) for k in ("strides", "padding", "data_format")}
        dilations = list(op.get_attr("dilations")) if "dilations" in op.node_def.attr else [1, 1, 1, 1]
        if attrs["data_format"] != b"NHWC" or dilations != [1, 1, 1, 1]:
            raise self.fail(f"{op.type} '{op.name}' uses {attrs['data_format'].decode()} / dilation {dilations}; "
                            "mnq supports NHWC without dilation")
        fq = _producer(op.inputs[1])
        if fq.type != "FakeQuantWithMinMaxVars":
            raise self.fail(f"the weights of '{op.name}' come from {fq.type} '{fq.name}', not a "
                            "FakeQuantWithMinMaxVars node (not a quantization-aware graph)")
        w_fq, w_min, w_max = self.eval(fq.outputs[0], *fq.inputs[1:3])
        narrow = fq.get_attr("narrow_range")
        w_scale, w_zp = fake_quant_params(float(w_min), float(w_max), narrow, fq.get_attr("num_bits"), fq.name)
        weights = quantize_weights(w_fq, w_scale, w_zp, narrow)  # TF layout [kh, kw, cin, cout or 1]
        weights = weights[:, :, :, 0] if depthwise else weights.transpose(3, 0, 1, 2)
        if depthwise and w_fq.shape[3] != 1:
            raise self.fail(f"depthwise '{op.name}' has depth multiplier {w_fq.shape[3]}; mnq supports 1")
        t, i = op.outputs[0], i + 1
        bias = np.zeros(w_fq.shape[2] if depthwise else w_fq.shape[3], np.float32)
        if i < len(chain) and chain[i].type in _BIAS_OPS:
            value = self.constant(chain[i], t)
            if value.shape != bias.shape:
                raise self.fail(f"bias add '{chain[i].name}' adds shape {value.shape}, expected {bias.shape}")
            bias, t, i = value, chain[i].outputs[0], i + 1
        activation = "NONE"
        if i < len(chain) and chain[i].type in _ACTIVATIONS:
            activation, t, i = _ACTIVATIONS[chain[i].type], chain[i].outputs[0], i + 1
        while i < len(chain) and chain[i].type in _SKIPPED:
            i += 1
        if i == len(chain) or chain[i].type != "FakeQuantWithMinMaxVars":
            after = f"{chain[i].type} '{chain[i].name}'" if i < len(chain) else "the signature output"
            raise self.fail(f"the output of {kind} '{op.name}' is not fake-quantized (next: {after})")
        act = chain[i]
        a_min, a_max = self.eval(*act.inputs[1:3])
        out = fake_quant_params(float(a_min), float(a_max), act.get_attr("narrow_range"),
                                act.get_attr("num_bits"), act.name)
        k = w_fq.shape[:2]
        layer = Layer(op=kind, name=act.name, in_shape=self.static_shape(op.inputs[0], op.name),
                      out_shape=self.static_shape(act.outputs[0], act.name), in_quant=_quant(cur),
                      out_quant=_quant(out), kernel=(int(k[0]), int(k[1])), stride=self.hw(attrs["strides"], op),
                      padding=attrs["padding"].decode(), activation=activation, weights=weights,
                      weight_quant=_quant((w_scale, w_zp)), bias=quantize_bias(bias, cur[0], w_scale))
        return layer, i + 1, out

    def avgpool(self, op, cur):
        if op.get_attr("data_format") != b"NHWC":
            raise self.fail(f"AvgPool '{op.name}' is not NHWC")
        layer = self.simple("avgpool", op, cur, cur)  # TFLite keeps the input's quantization
        layer.kernel, layer.stride = self.hw(op.get_attr("ksize"), op), self.hw(op.get_attr("strides"), op)
        layer.padding = op.get_attr("padding").decode()
        return layer

    def simple(self, kind, op, in_q, out_q):
        return Layer(op=kind, name=op.name, in_shape=self.static_shape(op.inputs[0], op.name),
                     out_shape=self.static_shape(op.outputs[0], op.name), in_quant=_quant(in_q),
                     out_quant=_quant(out_q))

    def hw(self, values, op):
        values = list(values)
        if values[0] != 1 or values[3] != 1:
            raise self.fail(f"'{op.name}' has window/stride {values} over batch or channels")
        return int(values[1]), int(values[2])

    def static_shape(self, tensor, node):
        """(H, W, C) of one image, or (1, 1, C) for [N, C]; every size must be known."""
        dims = tensor.shape.as_list() if tensor.shape.rank is not None else None
        if not dims or any(d is None for d in dims[1:]) or len(dims) not in (2, 4):
            raise self.fail(f"tensor '{tensor.name}' at node '{node}' has shape {dims}; mnq needs "
                            "[N,H,W,C] or [N,C] with known sizes")
        return tuple(dims[1:]) if len(dims) == 4 else (1, 1, dims[1])


def _quant(q):
    """(double scale, zp) -> Quant holding the float32 scale a .tflite stores."""
    return Quant(float(np.float32(q[0])), int(q[1]))


def _producer(tensor):
    op = tensor.op
    while op.type in _SKIPPED:
        op = op.inputs[0].op
    return op


def _ancestors(op):
    seen, stack = {op}, [op]
    while stack:
        for x in stack.pop().inputs:
            if x.op not in seen:
                seen.add(x.op)
                stack.append(x.op)
    return seen


def _depends_on(images, output_op):
    """{op: whether it depends on the images} for every ancestor of output_op (iterative:
    the graphs are a few hundred ops deep)."""
    depends = {images.op: True}
    stack = [output_op]
    while stack:
        op = stack[-1]
        if op in depends:
            stack.pop()
            continue
        pending = [x.op for x in op.inputs if x.op not in depends]
        if pending:
            stack.extend(pending)
        else:
            depends[op] = any(depends[x.op] for x in op.inputs)
            stack.pop()
    return depends
