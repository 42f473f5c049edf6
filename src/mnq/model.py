"""mnq.load() and Model: the Python face of the C executor."""
from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from . import _core
from .errors import ModelFormatError
from .graph import Graph
from .labels import MAX_LABELS_BYTES, checked_labels, labels_beside
from .mnq_format import MAGIC as MNQ_MAGIC
from .mnq_format import decode as decode_mnq
from .plan import plan
from .tflite_loader import load_tflite
from .tfhub_loader import cached_module, is_module_archive

ISAS = _core.ISA_NAMES
MAX_THREADS = 1024  # as the C library caps it (net.c); more only exhausts the OS's thread limit


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_isa(isa: Optional[str]) -> str:
    """Explicit argument, else env MNQ_ISA, else the best level this CPU runs."""
    requested = isa or os.environ.get("MNQ_ISA") or None
    if requested is None:
        return _core.best_isa()
    requested = requested.strip().lower()
    if requested not in ISAS:
        raise ValueError(f"unknown instruction set {requested!r}; choose from {', '.join(ISAS)}")
    if requested not in _core.supported_isas():
        raise ValueError(f"instruction set {requested!r} is not available on this CPU/OS "
                         f"(available: {', '.join(_core.supported_isas())}; CPU features: {_core.cpu_features()})")
    return requested


def read_graph(path: Union[str, os.PathLike]) -> Graph:
    """Parse a model file into the layer list, by content rather than extension."""
    path = Path(path)
    if path.is_dir():
        raise ModelFormatError(f"{path}: is a directory; mnq.load expects a .tflite or .mnq file")
    data = path.read_bytes()  # FileNotFoundError / PermissionError speak for themselves
    if len(data) >= 8 and data[4:8] == b"TFL3":
        return load_tflite(data, source=str(path))
    if data[:8] == MNQ_MAGIC:
        return decode_mnq(data, source=str(path))
    raise ModelFormatError(f"{path}: neither a TFLite flatbuffer (no 'TFL3' file identifier) nor an .mnq file")


def _labels_from(path: Path, num_classes: int, explicit, embedded=None) -> Optional[list]:
    """Explicit list or file; else labels embedded in the model (.mnq labels, .tflite
    metadata zip) or a labels file beside it, used only if it has one line per class."""
    if explicit is not None:
        return checked_labels(explicit, num_classes)
    candidates = [embedded] if embedded else []
    try:
        with zipfile.ZipFile(path) as zf:  # TFLite metadata appends a zip of associated files
            for info in zf.infolist():
                if info.filename.endswith(".txt") and info.file_size <= MAX_LABELS_BYTES:
                    candidates.append(zf.read(info).decode("utf-8", "replace").splitlines())
    except Exception:  # noqa: BLE001 - labels are optional; a damaged/encrypted/odd zip just has none
        pass
    for labels in candidates:
        if len(labels) == num_classes:
            return labels
    return labels_beside(path, num_classes)


class _Workspace:
    """Activation arena for one run at a time: two ping-pong buffers + kernel scratch."""

    def __init__(self, capacity: int, largest_tensor: int, scratch_bytes: int):
        self.capacity = capacity
        self.buffers = (np.empty(capacity * largest_tensor, np.uint8), np.empty(capacity * largest_tensor, np.uint8))
        self.scratch = np.empty(max(scratch_bytes, 1), np.uint8)


