"""`mnq classify`: the top-k classes of images, folders, or paths read from stdin."""
from __future__ import annotations

import os
import sys
import time

from ..errors import UsageError
from .common import (EXIT_FILE_ERRORS, EXIT_OK, add_model_options, add_stream_options, apply_max_pixels,
                     decode_workers, load_model, positive_int, progress_bar, resolve_model, say)
from .writers import WRITERS, ParquetWriter, open_output


def add_parser(sub):
    p = sub.add_parser("classify", help="top-k classes of images and folders",
                       description="Print the top-k classes of each image. Folders are walked recursively "
                       "(files ending in .jpg .jpeg .png .bmp .webp .gif); `-` reads one path per line from "
                       "standard input; results stream in input order. Unreadable files are reported and "
                       "skipped; the exit code is then 1. A summary (images, errors, img/s) ends on stderr.")
    p.add_argument("inputs", nargs="+", metavar="IMG_OR_DIR", help="image files and/or folders; - for stdin")
    add_model_options(p)
    p.add_argument("--labels", dest="labels_file", metavar="FILE",
                   help="class names, one per line, one line per class (default: the model's own, a labels "
                   "file beside it, else ImageNet's for 1001-class models)")
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="classes per image (default: 5)")
    add_stream_options(p)
    p.add_argument("--format", choices=sorted(WRITERS), default="text",
                   help="text (default), json (JSON Lines: one object per image) or csv (one row per class)")
    p.add_argument("--output", metavar="FILE", help="write results to FILE instead of stdout; a name ending in "
                   ".parquet writes a Parquet table (one row per image; needs pyarrow), whatever --format says")
    p.add_argument("--scheduler", metavar="ADDRESS|local",
                   help="classify on a Dask cluster (pip install '.[dask]' from a checkout): a scheduler address "
                   "such as tcp://host:8786, or `local` for worker processes on this machine; needs --output "
                   "X.parquet. --threads is then the cores each worker gives mnq (default: its share of its host)")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="with --scheduler local: worker processes, one Dask thread each (default: one per core)")
    p.set_defaults(func=classify)


def expand_inputs(inputs):
    """The inputs with `-` replaced by the paths read from stdin, one per line (blank lines skipped)."""
    if inputs.count("-") > 1:
        raise UsageError("- (read paths from standard input) may be given once")
    out = []
    for given in inputs:
        if given == "-":
            out += [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
        else:
            out.append(given)
    return out


def find_inputs(inputs):
    """(image paths, skipped paths) as pipeline.find_images finds them, each skip named on stderr."""
    from ..pipeline import find_images

    skipped = []

    def on_skip(path, why):
        skipped.append(path)
        say(f"mnq: skipped {path}: {why}")

    return find_images(expand_inputs(inputs), on_skip), skipped


def classify(args) -> int:
    from ..pipeline import batches, decoded, infer

    apply_max_pixels(args)
    if args.scheduler:
        return classify_on_cluster(args)
    parquet = (args.output or "").endswith(".parquet")
    if parquet and os.path.isdir(args.output):
        raise UsageError(f"--output {args.output} is a folder (a Parquet dataset?); remove it or choose another name")
    model, _ = load_model(args)
    paths, skipped = find_inputs(args.inputs)
    out = None if parquet else open_output(args.output)
    writer = ParquetWriter(args.output, model, args.top_k) if parquet else WRITERS[args.format](out, model, args.top_k)
    failed, start = 0, time.perf_counter()
    try:
        with progress_bar(len(paths), args.progress) as bar:
            items = decoded(paths, model.input_shape[:2], decode_workers(), lookahead=2 * args.batch_size)
            for batch in batches(items, args.batch_size):
                scores = infer(model, batch)
                with bar.external_write_mode(file=out or sys.stdout):  # lift the bar off the terminal
                    failed += write_batch(writer, batch, scores, args.top_k)
                    if out is not None:
                        out.flush()  # results appear as they come, even through a pipe
                bar.update(len(batch))
    finally:
        writer.close()
        if out not in (None, sys.stdout):
            out.close()
    seconds = time.perf_counter() - start
    if not paths:
        say("mnq: no image files found")
        return EXIT_FILE_ERRORS
    rate = f"{(len(paths) - failed) / seconds:.1f} img/s" if seconds > 0 else "- img/s"
    say(f"mnq: {len(paths) - failed} images classified, {failed} failed, {len(skipped)} skipped in {seconds:.1f} s "
        f"({rate})" + (f"; results in {args.output}" if args.output and args.output != "-" else ""))
    return EXIT_FILE_ERRORS if failed else EXIT_OK


def write_batch(writer, batch, scores, top_k) -> int:
    """Write each item's result or error, in order; return how many failed."""
    from ..pipeline import classified

    failed = 0
    for path, classes, values, error in classified(batch, scores, top_k):
        if error is None:
            writer.result(path, classes, values)
        else:
            failed += 1
            writer.error(path, error)
    if hasattr(writer, "flush"):
        writer.flush()
    return failed


def classify_on_cluster(args) -> int:
    """--scheduler: the same files and results, computed by mnq.distributed into Parquet."""
    if not (args.output or "").endswith(".parquet"):
        raise UsageError("--scheduler writes one Parquet table: add --output RESULTS.parquet")
    if args.labels_file:
        raise UsageError("--labels is not passed to a cluster's workers; put the labels in the model "
                         "(mnq extract --labels) or beside it")
    if args.workers and args.scheduler != "local":
        raise UsageError("--workers is for --scheduler local; a cluster's workers are sized where they are started")
    if os.path.exists(args.output) and not os.path.isdir(args.output):  # a dataset is a folder, replaced whole
        raise UsageError(f"--output {args.output} exists and is not a folder; remove it or choose another name")
    missing = [name for name in ("dask", "distributed", "pyarrow", "pandas") if not _importable(name)]
    if missing:  # only a missing package is reported as such; any other import error is a bug to show
        raise UsageError(f"--scheduler needs {', '.join(missing)}: pip install 'dask[distributed,dataframe]' "
                         "pyarrow (or pip install '.[dask]' from a checkout of mnq)")
    from .. import distributed

    model_path, _ = resolve_model(args.model)
    paths, skipped = find_inputs(args.inputs)
    if not paths:
        say("mnq: no image files found")
        return EXIT_FILE_ERRORS
    start = time.perf_counter()
    with distributed.connect(args.scheduler, args.workers) as client:
        table = distributed.classify_paths(paths, model_path, client, batch_size=args.batch_size,
                                           threads_per_worker=args.threads, top_k=args.top_k, isa=args.isa)
        failed = distributed.write_parquet(table, args.output)
    seconds = time.perf_counter() - start
    say(f"mnq: {len(paths) - failed} images classified, {failed} failed, {len(skipped)} skipped in {seconds:.1f} s "
        f"({(len(paths) - failed) / seconds:.1f} img/s); results in {args.output}")
    return EXIT_FILE_ERRORS if failed else EXIT_OK


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
