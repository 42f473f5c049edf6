"""Latency and throughput of mnq, and of the peers installed, on one model file.

    from mnq.benchmark import run_benchmark
    report = run_benchmark("model.tflite", batches=[1, 32], threads=[1, 2], budget_s=5, compare=True)

For each (batch, threads) configuration every engine is loaded and warmed up, then the time
budget is split into rounds and the engines take turns within each round (mnq, TFLite, ONNX
Runtime, mnq, ...), so a slow phase of a shared machine hurts them alike. Latency is the wall
time of one call on the batch; img/s is batch / mean latency. `mnq benchmark` prints this;
bench/ times the same engines through measure().

Peers: TFLite (ai-edge-litert) with its default XNNPACK delegate on the same .tflite;
ONNX Runtime (CPU) on a tf2onnx conversion of it, converted once in a subprocess (tf2onnx
needs TensorFlow) and cached by the .tflite's sha256. Neither is byte-exact with TFLite's
reference kernels; mnq is.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

ROUNDS = 5  # turns per engine within one configuration's budget


@dataclass
class Engine:
    name: str  # "mnq", "tflite", "onnxruntime"
    config: str  # e.g. "isa=avx2", "xnnpack"
    run: Callable[[np.ndarray], np.ndarray]
    load_s: float
    latencies: List[float] = field(default_factory=list)
    warmup_s: float = 0.0
    note: str = ""


def measure(run: Callable, x: np.ndarray, budget_s: float, min_runs: int = 3) -> List[float]:
    """Seconds per call of run(x): calls until budget_s has passed, at least min_runs."""
    latencies, deadline = [], time.perf_counter() + budget_s
    while len(latencies) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        run(x)
        latencies.append(time.perf_counter() - start)
    return latencies


def summary(latencies: List[float], batch: int) -> dict:
    ms = np.asarray(latencies) * 1e3
    return {"runs": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
            "images_per_second": batch / (ms.mean() / 1e3)}


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


# ---------------------------------------------------------------- engines

def mnq_engine(model_path, threads: int, isa: Optional[str]) -> tuple:
    """(Engine, model): load + plan timed as load_s."""
    import mnq

    start = time.perf_counter()
    model = mnq.load(model_path, num_threads=threads, isa=isa)
    return Engine("mnq", f"isa={model.isa}", model.run, time.perf_counter() - start), model


def tflite_runner(model_path, threads: int, batch: int, resolver=None) -> tuple:
    """(run(images) -> outputs, images per invoke) on ai-edge-litert; resolver None is the
    default (XNNPACK delegate). MobileNet .tflite files end in a Reshape to a constant
    [1, classes], so TFLite refuses to resize to batch > 1: then one invoke per image."""
    from ai_edge_litert import interpreter as litert

    resolver = litert.OpResolverType.AUTO if resolver is None else resolver

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


def tflite_engine(model_path, threads: int, batch: int) -> Engine:
    start = time.perf_counter()
    run, per_invoke = tflite_runner(model_path, threads, batch)
    config = "xnnpack" if per_invoke == batch else f"xnnpack ({batch} single-image invokes)"
    return Engine("tflite", config, run, time.perf_counter() - start)


def onnx_cache_dir() -> Path:
    from .fetch import cache_dir

    return Path(os.environ.get("MNQ_BENCH_CACHE") or cache_dir() / "onnx")


def onnx_conversion(model_path) -> Path:
    """tf2onnx conversion of the .tflite with a symbolic batch, cached by the file's sha256.
    RuntimeError saying why when it cannot be made."""
    model_path = Path(model_path)
    if importlib.util.find_spec("tf2onnx") is None:
        raise RuntimeError("tf2onnx is not installed (pip install tf2onnx tensorflow-cpu)")
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    cache = onnx_cache_dir()
    out = cache / f"{model_path.stem}-{digest[:16]}.onnx"
    if out.is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    # a subprocess keeps TensorFlow (which tf2onnx imports) out of the timed process
    proc = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", str(model_path), "--output", str(tmp)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"tf2onnx conversion failed ({last})")
    make_batch_dynamic(tmp)
    os.replace(tmp, out)  # atomic, so a crashed run never leaves a half-written cache entry
    return out


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


def onnx_session(onnx_path, threads: int) -> Callable:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def onnx_engine(onnx_path, threads: int) -> Engine:
    start = time.perf_counter()
    run = onnx_session(onnx_path, threads)
    return Engine("onnxruntime", "CPU EP, tf2onnx", run, time.perf_counter() - start)


def peers_available(model_path) -> tuple:
    """({"tflite": True, "onnx": Path or None}, [why a peer is left out])."""
    notes, onnx = [], None
    tflite = importlib.util.find_spec("ai_edge_litert") is not None
    if not tflite:
        notes.append("TFLite: ai-edge-litert is not installed (pip install ai-edge-litert)")
    if str(model_path).endswith(".mnq") or not Path(model_path).is_file():
        return {"tflite": False, "onnx": None}, ["peers need a .tflite file; the model is not one"]
    if importlib.util.find_spec("onnxruntime") is None:
        notes.append("ONNX Runtime: onnxruntime is not installed (pip install onnxruntime)")
    else:
        try:
            onnx = onnx_conversion(model_path)
        except (RuntimeError, OSError, ImportError, ValueError) as exc:
            notes.append(f"ONNX Runtime: {exc}")
    return {"tflite": tflite, "onnx": onnx}, notes


# ---------------------------------------------------------------- the run

def run_benchmark(model_path, batches=(1,), threads=(1,), budget_s: float = 5.0, warmup_runs: int = 2,
                  isa: Optional[str] = None, compare: bool = False, on_progress=None) -> dict:
    """Time mnq (and, with compare, the peers) for every (batch, threads) pair; budget_s is the
    timed seconds per configuration, shared by the engines. Returns a JSON-ready report."""
    say = on_progress or (lambda message: None)
    peers, notes = peers_available(model_path) if compare else ({"tflite": False, "onnx": None}, [])
    start = time.perf_counter()
    import mnq

    first = mnq.load(model_path, isa=isa)
    load_s = time.perf_counter() - start
    shape = first.input_shape
    rng = np.random.default_rng(0)
    # in the file's own input dtype (uint8, int8 or float32), the same array for every engine
    images = np.ascontiguousarray(first.input_from_pixels(rng.integers(0, 256, (max(batches),) + shape, dtype=np.uint8)))
    report = {"model": str(model_path), "input_shape": list(shape), "isa": first.isa,
              "kernels": sorted(set(first.kernels)), "load_s": load_s, "budget_s": budget_s,
              "warmup_runs": warmup_runs, "results": [], "notes": notes}
    for batch in batches:
        x = images[:batch]
        for n in threads:
            engines = [mnq_engine(model_path, n, isa)[0]]
            if peers["tflite"]:
                engines.append(tflite_engine(model_path, n, batch))
            if peers["onnx"] is not None:
                engines.append(onnx_engine(peers["onnx"], n))
            for engine in engines:
                t0 = time.perf_counter()
                for _ in range(warmup_runs):
                    engine.run(x)
                engine.warmup_s = time.perf_counter() - t0
            share = budget_s / (ROUNDS * len(engines))
            say(f"batch {batch}, {n} thread(s): {', '.join(e.name for e in engines)}, {budget_s:g} s")
            for _ in range(ROUNDS):
                for engine in engines:
                    engine.latencies += measure(engine.run, x, share, min_runs=1)
            for engine in engines:
                report["results"].append({"engine": engine.name, "config": engine.config, "batch": batch,
                                          "threads": n, "load_s": engine.load_s, "warmup_s": engine.warmup_s,
                                          **summary(engine.latencies, batch)})
    report["peak_rss_mib"] = peak_rss_mib()  # the whole process: with compare, the peers' memory too
    return report
