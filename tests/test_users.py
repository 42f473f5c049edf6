"""What a new user meets (issue #15): the rough edges of the CLI and tools, Model.classify,
mnq.load() without a path, mnq benchmark, classify's stdin/labels/summary/Parquet, info
--format json, and the structure that keeps the library free of its CLI."""
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import MAIN_MODEL, MODELS, SHARED

import mnq
from mnq.mnq_format import encode
from mnq.model import read_graph
from mnq.preprocess import load_image
from test_cli import mnq_cli, no_traceback
from test_fetch import GOOD, sha

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = SHARED / "images" / "samples"
LABELS = MODELS / "imagenet_labels.txt"


def one_line_error(r, *needles):
    """A user error: exit 2, no traceback, one line on stderr holding every needle."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and no_traceback(r) and len(lines) == 1, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# ------------------------------------------------------------------ the library

def test_classify_api_takes_paths_pil_images_and_arrays():
    from PIL import Image

    model = mnq.load(MAIN_MODEL, num_threads=1)
    paths = [SAMPLES / "grace_hopper.bmp", SAMPLES / "cat.bmp"]
    by_path = model.classify(paths, top_k=3)
    assert by_path[0][0][:2] == (653, "military uniform") and 0.9 < by_path[0][0][2] < 1
    with Image.open(paths[1]) as im:
        assert model.classify(im, top_k=3) == [by_path[1]]
        array = np.asarray(im.convert("RGB"))
    assert model.classify(array, top_k=3) == [by_path[1]]
    assert model.classify(str(paths[0]), top_k=3) == [by_path[0]]
    # the CLI's preprocessing and ranking: same classes and probabilities as `mnq classify`
    r = mnq_cli("classify", *paths, "--model", MAIN_MODEL, "--top-k", "3", "--format", "json")
    cli = [[(t["class"], t["label"], t["probability"]) for t in json.loads(line)["top_k"]]
           for line in r.stdout.splitlines()]
    assert cli == by_path
    expected = model.run(np.stack([load_image(p, model.input_shape[:2]) for p in paths]))
    assert [[c for c, _, _ in top] for top in by_path] == [list(np.argsort(-e.astype(int), kind="stable")[:3])
                                                           for e in expected]
    with pytest.raises(ValueError, match="top_k"):
        model.classify(paths, top_k=0)
    with pytest.raises(TypeError, match="uint8"):
        model.classify(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(FileNotFoundError):
        model.classify(SAMPLES / "absent.jpg")


def test_load_without_a_path_uses_the_fetched_model(tmp_path, monkeypatch):
    monkeypatch.setenv("MNQ_CACHE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="mnq fetch"):
        mnq.load()
    shutil.copy(MAIN_MODEL, tmp_path / "mobilenet_v1_1.0_160_quant.tflite")
    model = mnq.load(num_threads=1)
    x = np.full((1,) + model.input_shape, 77, np.uint8)
    assert np.array_equal(model.run(x), mnq.load(MAIN_MODEL, num_threads=1).run(x))


def test_profile_and_layer_names_are_the_short_names_the_cli_shows():
    model = mnq.load(MAIN_MODEL, num_threads=1)
    x = np.zeros((1,) + model.input_shape, np.uint8)
    names = [row.name for row in model.profile(x, repeats=1)]
    assert names == model.layer_names and names[0] == "MobilenetV1/MobilenetV1/Conv2d_0/Relu6"
    r = mnq_cli("info", "--model", MAIN_MODEL)
    assert all(name in r.stdout for name in names)


def test_labels_file_size_is_capped(tmp_path):
    from mnq.errors import LabelsError
    from mnq.labels import read_labels_file

    huge = tmp_path / "labels.txt"
    with open(huge, "wb") as f:  # sparse: nothing is written, the size alone must refuse it
        f.truncate(20 << 30)
    with pytest.raises(LabelsError, match="16 MiB"):
        read_labels_file(huge)
    model_dir = tmp_path
    shutil.copy(MAIN_MODEL, model_dir / "m.tflite")
    assert mnq.load(model_dir / "m.tflite").labels is None  # passed over beside a model
    r = mnq_cli("classify", SAMPLES / "cat.bmp", "--model", MAIN_MODEL, "--labels", huge)
    one_line_error(r, str(huge), "16 MiB")


def test_the_library_does_not_import_its_cli():
    code = ("import sys, mnq, mnq.labels, mnq.results, mnq.benchmark, mnq.model\n"
            "import importlib.util\n"
            "if importlib.util.find_spec('dask'): import mnq.distributed\n"
            "assert not [m for m in sys.modules if m.startswith('mnq.cli')], sorted(sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_public_errors_live_in_errors_py():
    from mnq import errors, evaluate, fetch

    assert fetch.FetchError is errors.FetchError and evaluate.LabelsError is errors.LabelsError
    assert {"ModelFormatError", "UnsupportedModelError", "LabelsError", "FetchError", "UsageError"} <= set(vars(errors))


def test_no_install_hint_names_a_package_no_index_has():
    for path in list((ROOT / "src").rglob("*.py")) + list((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        assert "mnq[" not in path.read_text(), path


# ------------------------------------------------------------------ CLI messages

def test_missing_model_and_labels_name_the_option_or_variable(tmp_path):
    cat = SAMPLES / "cat.bmp"
    one_line_error(mnq_cli("classify", cat, "--model", "nope.tflite"), "--model nope.tflite", "No such file")
    one_line_error(mnq_cli("classify", cat, env={"MNQ_MODEL": "nope.tflite"}), "MNQ_MODEL=nope.tflite")
    one_line_error(mnq_cli("eval", SHARED / "images" / "imagenet_val", "--labels", "nope.csv", "--model", MAIN_MODEL),
                   "--labels nope.csv")
    one_line_error(mnq_cli("classify", cat, "--model", MAIN_MODEL, "--labels", "nope.txt"), "--labels nope.txt")
    one_line_error(mnq_cli("info", "--model", tmp_path), str(tmp_path), "not a TF Hub module")


def test_eval_with_nothing_evaluated_says_so(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nnot_here_1.JPEG,1\nnot_here_2.JPEG,2\n")
    for fmt in ("text", "json"):
        r = mnq_cli("eval", tmp_path, "--labels", labels, "--model", MAIN_MODEL, "--format", fmt)
        assert r.returncode == 1 and no_traceback(r)
        assert r.stdout == "" and "nothing was evaluated" in r.stderr and "0.00%" not in r.stderr


def png_header_only(path, width, height):
    """A PNG that claims width x height and holds one tiny IDAT: opening it reads the size."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_pixel_limit_has_a_clear_message_and_can_be_raised(tmp_path):
    big = tmp_path / "scan.png"
    png_header_only(big, 12000, 8000)  # 96 MP: above Pillow's 89.5 MP limit
    r = mnq_cli("classify", big, "--model", MAIN_MODEL)
    assert r.returncode == 1 and no_traceback(r)
    assert "DecompressionBomb" not in r.stderr and "--max-pixels" in r.stderr and "12000x8000" in r.stderr
    r = mnq_cli("classify", big, "--model", MAIN_MODEL, "--max-pixels", "100000000")
    assert "--max-pixels" not in r.stderr and "DecompressionBomb" not in r.stderr  # past the limit, then truncated
    small = tmp_path / "small.png"
    from PIL import Image
    Image.new("RGB", (50, 40), "red").save(small)
    r = mnq_cli("classify", small, "--model", MAIN_MODEL, env={"MNQ_MAX_PIXELS": "1999"})
    assert r.returncode == 1 and "pixel limit of 1,999" in r.stderr
    assert mnq_cli("classify", small, "--model", MAIN_MODEL, env={"MNQ_MAX_PIXELS": "2000"}).returncode == 0


