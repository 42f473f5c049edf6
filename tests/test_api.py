"""The Python API: shapes, dtypes, batches, threads, ISA choice and input errors."""
import threading

import numpy as np
import pytest
from conftest import MAIN_MODEL

import mnq
from mnq import _core


@pytest.fixture(scope="module")
def model():
    return mnq.load(MAIN_MODEL, num_threads=2)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).integers(0, 256, (3, 160, 160, 3), dtype=np.uint8)


def test_metadata(model):
    assert model.input_shape == (160, 160, 3)
    assert model.num_outputs == 1001
    assert model.labels is not None and len(model.labels) == 1001 and model.labels[0] == "background"
    assert len(model.kernels) == len(model.layer_names) == 31
    assert model.isa == _core.best_isa()
    assert "mobilenet" in repr(model)


def test_run_shapes_and_single_image(model, images):
    out = model.run(images)
    assert out.shape == (3, 1001) and out.dtype == np.uint8
    single = model.run(images[1])
    assert single.shape == (1, 1001)
    np.testing.assert_array_equal(single[0], out[1])


def test_batch_equals_single_runs(model, images):
    batch = model.run(images)
    for i in range(len(images)):
        np.testing.assert_array_equal(model.run(images[i:i + 1])[0], batch[i])


def test_thread_counts_agree(images):
    m = mnq.load(MAIN_MODEL, num_threads=1, adapt_threads=False)  # each count's own tiling
    one = m.run(images)
    for n in (2, 3, 5):
        m.num_threads = n
        np.testing.assert_array_equal(m.run(images), one)


def test_long_batch_runs_in_parts_with_the_same_bytes():
    """A batch of more than a few images runs as consecutive sub-batches inside the executor
    at 1 thread (6 images for this model) and image by image on each thread at 2: every
    image, and every kept layer output, is what it is alone; a profiled run times each layer
    (at 2 threads in layer order, summed over sub-batches)."""
    x = np.random.default_rng(11).integers(0, 256, (13, 160, 160, 3), dtype=np.uint8)
    m = mnq.load(MAIN_MODEL, num_threads=1)
    picks = (0, 5, 6, 12)  # first, sub-batch edges, last
    alone = {i: m.layer_outputs(x[i:i + 1]) for i in picks}
    for threads in (1, 2):
        m.num_threads = threads
        batch = m.layer_outputs(x)
        for i in picks:
            for (name, got), (_, want) in zip(batch, alone[i]):
                np.testing.assert_array_equal(got[i], want[0], err_msg=f"{name}, image {i}, {threads} threads")
        seconds = [p.seconds for p in m.profile(x, repeats=1)]
        assert len(seconds) == 31 and min(seconds) >= 0 and sum(seconds) > 0


def test_predict_and_features_dequantize_internal_tensors(model, images):
    floats = images.astype(np.float32) / 255.0
    logits = model.predict(floats)
    feats = model.features(floats)
    assert logits.shape == (3, 1001) and logits.dtype == np.float32
    assert feats.shape == (3, 1024) and feats.dtype == np.float32
    outputs = dict(model.layer_outputs(images))
    g = model.graph
    softmax = g.layers[g.index_of("softmax")]
    q = softmax.in_quant
    np.testing.assert_array_equal(logits, (outputs[g.layers[g.index_of("softmax") - 1].name].astype(np.float32)
                                           - q.zero_point) * np.float32(q.scale))
    pool = g.layers[g.index_of("avgpool")]
    np.testing.assert_allclose(feats, (outputs[pool.name].reshape(3, -1).astype(np.float32)
                                       - pool.out_quant.zero_point) * pool.out_quant.scale)
    assert (logits.argmax(1) == model.run(images).argmax(1)).all()


def test_float_to_uint8_mapping(model):
    x = np.array([0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, -0.3, 1.7], np.float64)
    img = np.broadcast_to(x[:, None, None, None], (7, 160, 160, 3)).copy()
    got = model.to_uint8(img)[:, 0, 0, 0]
    assert got.tolist() == [0, 1, 2, 128, 255, 0, 255]


