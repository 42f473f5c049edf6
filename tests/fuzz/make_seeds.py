"""Regenerate the seed corpus (small files, committed): python tests/fuzz/make_seeds.py"""
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1] / "src"))

from tflite_builder import build, random_network  # noqa: E402

from mnq.mnq_format import encode  # noqa: E402
from mnq.tflite_loader import load_tflite  # noqa: E402


def write(target, name, data):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def main():
    for seed, kw in enumerate([dict(), dict(size=(16, 16)), dict(size=(9, 12), channels=(1, 4, 6), classes=3),
                               dict(paddings=("SAME", "SAME"))]):
        rng = np.random.default_rng(seed)
        data = build(random_network(rng, **kw), rng)
        write("tflite", f"net{seed}.tflite", data)
        graph = load_tflite(data)
        write("mnq", f"net{seed}.mnq", b"\x01" + encode(graph, labels=[f"c{i}" for i in range(
            graph.layers[-1].out_shape[2])] if seed % 2 else None))
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    images = {
        "rgb.png": (Image.fromarray(rgb), "PNG", {}),
        "rgb.jpg": (Image.fromarray(rgb), "JPEG", {"quality": 50}),
        "gray.bmp": (Image.fromarray(rgb[..., 0]), "BMP", {}),
        "rgba.webp": (Image.fromarray(np.dstack([rgb, rgb[..., :1]])), "WEBP", {}),
        "palette.gif": (Image.fromarray(rgb).convert("P"), "GIF", {"transparency": 0}),
        "gray16.png": (Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG", {}),
        "cmyk.jpg": (Image.fromarray(rgb).convert("CMYK"), "JPEG", {}),
        "la.png": (Image.fromarray(rgb[..., :2].copy(), "LA") if hasattr(Image, "fromarray") else None, "PNG", {}),
        "tiny.tiff": (Image.fromarray(rgb), "TIFF", {}),
    }
    for name, (im, fmt, kw) in images.items():
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        write("image", name, buf.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", exif=exif.tobytes())
    write("image", "exif_rotated.jpg", buf.getvalue())


if __name__ == "__main__":
    main()
