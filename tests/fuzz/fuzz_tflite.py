"""Fuzz target: .tflite bytes -> loader -> planner -> C net -> one run.
Anything but ModelFormatError / UnsupportedModelError (or a crash, hang, leak) is a finding."""
from _common import instrument_mnq, main, run_model

if __name__ == "__main__":
    instrument_mnq()

from mnq.errors import ModelFormatError, UnsupportedModelError
from mnq.tflite_loader import load_tflite


def TestOneInput(data: bytes):
    try:
        graph = load_tflite(bytes(data), source="fuzz")
        run_model(graph)
    except (ModelFormatError, UnsupportedModelError):
        pass


if __name__ == "__main__":
    main(TestOneInput)
