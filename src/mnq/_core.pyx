# cython: language_level=3, boundscheck=False, wraparound=False
"""Thin binding of the C net (src/kernels/mnq.h): build once, run with the GIL released."""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, int32_t
from libc.stdlib cimport malloc, free, calloc

cnp.import_array()

cdef extern from "mnq.h":
    ctypedef struct mnq_layer_desc:
        int op
        int in_h, in_w, in_c, out_h, out_w, out_c
        int k_h, k_w, stride_h, stride_w, pad_top, pad_left
        int32_t in_zp, w_zp, out_zp, multiplier, shift
        const int32_t *channel_multipliers
        const int32_t *channel_shifts
        int32_t act_min, act_max
        const uint8_t *weights
        const int32_t *bias
        int32_t softmax_multiplier, softmax_left_shift, softmax_diff_min
        int32_t pool_center
    ctypedef struct mnq_net:
        pass
    enum: MNQ_ISA_COUNT
    unsigned mnq_isa_supported_mask()
    int mnq_isa_best()
    const char *mnq_isa_name(int isa)
    const char *mnq_cpu_features()
    enum: MNQ_PEAK_COUNT
    const char *mnq_peak_name(int which)
    int mnq_peak_available(int which)
    int mnq_peak_of_isa(int isa)
    double mnq_peak_macs_per_second(int which, double seconds) nogil
    const char *mnq_kernels_built()
    const char *mnq_kernels_not_built()
    mnq_net *mnq_net_create(const mnq_layer_desc *layers, int num_layers, int isa, char *err, size_t err_len)
    void mnq_net_destroy(mnq_net *net)
    const char *mnq_net_kernel_name(const mnq_net *net, int layer)
    size_t mnq_net_scratch_bytes(const mnq_net *net, int num_threads) nogil
    void mnq_net_set_adapt_threads(mnq_net *net, int adapt)
    int mnq_net_adapts_threads(const mnq_net *net)
    int mnq_threads_free(int requested) nogil
    int mnq_net_run(const mnq_net *net, int batch, uint8_t *const *tensors, uint8_t *scratch,
                    int num_threads, double *layer_seconds) nogil

ISA_NAMES = tuple(mnq_isa_name(i).decode() for i in range(MNQ_ISA_COUNT))

# The mnq_layer_desc fields this binding fills from a plan dict, in mnq.h's order
# (tests/test_layer_desc_sync.py checks them against mnq.h, plan.py and the .mnq format).
DESC_FIELDS = ("op", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w",
               "pad_top", "pad_left", "in_zp", "w_zp", "out_zp", "multiplier", "shift", "channel_multipliers",
               "channel_shifts", "act_min", "act_max", "weights", "bias", "softmax_multiplier",
               "softmax_left_shift", "softmax_diff_min", "pool_center")

def supported_isas():
    """Names of the instruction-set levels this CPU and OS can run."""
    cdef unsigned mask = mnq_isa_supported_mask()
    return [name for i, name in enumerate(ISA_NAMES) if mask & (1u << i)]


def threads_free(int requested):
    """Threads the CPUs free at this instant allow a run asking for `requested` (mnq_threads_free)."""
    cdef int threads
    with nogil:  # it may wait for another caller's job to leave the pool
        threads = mnq_threads_free(requested)
    return threads


def best_isa():
    return ISA_NAMES[mnq_isa_best()]


def cpu_features():
    return mnq_cpu_features().decode()


PEAK_NAMES = tuple(mnq_peak_name(i).decode() for i in range(MNQ_PEAK_COUNT))


def peak_probes():
    """Names of the peak probes whose instructions this CPU runs."""
    return [name for i, name in enumerate(PEAK_NAMES) if mnq_peak_available(i)]


def peak_of_isa(str isa):
    """The peak probe bounding that level's GEMMs here, or None (scalar, ARM, unsupported)."""
    cdef int which = mnq_peak_of_isa(ISA_NAMES.index(isa)) if isa in ISA_NAMES else -1
    return PEAK_NAMES[which] if which >= 0 else None


def peak_macs_per_second(str probe, double seconds=0.2):
    """One core's measured MAC/s of a peak probe (best of runs over `seconds`); 0 if the CPU lacks it."""
    if probe not in PEAK_NAMES:
        raise ValueError(f"unknown peak probe {probe!r}; choose from {', '.join(PEAK_NAMES)}")
    cdef int which = PEAK_NAMES.index(probe)
    cdef double rate
    with nogil:
        rate = mnq_peak_macs_per_second(which, seconds)
    return rate


