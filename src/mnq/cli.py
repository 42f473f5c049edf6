"""The `mnq` command line: classify, eval, info, fetch, profile.

Exit codes: 0 all went well; 1 some input files (or the download) failed, everything
else was still processed; 2 usage or model errors (nothing could run).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from importlib import resources
from typing import List, Optional

import numpy as np

from . import extract

EXIT_OK, EXIT_FILE_ERRORS, EXIT_USAGE = 0, 1, 2
IMAGENET_CLASSES = 1001


class UsageError(Exception):
    """A problem with the command itself (bad option, no model): exit code 2."""


# ---------------------------------------------------------------- model resolution

def find_model_path(given: Optional[str]) -> Optional[str]:
    """--model, else env MNQ_MODEL, else the model `mnq fetch` cached, else None."""
    from .fetch import cached_model

    if given:
        return given
    if os.environ.get("MNQ_MODEL"):
        return os.environ["MNQ_MODEL"]
    cached = cached_model()
    return str(cached) if cached.is_file() else None


def how_to_get_a_model() -> str:
    from .fetch import cached_model

    return ("Either run\n    mnq fetch\nonce (downloads TensorFlow's mobilenet_v1_1.0_160_quant.tflite into "
            f"{cached_model().parent}), or pass --model PATH/TO/MODEL.tflite (or set MNQ_MODEL=PATH).")


def resolve_model_path(given: Optional[str]) -> str:
    path = find_model_path(given)
    if path is None:
        raise UsageError("no model given, and none downloaded yet. " + how_to_get_a_model())
    return path


def load_model(args, path: Optional[str] = None):
    import mnq

    path = path or resolve_model_path(args.model)
    return with_labels(mnq.load(path, num_threads=getattr(args, "threads", None), isa=args.isa)), path


def with_labels(model):
    """The model, given ImageNet's class names if it is a 1001-class model without labels
    (TensorFlow's files carry none; mnq ships ImageNet's)."""
    if model.labels is None and model.num_outputs == IMAGENET_CLASSES:
        model.labels = imagenet_labels()
    return model


def imagenet_labels() -> List[str]:
    return resources.files("mnq").joinpath("data/imagenet_labels.txt").read_text(encoding="utf-8").splitlines()


def label_of(model, c: int) -> str:
    return model.labels[c] if model.labels else f"class {c}"


# ---------------------------------------------------------------- output

def progress_bar(total: int, enabled: Optional[bool], unit: str = "img"):
    from tqdm import tqdm

    # enabled None: show it only when stderr is a terminal (tqdm's disable=None)
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=None if enabled is None else not enabled,
                dynamic_ncols=True)


def say(message: str):
    """A line on stderr that does not tear a progress bar apart."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


class TextWriter:
    """Human-readable: the path, then one line per class; errors go to stderr."""

    def __init__(self, out, model):
        self.out, self.model = out, model

    def result(self, path, classes, values):
        lines = [path] + [f"  {v / 256:.3f}  {c:4d}  {label_of(self.model, c)}" for c, v in zip(classes, values)]
        self.out.write("\n".join(lines) + "\n")

    def error(self, path, message):
        say(f"mnq: {path}: error: {message}")

    def close(self):
        pass


class JsonLinesWriter:
    """One JSON object per image and line, so the output streams and `jq` reads it."""

    def __init__(self, out, model):
        self.out, self.model = out, model

    def result(self, path, classes, values):
        top = [{"class": int(c), "label": label_of(self.model, c), "probability": int(v) / 256}
               for c, v in zip(classes, values)]
        self.out.write(json.dumps({"file": path, "top_k": top}, ensure_ascii=False) + "\n")

    def error(self, path, message):
        self.out.write(json.dumps({"file": path, "error": message}, ensure_ascii=False) + "\n")

    def close(self):
        pass


class CsvWriter:
    """Long format, one row per (image, rank); a failed image is one row with `error` set."""

    HEADER = ("file", "rank", "class", "label", "probability", "error")

    def __init__(self, out, model):
        self.model = model
        self.rows = csv.writer(out, lineterminator="\n")
        self.rows.writerow(self.HEADER)

    def result(self, path, classes, values):
        for rank, (c, v) in enumerate(zip(classes, values), start=1):
            self.rows.writerow((path, rank, int(c), label_of(self.model, c), int(v) / 256, ""))

    def error(self, path, message):
        self.rows.writerow((path, "", "", "", "", message))

    def close(self):
        pass


