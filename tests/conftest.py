import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED = Path(os.environ.get("MNQ_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
MODELS = SHARED / "models"
MAIN_MODEL = MODELS / "mobilenet_v1_1.0_160_quant_from224.tflite"
IMAGES = SHARED / "images" / "imagenet_val"
ALL_MODELS = sorted(MODELS.glob("*.tflite"))


def pytest_configure(config):
    # The shared models are part of the test contract: their absence is a failure, not a skip.
    if not MAIN_MODEL.is_file():
        raise pytest.UsageError(f"test data not found at {SHARED} (set MNQ_SHARED to the shared/ folder)")


class Reference:
    """TFLite's reference kernels with every intermediate tensor kept."""

    def __init__(self, model_path):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.it = Interpreter(model_path=str(model_path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                              experimental_preserve_all_tensors=True, num_threads=1)
        self.it.allocate_tensors()
        self.index = {d["name"]: d["index"] for d in self.it.get_tensor_details()}
        self.input_index = self.it.get_input_details()[0]["index"]

    def tensors(self, image):
        """{tensor name: uint8 array} for one uint8 [H,W,C] image."""
        self.it.set_tensor(self.input_index, image[None])
        self.it.invoke()
        return {name: self.it.get_tensor(i).copy() for name, i in self.index.items()}


@lru_cache(maxsize=8)
def reference(model_path) -> Reference:
    return Reference(model_path)


def assert_same_as_reference(model, batch, ref):
    """Every op output of mnq, for every image, equals TFLite's reference tensor: same dtype,
    same values. Returns the outputs compared."""
    outputs = model.layer_outputs(batch)
    for n in range(len(batch)):
        expected = ref.tensors(batch[n])
        for name, got in outputs:
            want = expected[name].reshape(-1)
            assert got.dtype == want.dtype, f"tensor '{name}': mnq {got.dtype}, TFLite {want.dtype}"
            diff = np.count_nonzero(got[n].reshape(-1) != want)
            assert diff == 0, f"image {n}, tensor '{name}': {diff} of {want.size} values differ"
    return outputs


@pytest.fixture(scope="session")
def main_model_path():
    return MAIN_MODEL
