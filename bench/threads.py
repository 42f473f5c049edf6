"""Threads under three conditions, mnq beside its peers in one run: does a 2-thread mnq hold up
on a busy machine?

    python bench/threads.py [--model M.tflite] [--int8-model M_int8.tflite] [--seconds 1.0]

Scenarios, each printed as one Markdown table of medians:
  quiet       nothing else running: batch 1 at 1 and 2 threads, batch 32 at 1 and 2 threads
  busy        the same while one unrelated process spins on one core (a Python busy loop)
  concurrent  total images/s of 4 Python threads calling Model.run at once vs one caller in a loop

Each table has a ceiling row: two 1-thread mnq runs side by side, timed per batch, the machine's
own 2-core scaling for this work (shared caches, memory, neighbours on a VM), which no
threading of one inference can beat.

Engines: mnq on the uint8 model, TFLite + XNNPACK on the int8 model (XNNPACK's fastest path), ONNX
Runtime on the uint8 model (a cached tf2onnx conversion, when tf2onnx and onnxruntime are
installed). Rounds are interleaved (every engine once per round, every other round in reverse
order) so drifting machine load touches all engines alike and no engine always follows the
same one. Nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import mnq
from mnq import benchmark

SHARED = Path(os.environ.get("MNQ_SHARED", Path(__file__).resolve().parents[2] / "shared"))
MODEL = SHARED / "models" / "mobilenet_v1_1.0_160_quant_from224.tflite"
INT8_MODEL = SHARED / "models" / "int8" / "mobilenet_v1_1.0_160_int8.tflite"


def xnnpack_runner(path: Path, threads: int):
    """TFLite + XNNPACK on the int8 file, one image per invoke, int8 input (the file's own dtype)."""
    run, _ = benchmark.tflite_runner(path, threads, 1)
    x = np.random.default_rng(0).integers(-128, 128, (1, 160, 160, 3), dtype=np.int8)
    return run, x


def onnx_runner(path: Path, threads: int):
    """ONNX Runtime on mnq.benchmark's cached tf2onnx conversion of the uint8 .tflite."""
    run = benchmark.onnx_session(benchmark.onnx_conversion(path), threads)
    return run, np.random.default_rng(0).integers(0, 256, (1, 160, 160, 3), dtype=np.uint8)


def mnq_runner(path: Path, threads: int, batch: int, adapt_threads: bool = True):
    model = mnq.load(path, num_threads=threads, adapt_threads=adapt_threads)
    return model.run, np.random.default_rng(0).integers(0, 256, (batch,) + model.input_shape, dtype=np.uint8)


def side_by_side_runner(path: Path, batch: int, reps: int = 4):
    """The machine's own 2-core scaling, the most any threading of one inference could reach:
    two 1-thread models on their own Python threads (mnq releases the GIL), each running `reps`
    batches at once. Its row reports the wall time per batch (a call's time / (2 * reps))."""
    models = [mnq.load(path, num_threads=1) for _ in range(2)]
    x = np.random.default_rng(0).integers(0, 256, (batch,) + models[0].input_shape, dtype=np.uint8)

    def side_by_side(x):
        threads = [threading.Thread(target=lambda m=m: [m.run(x) for _ in range(reps)]) for m in models]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return side_by_side, x, 2 * reps


def interleaved_medians(runners: dict, seconds: float, rounds: int = 15) -> dict:
    """{name: median seconds per call}: each round times every engine for seconds/rounds
    (mnq.benchmark.measure), after one warm-up call each; rounds alternate direction."""
    for run, x, *_ in runners.values():
        run(x)
    samples = {name: [] for name in runners}
    for i in range(rounds):
        # every other round backwards: no engine always runs right after the same one (a
        # 2-thread engine after a 1-thread one finds the second CPU idle, its worker asleep)
        for name, (run, x, *_) in list(runners.items())[::-1 if i % 2 else 1]:
            samples[name] += benchmark.measure(run, x, seconds / rounds, min_runs=1)
    # a runner's optional third field: batches per call
    return {name: float(np.median(samples[name])) / (r[2] if len(r) > 2 else 1) for name, r in runners.items()}


def engines(args, batch: int) -> dict:
    out = {f"mnq {t} thread{'s' * (t > 1)}": mnq_runner(args.model, t, batch) for t in (1, 2)}
    out["mnq 2 threads, fixed (adapt_threads=False)"] = mnq_runner(args.model, 2, batch, adapt_threads=False)
    out["ceiling: 2 mnq 1-thread runs side by side"] = side_by_side_runner(args.model, batch, 4 if batch == 1 else 1)
    if batch == 1:
        try:
            for t in (1, 2):
                out[f"XNNPACK int8 {t} thread{'s' * (t > 1)}"] = xnnpack_runner(args.int8_model, t)
        except ImportError:
            print("XNNPACK: ai-edge-litert not installed, skipped", file=sys.stderr)
        try:
            for t in (1, 2):
                out[f"ONNX Runtime {t} thread{'s' * (t > 1)}"] = onnx_runner(args.model, t)
        except (ImportError, RuntimeError, OSError) as e:
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
    print(f"CPU: {benchmark.cpu_name()}, {os.cpu_count()} logical cores; mnq isa {mnq.info()['best_isa']}; "
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
