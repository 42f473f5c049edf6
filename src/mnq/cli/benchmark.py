"""`mnq benchmark`: load time, warm-up, latency percentiles and img/s, optionally beside the
peers installed (TFLite with XNNPACK, ONNX Runtime), interleaved in one run."""
from __future__ import annotations

import json
import os

from .. import _core
from .common import EXIT_OK, MODEL_HELP, architecture_isas, int_list, resolve_model, say


def add_parser(sub):
    p = sub.add_parser("benchmark", help="latency and throughput, optionally against TFLite and ONNX Runtime",
                       description="Time the model on random uint8 input: model load and plan time, warm-up, "
                       "then latency p50/p90/p99 and images/s over a time budget for each batch size and "
                       "thread count, peak memory and the kernels chosen. --compare times the peers installed "
                       "(ai-edge-litert with XNNPACK on the same .tflite; ONNX Runtime on a tf2onnx conversion, "
                       "cached) in turns with mnq within the same budget.")
    p.add_argument("--model", metavar="PATH", help=MODEL_HELP)
    p.add_argument("--batch-sizes", type=int_list, default=[1], metavar="N[,N...]",
                   help="batch sizes to time (default: 1)")
    p.add_argument("--threads", type=int_list, default=None, metavar="N[,N...]",
                   help="thread counts to time (default: all available cores)")
    p.add_argument("--isa", metavar="LEVEL", choices=architecture_isas(),
                   help=f"force an instruction set: {', '.join(architecture_isas())} (default: the best)")
    p.add_argument("--time", type=float, default=5.0, metavar="SECONDS",
                   help="timed seconds per (batch, threads) configuration, shared by the engines (default: 5)")
    p.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed runs per engine first (default: 2)")
    p.add_argument("--compare", action="store_true", help="also time TFLite (XNNPACK) and ONNX Runtime")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.set_defaults(func=benchmark)


def benchmark(args) -> int:
    from ..benchmark import cpu_name, run_benchmark
    from ..errors import UsageError
    from ..model import default_threads

    if not args.time > 0 or args.warmup < 0:
        raise UsageError("--time must be positive and --warmup at least 0")
    path, _ = resolve_model(args.model)
    threads = args.threads or [default_threads()]
    report = run_benchmark(path, batches=args.batch_sizes, threads=threads, budget_s=args.time,
                           warmup_runs=args.warmup, isa=args.isa, compare=args.compare,
                           on_progress=lambda m: say(f"mnq: timing {m}") if args.format == "text" else None)
    report["cpu"] = cpu_name()
    report["cpu_features"] = _core.cpu_features()
    print(json.dumps(report, indent=2) if args.format == "json" else text(report))
    return EXIT_OK


def text(r: dict) -> str:
    lines = [f"model      {r['model']}  input {'x'.join(map(str, r['input_shape']))}",
             f"cpu        {r['cpu']}, {os.cpu_count()} logical cores ({r['cpu_features']})",
             f"mnq        isa {r['isa']}, load + plan {1e3 * r['load_s']:.1f} ms, kernels {', '.join(r['kernels'])}",
             f"budget     {r['budget_s']:g} s per configuration, shared by the engines in turns; "
             f"{r['warmup_runs']} warm-up runs each",
             "",
             f"{'engine':12s} {'config':34s} {'batch':>5s} {'thr':>3s} {'load ms':>8s} {'warm ms':>8s} "
             f"{'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} {'img/s':>8s} {'runs':>5s}"]
    for x in r["results"]:
        lines.append(f"{x['engine']:12s} {x['config']:34s} {x['batch']:5d} {x['threads']:3d} {1e3 * x['load_s']:8.1f} "
                     f"{1e3 * x['warmup_s']:8.1f} {x['p50_ms']:8.2f} {x['p90_ms']:8.2f} {x['p99_ms']:8.2f} "
                     f"{x['images_per_second']:8.1f} {x['runs']:5d}")
    lines += ["", f"peak RSS   {r['peak_rss_mib']:.0f} MiB (whole process" +
              (", peers included)" if any(x["engine"] != "mnq" for x in r["results"]) else ")")]
    lines += [f"skipped    {note}" for note in r["notes"]]
    return "\n".join(lines)
