"""Image file -> uint8 RGB array at the model's input size (TF-Slim evaluation style).

The exact steps, in order (README "Preprocessing" repeats them for users):
1. Decode with Pillow; multi-frame files (GIF, animated WebP/PNG) use their first frame.
2. Apply the EXIF orientation tag (ImageOps.exif_transpose), as cameras and viewers do.
3. Convert to 8-bit RGB: 16-bit samples keep their top byte (v >> 8); grayscale is
   replicated to R=G=B; palette, LA and RGBA images drop their alpha channel (the
   colour under a transparent pixel is kept, as tf.image.decode_png(channels=3) and
   torchvision's .convert("RGB") do); CMYK and YCbCr use Pillow's conversion.
4. Crop the central 87.5% of each side, with tf.image.central_crop's rounding.
5. Resize the crop to the model's input size with Pillow's bilinear filter
   (which, unlike tf.image.resize_bilinear, averages over the whole footprint when
   shrinking, so small details do not alias).
The model's uint8 input takes these bytes as they are (its quantization maps them to
[-1, 1)).
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

CENTRAL_FRACTION = 0.875
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
MODES_WITH_ALPHA_OR_PALETTE = ("P", "PA", "LA", "La", "RGBa")
# Pillow only warns between MAX_IMAGE_PIXELS and twice that; a service should refuse instead
# (a few hundred bytes of PNG header can ask for gigabytes of pixels). Photos larger than this
# (89.5 MP: a 12000x8000 scan) need the limit raised: env MNQ_MAX_PIXELS, `--max-pixels`, or
# set_max_pixels().
DEFAULT_MAX_PIXELS = 89_478_485
MAX_PIXELS = DEFAULT_MAX_PIXELS


def set_max_pixels(limit: int) -> None:
    """Largest image (width x height) decoded; Pillow's own bomb check is moved along so
    that mnq's check, with its clear message, is the one that decides."""
    global MAX_PIXELS
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"the pixel limit must be a whole number of at least 1, got {limit!r}")
    MAX_PIXELS = limit
    # Pillow warns above its limit and refuses above twice it; mnq refuses above MAX_PIXELS itself
    Image.MAX_IMAGE_PIXELS = max(limit, DEFAULT_MAX_PIXELS)


def _max_pixels_from_environment() -> None:
    text = os.environ.get("MNQ_MAX_PIXELS")
    if text:
        try:
            set_max_pixels(int(text.replace("_", "").replace(",", "")))
        except ValueError:
            raise ValueError(f"MNQ_MAX_PIXELS={text!r}: expected a whole number of pixels") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow image -> 8-bit RGB (see step 3 above)."""
    if im.mode in SIXTEEN_BIT_MODES:
        # Pillow's own I;16 -> L conversion clips at 255 instead of scaling: do it here.
        arr = np.asarray(im).astype(np.uint32) >> 8
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    if im.mode in MODES_WITH_ALPHA_OR_PALETTE:
        # via RGBA so a palette's transparency entry is honoured without Pillow's warning
        im = im.convert("RGBA")
    return im if im.mode == "RGB" else im.convert("RGB")


def central_box(width: int, height: int, fraction: float = CENTRAL_FRACTION) -> tuple:
    """(left, top, right, bottom) of tf.image.central_crop's box."""
    top = int((height - height * fraction) / 2)
    left = int((width - width * fraction) / 2)
    return left, top, width - left, height - top


def preprocess(im: Image.Image, size: tuple) -> np.ndarray:
    """An opened Pillow image -> uint8 [H, W, 3] for a model input of size (H, W)."""
    height, width = size
    if im.width * im.height > MAX_PIXELS:
        raise ValueError(f"image of {im.width}x{im.height} = {im.width * im.height:,} pixels is larger than the pixel "
                         f"limit of {MAX_PIXELS:,} (a guard against decompression bombs); raise it with "
                         "--max-pixels N or env MNQ_MAX_PIXELS")
    im.seek(0)
    im = to_rgb(ImageOps.exif_transpose(im))
    resized = im.resize((width, height), Image.BILINEAR, box=central_box(*im.size))
    return np.asarray(resized, dtype=np.uint8)


def load_image(path, size: tuple) -> np.ndarray:
    """Decode one image file into uint8 [H, W, 3] for a model input of size (H, W)."""
    try:
        im = Image.open(path)  # reads the header only: the size is checked before decoding
    except Image.DecompressionBombError:  # more than twice Pillow's limit: refused while opening
        raise ValueError(f"image is larger than the pixel limit of {MAX_PIXELS:,} pixels (a guard against "
                         "decompression bombs); raise it with --max-pixels N or env MNQ_MAX_PIXELS") from None
    with im:
        return preprocess(im, size)


_max_pixels_from_environment()
