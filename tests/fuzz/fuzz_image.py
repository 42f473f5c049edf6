"""Fuzz target: image file bytes -> Pillow decode -> mnq preprocessing (EXIF, mode
conversion, central crop, resize). Decoders may refuse a file with any exception (the
pipeline turns each into a per-file message); a success must give uint8 [H, W, 3].
Crashes, hangs and memory blow-ups are the findings."""
import io
import warnings

from _common import instrument_mnq, main

if __name__ == "__main__":
    instrument_mnq()

import numpy as np
from PIL import Image

from mnq.preprocess import preprocess

SIZE = (24, 32)
warnings.simplefilter("ignore")  # Pillow warns about odd files; the pipeline does not care


def TestOneInput(data: bytes):
    try:
        with Image.open(io.BytesIO(bytes(data))) as im:
            out = preprocess(im, SIZE)
    except Exception:  # noqa: BLE001 - see the module docstring
        return
    assert out.dtype == np.uint8 and out.shape == SIZE + (3,), (out.dtype, out.shape)


if __name__ == "__main__":
    main(TestOneInput)
