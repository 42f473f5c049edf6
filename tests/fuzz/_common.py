"""Shared by the fuzz targets: each exposes TestOneInput(data) (raises only on a finding)
and runs under atheris when executed as a script:
    python tests/fuzz/fuzz_tflite.py [libFuzzer flags] [corpus dirs]
The replay in tests/test_fuzz.py calls TestOneInput on every seed and regression file
without atheris."""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))          # tests/ (tflite_builder)
sys.path.insert(0, str(HERE.parents[1] / "src"))  # the package, when not installed

import numpy as np  # noqa: E402

# the smallest per-image work we run after a successful load: fuzzing wants many runs/s
MAX_RUN_BYTES = 1 << 20


def run_model(graph):
    """Plan, build and run a parsed graph; a failure must be the documented error types."""
    from mnq.model import Model

    model = Model(graph, num_threads=1, isa="scalar" if os.environ.get("MNQ_FUZZ_SCALAR") else None)
    if sum(model._sizes) <= MAX_RUN_BYTES:
        out = model.scores(np.full((1,) + model.input_shape, 77, np.uint8))
        assert out.dtype == np.uint8 and out.shape == (1, model.num_outputs)
        out2 = model.scores(np.full((1,) + model.input_shape, 77, np.uint8))
        assert (out == out2).all(), "two runs of the same input differ"


def instrument_mnq():
    """Under atheris, import mnq with coverage instrumentation (before the target imports it)."""
    import atheris

    with atheris.instrument_imports(include=["mnq"]):
        import mnq.mnq_format  # noqa: F401
        import mnq.model  # noqa: F401
        import mnq.pipeline  # noqa: F401
        import mnq.plan  # noqa: F401
        import mnq.preprocess  # noqa: F401
        import mnq.tflite_loader  # noqa: F401


def main(test_one_input):
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
