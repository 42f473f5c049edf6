"""`mnq extract`: convert a model into a single .mnq file (docs/format.md).

    mnq extract MODEL -o model.mnq [--labels labels.txt]

MODEL is a uint8 .tflite file, or a TF1 Hub quantops module (MobileNet V1 family) as a
directory or the .tar.gz tfhub.dev serves; reading a module needs TensorFlow
(`pip install tensorflow-cpu`, or `pip install '.[tf]'` in a checkout of mnq).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import ModelFormatError, UnsupportedModelError
from .graph import Graph
from .labels import read_labels_file
from .mnq_format import encode
from .model import read_graph
from .tfhub_loader import is_module_archive, load_module  # imports TensorFlow only when reading a module


def read_any(path) -> Graph:
    """A .tflite or .mnq file, a TF Hub module directory, or a module archive -> Graph."""
    path = Path(path)
    if path.is_dir() or (path.is_file() and is_module_archive(path)):
        return load_module(path)
    return read_graph(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="uint8 .tflite file, TF Hub module directory or .tar.gz")
    parser.add_argument("-o", "--output", required=True, help="output .mnq file")
    parser.add_argument("--labels", help="text file with one class name per line, stored in the .mnq")


def main(argv=None, prog="mnq extract") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv), prog)


def run(args: argparse.Namespace, prog: str = "mnq extract") -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off stderr
    try:
        graph = read_any(args.model)
        labels = read_labels_file(args.labels) if args.labels else None
        out_h, out_w, out_c = graph.layers[-1].out_shape
        if labels is not None and len(labels) != out_h * out_w * out_c:
            raise ValueError(f"{args.labels}: {len(labels)} labels for a model with {out_h * out_w * out_c} outputs")
        data = encode(graph, labels)
        tmp = Path(args.output + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(args.output)  # never leave a half-written model behind
    except (ModelFormatError, UnsupportedModelError, ValueError, OSError, ImportError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {len(graph.layers)} layers, {len(data)} bytes"
          + (f", {len(labels)} labels" if labels else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
