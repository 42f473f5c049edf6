"""TF1 Hub quantops modules -> .mnq: the extracted uint8 weights, int32 biases, scales and
zero points equal what the TFLite converter makes of the same graph, and mnq on the
extracted file gives the TFLite reference kernels' bytes for every layer.

Needs TensorFlow (`pip install '.[tf]'`); skipped without it. Modules are built by
tests/tf_module_builder.py: no network.
"""
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, reference

pytest.importorskip("tensorflow", reason="TF Hub module tests need TensorFlow: pip install '.[tf]'")

import tf_module_builder  # noqa: E402

import mnq  # noqa: E402
from mnq.extract import main as extract  # noqa: E402
from mnq.mnq_format import encode  # noqa: E402
from mnq.model import read_graph  # noqa: E402

TOOL = Path(__file__).resolve().parents[1] / "tools" / "extract_weights.py"
LABELS = MODELS / "imagenet_labels.txt"
FIELDS = ("op", "in_shape", "out_shape", "in_quant", "out_quant", "kernel", "stride", "padding", "activation",
          "weight_quant", "beta")
# the MobileNet V1 family: (input size, depth multiplier, classes; 0 = feature_vector module)
MODULES = {"0.25_64": (64, 0.25, 1001), "0.5_72_features": (72, 0.5, 0), "1.0_160": (160, 1.0, 1001)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each module built once (the full 1.0/160 one takes a while), then extracted to .mnq."""
    cache = {}

    def get(name):
        if name not in cache:
            size, depth, classes = MODULES[name]
            paths = tf_module_builder.build(tmp_path_factory.mktemp(name), size=size, depth_multiplier=depth,
                                            num_classes=classes, seed=len(cache))
            paths["mnq"] = paths["module"].parent / "extracted.mnq"
            assert extract([str(paths["module"]), "-o", str(paths["mnq"])]) == 0
            cache[name] = paths
        return cache[name]
    return get


@pytest.mark.parametrize("name", MODULES)
def test_extracted_equals_converted(built, name):
    paths = built(name)
    ours, theirs = read_graph(paths["mnq"]), read_graph(paths["tflite"])
    assert (ours.input_shape, ours.input_quant) == (theirs.input_shape, theirs.input_quant)
    assert len(ours.layers) == len(theirs.layers)
    for a, b in zip(ours.layers, theirs.layers):
        for field in FIELDS:
            assert getattr(a, field) == getattr(b, field), f"{a.name}: {field}"
        for blob in ("weights", "bias"):
            x, y = getattr(a, blob), getattr(b, blob)
            assert (x is None) == (y is None), f"{a.name}: {blob}"
            if x is not None:
                assert x.dtype == y.dtype and x.shape == y.shape, f"{a.name}: {blob}"
                assert np.count_nonzero(x != y) == 0, f"{a.name}: {np.count_nonzero(x != y)} {blob} differ"


@pytest.mark.parametrize("name", MODULES)
def test_outputs_equal_tflite_reference(built, name):
    """Every layer of mnq on the extracted .mnq vs the reference interpreter on the
    converted .tflite (tensors matched by order: the names differ)."""
    paths = built(name)
    model = mnq.load(paths["mnq"], num_threads=2)
    ref = reference(paths["tflite"])
    ref_names = [layer.name for layer in read_graph(paths["tflite"]).layers]
    rng = np.random.default_rng(0)
    batch = np.concatenate([rng.integers(0, 256, (2,) + model.input_shape, dtype=np.uint8),
                            np.zeros((1,) + model.input_shape, np.uint8),
                            np.full((1,) + model.input_shape, 255, np.uint8)])
    outputs = model.layer_outputs(batch)
    assert len(outputs) == len(ref_names)
    for n in range(len(batch)):
        expected = ref.tensors(batch[n])
        for (name_, got), ref_name in zip(outputs, ref_names):
            want = expected[ref_name].reshape(-1)
            diff = np.count_nonzero(got[n].reshape(-1) != want)
            assert diff == 0, f"image {n}, layer '{name_}': {diff} of {want.size} bytes differ"


def test_archive_and_labels_through_the_tool(built, tmp_path):
    """The .tar.gz gives the same file as the directory; labels travel in it."""
    paths = built("1.0_160")
    out = tmp_path / "a.mnq"
    r = subprocess.run([sys.executable, str(TOOL), str(paths["archive"]), "-o", str(out), "--labels", str(LABELS)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    labels = LABELS.read_text().splitlines()
    assert out.read_bytes() == encode(read_graph(paths["mnq"]), labels)  # the directory's file, plus labels
    model = mnq.load(out)
    assert model.labels == labels
    assert model.predict(np.full((1,) + model.input_shape, 0.5, np.float32)).shape == (1, 1001)


def extract_error(capsys, path, tmp_path):
    assert extract([str(path), "-o", str(tmp_path / "o.mnq")]) == 2
    assert not (tmp_path / "o.mnq").exists()
    return capsys.readouterr().err


def test_not_a_module(capsys, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    assert "not a TF Hub module (no saved_model.pb)" in extract_error(capsys, folder, tmp_path)
    (folder / "saved_model.pb").write_bytes(b"\xff" * 100)
    (folder / "tfhub_module.pb").write_bytes(b"\x08\x03")
    assert "saved_model.pb is corrupt" in extract_error(capsys, folder, tmp_path)


def test_missing_variables(built, capsys, tmp_path):
    module = shutil.copytree(built("0.25_64")["module"], tmp_path / "m")
    (module / "variables" / "variables.data-00000-of-00001").unlink()
    assert "cannot restore variables/" in extract_error(capsys, module, tmp_path)
    shutil.rmtree(module / "variables")
    assert "missing variables" in extract_error(capsys, module, tmp_path)


def test_unexpected_op_names_the_node(capsys, tmp_path):
    paths = tf_module_builder.build(tmp_path, size=32, depth_multiplier=0.25, blocks=[(1, 64)], extra_op="elu",
                                    convert=False)
    assert "unsupported op Elu at node 'MobilenetV1/Elu'" in extract_error(capsys, paths["module"], tmp_path)


def test_bad_archives(built, capsys, tmp_path):
    data = built("0.25_64")["archive"].read_bytes()
    for name, content in (("cut.tar.gz", data[: len(data) // 2]), ("noise.tar.gz", b"not an archive" * 50)):
        (tmp_path / name).write_bytes(content)
        assert "corrupt or truncated module archive" in extract_error(capsys, tmp_path / name, tmp_path)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(built("0.25_64")["module"] / "saved_model.pb", arcname="../saved_model.pb")
    assert "refusing to extract" in extract_error(capsys, evil, tmp_path)
    assert not (tmp_path.parent / "saved_model.pb").exists()


def test_pass_through_ops_are_stepped_through(tmp_path):
    """PlaceholderWithDefault on the input, StopGradient/CheckNumerics/Snapshot/Identity between
    layers: the same layers, byte for byte, as the same module without them."""
    kwargs = dict(size=32, depth_multiplier=0.25, blocks=[(1, 64), (2, 128)], num_classes=11, seed=5, convert=False)
    plain = tf_module_builder.build(tmp_path / "plain", **kwargs)["module"]
    wrapped = tf_module_builder.build(tmp_path / "wrapped", pass_through=True, **kwargs)["module"]
    from mnq.tfhub_loader import load_module

    assert encode(load_module(wrapped)) == encode(load_module(plain))


@pytest.mark.parametrize("form", ["module", "archive"])
def test_load_module_equals_the_tflite_route(built, form, tmp_path, monkeypatch):
    """mnq.load(module directory or .tar.gz): converted once into the cache, keyed by content,
    then the same output bytes as mnq.load(converted .tflite)."""
    monkeypatch.setenv("MNQ_CACHE_DIR", str(tmp_path / "cache"))
    paths = built("0.25_64")
    from_module = mnq.load(paths[form], num_threads=1)
    from_tflite = mnq.load(paths["tflite"], num_threads=1)
    x = np.random.default_rng(1).integers(0, 256, (3,) + from_tflite.input_shape, dtype=np.uint8)
    assert from_module.run(x).tobytes() == from_tflite.run(x).tobytes()
    cached = list((tmp_path / "cache" / "modules").glob("*.mnq"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = mnq.load(paths[form], num_threads=1)  # from the cache: not converted again
    assert cached[0].stat().st_mtime_ns == stamp and again.run(x).tobytes() == from_tflite.run(x).tobytes()
    assert str(paths[form]) in repr(from_module) or paths[form].name in repr(from_module)
