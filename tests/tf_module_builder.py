"""Build TF1 Hub-format MobileNet V1 "quantops" modules for tests, and convert the same
graph with the TFLite converter.

tf.contrib.quantize is gone from TF 2.x, so the graph is written out in the shape it
produced (TF-Slim names, eval mode): per layer, batch norm folded in the graph
(`BatchNorm_Fold/{mul,bias}`, `mul_fold`, `Conv2D_Fold`/`depthwise_Fold`, `add_fold`),
the folded weights through `weights_quant/FakeQuantWithMinMaxVars` (narrow range) and
the ReLU6 output through `act_quant/FakeQuantWithMinMaxVars`, every min/max a variable.
Weights, BN statistics and ranges are random but realistic: weight ranges are the
folded weights' own min/max (as LastValueQuantize leaves them), activation ranges
start at 0 for ReLU6 and straddle 0 for the logits.
"""
import tarfile
from pathlib import Path

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
BN_EPSILON = 0.001
# TF-Slim mobilenet_v1 _CONV_DEFS after Conv2d_0: (stride, channels) of each depthwise-separable block
BLOCKS = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)]


class _Net:
    """Adds the quantization-aware layers to the default graph, with numpy-drawn values."""

    def __init__(self, rng):
        self.rng = rng

    def var(self, name, value):
        # ref variables (VariableV2), as the 2018 TF1 modules hold them
        return tf1.get_variable(name, initializer=np.asarray(value, np.float32), use_resource=False)

    def fake_quant(self, x, scope, lo, hi, narrow_range):
        with tf1.variable_scope(scope):
            lo_var, hi_var = self.var("min", lo), self.var("max", hi)
            return tf.quantization.fake_quant_with_min_max_vars(x, lo_var, hi_var, num_bits=8,
                                                                narrow_range=narrow_range,
                                                                name="FakeQuantWithMinMaxVars")

    def conv_bn_relu6(self, x, scope, depthwise, k, stride, cout):
        rng, cin = self.rng, int(x.shape[-1])
        with tf1.variable_scope(scope):
            shape = (k, k, cin, 1) if depthwise else (k, k, cin, cout)
            c = cin if depthwise else cout
            w_np = rng.normal(0, np.sqrt(2.0 / (k * k * (1 if depthwise else cin))), shape).astype(np.float32)
            w = self.var("depthwise_weights" if depthwise else "weights", w_np)
            with tf1.variable_scope("BatchNorm"):
                gamma_np = rng.uniform(0.5, 1.5, c).astype(np.float32)
                var_np = rng.uniform(0.2, 3.0, c).astype(np.float32)
                gamma, beta = self.var("gamma", gamma_np), self.var("beta", rng.normal(0.3, 0.5, c))
                mean, variance = self.var("moving_mean", rng.normal(0, 0.5, c)), self.var("moving_variance", var_np)
            with tf.name_scope("BatchNorm_Fold"):
                multiplier = tf.multiply(gamma, tf.math.rsqrt(variance + BN_EPSILON), name="mul")
                bias = tf.subtract(beta, mean * multiplier, name="bias")
                if depthwise:
                    multiplier = tf.reshape(multiplier, [c, 1], name="scale_reshape")
            folded = tf.multiply(w, multiplier, name="mul_fold")
            folded_np = w_np * (gamma_np / np.sqrt(var_np + np.float32(BN_EPSILON))).reshape(
                (c, 1) if depthwise else (c,))
            w_q = self.fake_quant(folded, "weights_quant", min(folded_np.min(), 0), max(folded_np.max(), 0), True)
            strides = [1, stride, stride, 1]
            if depthwise:
                y = tf1.nn.depthwise_conv2d_native(x, w_q, strides, "SAME", name="depthwise_Fold")
            else:
                y = tf.nn.conv2d(x, w_q, strides, "SAME", name="Conv2D_Fold")
            y = tf.nn.relu6(tf.add(y, bias, name="add_fold"), name="Relu6")
            return self.fake_quant(y, "act_quant", 0.0, rng.uniform(2.0, 6.0), False)

    def logits(self, x, num_classes):
        rng, cin = self.rng, int(x.shape[-1])
        with tf1.variable_scope("Conv2d_1c_1x1"):
            w_np = rng.normal(0, np.sqrt(1.0 / cin), (1, 1, cin, num_classes)).astype(np.float32)
            w, b = self.var("weights", w_np), self.var("biases", rng.normal(0, 0.3, num_classes))
            w_q = self.fake_quant(w, "weights_quant", min(w_np.min(), 0), max(w_np.max(), 0), True)
            y = tf.nn.bias_add(tf.nn.conv2d(x, w_q, [1, 1, 1, 1], "SAME", name="Conv2D"), b, name="BiasAdd")
            return self.fake_quant(y, "act_quant", -rng.uniform(6, 12), rng.uniform(8, 16), False)


