"""`mnq profile`: time per layer on random input."""
from __future__ import annotations

import numpy as np

from .common import EXIT_OK, add_model_options, load_model, positive_int


def add_parser(sub):
    p = sub.add_parser("profile", help="time per layer on random input",
                       description="Run the model on a random uint8 batch and print the median time of each "
                       "layer over --repeats runs, with the C kernel that ran it.")
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
    total = sum(r[2] for r in rows)
    print(f"{model!r}, batch {args.batch}, median of {args.repeats} runs")
    print(f"{'ms':>8} {'%':>6}  {'kernel':36s} layer")
    for name, kernel, seconds in rows:
        print(f"{seconds * 1e3:8.3f} {100 * seconds / total:6.1f}  {kernel:36s} {name}")
    print(f"{total * 1e3:8.3f} {100.0:6.1f}  total")
    return EXIT_OK
