"""Threads under three conditions, mnq beside its peers in one run (issue: threads that hold up
on a busy machine).

    python bench/threads.py [--model M.tflite] [--int8-model M_int8.tflite] [--seconds 1.0]

Scenarios, each printed as one Markdown table of medians:
  quiet       nothing else running: batch 1 at 1 and 2 threads, batch 32 at 1 and 2 threads
  busy        the same while one unrelated process spins on one core (a Python busy loop)
  concurrent  total images/s of 4 Python threads calling Model.run at once vs one caller in a loop

Engines: mnq on the uint8 model, TFLite + XNNPACK on the int8 model (XNNPACK's fastest path), ONNX
Runtime on the uint8 model (a cached tf2onnx conversion, when tf2onnx and onnxruntime are
installed). Rounds are interleaved (every engine once per round) so drifting machine load
touches all engines alike. Nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import mnq

SHARED = Path(os.environ.get("MNQ_SHARED", Path(__file__).resolve().parents[2] / "shared"))
MODEL = SHARED / "models" / "mobilenet_v1_1.0_160_quant_from224.tflite"
INT8_MODEL = SHARED / "models" / "int8" / "mobilenet_v1_1.0_160_int8.tflite"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def xnnpack_runner(path: Path, threads: int):
    """One image per invoke, int8 input (the file's own dtype)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    x = np.random.default_rng(0).integers(-128, 128, detail["shape"], dtype=np.int8).astype(detail["dtype"])
    index = detail["index"]

    def run(n):
        for _ in range(n):
            it.set_tensor(index, x)
            it.invoke()

    return run


def onnx_runner(path: Path, threads: int):
    """ONNX Runtime on a tf2onnx conversion of the uint8 .tflite, cached by content hash."""
    import onnxruntime as ort

    cache = Path(os.environ.get("MNQ_BENCH_CACHE", Path.home() / ".cache" / "mnq-bench"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    onnx_path = cache / f"{path.stem}-{digest}-b1.onnx"
    if not onnx_path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = onnx_path.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", str(path), "--output", str(tmp)],
                       check=True, capture_output=True)
        os.replace(tmp, onnx_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).integers(0, 256, (1, 160, 160, 3), dtype=np.uint8)

    def run(n):
        for _ in range(n):
            session.run(None, {name: x})

    return run


def mnq_runner(path: Path, threads: int, batch: int):
    model = mnq.load(path, num_threads=threads)
    x = np.random.default_rng(0).integers(0, 256, (batch,) + model.input_shape, dtype=np.uint8)

    def run(n):
        for _ in range(n):
            model.run(x)

    return run


def interleaved_medians(runners: dict, seconds: float, rounds: int = 15) -> dict:
    """{name: median seconds per call}: each round times every runner for ~seconds/rounds."""
    per_call = {}
    for name, run in runners.items():  # warm up and size each engine's block of calls
        t0 = time.perf_counter()
        run(2)
        per_call[name] = (time.perf_counter() - t0) / 2
    samples = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            n = max(1, int(seconds / rounds / per_call[name]))
            t0 = time.perf_counter()
            run(n)
            samples[name].append((time.perf_counter() - t0) / n)
    return {name: float(np.median(s)) for name, s in samples.items()}


def engines(args, batch: int) -> dict:
    out = {f"mnq {t} thread{'s' * (t > 1)}": mnq_runner(args.model, t, batch) for t in (1, 2)}
    if batch == 1:
        try:
            for t in (1, 2):
                out[f"XNNPACK int8 {t} thread{'s' * (t > 1)}"] = xnnpack_runner(args.int8_model, t)
        except ImportError:
            print("XNNPACK: ai-edge-litert not installed, skipped", file=sys.stderr)
        try:
            for t in (1, 2):
                out[f"ONNX Runtime {t} thread{'s' * (t > 1)}"] = onnx_runner(args.model, t)
        except (ImportError, subprocess.CalledProcessError) as e:
            print(f"ONNX Runtime skipped: {e}", file=sys.stderr)
    return out


def table(title: str, medians: dict, batch: int) -> str:
    base = medians.get("mnq 1 thread")
    lines = [f"### {title}, batch {batch}", "", "| engine | median ms | img/s | × mnq 1 thread |", "|---|--:|--:|--:|"]
    for name, s in medians.items():
        lines.append(f"| {name} | {1e3 * s:.2f} | {batch / s:.0f} | {s / base:.2f} |")
    return "\n".join(lines) + "\n"


def busy_process():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def concurrent(args, callers: int, seconds: float) -> str:
    model = mnq.load(args.model)  # default threads: every core
    x = np.random.default_rng(0).integers(0, 256, (1,) + model.input_shape, dtype=np.uint8)
    model.run(x)

    def throughput(n_callers):
        counts = [0] * n_callers
        stop = time.perf_counter() + seconds

        def loop(i):
            while time.perf_counter() < stop:
                model.run(x)
                counts[i] += 1

        workers = [threading.Thread(target=loop, args=(i,)) for i in range(n_callers)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(counts) / (time.perf_counter() - t0)

    rows = []
    for _ in range(3):  # interleave: single, many, single, many ...
        rows.append((throughput(1), throughput(callers)))
    single, many = np.median([r[0] for r in rows]), np.median([r[1] for r in rows])
    return (f"### {callers} concurrent callers (Model.run, batch 1, num_threads={model.num_threads})\n\n"
            f"| callers | total img/s | × one caller |\n|--:|--:|--:|\n| 1 | {single:.0f} | 1.00 |\n"
            f"| {callers} | {many:.0f} | {many / single:.2f} |\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--int8-model", type=Path, default=INT8_MODEL)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per engine and scenario")
    parser.add_argument("--scenarios", default="quiet,busy,concurrent")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; mnq isa {mnq.info()['best_isa']}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n")
    for scenario in ("quiet", "busy"):
        if scenario not in scenarios:
            continue
        runners = {1: engines(args, 1), 32: engines(args, 32)}
        spinner = busy_process() if scenario == "busy" else None
        try:
            for batch, group in runners.items():
                title = "quiet" if spinner is None else "one busy process"
                print(table(title, interleaved_medians(group, args.seconds), batch))
        finally:
            if spinner:
                spinner.kill()
                spinner.wait()
    if "concurrent" in scenarios:
        print(concurrent(args, 4, args.seconds))


if __name__ == "__main__":
    main()
