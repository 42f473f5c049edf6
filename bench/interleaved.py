"""Whole-network latency of several engines, interleaved: each engine lives in its own
worker process and the rounds alternate between them, so load on a shared machine
falls on all alike. Prints per-engine medians and bests (of per-call times) and their
ratios to the last engine.

    python bench/interleaved.py --rounds 30 --calls 5 \\
        mnq:src:avx2:MODEL.tflite  mnq:/other/checkout/src:avx2:MODEL.tflite  litert:INT8_MODEL.tflite

mnq:SRC:ISA:MODEL runs mnq imported from SRC (a built checkout's src/ folder) at that
level; litert:MODEL runs ai-edge-litert's default resolver (XNNPACK). 1 thread, batch 1.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
import numpy as np
kind, arg = sys.argv[1], sys.argv[2:]
if kind == "mnq":
    sys.path.insert(0, arg[0])
    import mnq
    model = mnq.load(arg[2], num_threads=1, isa=arg[1])
    x = np.random.default_rng(0).integers(0, 256, (1,) + model.input_shape, dtype=np.uint8)
    call = lambda: model.run(x)
else:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=arg[0], num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    info = np.iinfo(d["dtype"])
    it.set_tensor(d["index"], np.random.default_rng(0).integers(info.min, info.max + 1, d["shape"], dtype=d["dtype"]))
    call = it.invoke
for _ in range(3):
    call()
print("ready", flush=True)
for line in sys.stdin:
    times = []
    for _ in range(int(line)):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    print(json.dumps(times), flush=True)
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("engines", nargs="+")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--calls", type=int, default=5, help="timed calls per engine per round")
    args = p.parse_args(argv)
    workers = []
    for spec in args.engines:
        kind, *rest = spec.split(":")
        w = subprocess.Popen([sys.executable, "-c", WORKER, kind, *rest], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        assert w.stdout.readline().strip() == "ready", spec
        workers.append(w)
    times = [[] for _ in workers]
    for _ in range(args.rounds):
        for w, t in zip(workers, times):
            w.stdin.write(f"{args.calls}\n")
            w.stdin.flush()
            t.extend(json.loads(w.stdout.readline()))
    for w in workers:
        w.stdin.close()
        w.wait()
    medians = [statistics.median(t) for t in times]
    print(f"{args.rounds} rounds x {args.calls} calls each, interleaved; 1 thread, batch 1; {time.strftime('%H:%M:%S')}")
    for spec, m, t in zip(args.engines, medians, times):
        q = statistics.quantiles(t, n=4)
        print(f"{m * 1e3:8.3f} ms median (IQR {q[0] * 1e3:.3f}-{q[2] * 1e3:.3f}, {m / medians[-1]:.2f}x the last's; "
              f"best {min(t) * 1e3:.3f}, {min(t) / min(times[-1]):.2f}x the last's)  {spec}")


if __name__ == "__main__":
    main()
