"""mnq.load() and Model: the Python face of the C executor."""
from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from . import _core
from . import edges
from .errors import ModelFormatError
from .files import MAX_LABELS_BYTES, MAX_MODEL_BYTES, map_capped
from .graph import Graph
from .labels import checked_labels, labels_beside
from .mnq_format import MAGIC as MNQ_MAGIC
from .mnq_format import decode as decode_mnq
from .plan import plan
from .tflite_loader import load_tflite
from .tfhub_loader import cached_module, is_module_archive

ISAS = _core.ISA_NAMES
MAX_THREADS = 1024  # as the C library caps it (net.c); more only exhausts the OS's thread limit
# Per-call activation working set (both ping-pong buffers, plus the float->uint8 conversion
# in predict/features). A batch that needs more runs in chunks of images that fit, so memory
# follows this budget, not the batch; 128 MiB keeps batches of 32 one call on every MobileNet V1.
WORKSPACE_BYTES = 128 << 20
FLOAT_CONVERSION_BYTES = 10  # per input value in to_uint8: the float64 copy, the isfinite mask, the result


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
    # a regular file within the cap, mapped rather than copied; FileNotFoundError /
    # PermissionError speak for themselves. The loaders copy what they keep.
    data = map_capped(path, MAX_MODEL_BYTES, "a model", error=ModelFormatError)
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

    def __init__(self, graph: Graph, num_threads: Optional[int] = None, isa: Optional[str] = None, labels=None,
                 adapt_threads: bool = True):
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
        self.adapt_threads = adapt_threads
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
    def adapt_threads(self) -> bool:
        """True (the default): each run uses at most the CPUs that other runnable threads (other
        processes, the application's own) leave free, down to one, so a busy machine is not
        oversubscribed; False: always num_threads. Results are the same bytes either way."""
        return self._net.adapt_threads

    @adapt_threads.setter
    def adapt_threads(self, value: bool):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"adapt_threads must be True or False, got {value!r}")
        self._net.adapt_threads = bool(value)

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
    @property
    def input_dtype(self) -> str:
        """What run() takes: 'uint8', 'int8' or 'float32', as the model file says."""
        return self.graph.input_dtype

    @property
    def output_dtype(self) -> str:
        return self.graph.output_dtype

    def run(self, x: np.ndarray) -> np.ndarray:
        """Images [N,H,W,C] (or one [H,W,C]) in the model's input dtype -> its output
        [N, classes] in the output dtype. uint8 pixels are taken by every model: where
        the input is int8 or float32 they are mapped as input_from_pixels() maps them."""
        return self._output(self.scores(x))

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Like run(), but the last layer's output in uint8 form, before any output edge
        (an int8 value + 128): a softmax gives probability x 256 for uint8, int8,
        uint8-I/O and float-I/O files alike. What classify ranks and prints."""
        batch = self._check_input(x)
        last = len(self.graph.layers)
        return self._execute(batch, keep=(), prepare=self._internal_input)[0][last].reshape(len(batch), -1)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float images in [0,1], [N,H,W,C] -> float32 logits [N, classes]
        (the dequantized input of the final softmax)."""
        i = self._layer_index("softmax", "predict")
        batch = self._check_float(images)
        t = self._execute(batch, keep=(i,), prepare=self._pixels_to_internal)[0][i]
        return self._dequantize(t, self.graph.layers[i].in_quant, len(batch))

    def features(self, images: np.ndarray) -> np.ndarray:
        """float images in [0,1], [N,H,W,C] -> float32 [N, C] average-pool output."""
        i = self._layer_index("avgpool", "features") + 1
        batch = self._check_float(images)
        t = self._execute(batch, keep=(i,), prepare=self._pixels_to_internal)[0][i]
        return self._dequantize(t, self.graph.layers[i - 1].out_quant, len(batch))

    def input_from_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels p -> the model's input: p for a uint8 input, p - 128 for an int8
        one (the value whose uint8 form is p), and for a float32 input the real value p
        stands for in the first layer's quantization, scale * (p - zero point)."""
        if self.input_dtype == "uint8":
            return pixels
        if self.input_dtype == "int8":
            return edges.internal_to(pixels, "int8")
        q = self.graph.input_quant  # the first layer's, in uint8 form
        return (np.float32(q.scale) * (pixels.astype(np.float32) - np.float32(q.zero_point))).astype(np.float32)

    def layer_outputs(self, x: np.ndarray) -> list:
        """[(tensor name, array [N,H,W,C] or [N,C])] for every op's output in order, edge
        QUANTIZE / DEQUANTIZE included, each in its own dtype as the model file has it."""
        native = self._check_input(x)
        n, graph = len(native), self.graph
        out = []
        layer_input = self._as_input_dtype(native)
        if graph.input_edge:
            layer_input = edges.apply(graph.input_edge, layer_input)
            out.append((graph.input_edge.name, layer_input))
        batch = np.ascontiguousarray(edges.int8_to_internal(layer_input))
        tensors = self._execute(batch, keep=range(1, len(graph.layers) + 1))[0]
        for i, layer in enumerate(graph.layers, start=1):
            t = tensors[i]
            h, w, c = layer.out_shape
            shape = (n, c) if layer.op in ("reshape", "softmax") and h == w == 1 else (n, h, w, c)
            out.append((layer.name, edges.internal_to(t, graph.dtype).reshape(shape)))
        if graph.output_edge:
            out.append((graph.output_edge.name, edges.apply(graph.output_edge, out[-1][1])))
        return out

    def profile(self, x: np.ndarray, repeats: int = 10) -> list:
        """Per layer, medians over `repeats` runs of batch x: mnq.roofline.LayerProfile records
        (name, kernel, seconds, macs, gmacs, peak_fraction), the first three as before. The
        peak is this level's GEMM instruction on one core times the threads
        (mnq.roofline.peak, measured once per process)."""
        from . import roofline

        batch = self._internal_input(self._check_input(x))
        samples = [self._execute(batch, keep=(), profile=True)[1] for _ in range(max(1, repeats))]
        medians = np.median(np.array(samples), axis=0)
        measured = roofline.peak(self.isa)
        return roofline.layer_profiles(self.graph.layers, self.layer_names, self.kernels, medians.tolist(),
                                       len(batch), measured[1] if measured else None, self.num_threads)

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
        scores = np.concatenate([self.scores(np.stack([_preprocessed(image, size) for image in images[i:i + 32]]))
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
        images = self._check_float(images)
        if not np.isfinite(images).all():
            raise ValueError("images contain NaN or infinite values")
        scaled = images.astype(np.float64)  # in place from here: one float64 copy, no temporaries
        scaled *= 255.0
        scaled += 0.5
        np.floor(scaled, out=scaled)
        np.clip(scaled, 0, 255, out=scaled)
        return scaled.astype(np.uint8)

    def _pixels_to_internal(self, images: np.ndarray) -> np.ndarray:
        """float pixels in [0,1] -> the uint8 bytes the first layer's kernel reads (per chunk)."""
        return self._internal_input(self.to_uint8(images))

    def _check_float(self, images: np.ndarray) -> np.ndarray:
        if not isinstance(images, np.ndarray):
            raise TypeError(f"expected a numpy float32 array [N,{self._shape_text()}], got {type(images).__name__}")
        if images.dtype.kind != "f":
            raise TypeError(f"expected float32 pixels in [0,1] with shape [N,{self._shape_text()}], got dtype "
                            f"{images.dtype} (use run() for uint8 images)")
        self._check_layout(images, "float32")
        return images.reshape((-1,) + self.input_shape)

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

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        """The model's input dtype, or uint8 pixels (any model), as a batch [N,H,W,C]."""
        dtype = self.input_dtype
        if not isinstance(x, np.ndarray):
            raise TypeError(f"expected a numpy {dtype} array [N,{self._shape_text()}], got {type(x).__name__}")
        if x.dtype != np.dtype(dtype) and x.dtype != np.uint8:
            raise TypeError(f"expected {dtype} input (or uint8 pixels) with shape [N,{self._shape_text()}], got "
                            f"dtype {x.dtype} (use predict()/features() for float images in [0,1])"
                            if dtype != "uint8" else
                            f"expected uint8 pixels with shape [N,{self._shape_text()}], got dtype {x.dtype} "
                            "(use predict()/features() for float images in [0,1])")
        self._check_layout(x, str(x.dtype))
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError("input contains NaN or infinite values")
        return x.reshape((-1,) + self.input_shape)

    def _as_input_dtype(self, batch: np.ndarray) -> np.ndarray:
        """uint8 pixels given to a model with another input dtype become its input."""
        return self.input_from_pixels(batch) if batch.dtype != np.dtype(self.input_dtype) else batch

    def _internal_input(self, batch: np.ndarray) -> np.ndarray:
        """A checked batch -> the uint8 bytes the first layer's kernel reads."""
        native = self._as_input_dtype(batch)
        layer_input = edges.apply(self.graph.input_edge, native) if self.graph.input_edge else native
        return np.ascontiguousarray(edges.int8_to_internal(layer_input))

    def _output(self, t: np.ndarray) -> np.ndarray:
        y = edges.internal_to(t, self.graph.dtype)
        return edges.apply(self.graph.output_edge, y) if self.graph.output_edge else y

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

    def _working_set_per_image(self, converting: bool) -> int:
        """Bytes per image of one executor call: ping-pong buffers, float conversion."""
        return 2 * self._largest + (FLOAT_CONVERSION_BYTES * self._sizes[0] if converting else 0)

    def _chunk_images(self, converting: bool) -> int:
        """Images per executor call: as many as the working-set budget allows, at least one."""
        return max(1, WORKSPACE_BYTES // self._working_set_per_image(converting))

    def _execute(self, images: np.ndarray, keep: Sequence[int], prepare=None, profile: bool = False):
        """Run the batch, in chunks of at most _chunk_images each, writing the kept tensors
        (and always the last) straight into whole-batch arrays. prepare(chunk) turns a
        slice of `images` into uint8 input. Returns ({tensor index: array}, layer seconds)."""
        n = len(images)
        chunk = min(n, self._chunk_images(prepare is not None))
        threads = self._num_threads
        last = len(self._sizes) - 1
        keep = sorted(set(keep) | {last})
        try:
            outputs = {i: np.empty(n * self._sizes[i], np.uint8) for i in keep}
            ws = self._take_workspace(chunk)
            if ws.scratch.nbytes < self._net.scratch_bytes(threads):  # num_threads grew since
                ws.scratch = np.empty(self._net.scratch_bytes(threads), np.uint8)
        except MemoryError:
            raise self._memory_error(n, chunk, prepare is not None, keep) from None
        seconds = None
        try:
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                tensors = [prepare(images[start:stop]) if prepare else images[start:stop]]
                for i in range(1, last + 1):
                    size = self._sizes[i]
                    if i in outputs:
                        t = outputs[i][start * size:stop * size]
                    else:  # alternate ping-pong buffers, never the one the layer reads
                        buf = ws.buffers[1] if tensors[-1].base is ws.buffers[0] else ws.buffers[0]
                        t = buf[:(stop - start) * size]
                    tensors.append(t)
                chunk_seconds = self._net.run(tensors, stop - start, threads, ws.scratch, profile)
                if profile:
                    seconds = chunk_seconds if seconds is None else [a + b for a, b in zip(seconds, chunk_seconds)]
        except MemoryError:  # converting a chunk of float images: memory ran out meanwhile
            raise self._memory_error(n, chunk, prepare is not None, keep) from None
        finally:
            with self._lock:
                self._workspaces.append(ws)
        return outputs, seconds

    def _memory_error(self, n: int, chunk: int, converting: bool, keep) -> MemoryError:
        outputs = sum(n * self._sizes[i] for i in keep)
        working_set = chunk * self._working_set_per_image(converting)
        return MemoryError(f"not enough memory for a batch of {n} images: {outputs / 2**20:.0f} MiB of outputs "
                           f"and a {working_set / 2**20:.0f} MiB working set ({chunk} images at a time)")

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
         labels: Union[None, str, os.PathLike, Sequence[str]] = None, adapt_threads: bool = True) -> Model:
    """Load a uint8 MobileNet-family model.

    path: a .tflite or .mnq file, or a TF1 Hub quantops module (its directory or the .tar.gz
         tfhub.dev serves; converted once, with TensorFlow, into an .mnq in the user cache,
         keyed by the module's content). None: the model `mnq fetch` downloaded.
    num_threads: threads per inference, the caller's included (default: all available cores).
    adapt_threads: True (default): a run uses fewer threads while other runnable threads keep
         CPUs busy, never more than the free CPUs (at least one); False: always num_threads.
    isa: force an instruction-set level (x86: 'scalar', 'avx2', 'avx512vnni', 'amx'; Arm:
         'scalar', 'neon', 'neondot', 'neoni8mm'); default env MNQ_ISA, else the best this CPU supports.
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
        return Model(graph, num_threads=num_threads, isa=isa, labels=labels, adapt_threads=adapt_threads)
    return Model(read_graph(path), num_threads=num_threads, isa=isa, labels=labels, adapt_threads=adapt_threads)

