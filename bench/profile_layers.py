"""Print mnq's per-layer time (Model.profile) as a table.

    python bench/profile_layers.py [--isa amx] [--threads 1] [--batch 1] [--repeats 20] [MODEL]

MODEL defaults to env MNQ_BENCH_MODEL, else the benchmark's main model.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

import mnq

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "mobilenet_v1_1.0_160_quant_from224.tflite"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=os.environ.get("MNQ_BENCH_MODEL", DEFAULT_MODEL))
    parser.add_argument("--isa", help="instruction-set level (default: the best this CPU runs)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20, help="runs per layer median")
    args = parser.parse_args()

    model = mnq.load(args.model, num_threads=args.threads, isa=args.isa)
    # Same input as the latency benchmark (seed 0), so the two can be read side by side.
    x = np.random.default_rng(0).integers(0, 256, (args.batch,) + model.input_shape, dtype=np.uint8)
    model.run(x)  # warm-up
    rows = model.profile(x, repeats=args.repeats)
    total = sum(seconds for _, _, seconds in rows)

    print(f"{Path(args.model).name}: isa={model.isa}, threads={model.num_threads}, batch={args.batch}, "
          f"medians of {args.repeats} runs")
    # TFLite names fuse every folded op's name with ';'; the first one identifies the layer.
    names = [name.split(";")[0] for name, _, _ in rows]
    shapes = ["x".join(str(v) for v in layer.out_shape) for layer in model.graph.layers]
    widths = [max(len(v) for v in column) for column in (names, shapes, [kernel for _, kernel, _ in rows])]
    header = ("layer", "output", "kernel")
    print(f"{'#':>3}  " + "  ".join(f"{h:<{w}}" for h, w in zip(header, widths)) + f"  {'ms':>9}  {'%':>5}")
    for i, (name, shape, (_, kernel, seconds)) in enumerate(zip(names, shapes, rows)):
        cells = "  ".join(f"{v:<{w}}" for v, w in zip((name, shape, kernel), widths))
        print(f"{i:>3}  {cells}  {1e3 * seconds:>9.3f}  {100 * seconds / total:>5.1f}")
    print(f"{'':>3}  {'sum of layer medians':<{sum(widths) + 4}}  {1e3 * total:>9.3f}")

if __name__ == "__main__":
    main()
