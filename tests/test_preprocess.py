"""Preprocessing: every pixel format and container ends as the same 8-bit RGB array."""
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from mnq.pipeline import decode, find_images
from mnq.preprocess import central_box, load_image

SIZE = (24, 32)  # (H, W): not square, so a transposed result would show


def rgb_pattern(h=40, w=56) -> np.ndarray:
    """A smooth, asymmetric picture: a wrong crop, flip or channel order changes it."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + 2 * y) % 256], axis=-1).astype(np.uint8)


def save(tmp_path, name, im, **kwargs):
    path = tmp_path / name
    im.save(path, **kwargs)
    return path


def expected(rgb: np.ndarray) -> np.ndarray:
    """What load_image must give for an 8-bit RGB picture."""
    im = Image.fromarray(rgb, "RGB")
    return np.asarray(im.resize(SIZE[::-1], Image.BILINEAR, box=central_box(*im.size)))


@pytest.mark.parametrize("size, box", [((227, 227), (14, 14, 213, 213)), ((100, 60), (6, 3, 94, 57)),
                                       ((8, 8), (0, 0, 8, 8))])
def test_central_box_matches_tf_central_crop(size, box):
    # tf.image.central_crop: start = int((n - n * 0.875) / 2), size = n - 2 * start
    assert central_box(*size) == box


@pytest.mark.parametrize("fmt, ext", [("PNG", "png"), ("BMP", "bmp"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_lossless_containers_agree(tmp_path, fmt, ext):
    rgb = rgb_pattern()
    options = {"lossless": True} if fmt == "WEBP" else {}
    path = save(tmp_path, f"a.{ext}", Image.fromarray(rgb), format=fmt, **options)
    out = load_image(path, SIZE)
    assert out.shape == SIZE + (3,) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected(rgb))


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = rgb_pattern()[..., 0]
    out = load_image(save(tmp_path, "g.png", Image.fromarray(gray, "L")), SIZE)
    np.testing.assert_array_equal(out, expected(np.repeat(gray[..., None], 3, axis=-1)))


def test_16bit_grayscale_keeps_the_top_byte(tmp_path):
    gray = rgb_pattern()[..., 2]
    sixteen = gray.astype(np.uint16) * 256 + 255  # low byte noise must not matter
    path = save(tmp_path, "g16.png", Image.fromarray(sixteen))
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_array_equal(load_image(path, SIZE), expected(np.repeat(gray[..., None], 3, axis=-1)))


def write_png_rgb16(path, rgb16: np.ndarray):
    """Pillow cannot write 16-bit RGB PNGs: build one (colour type 2, depth 16) by hand."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16bit_rgb_keeps_the_top_byte(tmp_path):
    rgb = rgb_pattern()
    path = tmp_path / "rgb16.png"
    write_png_rgb16(path, rgb.astype(np.uint16) * 256 + 77)
    np.testing.assert_array_equal(load_image(path, SIZE), expected(rgb))


def test_palette_with_transparency_keeps_the_colours(tmp_path):
    rgb = rgb_pattern()
    palette = Image.fromarray(rgb).quantize(colors=64)
    palette.info["transparency"] = 0
    path = save(tmp_path, "p.png", palette, transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns when such images go straight to RGB
        out = load_image(path, SIZE)
    np.testing.assert_array_equal(out, expected(np.asarray(palette.convert("RGB"))))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped_not_blended(tmp_path, mode):
    rgb = rgb_pattern()
    im = Image.fromarray(rgb).convert(mode[:-1])
    im.putalpha(Image.fromarray(np.full(rgb.shape[:2], 10, np.uint8)))  # almost transparent
    out = load_image(save(tmp_path, f"{mode}.png", im), SIZE)
    np.testing.assert_array_equal(out, expected(np.asarray(im.convert(mode[:-1]).convert("RGB"))))


def test_cmyk_jpeg(tmp_path):
    rgb = np.zeros((40, 56, 3), np.uint8)
    rgb[:] = (200, 40, 90)
    path = save(tmp_path, "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=100)
    assert Image.open(path).mode == "CMYK"
    out = load_image(path, SIZE)
    assert np.abs(out.astype(int) - (200, 40, 90)).max() <= 3  # JPEG is lossy


def test_exif_orientation_is_applied(tmp_path):
    rgb = rgb_pattern()
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = save(tmp_path, "rotated.png", im, exif=exif.tobytes())
    upright = np.asarray(im.transpose(Image.ROTATE_270))
    np.testing.assert_array_equal(load_image(path, SIZE), expected(upright))


def test_gif_uses_the_first_frame(tmp_path):
    red, blue = (Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 0, 255)))
    path = save(tmp_path, "anim.gif", red, save_all=True, append_images=[blue])
    assert Image.open(path).n_frames == 2
    out = load_image(path, SIZE)
    assert (out == (255, 0, 0)).all()


def test_bad_files_become_messages(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    good = save(tmp_path, "good.jpg", Image.fromarray(rgb_pattern()))
    (tmp_path / "truncated.jpg").write_bytes(good.read_bytes()[:300])
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    messages = {name: decode(str(tmp_path / name), SIZE).error
                for name in ("empty.jpg", "text.jpg", "truncated.jpg", "dangling.jpg", "missing.png")}
    assert "not an image" in messages["empty.jpg"] and "not an image" in messages["text.jpg"]
    assert "truncated" in messages["truncated.jpg"].lower()
    assert messages["dangling.jpg"] == messages["missing.png"] == "no such file or directory"
    assert decode(str(good), SIZE).error is None


def test_find_images_walks_in_order_and_reports_what_it_leaves_out(tmp_path):
    for name in ("b/2.JPG", "b/1.png", "a.gif", "notes.txt", ".hidden.jpg", ".git/x.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    skipped = []
    found = find_images([str(tmp_path), str(tmp_path / "named.txt")], lambda p, why: skipped.append(p))
    names = [p[len(str(tmp_path)) + 1:] for p in found]
    assert names == ["a.gif", "b/1.png", "b/2.JPG", "named.txt"]  # a named file is always tried
    assert skipped == [str(tmp_path / "notes.txt")]