def test_layer_outputs_names_and_order(model, images):
    outs = model.layer_outputs(images[:1])
    # layer_outputs keeps TFLite's full tensor names; layer_names are their short form, as the CLI shows
    assert [n.split(";")[0] for n, _ in outs] == model.layer_names
    assert all(";" not in n and len(n) < 80 for n in model.layer_names)
    assert outs[0][1].shape == (1, 80, 80, 32)
    assert outs[-1][1].shape == (1, 1001)
    np.testing.assert_array_equal(outs[-1][1], model.run(images[:1]))


def test_read_only_input_is_accepted(model, images):
    ro = images.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(model.run(ro), model.run(images))


@pytest.mark.parametrize("bad,error,message", [
    (np.zeros((160, 160), np.uint8), ValueError, "2-d"),
    (np.zeros((1, 1, 160, 160, 3), np.uint8), ValueError, "5-d"),
    (np.zeros((1, 128, 160, 3), np.uint8), ValueError, r"\[N,160,160,3\]"),
    (np.zeros((1, 160, 160, 4), np.uint8), ValueError, r"\[N,160,160,3\]"),
    (np.zeros((0, 160, 160, 3), np.uint8), ValueError, "empty batch"),
    (np.zeros((1, 160, 160, 3), np.float32), TypeError, "uint8"),
    (np.zeros((1, 160, 160, 3), np.int16), TypeError, "uint8"),
    (np.zeros((1, 160, 320, 3), np.uint8)[:, :, ::2], ValueError, "contiguous"),
    ([[0]], TypeError, "numpy uint8 array"),
])
def test_run_rejects_bad_input(model, bad, error, message):
    with pytest.raises(error, match=message):
        model.run(bad)


@pytest.mark.parametrize("bad,error,message", [
    (np.zeros((1, 160, 160, 3), np.uint8), TypeError, "float32"),
    (np.full((1, 160, 160, 3), np.nan, np.float32), ValueError, "NaN"),
    (np.full((1, 160, 160, 3), np.inf, np.float32), ValueError, "infinite"),
    (np.zeros((2, 160, 160), np.float32), ValueError, r"\[N,160,160,3\]"),
    (np.zeros((0, 160, 160, 3), np.float32), ValueError, "empty batch"),
])
def test_predict_rejects_bad_input(model, bad, error, message):
    with pytest.raises(error, match=message):
        model.predict(bad)
    with pytest.raises(error, match=message):
        model.features(bad)


def test_num_threads_validation(model):
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="num_threads"):
            model.num_threads = bad


def test_isa_selection(monkeypatch, images):
    with pytest.raises(ValueError, match="unknown instruction set"):
        mnq.load(MAIN_MODEL, isa="avx9000")
    for isa in _core.supported_isas():
        assert mnq.load(MAIN_MODEL, isa=isa).isa == isa
    monkeypatch.setenv("MNQ_ISA", "scalar")
    m = mnq.load(MAIN_MODEL)
    assert m.isa == "scalar" and all(k.endswith("scalar") or k == "mnq_copy_u8" for k in m.kernels)
    monkeypatch.setenv("MNQ_ISA", "bogus")
    with pytest.raises(ValueError, match="MNQ_ISA|unknown instruction set"):
        mnq.load(MAIN_MODEL)


def test_unavailable_isa_is_refused_by_the_c_library():
    missing = [i for i, name in enumerate(_core.ISA_NAMES) if name not in _core.supported_isas()]
    if not missing:
        pytest.skip("this CPU runs every instruction-set level, so none can be refused")
    descs = mnq.plan.plan(mnq.model.read_graph(MAIN_MODEL))
    for i in missing:
        with pytest.raises(ValueError, match="not supported"):
            _core.Net(descs, _core.ISA_NAMES[i])
        with pytest.raises(ValueError, match="not available on this CPU"):
            mnq.load(MAIN_MODEL, isa=_core.ISA_NAMES[i])


