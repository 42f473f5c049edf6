"""`mnq eval`: accuracy on a labelled folder, speed, and agreement with TFLite's reference."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from ..errors import LabelsError, UsageError
from .common import (EXIT_FILE_ERRORS, EXIT_OK, add_model_options, add_stream_options, apply_max_pixels,
                     decode_workers, load_model, progress_bar, say)


def add_parser(sub):
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


def evaluate(args) -> int:
    from ..evaluate import Tally, read_labels, reference_or_reason
    from ..pipeline import batches, decoded, stack_pixels

    apply_max_pixels(args)
    if not os.path.isdir(args.folder):
        raise UsageError(f"{args.folder}: not a folder")
    model, model_path = load_model(args)
    try:
        rows = read_labels(args.labels, model.num_outputs)
    except LabelsError as exc:
        raise UsageError(f"--labels {exc}") from None
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
    if not tally.images:  # an accuracy of nothing is not 0%
        say(f"mnq: error: none of the {len(paths)} images listed in {args.labels} could be read from "
            f"{args.folder}, so nothing was evaluated (is DIR the folder the CSV's file names are relative to?)")
        return EXIT_FILE_ERRORS
    report = eval_report(args, model, tally, reference is not None, note, inference_seconds, wall_seconds)
    print(json.dumps(report, indent=2) if args.format == "json" else eval_text(report))
    return EXIT_FILE_ERRORS if tally.failed else EXIT_OK


def eval_report(args, model, tally, with_reference, note, inference_seconds, wall_seconds) -> dict:
    n = tally.images
    report = {
        "folder": args.folder, "labels": args.labels, "model": model.graph.source,
        "images": n, "failed": tally.failed,
        "top1": tally.top1 / n, "top5": tally.top5 / n,
        "images_per_second": n / inference_seconds if inference_seconds else 0.0,
        "images_per_second_end_to_end": n / wall_seconds if wall_seconds and not with_reference else None,
        "batch_size": args.batch_size, "threads": model.num_threads, "isa": model.isa,
        "reference": None,
    }
    if with_reference:
        report["reference"] = {"top1": tally.reference_top1 / n, "top5": tally.reference_top5 / n,
                               "identical_outputs": tally.identical_outputs / n}
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