def kernels_built():
    """Kernel groups compiled into this build (src/kernels/isa_levels.txt)."""
    return mnq_kernels_built().decode().split()


def kernels_not_built():
    """Kernel groups this build's compiler could not build; their levels are never offered."""
    return mnq_kernels_not_built().decode().split()


cdef class Net:
    """A planned network: kernels chosen, weights packed. Immutable once built."""
    cdef mnq_net *net
    cdef readonly int num_layers
    cdef readonly str isa
    cdef readonly tuple tensor_sizes   # bytes per image of tensor i (0 = input)
    cdef list _keepalive               # weight / bias arrays the C net points into

    def __cinit__(self, list descs, str isa):
        cdef int n = len(descs)
        cdef char err[512]
        cdef mnq_layer_desc *c_descs
        cdef cnp.ndarray arr
        if isa not in ISA_NAMES:
            raise ValueError(f"unknown instruction set {isa!r}; choose from {', '.join(ISA_NAMES)}")
        if n == 0:
            raise ValueError("a network needs at least one layer")
        c_descs = <mnq_layer_desc *>calloc(n, sizeof(mnq_layer_desc))
        if c_descs == NULL:
            raise MemoryError()
        self._keepalive = []
        try:
            for i, d in enumerate(descs):
                c_descs[i].op = d["op"]
                c_descs[i].in_h, c_descs[i].in_w, c_descs[i].in_c = d["in_h"], d["in_w"], d["in_c"]
                c_descs[i].out_h, c_descs[i].out_w, c_descs[i].out_c = d["out_h"], d["out_w"], d["out_c"]
                c_descs[i].k_h, c_descs[i].k_w = d["k_h"], d["k_w"]
                c_descs[i].stride_h, c_descs[i].stride_w = d["stride_h"], d["stride_w"]
                c_descs[i].pad_top, c_descs[i].pad_left = d["pad_top"], d["pad_left"]
                c_descs[i].in_zp, c_descs[i].w_zp, c_descs[i].out_zp = d["in_zp"], d["w_zp"], d["out_zp"]
                c_descs[i].multiplier, c_descs[i].shift = d["multiplier"], d["shift"]
                c_descs[i].act_min, c_descs[i].act_max = d["act_min"], d["act_max"]
                c_descs[i].softmax_multiplier = d["softmax_multiplier"]
                c_descs[i].softmax_left_shift = d["softmax_left_shift"]
                c_descs[i].softmax_diff_min = d["softmax_diff_min"]
                c_descs[i].pool_center = d["pool_center"]
                if (d["channel_multipliers"] is None) != (d["channel_shifts"] is None):
                    raise ValueError(f"layer {i}: per-channel multipliers and shifts go together")
                if d["channel_multipliers"] is not None:
                    arr = np.ascontiguousarray(d["channel_multipliers"], dtype=np.int32)
                    shifts = np.ascontiguousarray(d["channel_shifts"], dtype=np.int32)
                    if arr.size != d["out_c"] or shifts.size != d["out_c"]:
                        raise ValueError(f"layer {i}: per-channel requantization needs {d['out_c']} entries")
                    self._keepalive += [arr, shifts]
                    c_descs[i].channel_multipliers = <const int32_t *>cnp.PyArray_DATA(arr)
                    c_descs[i].channel_shifts = <const int32_t *>cnp.PyArray_DATA(shifts)
                if d["weights"] is not None:
                    arr = np.ascontiguousarray(d["weights"], dtype=np.uint8)
                    if arr.size != _weight_count(d):
                        raise ValueError(f"layer {i}: {arr.size} weights, expected {_weight_count(d)}")
                    self._keepalive.append(arr)
                    c_descs[i].weights = <const uint8_t *>cnp.PyArray_DATA(arr)
                if d["bias"] is not None:
                    arr = np.ascontiguousarray(d["bias"], dtype=np.int32)
                    if arr.size != d["out_c"]:
                        raise ValueError(f"layer {i}: {arr.size} biases, expected {d['out_c']}")
                    self._keepalive.append(arr)
                    c_descs[i].bias = <const int32_t *>cnp.PyArray_DATA(arr)
            self.net = mnq_net_create(c_descs, n, ISA_NAMES.index(isa), err, sizeof(err))
            if self.net == NULL:
                raise ValueError(err.decode(errors="replace"))
        finally:
            free(c_descs)
        self.num_layers = n
        self.isa = isa
        self.tensor_sizes = tuple([descs[0]["in_h"] * descs[0]["in_w"] * descs[0]["in_c"]] +
                                  [d["out_h"] * d["out_w"] * d["out_c"] for d in descs])

    def __dealloc__(self):
        if self.net != NULL:
            mnq_net_destroy(self.net)

    def kernel_names(self):
        return [mnq_net_kernel_name(self.net, i).decode() for i in range(self.num_layers)]

    def scratch_bytes(self, int num_threads):
        return mnq_net_scratch_bytes(self.net, num_threads)

    @property
    def adapt_threads(self):
        """True: runs use no more threads than other runnable threads leave CPUs free (mnq.h)."""
        return bool(mnq_net_adapts_threads(self.net))

    @adapt_threads.setter
    def adapt_threads(self, bint adapt):
        mnq_net_set_adapt_threads(self.net, adapt)

    def run(self, list tensors, int batch, int num_threads, cnp.ndarray scratch=None, bint profile=False):
        """Run all layers. tensors[i] are C-contiguous uint8 arrays of at least
        batch * tensor_sizes[i] bytes; 1..n are written (one that shares memory with another
        ends with unspecified bytes: mnq_net_run in mnq.h). Returns per-layer seconds
        when profile is true. The GIL is released while the network runs."""
        cdef int n = self.num_layers, i, rc
        cdef cnp.ndarray t
        cdef uint8_t **ptrs
        cdef double *seconds = NULL
        cdef uint8_t *scratch_ptr = NULL
        if len(tensors) != n + 1:
            raise ValueError(f"expected {n + 1} tensors, got {len(tensors)}")
        if batch <= 0:
            raise ValueError("batch must be positive")
        if num_threads <= 0:
            raise ValueError("num_threads must be positive")
        for i in range(n + 1):
            t = tensors[i]
            if t.dtype != np.uint8 or not t.flags.c_contiguous or (i > 0 and not t.flags.writeable):
                raise ValueError(f"tensor {i} must be a C-contiguous (writeable) uint8 array")
            if t.nbytes < batch * self.tensor_sizes[i]:
                raise ValueError(f"tensor {i} holds {t.nbytes} bytes, needs {batch * self.tensor_sizes[i]}")
        need = mnq_net_scratch_bytes(self.net, num_threads)
        if need:
            if scratch is None or scratch.dtype != np.uint8 or not scratch.flags.c_contiguous \
                    or not scratch.flags.writeable or <size_t>scratch.nbytes < need:
                raise ValueError(f"scratch must be a writeable uint8 array of at least {need} bytes")
            scratch_ptr = <uint8_t *>cnp.PyArray_DATA(scratch)
        ptrs = <uint8_t **>malloc((n + 1) * sizeof(uint8_t *))
        if ptrs == NULL:
            raise MemoryError()
        if profile:
            seconds = <double *>calloc(n, sizeof(double))
            if seconds == NULL:
                free(ptrs)
                raise MemoryError()
        try:
            for i in range(n + 1):
                ptrs[i] = <uint8_t *>cnp.PyArray_DATA(<cnp.ndarray>tensors[i])
            with nogil:
                rc = mnq_net_run(self.net, batch, ptrs, scratch_ptr, num_threads, seconds)
            if rc != 0:
                raise RuntimeError("mnq_net_run rejected its arguments")
            if profile:
                return [seconds[i] for i in range(n)]
            return None
        finally:
            free(ptrs)
            free(seconds)


def _weight_count(d):
    if d["op"] == 1:  # depthwise
        return d["k_h"] * d["k_w"] * d["out_c"]
    return d["out_c"] * d["k_h"] * d["k_w"] * d["in_c"]


# ---- the scalar fixed-point primitives, exposed so tests can pin them down ----
cdef extern from "internal.h":
    int32_t mnq_srdhm(int32_t a, int32_t b)
    int32_t mnq_rdpot(int32_t x, int exponent)
    int32_t mnq_mul_by_multiplier(int32_t x, int32_t multiplier, int shift)


def srdhm(int32_t a, int32_t b):
    """SaturatingRoundingDoublingHighMul."""
    return mnq_srdhm(a, b)


def rdpot(int32_t x, int exponent):
    """RoundingDivideByPOT (0 <= exponent <= 31)."""
    if not 0 <= exponent <= 31:
        raise ValueError("exponent must be in [0, 31]")
    return mnq_rdpot(x, exponent)


def mul_by_multiplier(int32_t x, int32_t multiplier, int shift):
    """MultiplyByQuantizedMultiplier (double rounding)."""
    if not -31 <= shift <= 30:
        raise ValueError("shift must be in [-31, 30]")
    return mnq_mul_by_multiplier(x, multiplier, shift)
