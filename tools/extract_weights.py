#!/usr/bin/env python3
"""Convert a model (.tflite, or a TF1 Hub quantops module directory / .tar.gz) into a
single .mnq file. The logic lives in mnq.extract (also `mnq extract`):

    python tools/extract_weights.py MODEL -o model.mnq [--labels labels.txt]

Uses the installed mnq (`pip install .`); in a checkout that was only built in place
(`python setup.py build_ext --inplace`), the one in src/.
"""
import sys
from pathlib import Path

try:
    from mnq.extract import main
except ImportError:  # not installed: the checkout's src/, built in place
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from mnq.extract import main

if __name__ == "__main__":
    sys.exit(main(prog="extract_weights"))