def test_help_mentions_mnq_files_and_modules_and_only_this_architectures_isas():
    from mnq.cli.common import architecture_isas

    r = mnq_cli("classify", "--help")
    assert ".mnq" in r.stdout and "module" in r.stdout
    isas = architecture_isas()
    assert "scalar" in isas and not ({"neon", "amx"} <= set(isas))
    wrong = "neon" if "amx" in isas else "amx"
    r = mnq_cli("classify", "x.jpg", "--isa", wrong)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_docs_cli_md_covers_every_command_and_option():
    from mnq.cli import build_parser

    text = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        assert f"## mnq {name}" in text or f"### mnq {name}" in text, name
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in text, f"mnq {name} {option}"


# ------------------------------------------------------------------ fetch

def test_fetch_takes_a_plain_path_and_draws_no_bar_into_a_pipe(tmp_path):
    archive = tmp_path / "model.tgz"
    archive.write_bytes(GOOD)
    cache = tmp_path / "cache"
    r = mnq_cli("fetch", "--url", archive, "--cache-dir", cache, "--sha256", sha(GOOD))
    assert r.returncode == 0, r.stderr
    assert (cache / "mobilenet_v1_1.0_160_quant.tflite").read_bytes() == MAIN_MODEL.read_bytes()
    assert "download" not in r.stderr and "\r" not in r.stderr  # stderr is a pipe here: no progress bar
    r = mnq_cli("fetch", "--url", archive, "--cache-dir", cache, "--sha256", sha(GOOD), "--progress")
    assert r.returncode == 0 and "download" in r.stderr  # asked for: drawn


