#!/usr/bin/env python3
"""Convert a model (.tflite, or a TF1 Hub quantops module directory / .tar.gz) into a
single .mnq file. The logic lives in mnq.extract (also `mnq extract`):

    python tools/extract_weights.py MODEL -o model.mnq [--labels labels.txt]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mnq.extract import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="extract_weights"))