def mobilenet_v1(images, rng, depth_multiplier=1.0, num_classes=1001, blocks=BLOCKS, extra_op=None,
                 pass_through=False):
    """images in [0,1] -> (net input in [-1,1], logits or features, softmax or None).
    extra_op: name of a tf.nn function inserted after Conv2d_0 (for unsupported-op tests).
    pass_through: put ops that forward their input unchanged (PlaceholderWithDefault,
    StopGradient, CheckNumerics, Snapshot, Identity) on the data path, as exported graphs have."""
    net_ = _Net(rng)
    if pass_through:
        images = tf1.placeholder_with_default(images, images.shape, name="input")

    def depth(d):
        return max(int(d * depth_multiplier), 8)

    with tf.name_scope("hub_input"):  # the module's [0,1] -> [-1,1] rescale
        x = tf.subtract(tf.multiply(images, 2.0), 1.0, name="Sub")
    net_input = x
    with tf1.variable_scope("MobilenetV1"):
        x = net_.conv_bn_relu6(x, "Conv2d_0", False, 3, 2, depth(32))
        if extra_op:
            x = getattr(tf.nn, extra_op)(x)
        if pass_through:
            x = tf.stop_gradient(x, name="StopGradient")
            x = tf.debugging.check_numerics(x, "Conv2d_0 output", name="CheckNumerics")
            x = tf.raw_ops.Snapshot(input=x, name="Snapshot")
            x = tf.identity(x, name="Identity")
        for i, (stride, channels) in enumerate(blocks, 1):
            x = net_.conv_bn_relu6(x, f"Conv2d_{i}_depthwise", True, 3, stride, None)
            x = net_.conv_bn_relu6(x, f"Conv2d_{i}_pointwise", False, 1, 1, depth(channels))
        with tf1.variable_scope("Logits"):
            k = [int(x.shape[1]), int(x.shape[2])]
            x = tf.nn.avg_pool2d(x, k, [1, 2, 2, 1], "VALID", name="AvgPool_1a/AvgPool")
            if not num_classes:
                return net_input, tf.squeeze(x, [1, 2], name="SpatialSqueeze"), None
            x = tf.identity(x, name="Dropout_1b/Identity")  # slim dropout in eval mode
            logits = tf.squeeze(net_.logits(x, num_classes), [1, 2], name="SpatialSqueeze")
        return net_input, logits, tf.nn.softmax(logits, name="Predictions/Softmax")


def build(out_dir, size=160, depth_multiplier=1.0, num_classes=1001, seed=0, blocks=BLOCKS, extra_op=None,
          convert=True, pass_through=False):
    """Write out_dir/module (TF1 Hub module), out_dir/module.tar.gz and, when convert,
    out_dir/converted.tflite (the TFLite converter's uint8 form of the same graph, from
    the [-1,1] net input, quantized as scale 1/128, zero point 128). Returns the paths."""
    out_dir = Path(out_dir)
    module = out_dir / "module"
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, size, size, 3], name="images")
        net_input, output, softmax = mobilenet_v1(images, np.random.default_rng(seed), depth_multiplier,
                                                  num_classes, blocks, extra_op, pass_through)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            export_module(sess, module, images, output)
            paths = {"module": module, "archive": archive(module, out_dir / "module.tar.gz")}
            if convert:
                converter = tf1.lite.TFLiteConverter.from_session(sess, [net_input], [output if softmax is None else softmax])
                converter.inference_type = tf.uint8
                converter.quantized_input_stats = {net_input.op.name: (128.0, 128.0)}
                paths["tflite"] = out_dir / "converted.tflite"
                paths["tflite"].write_bytes(converter.convert())
    return paths


def export_module(sess, module_dir, images, output):
    """A TF1 Hub module: SavedModel with the graph under the empty tag set, signature
    'default' (images -> default), plus tfhub_module.pb (what tensorflow_hub writes)."""
    builder = tf1.saved_model.Builder(str(module_dir))
    signature = tf1.saved_model.signature_def_utils.build_signature_def(
        inputs={"images": tf1.saved_model.utils.build_tensor_info(images)},
        outputs={"default": tf1.saved_model.utils.build_tensor_info(output)})
    builder.add_meta_graph_and_variables(sess, tags=[], signature_def_map={"default": signature},
                                         strip_default_attrs=True)
    builder.save()
    (Path(module_dir) / "tfhub_module.pb").write_bytes(b"\x08\x03")  # ModuleDef{format: FORMAT_V3}


def archive(module_dir, path):
    """The .tar.gz tfhub.dev serves: the module's files under './'."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(module_dir, arcname=".")
    return path
