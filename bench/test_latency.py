"""Latency of mnq and its peers (TFLite, ONNX Runtime) on one model, in one process, on one input.

Run: python -m pytest bench/   (options and row meanings: bench/README.md). The engines and the
timing loop are mnq.benchmark's, as `mnq benchmark --compare` uses them.
Nothing here asserts on time; a missing peer is skipped with the reason in the final table.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import mnq
from mnq import _core
from mnq.benchmark import onnx_conversion, onnx_session, tflite_runner

# Interpreter's default resolver applies the XNNPACK delegate; "builtin" runs TFLite's own
# optimized kernels; "reference" its reference kernels, the ones mnq's output is defined by.
TFLITE_RESOLVERS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


@pytest.fixture(scope="session")
def reference(model_path, images):
    """TFLite built-in kernels' output for the whole input batch: the bytes mnq must reproduce."""
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError:
        return None
    run, _ = tflite_runner(model_path, 1, 1, litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return run(images)


@pytest.fixture(scope="session")
def onnx_model(model_path) -> Path:
    """tf2onnx conversion of the .tflite, cached by the .tflite's sha256 (mnq.benchmark)."""
    pytest.importorskip("onnxruntime", exc_type=ImportError,
                        reason="ONNX Runtime: onnxruntime not importable (pip install onnxruntime)")
    try:
        return onnx_conversion(model_path)
    except RuntimeError as exc:
        pytest.skip(f"ONNX Runtime: {exc}")


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
    run, per_invoke = tflite_runner(model_path, threads, batch, resolver)
    config = kernels if per_invoke == batch else f"{kernels} ({batch} single-image invokes)"
    bench("tflite", config, run, images[:batch], reference)


def test_onnxruntime(bench, onnx_model, images, reference, threads, batch):
    bench("onnxruntime", "CPU EP, tf2onnx", onnx_session(onnx_model, threads), images[:batch], reference)
