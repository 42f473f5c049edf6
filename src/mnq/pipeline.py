"""Find image files, decode them in background threads, hand them over in batches.

Order is kept (results come out in input order) and memory is bounded (only a few
batches are decoded ahead), so a folder of 100k photos streams. A file that cannot be
decoded becomes an Item with an error message instead of stopping the run.
"""
from __future__ import annotations

import os
import stat
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional

import numpy as np

from .preprocess import load_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")


@dataclass
class Item:
    path: str
    pixels: Optional[np.ndarray] = None  # uint8 [H, W, 3] when decoded
    error: Optional[str] = None  # why it could not be, otherwise


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def find_images(inputs: Iterable[str], on_skip: Callable[[str, str], None]) -> List[str]:
    """Paths to classify, in a stable order: files named on the command line as given
    (whatever their extension), folders walked recursively in sorted order keeping
    files with an image extension. Everything left out is passed to on_skip(path, why)
    so it is reported by name; hidden files and folders (".name") are left out silently.
    A named path that does not exist is kept: decoding reports it like any bad file."""
    found = []
    for given in inputs:
        if os.path.isdir(given):
            found += _walk(given, on_skip)
        else:
            found.append(given)
    return found


def _walk(root: str, on_skip) -> List[str]:
    found = []

    def report_unreadable(err: OSError):
        on_skip(err.filename or root, f"cannot list folder: {err.strerror or err}")

    # followlinks=False: a symlink loop cannot make the walk endless
    for folder, subfolders, files in os.walk(root, onerror=report_unreadable):
        for name in subfolders:
            if os.path.islink(os.path.join(folder, name)):
                on_skip(os.path.join(folder, name), "symbolic link to a folder, not followed")
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            if is_image_name(name):
                found.append(path)
            else:
                on_skip(path, "not an image file name (" + ", ".join(IMAGE_EXTENSIONS) + ")")
    return found


def decode(path: str, size: tuple) -> Item:
    """One file -> Item; every failure becomes a message, never an exception."""
    try:
        mode = os.stat(path).st_mode  # follows symlinks: a dangling one fails here
        if not stat.S_ISREG(mode):  # opening a FIFO or device could block or never end
            return Item(path, error="not a regular file")
        return Item(path, pixels=load_image(path, size))
    except OSError as exc:  # missing, unreadable, truncated, not an image
        return Item(path, error=_describe(exc))
    except Exception as exc:  # noqa: BLE001 - a malformed file can make any decoder raise anything
        return Item(path, error=f"cannot decode image ({type(exc).__name__}: {exc})")


def _describe(exc: OSError) -> str:
    if exc.errno is not None and exc.strerror:  # missing, permission denied, ...: without the path again
        return exc.strerror[0].lower() + exc.strerror[1:]
    text = str(exc)
    if text.startswith("cannot identify image file"):
        return "not an image Pillow can read (empty, corrupt or unsupported format)"
    return f"cannot decode image: {text}"


def decoded(paths: Iterable[str], size: tuple, workers: int, lookahead: int) -> Iterator[Item]:
    """Items in input order, decoded by `workers` threads (Pillow releases the GIL while
    decoding, so this overlaps with inference) at most `lookahead` files ahead."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mnq-decode") as pool:
        pending: deque = deque()
        try:
            for path in paths:
                pending.append(pool.submit(decode, path, size))
                if len(pending) >= lookahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped early (error, Ctrl-C, closed pipe): drop what is queued
            for future in pending:
                future.cancel()


def batches(items: Iterable[Item], batch_size: int) -> Iterator[List[Item]]:
    """Consecutive runs of batch_size items (the last may be shorter)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def stack_pixels(batch: List[Item]) -> Optional[np.ndarray]:
    """uint8 [N, H, W, 3] of the decoded items of a batch, or None if there are none."""
    good = [item.pixels for item in batch if item.pixels is not None]
    return np.stack(good) if good else None


def infer(model, batch: List[Item]) -> Optional[np.ndarray]:
    """The model's uint8 scores [N, classes] (Model.scores: probability x 256 for a softmax,
    int8 models too) for the decoded items of a batch (None if none)."""
    pixels = stack_pixels(batch)
    return model.scores(pixels) if pixels is not None else None


def classified(batch: List[Item], scores: Optional[np.ndarray], top_k: int) -> Iterator[tuple]:
    """(path, classes, uint8 values, error) per item of a batch, in order: the top_k classes
    ranked by mnq's rule (mnq.evaluate.ranked) and error None for a decoded item, classes and
    values None and the error message for the others. scores: infer(model, batch).
    `mnq classify` and mnq.distributed both report through this, so they agree."""
    from .evaluate import ranked

    good = 0
    for item in batch:
        if item.error is not None:
            yield item.path, None, None, item.error
            continue
        classes = ranked(scores[good], top_k)
        yield item.path, classes, scores[good][classes], None
        good += 1