# ------------------------------------------------------------------ classify, info

def test_classify_reads_paths_from_stdin_and_always_ends_with_a_summary(tmp_path):
    paths = [SAMPLES / "cat.bmp", SAMPLES / "grace_hopper.bmp", tmp_path / "missing.jpg"]
    r = subprocess.run([sys.executable, "-m", "mnq", "classify", "-", "--model", str(MAIN_MODEL), "--top-k", "1"],
                       input="\n".join(map(str, paths)) + "\n", capture_output=True, text=True)
    assert r.returncode == 1 and no_traceback(r)
    assert [line for line in r.stdout.splitlines() if not line.startswith(" ")] == list(map(str, paths[:2]))
    assert "2 images classified, 1 failed, 0 skipped" in r.stderr and "img/s" in r.stderr


def test_classify_labels_option(tmp_path):
    names = [f"thing {i}" for i in range(1001)]
    labels = tmp_path / "names.txt"
    labels.write_text("\n".join(names) + "\n")
    r = mnq_cli("classify", SAMPLES / "grace_hopper.bmp", "--model", MAIN_MODEL, "--labels", labels, "--top-k", "1")
    assert r.returncode == 0 and "thing 653" in r.stdout
    labels.write_text("just\ntwo\n")
    one_line_error(mnq_cli("classify", SAMPLES / "cat.bmp", "--model", MAIN_MODEL, "--labels", labels),
                   str(labels), "2 labels", "1001 classes")