def test_labels_argument(tmp_path):
    m = mnq.load(MAIN_MODEL, labels=[f"c{i}" for i in range(1001)])
    assert m.labels[5] == "c5"
    with pytest.raises(ValueError, match="1001 classes"):
        mnq.load(MAIN_MODEL, labels=["a", "b"])
    lonely = tmp_path / "model.tflite"
    lonely.write_bytes(MAIN_MODEL.read_bytes())
    assert mnq.load(lonely).labels is None
    (tmp_path / "labels.txt").write_text("\n".join(f"x{i}" for i in range(1001)))
    assert mnq.load(lonely).labels[3] == "x3"


def test_concurrent_calls_share_one_model(model, images):
    expected = model.run(images)
    errors = []

    def worker():
        try:
            for _ in range(3):
                np.testing.assert_array_equal(model.run(images), expected)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_profile_reports_every_layer(model, images):
    rows = model.profile(images[:1], repeats=2)
    assert [r[0] for r in rows] == model.layer_names
    assert all(r[2] >= 0 for r in rows) and sum(r[2] for r in rows) > 0


def test_profile_roofline_fields(model, images):
    """MACs per layer from its shapes (times the batch), GMAC/s from them, and a share of
    the level's measured peak wherever the level has a peak probe."""
    from mnq import roofline
    from mnq.summary import layer_macs

    rows = model.profile(images[:2], repeats=2)
    assert [r.macs for r in rows] == [2 * layer_macs(layer) for layer in model.graph.layers]
    assert sum(r.macs for r in rows) > 0
    for r in rows:
        assert r.gmacs == pytest.approx(r.macs / r.seconds / 1e9 if r.seconds > 0 else 0.0)
    measured = roofline.peak(model.isa)
    if _core.peak_of_isa(model.isa) is None:
        assert measured is None and all(r.peak_fraction is None for r in rows)
    else:
        assert measured[0] in _core.peak_probes() and measured[1] > 1e9  # any SIMD core does > 1 GMAC/s
        for r in rows:
            assert (r.peak_fraction is None) == (r.macs == 0)
            if r.macs:
                assert r.peak_fraction == pytest.approx(r.gmacs * 1e9 / (measured[1] * model.num_threads))


def test_peak_probes():
    """Every probe the CPU runs measures a positive rate; one it lacks reports 0, an unknown name is an error."""
    for probe in _core.PEAK_NAMES:
        rate = _core.peak_macs_per_second(probe, 0.01)
        assert (rate > 0) == (probe in _core.peak_probes()), (probe, rate)
    with pytest.raises(ValueError, match="unknown peak probe"):
        _core.peak_macs_per_second("vpdpwssd")


def test_info():
    info = mnq.info()
    assert info["version"] == mnq.__version__
    assert "scalar" in info["isas"] and info["best_isa"] in info["isas"]


def test_info_lists_the_features_behind_each_level():
    """cpu_features names every feature that changes a kernel choice; a level is offered
    only when the features its baseline kernels need are listed."""
    known = {"avx2", "fma", "avx-vnni", "avx512f/bw/dq/vl", "avx512-vnni", "avx512-vbmi", "amx-int8", "asimd",
             "asimddp", "i8mm", "neon"}
    features = mnq.info()["cpu_features"].split()
    assert features == ["none beyond scalar"] or set(features) <= known, features
    level_needs = {"avx2": {"avx2", "fma"}, "avx512vnni": {"avx512f/bw/dq/vl", "avx512-vnni"},
                   "amx": {"avx512-vnni", "amx-int8"}, "neondot": {"asimddp"},
                   "neoni8mm": {"asimddp", "i8mm"}}
    for isa in mnq.info()["isas"]:
        assert level_needs.get(isa, set()) <= set(features), (isa, features)