WRITERS = {"text": TextWriter, "json": JsonLinesWriter, "csv": CsvWriter}


def open_output(path: Optional[str]):
    if not path or path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"cannot write --output {path}: {exc.strerror or exc}") from None


def decode_workers() -> int:
    from .model import default_threads

    return min(8, default_threads() + 1)  # enough to keep up with inference, not more


# ---------------------------------------------------------------- classify

def find_inputs(inputs):
    """(image paths, skipped paths) as pipeline.find_images finds them, each skip named on stderr."""
    from .pipeline import find_images

    skipped = []

    def on_skip(path, why):
        skipped.append(path)
        say(f"mnq: skipped {path}: {why}")

    return find_images(inputs, on_skip), skipped


def classify(args) -> int:
    from .pipeline import batches, decoded, infer

    if args.scheduler or (args.output or "").endswith(".parquet"):
        return classify_on_cluster(args)
    model, _ = load_model(args)
    paths, skipped = find_inputs(args.inputs)
    out = open_output(args.output)
    writer = WRITERS[args.format](out, model)
    failed = 0
    try:
        with progress_bar(len(paths), args.progress) as bar:
            items = decoded(paths, model.input_shape[:2], decode_workers(), lookahead=2 * args.batch_size)
            for batch in batches(items, args.batch_size):
                scores = infer(model, batch)
                with bar.external_write_mode(file=out):  # lift the bar off the terminal while writing
                    failed += write_batch(writer, batch, scores, args.top_k)
                    out.flush()  # results appear as they come, even through a pipe
                bar.update(len(batch))
    finally:
        writer.close()
        if out is not sys.stdout:
            out.close()
    if failed or skipped:
        say(f"mnq: {len(paths) - failed} images classified, {failed} failed, {len(skipped)} skipped")
    if not paths:
        say("mnq: no image files found")
        return EXIT_FILE_ERRORS
    return EXIT_FILE_ERRORS if failed else EXIT_OK


def classify_on_cluster(args) -> int:
    """--scheduler: the same files and results, computed by mnq.distributed into Parquet."""
    if not args.scheduler:
        raise UsageError("Parquet output is written by the Dask path: add --scheduler ADDRESS (or local)")
    if not (args.output or "").endswith(".parquet"):
        raise UsageError("--scheduler writes one Parquet table: add --output RESULTS.parquet")
    if args.workers and args.scheduler != "local":
        raise UsageError("--workers is for --scheduler local; a cluster's workers are sized where they are started")
    if os.path.exists(args.output) and not os.path.isdir(args.output):  # a dataset is a folder, replaced whole
        raise UsageError(f"--output {args.output} exists and is not a folder; remove it or choose another name")
    try:
        from . import distributed
    except ImportError as exc:
        raise UsageError(f"--scheduler needs Dask and pyarrow ({exc}): pip install 'mnq[dask]'") from None
    model_path = resolve_model_path(args.model)
    paths, skipped = find_inputs(args.inputs)
    if not paths:
        say("mnq: no image files found")
        return EXIT_FILE_ERRORS
    with distributed.connect(args.scheduler, args.workers) as client:
        table = distributed.classify_paths(paths, model_path, client, batch_size=args.batch_size,
                                           threads_per_worker=args.threads, top_k=args.top_k, isa=args.isa)
        failed = distributed.write_parquet(table, args.output)
    say(f"mnq: {len(paths) - failed} images classified, {failed} failed, {len(skipped)} skipped; "
        f"results in {args.output}")
    return EXIT_FILE_ERRORS if failed else EXIT_OK


def write_batch(writer, batch, scores, top_k) -> int:
    """Write each item's result or error, in order; return how many failed."""
    from .pipeline import classified

    failed = 0
    for path, classes, values, error in classified(batch, scores, top_k):
        if error is None:
            writer.result(path, classes, values)
        else:
            failed += 1
            writer.error(path, error)
    return failed


# ---------------------------------------------------------------- eval

