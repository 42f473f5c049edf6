"""Whole models against TFLite's reference kernels: every intermediate tensor,
byte for byte, under every instruction-set level this CPU has."""
import numpy as np
import pytest
from conftest import ALL_MODELS, IMAGES, MAIN_MODEL, assert_same_as_reference, reference
from tflite_builder import build, random_network

import mnq
from mnq import _core
from mnq.preprocess import load_image

ISAS = _core.supported_isas()


def special_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, 256, shape, dtype=np.uint8),
                     np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)])


def imagenet_batch(count, shape):
    files = sorted(p for p in IMAGES.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))[:count]
    assert len(files) == count, f"need {count} images in {IMAGES}"
    return np.stack([load_image(p, shape[:2]) for p in files])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("model_path", ALL_MODELS, ids=lambda p: p.stem)
def test_random_zero_and_full_inputs(model_path, isa):
    model = mnq.load(model_path, num_threads=2, isa=isa)
    assert_same_as_reference(model, special_inputs(model.input_shape), reference(model_path))


@pytest.mark.parametrize("isa", ISAS)
def test_main_model_on_50_imagenet_images(isa):
    model = mnq.load(MAIN_MODEL, num_threads=2, isa=isa)
    assert_same_as_reference(model, imagenet_batch(50, model.input_shape), reference(MAIN_MODEL))


@pytest.mark.parametrize("model_path", [p for p in ALL_MODELS if p != MAIN_MODEL], ids=lambda p: p.stem)
def test_other_models_on_imagenet_images(model_path):
    model = mnq.load(model_path, num_threads=2)
    assert_same_as_reference(model, imagenet_batch(8, model.input_shape), reference(model_path))


SYNTHETIC = {
    "odd_sizes_same": dict(size=(13, 11), channels=(3, 8, 12), strides=(2, 1), paddings=("SAME",)),
    "valid_padding": dict(size=(17, 15), channels=(3, 5, 7), strides=(2, 2), paddings=("VALID", "SAME")),
    "stride2_even": dict(size=(16, 16), channels=(3, 16, 33), strides=(2, 2), paddings=("SAME",), depth=3),
    "tiny_1x1": dict(size=(2, 2), channels=(3, 4, 5), strides=(2, 2), paddings=("SAME",)),
    "relu_none": dict(size=(9, 12), channels=(3, 6, 9), acts=("RELU", "NONE"), strides=(1, 2)),
    "kernel5": dict(size=(11, 11), channels=(3, 8, 8), kernel=5, strides=(2, 1)),
    "four_channel_input": dict(size=(10, 10), channels=(4, 8, 16), strides=(1, 2)),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_family_members(tmp_path, name, isa):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(build(random_network(rng, **SYNTHETIC[name]), rng))
    model = mnq.load(path, num_threads=2, isa=isa)
    from conftest import Reference

    batch = np.concatenate([special_inputs(model.input_shape, seed=1),
                            rng.integers(0, 256, (3,) + model.input_shape, dtype=np.uint8)])
    assert_same_as_reference(model, batch, Reference(path))
