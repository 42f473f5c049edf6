"""Class names: reading label files, finding them beside a model, ImageNet's names.

Shared by the library (mnq.load, Model.classify, mnq.distributed) and the `mnq` command.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import List, Optional

from .errors import LabelsError
from .files import MAX_LABELS_BYTES, read_capped

IMAGENET_CLASSES = 1001
# Looked for beside a model, after "<model stem>_labels.txt"
LABEL_FILE_NAMES = ("labels.txt", "imagenet_labels.txt")


def read_labels_file(path) -> List[str]:
    """One class name per line. LabelsError (naming the file) if it is not a regular file
    (a FIFO or device is never opened), is larger than MAX_LABELS_BYTES, or cannot be read;
    bytes that are not UTF-8 are replaced rather than refused (a name is still usable with
    one odd character)."""
    try:
        data = read_capped(path, MAX_LABELS_BYTES, "a labels file", error=LabelsError)
    except OSError as exc:
        raise LabelsError(f"{path}: cannot read labels file: {exc.strerror or exc}") from None
    return data.decode("utf-8", "replace").splitlines()


def labels_beside(model_path, num_classes: int) -> Optional[List[str]]:
    """The first of <stem>_labels.txt, labels.txt, imagenet_labels.txt next to the model
    that has one line per class, else None. A candidate that cannot be used (too large,
    unreadable) is passed over: these files are optional."""
    model_path = Path(model_path)
    for name in (model_path.stem + "_labels.txt",) + LABEL_FILE_NAMES:
        candidate = model_path.parent / name
        if not candidate.is_file():
            continue
        try:
            labels = read_labels_file(candidate)
        except LabelsError:
            continue
        if len(labels) == num_classes:
            return labels
    return None


def checked_labels(labels, num_classes: int, source: str = "labels") -> List[str]:
    """A list of names, or a file of them, that must have exactly one name per class."""
    if isinstance(labels, (str, os.PathLike)):
        source, labels = os.fspath(labels), read_labels_file(labels)
    labels = list(labels)
    if len(labels) != num_classes:
        raise LabelsError(f"{source}: {len(labels)} labels given for a model with {num_classes} classes")
    return labels


def imagenet_labels() -> List[str]:
    """ImageNet's 1001 class names (0 = background), as TensorFlow's MobileNets number them."""
    return resources.files("mnq").joinpath("data/imagenet_labels.txt").read_text(encoding="utf-8").splitlines()


def with_labels(model):
    """The model, given ImageNet's class names if it is a 1001-class model without labels
    (TensorFlow's files carry none; mnq ships ImageNet's)."""
    if model.labels is None and model.num_outputs == IMAGENET_CLASSES:
        model.labels = imagenet_labels()
    return model


def label_of(model, c: int) -> str:
    return model.labels[c] if model.labels else f"class {c}"
