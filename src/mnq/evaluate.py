"""`mnq eval`: accuracy on a labelled folder, and agreement with TFLite's reference kernels.

Ranking rule (also used by `mnq classify`): classes are sorted by their uint8 softmax
value, highest first; equal values keep ascending class order (a stable sort). With
uint8 outputs ties are common, so the rule matters for top-5.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .errors import LabelsError

REQUIRED_COLUMNS = ("file", "label")


def ranked(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best classes of each row of [N, classes], ties by class index."""
    return np.argsort(-scores.astype(np.float64), axis=-1, kind="stable")[..., :k]  # any output dtype


def read_labels(csv_path: str, num_classes: int) -> List[Tuple[str, int]]:
    """[(file name, class)] from a CSV with a header holding at least `file` and `label`."""
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise LabelsError(f"{csv_path}: needs a header row with columns {', '.join(REQUIRED_COLUMNS)} "
                                  f"(found: {', '.join(reader.fieldnames or []) or 'nothing'})")
            rows = [_parse_row(csv_path, reader.line_num, row, num_classes) for row in reader]
    except UnicodeDecodeError as exc:
        raise LabelsError(f"{csv_path}: not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise LabelsError(f"{csv_path}: malformed CSV: {exc}") from None
    except OSError as exc:
        raise LabelsError(f"{csv_path}: cannot read: {exc.strerror or exc}") from None
    if not rows:
        raise LabelsError(f"{csv_path}: no rows after the header")
    return rows


def _parse_row(csv_path, line, row, num_classes) -> Tuple[str, int]:
    name, label = (row.get("file") or "").strip(), (row.get("label") or "").strip()
    if not name:
        raise LabelsError(f"{csv_path}, line {line}: empty file name")
    try:
        value = int(label)
    except ValueError:
        raise LabelsError(f"{csv_path}, line {line}: label {label!r} is not a class number") from None
    if not 0 <= value < num_classes:
        raise LabelsError(f"{csv_path}, line {line}: label {value} is outside the model's classes "
                          f"0..{num_classes - 1}")
    return name, value


class Reference:
    """TFLite's reference kernels (ai-edge-litert, BUILTIN_REF), one image at a time."""

    def __init__(self, model_path: str):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self._interpreter = Interpreter(model_path=str(model_path), num_threads=1,
                                        experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._input_dtype = self._interpreter.get_input_details()[0]["dtype"]

    def _from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """mnq's pixel rule (Model.input_from_pixels): int8 input p - 128, float32 input the
        real value p stands for in the quantization of the input QUANTIZE's output."""
        if self._input_dtype == np.int8:
            return (pixels ^ np.uint8(0x80)).view(np.int8)
        if self._input_dtype == np.float32:
            first = self._interpreter._get_ops_details()[0]["outputs"][0]
            scale, zp = self._interpreter._get_tensor_details(first, 0)["quantization"]
            zp += 128 if self._interpreter._get_tensor_details(first, 0)["dtype"] == np.int8 else 0
            return np.float32(scale) * (pixels.astype(np.float32) - np.float32(zp))
        return pixels

    def run(self, batch: np.ndarray) -> np.ndarray:
        """uint8 pixels [N,H,W,C] -> outputs, pixels mapped to the model's input as mnq maps them."""
        outputs = []
        for image in batch:
            self._interpreter.set_tensor(self._input, self._from_pixels(image)[None])
            self._interpreter.invoke()
            outputs.append(self._interpreter.get_tensor(self._output).reshape(-1).copy())
        return np.stack(outputs)


def reference_or_reason(model_path: str):
    """(Reference, None), or (None, why the comparison is skipped)."""
    try:
        return Reference(model_path), None
    except ImportError:
        return None, "ai-edge-litert is not installed (pip install ai-edge-litert) - reference comparison skipped"
    except (ValueError, RuntimeError) as exc:
        return None, f"the TFLite interpreter cannot load {os.path.basename(str(model_path))}: {exc}"


@dataclass
class Tally:
    """Running counts: nothing per image is kept, so any folder size fits in memory."""

    images: int = 0
    top1: int = 0
    top5: int = 0
    reference_top1: int = 0
    reference_top5: int = 0
    identical_outputs: int = 0
    failed: List[str] = field(default_factory=list)

    def add(self, truth: np.ndarray, scores: np.ndarray, reference: Optional[np.ndarray]):
        self.images += len(truth)
        self.top1, self.top5 = self.top1 + _hits(scores, truth, 1), self.top5 + _hits(scores, truth, 5)
        if reference is not None:
            self.reference_top1 += _hits(reference, truth, 1)
            self.reference_top5 += _hits(reference, truth, 5)
            self.identical_outputs += int(np.all(reference == scores, axis=1).sum())


def _hits(scores: np.ndarray, truth: np.ndarray, k: int) -> int:
    return int((ranked(scores, k) == truth[:, None]).any(axis=1).sum())
