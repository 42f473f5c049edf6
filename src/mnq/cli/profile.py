"""`mnq profile`: time per layer on random input."""
from __future__ import annotations

import numpy as np

from ..roofline import peak
from .common import EXIT_OK, add_model_options, load_model, positive_int


def add_parser(sub):
    p = sub.add_parser("profile", help="time per layer on random input",
                       description="Run the model on a random uint8 batch and print the median time of each "
                       "layer over --repeats runs, with the C kernel that ran it, its MACs, GMAC/s and share of "
                       "this level's measured peak, and the whole run against its floor (MACs / peak).")
    add_model_options(p)
    p.add_argument("--batch", type=positive_int, default=1, metavar="N", help="images per run (default: 1)")
    p.add_argument("--repeats", type=positive_int, default=20, metavar="N",
                   help="runs to take the median of (default: 20)")
    p.set_defaults(func=profile)


def profile(args) -> int:
    model, _ = load_model(args)
    x = np.random.default_rng(0).integers(0, 256, (args.batch,) + model.input_shape, dtype=np.uint8)
    model.run(x)  # warm up: page in weights and workspaces
    rows = model.profile(x, repeats=args.repeats)
    total, macs, measured = sum(r.seconds for r in rows), sum(r.macs for r in rows), peak(model.isa)
    print(f"{model!r}, batch {args.batch}, median of {args.repeats} runs")
    if measured:
        print(f"peak: {measured[0]}, {measured[1] / 1e9:.1f} GMAC/s per core (measured now) x {model.num_threads}")
    print(f"{'ms':>8} {'%':>6} {'MMACs':>8} {'GMAC/s':>7} {'%peak':>6}  {'kernel':36s} layer")
    for r in rows:
        of_peak = f"{100 * r.peak_fraction:6.1f}" if r.peak_fraction is not None else f"{'':6s}"
        print(f"{r.seconds * 1e3:8.3f} {100 * r.seconds / total:6.1f} {r.macs / 1e6:8.2f} {r.gmacs:7.1f} {of_peak}  "
              f"{r.kernel:36s} {r.name}")
    print(f"{total * 1e3:8.3f} {100.0:6.1f} {macs / 1e6:8.2f} {macs / total / 1e9:7.1f}         total")
    if measured:
        floor = macs / (measured[1] * model.num_threads)
        print(f"floor (MACs / peak): {floor * 1e3:.3f} ms; this run is {total / floor:.2f}x the floor")
    return EXIT_OK