def evaluate(args) -> int:
    from .evaluate import Tally, read_labels, reference_or_reason
    from .pipeline import batches, decoded, stack_pixels

    if not os.path.isdir(args.folder):
        raise UsageError(f"{args.folder}: not a folder")
    model, model_path = load_model(args)
    rows = read_labels(args.labels, model.num_outputs)
    if args.no_reference:
        reference, note = None, "disabled with --no-reference"
    else:
        reference, note = reference_or_reason(model_path)
    paths = [os.path.join(args.folder, name) for name, _ in rows]
    truth = iter([label for _, label in rows])  # items come back in this order
    tally, inference_seconds, start = Tally(), 0.0, time.perf_counter()
    with progress_bar(len(paths), args.progress) as bar:
        items = decoded(paths, model.input_shape[:2], decode_workers(), lookahead=2 * args.batch_size)
        for batch in batches(items, args.batch_size):
            labels = [next(truth) for _ in batch]
            for item in batch:
                if item.error is not None:
                    tally.failed.append(item.path)
                    say(f"mnq: {item.path}: error: {item.error}")
            pixels = stack_pixels(batch)
            if pixels is not None:
                t0 = time.perf_counter()
                scores = model.run(pixels)
                inference_seconds += time.perf_counter() - t0
                good_labels = np.array([label for item, label in zip(batch, labels) if item.error is None])
                tally.add(good_labels, scores, reference.run(pixels) if reference else None)
            bar.update(len(batch))
    wall_seconds = time.perf_counter() - start
    report = eval_report(args, model, tally, reference is not None, note, inference_seconds, wall_seconds)
    print(json.dumps(report, indent=2) if args.format == "json" else eval_text(report))
    return EXIT_FILE_ERRORS if tally.failed or not tally.images else EXIT_OK


def eval_report(args, model, tally, with_reference, note, inference_seconds, wall_seconds) -> dict:
    n = tally.images
    rate = (lambda count: count / n if n else 0.0)
    report = {
        "folder": args.folder, "labels": args.labels, "model": model.graph.source,
        "images": n, "failed": tally.failed,
        "top1": rate(tally.top1), "top5": rate(tally.top5),
        "images_per_second": n / inference_seconds if inference_seconds else 0.0,
        "images_per_second_end_to_end": n / wall_seconds if wall_seconds and not with_reference else None,
        "batch_size": args.batch_size, "threads": model.num_threads, "isa": model.isa,
        "reference": None,
    }
    if with_reference:
        report["reference"] = {"top1": rate(tally.reference_top1), "top5": rate(tally.reference_top5),
                               "identical_outputs": rate(tally.identical_outputs)}
    else:
        report["reference_note"] = note
    return report


def eval_text(r: dict) -> str:
    lines = [f"images     {r['images']} evaluated from {r['folder']}"
             + (f", {len(r['failed'])} failed (see above)" if r["failed"] else ""),
             f"mnq        top-1 {100 * r['top1']:6.2f}%   top-5 {100 * r['top5']:6.2f}%"]
    if r["reference"]:
        ref = r["reference"]
        lines += [f"TFLite ref top-1 {100 * ref['top1']:6.2f}%   top-5 {100 * ref['top5']:6.2f}%   "
                  "(reference kernels, same preprocessed inputs)",
                  f"identical  {100 * ref['identical_outputs']:6.2f}% of images have byte-identical outputs"]
    else:
        lines.append(f"TFLite ref {r['reference_note']}")
    speed = (f"speed      {r['images_per_second']:.1f} images/s inference "
             f"(batch {r['batch_size']}, {r['threads']} threads, isa {r['isa']})")
    if r["images_per_second_end_to_end"]:
        speed += f", {r['images_per_second_end_to_end']:.1f} images/s with decoding"
    return "\n".join(lines + [speed])


# ---------------------------------------------------------------- info, fetch, profile

