"""GMAC/s of the pointwise (GEMM) kernel a level picks, on the layer shapes of
MobileNet V1 1.0 160, one thread: each shape is a one-layer net, timed by the C
executor's per-layer clock; best and median of many runs, and % of the level's peak
(mnq.roofline.peak, the peak probe).

    PYTHONPATH=src python bench/gemm_microbench.py [--isa avx2] [--runs 200]
"""
import argparse
import statistics

import numpy as np

from mnq import _core, roofline
from mnq.plan import OP_CODES, quantize_multiplier

# (pixels, K, N, how many layers of the main model have the shape)
SHAPES = [(6400, 32, 64, 1), (1600, 64, 128, 1), (1600, 128, 128, 1), (400, 128, 256, 1), (400, 256, 256, 1),
          (100, 256, 512, 1), (100, 512, 512, 5), (25, 512, 1024, 1), (25, 1024, 1024, 1), (1, 1024, 1001, 1)]


def pointwise_net(m, k, n, isa, rng):
    mult, shift = quantize_multiplier(0.0005)
    desc = dict(op=OP_CODES["pointwise"], in_h=1, in_w=m, in_c=k, out_h=1, out_w=m, out_c=n, k_h=1, k_w=1,
                stride_h=1, stride_w=1, pad_top=0, pad_left=0, in_zp=3, w_zp=120, out_zp=0, multiplier=mult,
                shift=shift, channel_multipliers=None, channel_shifts=None, act_min=0, act_max=255, weights=rng.integers(0, 256, (n, 1, 1, k), dtype=np.uint8),
                bias=rng.integers(-20000, 20000, n, dtype=np.int32), softmax_multiplier=0, softmax_left_shift=0,
                softmax_diff_min=0, pool_center=0)
    return _core.Net([desc], isa)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--isa", default=_core.best_isa())
    p.add_argument("--runs", type=int, default=200)
    args = p.parse_args(argv)
    measured = roofline.peak(args.isa, seconds=1.0)
    peak = measured[1] if measured else None
    if measured:
        print(f"peak: {measured[0]}, {peak / 1e9:.1f} GMAC/s (one core)")
    rng = np.random.default_rng(0)
    print(f"{'M':>5} {'K':>5} {'N':>5} {'x':>2}  {'best':>6} {'median':>6} GMAC/s  {'%peak':>11}  kernel")
    total_best = total_median = 0.0
    for m, k, n, count in SHAPES:
        net = pointwise_net(m, k, n, args.isa, rng)
        x = rng.integers(0, 256, m * k, dtype=np.uint8)
        out = np.empty(m * n, np.uint8)
        scratch = np.empty(max(net.scratch_bytes(1), 1), np.uint8)
        seconds = [net.run([x, out], 1, 1, scratch, True)[0] for _ in range(args.runs)]
        best, median = min(seconds), statistics.median(seconds)
        total_best, total_median = total_best + best * count, total_median + median * count
        macs = m * k * n
        share = f"{100 * macs / best / peak:4.0f}/{100 * macs / median / peak:4.0f}" if peak else ""
        print(f"{m:5d} {k:5d} {n:5d} {count:2d}  {macs / best / 1e9:6.1f} {macs / median / 1e9:6.1f}         "
              f"{share:>11}  {net.kernel_names()[0]}")
    print(f"all pointwise layers of the model: {total_best * 1e3:.3f} ms from best runs, "
          f"{total_median * 1e3:.3f} ms from medians")


if __name__ == "__main__":
    main()
