#!/usr/bin/env python3
"""Convert a model into a single .mnq file (docs/format.md) that mnq.load and the
C-only build read.

    python tools/extract_weights.py MODEL.tflite -o model.mnq [--labels labels.txt]

Reading TF Hub quantops modules (directory or .tar.gz) is not implemented yet;
today the input is a uint8 .tflite file.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mnq.errors import ModelFormatError, UnsupportedModelError  # noqa: E402
from mnq.mnq_format import encode  # noqa: E402
from mnq.model import read_graph  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="uint8 .tflite model")
    parser.add_argument("-o", "--output", required=True, help="output .mnq file")
    parser.add_argument("--labels", help="text file with one class name per line, stored in the .mnq")
    args = parser.parse_args(argv)
    try:
        graph = read_graph(args.model)
        labels = Path(args.labels).read_text(encoding="utf-8").splitlines() if args.labels else None
        out_h, out_w, out_c = graph.layers[-1].out_shape
        if labels is not None and len(labels) != out_h * out_w * out_c:
            raise ValueError(f"{args.labels}: {len(labels)} labels for a model with {out_h * out_w * out_c} outputs")
        data = encode(graph, labels)
        tmp = Path(args.output + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(args.output)  # never leave a half-written model behind
    except (ModelFormatError, UnsupportedModelError, ValueError, OSError) as exc:
        print(f"extract_weights: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {len(graph.layers)} layers, {len(data)} bytes"
          + (f", {len(labels)} labels" if labels else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