def info(args) -> int:
    import mnq
    from .summary import layer_macs, layer_params, shape_text

    path = find_model_path(args.model)
    model = load_model(args, path)[0] if path else None
    details = mnq.info(model)
    kernels = details.pop("kernels", [])
    for key, value in details.items():
        print(f"{key}: {value}")
    if model is None:
        print("model: none found. " + how_to_get_a_model())
        return EXIT_OK
    layers = model.graph.layers
    macs, params = sum(map(layer_macs, layers)), sum(map(layer_params, layers))
    print(f"model: {path}")
    print(f"  input {shape_text(model.input_shape)} {model.input_dtype}, {model.num_outputs} classes, {len(layers)} "
          f"layers, {macs / 1e6:.1f} M MACs, {params / 1e6:.2f} M parameters, threads {model.num_threads}")
    print(f"  quantization: {model.graph.scheme}")
    print(f"  {'op':9s} {'kernel':7s} {'output':>11s} {'MACs':>11s} {'params':>9s}  {'C kernel':36s} layer")
    for layer, (name, kernel) in zip(layers, kernels):
        k = f"{layer.kernel[0]}x{layer.kernel[1]}/{layer.stride[0]}" if layer.op in ("conv", "depthwise", "avgpool") \
            else ""
        print(f"  {layer.op:9s} {k:7s} {shape_text(layer.out_shape):>11s} {layer_macs(layer):>11,d} "
              f"{layer_params(layer):>9,d}  {kernel:36s} {name.split(';')[0]}")
    return EXIT_OK


def fetch_model(args) -> int:
    from .fetch import FetchError, cache_dir, cached_model, default_url, fetch

    directory = cache_dir(args.cache_dir)
    url = args.url or default_url()
    try:
        path = fetch(url, args.sha256, directory, progress=args.progress is not False)
    except FetchError as exc:
        say(f"mnq: fetch failed: {exc}")
        return EXIT_FILE_ERRORS
    except OSError as exc:  # the cache folder itself cannot be made or written
        say(f"mnq: fetch failed: cannot write to {directory}: {exc.strerror or exc}")
        return EXIT_FILE_ERRORS
    print(path)
    if path == cached_model():  # where classify, eval and info look when given no model
        say("mnq: model saved; `mnq classify IMAGE` now uses it")
    else:
        say(f"mnq: model saved; use it with --model {path}")
    return EXIT_OK


def profile(args) -> int:
    model, _ = load_model(args)
    x = np.random.default_rng(0).integers(0, 256, (args.batch,) + model.input_shape, dtype=np.uint8)
    model.run(x)  # warm up: page in weights and workspaces
    rows = model.profile(x, repeats=args.repeats)
    from .roofline import peak
    total, macs, measured = sum(r.seconds for r in rows), sum(r.macs for r in rows), peak(model.isa)
    print(f"{model!r}, batch {args.batch}, median of {args.repeats} runs")
    if measured:
        print(f"peak: {measured[0]}, {measured[1] / 1e9:.1f} GMAC/s per core (measured now) x {model.num_threads}")
    print(f"{'ms':>8} {'%':>6} {'MMACs':>8} {'GMAC/s':>7} {'%peak':>6}  {'kernel':36s} layer")
    for r in rows:
        of_peak = f"{100 * r.peak_fraction:6.1f}" if r.peak_fraction is not None else f"{'':6s}"
        print(f"{r.seconds * 1e3:8.3f} {100 * r.seconds / total:6.1f} {r.macs / 1e6:8.2f} {r.gmacs:7.1f} {of_peak}  "
              f"{r.kernel:36s} {r.name.split(';')[0]}")
    print(f"{total * 1e3:8.3f} {100.0:6.1f} {macs / 1e6:8.2f} {macs / total / 1e9:7.1f}         total")
    if measured:
        floor = macs / (measured[1] * model.num_threads)
        print(f"floor (MACs / peak): {floor * 1e3:.3f} ms; this run is {total / floor:.2f}x the floor")
    return EXIT_OK


# ---------------------------------------------------------------- parser

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def sha256_hex(text: str) -> str:
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise argparse.ArgumentTypeError("expected 64 hexadecimal digits")
    return text.lower()


def add_model_options(p, threads=True):
    p.add_argument("--model", metavar="PATH",
                   help="model file (.tflite); default: env MNQ_MODEL, else the one `mnq fetch` downloaded")
    if threads:
        p.add_argument("--threads", type=positive_int, metavar="N",
                       help="threads per inference (default: all available cores)")
    p.add_argument("--isa", metavar="LEVEL",
                   help="force an instruction set: scalar, avx2, avx512vnni or amx (default: env MNQ_ISA, else best)")


