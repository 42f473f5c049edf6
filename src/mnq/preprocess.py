"""Image file -> uint8 RGB array at the model's input size (TF-Slim evaluation style).

Steps: decode with Pillow (first frame), apply the EXIF orientation, convert to
8-bit RGB (16-bit channels keep their top 8 bits), crop the central 87.5% of
each side (as tf.image.central_crop), resize to the model's input size with
Pillow's bilinear filter. The model's uint8 input takes these bytes as they are.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

CENTRAL_FRACTION = 0.875


def to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.uint32) >> 8  # 16-bit samples: keep the top byte
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    if im.mode in ("P", "PA", "LA"):
        im = im.convert("RGBA")
    return im if im.mode == "RGB" else im.convert("RGB")


def central_box(width: int, height: int, fraction: float = CENTRAL_FRACTION) -> tuple:
    """(left, top, right, bottom) of tf.image.central_crop's box."""
    top = int((height - height * fraction) / 2)
    left = int((width - width * fraction) / 2)
    return left, top, width - left, height - top


def load_image(path, size: tuple) -> np.ndarray:
    """Decode one image file into uint8 [H, W, 3] for a model input of size (H, W)."""
    height, width = size
    with Image.open(path) as im:
        im.seek(0)
        im = to_rgb(ImageOps.exif_transpose(im))
        resized = im.resize((width, height), Image.BILINEAR, box=central_box(*im.size))
    return np.asarray(resized, dtype=np.uint8)
