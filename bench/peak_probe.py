"""One core's int8 multiply-accumulate peak for every SIMD instruction mnq's GEMMs
could be built on, and the floor it implies for a model (its MACs / the peak).

    PYTHONPATH=src python bench/peak_probe.py [--model PATH] [--seconds S]

(default model: env MNQ_BENCH_MODEL, else $MNQ_SHARED/models/, else ../shared/models/ beside the repo)

Each probe is a loop of independent accumulator chains (src/kernels/x86/peak__*.c),
so it measures throughput, not latency; the rate is the best of repeated ~1 ms runs
over S seconds (the least disturbed on a shared machine). Probes whose instructions
this CPU lacks are skipped with a line saying so.
"""
import argparse
import os
import sys

from mnq import _core, load
from mnq.summary import layer_macs

SHARED = os.environ.get("MNQ_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
DEFAULT_MODEL = os.path.join(SHARED, "models", "mobilenet_v1_1.0_160_quant_from224.tflite")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=os.environ.get("MNQ_BENCH_MODEL", DEFAULT_MODEL))
    p.add_argument("--seconds", type=float, default=1.0, help="time per probe (default 1.0)")
    args = p.parse_args(argv)
    macs = sum(layer_macs(layer) for layer in load(args.model, num_threads=1).graph.layers) \
        if os.path.isfile(args.model) else None
    if not macs:
        print(f"model {args.model} not found (--model, env MNQ_BENCH_MODEL or MNQ_SHARED): no floor column")
    print(f"CPU features: {_core.cpu_features()}")
    if macs:
        print(f"model: {os.path.basename(args.model)}, {macs / 1e6:.1f} M MACs per image")
    print(f"{'probe':26s} {'GMAC/s':>8} {'floor ms':>9}  used by")
    users = {_core.peak_of_isa(isa): isa for isa in _core.ISA_NAMES if _core.peak_of_isa(isa)}
    for probe in _core.PEAK_NAMES:
        if probe not in _core.peak_probes():
            print(f"{probe:26s} skipped: this CPU/OS lacks it")
            continue
        rate = _core.peak_macs_per_second(probe, args.seconds)
        floor = f"{macs / rate * 1e3:9.3f}" if macs else f"{'':9s}"
        print(f"{probe:26s} {rate / 1e9:8.1f} {floor}  {'level ' + users[probe] if probe in users else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
