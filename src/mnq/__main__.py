"""Command line: `python -m mnq classify|info|profile`."""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def _model_path(arg):
    path = arg or os.environ.get("MNQ_MODEL")
    if not path:
        sys.exit("mnq: no model given. Pass --model PATH/TO/mobilenet_v1_1.0_160_quant.tflite "
                 "or set MNQ_MODEL.")
    return path


def classify(args) -> int:
    import mnq
    from mnq.preprocess import load_image

    model = mnq.load(_model_path(args.model), num_threads=args.threads, isa=args.isa)
    h, w, _ = model.input_shape
    failures = 0
    for path in args.images:
        try:
            x = load_image(path, (h, w))
        except (OSError, ValueError) as exc:  # unreadable or not an image: report, go on
            print(f"{path}: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        probs = model.run(x)[0].astype(np.float32) / 256.0
        top = np.argsort(-probs, kind="stable")[: args.top_k]
        print(path)
        for c in top:
            label = model.labels[c] if model.labels else f"class {c}"
            print(f"  {probs[c]:.3f}  {c:4d}  {label}")
    return 1 if failures else 0


def info(args) -> int:
    import mnq

    model = mnq.load(args.model, isa=args.isa) if args.model else None
    details = mnq.info(model)
    kernels = details.pop("kernels", [])
    for key, value in details.items():
        print(f"{key}: {value}")
    if model is not None:
        print(f"model: {model!r}")
        for name, kernel in kernels:
            print(f"  {kernel:36s} {name.split(';')[0]}")
    return 0


def profile(args) -> int:
    import mnq

    model = mnq.load(_model_path(args.model), num_threads=args.threads, isa=args.isa)
    x = np.random.default_rng(0).integers(0, 256, (args.batch,) + model.input_shape, dtype=np.uint8)
    model.run(x)  # warm up: page in weights and workspaces
    rows = model.profile(x, repeats=args.repeats)
    total = sum(r[2] for r in rows)
    print(f"{model!r}, batch {args.batch}, median of {args.repeats} runs")
    print(f"{'ms':>8} {'%':>6}  {'kernel':36s} layer")
    for name, kernel, seconds in rows:
        print(f"{seconds * 1e3:8.3f} {100 * seconds / total:6.1f}  {kernel:36s} {name.split(';')[0]}")
    print(f"{total * 1e3:8.3f} {100.0:6.1f}  total")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mnq", description="Fast, TFLite-exact uint8 MobileNet V1 on CPUs.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("classify", help="print the top-k classes of each image")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, ...)")
    p.add_argument("--model", help="model file (.tflite); default: env MNQ_MODEL")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="threads per inference (default: all cores)")
    p.add_argument("--isa", default=None, help="force scalar, avx2, avx512vnni or amx (default: best)")
    p.set_defaults(func=classify)
    p = sub.add_parser("info", help="version, CPU features, and the kernels chosen for a model")
    p.add_argument("--model", help="model file to plan")
    p.add_argument("--isa", default=None)
    p.set_defaults(func=info)
    p = sub.add_parser("profile", help="time per layer on random input")
    p.add_argument("--model", help="model file (.tflite); default: env MNQ_MODEL")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--isa", default=None)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20)
    p.set_defaults(func=profile)
    args = parser.parse_args(argv)
    if getattr(args, "top_k", 1) < 1:
        parser.error("--top-k must be at least 1")
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except (ValueError, OSError) as exc:
        print(f"mnq: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