class Model:
    """A loaded network. Thread-safe: concurrent calls each use their own workspace."""

    def __init__(self, graph: Graph, num_threads: Optional[int] = None, isa: Optional[str] = None, labels=None):
        self.graph = graph
        isa = resolve_isa(isa)
        if not graph.layers or tuple(graph.input_shape) != tuple(graph.layers[0].in_shape):
            raise ModelFormatError(f"{graph.source or 'model'}: input shape {tuple(graph.input_shape)} is not "
                                   "the first layer's input")
        descs = plan(graph)
        try:
            self._net = _core.Net(descs, isa)
        except (ValueError, OverflowError) as exc:  # the C library's validation: the model is unusable
            raise ModelFormatError(f"{graph.source or 'model'}: {exc}") from None
        self._sizes = self._net.tensor_sizes
        self._largest = max(self._sizes)
        self.num_threads = num_threads
        out_h, out_w, out_c = graph.layers[-1].out_shape
        self.num_outputs = out_h * out_w * out_c
        self.labels = _labels_from(Path(graph.source), self.num_outputs, labels, graph.labels)
        self._workspaces: list = []
        self._lock = threading.Lock()

    # ---- properties ----
    @property
    def num_threads(self) -> int:
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value: Optional[int]):
        if value is None:
            value = default_threads()
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 1 <= value <= MAX_THREADS:
            raise ValueError(f"num_threads must be an integer from 1 to {MAX_THREADS}, got {value!r}")
        self._num_threads = int(value)

    @property
    def input_shape(self) -> tuple:
        """(H, W, C) of one input image."""
        return tuple(self.graph.input_shape)

    @property
    def isa(self) -> str:
        return self._net.isa

    @property
    def kernels(self) -> list:
        """Name of the C kernel chosen for each layer."""
        return self._net.kernel_names()

    @property
    def layer_names(self) -> list:
        """Each layer's name as the CLI shows it: the first of the ';'-joined names the TFLite
        converter gives a fused tensor (e.g. MobilenetV1/MobilenetV1/Conv2d_0/Relu6).
        layer_outputs() keeps the full tensor names, which match TFLite's."""
        return [short_name(layer.name) for layer in self.graph.layers]

    # ---- inference ----
    def run(self, x: np.ndarray) -> np.ndarray:
        """uint8 NHWC images [N,H,W,C] (or one [H,W,C]) -> uint8 output [N, classes]."""
        batch = self._check_uint8(x)
        return self._execute(batch, keep=())[-1].reshape(len(batch), -1)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float images in [0,1], [N,H,W,C] -> float32 logits [N, classes]
        (the dequantized input of the final softmax)."""
        i = self._layer_index("softmax", "predict")
        batch = self.to_uint8(images)
        t = self._execute(batch, keep=(i,))[i]
        return self._dequantize(t, self.graph.layers[i].in_quant, len(batch))

    def features(self, images: np.ndarray) -> np.ndarray:
        """float images in [0,1], [N,H,W,C] -> float32 [N, C] average-pool output."""
        i = self._layer_index("avgpool", "features") + 1
        batch = self.to_uint8(images)
        t = self._execute(batch, keep=(i,))[i]
        return self._dequantize(t, self.graph.layers[i - 1].out_quant, len(batch))

    def layer_outputs(self, x: np.ndarray) -> list:
        """[(tensor name, uint8 array [N,H,W,C] or [N,C])] for every layer output, in order."""
        batch = self._check_uint8(x)
        n = len(self.graph.layers)
        tensors = self._execute(batch, keep=range(1, n + 1))
        out = []
        for layer, t in zip(self.graph.layers, tensors[1:]):
            h, w, c = layer.out_shape
            shape = (len(batch), c) if layer.op in ("reshape", "softmax") and h == w == 1 else (len(batch), h, w, c)
            out.append((layer.name, t.reshape(shape)))
        return out

    def profile(self, x: np.ndarray, repeats: int = 10) -> list:
        """[(layer name, kernel, median seconds)] over `repeats` runs of batch x."""
        batch = self._check_uint8(x)
        samples = [self._execute(batch, keep=(), profile=True)[1] for _ in range(max(1, repeats))]
        medians = np.median(np.array(samples), axis=0)
        return list(zip(self.layer_names, self.kernels, medians.tolist()))

    def classify(self, inputs, top_k: int = 5) -> list:
        """The top_k classes of each image: [[(class index, label, probability), ...], ...].

        inputs: one image or a list of them; an image is a file path, a PIL image, or a uint8
        array [H,W,3] (or [H,W] grayscale) of any size; a uint8 array [N,H,W,3] is N images.
        Every image is preprocessed exactly as `mnq classify` does (mnq.preprocess:
        central 87.5% crop, bilinear resize to the model's input). probability is the uint8
        softmax value / 256; classes are ranked highest first, ties by class index. label is
        the model's class name (ImageNet's for a 1001-class model without labels), else None.
        A file that cannot be read raises OSError/ValueError naming it."""
        from .evaluate import ranked
        from .labels import IMAGENET_CLASSES, imagenet_labels

        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be a whole number of at least 1, got {top_k!r}")
        images = _as_image_list(inputs)
        if not images:
            return []
        size = self.input_shape[:2]
        scores = np.concatenate([self.run(np.stack([_preprocessed(image, size) for image in images[i:i + 32]]))
                                 for i in range(0, len(images), 32)])  # 32 decoded images at a time
        labels = self.labels or (imagenet_labels() if self.num_outputs == IMAGENET_CLASSES else None)
        results = []
        for row in scores:
            classes = ranked(row, min(int(top_k), self.num_outputs))
            results.append([(int(c), labels[c] if labels else None, int(row[c]) / 256) for c in classes])
        return results

    # ---- input handling ----
    def to_uint8(self, images: np.ndarray) -> np.ndarray:
        """float pixels in [0,1] -> uint8 as floor(255*x + 0.5), clipped to [0,255]."""
        if not isinstance(images, np.ndarray):
            raise TypeError(f"expected a numpy float32 array [N,{self._shape_text()}], got {type(images).__name__}")
        if images.dtype.kind != "f":
            raise TypeError(f"expected float32 pixels in [0,1] with shape [N,{self._shape_text()}], got dtype "
                            f"{images.dtype} (use run() for uint8 images)")
        self._check_layout(images, "float32")
        if not np.isfinite(images).all():
            raise ValueError("images contain NaN or infinite values")
        scaled = np.floor(images.astype(np.float64) * 255.0 + 0.5)
        return self._check_uint8(np.clip(scaled, 0, 255).astype(np.uint8))

    def _shape_text(self):
        return ",".join(str(v) for v in self.input_shape)

    def _check_layout(self, x: np.ndarray, dtype_name: str):
        expected = f"[N,{self._shape_text()}] (or [{self._shape_text()}]) {dtype_name}"
        if x.ndim not in (3, 4):
            raise ValueError(f"expected {expected}, got {x.ndim}-d array of shape {x.shape}")
        if tuple(x.shape[-3:]) != self.input_shape:
            raise ValueError(f"expected {expected}, got shape {x.shape}")
        if x.ndim == 4 and x.shape[0] == 0:
            raise ValueError(f"expected {expected}, got an empty batch")
        if not x.flags.c_contiguous:
            raise ValueError(f"expected a C-contiguous {expected} array; use np.ascontiguousarray(x)")

    def _check_uint8(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"expected a numpy uint8 array [N,{self._shape_text()}], got {type(x).__name__}")
        if x.dtype != np.uint8:
            raise TypeError(f"expected uint8 pixels with shape [N,{self._shape_text()}], got dtype {x.dtype} "
                            "(use predict()/features() for float images in [0,1])")
        self._check_layout(x, "uint8")
        return x.reshape((-1,) + self.input_shape)

    # ---- execution ----
    def _layer_index(self, op: str, what: str) -> int:
        i = self.graph.index_of(op)
        if i is None:
            raise ValueError(f"{what}() needs a model with a {op} layer; this one has none")
        return i

    def _dequantize(self, t: np.ndarray, quant, n: int) -> np.ndarray:
        return ((t.reshape(n, -1).astype(np.float32) - np.float32(quant.zero_point)) * np.float32(quant.scale))

    def _take_workspace(self, batch: int) -> _Workspace:
        with self._lock:
            for i, ws in enumerate(self._workspaces):
                if ws.capacity >= batch:
                    return self._workspaces.pop(i)
        return _Workspace(batch, self._largest, self._net.scratch_bytes(self._num_threads))

    def _execute(self, batch: np.ndarray, keep: Sequence[int], profile: bool = False):
        n = len(batch)
        threads = self._num_threads
        try:
            ws = self._take_workspace(n)
            if ws.scratch.nbytes < self._net.scratch_bytes(threads):  # num_threads grew since
                ws.scratch = np.empty(self._net.scratch_bytes(threads), np.uint8)
            last = len(self._sizes) - 1
            keep = set(keep) | {last}
            tensors, owned = [batch], []
            for i in range(1, last + 1):
                size = n * self._sizes[i]
                if i in keep:
                    t = np.empty(size, np.uint8)
                    owned.append(t)
                else:  # alternate ping-pong buffers, never the one the layer reads
                    prev = tensors[-1]
                    buf = ws.buffers[1] if prev.base is ws.buffers[0] else ws.buffers[0]
                    t = buf[:size]
                tensors.append(t)
        except MemoryError:
            raise MemoryError(f"not enough memory for a batch of {n} images "
                              f"({n * self._largest * 2 / 2**20:.0f} MiB of activations)") from None
        try:
            seconds = self._net.run(tensors, n, threads, ws.scratch, profile)
        finally:
            with self._lock:
                self._workspaces.append(ws)
        return (tensors, seconds) if profile else tensors

    def __repr__(self):
        h, w, c = self.input_shape
        return (f"<mnq.Model {Path(self.graph.source).name or '?'}: {h}x{w}x{c} -> {self.num_outputs}, "
                f"{len(self.graph.layers)} layers, isa={self.isa}, threads={self.num_threads}>")


def short_name(tensor_name: str) -> str:
    """The first of the ';'-joined names the TFLite converter gives a fused tensor."""
    return tensor_name.split(";")[0]


def _as_image_list(inputs) -> list:
    """One image or a sequence of them -> a list (a 4-d array is a batch of images)."""
    if isinstance(inputs, np.ndarray):
        return list(inputs) if inputs.ndim == 4 else [inputs]
    if isinstance(inputs, (str, os.PathLike)) or hasattr(inputs, "getdata"):  # a path or a PIL image
        return [inputs]
    try:
        return list(inputs)
    except TypeError:
        raise TypeError(f"expected image paths, PIL images or uint8 arrays, got {type(inputs).__name__}") from None


def _preprocessed(image, size: tuple) -> np.ndarray:
    from PIL import Image

    from .preprocess import load_image, preprocess

    if isinstance(image, (str, os.PathLike)):
        return load_image(image, size)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise TypeError(f"expected a uint8 image array [H,W,3] or [H,W], got dtype {image.dtype} with shape "
                            f"{image.shape}")
        image = Image.fromarray(image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected an image path, PIL image or uint8 array, got {type(image).__name__}")
    return preprocess(image, size)


def load(path: Union[None, str, os.PathLike] = None, num_threads: Optional[int] = None, isa: Optional[str] = None,
         labels: Union[None, str, os.PathLike, Sequence[str]] = None) -> Model:
    """Load a uint8 MobileNet-family model.

    path: a .tflite or .mnq file, or a TF1 Hub quantops module (its directory or the .tar.gz
         tfhub.dev serves; converted once, with TensorFlow, into an .mnq in the user cache,
         keyed by the module's content). None: the model `mnq fetch` downloaded.
    num_threads: OpenMP threads per inference (default: all available cores).
    isa: force an instruction-set level (x86: 'scalar', 'avx2', 'avx512vnni', 'amx'; Arm:
         'scalar', 'neon', 'neondot'); default env MNQ_ISA, else the best this CPU supports.
    labels: list of class names or a text file (one per line); by default taken
         from the model's metadata or a labels file beside it when one matches.
    """
    if path is None:
        from .fetch import cached_model

        path = cached_model()
        if not path.is_file():
            raise FileNotFoundError(f"no model given and none downloaded yet: run `mnq fetch` once (it saves "
                                    f"{path}), or pass a model path to mnq.load")
    path = Path(path)
    if path.is_dir() or is_module_archive(path):
        converted = cached_module(path)
        graph = read_graph(converted)
        graph.source = str(path)  # labels beside the module are found, messages name it
        return Model(graph, num_threads=num_threads, isa=isa, labels=labels)
    return Model(read_graph(path), num_threads=num_threads, isa=isa, labels=labels)