def add_stream_options(p):
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="N",
                   help="images per inference call (default: 16)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: only when stderr is a terminal)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .fetch import DEFAULT_SHA256, DEFAULT_URL

    parser = argparse.ArgumentParser(prog="mnq", description="Fast, TFLite-exact uint8 MobileNet V1 "
                                     "image classification on CPUs.",
                                     epilog="Run `mnq COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"mnq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("classify", help="top-k classes of images and folders",
                       description="Print the top-k classes of each image. Folders are walked recursively "
                       "(files ending in .jpg .jpeg .png .bmp .webp .gif); results stream in input order. "
                       "Unreadable files are reported and skipped; the exit code is then 1.")
    p.add_argument("inputs", nargs="+", metavar="IMG_OR_DIR", help="image files and/or folders")
    add_model_options(p)
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="classes per image (default: 5)")
    add_stream_options(p)
    p.add_argument("--format", choices=sorted(WRITERS), default="text",
                   help="text (default), json (JSON Lines: one object per image) or csv (one row per class)")
    p.add_argument("--output", metavar="FILE", help="write results to FILE instead of stdout; a name ending in "
                   ".parquet (with --scheduler) writes a Parquet dataset folder, whatever --format says")
    p.add_argument("--scheduler", metavar="ADDRESS|local",
                   help="classify on a Dask cluster (pip install 'mnq[dask]'): a scheduler address such as "
                   "tcp://host:8786, or `local` for worker processes on this machine; needs --output X.parquet. "
                   "--threads is then the cores each worker gives mnq (default: its share of its host)")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="with --scheduler local: worker processes, one Dask thread each (default: one per core)")
    p.set_defaults(func=classify)

    p = sub.add_parser("eval", help="top-1/top-5 accuracy on a labelled folder",
                       description="Accuracy of the model on the images listed in a labels CSV (columns "
                       "`file` relative to DIR and `label` in the model's class numbering), the speed, and, "
                       "when ai-edge-litert is installed, agreement with TFLite's reference kernels on the "
                       "same preprocessed inputs.")
    p.add_argument("folder", metavar="DIR", help="folder holding the images")
    p.add_argument("--labels", required=True, metavar="CSV", help="CSV with a header: file,label[,...]")
    add_model_options(p)
    add_stream_options(p)
    p.add_argument("--no-reference", action="store_true", help="skip the comparison with TFLite's reference")
    p.add_argument("--format", choices=("text", "json"), default="text", help="summary format (default: text)")
    p.set_defaults(func=evaluate)

    p = sub.add_parser("info", help="version, CPU features, kernels and model summary",
                       description="Version, CPU features, usable instruction sets and, for the model "
                       "(resolved like classify's), layers, MACs, parameters and the C kernel of each layer.")
    add_model_options(p, threads=False)
    p.set_defaults(func=info)

    p = sub.add_parser("fetch", help="download TensorFlow's MobileNet V1 1.0/160 uint8 model",
                       description="Download the model archive, check its sha256, and keep its .tflite in "
                       "the cache directory, where classify/eval/info find it.")
    p.add_argument("--url", help=f"archive to download (default: env MNQ_MODEL_URL, else {DEFAULT_URL})")
    p.add_argument("--sha256", type=sha256_hex, default=DEFAULT_SHA256,
                   help="expected sha256 of the archive (default: the published one)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where to keep the model (default: env MNQ_CACHE_DIR, else the user cache directory)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="download progress bar on stderr (default: on)")
    p.set_defaults(func=fetch_model)

    p = sub.add_parser("extract", help="convert a .tflite or TF Hub module into an .mnq file",
                       description=extract.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    extract.add_arguments(p)
    p.set_defaults(func=extract.run)

    p = sub.add_parser("profile", help="time per layer on random input")
    add_model_options(p)
    p.add_argument("--batch", type=positive_int, default=1)
    p.add_argument("--repeats", type=positive_int, default=20)
    p.set_defaults(func=profile)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"mnq: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError) as exc:  # model files, labels CSV, --isa: the message says what is wrong
        if isinstance(exc, BrokenPipeError):
            return quiet_broken_pipe()
        print(f"mnq: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mnq: interrupted", file=sys.stderr)
        return 130


def quiet_broken_pipe() -> int:
    """Output piped into `head` and the like: stop quietly, as Unix tools do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python would otherwise complain while flushing at exit
    return EXIT_OK
