"""Latency of mnq and its peers (TFLite, ONNX Runtime) on one model, in one process, on one input.

Run: python -m pytest bench/ --benchmark-only   (options and row meanings: bench/README.md)
Nothing here asserts on time; a missing peer is skipped with the reason in the final table.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mnq
from mnq import _core

# Interpreter's default resolver applies the XNNPACK delegate; "builtin" runs TFLite's own
# optimized kernels; "reference" its reference kernels, the ones mnq's output is defined by.
TFLITE_RESOLVERS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


def tflite_runner(litert, model_path, resolver, threads, batch):
    """(run(images) -> outputs, images per invoke). MobileNet .tflite files end in a Reshape to a
    constant [1, classes], so TFLite refuses to resize to batch > 1; then run one invoke per image."""

    def interpreter(n):
        it = litert.Interpreter(model_path=str(model_path), num_threads=threads,
                                experimental_op_resolver_type=resolver)
        if n != 1:
            shape = list(it.get_input_details()[0]["shape"])
            it.resize_tensor_input(it.get_input_details()[0]["index"], [n] + shape[1:])
        it.allocate_tensors()
        return it

    try:
        it, per_invoke = interpreter(batch), batch
    except RuntimeError:
        it, per_invoke = interpreter(1), 1
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def run(x):
        outputs = []
        for i in range(0, len(x), per_invoke):
            it.set_tensor(inp, x[i:i + per_invoke])
            it.invoke()
            outputs.append(it.get_tensor(out))
        return np.concatenate(outputs)

    return run, per_invoke


@pytest.fixture(scope="session")
def reference(model_path, images):
    """TFLite built-in kernels' output for the whole input batch: the bytes mnq must reproduce."""
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:
        return None
    run, _ = tflite_runner(litert, model_path, litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, 1, 1)
    return run(images)


def make_batch_dynamic(path: Path):
    """tf2onnx keeps the .tflite's batch of 1 in the graph input/output and in Reshape targets;
    turn it into a symbolic N so one ONNX file serves every batch size."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    initializers = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[1] in initializers:
            shape = numpy_helper.to_array(initializers[node.input[1]]).copy()
            if shape.size and shape[0] == 1:
                shape[0] = -1
                initializers[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
    del graph.value_info[:]  # stale batch-1 shapes; ORT infers them again
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="session")
def onnx_model(model_path) -> Path:
    """tf2onnx conversion of the .tflite, cached outside the repo by the .tflite's sha256."""
    pytest.importorskip("onnxruntime", exc_type=ImportError,
                        reason="ONNX Runtime: onnxruntime not importable (pip install onnxruntime)")
    if importlib.util.find_spec("tf2onnx") is None:
        pytest.skip("ONNX Runtime: tf2onnx not installed, cannot convert the .tflite "
                    "(pip install tf2onnx tensorflow-cpu)")
    cache = Path(os.environ.get("MNQ_BENCH_CACHE", Path.home() / ".cache" / "mnq-bench"))
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    out = cache / f"{model_path.stem}-{digest[:16]}.onnx"
    if out.is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    # A subprocess keeps TensorFlow (which tf2onnx imports) out of the timed process.
    proc = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", str(model_path), "--output", str(tmp)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"ONNX Runtime: tf2onnx conversion failed ({last}); needs tensorflow-cpu")
    make_batch_dynamic(tmp)
    os.replace(tmp, out)  # atomic, so a crashed run never leaves a half-written cache entry
    return out


@pytest.mark.parametrize("isa", _core.supported_isas())
def test_mnq(bench, model_path, images, reference, isa, threads, batch):
    model = mnq.load(model_path, num_threads=threads, isa=isa)
    best = " (best)" if isa == _core.best_isa() else ""
    bench("mnq", f"isa={isa}{best}", model.run, images[:batch], reference)


@pytest.mark.parametrize("kernels", TFLITE_RESOLVERS)
def test_tflite(bench, model_path, images, reference, kernels, threads, batch):
    litert = pytest.importorskip("ai_edge_litert.interpreter", exc_type=ImportError,
                                 reason="TFLite: ai-edge-litert not importable (pip install ai-edge-litert)")
    resolver = getattr(litert.OpResolverType, TFLITE_RESOLVERS[kernels])
    run, per_invoke = tflite_runner(litert, model_path, resolver, threads, batch)
    config = kernels if per_invoke == batch else f"{kernels} ({batch} single-image invokes)"
    bench("tflite", config, run, images[:batch], reference)


def test_onnxruntime(bench, onnx_model, images, reference, threads, batch):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    bench("onnxruntime", "CPU EP, tf2onnx", lambda x: session.run(None, {name: x})[0], images[:batch], reference)