def test_parquet_without_dask_has_the_cluster_schema(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    from mnq.results import schema

    out = tmp_path / "r.parquet"
    missing = tmp_path / "missing.jpg"
    r = mnq_cli("classify", SAMPLES / "cat.bmp", missing, SAMPLES / "grace_hopper.bmp", "--model", MAIN_MODEL,
                "--top-k", "3", "--output", out, "--batch-size", "2")
    assert r.returncode == 1 and no_traceback(r), r.stderr
    table = pq.read_table(out)
    assert table.schema.equals(schema(3))
    rows = table.to_pylist()
    assert [row["path"] for row in rows] == [str(SAMPLES / "cat.bmp"), str(missing), str(SAMPLES / "grace_hopper.bmp")]
    assert rows[0]["label_1"] == "Egyptian cat" and rows[1]["error"] == "no such file or directory"
    assert rows[2]["class_1"] == 653 and rows[1]["class_1"] is None


def test_info_json():
    r = mnq_cli("info", "--model", MAIN_MODEL, "--format", "json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["model"]["classes"] == 1001 and len(info["model"]["layers"]) == 31
    assert info["model"]["macs"] == sum(layer["macs"] for layer in info["model"]["layers"])
    assert info["isas"] and info["model"]["layers"][0]["c_kernel"]


# ------------------------------------------------------------------ benchmark

def test_benchmark_json():
    r = mnq_cli("benchmark", "--model", MAIN_MODEL, "--batch-sizes", "1,2", "--threads", "1", "--time", "0.3",
                "--warmup", "1", "--format", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [(x["engine"], x["batch"], x["threads"]) for x in report["results"]] == [("mnq", 1, 1), ("mnq", 2, 1)]
    for x in report["results"]:
        assert x["runs"] >= 1 and 0 < x["p50_ms"] <= x["p90_ms"] <= x["p99_ms"] and x["images_per_second"] > 0
    assert report["load_s"] > 0 and report["peak_rss_mib"] > 10 and report["kernels"]


def test_benchmark_compare_times_the_peers_in_the_same_run(tmp_path):
    pytest.importorskip("ai_edge_litert")
    r = mnq_cli("benchmark", "--model", MAIN_MODEL, "--threads", "1", "--time", "0.6", "--compare",
                env={"MNQ_BENCH_CACHE": str(Path.home() / ".cache" / "mnq-bench")})
    assert r.returncode == 0, r.stderr
    engines = [line.split()[0] for line in r.stdout.splitlines() if line.startswith(("mnq ", "tflite", "onnx"))]
    assert "tflite" in engines and "p50 ms" in r.stdout and "peak RSS" in r.stdout


@pytest.mark.parametrize("script, args, expect", [
    ("gemm_microbench.py", ["--runs", "1"], "all pointwise layers of the model"),
    ("peak_probe.py", ["--model", MAIN_MODEL, "--seconds", "0.01"], "M MACs per image"),
])
def test_bench_scripts_still_run(script, args, expect):
    """The bench/ scripts build nets and call the library directly: they must follow its interface."""
    r = mnq_cli(*args, command=(sys.executable, str(ROOT / "bench" / script)))
    assert r.returncode == 0 and no_traceback(r), r.stderr
    assert expect in r.stdout


# ------------------------------------------------------------------ tools, mnq-run

@pytest.fixture(scope="module")
def mnq_run(tmp_path_factory):
    if not shutil.which("make") or not shutil.which("gcc"):
        pytest.skip("make and gcc are needed to build mnq-run")
    build = tmp_path_factory.mktemp("cbuild")
    subprocess.run(["make", "-s", "-j2", f"BUILD={build}", str(build / "mnq-run")], cwd=ROOT, check=True,
                   capture_output=True)
    return build / "mnq-run"


def test_mnq_run_options_after_files_and_labels_beside_the_model(mnq_run, tmp_path):
    model = tmp_path / "model.mnq"
    model.write_bytes(encode(read_graph(MAIN_MODEL)))  # no labels inside
    graph_h, graph_w, _ = read_graph(MAIN_MODEL).input_shape
    image = tmp_path / "hopper.ppm"
    image.write_bytes(b"P6\n%d %d\n255\n" % (graph_w, graph_h)
                      + load_image(SAMPLES / "grace_hopper.bmp", (graph_h, graph_w)).tobytes())
    r = subprocess.run([mnq_run, model, image, "--top", "3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 4 and r.stdout.splitlines()[1].rstrip().endswith("653")  # no names yet
    shutil.copy(LABELS, tmp_path / "imagenet_labels.txt")
    r = subprocess.run([mnq_run, "--top", "2", model, image], capture_output=True, text=True)
    assert r.returncode == 0 and "military uniform" in r.stdout and len(r.stdout.splitlines()) == 3
    r = subprocess.run([mnq_run, model, image, "--top", "many"], capture_output=True, text=True)
    assert r.returncode == 2 and "--top needs a whole number" in r.stderr
    (tmp_path / "names.txt").write_text("a\nb\n")
    r = subprocess.run([mnq_run, model, image, "--labels", tmp_path / "names.txt"], capture_output=True, text=True)
    assert r.returncode == 2 and "2 names for a model with 1001 classes" in r.stderr


# ------------------------------------------------------------------ no tracebacks (issue #17, item 3)

@pytest.mark.skipif(os.environ.get("MNQ_SANITIZED") == "1",
                    reason="ASan reserves terabytes of shadow memory: an address-space limit stops it before mnq runs")
def test_out_of_memory_is_one_line(tmp_path):
    import resource

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    # a batch whose input alone (7 GiB) cannot be allocated under a 3 GiB address-space limit
    r = subprocess.run([sys.executable, "-m", "mnq", "profile", "--batch", "100000", "--model", str(MAIN_MODEL)],
                       capture_output=True, text=True, preexec_fn=limit_memory)
    one_line_error(r, "out of memory")


def test_module_without_tensorflow_is_one_line(tmp_path):
    module = tmp_path / "module"
    module.mkdir()
    (module / "saved_model.pb").write_bytes(b"")
    (module / "tfhub_module.pb").write_bytes(b"\x08\x03")
    # tensorflow made unimportable: a sitecustomize that blocks it, first on the path
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text("import sys\nsys.modules['tensorflow'] = None\n")
    path = os.pathsep.join([str(tmp_path / "block")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                         if p])
    r = mnq_cli("classify", SAMPLES / "cat.bmp", "--model", module, env={"PYTHONPATH": path})
    one_line_error(r, str(module), "pip install tensorflow-cpu")
